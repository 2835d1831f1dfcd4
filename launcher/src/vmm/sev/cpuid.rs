//! The SNP CPUID page: the guest's CPUID table, which the AMD-SP checks at
//! SNP_LAUNCH_UPDATE (page type CPUID) and, when it disagrees, rewrites with the values it
//! accepts.
//!
//! Format (SEV-SNP ABI, `SNP_CPUID_FUNCTION`; AMD-ASPFW `snp_launch_update_cpuid_page_t`):
//! `count u32` (at most 64), 12 reserved bytes, then `count` 48-byte entries
//! {`eax_in u32`, `ecx_in u32`, `xcr0_in u64`, `xss_in u64`, `eax`, `ebx`, `ecx`, `edx`
//! (u32 each), reserved u64}.

use kvm_bindings::{KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2};

/// The most entries a CPUID page holds.
pub const MAX_ENTRIES: usize = 64;
const HEADER: usize = 16;
const ENTRY: usize = 48;
const PAGE: usize = 4096;

/// One CPUID function as the page holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Function {
    /// The leaf.
    pub eax_in: u32,
    /// The subleaf (zero for leaves without one).
    pub ecx_in: u32,
    /// The XCR0 the values hold for (leaf 0xD).
    pub xcr0_in: u64,
    /// The XSS the values hold for (leaf 0xD).
    pub xss_in: u64,
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
    /// Must be zero.
    pub reserved: u64,
}

/// A CPUID page's contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuidPage {
    /// The functions.
    pub functions: Vec<Function>,
    /// The header's reserved bytes (must be zero).
    pub reserved: [u8; 12],
}

impl CpuidPage {
    /// The page QEMU builds from a vCPU's CPUID (`sev_snp_cpuid_info_fill`): every entry
    /// in order, the subleaf only where KVM marks the index significant, and leaf 0xD
    /// subleaves 0 and 1 given for XCR0 = 1 (EBX 0x240, the legacy XSAVE area), since the
    /// guest computes the other sizes itself.
    pub fn from_kvm(entries: &[kvm_cpuid_entry2]) -> Result<Self, String> {
        if entries.len() > MAX_ENTRIES {
            return Err(format!(
                "the guest's CPUID has {} entries; an SNP CPUID page holds at most {MAX_ENTRIES}",
                entries.len()
            ));
        }
        let functions = entries
            .iter()
            .map(|e| {
                let ecx_in = if e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0 {
                    e.index
                } else {
                    0
                };
                let mut f = Function {
                    eax_in: e.function,
                    ecx_in,
                    eax: e.eax,
                    ebx: e.ebx,
                    ecx: e.ecx,
                    edx: e.edx,
                    ..Function::default()
                };
                if f.eax_in == 0xd && f.ecx_in <= 1 {
                    f.ebx = 0x240;
                    f.xcr0_in = 1;
                    f.xss_in = 0;
                }
                f
            })
            .collect();
        Ok(CpuidPage {
            functions,
            reserved: [0; 12],
        })
    }

    /// The 4 KiB page.
    pub fn to_page(&self) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        let count = u32::try_from(self.functions.len()).unwrap_or(u32::MAX);
        p[..4].copy_from_slice(&count.to_le_bytes());
        p[4..HEADER].copy_from_slice(&self.reserved);
        for (f, e) in self
            .functions
            .iter()
            .zip(p[HEADER..].chunks_exact_mut(ENTRY))
        {
            e[0..4].copy_from_slice(&f.eax_in.to_le_bytes());
            e[4..8].copy_from_slice(&f.ecx_in.to_le_bytes());
            e[8..16].copy_from_slice(&f.xcr0_in.to_le_bytes());
            e[16..24].copy_from_slice(&f.xss_in.to_le_bytes());
            e[24..28].copy_from_slice(&f.eax.to_le_bytes());
            e[28..32].copy_from_slice(&f.ebx.to_le_bytes());
            e[32..36].copy_from_slice(&f.ecx.to_le_bytes());
            e[36..40].copy_from_slice(&f.edx.to_le_bytes());
            e[40..48].copy_from_slice(&f.reserved.to_le_bytes());
        }
        p
    }

    /// Reads a page; `Err` when its count is more than a page holds.
    pub fn parse(page: &[u8]) -> Result<Self, String> {
        let u32_at = |b: &[u8], o: usize| -> u32 {
            b.get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        let u64_at = |b: &[u8], o: usize| -> u64 {
            b.get(o..o + 8)
                .and_then(|s| s.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let count = usize::try_from(u32_at(page, 0)).unwrap_or(usize::MAX);
        if count > MAX_ENTRIES {
            return Err(format!(
                "count {count} is more than the {MAX_ENTRIES} a page holds"
            ));
        }
        let mut reserved = [0u8; 12];
        if let Some(r) = page.get(4..HEADER) {
            reserved.copy_from_slice(r);
        }
        let functions = page
            .get(HEADER..)
            .unwrap_or_default()
            .chunks_exact(ENTRY)
            .take(count)
            .map(|e| Function {
                eax_in: u32_at(e, 0),
                ecx_in: u32_at(e, 4),
                xcr0_in: u64_at(e, 8),
                xss_in: u64_at(e, 16),
                eax: u32_at(e, 24),
                ebx: u32_at(e, 28),
                ecx: u32_at(e, 32),
                edx: u32_at(e, 36),
                reserved: u64_at(e, 40),
            })
            .collect();
        Ok(CpuidPage {
            functions,
            reserved,
        })
    }

    /// Where `corrected` (the page the firmware wrote back) differs from `self` (the page
    /// sent): one line per leaf and register, as QEMU reports them.
    pub fn differences(&self, corrected: &CpuidPage) -> Vec<String> {
        let mut out = Vec::new();
        if self.functions.len() != corrected.functions.len() {
            out.push(format!(
                "{} functions sent, the firmware kept {}",
                self.functions.len(),
                corrected.functions.len()
            ));
        }
        for (a, b) in self.functions.iter().zip(&corrected.functions) {
            let leaf = format!("leaf {:#x} subleaf {:#x}", a.eax_in, a.ecx_in);
            for (reg, x, y) in [
                ("eax", a.eax, b.eax),
                ("ebx", a.ebx, b.ebx),
                ("ecx", a.ecx, b.ecx),
                ("edx", a.edx, b.edx),
            ] {
                if x != y {
                    out.push(format!(
                        "{leaf} {reg}: sent {x:#010x}, the firmware allows {y:#010x}"
                    ));
                }
            }
            if (a.eax_in, a.ecx_in) != (b.eax_in, b.ecx_in) {
                out.push(format!(
                    "{leaf}: the firmware wrote leaf {:#x} subleaf {:#x}",
                    b.eax_in, b.ecx_in
                ));
            }
            if a.reserved != b.reserved {
                out.push(format!("{leaf}: reserved field must be zero"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn entry(function: u32, index: u32, flags: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            flags,
            eax: 1,
            ebx: 0xdead,
            ecx: 3,
            edx: 4,
            ..Default::default()
        }
    }

    #[test]
    fn built_as_qemu_builds_it_and_round_trips() {
        let page = CpuidPage::from_kvm(&[
            entry(7, 1, 0),
            entry(7, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
            entry(0xd, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
            entry(0xd, 2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
        ])
        .unwrap();
        let f = &page.functions;
        assert_eq!((f[0].ecx_in, f[1].ecx_in), (0, 1));
        assert_eq!((f[2].ebx, f[2].xcr0_in), (0x240, 1));
        assert_eq!((f[3].ebx, f[3].xcr0_in), (0xdead, 0));
        let bytes = page.to_page();
        assert_eq!(&bytes[..4], &4u32.to_le_bytes());
        // Entry 2's EBX at 16 + 2 * 48 + 28.
        assert_eq!(&bytes[16 + 96 + 28..16 + 96 + 32], &0x240u32.to_le_bytes());
        assert_eq!(CpuidPage::parse(&bytes).unwrap(), page);
    }

    #[test]
    fn too_many_entries_and_differences_are_named() {
        let many = vec![entry(0, 0, 0); 65];
        assert!(
            CpuidPage::from_kvm(&many)
                .unwrap_err()
                .contains("at most 64")
        );
        let sent = CpuidPage::from_kvm(&[entry(1, 0, 0)]).unwrap();
        let mut fixed = sent.clone();
        fixed.functions[0].ebx = 0x800;
        assert_eq!(
            sent.differences(&fixed),
            vec!["leaf 0x1 subleaf 0x0 ebx: sent 0x0000dead, the firmware allows 0x00000800"]
        );
        let mut bad = sent.to_page();
        bad[0] = 65;
        assert!(CpuidPage::parse(&bad).is_err());
    }
}
