//! EFI GUIDs as they are stored in images (mixed-endian).

use serde::Serialize;
use std::fmt;

/// A GUID in its on-disk byte order: the first three fields little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Builds a GUID from its canonical fields, `d1-d2-d3-d4[0..2]-d4[2..8]`.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        for (i, idx) in order.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{:02x}", b.get(*idx).copied().unwrap_or(0))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The GUIDs cvm knows.
pub mod known {
    use super::Guid;

    /// The OVMF footer table itself (`96b582de-1fb2-45f7-baea-a366c55a082d`).
    pub const FOOTER_TABLE: Guid = Guid::new(
        0x96b5_82de,
        0x1fb2,
        0x45f7,
        [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
    );
    /// SEV-ES reset block: the AP reset address (`00f771de-1a7e-4fcb-890e-68c77e2fb44e`).
    pub const SEV_ES_RESET_BLOCK: Guid = Guid::new(
        0x00f7_71de,
        0x1a7e,
        0x4fcb,
        [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
    );
    /// SEV secret block: gpa and size (`4c2eb361-7d9b-4cc3-8081-127c90d3d294`).
    pub const SEV_SECRET_BLOCK: Guid = Guid::new(
        0x4c2e_b361,
        0x7d9b,
        0x4cc3,
        [0x80, 0x81, 0x12, 0x7c, 0x90, 0xd3, 0xd2, 0x94],
    );
    /// SEV hashes table: gpa and size (`7255371f-3a3b-4b04-927b-1da6efa8d454`).
    pub const SEV_HASH_TABLE_RV: Guid = Guid::new(
        0x7255_371f,
        0x3a3b,
        0x4b04,
        [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
    );
    /// SEV metadata: offset of "ASEV" from the end (`dc886566-984a-4798-a75e-5585a7bf67cc`).
    pub const OVMF_SEV_METADATA: Guid = Guid::new(
        0xdc88_6566,
        0x984a,
        0x4798,
        [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
    );
    /// TDVF metadata: offset of "TDVF" from the end (`e47a6535-984a-4798-865e-4685a7bf8ec2`).
    pub const TDX_METADATA_OFFSET: Guid = Guid::new(
        0xe47a_6535,
        0x984a,
        0x4798,
        [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
    );
    /// The kernel hashes table (`9438d606-4f22-4cc9-b479-a793d411fd21`).
    pub const SEV_HASH_TABLE_HEADER: Guid = Guid::new(
        0x9438_d606,
        0x4f22,
        0x4cc9,
        [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
    );
    /// Command-line hash entry (`97d02dd8-bd20-4c94-aa78-e7714d36ab2a`).
    pub const SEV_CMDLINE_ENTRY: Guid = Guid::new(
        0x97d0_2dd8,
        0xbd20,
        0x4c94,
        [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
    );
    /// Initrd hash entry (`44baf731-3a2f-4bd7-9af1-41e29169781d`).
    pub const SEV_INITRD_ENTRY: Guid = Guid::new(
        0x44ba_f731,
        0x3a2f,
        0x4bd7,
        [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
    );
    /// Kernel hash entry (`4de79437-abd2-427f-b835-d5b172d2045b`).
    pub const SEV_KERNEL_ENTRY: Guid = Guid::new(
        0x4de7_9437,
        0xabd2,
        0x427f,
        [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
    );

    /// A short name for a known GUID of the footer table.
    pub fn name(g: &Guid) -> Option<&'static str> {
        [
            (SEV_ES_RESET_BLOCK, "SEV_ES_RESET_BLOCK"),
            (SEV_SECRET_BLOCK, "SEV_SECRET_BLOCK"),
            (SEV_HASH_TABLE_RV, "SEV_HASH_TABLE_RV"),
            (OVMF_SEV_METADATA, "OVMF_SEV_METADATA"),
            (TDX_METADATA_OFFSET, "TDX_METADATA_OFFSET"),
        ]
        .iter()
        .find(|(k, _)| k == g)
        .map(|(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_canonical() {
        assert_eq!(
            known::FOOTER_TABLE.to_string(),
            "96b582de-1fb2-45f7-baea-a366c55a082d"
        );
        assert_eq!(
            known::SEV_ES_RESET_BLOCK.0[..4],
            [0xde, 0x71, 0xf7, 0x00],
            "first field is little-endian on disk"
        );
    }
}
