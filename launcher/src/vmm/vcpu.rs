//! vCPUs: the plan's register state loaded into KVM, CPUID filtered for the guest, and the
//! run loop that turns exits into device accesses or a reason to stop.

use super::backend::{Backend, ExitHandled, Runtime};
use super::devices::{DeviceStop, Devices};
use super::{Control, LaunchError, StopReason};
use cvm_firmware::vcpu::{Segment, X86Vcpu};
use kvm_bindings::{CpuId, kvm_dtable, kvm_segment};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `KVM_SYSTEM_EVENT_SEV_TERM` (include/uapi/linux/kvm.h): an SEV-ES or SNP guest asked
/// to be terminated through the GHCB.
const KVM_SYSTEM_EVENT_SEV_TERM: u32 = 6;
/// `KVM_SYSTEM_EVENT_TDX_FATAL`: a TD's `TDG.VP.VMCALL<ReportFatalError>`.
const KVM_SYSTEM_EVENT_TDX_FATAL: u32 = 7;

/// The stop reason of a TD's fatal error: KVM passes the TD's 16 GPRs (RAX..R15, in
/// register-number order; tdx.c `tdx_report_fatal_error`): R12 is the error code and R14,
/// R15, RBX, RDI, RSI, R8, R9, RDX carry a message (QEMU's `tdx_handle_report_fatal_error`).
fn tdx_fatal(vcpu: u32, data: &[u64]) -> StopReason {
    let reg = |i: usize| data.get(i).copied().unwrap_or(0);
    let message: String = [14, 15, 3, 7, 6, 8, 9, 2]
        .iter()
        .flat_map(|&r| reg(r).to_le_bytes())
        .take_while(|&b| b != 0)
        .filter(|b| b.is_ascii_graphic() || *b == b' ')
        .map(char::from)
        .collect();
    StopReason::TdxFatal {
        code: reg(12),
        message,
        vcpu,
    }
}

/// Loads `state` into `vcpu`: segments, descriptor tables, control registers and EFER,
/// general registers, and the x87/SSE control words. The APIC base and everything else
/// keep KVM's reset values.
pub(super) fn set_state(vcpu: &VcpuFd, state: &X86Vcpu) -> Result<(), LaunchError> {
    let step = "set the vCPU's registers";
    let mut sregs = vcpu.get_sregs().map_err(LaunchError::kvm(step))?;
    sregs.cs = segment(&state.cs);
    sregs.ds = segment(&state.ds);
    sregs.es = segment(&state.es);
    sregs.fs = segment(&state.fs);
    sregs.gs = segment(&state.gs);
    sregs.ss = segment(&state.ss);
    sregs.tr = segment(&state.tr);
    sregs.ldt = segment(&state.ldtr);
    sregs.gdt = dtable(&state.gdtr);
    sregs.idt = dtable(&state.idtr);
    sregs.cr0 = state.cr0;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.efer = state.efer;
    vcpu.set_sregs(&sregs).map_err(LaunchError::kvm(step))?;

    let mut regs = vcpu.get_regs().map_err(LaunchError::kvm(step))?;
    regs.rip = state.rip;
    regs.rsp = state.rsp;
    regs.rflags = state.rflags;
    regs.rdx = state.rdx;
    regs.rsi = state.rsi;
    vcpu.set_regs(&regs).map_err(LaunchError::kvm(step))?;

    let mut fpu = vcpu.get_fpu().map_err(LaunchError::kvm(step))?;
    fpu.fcw = state.x87_fcw;
    fpu.mxcsr = state.mxcsr;
    vcpu.set_fpu(&fpu).map_err(LaunchError::kvm(step))
}

/// A plan segment (VMCB attribute packing) as KVM's `kvm_segment`.
pub(super) fn segment(s: &Segment) -> kvm_segment {
    let a = s.attrib;
    let bit = |n: u16| u8::from(a & (1 << n) != 0);
    let present = bit(7);
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: u8::try_from(a & 0xf).unwrap_or(0),
        present,
        dpl: u8::try_from((a >> 5) & 0x3).unwrap_or(0),
        db: bit(10),
        s: bit(4),
        l: bit(9),
        g: bit(11),
        avl: bit(8),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

pub(super) fn dtable(s: &Segment) -> kvm_dtable {
    kvm_dtable {
        base: s.base,
        limit: u16::try_from(s.limit).unwrap_or(u16::MAX),
        padding: [0; 3],
    }
}

/// [`cpuid_for`] on plain entries.
pub(super) fn cpuid_for_entries(
    supported: &[kvm_bindings::kvm_cpuid_entry2],
    apic_id: u32,
) -> Vec<kvm_bindings::kvm_cpuid_entry2> {
    let mut entries = supported.to_vec();
    for e in &mut entries {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x00ff_ffff) | ((apic_id & 0xff) << 24);
                e.ecx |= 1 << 31;
            }
            0xb | 0x1f => e.edx = apic_id,
            _ => {}
        }
    }
    entries
}

/// The supported CPUID, made per-vCPU: the initial APIC ID in leaf 1 EBX[31:24] and the
/// x2APIC ID in leaves 0xb and 0x1f EDX, and the hypervisor bit (leaf 1 ECX[31]) set.
pub(super) fn cpuid_for(supported: &CpuId, apic_id: u32) -> Result<CpuId, LaunchError> {
    CpuId::from_entries(&cpuid_for_entries(supported.as_slice(), apic_id))
        .map_err(|e| LaunchError::Step("build the guest's CPUID", format!("{e:?}")))
}

/// Runs `vcpu` until the VM stops; returns why this vCPU stopped it, if it did.
pub(super) fn run(
    mut vcpu: VcpuFd,
    id: u32,
    devices: Arc<Devices>,
    control: Arc<Control>,
    backend: Arc<dyn Backend>,
    runtime: Arc<dyn Runtime>,
) {
    let mut exits = ExitCounts::default();
    while !control.stopping.load(Ordering::Acquire) {
        let reason = match vcpu.run() {
            Ok(exit) => match exits.count(id, exit) {
                VcpuExit::IoOut(port, data) => match devices.pio_out(port, data) {
                    Some(DeviceStop::DebugExit(status)) => {
                        Some(StopReason::DebugExit { status, vcpu: id })
                    }
                    Some(DeviceStop::Reset(via)) => Some(StopReason::Reset { via }),
                    None => None,
                },
                VcpuExit::IoIn(port, data) => {
                    devices.pio_in(port, data);
                    None
                }
                VcpuExit::MmioRead(addr, data) => {
                    devices.mmio_read(addr, data);
                    None
                }
                VcpuExit::MmioWrite(addr, data) => {
                    devices.mmio_write(addr, data);
                    None
                }
                VcpuExit::Intr => None,
                VcpuExit::IoapicEoi(vector) => {
                    devices.ioapic_eoi(vector);
                    None
                }
                VcpuExit::Shutdown => Some(StopReason::Shutdown { vcpu: id }),
                VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SEV_TERM, data) => {
                    // data[0]: the GHCB MSR value of the termination request (GHCB spec:
                    // reason set in bits 15:12, reason code in 23:16).
                    let msr = data.first().copied().unwrap_or(0);
                    Some(StopReason::SevTerminate {
                        reason_set: u8::try_from((msr >> 12) & 0xf).unwrap_or(0),
                        reason_code: u8::try_from((msr >> 16) & 0xff).unwrap_or(0),
                        vcpu: id,
                    })
                }
                VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_TDX_FATAL, data) => {
                    Some(tdx_fatal(id, data))
                }
                VcpuExit::SystemEvent(kind, _) => Some(StopReason::SystemEvent { kind, vcpu: id }),
                VcpuExit::Hlt => Some(StopReason::Halted { vcpu: id }),
                VcpuExit::FailEntry(reason, _) => Some(StopReason::FailEntry { reason, vcpu: id }),
                VcpuExit::InternalError => {
                    let (suberror, insn) =
                        super::sys::internal_error(&mut vcpu).unwrap_or_default();
                    Some(StopReason::InternalError {
                        suberror,
                        insn,
                        vcpu: id,
                    })
                }
                VcpuExit::Unsupported(super::sys::KVM_EXIT_TDX) => {
                    let handled = super::sys::tdx_vmcall(&mut vcpu).and_then(|mut call| {
                        backend
                            .tdx_vmcall(id, &mut call, runtime.as_ref())
                            .then_some(call)
                    });
                    match handled {
                        Some(call) => {
                            super::sys::complete_tdx_vmcall(&mut vcpu, &call);
                            None
                        }
                        None => Some(StopReason::Unhandled {
                            exit: "KVM_EXIT_TDX",
                            vcpu: id,
                        }),
                    }
                }
                VcpuExit::Unsupported(super::sys::KVM_EXIT_SNP_REQ_CERTS) => {
                    match super::sys::snp_req_certs(&mut vcpu).and_then(|(gpa, npages)| {
                        backend.snp_certs(id, gpa, npages, runtime.as_ref())
                    }) {
                        Some(reply) => {
                            super::sys::complete_snp_req_certs(&mut vcpu, reply.ret, reply.npages);
                            None
                        }
                        None => Some(StopReason::Unhandled {
                            exit: "KVM_EXIT_SNP_REQ_CERTS",
                            vcpu: id,
                        }),
                    }
                }
                mut other => match backend.handle_exit(id, &mut other, runtime.as_ref()) {
                    ExitHandled::Resume => None,
                    ExitHandled::Stop(what) => Some(StopReason::Backend { what, vcpu: id }),
                    ExitHandled::NotMine => Some(StopReason::Unhandled {
                        exit: exit_name(&other),
                        vcpu: id,
                    }),
                },
            },
            // A kick (signal) from the VMM's main thread, or a signal for the process.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => Some(StopReason::RunFailed {
                errno: e.errno(),
                vcpu: id,
            }),
        };
        if let Some(r) = reason {
            control.stop(r);
            break;
        }
    }
    tracing::debug!("vcpu{id}: {exits}");
}

/// How many exits of each kind a vCPU took (logged when it stops).
#[derive(Debug, Default)]
struct ExitCounts {
    io_out: u64,
    io_in: u64,
    mmio_read: u64,
    mmio_write: u64,
    intr: u64,
    other: u64,
}

impl ExitCounts {
    /// Counts `exit` (and traces it) and hands it back.
    fn count<'e>(&mut self, id: u32, exit: VcpuExit<'e>) -> VcpuExit<'e> {
        let n = match &exit {
            VcpuExit::IoOut(port, data) => {
                tracing::trace!("vcpu{id}: out {port:#x} {data:02x?}");
                &mut self.io_out
            }
            VcpuExit::IoIn(port, data) => {
                tracing::trace!("vcpu{id}: {}-byte in {port:#x}", data.len());
                &mut self.io_in
            }
            VcpuExit::MmioRead(addr, data) => {
                tracing::trace!("vcpu{id}: {}-byte MMIO read {addr:#x}", data.len());
                &mut self.mmio_read
            }
            VcpuExit::MmioWrite(addr, data) => {
                tracing::trace!("vcpu{id}: MMIO write {addr:#x} {data:02x?}");
                &mut self.mmio_write
            }
            VcpuExit::Intr => &mut self.intr,
            other => {
                tracing::trace!("vcpu{id}: {}", exit_name(other));
                &mut self.other
            }
        };
        *n = n.saturating_add(1);
        exit
    }
}

impl std::fmt::Display for ExitCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exits: {} port writes, {} port reads, {} MMIO reads, {} MMIO writes, {} interrupted \
             runs, {} others",
            self.io_out, self.io_in, self.mmio_read, self.mmio_write, self.intr, self.other
        )
    }
}

fn exit_name(exit: &VcpuExit<'_>) -> &'static str {
    match exit {
        VcpuExit::Unknown => "KVM_EXIT_UNKNOWN",
        VcpuExit::Exception => "KVM_EXIT_EXCEPTION",
        VcpuExit::Hypercall(_) => "KVM_EXIT_HYPERCALL",
        VcpuExit::Debug(_) => "KVM_EXIT_DEBUG",
        VcpuExit::IrqWindowOpen => "KVM_EXIT_IRQ_WINDOW_OPEN",
        VcpuExit::SetTpr => "KVM_EXIT_SET_TPR",
        VcpuExit::TprAccess => "KVM_EXIT_TPR_ACCESS",
        VcpuExit::Nmi => "KVM_EXIT_NMI",
        VcpuExit::IoapicEoi(_) => "KVM_EXIT_IOAPIC_EOI",
        VcpuExit::Hyperv => "KVM_EXIT_HYPERV",
        VcpuExit::MemoryFault { .. } => "KVM_EXIT_MEMORY_FAULT",
        VcpuExit::X86Rdmsr(_) => "KVM_EXIT_X86_RDMSR",
        VcpuExit::X86Wrmsr(_) => "KVM_EXIT_X86_WRMSR",
        _ => "an exit cvm does not handle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_unpack_the_vmcb_attributes() {
        let cs = segment(&Segment::new(0x10, 0xa9b, 0xffff_ffff, 0));
        assert_eq!((cs.type_, cs.s, cs.dpl, cs.present), (0xb, 1, 0, 1));
        assert_eq!((cs.avl, cs.l, cs.db, cs.g, cs.unusable), (0, 1, 0, 1, 0));
        let ds = segment(&Segment::new(0x18, 0xc93, 0xffff_ffff, 0));
        assert_eq!((ds.type_, ds.l, ds.db, ds.g), (0x3, 0, 1, 1));
        let ldt = segment(&Segment::new(0, 0, 0, 0));
        assert_eq!(ldt.unusable, 1);
        let real = segment(&Segment::new(0xf000, 0x9b, 0xffff, 0xffff_0000));
        assert_eq!(
            (real.base, real.limit, real.g, real.db),
            (0xffff_0000, 0xffff, 0, 0)
        );
    }
}
