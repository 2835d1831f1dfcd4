//! The VMM core's only `unsafe`: handing guest memory to KVM (and taking it back), and
//! reading the kernel's description of an emulation failure out of the shared `kvm_run`
//! page. Each raw call is an `unsafe fn` stating what its caller must guarantee; the rest
//! of the VMM uses the safe types and functions built on them here ([`GuestRam`]).

use kvm_bindings::{
    KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION,
    KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KVM_MEM_GUEST_MEMFD,
    kvm_create_guest_memfd, kvm_run, kvm_userspace_memory_region, kvm_userspace_memory_region2,
};
use kvm_ioctls::{VcpuFd, VmFd};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// `KVM_SET_USER_MEMORY_REGION2`.
///
/// # Safety
///
/// As [`set_user_memory_region`]; and `region.guest_memfd`, when the flags name one, must
/// be a guest_memfd of this VM that stays open until the slot is deleted.
unsafe fn set_user_memory_region2(
    vm: &VmFd,
    region: kvm_userspace_memory_region2,
) -> Result<(), kvm_ioctls::Error> {
    // SAFETY: the caller guarantees the range's and the guest_memfd's lifetime.
    unsafe { vm.set_user_memory_region2(region) }
}

/// Guest RAM registered with a VM: the mappings, and one memory slot per region, which
/// are deleted (before the mappings are unmapped) when this is dropped. Owning both is
/// what makes registering safe: no slot can outlive its mapping. Private RAM (SNP) also
/// owns one guest_memfd per slot, closed after the slot is deleted.
pub(super) struct GuestRam {
    vm: Arc<VmFd>,
    slots: u32,
    memory: GuestMemoryMmap<()>,
    gmem: Vec<OwnedFd>,
}

impl GuestRam {
    /// Registers every region of `memory` with `vm`, as slots 0, 1, ...; with `private`,
    /// each backed by a new guest_memfd of its size (`KVM_CREATE_GUEST_MEMFD`) as well as
    /// by its mapping (the shared side). On an error the slots registered so far are
    /// deleted again.
    pub(super) fn register(
        vm: Arc<VmFd>,
        memory: GuestMemoryMmap<()>,
        private: bool,
    ) -> Result<Self, RegisterError> {
        let mut ram = GuestRam {
            vm,
            slots: 0,
            memory,
            gmem: Vec::new(),
        };
        let regions: Vec<(u64, u64, u64)> = ram
            .memory
            .iter()
            .map(|r| {
                let host = u64::try_from(r.as_ptr().addr()).unwrap_or(u64::MAX);
                (r.start_addr().0, r.len(), host)
            })
            .collect();
        for (gpa, len, host) in regions {
            let slot = ram.slots;
            if host == u64::MAX {
                return Err(RegisterError::Address { slot });
            }
            let kvm = |source| RegisterError::Kvm { slot, source };
            if private {
                let fd = ram
                    .vm
                    .create_guest_memfd(kvm_create_guest_memfd {
                        size: len,
                        flags: 0,
                        reserved: [0; 6],
                    })
                    .map_err(kvm)?;
                // SAFETY: KVM_CREATE_GUEST_MEMFD returned a new descriptor that nothing
                // else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let gmem =
                    u32::try_from(fd.as_raw_fd()).map_err(|_| RegisterError::Address { slot })?;
                ram.gmem.push(fd);
                let mem = kvm_userspace_memory_region2 {
                    slot,
                    flags: KVM_MEM_GUEST_MEMFD,
                    guest_phys_addr: gpa,
                    memory_size: len,
                    userspace_addr: host,
                    guest_memfd_offset: 0,
                    guest_memfd: gmem,
                    pad1: 0,
                    pad2: [0; 14],
                };
                // SAFETY: `host..+len` is the region's anonymous mapping, owned by
                // `ram.memory`, and `gmem` is owned by `ram.gmem`; `ram` deletes the slot
                // before either goes (Drop, then field order). Guest RAM only.
                unsafe { set_user_memory_region2(&ram.vm, mem) }.map_err(kvm)?;
            } else {
                let mem = kvm_userspace_memory_region {
                    slot,
                    flags: 0,
                    guest_phys_addr: gpa,
                    memory_size: len,
                    userspace_addr: host,
                };
                // SAFETY: `host..+len` is the region's anonymous mapping, owned by
                // `ram.memory`, which `ram` unmaps only after deleting the slot (Drop); it
                // holds guest RAM only, no Rust object.
                unsafe { set_user_memory_region(&ram.vm, mem) }.map_err(kvm)?;
            }
            ram.slots = slot.saturating_add(1);
        }
        Ok(ram)
    }

    /// The guest memory.
    pub(super) fn memory(&self) -> &GuestMemoryMmap<()> {
        &self.memory
    }

    /// Whether `[host, host + len)` lies inside one region of the VMM's mapping of guest
    /// memory (so that the kernel may read or write it for a command).
    pub(super) fn holds_host_range(&self, host: u64, len: u64) -> bool {
        let Some(end) = host.checked_add(len) else {
            return false;
        };
        self.memory.iter().any(|r| {
            let start = u64::try_from(r.as_ptr().addr()).unwrap_or(u64::MAX);
            host >= start && end <= start.saturating_add(r.len())
        })
    }

    /// Whether `[gpa, gpa + len)` lies inside one region of guest memory.
    pub(super) fn holds_guest_range(&self, gpa: u64, len: u64) -> bool {
        let Some(end) = gpa.checked_add(len) else {
            return false;
        };
        self.memory
            .iter()
            .any(|r| gpa >= r.start_addr().0 && end <= r.start_addr().0.saturating_add(r.len()))
    }

    /// Releases the backing of `[gpa, gpa + len)` that the guest no longer uses: the
    /// shared pages (`madvise(MADV_DONTNEED)`) after a conversion to private, or the
    /// private ones (`fallocate(PUNCH_HOLE)` on the guest_memfd) after one to shared, as
    /// QEMU's `kvm_convert_memory` does. The range must lie in one region.
    pub(super) fn discard(&self, gpa: u64, len: u64, private_side: bool) -> std::io::Result<()> {
        let bad = || std::io::Error::from_raw_os_error(libc::EINVAL);
        let (index, region) = self
            .memory
            .iter()
            .enumerate()
            .find(|(_, r)| {
                gpa >= r.start_addr().0
                    && gpa
                        .checked_add(len)
                        .is_some_and(|e| e <= r.start_addr().0.saturating_add(r.len()))
            })
            .ok_or_else(bad)?;
        let offset = gpa - region.start_addr().0;
        if private_side {
            let fd = self.gmem.get(index).ok_or_else(bad)?;
            let (off, n) = (
                libc::off_t::try_from(offset).map_err(|_| bad())?,
                libc::off_t::try_from(len).map_err(|_| bad())?,
            );
            // SAFETY: fallocate on a descriptor this owns; it touches no memory of ours.
            let r = unsafe {
                libc::fallocate(
                    fd.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off,
                    n,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else {
            let o = usize::try_from(offset).map_err(|_| bad())?;
            let n = usize::try_from(len).map_err(|_| bad())?;
            // SAFETY: `o + n` is within the region (checked above), a private anonymous
            // mapping holding guest RAM only: dropping its pages makes them read as
            // zeroes again and invalidates no Rust object.
            let r = unsafe {
                libc::madvise(
                    region.as_ptr().wrapping_add(o).cast(),
                    n,
                    libc::MADV_DONTNEED,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        for slot in 0..self.slots {
            // SAFETY: a zero-sized region deletes the slot; KVM keeps no pointer into
            // host memory. (KVM_SET_USER_MEMORY_REGION2 only where the slots are
            // guest_memfd slots: kernels before 6.8 do not have it.)
            let r = unsafe {
                if self.gmem.is_empty() {
                    set_user_memory_region(
                        &self.vm,
                        kvm_userspace_memory_region {
                            slot,
                            ..Default::default()
                        },
                    )
                } else {
                    set_user_memory_region2(
                        &self.vm,
                        kvm_userspace_memory_region2 {
                            slot,
                            ..Default::default()
                        },
                    )
                }
            };
            if let Err(e) = r {
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

/// `KVM_EXIT_SNP_REQ_CERTS` (include/uapi/linux/kvm.h, Linux 7.0+; kvm-ioctls reports
/// it as an unsupported exit).
pub(super) const KVM_EXIT_SNP_REQ_CERTS: u32 = 43;

/// The guest's buffer (`gpa`, `npages`) of a `KVM_EXIT_SNP_REQ_CERTS` (`struct
/// kvm_exit_snp_req_certs {u64 gpa; u64 npages; u64 ret;}` at the union's start); `None` when the
/// vCPU's last exit was another.
pub(super) fn snp_req_certs(vcpu: &mut VcpuFd) -> Option<(u64, u64)> {
    let run = vcpu.get_kvm_run();
    if run.exit_reason != KVM_EXIT_SNP_REQ_CERTS {
        return None;
    }
    let w = union_words(run);
    Some((w[0], w[1]))
}

/// Answers a `KVM_EXIT_SNP_REQ_CERTS` (KVM reads `ret`, and `npages` for ENOSPC, on the
/// next `KVM_RUN`).
pub(super) fn complete_snp_req_certs(vcpu: &mut VcpuFd, ret: u64, npages: u64) {
    let run = vcpu.get_kvm_run();
    if run.exit_reason == KVM_EXIT_SNP_REQ_CERTS {
        // The gpa (word 0) stays as the kernel wrote it.
        put_union_words(run, 1, &[npages, ret]);
    }
}

/// `KVM_EXIT_TDX` (include/uapi/linux/kvm.h, Linux 6.16; kvm-ioctls reports it as an
/// unsupported exit).
pub(super) const KVM_EXIT_TDX: u32 = 40;

/// The 64-bit words of `kvm_run`'s exit union.
fn union_words(run: &kvm_run) -> [u64; 32] {
    // SAFETY: the union's `padding` member spans all of it and is plain bytes; any bit
    // pattern is valid.
    let raw = unsafe { &run.__bindgen_anon_1.padding };
    let mut words = [0u64; 32];
    for (i, w) in words.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        for (d, s) in b.iter_mut().zip(raw.iter().skip(i * 8)) {
            *d = s.to_ne_bytes()[0];
        }
        *w = u64::from_ne_bytes(b);
    }
    words
}

/// Writes `words` into `kvm_run`'s exit union from word `first` on.
fn put_union_words(run: &mut kvm_run, first: usize, words: &[u64]) {
    // SAFETY: writing plain bytes into the union's `padding` member, which spans it.
    let raw = unsafe { &mut run.__bindgen_anon_1.padding };
    for (i, w) in words.iter().enumerate() {
        for (j, b) in w.to_ne_bytes().iter().enumerate() {
            if let Some(d) = raw.get_mut((first + i) * 8 + j) {
                *d = std::ffi::c_char::from_ne_bytes([*b]);
            }
        }
    }
}

/// The TDVMCALL of a `KVM_EXIT_TDX` (`struct { u64 flags; u64 nr; union {...} } tdx`);
/// `None` when the vCPU's last exit was another.
pub(super) fn tdx_vmcall(vcpu: &mut VcpuFd) -> Option<super::backend::TdxVmcall> {
    tdx_vmcall_of(vcpu.get_kvm_run())
}

fn tdx_vmcall_of(run: &kvm_run) -> Option<super::backend::TdxVmcall> {
    if run.exit_reason != KVM_EXIT_TDX {
        return None;
    }
    let w = union_words(run);
    let mut words = [0u64; 6];
    words.copy_from_slice(&w[2..8]);
    Some(super::backend::TdxVmcall { nr: w[1], words })
}

/// Hands the VMM's answer to a `KVM_EXIT_TDX` back to KVM (read on the next `KVM_RUN`).
pub(super) fn complete_tdx_vmcall(vcpu: &mut VcpuFd, call: &super::backend::TdxVmcall) {
    complete_tdx_vmcall_in(vcpu.get_kvm_run(), call);
}

fn complete_tdx_vmcall_in(run: &mut kvm_run, call: &super::backend::TdxVmcall) {
    if run.exit_reason == KVM_EXIT_TDX {
        put_union_words(run, 2, &call.words);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::backend::TdxVmcall;

    #[test]
    fn the_tdx_exit_union_is_read_and_written_in_place() {
        let mut run = kvm_run {
            exit_reason: KVM_EXIT_TDX,
            ..Default::default()
        };
        // As KVM lays it out: flags, nr, then GetQuote's ret, gpa, size.
        put_union_words(
            &mut run,
            0,
            &[0, 0x1_0002, 0x8000_0000_0000_0003, 0x10_0000, 0x2000],
        );
        let mut call = tdx_vmcall_of(&run).unwrap_or(TdxVmcall {
            nr: 0,
            words: [0; 6],
        });
        assert_eq!(call.nr, 0x1_0002);
        assert_eq!(call.words[..3], [0x8000_0000_0000_0003, 0x10_0000, 0x2000]);
        call.words[0] = 0;
        complete_tdx_vmcall_in(&mut run, &call);
        assert_eq!(union_words(&run)[..5], [0, 0x1_0002, 0, 0x10_0000, 0x2000]);
        run.exit_reason = KVM_EXIT_SNP_REQ_CERTS;
        assert!(tdx_vmcall_of(&run).is_none());
    }
}
