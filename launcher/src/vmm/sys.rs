//! The VMM core's only `unsafe`: handing guest memory to KVM (and taking it back), and
//! reading the kernel's description of an emulation failure out of the shared `kvm_run`
//! page.

use kvm_bindings::{
    KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{GuestMemoryRegion, GuestRegionMmap};

/// Registers `region` as KVM memory slot `slot`.
///
/// The caller keeps the mapping alive for as long as `vm` exists: `Vm` in `vmm/mod.rs`
/// declares its `VmFd` before its memory, so the VM is closed before the memory is
/// unmapped.
pub(super) fn set_memory_region(
    vm: &VmFd,
    slot: u32,
    region: &GuestRegionMmap<()>,
) -> Result<(), kvm_ioctls::Error> {
    let host = u64::try_from(region.as_ptr().addr()).unwrap_or(0);
    let mem = kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: region.start_addr().0,
        memory_size: region.len(),
        userspace_addr: host,
    };
    // SAFETY: `userspace_addr..+memory_size` is a live anonymous mapping owned by
    // `region`, which the caller keeps mapped until the VM fd is closed (see above); the
    // guest can only write its own RAM through it, never Rust-owned objects.
    unsafe { vm.set_user_memory_region(mem) }
}

/// The suberror of a `KVM_EXIT_INTERNAL_ERROR` and, for an emulation failure, the
/// instruction bytes the kernel reports.
pub(super) fn internal_error(vcpu: &mut VcpuFd) -> (u32, Vec<u8>) {
    let run = vcpu.get_kvm_run();
    // SAFETY: `exit_reason` is KVM_EXIT_INTERNAL_ERROR (the caller matched
    // `VcpuExit::InternalError`), so the kernel filled the `internal` member of the union;
    // it is plain old data.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let mut bytes = Vec::new();
    if internal.suberror == KVM_INTERNAL_ERROR_EMULATION {
        // SAFETY: for an emulation failure the kernel fills `emulation_failure` (which
        // overlays `internal`); plain old data.
        let ef = unsafe { run.__bindgen_anon_1.emulation_failure };
        if ef.flags & u64::from(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
            // SAFETY: the flag says the kernel filled the instruction bytes; plain old data.
            let insn = unsafe { ef.__bindgen_anon_1.__bindgen_anon_1 };
            let n = usize::from(insn.insn_size).min(insn.insn_bytes.len());
            bytes.extend(insn.insn_bytes.iter().take(n));
        }
    }
    (internal.suberror, bytes)
}

/// Removes memory slot `slot` (a zero-sized region).
pub(super) fn remove_memory_region(vm: &VmFd, slot: u32) -> Result<(), kvm_ioctls::Error> {
    let mem = kvm_userspace_memory_region {
        slot,
        ..Default::default()
    };
    // SAFETY: a zero-sized region deletes the slot; KVM keeps no pointer into host memory.
    unsafe { vm.set_user_memory_region(mem) }
}
