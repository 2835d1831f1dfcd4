//! The kernel hashes table that QEMU hands SEV guests for measured direct boot
//! (`SevHashTable` in QEMU's target/i386/sev.c; verified by OVMF's BlobVerifierSevHashes).

use crate::guid::known;
use crate::plan::KernelHashes;
use sha2::{Digest, Sha256};

/// Length of the table proper: header (GUID + u16) and three entries of 50 bytes.
pub const TABLE_LEN: usize = 168;
/// The table padded to a 16-byte multiple, as QEMU encrypts it.
pub const PADDED_LEN: usize = 176;

/// Computes the three hashes: the command line is hashed with its NUL terminator (just
/// a NUL when there is none), a missing initrd as empty input, the kernel as a file.
pub fn kernel_hashes(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&str>) -> KernelHashes {
    let mut c = Sha256::new();
    c.update(cmdline.unwrap_or("").as_bytes());
    c.update([0u8]);
    KernelHashes {
        cmdline: c.finalize().into(),
        initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
        kernel: Sha256::digest(kernel).into(),
    }
}

/// The padded table for `h`: the header GUID and the table's length (168), then three
/// entries of a GUID, the entry's length (50) and a SHA-256 (OVMF's
/// `PADDED_SEV_HASH_TABLE`). Every offset is a constant, checked at compile time.
pub fn table(h: &KernelHashes) -> [u8; PADDED_LEN] {
    use crate::bytes::put_at;
    let mut t = [0u8; PADDED_LEN];
    put_at::<0, _, _>(&mut t, &known::SEV_HASH_TABLE_HEADER.to_disk());
    put_at::<16, _, _>(&mut t, &168u16.to_le_bytes());
    put_at::<18, _, _>(&mut t, &known::SEV_CMDLINE_ENTRY.to_disk());
    put_at::<34, _, _>(&mut t, &50u16.to_le_bytes());
    put_at::<36, _, _>(&mut t, &h.cmdline);
    put_at::<68, _, _>(&mut t, &known::SEV_INITRD_ENTRY.to_disk());
    put_at::<84, _, _>(&mut t, &50u16.to_le_bytes());
    put_at::<86, _, _>(&mut t, &h.initrd);
    put_at::<118, _, _>(&mut t, &known::SEV_KERNEL_ENTRY.to_disk());
    put_at::<134, _, _>(&mut t, &50u16.to_le_bytes());
    put_at::<136, _, _>(&mut t, &h.kernel);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let h = kernel_hashes(b"kernel", None, None);
        let t = table(&h);
        assert_eq!(&t[..16], &known::SEV_HASH_TABLE_HEADER.to_disk());
        assert_eq!(&t[16..18], &168u16.to_le_bytes());
        assert_eq!(&t[18..34], &known::SEV_CMDLINE_ENTRY.to_disk());
        assert_eq!(&t[34..36], &50u16.to_le_bytes());
        // SHA-256 of a single NUL byte.
        assert_eq!(
            hex::encode(&t[36..68]),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // SHA-256 of nothing.
        assert_eq!(
            hex::encode(&t[86..118]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(&t[118..134], &known::SEV_KERNEL_ENTRY.to_disk());
        assert!(t[TABLE_LEN..].iter().all(|&b| b == 0));
    }
}
