//! A model of KVM's SEV interface and of the AMD Secure Processor: the hardware side of
//! an SEV-family launch on any host. It keeps the launch digest as the firmware does
//! (every LAUNCH_UPDATE page with its type, GPA and contents, then the VMSAs) and refuses
//! what KVM or the firmware refuse, with their errno and firmware status.
//!
//! Every rule cites its source (tags of ../shared/MODELS.md): [S] `arch/x86/kvm/svm/sev.c`,
//! [SVM] `arch/x86/kvm/svm/svm.c`, [X86] `arch/x86/kvm/x86.c`, [G] `virt/kvm/guest_memfd.c`
//! and `kvm_main.c`, [FW] AMD's SEV firmware (`amd/AMD-ASPFW`, `sev_mcmd.c`,
//! `cpuid_lookup.c`), [Q] QEMU `target/i386/sev.c`; "(inferred)" marks a rule no source
//! showed directly. What the model does not check is listed in [`UNMODELLED`].
//!
//! The host the model stands for is [`ModelHost::default`]: an SNP-capable host running
//! Linux 6.17 or 6.18 (VM types 0, 2, 3, 4; DebugSwap offered; no
//! `KVM_X86_SNP_POLICY_BITS`), SMT enabled, SNP firmware ABI 1.55.

use super::cpuid::CpuidPage;
use super::{
    CommandError, IdBlockInput, SNP_ACTIVE, SNP_POLICY_RESERVED_ONE, SevHardware, SnpFinish,
    SnpUpdate, fw,
};
use crate::vmm::backend::{Hardware, PrivateMemory, VmType};
use crate::vmm::modelmem::ModelMemory;
use crate::vmm::{IrqChip, LaunchError};
use cvm_firmware::sev::vmsa;
use cvm_firmware::vcpu::{Segment, VcpuState, X86Vcpu};
use kvm_bindings::kvm_cpuid_entry2;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha384};
use std::collections::BTreeSet;

const PAGE: u64 = 4096;

/// What the model does not check: a dry run that passes says nothing about these.
pub const UNMODELLED: &[&str] = &[
    "the AMD-SP's per-processor CPUID masks (cpuid_lookup.c DEFAULT values) and its rule \
     that leaves outside its table be zero: the model checks the CPUID page's structure, \
     leaf 1's CLFLUSH size, reserved bits and family/model/stepping, and leaf 0xD's XSAVE \
     sizes",
    "resource limits: free ASIDs, memory the host can pin or back",
    "the host's SEV firmware version beyond the ABI version in the policy",
    "guest requests other than MSG_REPORT_REQ, extended requests, and reports of launches \
     with an ID block (the model does not fill in ID_KEY_DIGEST and AUTHOR_KEY_DIGEST): \
     the model's reports are signed by the SNP test PKI's VCEK \
     (tests/fixtures/snp-test-pki), which only `--root test-ark.der` trusts",
];

/// SNP guest policy bits KVM allowed before `KVM_X86_SNP_POLICY_BITS` (Linux ≤ 6.18,
/// [S] `SNP_POLICY_MASK_VALID`): ABI minor and major, SMT, the reserved-one bit 17, DEBUG
/// and SINGLE_SOCKET.
pub const SNP_POLICY_BITS_BEFORE_6_19: u64 =
    0xff | 0xff00 | (1 << 16) | (1 << 17) | (1 << 19) | (1 << 20);
const SNP_POLICY_SMT: u64 = 1 << 16;

/// The host the model stands for.
#[derive(Debug, Clone)]
pub struct ModelHost {
    /// `KVM_CAP_VM_TYPES`.
    pub vm_types: u64,
    /// `KVM_X86_SEV_VMSA_FEATURES`.
    pub vmsa_features: u64,
    /// `KVM_X86_SNP_POLICY_BITS` (`None`: the kernel predates it).
    pub snp_policy_bits: Option<u64>,
    /// Whether the host runs with SMT enabled.
    pub smt: bool,
    /// The SNP firmware's ABI version (major, minor).
    pub snp_abi: (u8, u8),
    /// The SEV firmware's API version and build (LAUNCH_MEASURE's input).
    pub sev_api: (u8, u8, u8),
    /// The processor's CPUID Fn0000_0001_EAX (family, model, stepping).
    pub fms: u32,
    /// `KVM_GET_SUPPORTED_CPUID`.
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// `KVM_X86_SEV_SNP_REQ_CERTS` (Linux 7.0+).
    pub req_certs: bool,
}

impl Default for ModelHost {
    fn default() -> Self {
        let e = |function, index, flags, eax, ebx, ecx, edx| kvm_cpuid_entry2 {
            function,
            index,
            flags,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        let sig = kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        ModelHost {
            vm_types: (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4),
            vmsa_features: 1 << 5,
            snp_policy_bits: None,
            smt: true,
            req_certs: false,
            snp_abi: (1, 55),
            sev_api: (1, 55, 0),
            fms: 0x00a0_0f11,
            // "AuthenticAMD"; leaf 1 with a 64-byte CLFLUSH line; leaf 0xD for XCR0 = 1.
            cpuid: vec![
                e(0, 0, 0, 0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
                e(1, 0, 0, 0x00a0_0f11, 0x0000_0800, 0x0000_0001, 0x0000_0001),
                e(0xd, 0, sig, 0x3, 0x240, 0x240, 0),
                e(0xd, 1, sig, 0, 0x240, 0, 0),
                e(
                    0x8000_0000,
                    0,
                    0,
                    0x8000_0008,
                    0x6874_7541,
                    0x444d_4163,
                    0x6974_6e65,
                ),
                e(0x8000_0001, 0, 0, 0x00a0_0f11, 0, 0, 0),
            ],
        }
    }
}

/// One call the backend made, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issued {
    /// The ioctl (or query).
    pub ioctl: &'static str,
    /// The guest physical address, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpa: Option<String>,
    /// The length in bytes, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<String>,
    /// SNP_LAUNCH_UPDATE's page type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_type: Option<&'static str>,
    /// The model's refusal, if it refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug)]
struct Vcpu {
    id: u32,
    /// The save area as KVM holds it.
    save: X86Vcpu,
    /// The VMSA is encrypted: KVM refuses register access.
    protected: bool,
}

#[derive(Debug)]
struct Snp {
    policy: u64,
    ld: [u8; 48],
    /// Guest frames the firmware validated (RMP Guest-Valid).
    validated: BTreeSet<u64>,
    finished: bool,
    /// [FW] SNP_LAUNCH_START generates the VM platform communication keys.
    vmpck: [[u8; 32]; 4],
    /// [FW] the guest-message counter: it starts at 0, a request must carry counter + 1,
    /// and each request and its response take two.
    msg_seqno: u64,
    /// SNP_LAUNCH_FINISH's HOST_DATA, and whether it had an ID block.
    host_data: [u8; 32],
    id_block: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SevState {
    Update,
    Secret,
    Running,
}

#[derive(Debug)]
struct SevGuest {
    policy: u32,
    state: SevState,
    ld: Sha256,
    digest: Option<[u8; 32]>,
}

#[derive(Debug, Default)]
struct Vm {
    vm_type: u64,
    /// INIT2's SEV_FEATURES (with SNP_ACTIVE for SNP).
    features: Option<u64>,
    vcpus: Vec<Vcpu>,
    /// Guest memory: slots, attributes, the shared side.
    mem: ModelMemory,
    encrypted_regions: Vec<(u64, u64)>,
    snp: Option<Snp>,
    sev: Option<SevGuest>,
}

/// The model: KVM and the AMD-SP, for one launch.
#[derive(Debug, Default)]
pub struct SevModel {
    host: ModelHost,
    vm: Option<Vm>,
    issued: Vec<Issued>,
}

fn einval(command: &'static str, why: impl Into<String>) -> CommandError {
    CommandError::kernel(command, libc::EINVAL).because(why)
}

fn kvm_error(step: &'static str, errno: i32) -> LaunchError {
    LaunchError::Kvm {
        step,
        source: kvm_ioctls::Error::new(errno),
    }
}

impl SevModel {
    /// A model of `host`.
    pub fn new(host: ModelHost) -> Self {
        SevModel {
            host,
            vm: None,
            issued: Vec::new(),
        }
    }

    /// Every call the backend made, in order.
    pub fn issued(&self) -> &[Issued] {
        &self.issued
    }

    /// The launch digest the firmware holds: SNP, the 48-byte digest (final once
    /// SNP_LAUNCH_FINISH succeeded); SEV and SEV-ES, the 32-byte digest LAUNCH_MEASURE
    /// took.
    pub fn launch_digest(&self) -> Option<Vec<u8>> {
        let vm = self.vm.as_ref()?;
        if let Some(snp) = &vm.snp {
            return snp.finished.then(|| snp.ld.to_vec());
        }
        vm.sev.as_ref()?.digest.map(|d| d.to_vec())
    }

    /// The secrets page as the guest reads it after the launch (layout version 3:
    /// VMPCK0-3 at 0x20, 0x40, 0x60, 0x80), for an SNP launch that finished.
    pub fn secrets_page(&self) -> Option<Box<[u8; 4096]>> {
        let snp = self.vm.as_ref()?.snp.as_ref().filter(|s| s.finished)?;
        let mut page = Box::new([0u8; 4096]);
        page.get_mut(..4)?.copy_from_slice(&3u32.to_le_bytes());
        for (i, k) in snp.vmpck.iter().enumerate() {
            let at = 0x20 + 0x20 * i;
            page.get_mut(at..at + 32)?.copy_from_slice(k);
        }
        Some(page)
    }

    /// The firmware's answer to a guest request message (`SNP_GUEST_REQUEST`, what KVM
    /// forwards for the guest's GHCB exit 0x80000011): MSG_REPORT_REQ opened with the
    /// VMPCK it names, a report of this launch signed by the model's VCEK, sealed back with
    /// the next sequence number. Errors carry the firmware status.
    pub fn guest_request(&mut self, request: &[u8]) -> Result<Vec<u8>, CommandError> {
        use cvm_attest::snp::guest_msg::{
            self, MSG_REPORT_REQ, MSG_REPORT_RSP, Message, ReportRequest,
        };
        const C: &str = "SNP_GUEST_REQUEST";
        let snp = self
            .vm
            .as_mut()
            .and_then(|vm| vm.snp.as_mut())
            .filter(|s| s.finished)
            .ok_or_else(|| {
                CommandError::firmware(C, fw::INVALID_GUEST_STATE)
                    .because("no SNP guest has finished its launch")
            })?;
        // [FW] the header names the key; 0-3, else INVALID_PARAM.
        let index = request.get(0x3c).copied().unwrap_or(u8::MAX);
        let key = snp.vmpck.get(usize::from(index)).ok_or_else(|| {
            CommandError::firmware(C, fw::INVALID_PARAM).because(format!("msg_vmpck {index}"))
        })?;
        let m = guest_msg::open(key, request).map_err(|e| {
            let status = match e {
                guest_msg::GuestMsgError::Tag(_) => fw::AEAD_OFLOW,
                _ => fw::INVALID_PARAM,
            };
            CommandError::firmware(C, status).because(e.to_string())
        })?;
        // [FW] the sequence number must be the counter's next.
        if Some(m.seqno) != snp.msg_seqno.checked_add(1) {
            return Err(CommandError::firmware(C, fw::AEAD_OFLOW).because(format!(
                "sequence number {}, expected {}",
                m.seqno,
                snp.msg_seqno.saturating_add(1)
            )));
        }
        if m.msg_type != MSG_REPORT_REQ || m.msg_version != 1 {
            return Err(
                CommandError::firmware(C, fw::INVALID_PARAM).because(format!(
                    "message type {} version {}: the model answers MSG_REPORT_REQ version 1 only",
                    m.msg_type, m.msg_version
                )),
            );
        }
        let req = ReportRequest::decode(&m.payload)
            .map_err(|e| CommandError::firmware(C, fw::INVALID_PARAM).because(e.to_string()))?;
        let status_only = |status: u32| guest_msg::report_response(status, &[]);
        let payload = if req.vmpl < u32::from(m.vmpck) || req.vmpl > 3 {
            // [FW] MSG_REPORT_REQ: VMPL below the requester's, INVALID_PARAM.
            status_only(fw::INVALID_PARAM)
        } else if req.key_sel == 2 {
            // No VLEK is installed on the model's host.
            status_only(0x27)
        } else if snp.id_block {
            return Err(CommandError::firmware(C, fw::UNSUPPORTED).because(
                "the model does not fill ID_KEY_DIGEST and AUTHOR_KEY_DIGEST into reports",
            ));
        } else {
            let report = test_vcek::report(snp, &req)
                .map_err(|e| CommandError::firmware(C, fw::UNSUPPORTED).because(e))?;
            guest_msg::report_response(0, &report)
        };
        let response = Message {
            seqno: m.seqno.saturating_add(1),
            msg_type: MSG_REPORT_RSP,
            msg_version: 1,
            vmpck: m.vmpck,
            payload,
        };
        snp.msg_seqno = snp.msg_seqno.saturating_add(2);
        guest_msg::seal(key, &response)
            .map_err(|e| CommandError::firmware(C, fw::INVALID_PARAM).because(e.to_string()))
    }

    fn log<T, E: std::fmt::Display>(
        &mut self,
        ioctl: &'static str,
        range: Option<(u64, u64)>,
        page_type: Option<&'static str>,
        r: Result<T, E>,
    ) -> Result<T, E> {
        self.issued.push(Issued {
            ioctl,
            gpa: range.map(|(g, _)| format!("{g:#x}")),
            len: range.map(|(_, l)| format!("{l:#x}")),
            page_type,
            error: r.as_ref().err().map(ToString::to_string),
        });
        r
    }

    /// One memory slot per range, each logged.
    fn add_slots(
        &mut self,
        ioctl: &'static str,
        ranges: &[(u64, u64)],
        gmem: bool,
    ) -> Result<(), LaunchError> {
        for &range in ranges {
            let r = self
                .vm_mut(ioctl)
                .and_then(|vm| vm.mem.add_slots(&[range], gmem));
            self.log(ioctl, Some(range), None, r)?;
        }
        Ok(())
    }

    fn vm_mut(&mut self, step: &'static str) -> Result<&mut Vm, LaunchError> {
        self.vm
            .as_mut()
            .ok_or_else(|| LaunchError::Step(step, "no VM has been created".into()))
    }
}

impl Vm {
    fn vmsa(&self, v: &Vcpu) -> Box<[u8; vmsa::VMSA_SIZE]> {
        // [S] sev_es_sync_vmsa: the save area, SEV_FEATURES from INIT2.
        vmsa::page(&v.save, self.features.unwrap_or(0))
    }
}

/// The save area KVM keeps for registers set through KVM_SET_SREGS/REGS/FPU, for the VMSA
/// sync at launch finish: segments packed as [SVM] `svm_set_segment` packs them, CR0 with
/// CD and NW cleared ([SVM] `svm_set_cr0`, KVM_X86_QUIRK_CD_NW_CLEARED on by default),
/// CR4 with the host's MCE ([SVM] `svm_set_cr4`), EFER with SVME ([SVM] `svm_set_efer`).
fn save_area(s: &X86Vcpu) -> Result<X86Vcpu, String> {
    // [X86] kvm_is_valid_sregs: paging needs protected mode; long mode needs PAE and LMA.
    let (pe, pg) = (s.cr0 & 1 != 0, s.cr0 & (1 << 31) != 0);
    let (lme, lma) = (s.efer & (1 << 8) != 0, s.efer & (1 << 10) != 0);
    if pg && !pe {
        return Err("CR0.PG without CR0.PE".into());
    }
    if lme && pg && (s.cr4 & (1 << 5) == 0 || !lma) {
        return Err("long mode without CR4.PAE or EFER.LMA".into());
    }
    if !(lme && pg) && lma {
        return Err("EFER.LMA without long mode".into());
    }
    let seg = |x: &Segment| {
        let k = crate::vmm::vcpu::segment(x);
        let attrib = u16::from(k.type_ & 0xf)
            | (u16::from(k.s & 1) << 4)
            | (u16::from(k.dpl & 3) << 5)
            | (u16::from(k.present & 1 != 0 && k.unusable == 0) << 7)
            | (u16::from(k.avl & 1) << 8)
            | (u16::from(k.l & 1) << 9)
            | (u16::from(k.db & 1) << 10)
            | (u16::from(k.g & 1) << 11);
        Segment::new(k.selector, attrib, k.limit, k.base)
    };
    let table = |x: &Segment| {
        let d = crate::vmm::vcpu::dtable(x);
        Segment::new(0, 0, u32::from(d.limit), d.base)
    };
    Ok(X86Vcpu {
        es: seg(&s.es),
        cs: seg(&s.cs),
        ss: seg(&s.ss),
        ds: seg(&s.ds),
        fs: seg(&s.fs),
        gs: seg(&s.gs),
        ldtr: seg(&s.ldtr),
        tr: seg(&s.tr),
        gdtr: table(&s.gdtr),
        idtr: table(&s.idtr),
        cr0: s.cr0 & !((1 << 30) | (1 << 29)),
        cr3: s.cr3,
        cr4: s.cr4 | super::backend::CR4_MCE,
        efer: s.efer | super::backend::EFER_SVME,
        rip: s.rip,
        rsp: s.rsp,
        rflags: s.rflags,
        rdx: s.rdx,
        rsi: s.rsi,
        mxcsr: s.mxcsr,
        x87_fcw: s.x87_fcw,
        // [X86] kvm_vcpu_reset: what cvm does not set keeps KVM's reset value.
        dr6: 0xffff_0ff0,
        dr7: 0x400,
        g_pat: 0x0007_0406_0007_0406,
        xcr0: 1,
    })
}

impl Hardware for SevModel {
    fn supported_cpuid(&mut self) -> Result<Vec<kvm_cpuid_entry2>, LaunchError> {
        Ok(self.host.cpuid.clone())
    }

    fn vm_types(&mut self) -> Result<u64, LaunchError> {
        let t = self.host.vm_types;
        self.log(
            "KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES)",
            None,
            None,
            Ok::<_, LaunchError>(t),
        )
    }

    fn create_vm(&mut self, vm_type: VmType) -> Result<(), LaunchError> {
        let r = if self.vm.is_some() {
            Err(LaunchError::Step("KVM_CREATE_VM", "a VM exists".into()))
        } else if vm_type.0 >= 64 || self.host.vm_types & (1 << vm_type.0) == 0 {
            // [X86] kvm_arch_init_vm: a type outside KVM_CAP_VM_TYPES is -EINVAL.
            Err(kvm_error("KVM_CREATE_VM", libc::EINVAL))
        } else {
            self.vm = Some(Vm {
                vm_type: vm_type.0,
                ..Vm::default()
            });
            Ok(())
        };
        self.log("KVM_CREATE_VM", None, None, r)
    }

    fn set_system_addresses(&mut self, _: u64, _: u64) -> Result<(), LaunchError> {
        let r = self.vm_mut("KVM_SET_TSS_ADDR").map(drop);
        self.log("KVM_SET_TSS_ADDR", None, None, r)
    }

    fn create_irqchip(&mut self, irqchip: IrqChip, _: bool) -> Result<(), LaunchError> {
        let name = match irqchip {
            IrqChip::InKernel => "KVM_CREATE_IRQCHIP",
            IrqChip::Split => "KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)",
        };
        let r = self.vm_mut(name).map(drop);
        self.log(name, None, None, r)
    }

    fn add_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        self.add_slots("KVM_SET_USER_MEMORY_REGION", ranges, false)
    }

    fn write_memory(&mut self, gpa: u64, data: &[u8]) -> Result<(), LaunchError> {
        self.vm_mut("write guest memory")?.mem.write(gpa, data)
    }

    fn zero_memory(&mut self, gpa: u64, len: u64) -> Result<(), LaunchError> {
        self.vm_mut("zero guest memory")?.mem.zero(gpa, len)
    }

    fn create_vcpu(&mut self, id: u32) -> Result<(), LaunchError> {
        let r = self.vm_mut("KVM_CREATE_VCPU").and_then(|vm| {
            if vm.vcpus.iter().any(|v| v.id == id) {
                return Err(kvm_error("KVM_CREATE_VCPU", libc::EEXIST));
            }
            // MODELS 6.1 #22 (inferred): a vCPU created after SNP_LAUNCH_FINISH is never
            // measured and can run only with a VMSA the guest supplies; the model refuses.
            if vm.snp.as_ref().is_some_and(|s| s.finished) {
                return Err(LaunchError::Step(
                    "KVM_CREATE_VCPU",
                    "a vCPU created after SNP_LAUNCH_FINISH is not part of the measured launch"
                        .into(),
                ));
            }
            vm.vcpus.push(Vcpu {
                id,
                save: save_area(&X86Vcpu::reset(0xffff_fff0))
                    .map_err(|e| LaunchError::Step("KVM_CREATE_VCPU", e))?,
                protected: false,
            });
            Ok(())
        });
        self.log("KVM_CREATE_VCPU", None, None, r)
    }

    fn set_vcpu_state(&mut self, id: u32, state: &VcpuState) -> Result<(), LaunchError> {
        let step = "KVM_SET_SREGS/KVM_SET_REGS/KVM_SET_FPU";
        let r = self.vm_mut(step).and_then(|vm| {
            let v = vm
                .vcpus
                .iter_mut()
                .find(|v| v.id == id)
                .ok_or_else(|| kvm_error(step, libc::ENOENT))?;
            // [X86] kvm_arch_vcpu_ioctl_set_regs/sregs: a protected VMSA is -EINVAL.
            if v.protected {
                return Err(kvm_error(step, libc::EINVAL));
            }
            let x86 = state
                .x86()
                .ok_or_else(|| LaunchError::Step(step, "not an x86 vCPU".into()))?;
            v.save = save_area(x86).map_err(|e| {
                LaunchError::Step(step, format!("vCPU {id}: KVM refuses {e} (-EINVAL)"))
            })?;
            Ok(())
        });
        self.log(step, None, None, r)
    }

    fn sev(&mut self) -> Option<&mut dyn SevHardware> {
        Some(self)
    }
}

impl PrivateMemory for SevModel {
    fn enable_map_gpa_exit(&mut self) -> Result<(), LaunchError> {
        let r = self
            .vm_mut("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL)")
            .map(drop);
        self.log("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL)", None, None, r)
    }

    fn add_private_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        const C: &str = "KVM_SET_USER_MEMORY_REGION2";
        // [S] MODELS section 2: SEV and SEV-ES VMs have no private memory; a guest_memfd
        // slot is -EINVAL there.
        if self.vm.as_ref().is_some_and(|vm| vm.vm_type != 4) {
            let r = Err(kvm_error(C, libc::EINVAL));
            return self.log(C, None, None, r);
        }
        self.add_slots(C, ranges, true)
    }

    fn set_memory_attributes(
        &mut self,
        gpa: u64,
        len: u64,
        private: bool,
    ) -> Result<(), LaunchError> {
        const C: &str = "KVM_SET_MEMORY_ATTRIBUTES";
        let r = match self.vm.as_mut() {
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
            Some(vm) => vm.mem.set_attributes(vm.vm_type == 4, gpa, len, private),
        };
        let r = r.map_err(|e| crate::vmm::sev::attributes_error(gpa, len, private, e));
        self.log(C, Some((gpa, len)), None, r)
    }

    fn host_address(&self, gpa: u64) -> Result<u64, LaunchError> {
        self.vm
            .as_ref()
            .and_then(|vm| vm.mem.hva(gpa))
            .ok_or_else(|| {
                LaunchError::Step("find guest memory", format!("{gpa:#x} is not guest memory"))
            })
    }

    fn read_memory(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), LaunchError> {
        self.vm_mut("read guest memory")?.mem.read(gpa, buf)
    }
}

impl SevHardware for SevModel {
    fn vmsa_features(&mut self) -> Result<u64, CommandError> {
        let f = self.host.vmsa_features;
        self.log(
            "KVM_GET_DEVICE_ATTR(KVM_X86_SEV_VMSA_FEATURES)",
            None,
            None,
            Ok(f),
        )
    }

    fn snp_policy_bits(&mut self) -> Result<Option<u64>, CommandError> {
        let b = self.host.snp_policy_bits;
        self.log(
            "KVM_GET_DEVICE_ATTR(KVM_X86_SNP_POLICY_BITS)",
            None,
            None,
            Ok(b),
        )
    }

    fn snp_req_certs_supported(&mut self) -> Result<bool, CommandError> {
        let r = self.host.req_certs;
        self.log(
            "KVM_GET_DEVICE_ATTR(KVM_X86_SEV_SNP_REQ_CERTS)",
            None,
            None,
            Ok(r),
        )
    }

    fn snp_enable_req_certs(&mut self) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_SNP_ENABLE_REQ_CERTS";
        let supported = self.host.req_certs;
        let r = match self.vm.as_mut() {
            // [S] sev_mem_enc_ioctl: a command the kernel does not know is -EINVAL.
            _ if !supported => Err(einval(C, "this kernel has no such command (Linux 7.0+)")),
            // [P-certs]: SNP guests only (-ENOTTY otherwise), before any vCPU runs (the
            // model refuses it once one exists, inferred: none can have run yet).
            Some(vm) if vm.vm_type == 4 && vm.features.is_some() => {
                if vm.vcpus.is_empty() {
                    Ok(())
                } else {
                    Err(einval(C, "vCPUs exist"))
                }
            }
            _ => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, None, None, r)
    }

    fn sev_init2(&mut self, vmsa_features: u64, ghcb_version: u16) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_INIT2";
        let supported = self.host.vmsa_features;
        let r = match self.vm.as_mut() {
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
            Some(vm) => {
                // [S] sev_guest_init2, in order.
                if !(2..=4).contains(&vm.vm_type) {
                    Err(einval(C, "INIT2 is for VM types 2, 3 and 4"))
                } else if vm.features.is_some() {
                    Err(einval(C, "the VM is already initialized"))
                } else if !vm.vcpus.is_empty() {
                    Err(einval(
                        C,
                        "vCPUs exist (INIT2 comes before KVM_CREATE_VCPU)",
                    ))
                } else if vm.vm_type == 2 && vmsa_features != 0 {
                    Err(einval(C, "plain SEV has no VMSA features"))
                } else if vmsa_features & !supported != 0 {
                    Err(einval(
                        C,
                        format!(
                            "VMSA features {vmsa_features:#x} are not a subset of {supported:#x}"
                        ),
                    ))
                } else if ghcb_version > 2 || (vm.vm_type == 2 && ghcb_version != 0) {
                    Err(einval(C, format!("GHCB version {ghcb_version}")))
                } else {
                    let snp = if vm.vm_type == 4 { SNP_ACTIVE } else { 0 };
                    vm.features = Some(vmsa_features | snp);
                    Ok(())
                }
            }
        };
        self.log(C, None, None, r)
    }

    fn register_encrypted_region(&mut self, gpa: u64, len: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_MEMORY_ENCRYPT_REG_REGION";
        let r = match self.vm.as_mut() {
            // [S] sev_mem_enc_register_region: only for an initialized SEV guest.
            Some(vm) if vm.features.is_some() && matches!(vm.vm_type, 2 | 3) => {
                match vm.mem.hva(gpa) {
                    Some(hva)
                        if vm
                            .mem
                            .slot_of(gpa.saturating_add(len.saturating_sub(1)))
                            .is_some() =>
                    {
                        vm.encrypted_regions.push((hva, len));
                        Ok(())
                    }
                    // Pinning an unmapped range fails.
                    _ => Err(CommandError::kernel(C, libc::EFAULT)),
                }
            }
            // (inferred) SNP guests' private memory is guest_memfd, never pinned this way.
            Some(vm) if vm.vm_type == 4 => Err(einval(C, "SNP memory is guest_memfd")),
            _ => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, Some((gpa, len)), None, r)
    }

    fn snp_launch_start(&mut self, policy: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_SNP_LAUNCH_START";
        let host = self.host.clone();
        let r = match self.vm.as_mut() {
            // [S] snp_launch_start: not an (initialized) SNP guest is -ENOTTY; an SEV or
            // SEV-ES VM's SNP command too.
            Some(vm) if vm.vm_type == 4 && vm.features.is_some() => {
                let allowed = host.snp_policy_bits.unwrap_or(SNP_POLICY_BITS_BEFORE_6_19);
                let (major, minor) = (((policy >> 8) & 0xff) as u8, (policy & 0xff) as u8);
                if vm.snp.is_some() {
                    Err(einval(
                        C,
                        "the launch context exists (a second LAUNCH_START)",
                    ))
                } else if policy & !allowed != 0 {
                    Err(einval(
                        C,
                        format!("policy bits {:#x} are not allowed", policy & !allowed),
                    ))
                } else if policy & SNP_POLICY_RESERVED_ONE == 0 {
                    Err(einval(C, "policy bit 17 must be one"))
                } else if (major, minor) > host.snp_abi {
                    // [FW] snp_mcmd_launch_start: the policy's ABI above the firmware's.
                    Err(
                        CommandError::firmware(C, fw::POLICY_FAILURE).because(format!(
                            "the policy asks for ABI {major}.{minor}; the firmware is {}.{}",
                            host.snp_abi.0, host.snp_abi.1
                        )),
                    )
                } else if host.smt && policy & SNP_POLICY_SMT == 0 {
                    // [FW]: SMT disallowed by the policy while the host runs SMT.
                    Err(CommandError::firmware(C, fw::POLICY_FAILURE)
                        .because("the policy forbids SMT, which this host has enabled"))
                } else {
                    vm.snp = Some(Snp {
                        policy,
                        ld: [0; 48],
                        validated: BTreeSet::new(),
                        finished: false,
                        vmpck: random_keys(),
                        msg_seqno: 0,
                        host_data: [0; 32],
                        id_block: false,
                    });
                    Ok(())
                }
            }
            Some(vm) if matches!(vm.vm_type, 2 | 3) && vm.features.is_some() => {
                Err(CommandError::kernel(C, libc::ENOTTY).because("not an SNP guest"))
            }
            _ => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, None, None, r)
    }

    fn snp_launch_update(&mut self, u: &mut SnpUpdate) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_SNP_LAUNCH_UPDATE";
        let range = (u.gfn_start.saturating_mul(PAGE), u.len);
        let type_name = page_type_name(u.page_type);
        let fms = self.host.fms;
        let r = match self.vm.as_mut() {
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
            Some(vm) => snp_update(vm, u, fms),
        };
        self.log(C, Some(range), type_name, r)
    }

    fn snp_launch_finish(&mut self, f: &SnpFinish) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_SNP_LAUNCH_FINISH";
        let r = match self.vm.as_mut() {
            Some(vm) if vm.vm_type == 4 && vm.features.is_some() => snp_finish(vm, f),
            _ => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, None, None, r)
    }

    fn launch_start(&mut self, policy: u32) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_LAUNCH_START";
        let r = match self.vm.as_mut() {
            // [S] sev_mem_enc_ioctl: an SNP VM issuing a command below 100 is -EPERM.
            Some(vm) if vm.vm_type == 4 => Err(CommandError::kernel(C, libc::EPERM)),
            Some(vm) if matches!(vm.vm_type, 2 | 3) && vm.features.is_some() => {
                if vm.sev.is_some() {
                    // (inferred) the guest's ASID is already bound.
                    Err(CommandError::firmware(C, fw::INVALID_GUEST_STATE)
                        .because("a second LAUNCH_START"))
                } else if vm.vm_type == 2 && policy & super::SEV_POLICY_ES != 0 {
                    // [FW] LAUNCH_START: the ES policy bit on a guest without SEV-ES
                    // (inferred: KVM gives a type-2 VM a non-ES ASID).
                    Err(CommandError::firmware(C, fw::UNSUPPORTED)
                        .because("policy bit 2 (ES) on a plain SEV VM"))
                } else {
                    vm.sev = Some(SevGuest {
                        policy,
                        state: SevState::Update,
                        ld: Sha256::new(),
                        digest: None,
                    });
                    Ok(())
                }
            }
            _ => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, None, None, r)
    }

    fn launch_update_data(&mut self, uaddr: u64, len: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_LAUNCH_UPDATE_DATA";
        let gpa = self
            .vm
            .as_ref()
            .and_then(|vm| vm.mem.slot_of_hva(uaddr).map(|s| s.gpa + (uaddr - s.hva)));
        let r = match self.vm.as_mut() {
            Some(vm) if vm.vm_type == 4 => Err(CommandError::kernel(C, libc::EPERM)),
            Some(vm) => sev_update_data(vm, uaddr, len),
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, Some((gpa.unwrap_or(0), len)), None, r)
    }

    fn launch_update_vmsa(&mut self) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_LAUNCH_UPDATE_VMSA";
        let r = match self.vm.as_mut() {
            Some(vm) if vm.vm_type == 4 => Err(CommandError::kernel(C, libc::EPERM)),
            // [S] sev_launch_update_vmsa: not an SEV-ES guest is -ENOTTY.
            Some(vm) if vm.vm_type == 3 && vm.features.is_some() => sev_update_vmsa(vm),
            _ => Err(CommandError::kernel(C, libc::ENOTTY)),
        };
        self.log(C, None, None, r)
    }

    fn launch_measure(&mut self) -> Result<[u8; 48], CommandError> {
        const C: &str = "KVM_SEV_LAUNCH_MEASURE";
        let api = self.host.sev_api;
        let r = match self.vm.as_mut().and_then(|vm| vm.sev.as_mut()) {
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
            Some(g) if g.state != SevState::Update => {
                Err(CommandError::firmware(C, fw::INVALID_GUEST_STATE))
            }
            Some(g) => {
                let ld: [u8; 32] = g.ld.clone().finalize().into();
                g.digest = Some(ld);
                g.state = SevState::Secret;
                // [FW] MEASURE = HMAC-SHA-256(TIK, 0x04 || API major || minor || build ||
                // policy || LD || MNONCE). The model has no session, so no TIK the guest
                // owner knows: it uses an all-zero TIK and MNONCE (model-only values).
                let mnonce = [0u8; 16];
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0u8; 16]);
                let mut ctx = ring::hmac::Context::with_key(&key);
                ctx.update(&[0x04, api.0, api.1, api.2]);
                ctx.update(&g.policy.to_le_bytes());
                ctx.update(&ld);
                ctx.update(&mnonce);
                let mut out = [0u8; 48];
                out[..32].copy_from_slice(ctx.sign().as_ref());
                out[32..].copy_from_slice(&mnonce);
                Ok(out)
            }
        };
        self.log(C, None, None, r)
    }

    fn launch_finish(&mut self) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_LAUNCH_FINISH";
        let r = match self.vm.as_mut().and_then(|vm| vm.sev.as_mut()) {
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
            // [FW] LAUNCH_FINISH: the guest must be in LSECRET, so MEASURE is mandatory.
            Some(g) if g.state != SevState::Secret => {
                Err(CommandError::firmware(C, fw::INVALID_GUEST_STATE)
                    .because("LAUNCH_MEASURE has not been issued"))
            }
            Some(g) => {
                g.state = SevState::Running;
                Ok(())
            }
        };
        self.log(C, None, None, r)
    }
}

fn page_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "normal",
        2 => "vmsa",
        3 => "zero",
        4 => "unmeasured",
        5 => "secrets",
        6 => "cpuid",
        _ => "invalid",
    })
}

/// SHA-384 of PAGE_INFO ([FW] `snp_mcmd_launch_update`): the digest so far, the
/// contents' digest, length 0x70, page type, IMI 0, VMPL1-3 permissions 0, the GPA.
fn extend(ld: &mut [u8; 48], contents: &[u8; 48], page_type: u8, gpa: u64) {
    let mut info = [0u8; 0x70];
    info[..48].copy_from_slice(ld);
    info[0x30..0x60].copy_from_slice(contents);
    info[0x60..0x62].copy_from_slice(&0x70u16.to_le_bytes());
    info[0x62] = page_type;
    info[0x68..].copy_from_slice(&gpa.to_le_bytes());
    *ld = Sha384::digest(info).into();
}

fn snp_update(vm: &mut Vm, u: &mut SnpUpdate, fms: u32) -> Result<(), CommandError> {
    const C: &str = "KVM_SEV_SNP_LAUNCH_UPDATE";
    // [S] snp_launch_update, in order.
    let Some(snp) = vm.snp.as_ref() else {
        return Err(einval(C, "no SNP launch context (LAUNCH_START first)"));
    };
    if !u.len.is_multiple_of(PAGE) {
        return Err(einval(C, "the length is not a multiple of 4 KiB"));
    }
    if !matches!(u.page_type, 1 | 3..=6) {
        return Err(einval(
            C,
            format!("page type {} (VMSAs come from LAUNCH_FINISH)", u.page_type),
        ));
    }
    // [S] 7.0+: a non-ZERO source must be a page-aligned, non-null address.
    if u.page_type != 3 && (u.uaddr == 0 || !u.uaddr.is_multiple_of(PAGE)) {
        return Err(einval(C, "the source address is null or not page-aligned"));
    }
    if u.len == 0 {
        // [G] kvm_gmem_populate WARNs on an empty range.
        return Err(CommandError::kernel(C, libc::EIO).because("an empty range"));
    }
    if snp.finished {
        // [FW] the guest is not in the LAUNCH state after FINISH (inferred from [S]+[FW]).
        return Err(
            CommandError::firmware(C, fw::INVALID_GUEST_STATE).because("the launch is finished")
        );
    }
    let gpa = u.gfn_start.saturating_mul(PAGE);
    let Some(slot) = vm.mem.slot_of(gpa).filter(|s| s.gmem) else {
        return Err(einval(
            C,
            format!("{gpa:#x} is not in a guest_memfd memory slot"),
        ));
    };
    // [S]/[G]: the range is clamped to the end of that slot.
    let slot_end = (slot.gpa + slot.len) / PAGE;
    let pages = (u.len / PAGE).min(slot_end - u.gfn_start);
    let mut done = 0u64;
    let mut failure: Option<CommandError> = None;
    while done < pages {
        let gfn = u.gfn_start + done;
        let src = u.uaddr.saturating_add(done * PAGE);
        // [G] kvm_gmem_populate: per page, the attribute must be PRIVATE; a page
        // already populated is -EEXIST.
        if !vm.mem.is_private(gfn) {
            failure = Some(einval(C, format!("{:#x} is not private", gfn * PAGE)));
            break;
        }
        if vm.snp.as_ref().is_some_and(|s| s.validated.contains(&gfn)) {
            failure = Some(
                CommandError::kernel(C, libc::EEXIST)
                    .because(format!("{:#x} was already launched", gfn * PAGE)),
            );
            break;
        }
        let contents = if u.page_type == 3 {
            [0u8; 4096]
        } else {
            match vm.mem.source_page(src) {
                Some(p) => p,
                None => {
                    failure = Some(
                        CommandError::kernel(C, libc::EFAULT).because("the source is not mapped"),
                    );
                    break;
                }
            }
        };
        if u.page_type == 6
            && let Err(corrected) = check_cpuid_page(&contents, fms)
        {
            // [FW] the firmware rewrites the page with what it accepts; [S] KVM copies it
            // back over the source page.
            if let Ok(page) = <[u8; 4096]>::try_from(&corrected[..]) {
                vm.mem.put_page(src, &page);
            }
            failure = Some(CommandError::firmware(C, fw::INVALID_PARAM));
            break;
        }
        let digest: [u8; 48] = if u.page_type == 1 {
            Sha384::digest(contents).into()
        } else {
            [0u8; 48]
        };
        if let Some(s) = vm.snp.as_mut() {
            extend(&mut s.ld, &digest, u.page_type, gfn * PAGE);
            s.validated.insert(gfn);
        }
        done += 1;
    }
    if done == 0 {
        // [S] a failure on the first page: -EIO with the firmware status (0 when KVM
        // itself refused the page).
        let e = failure.unwrap_or_else(|| einval(C, "nothing to do"));
        let why = e.why.clone().unwrap_or_default();
        return Err(CommandError {
            command: C,
            errno: libc::EIO,
            fw_error: e.fw_error,
            tdx_status: 0,
            why: Some(why),
        });
    }
    // Partial progress: success, and the struct written back.
    u.gfn_start += done;
    u.len -= done * PAGE;
    if u.page_type != 3 {
        u.uaddr = u.uaddr.saturating_add(done * PAGE);
    }
    Ok(())
}

/// [FW] `sanitize_cpuid_list`/`cpuid_lookup.c`, the rules that need no per-processor
/// mask: `Err` holds the page as the firmware would rewrite it.
fn check_cpuid_page(page: &[u8; 4096], fms: u32) -> Result<(), Vec<u8>> {
    let Ok(mut table) = CpuidPage::parse(page) else {
        return Err(page.to_vec());
    };
    let mut failed = table.reserved != [0; 12];
    table.reserved = [0; 12];
    let fms_le = |a: u32, b: u32| {
        let fam = |x: u32| ((x >> 8) & 0xf) + ((x >> 20) & 0xff);
        let model = |x: u32| ((x >> 4) & 0xf) | ((x >> 12) & 0xf0);
        (fam(b), model(b), b & 0xf) <= (fam(a), model(a), a & 0xf)
    };
    let mut seen = BTreeSet::new();
    for f in &mut table.functions {
        if f.reserved != 0 {
            failed = true;
            f.reserved = 0;
        }
        if !seen.insert((f.eax_in, f.ecx_in)) {
            failed = true; // (inferred) one entry per leaf and subleaf
        }
        match (f.eax_in, f.ecx_in) {
            (1, 0) => {
                if !fms_le(fms, f.eax) {
                    f.eax = fms;
                    failed = true;
                }
                if (f.ebx >> 8) & 0xff != 8 || f.ebx & 0xff != 0 {
                    f.ebx = (f.ebx & !0xffff) | (8 << 8);
                    failed = true;
                }
            }
            (0x8000_0001, 0) if !fms_le(fms, f.eax) => {
                f.eax = fms;
                failed = true;
            }
            (0xd, 0) => {
                if f.eax & 3 != 3 {
                    f.eax |= 3;
                    failed = true;
                }
                let want = xsave_size(f.xcr0_in);
                if f.ebx != want {
                    f.ebx = want;
                    failed = true;
                }
            }
            (0xd, 1) => {
                let want = xsave_compacted(f.xcr0_in, f.xss_in);
                if f.ebx != want {
                    f.ebx = want;
                    failed = true;
                }
            }
            _ => {}
        }
    }
    if failed { Err(table.to_page()) } else { Ok(()) }
}

/// [FW] FN0000000D_X00_CUSTOM: the XSAVE area size for `xcr0`.
fn xsave_size(xcr0: u64) -> u32 {
    const AVX: u64 = 1 << 2;
    const KREGS: u64 = 1 << 5;
    const ZMMHI: u64 = 1 << 6;
    const HIZMM: u64 = 1 << 7;
    const MPK: u64 = 1 << 9;
    if xcr0 & MPK != 0 {
        0x988
    } else if xcr0 & HIZMM != 0 {
        0x980
    } else if xcr0 & ZMMHI != 0 {
        0x580
    } else if xcr0 & KREGS != 0 {
        0x380
    } else if xcr0 & AVX != 0 {
        0x340
    } else {
        0x240
    }
}

/// [FW] FN0000000D_X01_CUSTOM: the compacted size for `xcr0` and `xss`.
fn xsave_compacted(xcr0: u64, xss: u64) -> u32 {
    let mut n = 0x240;
    for (bit, add) in [(9, 0x8), (7, 0x400), (6, 0x200), (5, 0x40), (2, 0x100)] {
        if xcr0 & (1 << bit) != 0 {
            n += add;
        }
    }
    if xss & (1 << 11) != 0 {
        n += 0x10; // CET_U
    }
    if xss & (1 << 12) != 0 {
        n += 0x18; // CET_S
    }
    n
}

fn snp_finish(vm: &mut Vm, f: &SnpFinish) -> Result<(), CommandError> {
    const C: &str = "KVM_SEV_SNP_LAUNCH_FINISH";
    // [S] snp_launch_finish: no context -EINVAL; MODELS 1.6: a second FINISH -EINVAL.
    let Some(snp) = vm.snp.as_ref() else {
        return Err(einval(C, "no SNP launch context"));
    };
    if snp.finished {
        return Err(einval(C, "the launch is finished"));
    }
    // [S] per vCPU in creation order: sync the VMSA (DR7 must be 0x400), then the
    // firmware measures it as a VMSA page at 0xFFFFFFFFF000.
    let mut digests = Vec::new();
    for v in &vm.vcpus {
        if v.save.dr7 != 0x400 {
            return Err(einval(
                C,
                format!("vCPU {} has DR7 {:#x}", v.id, v.save.dr7),
            ));
        }
        let page = vm.vmsa(v);
        digests.push(<[u8; 48]>::from(Sha384::digest(&page[..])));
    }
    let Some(snp) = vm.snp.as_mut() else {
        return Err(einval(C, "no SNP launch context"));
    };
    for d in &digests {
        extend(&mut snp.ld, d, 2, vmsa::VMSA_GPA);
    }
    for v in &mut vm.vcpus {
        v.protected = true;
    }
    if let Some(id) = &f.id_block {
        check_id_block(id, &snp.ld, snp.policy)
            .map_err(|(code, why)| CommandError::firmware(C, code).because(why))?;
    }
    snp.finished = true;
    snp.host_data = f.host_data;
    snp.id_block = f.id_block.is_some();
    Ok(())
}

/// Four VMPCKs, random as the firmware's.
fn random_keys() -> [[u8; 32]; 4] {
    let mut keys = [[0u8; 32]; 4];
    let rng = ring::rand::SystemRandom::new();
    for k in &mut keys {
        if ring::rand::SecureRandom::fill(&rng, k).is_err() {
            tracing::warn!("no random bytes for the model's VMPCKs");
        }
    }
    keys
}

/// The model's signing key: the SNP test PKI's VCEK (tests/fixtures/snp-test-pki, test
/// keys only, trusted by nothing unless named with `--root`).
pub mod test_vcek {
    use super::Snp;
    use cvm_attest::snp::cert_table::{self, Kind};
    use cvm_attest::snp::guest_msg::ReportRequest;

    const KEY: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/snp-test-pki/test-vcek-key.pk8"
    ));
    /// The VCEK certificate.
    pub const VCEK: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/snp-test-pki/test-vcek.der"
    ));
    /// The ASK certificate.
    pub const ASK: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/snp-test-pki/test-ask.der"
    ));
    /// The ARK certificate (the root `--root` must name).
    pub const ARK: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/snp-test-pki/test-ark.der"
    ));

    /// The certificate table the model's host serves with its reports.
    pub fn cert_table() -> Result<Vec<u8>, String> {
        cert_table::build(&[(Kind::Vcek, VCEK), (Kind::Ask, ASK), (Kind::Ark, ARK)])
            .map_err(|e| e.to_string())
    }

    /// A version 3 report of `snp` for `req`, as a Milan AMD-SP with the test VCEK's
    /// TCB and hwID signs it (SEV-SNP ABI "ATTESTATION_REPORT"; R and S little-endian).
    pub(super) fn report(snp: &Snp, req: &ReportRequest) -> Result<Vec<u8>, String> {
        use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
        let cert = cvm_attest::x509::Cert::from_der(VCEK, "the model's VCEK")
            .map_err(|e| e.to_string())?;
        let ext = cvm_attest::snp::certs::AmdExtensions::read(&cert)?;
        let spl = |v: Option<u64>| v.and_then(|v| u8::try_from(v).ok()).unwrap_or_default();
        // Milan's TCB_VERSION: bootloader, TEE, four reserved, SNP, microcode.
        let tcb = [
            spl(ext.bl),
            spl(ext.tee),
            0,
            0,
            0,
            0,
            spl(ext.snp),
            spl(ext.ucode),
        ];
        let mut r = vec![0u8; cvm_attest::snp::report::REPORT_LEN];
        let put = |r: &mut Vec<u8>, at: usize, b: &[u8]| {
            if let Some(d) = r.get_mut(at..at + b.len()) {
                d.copy_from_slice(b);
            }
        };
        let mut put = |at: usize, b: &[u8]| put(&mut r, at, b);
        put(0, &3u32.to_le_bytes()); // VERSION
        put(8, &snp.policy.to_le_bytes());
        put(0x30, &req.vmpl.to_le_bytes());
        put(0x34, &1u32.to_le_bytes()); // SIGNATURE_ALGO: ECDSA P-384 with SHA-384
        for at in [0x38, 0x180, 0x1e0, 0x1f0] {
            put(at, &tcb);
        }
        put(0x48, &0u32.to_le_bytes()); // SIGNING_KEY 0: the VCEK
        put(0x50, &req.report_data);
        put(0x90, &snp.ld);
        put(0xc0, &snp.host_data);
        put(0x188, &[0x19, 0x01, 0x01]); // Milan B0: family 19h, model 01h, stepping 1
        put(0x1a0, ext.hw_id.as_deref().unwrap_or_default());
        put(0x1e8, &[0, 55, 1]); // firmware 1.55
        put(0x1ec, &[0, 55, 1]);
        let put = |r: &mut Vec<u8>, at: usize, b: &[u8]| {
            if let Some(d) = r.get_mut(at..at + b.len()) {
                d.copy_from_slice(b);
            }
        };
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, KEY, &rng)
            .map_err(|e| format!("the model's VCEK key: {e}"))?;
        let signed = r
            .get(..cvm_attest::snp::report::SIGNED_LEN)
            .ok_or("a short report")?;
        let sig = pair
            .sign(&rng, signed)
            .map_err(|e| format!("signing the report: {e}"))?;
        let (big_r, big_s) = sig.as_ref().split_at(48);
        for (at, part) in [(0x2a0, big_r), (0x2e8, big_s)] {
            let le: Vec<u8> = part.iter().rev().copied().collect();
            put(&mut r, at, &le);
        }
        Ok(r)
    }
}

/// [FW] SNP_LAUNCH_FINISH's ID block checks: the block's digest and policy must be the
/// launch's, both keys ECDSA P-384 with SHA-384, and the signatures must verify.
fn check_id_block(id: &IdBlockInput, ld: &[u8; 48], policy: u64) -> Result<(), (u32, String)> {
    let block = &id.block;
    let u32_at = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    if block[..48] != ld[..] {
        return Err((
            fw::BAD_MEASUREMENT,
            "the ID block's digest is not the launch digest".into(),
        ));
    }
    let block_policy = block
        .get(0x58..0x60)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    if block_policy != policy {
        return Err((
            fw::POLICY_FAILURE,
            format!("the ID block's policy {block_policy:#x} is not the launch's {policy:#x}"),
        ));
    }
    let auth = &id.auth[..];
    if u32_at(auth, 0) != 1 || (id.author_key && u32_at(auth, 4) != 1) {
        return Err((
            fw::INVALID_PARAM,
            "a key algorithm other than ECDSA P-384 with SHA-384".into(),
        ));
    }
    let key = |at: usize| auth.get(at..at + 0x404);
    let sig = |at: usize| auth.get(at..at + 0x200);
    let verify = |key: Option<&[u8]>, sig: Option<&[u8]>, msg: &[u8]| -> bool {
        let (Some(key), Some(sig)) = (key, sig) else {
            return false;
        };
        if u32_at(key, 0) != 2 {
            return false;
        }
        let be = |b: &[u8]| -> Vec<u8> { b.iter().take(48).rev().copied().collect() };
        let mut point = vec![0x04];
        point.extend(be(&key[4..]));
        point.extend(be(&key[4 + 0x48..]));
        let mut rs = be(sig);
        rs.extend(be(&sig[0x48..]));
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, point)
            .verify(msg, &rs)
            .is_ok()
    };
    if !verify(key(0x240), sig(0x40), block) {
        return Err((
            fw::BAD_SIGNATURE,
            "the ID block's signature does not verify with the ID key".into(),
        ));
    }
    if id.author_key && !verify(key(0x880), sig(0x680), key(0x240).unwrap_or_default()) {
        return Err((
            fw::BAD_SIGNATURE,
            "the ID key's signature does not verify with the author key".into(),
        ));
    }
    Ok(())
}

fn sev_update_data(vm: &mut Vm, uaddr: u64, len: u64) -> Result<(), CommandError> {
    const C: &str = "KVM_SEV_LAUNCH_UPDATE_DATA";
    // [S] sev_launch_update_data: empty or wrapping -EINVAL; pinning needs a mapping.
    if len == 0 || uaddr.checked_add(len).is_none() {
        return Err(einval(C, "an empty or wrapping range"));
    }
    let Some(g) = vm.sev.as_ref() else {
        return Err(CommandError::kernel(C, libc::ENOTTY));
    };
    if g.state != SevState::Update {
        return Err(CommandError::firmware(C, fw::INVALID_GUEST_STATE));
    }
    // [FW] LAUNCH_UPDATE_DATA: address and length 16-byte aligned.
    if !uaddr.is_multiple_of(16) {
        return Err(CommandError::firmware(C, fw::INVALID_ADDRESS));
    }
    if !len.is_multiple_of(16) {
        return Err(CommandError::firmware(C, fw::INVALID_LEN));
    }
    let end = uaddr + len - 1;
    if vm.mem.slot_of_hva(uaddr).is_none() || vm.mem.slot_of_hva(end).is_none() {
        return Err(CommandError::kernel(C, libc::EFAULT).because("the range is not mapped"));
    }
    let bytes = vm.mem.host_bytes(uaddr, len);
    if let Some(g) = vm.sev.as_mut() {
        g.ld.update(&bytes);
    }
    Ok(())
}

fn sev_update_vmsa(vm: &mut Vm) -> Result<(), CommandError> {
    const C: &str = "KVM_SEV_LAUNCH_UPDATE_VMSA";
    let Some(g) = vm.sev.as_ref() else {
        return Err(CommandError::kernel(C, libc::ENOTTY));
    };
    if g.state != SevState::Update {
        return Err(CommandError::firmware(C, fw::INVALID_GUEST_STATE));
    }
    // [FW] LAUNCH_UPDATE_VMSA: a policy without ES is UNSUPPORTED.
    if g.policy & super::SEV_POLICY_ES == 0 {
        return Err(
            CommandError::firmware(C, fw::UNSUPPORTED).because("the policy lacks the ES bit")
        );
    }
    let mut pages = Vec::new();
    for v in &vm.vcpus {
        if v.save.dr7 != 0x400 {
            return Err(einval(
                C,
                format!("vCPU {} has DR7 {:#x}", v.id, v.save.dr7),
            ));
        }
        pages.push(vm.vmsa(v));
    }
    if let Some(g) = vm.sev.as_mut() {
        for p in &pages {
            g.ld.update(&p[..]);
        }
    }
    for v in &mut vm.vcpus {
        v.protected = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! One test per rejection the model implements (../shared/MODELS.md section 6.1), each
    //! asserting the errno and firmware status the real KVM and AMD-SP give.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "tests"
    )]
    use super::*;
    use cvm_firmware::sev::id_block::{self, IdBlock, SigningKey};
    use libc::{EINVAL, EIO, ENOTTY, EPERM};
    use ring::rand::SystemRandom;

    const MIB: u64 = 1 << 20;

    fn code<T: std::fmt::Debug>(r: Result<T, CommandError>) -> (i32, u32) {
        let e = r.expect_err("the model must refuse");
        (e.errno, e.fw_error)
    }

    fn attr_code(r: Result<(), LaunchError>) -> (i32, u32) {
        match r {
            Err(LaunchError::Command { source, .. }) => (source.errno, source.fw_error),
            other => panic!("the model must refuse: {other:?}"),
        }
    }

    /// An SNP VM with 1 MiB of guest_memfd memory at 0, all private.
    fn snp() -> SevModel {
        let mut m = SevModel::default();
        m.create_vm(VmType(4)).unwrap();
        m.sev_init2(0, 0).unwrap();
        m.add_private_memory(&[(0, MIB)]).unwrap();
        m.set_memory_attributes(0, MIB, true).unwrap();
        m
    }

    fn started() -> SevModel {
        let mut m = snp();
        m.snp_launch_start(0x3_0000).unwrap();
        m
    }

    fn update(
        m: &mut SevModel,
        gpa: u64,
        len: u64,
        page_type: u8,
    ) -> Result<SnpUpdate, CommandError> {
        let mut u = SnpUpdate {
            gfn_start: gpa / PAGE,
            uaddr: m.host_address(gpa).unwrap(),
            len,
            page_type,
        };
        m.snp_launch_update(&mut u).map(|()| u)
    }

    #[test]
    fn vm_types_and_init2() {
        let mut m = SevModel::new(ModelHost {
            vm_types: 1,
            ..ModelHost::default()
        });
        let e = m.create_vm(VmType(4)).unwrap_err();
        assert!(
            matches!(&e, LaunchError::Kvm { source, .. } if source.errno() == EINVAL),
            "{e}"
        );

        let mut m = SevModel::default();
        m.create_vm(VmType(4)).unwrap();
        assert_eq!(
            code(m.sev_init2(1 << 1, 0)),
            (EINVAL, 0),
            "features not offered"
        );
        assert_eq!(code(m.sev_init2(0, 3)), (EINVAL, 0), "GHCB version 3");
        m.create_vcpu(0).unwrap();
        assert_eq!(code(m.sev_init2(0, 0)), (EINVAL, 0), "after a vCPU");

        let mut m = SevModel::default();
        m.create_vm(VmType(4)).unwrap();
        m.sev_init2(1 << 5, 0).unwrap();
        assert_eq!(code(m.sev_init2(0, 0)), (EINVAL, 0), "twice");

        let mut m = SevModel::default();
        m.create_vm(VmType(2)).unwrap();
        assert_eq!(
            code(m.sev_init2(1 << 5, 0)),
            (EINVAL, 0),
            "SEV has no features"
        );
        assert_eq!(code(m.sev_init2(0, 2)), (EINVAL, 0), "SEV has no GHCB");
        let mut m = SevModel::default();
        m.create_vm(VmType(0)).unwrap();
        assert_eq!(code(m.sev_init2(0, 0)), (EINVAL, 0), "a default VM");
    }

    #[test]
    fn launch_start_policy() {
        let mut m = snp();
        assert_eq!(
            code(m.snp_launch_start(0x1_0000)),
            (EINVAL, 0),
            "bit 17 clear"
        );
        assert_eq!(
            code(m.snp_launch_start(0x3_0000 | 1 << 18)),
            (EINVAL, 0),
            "MIGRATE_MA"
        );
        assert_eq!(
            code(m.snp_launch_start(0x3_0000 | 1 << 21)),
            (EINVAL, 0),
            "bit 21 before 6.19"
        );
        assert_eq!(
            code(m.snp_launch_start(0x2_0000)),
            (EIO, fw::POLICY_FAILURE),
            "SMT forbidden"
        );
        assert_eq!(
            code(m.snp_launch_start(0x3_0200)),
            (EIO, fw::POLICY_FAILURE),
            "ABI 2.0"
        );
        m.snp_launch_start(0x3_0000 | SNP_POLICY_RESERVED_ONE)
            .unwrap();
        assert_eq!(code(m.snp_launch_start(0x3_0000)), (EINVAL, 0), "twice");

        let mut m = SevModel::new(ModelHost {
            snp_policy_bits: Some(SNP_POLICY_BITS_BEFORE_6_19 | 1 << 21),
            ..ModelHost::default()
        });
        m.create_vm(VmType(4)).unwrap();
        m.sev_init2(0, 0).unwrap();
        m.snp_launch_start(0x3_0000 | 1 << 21).unwrap();

        let mut m = SevModel::default();
        m.create_vm(VmType(3)).unwrap();
        m.sev_init2(0, 0).unwrap();
        assert_eq!(code(m.snp_launch_start(0x3_0000)), (ENOTTY, 0), "SEV-ES VM");
        assert_eq!(
            code(m.snp_launch_finish(&SnpFinish::default())),
            (ENOTTY, 0)
        );
        let mut u = SnpUpdate {
            gfn_start: 0,
            uaddr: PAGE,
            len: PAGE,
            page_type: 1,
        };
        assert_eq!(code(m.snp_launch_update(&mut u)), (EINVAL, 0));
        let mut m = snp();
        assert_eq!(
            code(m.launch_start(0x1)),
            (EPERM, 0),
            "an SEV command on SNP"
        );
    }

    #[test]
    fn launch_update_arguments() {
        let mut m = snp();
        assert_eq!(
            code(update(&mut m, 0, PAGE, 1)),
            (EINVAL, 0),
            "before START"
        );
        let mut m = started();
        assert_eq!(code(update(&mut m, 0, 100, 1)), (EINVAL, 0), "partial page");
        for t in [0, 2, 7] {
            assert_eq!(code(update(&mut m, 0, PAGE, t)), (EINVAL, 0), "type {t}");
        }
        let mut u = SnpUpdate {
            gfn_start: 0,
            uaddr: m.host_address(0).unwrap() + 8,
            len: PAGE,
            page_type: 1,
        };
        assert_eq!(
            code(m.snp_launch_update(&mut u)),
            (EINVAL, 0),
            "unaligned source"
        );
        assert_eq!(code(update(&mut m, 0, 0, 1)), (EIO, 0), "empty");
        m.add_memory(&[(2 * MIB, MIB)]).unwrap();
        assert_eq!(
            code(update(&mut m, 2 * MIB, PAGE, 1)),
            (EINVAL, 0),
            "not guest_memfd"
        );
    }

    #[test]
    fn launch_update_pages() {
        let mut m = started();
        m.set_memory_attributes(0x5000, PAGE, false).unwrap();
        assert_eq!(
            code(update(&mut m, 0x5000, PAGE, 1)),
            (EIO, 0),
            "first page shared"
        );
        update(&mut m, 0x1000, PAGE, 1).unwrap();
        assert_eq!(
            code(update(&mut m, 0x1000, PAGE, 3)),
            (EIO, 0),
            "updated twice"
        );
        // A bad page later in the range: partial progress, written back; then the failure.
        let u = update(&mut m, 0x3000, 3 * PAGE, 1).unwrap();
        assert_eq!((u.gfn_start, u.len), (5, PAGE));
        assert_eq!(u.uaddr, m.host_address(0x5000).unwrap());
        // A range past the end of the slot stops there.
        let u = update(&mut m, MIB - PAGE, 2 * PAGE, 3).unwrap();
        assert_eq!((u.gfn_start, u.len), (MIB / PAGE, PAGE));
        m.snp_launch_finish(&SnpFinish::default()).unwrap();
        assert_eq!(
            code(update(&mut m, 0x8000, PAGE, 1)),
            (EIO, fw::INVALID_GUEST_STATE),
            "after FINISH"
        );
        assert_eq!(
            code(m.snp_launch_finish(&SnpFinish::default())),
            (EINVAL, 0),
            "FINISH twice"
        );
        let e = m.create_vcpu(1).unwrap_err();
        assert!(e.to_string().contains("after SNP_LAUNCH_FINISH"), "{e}");
        let mut m = snp();
        assert_eq!(
            code(m.snp_launch_finish(&SnpFinish::default())),
            (EINVAL, 0),
            "FINISH before START"
        );
    }

    #[test]
    fn cpuid_page_rejected_and_corrected() {
        let mut m = started();
        let mut page = CpuidPage::from_kvm(&ModelHost::default().cpuid).unwrap();
        page.functions[1].ebx = 0x0000_1000; // a 128-byte CLFLUSH line
        m.write_memory(0x2000, &page.to_page()).unwrap();
        assert_eq!(
            code(update(&mut m, 0x2000, PAGE, 6)),
            (EIO, fw::INVALID_PARAM)
        );
        let mut back = vec![0u8; 4096];
        m.read_memory(0x2000, &mut back).unwrap();
        let fixed = CpuidPage::parse(&back).unwrap();
        assert_eq!(
            fixed.functions[1].ebx, 0x800,
            "the firmware's value written back"
        );
        // The page the backend builds from the host's CPUID passes.
        let good = CpuidPage::from_kvm(&ModelHost::default().cpuid).unwrap();
        m.write_memory(0x3000, &good.to_page()).unwrap();
        update(&mut m, 0x3000, PAGE, 6).unwrap();
        // Too many entries, a reserved field, a family newer than the processor.
        let mut bad = good.to_page();
        bad[0] = 65;
        m.write_memory(0x4000, &bad).unwrap();
        assert_eq!(
            code(update(&mut m, 0x4000, PAGE, 6)),
            (EIO, fw::INVALID_PARAM)
        );
        let mut newer = good.clone();
        newer.functions[1].eax = 0x00b0_0f00;
        m.write_memory(0x5000, &newer.to_page()).unwrap();
        assert_eq!(
            code(update(&mut m, 0x5000, PAGE, 6)),
            (EIO, fw::INVALID_PARAM)
        );
        let mut xsave = good;
        xsave.functions[2].ebx = 0x340;
        m.write_memory(0x6000, &xsave.to_page()).unwrap();
        assert_eq!(
            code(update(&mut m, 0x6000, PAGE, 6)),
            (EIO, fw::INVALID_PARAM)
        );
    }

    #[test]
    fn guest_requests_follow_the_firmwares_rules() {
        use cvm_attest::snp::guest_msg::{
            self, MSG_REPORT_REQ, MSG_REPORT_RSP, Message, ReportRequest,
        };
        let mut m = started();
        m.write_memory(0, &[0x90; 4096]).unwrap();
        update(&mut m, 0, PAGE, 1).unwrap();
        m.create_vcpu(0).unwrap();
        assert!(m.secrets_page().is_none(), "before FINISH");
        m.snp_launch_finish(&SnpFinish {
            id_block: None,
            host_data: [7; 32],
        })
        .unwrap();
        let secrets = m.secrets_page().unwrap();
        assert_eq!(&secrets[..4], &3u32.to_le_bytes());
        let vmpck = |i: usize| -> [u8; 32] {
            secrets[0x20 + 0x20 * i..0x40 + 0x20 * i]
                .try_into()
                .unwrap()
        };
        assert_ne!(vmpck(0), vmpck(1));
        let request = |seqno, key: usize, vmpl, key_sel| {
            let msg = Message {
                seqno,
                msg_type: MSG_REPORT_REQ,
                msg_version: 1,
                vmpck: u8::try_from(key).unwrap(),
                payload: ReportRequest {
                    report_data: [0x33; 64],
                    vmpl,
                    key_sel,
                }
                .encode(),
            };
            guest_msg::seal(&vmpck(key), &msg).unwrap()
        };
        let fw_error = |r: Result<Vec<u8>, CommandError>| r.unwrap_err().fw_error;
        // The first request carries 1; the response 2.
        assert_eq!(
            fw_error(m.guest_request(&request(2, 0, 0, 0))),
            fw::AEAD_OFLOW
        );
        let answer = m.guest_request(&request(1, 0, 0, 0)).unwrap();
        let opened = guest_msg::open(&vmpck(0), &answer).unwrap();
        assert_eq!((opened.seqno, opened.msg_type), (2, MSG_REPORT_RSP));
        let report = guest_msg::parse_report_response(&opened.payload).unwrap();
        let parsed = cvm_attest::snp::report::Report::parse(report).unwrap();
        assert_eq!(
            parsed.fields.measurement.to_vec(),
            m.launch_digest().unwrap()
        );
        assert_eq!(parsed.fields.report_data, [0x33; 64]);
        assert_eq!(parsed.fields.host_data, [7; 32]);
        assert_eq!(parsed.fields.policy.get(), 0x3_0000);
        // A replay is refused; the next request carries 3.
        assert_eq!(
            fw_error(m.guest_request(&request(1, 0, 0, 0))),
            fw::AEAD_OFLOW
        );
        // The wrong key for the VMPCK the header names: the tag fails.
        let mut forged = request(3, 1, 1, 0);
        forged[0x3c] = 0;
        assert_eq!(fw_error(m.guest_request(&forged)), fw::AEAD_OFLOW);
        // VMPCK1 may not ask for VMPL 0; no VLEK is installed: status in the response.
        let status = |m: &mut SevModel, req: Vec<u8>, key: usize| {
            let a = m.guest_request(&req).unwrap();
            let p = guest_msg::open(&vmpck(key), &a).unwrap().payload;
            u32::from_le_bytes(p[..4].try_into().unwrap())
        };
        assert_eq!(status(&mut m, request(3, 1, 0, 0), 1), fw::INVALID_PARAM);
        assert_eq!(status(&mut m, request(5, 0, 0, 2), 0), 0x27);
    }

    #[test]
    fn id_block_checks() {
        let rng = SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let key = SigningKey::from_pkcs8(pkcs8.as_ref(), "ID", &rng).unwrap();
        let launch = || {
            let mut m = started();
            m.write_memory(0, &[0x90; 4096]).unwrap();
            update(&mut m, 0, PAGE, 1).unwrap();
            m.create_vcpu(0).unwrap();
            m
        };
        // The digest FINISH will reach: the page, then vCPU 0's VMSA.
        let mut probe = launch();
        probe.snp_launch_finish(&SnpFinish::default()).unwrap();
        let ld: [u8; 48] = probe.launch_digest().unwrap().try_into().unwrap();
        let signed = |block: IdBlock| {
            let s = id_block::sign(&block, &key, None, &rng).unwrap();
            IdBlockInput {
                block: s.id_block,
                auth: s.id_auth,
                author_key: false,
            }
        };
        let good = IdBlock {
            launch_digest: ld,
            policy: 0x3_0000,
            ..IdBlock::default()
        };
        let finish = |id: IdBlockInput| {
            launch().snp_launch_finish(&SnpFinish {
                id_block: Some(id),
                host_data: [7; 32],
            })
        };
        finish(signed(good)).unwrap();
        assert_eq!(
            code(finish(signed(IdBlock {
                launch_digest: [1; 48],
                ..good
            }))),
            (EIO, fw::BAD_MEASUREMENT)
        );
        assert_eq!(
            code(finish(signed(IdBlock {
                policy: 0x3_0001,
                ..good
            }))),
            (EIO, fw::POLICY_FAILURE)
        );
        let mut algo = signed(good);
        algo.auth[0] = 2;
        assert_eq!(code(finish(algo)), (EIO, fw::INVALID_PARAM));
        let mut sig = signed(good);
        sig.auth[0x40] ^= 1;
        assert_eq!(code(finish(sig)), (EIO, fw::BAD_SIGNATURE));
        let mut author = signed(good);
        author.author_key = true;
        author.auth[4] = 1;
        assert_eq!(
            code(finish(author)),
            (EIO, fw::BAD_SIGNATURE),
            "no author signature"
        );
    }

    #[test]
    fn memory_attributes_and_vcpu_state() {
        let mut m = snp();
        assert_eq!(attr_code(m.set_memory_attributes(0, 0, true)), (EINVAL, 0));
        assert_eq!(
            attr_code(m.set_memory_attributes(0x800, PAGE, true)),
            (EINVAL, 0)
        );
        assert_eq!(
            attr_code(m.set_memory_attributes(u64::MAX - 0xfff, 0x2000, true)),
            (EINVAL, 0)
        );
        let mut es = SevModel::default();
        es.create_vm(VmType(3)).unwrap();
        es.sev_init2(0, 0).unwrap();
        assert_eq!(
            attr_code(es.set_memory_attributes(0, PAGE, true)),
            (EINVAL, 0)
        );
        assert!(
            es.add_private_memory(&[(0, MIB)]).is_err(),
            "no guest_memfd on SEV-ES"
        );
        // Registers are refused once the VMSA is encrypted, and invalid ones always.
        let mut m = started();
        m.create_vcpu(0).unwrap();
        let mut paging = X86Vcpu::reset(0xffff_fff0);
        paging.cr0 = 1 << 31;
        assert!(
            m.set_vcpu_state(0, &VcpuState::X86(paging)).is_err(),
            "PG without PE"
        );
        m.snp_launch_finish(&SnpFinish::default()).unwrap();
        let e = m
            .set_vcpu_state(0, &VcpuState::X86(X86Vcpu::reset(0xffff_fff0)))
            .unwrap_err();
        assert!(
            matches!(&e, LaunchError::Kvm { source, .. } if source.errno() == EINVAL),
            "{e}"
        );
    }

    #[test]
    fn sev_and_sev_es_sequence() {
        let es = |m: &mut SevModel| {
            m.create_vm(VmType(3)).unwrap();
            m.sev_init2(0, 0).unwrap();
            m.add_memory(&[(0, MIB)]).unwrap();
            m.register_encrypted_region(0, MIB).unwrap();
        };
        let mut m = SevModel::default();
        es(&mut m);
        assert_eq!(
            code(m.launch_update_data(m.host_address(0).unwrap(), 16)),
            (ENOTTY, 0),
            "before START"
        );
        m.launch_start(0x5).unwrap();
        let hva = m.host_address(0).unwrap();
        assert_eq!(code(m.launch_update_data(hva, 0)), (EINVAL, 0));
        assert_eq!(
            code(m.launch_update_data(hva + 8, 16)),
            (EIO, fw::INVALID_ADDRESS)
        );
        assert_eq!(code(m.launch_update_data(hva, 24)), (EIO, fw::INVALID_LEN));
        m.launch_update_data(hva, 4096).unwrap();
        assert_eq!(
            code(m.launch_finish()),
            (EIO, fw::INVALID_GUEST_STATE),
            "FINISH before MEASURE"
        );
        m.launch_update_vmsa().unwrap();
        m.launch_measure().unwrap();
        assert_eq!(
            code(m.launch_update_data(hva, 16)),
            (EIO, fw::INVALID_GUEST_STATE),
            "after MEASURE"
        );
        assert_eq!(code(m.launch_update_vmsa()), (EIO, fw::INVALID_GUEST_STATE));
        m.launch_finish().unwrap();

        let mut noes = SevModel::default();
        es(&mut noes);
        noes.launch_start(0x1).unwrap();
        assert_eq!(
            code(noes.launch_update_vmsa()),
            (EIO, fw::UNSUPPORTED),
            "policy without ES"
        );

        let mut sev = SevModel::default();
        sev.create_vm(VmType(2)).unwrap();
        sev.sev_init2(0, 0).unwrap();
        assert_eq!(
            code(sev.launch_start(0x5)),
            (EIO, fw::UNSUPPORTED),
            "ES bit on SEV"
        );
        sev.launch_start(0x1).unwrap();
        assert_eq!(
            code(sev.launch_update_vmsa()),
            (ENOTTY, 0),
            "UPDATE_VMSA on SEV"
        );
    }
}
