//! SNP guest messages as the guest builds and opens them (SEV-SNP Firmware ABI, "Guest
//! Message Header" and "MSG_REPORT_REQ"; ../shared/MODELS.md 5.1 gives the layouts as
//! Linux's sev-guest driver uses them): a 96-byte header, then the payload encrypted
//! with AES-256-GCM under a VMPCK, the IV the sequence number (8 bytes little-endian and
//! 4 zero bytes), the additional data the header's bytes 0x30..0x60, the tag in the
//! header's first 16 bytes. No I/O and no `unsafe`: `cvm launch --tee snp --dry-run
//! --attest` compiles this same file into cvm (launcher/src/guest.rs) and plays the
//! guest with it against the AMD-SP model, which opens the request and seals its answer
//! with the verifier's independent implementation (`cvm_attest::snp::guest_msg`, on
//! ring).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

/// The header's size.
pub const HEADER_LEN: usize = 0x60;
const HEADER_LEN_U16: u16 = 0x60;
/// MSG_REPORT_REQ.
pub const MSG_REPORT_REQ: u8 = 5;
/// MSG_REPORT_REQ's payload size.
pub const REPORT_REQ_LEN: usize = 0x60;
const REPORT_REQ_LEN_U16: u16 = 0x60;
/// MSG_REPORT_RSP.
pub const MSG_REPORT_RSP: u8 = 6;
/// An attestation report's size.
pub const REPORT_LEN: usize = 1184;
/// MSG_REPORT_RSP's payload size: status, report size, 24 reserved, the report.
pub const REPORT_RSP_LEN: usize = 0x20 + REPORT_LEN;
const REPORT_RSP_LEN_U16: u16 = 0x20 + 1184;
/// A sealed MSG_REPORT_REQ.
pub const REQUEST_LEN: usize = HEADER_LEN + REPORT_REQ_LEN;

/// Why a response is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgError {
    /// A header field (its offset) is not the response to this request.
    Header(usize),
    /// The tag does not verify with the VMPCK.
    Tag,
    /// The firmware's status in the response (nonzero).
    Status(u32),
}

impl core::fmt::Display for MsgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Header(off) => write!(
                f,
                "the response's header at byte {off:#x} is not the answer to this request"
            ),
            Self::Tag => f.write_str("the response's AES-256-GCM tag does not verify"),
            Self::Status(s) => write!(f, "the firmware refused the request: status {s:#x}"),
        }
    }
}

fn iv(seqno: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    if let Some(head) = iv.get_mut(..8) {
        head.copy_from_slice(&seqno.to_le_bytes());
    }
    iv
}

fn header(seqno: u64, msg_type: u8, msg_size: u16, vmpck: u8) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let mut put = |off: usize, bytes: &[u8]| {
        if let Some(dst) = h.get_mut(off..off + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(0x20, &seqno.to_le_bytes());
    put(0x30, &[1, 1]); // algo AES-256-GCM, header version 1
    put(0x32, &HEADER_LEN_U16.to_le_bytes());
    put(0x34, &[msg_type, 1]); // message type, version 1
    put(0x36, &msg_size.to_le_bytes());
    put(0x3c, &[vmpck]);
    h
}

/// MSG_REPORT_REQ number `seqno` for `report_data`, sealed with VMPCK0 (`key`): VMPL 0,
/// key_sel 0 (the VLEK if installed, else the VCEK), the reserved bytes zero.
pub fn report_request(key: &[u8; 32], seqno: u64, report_data: &[u8; 64]) -> [u8; REQUEST_LEN] {
    let mut msg = [0u8; REQUEST_LEN];
    let (hdr, payload) = msg.split_at_mut(HEADER_LEN);
    hdr.copy_from_slice(&header(seqno, MSG_REPORT_REQ, REPORT_REQ_LEN_U16, 0));
    if let Some(rd) = payload.get_mut(..64) {
        rd.copy_from_slice(report_data);
    }
    let cipher = Aes256Gcm::new(key.into());
    let aad = hdr.get(0x30..HEADER_LEN).unwrap_or_default();
    // AES-GCM fails only for inputs beyond 2^36 bytes; this payload is 96.
    if let (Ok(tag), Some(t)) = (
        cipher.encrypt_in_place_detached(Nonce::from_slice(&iv(seqno)), aad, payload),
        hdr.get_mut(..16),
    ) {
        t.copy_from_slice(&tag);
    }
    msg
}

/// Opens the firmware's answer to request `seqno` (its sequence number is `seqno + 1`):
/// checks the header, authenticates and decrypts the payload in place, and returns the
/// report (the firmware's status must be 0).
pub fn open_report_response(
    key: &[u8; 32],
    seqno: u64,
    msg: &mut [u8],
) -> Result<[u8; REPORT_LEN], MsgError> {
    if msg.len() < HEADER_LEN + REPORT_RSP_LEN {
        return Err(MsgError::Header(0x36));
    }
    let want = header(seqno.wrapping_add(1), MSG_REPORT_RSP, REPORT_RSP_LEN_U16, 0);
    for off in 0x20..HEADER_LEN {
        if msg.get(off) != want.get(off) {
            return Err(MsgError::Header(off));
        }
    }
    let (hdr, rest) = msg.split_at_mut(HEADER_LEN);
    let payload = rest
        .get_mut(..REPORT_RSP_LEN)
        .ok_or(MsgError::Header(0x36))?;
    let tag = Tag::clone_from_slice(hdr.get(..16).ok_or(MsgError::Header(0))?);
    let aad = hdr.get(0x30..HEADER_LEN).ok_or(MsgError::Header(0x30))?;
    Aes256Gcm::new(key.into())
        .decrypt_in_place_detached(
            Nonce::from_slice(&iv(seqno.wrapping_add(1))),
            aad,
            payload,
            &tag,
        )
        .map_err(|_| MsgError::Tag)?;
    let word = |off: usize| {
        let mut b = [0u8; 4];
        if let Some(src) = payload.get(off..off + 4) {
            b.copy_from_slice(src);
        }
        u32::from_le_bytes(b)
    };
    if word(0) != 0 {
        return Err(MsgError::Status(word(0)));
    }
    if word(4) as usize != REPORT_LEN {
        return Err(MsgError::Header(HEADER_LEN + 4));
    }
    let mut report = [0u8; REPORT_LEN];
    report.copy_from_slice(
        payload
            .get(0x20..REPORT_RSP_LEN)
            .unwrap_or(&[0u8; REPORT_LEN]),
    );
    Ok(report)
}

/// A GHCB certificate table's entry: GUID, offset and length (from the table's start).
const CERT_ENTRY_LEN: usize = 24;

/// How many bytes of `buf` the GHCB certificate table at its start takes (GHCB spec,
/// SNP Extended Guest Request: 24-byte entries {GUID, u32 offset, u32 length} ended by an
/// all-zero entry, each certificate inside the buffer): the end of the entries or of the
/// furthest certificate. 0 when the table is empty or does not fit in `buf` (the host
/// gave nothing usable: the evidence then goes without it).
pub fn cert_table_len(buf: &[u8]) -> usize {
    let mut end = 0usize;
    for (i, entry) in buf.chunks(CERT_ENTRY_LEN).enumerate() {
        if entry.len() < CERT_ENTRY_LEN {
            return 0;
        }
        if entry.iter().all(|&b| b == 0) {
            if i == 0 {
                return 0;
            }
            let entries_end = (i + 1) * CERT_ENTRY_LEN;
            return end.max(entries_end);
        }
        let field = |at: usize| {
            let mut b = [0u8; 4];
            if let Some(src) = entry.get(at..at + 4) {
                b.copy_from_slice(src);
            }
            usize::try_from(u32::from_le_bytes(b)).unwrap_or(usize::MAX)
        };
        match field(16).checked_add(field(20)) {
            Some(cert_end) if cert_end <= buf.len() => end = end.max(cert_end),
            _ => return 0,
        }
    }
    0
}
