//! EFI GUIDs: RFC 4122 UUIDs (the `uuid` crate) that images store mixed-endian, the
//! first three fields little-endian (`EFI_GUID` in the UEFI specification, appendix A).

use serde::Serialize;
use std::fmt;
use uuid::Uuid;

#[doc(hidden)]
pub use uuid::uuid as __uuid;

/// An EFI GUID from its canonical text, checked at compile time:
/// `crate::guid!("96b582de-1fb2-45f7-baea-a366c55a082d")`.
#[macro_export]
macro_rules! guid {
    ($text:literal) => {
        $crate::guid::Guid::from_uuid($crate::guid::__uuid!($text))
    };
}

/// An EFI GUID. It prints in canonical form; [`Guid::from_disk`] and [`Guid::to_disk`]
/// convert from and to the mixed-endian bytes an image stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(Uuid);

impl Guid {
    /// The GUID of a UUID (use [`guid!`] for constants).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Guid(uuid)
    }

    /// The GUID whose on-disk bytes are `bytes`.
    pub const fn from_disk(bytes: [u8; 16]) -> Self {
        Guid(Uuid::from_bytes_le(bytes))
    }

    /// The bytes an image stores for it.
    pub const fn to_disk(&self) -> [u8; 16] {
        self.0.to_bytes_le()
    }

    /// The GUID whose bytes, in RFC 4122 order (the order of its text form), are
    /// `bytes`: how the SNP certificate table stores GUIDs.
    pub const fn from_rfc_bytes(bytes: [u8; 16]) -> Self {
        Guid(Uuid::from_bytes(bytes))
    }

    /// Its bytes in RFC 4122 order.
    pub const fn to_rfc_bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
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

    /// The OVMF footer table itself.
    pub const FOOTER_TABLE: Guid = crate::guid!("96b582de-1fb2-45f7-baea-a366c55a082d");
    /// SEV-ES reset block: the AP reset address.
    pub const SEV_ES_RESET_BLOCK: Guid = crate::guid!("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
    /// SEV secret block: gpa and size.
    pub const SEV_SECRET_BLOCK: Guid = crate::guid!("4c2eb361-7d9b-4cc3-8081-127c90d3d294");
    /// SEV hashes table: gpa and size.
    pub const SEV_HASH_TABLE_RV: Guid = crate::guid!("7255371f-3a3b-4b04-927b-1da6efa8d454");
    /// SEV metadata: offset of "ASEV" from the end.
    pub const OVMF_SEV_METADATA: Guid = crate::guid!("dc886566-984a-4798-a75e-5585a7bf67cc");
    /// TDVF metadata: offset of "TDVF" from the end.
    pub const TDX_METADATA_OFFSET: Guid = crate::guid!("e47a6535-984a-4798-865e-4685a7bf8ec2");
    /// The kernel hashes table.
    pub const SEV_HASH_TABLE_HEADER: Guid = crate::guid!("9438d606-4f22-4cc9-b479-a793d411fd21");
    /// Command-line hash entry.
    pub const SEV_CMDLINE_ENTRY: Guid = crate::guid!("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");
    /// Initrd hash entry.
    pub const SEV_INITRD_ENTRY: Guid = crate::guid!("44baf731-3a2f-4bd7-9af1-41e29169781d");
    /// Kernel hash entry.
    pub const SEV_KERNEL_ENTRY: Guid = crate::guid!("4de79437-abd2-427f-b835-d5b172d2045b");

    /// cvm's own footer entry: a u32 of flags saying what the image does not do (see
    /// [`crate::ovmf::CvmGuestFlags`]); the built-in attesting guest carries it.
    pub const CVM_GUEST: Guid = crate::guid!("940b618b-cf51-4507-8fe1-75a6172b284b");

    /// A short name for a known GUID of the footer table.
    pub fn name(g: &Guid) -> Option<&'static str> {
        [
            (SEV_ES_RESET_BLOCK, "SEV_ES_RESET_BLOCK"),
            (SEV_SECRET_BLOCK, "SEV_SECRET_BLOCK"),
            (SEV_HASH_TABLE_RV, "SEV_HASH_TABLE_RV"),
            (OVMF_SEV_METADATA, "OVMF_SEV_METADATA"),
            (TDX_METADATA_OFFSET, "TDX_METADATA_OFFSET"),
            (CVM_GUEST, "CVM_GUEST"),
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
            known::SEV_ES_RESET_BLOCK.to_disk()[..4],
            [0xde, 0x71, 0xf7, 0x00],
            "first field is little-endian on disk"
        );
        let disk = known::FOOTER_TABLE.to_disk();
        assert_eq!(Guid::from_disk(disk), known::FOOTER_TABLE);
        assert_eq!(disk[8..], [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d]);
    }
}
