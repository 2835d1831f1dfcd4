//! The VMM core's only `unsafe`: handing guest memory to KVM (and taking it back), and
//! reading the kernel's description of an emulation failure out of the shared `kvm_run`
//! page. Each raw call is an `unsafe fn` stating what its caller must guarantee; the rest
//! of the VMM uses the safe types and functions built on them here ([`GuestRam`]).

use kvm_bindings::{
    KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION,
    KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, kvm_run, kvm_userspace_memory_region,
};
use kvm_ioctls::{VcpuFd, VmFd};
use std::sync::Arc;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// `KVM_SET_USER_MEMORY_REGION`.
///
/// # Safety
///
/// Unless `region.memory_size` is zero (which deletes the slot), the host range
/// `region.userspace_addr..+memory_size` must be a mapping that stays valid, and holds no
/// Rust object the guest must not change, until the slot is deleted or the VM closed:
/// from this call on the guest reads and writes it.
unsafe fn set_user_memory_region(
    vm: &VmFd,
    region: kvm_userspace_memory_region,
) -> Result<(), kvm_ioctls::Error> {
    // SAFETY: the caller guarantees the range's lifetime (see above).
    unsafe { vm.set_user_memory_region(region) }
}

/// Guest RAM registered with a VM: the mappings, and one memory slot per region, which
/// are deleted (before the mappings are unmapped) when this is dropped. Owning both is
/// what makes registering safe: no slot can outlive its mapping.
pub(super) struct GuestRam {
    vm: Arc<VmFd>,
    slots: u32,
    memory: GuestMemoryMmap<()>,
}

impl GuestRam {
    /// Registers every region of `memory` with `vm`, as slots 0, 1, ...; on an error the
    /// slots registered so far are deleted again.
    pub(super) fn register(
        vm: Arc<VmFd>,
        memory: GuestMemoryMmap<()>,
    ) -> Result<Self, RegisterError> {
        let mut ram = GuestRam {
            vm,
            slots: 0,
            memory,
        };
        for region in ram.memory.iter() {
            let slot = ram.slots;
            let host = u64::try_from(region.as_ptr().addr())
                .map_err(|_| RegisterError::Address { slot })?;
            let mem = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host,
            };
            // SAFETY: `host..+len` is `region`'s anonymous mapping, owned by `ram.memory`,
            // which `ram` unmaps only after deleting the slot (Drop); it holds guest RAM
            // only, no Rust object.
            unsafe { set_user_memory_region(&ram.vm, mem) }
                .map_err(|source| RegisterError::Kvm { slot, source })?;
            ram.slots = slot.saturating_add(1);
        }
        Ok(ram)
    }

    /// The guest memory.
    pub(super) fn memory(&self) -> &GuestMemoryMmap<()> {
        &self.memory
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        for slot in 0..self.slots {
            let mem = kvm_userspace_memory_region {
                slot,
                ..Default::default()
            };
            // SAFETY: a zero-sized region deletes the slot; KVM keeps no pointer into
            // host memory.
            if let Err(e) = unsafe { set_user_memory_region(&self.vm, mem) } {
                tracing::debug!("removing memory slot {slot}: {e}");
            }
        }
    }
}

/// Why guest memory could not be registered.
#[derive(Debug, thiserror::Error)]
pub(super) enum RegisterError {
    /// A mapping's address does not fit KVM's 64-bit field.
    #[error("memory slot {slot}: the host address does not fit 64 bits")]
    Address {
        /// The slot.
        slot: u32,
    },
    /// KVM refused the slot.
    #[error("memory slot {slot}: {source}")]
    Kvm {
        /// The slot.
        slot: u32,
        /// KVM's error.
        source: kvm_ioctls::Error,
    },
}

/// The suberror of a `KVM_EXIT_INTERNAL_ERROR` and, for an emulation failure, the
/// instruction bytes the kernel reports; `None` when the vCPU's last exit was another.
pub(super) fn internal_error(vcpu: &mut VcpuFd) -> Option<(u32, Vec<u8>)> {
    let run = vcpu.get_kvm_run();
    // The union member to read is chosen by the exit reason, checked here rather than
    // trusted from the caller.
    if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
        return None;
    }
    // SAFETY: `exit_reason` is KVM_EXIT_INTERNAL_ERROR (checked above).
    Some(unsafe { internal_error_raw(run) })
}

/// Reads the `internal` member of `run`'s exit union (and, for an emulation failure,
/// `emulation_failure`, which overlays it).
///
/// # Safety
///
/// `run.exit_reason` must be `KVM_EXIT_INTERNAL_ERROR`: the kernel then filled that
/// member. Every member is plain old data, so no other invariant is needed.
unsafe fn internal_error_raw(run: &kvm_run) -> (u32, Vec<u8>) {
    // SAFETY: the caller guarantees the exit reason (see above).
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
