//! The kernel hashes table that QEMU hands SEV guests for measured direct boot
//! (`SevHashTable` in QEMU's target/i386/sev.c; verified by OVMF's BlobVerifierSevHashes).

use crate::guid::{Guid, known};
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

/// The padded table for `h`.
pub fn table(h: &KernelHashes) -> [u8; PADDED_LEN] {
    let mut t = [0u8; PADDED_LEN];
    let mut w = Writer { buf: &mut t, at: 0 };
    w.guid(&known::SEV_HASH_TABLE_HEADER);
    w.u16(168);
    for (guid, digest) in [
        (known::SEV_CMDLINE_ENTRY, &h.cmdline),
        (known::SEV_INITRD_ENTRY, &h.initrd),
        (known::SEV_KERNEL_ENTRY, &h.kernel),
    ] {
        w.guid(&guid);
        w.u16(50);
        w.bytes(digest);
    }
    t
}

struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        crate::bytes::put(self.buf, self.at, b);
        self.at = self.at.saturating_add(b.len());
    }
    fn guid(&mut self, g: &Guid) {
        self.bytes(&g.0);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let h = kernel_hashes(b"kernel", None, None);
        let t = table(&h);
        assert_eq!(&t[..16], &known::SEV_HASH_TABLE_HEADER.0);
        assert_eq!(&t[16..18], &168u16.to_le_bytes());
        assert_eq!(&t[18..34], &known::SEV_CMDLINE_ENTRY.0);
        assert_eq!(&t[34..36], &50u16.to_le_bytes());
        // SHA-256 of a single NUL byte.
        assert_eq!(
            crate::hex::encode(&t[36..68]),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // SHA-256 of nothing.
        assert_eq!(
            crate::hex::encode(&t[86..118]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(&t[118..134], &known::SEV_KERNEL_ENTRY.0);
        assert!(t[TABLE_LEN..].iter().all(|&b| b == 0));
    }
}
