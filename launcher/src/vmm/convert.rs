//! The guest's conversions of its memory between private and shared, for SNP and TDX
//! alike: `KVM_HC_MAP_GPA_RANGE` (SNP page-state changes, KVM's sev.c `snp_begin_psc`;
//! TDX `TDG.VP.VMCALL<MapGPA>`, KVM's tdx.c `tdx_map_gpa`, with the shared bit stripped)
//! and `KVM_EXIT_MEMORY_FAULT`. Every value comes from the guest and is range-checked.

use super::backend::{ExitHandled, Runtime};
use super::rate::Counter;
use kvm_ioctls::VcpuExit;

const PAGE: u64 = 4096;
/// `KVM_HC_MAP_GPA_RANGE` (include/uapi/linux/kvm_para.h).
pub const KVM_HC_MAP_GPA_RANGE: u64 = 12;
/// `KVM_MEMORY_EXIT_FLAG_PRIVATE` (include/uapi/linux/kvm.h).
const KVM_MEMORY_EXIT_FLAG_PRIVATE: u64 = 1 << 3;
/// `KVM_MAP_GPA_RANGE_ENCRYPTED` and the page-size field (arch/x86/include/uapi/asm/
/// kvm_para.h); npages always counts 4 KiB pages, the size is a hint.
const MAP_GPA_RANGE_ENCRYPTED: u64 = 1 << 4;
const MAP_GPA_RANGE_PAGE_SIZE: u64 = 0x3;

/// Handles a conversion exit of vCPU `vcpu`; `NotMine` for any other exit. Refusals are
/// answered to the guest (a hypercall's `ret`) and counted in `refused`, logged at a
/// limited rate.
pub(crate) fn handle(
    vcpu: u32,
    exit: &mut VcpuExit<'_>,
    vm: &dyn Runtime,
    refused: &Counter,
) -> ExitHandled {
    match exit {
        VcpuExit::Hypercall(h) if h.nr == KVM_HC_MAP_GPA_RANGE => {
            let r = map_gpa_range(vm, h.args[0], h.args[1], h.args[2]);
            *h.ret = match r {
                Ok(()) => 0,
                Err(e) => {
                    let (n, log) = refused.tick();
                    if log {
                        tracing::warn!(
                            "vCPU {vcpu}: conversion of {:#x}+{} pages ({:#x}) refused: errno {e} \
                             ({n} so far)",
                            h.args[0],
                            h.args[1],
                            h.args[2]
                        );
                    }
                    u64::try_from(e).unwrap_or(1)
                }
            };
            ExitHandled::Resume
        }
        // An access whose private/shared kind differs from the page's attribute: convert
        // the page to what the guest used, as QEMU's kvm_convert_memory does.
        VcpuExit::MemoryFault { flags, gpa, size } => {
            let private = *flags & KVM_MEMORY_EXIT_FLAG_PRIVATE != 0;
            match convert(vm, *gpa, *size, private) {
                Ok(()) => ExitHandled::Resume,
                Err(e) => ExitHandled::Stop(format!(
                    "the guest accessed {gpa:#x}+{size:#x} as {}, and it cannot be converted \
                     (errno {e})",
                    if private { "private" } else { "shared" }
                )),
            }
        }
        _ => ExitHandled::NotMine,
    }
}

/// KVM_HC_MAP_GPA_RANGE's arguments, all from the guest, checked: a page-aligned,
/// non-empty range of guest RAM, no unknown attribute bits.
fn map_gpa_range(vm: &dyn Runtime, gpa: u64, npages: u64, attrs: u64) -> Result<(), i32> {
    if attrs & !(MAP_GPA_RANGE_ENCRYPTED | MAP_GPA_RANGE_PAGE_SIZE) != 0
        || attrs & MAP_GPA_RANGE_PAGE_SIZE == MAP_GPA_RANGE_PAGE_SIZE
        || !gpa.is_multiple_of(PAGE)
        || npages == 0
    {
        return Err(libc::EINVAL);
    }
    let len = npages.checked_mul(PAGE).ok_or(libc::EINVAL)?;
    convert(vm, gpa, len, attrs & MAP_GPA_RANGE_ENCRYPTED != 0)
}

/// `[gpa, gpa + len)` to private or shared, and the other side's backing released.
fn convert(vm: &dyn Runtime, gpa: u64, len: u64, private: bool) -> Result<(), i32> {
    let start = gpa & !(PAGE - 1);
    let end = gpa
        .checked_add(len)
        .and_then(|e| e.checked_next_multiple_of(PAGE))
        .ok_or(libc::EINVAL)?;
    let len = end - start;
    if len == 0 || !vm.is_ram(start, len) {
        return Err(libc::EINVAL);
    }
    vm.set_private(start, len, private)?;
    tracing::debug!(
        "converted {start:#x}+{len:#x} to {}",
        if private { "private" } else { "shared" }
    );
    vm.discard(start, len, !private)
}

/// A [`Runtime`] for tests.
#[cfg(test)]
pub(crate) mod fake {
    use super::Runtime;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Guest RAM at [0, 1 GiB) (the bytes written are kept); records what it was asked
    /// to do, writes included.
    #[derive(Default)]
    pub(crate) struct Fake {
        pub calls: Mutex<Vec<(u64, u64, bool, &'static str)>>,
        pub bytes: Mutex<BTreeMap<u64, u8>>,
    }

    impl Fake {
        fn note(&self, call: (u64, u64, bool, &'static str)) -> Result<(), i32> {
            self.calls.lock().map_err(|_| libc::EIO)?.push(call);
            Ok(())
        }
    }

    impl Runtime for Fake {
        fn is_ram(&self, gpa: u64, len: u64) -> bool {
            gpa.checked_add(len).is_some_and(|e| e <= 1 << 30)
        }
        fn set_private(&self, gpa: u64, len: u64, private: bool) -> Result<(), i32> {
            self.note((gpa, len, private, "attributes"))
        }
        fn discard(&self, gpa: u64, len: u64, private_side: bool) -> Result<(), i32> {
            self.note((gpa, len, private_side, "discard"))
        }
        fn write(&self, gpa: u64, data: &[u8]) -> Result<(), i32> {
            let len = u64::try_from(data.len()).map_err(|_| libc::EINVAL)?;
            if !self.is_ram(gpa, len) {
                return Err(libc::EINVAL);
            }
            let mut bytes = self.bytes.lock().map_err(|_| libc::EIO)?;
            for (at, b) in (gpa..).zip(data) {
                bytes.insert(at, *b);
            }
            drop(bytes);
            self.note((gpa, len, false, "write"))
        }
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), i32> {
            let len = u64::try_from(buf.len()).map_err(|_| libc::EINVAL)?;
            if !self.is_ram(gpa, len) {
                return Err(libc::EINVAL);
            }
            let bytes = self.bytes.lock().map_err(|_| libc::EIO)?;
            for (at, b) in (gpa..).zip(buf.iter_mut()) {
                *b = bytes.get(&at).copied().unwrap_or(0);
            }
            Ok(())
        }
        fn interrupt(&self, apic_id: u32, vector: u8) -> Result<(), i32> {
            self.note((u64::from(apic_id), u64::from(vector), false, "interrupt"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;

    #[test]
    fn conversions_flip_the_attribute_and_release_the_other_side() {
        let vm = Fake::default();
        assert_eq!(
            map_gpa_range(&vm, 0x20_0000, 512, MAP_GPA_RANGE_ENCRYPTED | 1),
            Ok(())
        );
        assert_eq!(map_gpa_range(&vm, 0x1000, 1, 0), Ok(()));
        let calls = vm.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(
            calls,
            [
                (0x20_0000, 0x20_0000, true, "attributes"),
                (0x20_0000, 0x20_0000, false, "discard"),
                (0x1000, 0x1000, false, "attributes"),
                (0x1000, 0x1000, true, "discard"),
            ]
        );
    }

    #[test]
    fn guest_values_are_range_checked() {
        let vm = Fake::default();
        for (gpa, npages, attrs) in [
            (0x1001, 1, 0),             // unaligned
            (0x1000, 0, 0),             // empty
            (0x1000, 1, 1 << 5),        // unknown attribute bit
            (0x1000, 1, 3),             // page-size field 3 (reserved)
            ((1 << 30) - 0x1000, 2, 0), // past the end of RAM
            (0x1000, u64::MAX / 2, 0),  // length overflows
            (!0xfff, 1, 0),             // end wraps
        ] {
            assert_eq!(
                map_gpa_range(&vm, gpa, npages, attrs),
                Err(libc::EINVAL),
                "{gpa:#x} {npages} {attrs:#x}"
            );
        }
        assert!(vm.calls.lock().map(|c| c.is_empty()).unwrap_or(false));
        // A memory fault's range is rounded out to whole pages, and checked too.
        assert_eq!(convert(&vm, 0x1800, 0x10, true), Ok(()));
        assert_eq!(convert(&vm, 1 << 30, 0x1000, true), Err(libc::EINVAL));
    }
}
