//! The SNP test PKI (tests/fixtures/snp-test-pki, TEST KEYS ONLY) and reports signed
//! with it, for the verification paths no real vector covers.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::panic,
    reason = "test support code"
)]

use crate::crate_dir;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use std::path::PathBuf;

/// The TCB the test VCEK/VLEK certify (generate.sh): Milan layout bl, tee, 4 reserved,
/// snp, ucode.
pub const TCB: [u8; 8] = [3, 0, 0, 0, 0, 0, 8, 115];

/// The test VCEK's hwID (generate.sh): c0 ff ee 00, then 01..3c.
pub fn hw_id() -> [u8; 64] {
    let mut id = [0u8; 64];
    id[..4].copy_from_slice(&[0xc0, 0xff, 0xee, 0x00]);
    for (i, b) in id[4..].iter_mut().enumerate() {
        *b = u8::try_from(i + 1).unwrap();
    }
    id
}

/// A file of the test PKI.
pub fn pki(name: &str) -> Vec<u8> {
    let path: PathBuf = crate_dir().join("fixtures/snp-test-pki").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which test key signs a report (SIGNING_KEY, flags bits 4:2).
#[derive(Clone, Copy)]
pub enum Key {
    /// The VCEK.
    Vcek,
    /// The VLEK.
    Vlek,
}

/// A version 3 Milan report as a healthy guest gets it, changed by `edit` before it is
/// signed with the test key its SIGNING_KEY names.
pub fn report(key: Key, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut r = vec![0u8; 0x4a0];
    r[0..4].copy_from_slice(&3u32.to_le_bytes()); // VERSION
    r[8..16].copy_from_slice(&0x3_0000u64.to_le_bytes()); // POLICY: SMT, bit 17
    r[0x34..0x38].copy_from_slice(&1u32.to_le_bytes()); // SIGNATURE_ALGO
    for tcb in [0x38, 0x180, 0x1e0, 0x1f0] {
        r[tcb..tcb + 8].copy_from_slice(&TCB);
    }
    let signing_key: u32 = match key {
        Key::Vcek => 0,
        Key::Vlek => 1,
    };
    r[0x48..0x4c].copy_from_slice(&(signing_key << 2).to_le_bytes());
    r[0x50..0x90].copy_from_slice(&[0x5a; 64]); // REPORT_DATA
    r[0x90..0xc0].copy_from_slice(&[0x11; 48]); // MEASUREMENT
    r[0x188..0x18b].copy_from_slice(&[0x19, 0x01, 0x01]); // CPUID: Milan
    if matches!(key, Key::Vcek) {
        r[0x1a0..0x1e0].copy_from_slice(&hw_id());
    }
    r[0x1e8..0x1eb].copy_from_slice(&[1, 55, 1]); // CURRENT firmware 1.55.1
    r[0x1ec..0x1ef].copy_from_slice(&[1, 55, 1]);
    edit(&mut r);
    sign(&mut r, key);
    r
}

/// Signs bytes 0x000..0x2A0 with the test key; R and S little-endian, zero-padded to 72.
pub fn sign(r: &mut [u8], key: Key) {
    let file = match key {
        Key::Vcek => "test-vcek-key.pk8",
        Key::Vlek => "test-vlek-key.pk8",
    };
    let rng = SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &pki(file), &rng).unwrap();
    let sig = pair.sign(&rng, &r[..0x2a0]).unwrap();
    let (big_r, big_s) = sig.as_ref().split_at(48);
    for (at, part) in [(0x2a0, big_r), (0x2e8, big_s)] {
        let mut le = part.to_vec();
        le.reverse();
        r[at..at + 48].copy_from_slice(&le);
    }
}
