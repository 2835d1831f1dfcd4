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

use super::qgs::QgsAddr;
use super::{ATTR_DEBUG, MemRegion, TdxCaps, TdxHardware, TdxInitVm, VM_TYPE};
use crate::vmm::backend::{
    Backend, ExitHandled, Hardware, PlatformOptions, Runtime, TdxVmcall, VmType,
};
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
    /// The quote generation service for the TD's GetQuote calls.
    pub qgs: Option<QgsAddr>,
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
    /// KVM_TDX_CAPABILITIES' TDVMCALLs forwarded to the VMM (GetTdVmCallInfo leaf 1, R11).
    user_tdvmcallinfo_r11: u64,
    /// The TD's event-notify interrupt (SetupEventNotifyInterrupt): its vCPU and vector.
    notify: std::sync::Mutex<Option<(u32, u8)>>,
    /// TDVMCALLs answered with an error (guest-triggered: logged at a limited rate).
    vmcall_errors: crate::vmm::rate::Counter,
}

/// TDVMCALL sub-functions KVM hands to the VMM (`KVM_EXIT_TDX`; GHCI 1.5).
mod vmcall {
    pub const GET_TD_VM_CALL_INFO: u64 = 0x10000;
    pub const GET_QUOTE: u64 = 0x10002;
    pub const SETUP_EVENT_NOTIFY_INTERRUPT: u64 = 0x10004;
    /// TDVMCALL status codes (arch/x86/include/asm/shared/tdx.h).
    pub const SUCCESS: u64 = 0;
    pub const INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
    pub const ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;
    pub const SUBFUNC_UNSUPPORTED: u64 = 0x8000_0000_0000_0003;
    /// GetTdVmCallInfo leaf 1, R11: SetupEventNotifyInterrupt is implemented.
    pub const INFO_SETUP_EVENT_NOTIFY: u64 = 1 << 1;
}

/// The GetQuote buffer's header (GHCI 1.5, TDG.VP.VMCALL<GetQuote>): version u64 (1),
/// status u64, in_len u32, out_len u32, then the TDREPORT in and the quote out.
mod quote {
    pub const HEADER: u64 = 24;
    pub const SUCCESS: u64 = 0;
    pub const ERROR: u64 = 0x8000_0000_0000_0000;
    pub const QGS_UNAVAILABLE: u64 = 0x8000_0000_0000_0001;
    /// How long the QGS may take (QEMU's limit).
    pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

/// A TD's GetQuote at `[gpa, gpa + size)` (shared memory; both guest values): checked,
/// forwarded to `qgs`, the quote and its status written back (QEMU's
/// `tdx_handle_get_quote`). Returns the TDVMCALL status and, when the request failed
/// (the buffer's status then says so), why.
pub fn get_quote(
    vm: &dyn Runtime,
    gpa: u64,
    size: u64,
    qgs: Option<&QgsAddr>,
) -> (u64, Option<String>) {
    use vmcall::{ALIGN_ERROR, INVALID_OPERAND, SUCCESS};
    if size == 0 {
        return (INVALID_OPERAND, Some("an empty buffer".into()));
    }
    if !gpa.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) {
        return (
            ALIGN_ERROR,
            Some(format!("{gpa:#x}+{size:#x} is not page-aligned")),
        );
    }
    let max = u64::try_from(super::qgs::MAX_REPLY).unwrap_or(u64::MAX);
    if size > max || !vm.is_ram(gpa, size) {
        return (
            INVALID_OPERAND,
            Some(format!(
                "{gpa:#x}+{size:#x} is not a buffer in RAM of at most {max} bytes"
            )),
        );
    }
    let mut header = [0u8; 24];
    if let Err(e) = vm.read(gpa, &mut header) {
        return (
            INVALID_OPERAND,
            Some(format!("reading the header: errno {e}")),
        );
    }
    let version = u64::from_le_bytes(header[..8].try_into().unwrap_or([0; 8]));
    let in_len = u32::from_le_bytes(header[16..20].try_into().unwrap_or([0; 4]));
    let room = size - quote::HEADER;
    if version != 1 || u64::from(in_len) > room {
        return (
            INVALID_OPERAND,
            Some(format!("header version {version}, in_len {in_len}")),
        );
    }
    let status = |s: u64| vm.write(gpa + 8, &s.to_le_bytes());
    let Some(addr) = qgs else {
        return match status(quote::QGS_UNAVAILABLE) {
            Ok(()) => (SUCCESS, Some("no QGS (--qgs)".into())),
            Err(e) => (
                INVALID_OPERAND,
                Some(format!("writing the status: errno {e}")),
            ),
        };
    };
    let mut report = vec![0u8; usize::try_from(in_len).unwrap_or(0)];
    if let Err(e) = vm.read(gpa + quote::HEADER, &mut report) {
        return (
            INVALID_OPERAND,
            Some(format!("reading the TDREPORT: errno {e}")),
        );
    }
    let problem = match super::qgs::get_quote(addr, &report, quote::TIMEOUT) {
        Ok(q) if u64::try_from(q.len()).is_ok_and(|n| n <= room) => {
            let len = u32::try_from(q.len()).unwrap_or(0);
            let written = vm
                .write(gpa + quote::HEADER, &q)
                .and_then(|()| vm.write(gpa + 20, &len.to_le_bytes()))
                .and_then(|()| status(quote::SUCCESS));
            match written {
                Ok(()) => return (SUCCESS, None),
                Err(e) => format!("writing the quote: errno {e}"),
            }
        }
        Ok(q) => format!(
            "a {}-byte quote does not fit the {room}-byte buffer",
            q.len()
        ),
        Err(e) => e.to_string(),
    };
    match status(quote::ERROR) {
        Ok(()) => (SUCCESS, Some(problem)),
        Err(e) => (
            INVALID_OPERAND,
            Some(format!("{problem}; writing the status: errno {e}")),
        ),
    }
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
            user_tdvmcallinfo_r11: 0,
            notify: std::sync::Mutex::new(None),
            vmcall_errors: crate::vmm::rate::Counter::default(),
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

    fn tdx_vmcall(&self, vcpu: u32, call: &mut TdxVmcall, vm: &dyn Runtime) -> bool {
        let w = &mut call.words;
        match call.nr {
            // Leaf 1 only reaches the VMM; advertise only what cvm implements.
            vmcall::GET_TD_VM_CALL_INFO => {
                w[2] = self.user_tdvmcallinfo_r11 & vmcall::INFO_SETUP_EVENT_NOTIFY;
                w[3] = 0;
                w[4] = 0;
                w[5] = 0;
                w[0] = vmcall::SUCCESS;
            }
            vmcall::SETUP_EVENT_NOTIFY_INTERRUPT => match u8::try_from(w[1]) {
                Ok(vector) if vector >= 32 => {
                    if let Ok(mut n) = self.notify.lock() {
                        *n = Some((vcpu, vector));
                    }
                    w[0] = vmcall::SUCCESS;
                }
                _ => w[0] = vmcall::INVALID_OPERAND,
            },
            vmcall::GET_QUOTE => {
                let (ret, problem) = get_quote(vm, w[1], w[2], self.launch.qgs.as_ref());
                w[0] = ret;
                if let Some(why) = problem {
                    let (n, log) = self.vmcall_errors.tick();
                    if log {
                        tracing::warn!("vCPU {vcpu}: GetQuote: {why} ({n} so far)");
                    }
                }
                // The TD may wait for its notify interrupt rather than poll the status.
                if let Ok(Some((apic, vector))) = self.notify.lock().map(|n| *n)
                    && let Err(e) = vm.interrupt(apic, vector)
                {
                    tracing::warn!("vCPU {vcpu}: GetQuote's notify interrupt: errno {e}");
                }
            }
            other => {
                let (n, log) = self.vmcall_errors.tick();
                if log {
                    tracing::warn!(
                        "vCPU {vcpu}: TDVMCALL {other:#x} is not implemented ({n} so far)"
                    );
                }
                w[0] = vmcall::SUBFUNC_UNSUPPORTED;
            }
        }
        true
    }

    fn handle_exit(&self, vcpu: u32, exit: &mut VcpuExit<'_>, vm: &dyn Runtime) -> ExitHandled {
        // MapGPA, which KVM forwards as KVM_HC_MAP_GPA_RANGE with the shared bit stripped
        // (tdx.c `tdx_map_gpa`), and private/shared access faults.
        crate::vmm::convert::handle(vcpu, exit, vm, &self.refused)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::vmm::convert::fake::Fake;

    fn backend() -> TdxBackend {
        TdxBackend {
            launch: TdxLaunch {
                attributes: super::super::ATTR_SEPT_VE_DISABLE,
                mrconfigid: [0; 48],
                mrowner: [0; 48],
                mrownerconfig: [0; 48],
                qgs: None,
            },
            hob: 0x80_9000,
            regions: Vec::new(),
            refused: crate::vmm::rate::Counter::default(),
            user_tdvmcallinfo_r11: vmcall::INFO_SETUP_EVENT_NOTIFY | 1 << 5,
            notify: std::sync::Mutex::new(None),
            vmcall_errors: crate::vmm::rate::Counter::default(),
        }
    }

    fn call(nr: u64, args: &[u64]) -> TdxVmcall {
        let mut words = [0u64; 6];
        words[0] = vmcall::SUBFUNC_UNSUPPORTED; // KVM's preset for forwarded calls
        for (w, a) in words.iter_mut().skip(1).zip(args) {
            *w = *a;
        }
        TdxVmcall { nr, words }
    }

    #[test]
    fn tdvmcalls_are_answered_as_ghci_says() {
        let b = backend();
        let vm = Fake::default();
        // GetTdVmCallInfo leaf 1: only what cvm implements is advertised.
        let mut c = call(vmcall::GET_TD_VM_CALL_INFO, &[1, 7, 7, 7, 7]);
        assert!(b.tdx_vmcall(0, &mut c, &vm));
        assert_eq!(c.words, [0, 1, vmcall::INFO_SETUP_EVENT_NOTIFY, 0, 0, 0]);
        // SetupEventNotifyInterrupt: vectors 32-255 only.
        let mut c = call(vmcall::SETUP_EVENT_NOTIFY_INTERRUPT, &[31]);
        assert!(b.tdx_vmcall(1, &mut c, &vm));
        assert_eq!(c.words[0], vmcall::INVALID_OPERAND);
        let mut c = call(vmcall::SETUP_EVENT_NOTIFY_INTERRUPT, &[0x1_00]);
        assert!(b.tdx_vmcall(1, &mut c, &vm));
        assert_eq!(c.words[0], vmcall::INVALID_OPERAND);
        let mut c = call(vmcall::SETUP_EVENT_NOTIFY_INTERRUPT, &[0xf3]);
        assert!(b.tdx_vmcall(1, &mut c, &vm));
        assert_eq!(c.words[0], vmcall::SUCCESS);
        // GetQuote without a QGS: the status says so, and the notify interrupt comes.
        vm.write(0x10_0000, &1u64.to_le_bytes()).unwrap();
        let mut c = call(vmcall::GET_QUOTE, &[0x10_0000, 0x1000]);
        assert!(b.tdx_vmcall(1, &mut c, &vm));
        assert_eq!(c.words[0], vmcall::SUCCESS);
        let mut status = [0u8; 8];
        vm.read(0x10_0008, &mut status).unwrap();
        assert_eq!(u64::from_le_bytes(status), quote::QGS_UNAVAILABLE);
        let calls = vm.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls.last(), Some(&(1, 0xf3, false, "interrupt")));
        // Anything else: SUBFUNC_UNSUPPORTED, and the VMM goes on.
        let mut c = call(0x1_0005, &[]);
        assert!(b.tdx_vmcall(0, &mut c, &vm));
        assert_eq!(c.words[0], vmcall::SUBFUNC_UNSUPPORTED);
    }
}
