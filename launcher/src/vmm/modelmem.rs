//! Guest memory as the confidential models see it: memory slots (guest_memfd-backed or
//! not) at made-up host addresses, the private attribute of every page (as ranges, so
//! that a 16 GiB guest costs nothing), and the shared side's pages that were written.

use super::LaunchError;
use super::cc::CommandError;
use std::collections::BTreeMap;

const PAGE: u64 = 4096;
/// Where the model's host mappings start.
const HVA_BASE: u64 = 0x7f00_0000_0000;

/// One memory slot.
#[derive(Debug)]
pub(crate) struct Slot {
    pub gpa: u64,
    pub len: u64,
    pub hva: u64,
    /// Backed by a guest_memfd (`KVM_MEM_GUEST_MEMFD`).
    pub gmem: bool,
}

/// The model's guest memory.
#[derive(Debug, Default)]
pub(crate) struct ModelMemory {
    pub slots: Vec<Slot>,
    /// Private frames, as `start -> end` ranges of frame numbers (disjoint, sorted).
    private: BTreeMap<u64, u64>,
    /// The shared backing's pages that were written, by host address.
    shared: BTreeMap<u64, Box<[u8; 4096]>>,
    next_hva: u64,
}

fn outside(ok: bool, step: &'static str, gpa: u64, len: u64) -> Result<(), LaunchError> {
    if ok {
        Ok(())
    } else {
        Err(LaunchError::Step(
            step,
            format!("{len:#x} bytes at {gpa:#x} are not all guest memory"),
        ))
    }
}

fn kvm_error(step: &'static str, errno: i32) -> LaunchError {
    LaunchError::Kvm {
        step,
        source: kvm_ioctls::Error::new(errno),
    }
}

impl ModelMemory {
    pub fn slot_of(&self, gpa: u64) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| gpa >= s.gpa && gpa - s.gpa < s.len)
    }

    pub fn slot_of_hva(&self, hva: u64) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| hva >= s.hva && hva - s.hva < s.len)
    }

    pub fn hva(&self, gpa: u64) -> Option<u64> {
        self.slot_of(gpa).map(|s| s.hva + (gpa - s.gpa))
    }

    /// Slots for `ranges`, as `kvm_set_memory_region` (kvm_main.c) accepts them:
    /// page-aligned, no wrap, no overlap with another slot.
    pub fn add_slots(&mut self, ranges: &[(u64, u64)], gmem: bool) -> Result<(), LaunchError> {
        let step = if gmem {
            "KVM_SET_USER_MEMORY_REGION2"
        } else {
            "KVM_SET_USER_MEMORY_REGION"
        };
        for &(gpa, len) in ranges {
            let end = gpa.checked_add(len);
            if !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) || end.is_none() {
                return Err(kvm_error(step, libc::EINVAL));
            }
            if len == 0 {
                continue;
            }
            let end = end.unwrap_or(u64::MAX);
            if self
                .slots
                .iter()
                .any(|s| gpa < s.gpa.saturating_add(s.len) && end > s.gpa)
            {
                return Err(kvm_error(step, libc::EEXIST));
            }
            let hva = HVA_BASE.saturating_add(self.next_hva);
            self.next_hva = self.next_hva.saturating_add(len).saturating_add(1 << 30);
            self.slots.push(Slot {
                gpa,
                len,
                hva,
                gmem,
            });
        }
        Ok(())
    }

    /// Sets the frames `[first, end)` private or shared.
    pub fn set_private(&mut self, first: u64, end: u64, private: bool) {
        // Cut every range overlapping [first, end) to what lies outside it.
        let overlapping: Vec<(u64, u64)> = self
            .private
            .range(..end)
            .filter(|(_, e)| **e > first)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.private.remove(&s);
            if s < first {
                self.private.insert(s, first);
            }
            if e > end {
                self.private.insert(end, e);
            }
        }
        if private && first < end {
            self.private.insert(first, end);
        }
    }

    /// Whether frame `gfn` is private.
    pub fn is_private(&self, gfn: u64) -> bool {
        self.private
            .range(..=gfn)
            .next_back()
            .is_some_and(|(_, e)| gfn < *e)
    }

    /// Copies through the shared backing, page by page (the VMM's view of guest memory);
    /// `false` when part of the range is not guest memory.
    pub fn access(&mut self, gpa: u64, len: u64, mut f: impl FnMut(u64, &mut [u8])) -> bool {
        let mut done = 0u64;
        while done < len {
            let at = gpa.saturating_add(done);
            let Some(hva) = self.hva(at) else {
                return false;
            };
            let page = hva & !(PAGE - 1);
            let off = hva - page;
            let n = (PAGE - off).min(len - done);
            let p = self
                .shared
                .entry(page)
                .or_insert_with(|| Box::new([0u8; 4096]));
            let (o, e) = (
                usize::try_from(off).unwrap_or(0),
                usize::try_from(off + n).unwrap_or(0),
            );
            f(done, &mut p[o..e]);
            done += n;
        }
        true
    }

    /// Writes `data` at `gpa` through the shared side.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), LaunchError> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let ok = self.access(gpa, len, |off, dst| {
            let o = usize::try_from(off).unwrap_or(0);
            if let Some(src) = data.get(o..o + dst.len()) {
                dst.copy_from_slice(src);
            }
        });
        outside(ok, "write guest memory", gpa, len)
    }

    /// Zeroes `[gpa, gpa + len)` through the shared side.
    pub fn zero(&mut self, gpa: u64, len: u64) -> Result<(), LaunchError> {
        let ok = self.access(gpa, len, |_, dst| dst.fill(0));
        outside(ok, "zero guest memory", gpa, len)
    }

    /// Reads `buf.len()` bytes at `gpa` through the shared side.
    pub fn read(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), LaunchError> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let ok = self.access(gpa, len, |off, src| {
            let o = usize::try_from(off).unwrap_or(0);
            if let Some(dst) = buf.get_mut(o..o + src.len()) {
                dst.copy_from_slice(src);
            }
        });
        outside(ok, "read guest memory", gpa, len)
    }

    /// `KVM_SET_MEMORY_ATTRIBUTES` on a VM that has private memory (`private_vm`), as
    /// guest_memfd's `kvm_vm_ioctl_set_mem_attributes` checks it: an attribute the VM does
    /// not support, an empty, unaligned or wrapping range are -EINVAL.
    pub fn set_attributes(
        &mut self,
        private_vm: bool,
        gpa: u64,
        len: u64,
        private: bool,
    ) -> Result<(), CommandError> {
        const C: &str = "KVM_SET_MEMORY_ATTRIBUTES";
        let einval = |why: &str| CommandError::kernel(C, libc::EINVAL).because(why);
        if !private_vm {
            return Err(einval("this VM type has no private memory"));
        }
        if len == 0 || !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(einval("the range is empty or not page-aligned"));
        }
        let end = gpa
            .checked_add(len)
            .ok_or_else(|| einval("the range wraps"))?;
        self.set_private(gpa / PAGE, end / PAGE, private);
        Ok(())
    }

    /// The 4 KiB at host address `hva` (GUP of a source page), if it is mapped.
    pub fn source_page(&self, hva: u64) -> Option<[u8; 4096]> {
        self.slot_of_hva(hva)?;
        let page = hva & !(PAGE - 1);
        let mut out = [0u8; 4096];
        let off = usize::try_from(hva - page).unwrap_or(0);
        if let Some(p) = self.shared.get(&page) {
            out[..4096 - off].copy_from_slice(&p[off..]);
        }
        if off != 0
            && self.slot_of_hva(page + PAGE).is_some()
            && let Some(p) = self.shared.get(&(page + PAGE))
        {
            out[4096 - off..].copy_from_slice(&p[..off]);
        }
        Some(out)
    }

    /// Overwrites the shared page at host address `hva` (a page-aligned source).
    pub fn put_page(&mut self, hva: u64, data: &[u8; 4096]) {
        if let Some(p) = self.shared.get_mut(&hva) {
            p.copy_from_slice(data);
        }
    }

    /// The bytes at host addresses `[start, start + len)`, through the shared side.
    pub fn host_bytes(&self, start: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let end = start.saturating_add(len);
        let mut at = start;
        while at < end {
            let page = at & !(PAGE - 1);
            let p = self.shared.get(&page).map_or([0u8; 4096], |p| **p);
            let o = usize::try_from(at - page).unwrap_or(0);
            let n = usize::try_from((end - at).min(PAGE - (at - page))).unwrap_or(0);
            out.extend_from_slice(&p[o..o + n]);
            at = at.saturating_add(u64::try_from(n).unwrap_or(PAGE).max(1));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_split_and_merge() {
        let mut m = ModelMemory::default();
        m.set_private(0, 100, true);
        m.set_private(10, 20, false);
        assert!(m.is_private(9) && !m.is_private(10) && !m.is_private(19) && m.is_private(20));
        m.set_private(5, 30, true);
        assert!((0..100).all(|g| m.is_private(g)));
        assert!(!m.is_private(100));
        m.set_private(0, 1 << 40, false);
        assert!(!m.is_private(50));
    }

    #[test]
    fn sources_may_straddle_pages() {
        let mut m = ModelMemory::default();
        m.add_slots(&[(0, 3 * PAGE)], false).unwrap_or_default();
        assert!(m.access(0x800, 0x1000, |off, dst| {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = u8::try_from((usize::try_from(off).unwrap_or(0) + i) % 251).unwrap_or(0);
            }
        }));
        let hva = m.hva(0x800).unwrap_or(0);
        let page = m.source_page(hva).unwrap_or([0; 4096]);
        assert_eq!(page[0], 0);
        assert_eq!(page[0xfff], u8::try_from(0xfff % 251).unwrap_or(0));
        assert_eq!(m.host_bytes(hva + 1, 2), vec![1, 2]);
    }
}
