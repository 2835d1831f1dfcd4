//! The TDX backend: a TD launched from a TDX plan on KVM's upstream interface (Linux
//! 6.16+).
//!
//! Order (QEMU `target/i386/kvm/tdx.c`; ../shared/MODELS.md section 4.1):
//! `KVM_CREATE_VM` of the TDX type, `KVM_TDX_CAPABILITIES`, the split irqchip, the
//! MapGPA exit, `KVM_TDX_INIT_VM` (attributes, XFAM, the owner's measurement registers,
//! the CPUID configuration; refused, with the VM torn down, when the module does not
//! support them), guest memory (guest_memfd slots, all private), the vCPUs
//! (`KVM_CREATE_VCPU` with their CPUID, `KVM_TDX_INIT_VCPU` with the TD HOB's address),
//! then at the end, as QEMU does once the machine is built, `KVM_TDX_INIT_MEM_REGION` on
//! vCPU 0 for every plan region in plan order (measured exactly where the plan extends),
//! and `KVM_TDX_FINALIZE_VM`.

use super::{ATTR_DEBUG, MemRegion, TdxCaps, TdxHardware, TdxInitVm, VM_TYPE};
use crate::vmm::backend::{Backend, ExitHandled, Hardware, PlatformOptions, Runtime, VmType};
use crate::vmm::cc::CommandError;
use crate::vmm::none::memory_ranges;
use crate::vmm::{IrqChip, LaunchError};
use cvm_firmware::Tee;
use cvm_firmware::ovmf::TdvfSectionType;
use cvm_firmware::plan::{LaunchPlan, Origin, PAGE, PageKind, Step};
use cvm_firmware::vcpu::VcpuState;
use kvm_bindings::{KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2};
use kvm_ioctls::VcpuExit;

/// What a TDX launch takes besides the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxLaunch {
    /// The TD attributes (QEMU's default: SEPT_VE_DISABLE).
    pub attributes: u64,
    /// MRCONFIGID.
    pub mrconfigid: [u8; 48],
    /// MROWNER.
    pub mrowner: [u8; 48],
    /// MROWNERCONFIG.
    pub mrownerconfig: [u8; 48],
}

/// One `KVM_TDX_INIT_MEM_REGION` of the plan.
#[derive(Debug, Clone, Copy)]
struct Region {
    gpa: u64,
    pages: u64,
    measure: bool,
    origin: Origin,
}

/// The TDX backend.
#[derive(Debug)]
pub struct TdxBackend {
    launch: TdxLaunch,
    /// The TD HOB's GPA: RCX of every vCPU at its first entry (QEMU passes it).
    hob: u64,
    /// The plan's regions, added once the vCPUs exist.
    regions: Vec<Region>,
    /// Guest conversions refused (guest-triggered: logged at a limited rate).
    refused: crate::vmm::rate::Counter,
}

/// GuestPhysAddrSize in CPUID 0x80000008 EAX[23:16]: the TD's GPAW (48: the shared bit is
/// bit 47; 52 needs 5-level EPT). cvm asks for 48, which every TDX host supports.
const GPAW: u32 = 48;
/// CPUID.7.0 EBX HLE (4) and RTM (11), and ECX WAITPKG (5): KVM refuses a TD CPUID
/// configuration that enumerates them (tdx.c `tdx_td_init`, `tdx_check_cpuid`).
const TSX_BITS: u32 = (1 << 4) | (1 << 11);
const WAITPKG: u32 = 1 << 5;
/// The most times one region is retried on EINTR or EAGAIN.
const MAX_RETRIES: u32 = 10_000;

fn unsupported(what: String) -> LaunchError {
    LaunchError::Unsupported {
        tee: Tee::Tdx,
        what,
    }
}

fn at(step: &'static str) -> impl Fn(CommandError) -> LaunchError {
    move |source| LaunchError::Command {
        step: step.to_owned(),
        source,
    }
}

fn tdx_of(hw: &mut dyn Hardware) -> Result<&mut dyn TdxHardware, LaunchError> {
    hw.tdx().ok_or_else(|| {
        unsupported("this hardware has no TDX interface (cvm has no TDX support for it)".into())
    })
}

impl TdxBackend {
    /// A backend for `plan` (a TDX plan).
    pub fn new(plan: &LaunchPlan<'_>, launch: TdxLaunch) -> Result<Self, LaunchError> {
        if plan.tee() != Tee::Tdx {
            return Err(LaunchError::PlanMismatch {
                plan: plan.tee(),
                backend: Tee::Tdx,
            });
        }
        let mut regions = Vec::new();
        let mut hob = None;
        for s in &plan.steps {
            if !s.gpa.is_multiple_of(PAGE) || !s.len.is_multiple_of(PAGE) {
                return Err(unsupported(format!(
                    "{:?} at {:#x}, {:#x} bytes: TDX adds whole 4 KiB pages",
                    s.origin, s.gpa, s.len
                )));
            }
            if let Origin::Tdvf {
                section: TdvfSectionType::TdHob,
                ..
            } = s.origin
            {
                hob = Some(s.gpa);
            }
            let measure = match s.kind {
                PageKind::Normal => true,
                PageKind::Added => false,
                PageKind::Augmented => continue,
                PageKind::Extended => {
                    return Err(unsupported(format!(
                        "{:?} at {:#x}: the two-pass MRTD order (all pages added, then \
                         extended) is QEMU 8.x's on the pre-upstream KVM interface; upstream \
                         KVM (6.16+) adds and extends page by page: build the plan with \
                         --mrtd-order single-pass",
                        s.origin, s.gpa
                    )));
                }
                other => {
                    return Err(unsupported(format!(
                        "{} pages (at {:#x})",
                        other.name(),
                        s.gpa
                    )));
                }
            };
            regions.push(Region {
                gpa: s.gpa,
                pages: s.len / PAGE,
                measure,
                origin: s.origin,
            });
        }
        let hob = hob.ok_or_else(|| {
            unsupported("the plan has no TD HOB section, whose address the vCPUs start with".into())
        })?;
        Ok(TdxBackend {
            launch,
            hob,
            regions,
            refused: crate::vmm::rate::Counter::default(),
        })
    }
}

/// The CPUID configuration of `KVM_TDX_INIT_VM`, as QEMU builds it
/// (`tdx_pre_create_vcpu`): the host's supported values of every leaf the module lets the
/// VMM configure, masked to the configurable bits, without TSX and WAITPKG, and GPAW 48.
pub fn cpuid_config(supported: &[kvm_cpuid_entry2], caps: &TdxCaps) -> Vec<kvm_cpuid_entry2> {
    caps.cpuid
        .iter()
        .filter_map(|c| {
            let indexed = c.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0;
            let s = supported
                .iter()
                .find(|s| s.function == c.function && (!indexed || s.index == c.index))?;
            let mut e = kvm_cpuid_entry2 {
                function: c.function,
                index: if indexed { c.index } else { 0 },
                flags: c.flags,
                eax: s.eax & c.eax,
                ebx: s.ebx & c.ebx,
                ecx: s.ecx & c.ecx,
                edx: s.edx & c.edx,
                ..Default::default()
            };
            match (e.function, e.index) {
                (7, 0) => {
                    e.ebx &= !TSX_BITS;
                    e.ecx &= !WAITPKG;
                }
                (0x8000_0008, _) => e.eax = (e.eax & !0x00ff_0000) | (GPAW << 16),
                _ => {}
            }
            Some(e)
        })
        .collect()
}

/// XFAM: the XSAVE features the host's KVM supports (CPUID 0xD.0 XCR0 bits, 0xD.1 XSS
/// bits) that the module supports.
fn xfam(supported: &[kvm_cpuid_entry2], caps: &TdxCaps) -> u64 {
    let leaf = |index| {
        supported
            .iter()
            .find(|e| e.function == 0xd && e.index == index)
    };
    let xcr0 = leaf(0).map_or(0, |e| u64::from(e.eax) | (u64::from(e.edx) << 32));
    let xss = leaf(1).map_or(0, |e| u64::from(e.ecx) | (u64::from(e.edx) << 32));
    (xcr0 | xss) & caps.supported_xfam
}

impl Backend for TdxBackend {
    fn tee(&self) -> Tee {
        Tee::Tdx
    }

    fn create_vm(
        &mut self,
        hw: &mut dyn Hardware,
        opts: &PlatformOptions,
    ) -> Result<(), LaunchError> {
        let tdx = tdx_of(hw)?;
        let types = tdx.vm_types()?;
        if types & (1 << VM_TYPE) == 0 {
            return Err(LaunchError::Unavailable(format!(
                "this host's KVM does not offer the tdx VM type {VM_TYPE} (KVM_CAP_VM_TYPES is \
                 {types:#x})"
            )));
        }
        if opts.irqchip != IrqChip::Split {
            return Err(unsupported(
                "a TD needs the split irqchip (--irqchip split): KVM emulates no I/O APIC or \
                 PIC for TDs"
                    .into(),
            ));
        }
        tdx.create_vm(VmType(VM_TYPE))?;
        let caps = tdx.tdx_capabilities().map_err(at("KVM_TDX_CAPABILITIES"))?;
        let attributes = self.launch.attributes;
        if attributes & !caps.supported_attrs != 0 {
            return Err(LaunchError::Unavailable(format!(
                "TD attributes {attributes:#x}: KVM and the TDX module support only {:#x} \
                 (KVM_TDX_CAPABILITIES); bits {:#x} are not supported{}",
                caps.supported_attrs,
                attributes & !caps.supported_attrs,
                if attributes & ATTR_DEBUG != 0 {
                    " (DEBUG)"
                } else {
                    ""
                }
            )));
        }
        let supported = tdx.supported_cpuid()?;
        let init = TdxInitVm {
            attributes,
            xfam: xfam(&supported, &caps),
            mrconfigid: self.launch.mrconfigid,
            mrowner: self.launch.mrowner,
            mrownerconfig: self.launch.mrownerconfig,
            cpuid: cpuid_config(&supported, &caps),
        };
        tdx.create_irqchip(opts.irqchip, false)?;
        tdx.enable_map_gpa_exit()?;
        tdx.tdx_init_vm(&init).map_err(at("KVM_TDX_INIT_VM"))
    }

    fn prepare_memory(
        &mut self,
        hw: &mut dyn Hardware,
        plan: &LaunchPlan<'_>,
    ) -> Result<(), LaunchError> {
        let ranges = memory_ranges(plan)?;
        let tdx = tdx_of(hw)?;
        tdx.add_private_memory(&ranges)?;
        // Guest memory starts private, as QEMU sets every guest_memfd slot.
        for &(gpa, len) in &ranges {
            tdx.set_memory_attributes(gpa, len, true)?;
        }
        Ok(())
    }

    fn load(&mut self, hw: &mut dyn Hardware, step: &Step<'_>) -> Result<(), LaunchError> {
        if step.kind == PageKind::Augmented {
            // Not added at launch: the TD accepts these pages itself (PAGE_AUG).
            return Ok(());
        }
        // The source of KVM_TDX_INIT_MEM_REGION: the section's bytes in the shared
        // backing at its GPA, zero-padded to whole pages (the module copies them into the
        // private page; QEMU also adds from its RAM block's mapping).
        tdx_of(hw)?.write_memory(step.gpa, &step.data)?;
        let written = u64::try_from(step.data.len()).unwrap_or(u64::MAX);
        if written < step.len {
            hw.zero_memory(step.gpa.saturating_add(written), step.len - written)?;
        }
        Ok(())
    }

    fn setup_vcpu(
        &mut self,
        hw: &mut dyn Hardware,
        id: u32,
        state: Option<&VcpuState>,
    ) -> Result<(), LaunchError> {
        if state.is_some() {
            return Err(unsupported(format!(
                "vCPU {id} has a register state in the plan: a TD's initial state is the \
                 module's"
            )));
        }
        let tdx = tdx_of(hw)?;
        tdx.create_vcpu(id)?;
        tdx.tdx_init_vcpu(id, self.hob)
            .map_err(at("KVM_TDX_INIT_VCPU"))
    }

    fn finalize(&mut self, hw: &mut dyn Hardware) -> Result<(), LaunchError> {
        let tdx = tdx_of(hw)?;
        for r in &self.regions {
            let mut region = MemRegion {
                source_addr: tdx.host_address(r.gpa)?,
                gpa: r.gpa,
                nr_pages: r.pages,
            };
            let mut retries = 0u32;
            while region.nr_pages > 0 {
                let before = region;
                match tdx.tdx_init_mem_region(0, &mut region, r.measure) {
                    Ok(()) if region.nr_pages < before.nr_pages => {}
                    Ok(()) => {
                        return Err(LaunchError::Step(
                            "KVM_TDX_INIT_MEM_REGION",
                            format!("KVM made no progress at {:#x}", region.gpa),
                        ));
                    }
                    // KVM stops early on a signal (EINTR) or contention (EAGAIN), with
                    // the struct updated in place: go on from there.
                    Err(e)
                        if matches!(e.errno, libc::EINTR | libc::EAGAIN)
                            && retries < MAX_RETRIES =>
                    {
                        retries += 1;
                    }
                    Err(e) => {
                        return Err(LaunchError::Command {
                            step: format!(
                                "{:?} at {:#x} ({} pages left{})",
                                r.origin,
                                before.gpa,
                                before.nr_pages,
                                if r.measure { ", measured" } else { "" }
                            ),
                            source: e,
                        });
                    }
                }
            }
        }
        tdx.tdx_finalize_vm().map_err(at("KVM_TDX_FINALIZE_VM"))
    }

    fn handle_exit(&self, vcpu: u32, exit: &mut VcpuExit<'_>, vm: &dyn Runtime) -> ExitHandled {
        // MapGPA, which KVM forwards as KVM_HC_MAP_GPA_RANGE with the shared bit stripped
        // (tdx.c `tdx_map_gpa`), and private/shared access faults.
        crate::vmm::convert::handle(vcpu, exit, vm, &self.refused)
    }
}
