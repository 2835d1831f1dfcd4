//! The SEV-family backend: an SNP, SEV-ES or SEV launch of a plan, on KVM's upstream
//! interface (Linux 6.11+ for SNP; the INIT2 path, Linux 6.10+, for SEV-ES and SEV).
//!
//! Order (QEMU `target/i386/sev.c` and the KVM selftests `lib/x86/sev.c` agree;
//! ../shared/MODELS.md section 1.1): capabilities checked before anything is created,
//! `KVM_CREATE_VM` of the TEE's type, `KVM_SEV_INIT2`, the hypercall exit for page-state
//! changes, guest memory (SNP: guest_memfd slots, all set private), LAUNCH_START, one
//! LAUNCH_UPDATE per plan step, the vCPUs in their plan state, then LAUNCH_FINISH (SNP:
//! which measures the VMSAs) or LAUNCH_UPDATE_VMSA, LAUNCH_MEASURE and LAUNCH_FINISH.

use super::cpuid::CpuidPage;
use super::{
    CommandError, IdBlockInput, SNP_ACTIVE, SNP_POLICY_RESERVED_ONE, SevHardware, SnpFinish,
    SnpUpdate, fw, vm_type,
};
use crate::vmm::LaunchError;
use crate::vmm::backend::{
    Backend, CertsReply, ExitHandled, Hardware, PlatformOptions, Runtime, VmType,
};
use crate::vmm::none::memory_ranges;
use crate::vmm::{IDENTITY_MAP_ADDR, TSS_ADDR};
use cvm_firmware::Tee;
use cvm_firmware::plan::{LaunchPlan, PAGE, PageKind, Step};
use cvm_firmware::vcpu::{VcpuState, X86Vcpu};
use kvm_ioctls::VcpuExit;

/// What an SEV-family launch takes besides the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SevLaunch {
    /// The guest policy (SNP: 64 bits; SEV and SEV-ES: the low 32).
    pub policy: u64,
    /// SNP: HOST_DATA.
    pub host_data: [u8; 32],
    /// SNP: the ID block.
    pub id_block: Option<IdBlockInput>,
    /// SNP: the certificate table served for extended guest requests (GHCB format).
    pub certs: Option<Vec<u8>>,
}

/// The SNP, SEV-ES or SEV backend.
#[derive(Debug)]
pub struct SevBackend {
    tee: Tee,
    vm_type: u64,
    /// SEV_FEATURES for every VMSA (SNP: including SNP_ACTIVE).
    sev_features: u64,
    launch: SevLaunch,
    /// SEV, SEV-ES: LAUNCH_MEASURE's answer.
    measure: Option<[u8; 48]>,
    /// SNP: the CPUID page sent, for the report when the firmware rejects it.
    cpuid_sent: Option<CpuidPage>,
    /// Page-state changes refused (guest-triggered: logged at a limited rate).
    refused: crate::vmm::rate::Counter,
    /// Certificate requests served (guest-triggered: logged at a limited rate).
    served: crate::vmm::rate::Counter,
}

/// KVM's reset values of the registers the VMSA carries that cvm does not set (x86.c
/// `kvm_vcpu_reset`, `MSR_IA32_CR_PAT_DEFAULT`): a plan that needs other values cannot be
/// launched by setting registers.
const RESET_XCR0: u64 = 1;
const RESET_PAT: u64 = 0x0007_0406_0007_0406;
const RESET_DR6: u64 = 0xffff_0ff0;
const RESET_DR7: u64 = 0x400;
/// EFER.SVME, which KVM sets in every SVM guest's save area (svm.c `svm_set_efer`).
pub(crate) const EFER_SVME: u64 = 1 << 12;
/// CR4.MCE, which KVM copies from the host's CR4 into the save area (svm.c
/// `svm_set_cr4`; every Linux host runs with it set).
pub(crate) const CR4_MCE: u64 = 1 << 6;

/// The most times one LAUNCH_UPDATE is retried on EAGAIN.
const MAX_EAGAIN: u32 = 10_000;

/// A certificate request's answer ([P-certs]): the table written into the guest's
/// buffer, or ENOSPC with the pages it needs, or EIO; `gpa` and `npages` come from the
/// guest (KVM only checks that `gpa` is page-aligned).
fn serve_certs(table: &[u8], gpa: u64, npages: u64, vm: &dyn Runtime) -> CertsReply {
    let len = u64::try_from(table.len()).unwrap_or(u64::MAX);
    let needed = len.div_ceil(PAGE);
    if npages < needed {
        return CertsReply {
            ret: CertsReply::ENOSPC,
            npages: needed,
        };
    }
    let fail = CertsReply {
        ret: CertsReply::EIO,
        npages,
    };
    if !gpa.is_multiple_of(PAGE) || !vm.is_ram(gpa, needed.saturating_mul(PAGE)) {
        return fail;
    }
    match vm.write(gpa, table) {
        Ok(()) => CertsReply { ret: 0, npages },
        Err(_) => fail,
    }
}

impl SevBackend {
    /// A backend for `plan` (an SNP, SEV-ES or SEV plan).
    pub fn new(plan: &LaunchPlan<'_>, launch: SevLaunch) -> Result<Self, LaunchError> {
        let tee = plan.tee();
        let vm_type = vm_type(tee).ok_or(LaunchError::PlanMismatch {
            plan: tee,
            backend: Tee::Snp,
        })?;
        let sev_features = plan.sev_features();
        if tee == Tee::Snp && sev_features & SNP_ACTIVE == 0 {
            return Err(unsupported(
                tee,
                format!(
                    "--guest-features {sev_features:#x}: KVM sets SNP_ACTIVE (bit 0) in every SNP \
                     VMSA, so the launch would measure {:#x}",
                    sev_features | SNP_ACTIVE
                ),
            ));
        }
        if tee != Tee::Snp && launch.policy > u64::from(u32::MAX) {
            return Err(unsupported(
                tee,
                format!("an {tee} guest policy is 32 bits, not {:#x}", launch.policy),
            ));
        }
        if tee != Tee::Snp && (launch.id_block.is_some() || launch.host_data != [0; 32]) {
            return Err(unsupported(tee, "ID blocks and HOST_DATA are SNP's".into()));
        }
        Ok(SevBackend {
            tee,
            vm_type,
            sev_features,
            launch,
            measure: None,
            cpuid_sent: None,
            refused: crate::vmm::rate::Counter::default(),
            served: crate::vmm::rate::Counter::default(),
        })
    }

    fn snp_load(&mut self, sev: &mut dyn SevHardware, step: &Step<'_>) -> Result<(), LaunchError> {
        let page_type = step.kind.snp_page_type().ok_or_else(|| {
            unsupported(
                self.tee,
                format!("{} pages (at {:#x})", step.kind.name(), step.gpa),
            )
        })?;
        let len = aligned_len(self.tee, step)?;
        match step.kind {
            PageKind::Normal => {
                sev.write_memory(step.gpa, &step.data)?;
                pad(sev, step, len)?;
            }
            PageKind::Cpuid => {
                let page = CpuidPage::from_kvm(&crate::vmm::vcpu::cpuid_for_entries(
                    &sev.supported_cpuid()?,
                    0,
                ))
                .map_err(|e| LaunchError::Step("build the SNP CPUID page", e))?;
                sev.write_memory(step.gpa, &page.to_page())?;
                self.cpuid_sent = Some(page);
            }
            // The other types take no contents from the VMM (the firmware zeroes ZERO
            // pages, fills SECRETS; UNMEASURED pages are copied from a zeroed source).
            _ => sev.zero_memory(step.gpa, len)?,
        }
        let mut update = SnpUpdate {
            gfn_start: step.gpa / PAGE,
            uaddr: sev.host_address(step.gpa)?,
            len,
            page_type,
        };
        let end = update.gfn_start.saturating_add(len / PAGE);
        let mut eagain = 0;
        while update.len > 0 {
            let before = update;
            match sev.snp_launch_update(&mut update) {
                Ok(()) if update.len >= before.len => {
                    return Err(LaunchError::Step(
                        "KVM_SEV_SNP_LAUNCH_UPDATE",
                        format!(
                            "KVM made no progress at {:#x} ({:#x} bytes left)",
                            before.gfn_start.saturating_mul(PAGE),
                            before.len
                        ),
                    ));
                }
                Ok(()) => {}
                Err(e) if e.errno == libc::EAGAIN && eagain < MAX_EAGAIN => {
                    eagain += 1;
                    update = before;
                }
                Err(e) => return Err(self.update_failed(sev, step, &before, e)),
            }
        }
        if update.gfn_start != end {
            return Err(LaunchError::Step(
                "KVM_SEV_SNP_LAUNCH_UPDATE",
                format!(
                    "{:?} at {:#x}: KVM ended at frame {:#x}, not {end:#x}",
                    step.origin, step.gpa, update.gfn_start
                ),
            ));
        }
        Ok(())
    }

    /// The error of a failed LAUNCH_UPDATE: for a CPUID page the firmware corrected, the
    /// leaves it changed (KVM copies its corrected page back over the source).
    fn update_failed(
        &self,
        sev: &mut dyn SevHardware,
        step: &Step<'_>,
        at: &SnpUpdate,
        e: CommandError,
    ) -> LaunchError {
        let gpa = at.gfn_start.saturating_mul(PAGE);
        let mut e = e;
        if step.kind == PageKind::Cpuid && e.fw_error == fw::INVALID_PARAM {
            let mut page = vec![0u8; 4096];
            let corrected = sev
                .read_memory(step.gpa, &mut page)
                .map_err(|e| e.to_string())
                .and_then(|()| CpuidPage::parse(&page));
            let diff = match (&self.cpuid_sent, corrected) {
                (Some(sent), Ok(fixed)) => sent.differences(&fixed).join("; "),
                (_, Err(why)) => format!("the corrected page cannot be read: {why}"),
                (None, _) => String::new(),
            };
            e = e.because(format!("the firmware rejected the CPUID page: {diff}"));
        }
        LaunchError::Command {
            step: format!(
                "{} page at {gpa:#x} ({:?}, {:#x} bytes left)",
                step.kind.name(),
                step.origin,
                at.len
            ),
            source: e,
        }
    }

    fn sev_load(&mut self, sev: &mut dyn SevHardware, step: &Step<'_>) -> Result<(), LaunchError> {
        if step.kind != PageKind::Normal {
            return Err(unsupported(
                self.tee,
                format!(
                    "{} pages (at {:#x}): SEV and SEV-ES load data only",
                    step.kind.name(),
                    step.gpa
                ),
            ));
        }
        sev.write_memory(step.gpa, &step.data)?;
        let uaddr = sev.host_address(step.gpa)?;
        let len = u64::try_from(step.data.len()).unwrap_or(u64::MAX);
        sev.launch_update_data(uaddr, len)
            .map_err(|e| LaunchError::Command {
                step: format!("{:?} at {:#x}, {len:#x} bytes", step.origin, step.gpa),
                source: e,
            })
    }
}

fn unsupported(tee: Tee, what: String) -> LaunchError {
    LaunchError::Unsupported { tee, what }
}

fn sev_of(hw: &mut dyn Hardware, tee: Tee) -> Result<&mut dyn SevHardware, LaunchError> {
    hw.sev().ok_or_else(|| {
        unsupported(
            tee,
            "this hardware has no SEV interface (cvm has no SEV support for it)".into(),
        )
    })
}

fn at(step: &'static str) -> impl Fn(CommandError) -> LaunchError {
    move |source| LaunchError::Command {
        step: step.to_owned(),
        source,
    }
}

/// A step's length in whole pages: SNP launches 4 KiB pages at page-aligned GPAs.
fn aligned_len(tee: Tee, step: &Step<'_>) -> Result<u64, LaunchError> {
    if !step.gpa.is_multiple_of(PAGE) || step.len == 0 {
        return Err(unsupported(
            tee,
            format!(
                "{:?} at {:#x}, {:#x} bytes: SNP loads whole 4 KiB pages",
                step.origin, step.gpa, step.len
            ),
        ));
    }
    step.len
        .checked_next_multiple_of(PAGE)
        .ok_or_else(|| unsupported(tee, format!("{:?} at {:#x} wraps", step.origin, step.gpa)))
}

/// Zeroes a NORMAL step's last partial page (the firmware measures whole pages).
fn pad(sev: &mut dyn SevHardware, step: &Step<'_>, len: u64) -> Result<(), LaunchError> {
    let written = u64::try_from(step.data.len()).unwrap_or(u64::MAX);
    if written < len {
        sev.zero_memory(step.gpa.saturating_add(written), len - written)?;
    }
    Ok(())
}

/// The registers to set so that KVM's save area, and so the VMSA, holds `s`: KVM adds
/// EFER.SVME and the host's CR4.MCE itself and clears CR0.CD/NW (svm.c `svm_set_efer`,
/// `svm_set_cr4`, `svm_set_cr0` with the default KVM_X86_QUIRK_CD_NW_CLEARED), so those
/// bits are left to it. Registers cvm does not set must hold KVM's reset values.
fn registers_for(tee: Tee, id: u32, s: &X86Vcpu) -> Result<X86Vcpu, LaunchError> {
    for (name, value, reset) in [
        ("XCR0", s.xcr0, RESET_XCR0),
        ("PAT", s.g_pat, RESET_PAT),
        ("DR6", s.dr6, RESET_DR6),
        ("DR7", s.dr7, RESET_DR7),
    ] {
        if value != reset {
            return Err(unsupported(
                tee,
                format!(
                    "vCPU {id} starts with {name} {value:#x}; cvm launches vCPUs with KVM's \
                     {name} {reset:#x} (use the QEMU layout, --vmm qemu)"
                ),
            ));
        }
    }
    if s.cr4 & CR4_MCE == 0 || s.efer & EFER_SVME == 0 {
        return Err(unsupported(
            tee,
            format!(
                "vCPU {id}: KVM sets EFER.SVME and CR4.MCE in every SEV-ES and SNP VMSA; \
                 this plan has EFER {:#x}, CR4 {:#x}",
                s.efer, s.cr4
            ),
        ));
    }
    Ok(X86Vcpu {
        efer: s.efer & !EFER_SVME,
        cr4: s.cr4 & !CR4_MCE,
        ..*s
    })
}

impl Backend for SevBackend {
    fn tee(&self) -> Tee {
        self.tee
    }

    fn create_vm(
        &mut self,
        hw: &mut dyn Hardware,
        opts: &PlatformOptions,
    ) -> Result<(), LaunchError> {
        let tee = self.tee;
        let sev = sev_of(hw, tee)?;
        // Everything the host must offer is checked before anything is created.
        let types = sev.vm_types()?;
        if types & (1 << self.vm_type) == 0 {
            return Err(LaunchError::Unavailable(format!(
                "this host's KVM does not offer the {tee} VM type {} (KVM_CAP_VM_TYPES is \
                 {types:#x})",
                self.vm_type
            )));
        }
        let features = self.sev_features & !SNP_ACTIVE;
        if tee != Tee::Sev {
            let offered = sev
                .vmsa_features()
                .map_err(at("read the VMSA features KVM offers"))?;
            if features & !offered != 0 {
                return Err(LaunchError::Unavailable(format!(
                    "SEV_FEATURES {:#x}: KVM offers only {offered:#x} \
                     (KVM_X86_SEV_VMSA_FEATURES); bits {:#x} are not offered",
                    self.sev_features,
                    features & !offered
                )));
            }
        }
        if tee == Tee::Snp {
            let policy = self.launch.policy;
            if policy & SNP_POLICY_RESERVED_ONE == 0 {
                return Err(unsupported(
                    tee,
                    format!("guest policy {policy:#x}: bit 17 is reserved and must be set"),
                ));
            }
            let allowed = sev
                .snp_policy_bits()
                .map_err(at("read the SNP policy bits KVM allows"))?
                .unwrap_or(super::model::SNP_POLICY_BITS_BEFORE_6_19);
            if policy & !allowed != 0 {
                return Err(LaunchError::Unavailable(format!(
                    "guest policy {policy:#x}: KVM allows only {allowed:#x} \
                     (KVM_X86_SNP_POLICY_BITS); bits {:#x} are not allowed",
                    policy & !allowed
                )));
            }
        }
        if self.launch.certs.is_some()
            && !sev
                .snp_req_certs_supported()
                .map_err(at("read whether KVM serves certificate requests"))?
        {
            return Err(LaunchError::Unavailable(
                "--certs: this host's KVM cannot hand certificate requests to the VMM \
                 (KVM_X86_SEV_SNP_REQ_CERTS, Linux 7.0+)"
                    .into(),
            ));
        }
        sev.create_vm(VmType(self.vm_type))?;
        sev.sev_init2(features, 0).map_err(at("KVM_SEV_INIT2"))?;
        if self.launch.certs.is_some() {
            sev.snp_enable_req_certs()
                .map_err(at("KVM_SEV_SNP_ENABLE_REQ_CERTS"))?;
        }
        sev.set_system_addresses(TSS_ADDR, IDENTITY_MAP_ADDR)?;
        sev.create_irqchip(opts.irqchip, opts.pit)?;
        sev.enable_map_gpa_exit()
    }

    fn prepare_memory(
        &mut self,
        hw: &mut dyn Hardware,
        plan: &LaunchPlan<'_>,
    ) -> Result<(), LaunchError> {
        let ranges = memory_ranges(plan)?;
        let sev = sev_of(hw, self.tee)?;
        if self.tee == Tee::Snp {
            sev.add_private_memory(&ranges)?;
            // Guest memory starts private, as QEMU sets every guest_memfd slot
            // (`kvm_set_memory_attributes_private`); the guest converts what it shares.
            for &(gpa, len) in &ranges {
                sev.set_memory_attributes(gpa, len, true)?;
            }
            sev.snp_launch_start(self.launch.policy)
                .map_err(at("KVM_SEV_SNP_LAUNCH_START"))
        } else {
            sev.add_memory(&ranges)?;
            for &(gpa, len) in &ranges {
                sev.register_encrypted_region(gpa, len)
                    .map_err(at("KVM_MEMORY_ENCRYPT_REG_REGION"))?;
            }
            let policy = u32::try_from(self.launch.policy).unwrap_or(u32::MAX);
            sev.launch_start(policy).map_err(at("KVM_SEV_LAUNCH_START"))
        }
    }

    fn load(&mut self, hw: &mut dyn Hardware, step: &Step<'_>) -> Result<(), LaunchError> {
        let sev = sev_of(hw, self.tee)?;
        if self.tee == Tee::Snp {
            self.snp_load(sev, step)
        } else {
            self.sev_load(sev, step)
        }
    }

    fn setup_vcpu(
        &mut self,
        hw: &mut dyn Hardware,
        id: u32,
        state: Option<&VcpuState>,
    ) -> Result<(), LaunchError> {
        hw.create_vcpu(id)?;
        match (state, self.tee) {
            (Some(s), _) => {
                let x86 = s.x86().ok_or_else(|| {
                    unsupported(self.tee, format!("vCPU {id} is not an x86 vCPU"))
                })?;
                let regs = registers_for(self.tee, id, x86)?;
                hw.set_vcpu_state(id, &VcpuState::X86(regs))
            }
            // Plain SEV neither encrypts nor measures register state: KVM's reset.
            (None, Tee::Sev) => Ok(()),
            (None, tee) => Err(unsupported(
                tee,
                format!("vCPU {id} has no initial state in the plan, and its VMSA is measured"),
            )),
        }
    }

    fn finalize(&mut self, hw: &mut dyn Hardware) -> Result<(), LaunchError> {
        let sev = sev_of(hw, self.tee)?;
        match self.tee {
            Tee::Snp => sev
                .snp_launch_finish(&SnpFinish {
                    id_block: self.launch.id_block.clone(),
                    host_data: self.launch.host_data,
                })
                .map_err(at("KVM_SEV_SNP_LAUNCH_FINISH")),
            tee => {
                if tee == Tee::SevEs {
                    sev.launch_update_vmsa()
                        .map_err(at("KVM_SEV_LAUNCH_UPDATE_VMSA"))?;
                }
                self.measure = Some(sev.launch_measure().map_err(at("KVM_SEV_LAUNCH_MEASURE"))?);
                sev.launch_finish().map_err(at("KVM_SEV_LAUNCH_FINISH"))
            }
        }
    }

    fn launch_measure(&self) -> Option<Vec<u8>> {
        self.measure.map(|m| m.to_vec())
    }

    fn snp_certs(&self, vcpu: u32, gpa: u64, npages: u64, vm: &dyn Runtime) -> Option<CertsReply> {
        let table = self.launch.certs.as_deref()?;
        let reply = serve_certs(table, gpa, npages, vm);
        let (n, log) = self.served.tick();
        if log {
            tracing::info!(
                "vCPU {vcpu}: certificate request for {npages} pages at {gpa:#x}: {reply:?} ({n} \
                 so far)"
            );
        }
        Some(reply)
    }

    fn handle_exit(&self, vcpu: u32, exit: &mut VcpuExit<'_>, vm: &dyn Runtime) -> ExitHandled {
        if self.tee != Tee::Snp {
            return ExitHandled::NotMine;
        }
        // The guest's page-state changes (GHCB PSC, MSR protocol), which KVM forwards as
        // KVM_HC_MAP_GPA_RANGE ([S] snp_begin_psc), and private/shared access faults.
        crate::vmm::convert::handle(vcpu, exit, vm, &self.refused)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::vmm::IrqChip;
    use crate::vmm::sev::model::{ModelHost, SevModel};
    use cvm_firmware::plan::{Origin, RamRange, SevPart, TeePart};
    use cvm_firmware::sev::vmsa::{self, VmmType};
    use std::borrow::Cow;

    fn plan(vmm: VmmType) -> LaunchPlan<'static> {
        let step = |gpa, kind, data: Vec<u8>| Step {
            gpa,
            len: PAGE,
            kind,
            data: Cow::Owned(data),
            origin: Origin::Firmware,
        };
        LaunchPlan {
            steps: vec![
                step(0x1000, PageKind::Normal, vec![0xf4; 4096]),
                step(0x2000, PageKind::Cpuid, Vec::new()),
            ],
            vcpus: vec![VcpuState::X86(vmsa::reset_state(
                vmm,
                vmsa::BSP_EIP,
                0x00a0_0f11,
            ))],
            vcpu_count: 1,
            ram: vec![RamRange {
                gpa: 0,
                len: 1 << 20,
            }],
            fw_cfg: cvm_firmware::fwcfg::FwCfg::default(),
            part: TeePart::Snp(SevPart {
                sev_features: 1,
                kernel_hashes: None,
            }),
        }
    }

    fn launch(plan: &LaunchPlan<'_>, host: ModelHost) -> (Result<(), LaunchError>, SevModel) {
        let mut model = SevModel::new(host);
        let mut backend = SevBackend::new(
            plan,
            SevLaunch {
                policy: 0x3_0000,
                host_data: [0; 32],
                id_block: None,
                certs: None,
            },
        )
        .unwrap();
        let opts = PlatformOptions {
            irqchip: IrqChip::InKernel,
            pit: false,
        };
        let r = crate::vmm::setup(&mut model, &mut backend, plan, &opts);
        (r, model)
    }

    #[test]
    fn a_launch_measures_what_the_plan_measures() {
        let plan = plan(VmmType::Qemu);
        let (r, model) = launch(&plan, ModelHost::default());
        r.unwrap();
        let m = cvm_firmware::measure::sev::measure(&plan, &Default::default()).unwrap();
        assert_eq!(model.launch_digest().unwrap(), m.digest);
    }

    #[test]
    fn a_cpuid_page_the_firmware_rejects_names_the_leaves() {
        let mut host = ModelHost::default();
        host.cpuid[1].ebx = 0x0000_1000; // a CLFLUSH size the firmware corrects
        let (r, _) = launch(&plan(VmmType::Qemu), host);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("INVALID_PARAM (0x16)"), "{e}");
        assert!(
            e.contains("leaf 0x1 subleaf 0x0 ebx: sent 0x00001000, the firmware allows 0x00000800"),
            "{e}"
        );
    }

    #[test]
    fn registers_cvm_cannot_set_are_refused() {
        let (r, model) = launch(&plan(VmmType::Gce), ModelHost::default());
        let e = r.unwrap_err().to_string();
        assert!(e.contains("PAT 0x70106"), "{e}");
        assert!(model.launch_digest().is_none());
    }

    #[test]
    fn certificate_serving_needs_a_kernel_that_has_it() {
        let plan = plan(VmmType::Qemu);
        let with_certs = || {
            SevBackend::new(
                &plan,
                SevLaunch {
                    policy: 0x3_0000,
                    host_data: [0; 32],
                    id_block: None,
                    certs: Some(vec![0; 24]),
                },
            )
            .unwrap()
        };
        let opts = PlatformOptions {
            irqchip: IrqChip::InKernel,
            pit: false,
        };
        let mut model = SevModel::new(ModelHost::default());
        let r = crate::vmm::setup(&mut model, &mut with_certs(), &plan, &opts);
        assert!(
            matches!(&r, Err(LaunchError::Unavailable(e)) if e.contains("Linux 7.0")),
            "{r:?}"
        );
        assert!(!model.issued().iter().any(|i| i.ioctl == "KVM_CREATE_VM"));
        let mut model = SevModel::new(ModelHost {
            req_certs: true,
            ..ModelHost::default()
        });
        crate::vmm::setup(&mut model, &mut with_certs(), &plan, &opts).unwrap();
        let names: Vec<&str> = model.issued().iter().map(|i| i.ioctl).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("KVM_SEV_INIT2") < at("KVM_SEV_SNP_ENABLE_REQ_CERTS"));
        assert!(at("KVM_SEV_SNP_ENABLE_REQ_CERTS") < at("KVM_CREATE_VCPU"));
    }

    #[test]
    fn a_host_without_the_vm_type_is_refused_before_anything_is_created() {
        let host = ModelHost {
            vm_types: 1 | 1 << 2 | 1 << 3,
            ..ModelHost::default()
        };
        let (r, model) = launch(&plan(VmmType::Qemu), host);
        assert!(matches!(r, Err(LaunchError::Unavailable(_))), "{r:?}");
        assert!(!model.issued().iter().any(|i| i.ioctl == "KVM_CREATE_VM"));
    }
}

#[cfg(test)]
mod runtime_tests {
    //! Certificate requests: every guest-supplied value range-checked.
    use super::*;
    use crate::vmm::convert::fake::Fake;

    #[test]
    fn certificate_requests_are_answered_within_the_guests_buffer() {
        let vm = Fake::default();
        let table = vec![7u8; 5000]; // two pages
        assert_eq!(
            serve_certs(&table, 0x10_0000, 1, &vm),
            CertsReply {
                ret: CertsReply::ENOSPC,
                npages: 2
            }
        );
        assert_eq!(
            serve_certs(&table, 0x10_0000, 2, &vm),
            CertsReply { ret: 0, npages: 2 }
        );
        // Outside RAM, or a buffer that wraps: EIO, nothing written.
        assert_eq!(
            serve_certs(&table, (1 << 30) - 0x1000, 4, &vm).ret,
            CertsReply::EIO
        );
        assert_eq!(serve_certs(&table, !0xfff, 4, &vm).ret, CertsReply::EIO);
        let calls = vm.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls, [(0x10_0000, 5000, false, "write")]);
    }
}
