//! The launch's nonce, read from `fw_cfg`, and the report data that binds it.

use crate::fwcfg;
use crate::io::Io;
use sha2::{Digest, Sha512};

/// `cvm_attest::exchange::LABEL`.
const LABEL: &[u8] = b"cvm-evidence-nonce/1";
/// `cvm_attest::exchange::NONCE_FILE`.
const NONCE_FILE: &[u8] = b"opt/cvm/nonce";
/// The nonce's length.
const NONCE_LEN: usize = 32;

/// The report data for the nonce in `fw_cfg`, or `None` when there is no 32-byte nonce.
pub fn binding(io: &mut impl Io) -> Option<[u8; 64]> {
    let mut nonce = [0u8; NONCE_LEN];
    if fwcfg::read_file(io, NONCE_FILE, &mut nonce) != Some(NONCE_LEN) {
        return None;
    }
    let mut h = Sha512::new();
    h.update(LABEL);
    h.update(nonce);
    Some(h.finalize().into())
}
