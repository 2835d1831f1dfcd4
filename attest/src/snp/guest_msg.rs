//! SNP guest messages: the 96-byte message header and the AES-256-GCM protection with a
//! VMPCK (SEV-SNP Firmware ABI, "Guest Message Header" and "Message Protection"; the
//! layout as Linux's `drivers/virt/coco/sev-guest` and ../shared/MODELS.md 5.1 give it),
//! and the MSG_REPORT_REQ / MSG_REPORT_RSP payloads. The guest's side (sealing a request,
//! opening the response) and the firmware's (opening a request, sealing the response)
//! use the same code: the model of the AMD-SP answers with it, and `cvm launch --dry-run
//! --attest` plays the guest with it.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// The header's size.
pub const HEADER_LEN: usize = 0x60;
/// The most payload a message page holds.
pub const MAX_PAYLOAD: usize = 4096 - HEADER_LEN;
/// AES-256-GCM, the only algorithm (`algo`).
pub const ALGO_AES_256_GCM: u8 = 1;
/// The header version.
pub const HDR_VERSION: u8 = 1;
/// MSG_REPORT_REQ.
pub const MSG_REPORT_REQ: u8 = 5;
/// MSG_REPORT_RSP.
pub const MSG_REPORT_RSP: u8 = 6;
/// MSG_REPORT_REQ's payload size.
pub const REPORT_REQ_LEN: usize = 0x60;
/// MSG_REPORT_RSP's payload size: status, size, reserved, then the report.
pub const REPORT_RSP_LEN: usize = 0x20 + crate::snp::report::REPORT_LEN;

/// A guest message, in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sequence number (the GCM IV).
    pub seqno: u64,
    /// The message type.
    pub msg_type: u8,
    /// Its version.
    pub msg_version: u8,
    /// Which VMPCK protects it (0-3).
    pub vmpck: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestMsgError {
    /// A header field is not what the firmware accepts (its INVALID_PARAM).
    #[error("guest message header, {field} at byte {offset:#x}: {reason}")]
    Header {
        /// The field.
        field: &'static str,
        /// Its offset.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The authentication tag does not verify with the VMPCK.
    #[error("guest message: the AES-256-GCM tag does not verify with VMPCK{0}")]
    Tag(u8),
    /// A payload is malformed.
    #[error("guest message payload, {field} at byte {offset:#x}: {reason}")]
    Payload {
        /// The field.
        field: &'static str,
        /// Its offset in the payload.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

fn header(field: &'static str, offset: usize, reason: impl Into<String>) -> GuestMsgError {
    GuestMsgError::Header {
        field,
        offset,
        reason: reason.into(),
    }
}

fn key(vmpck: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always a valid AES-256 key.
    match UnboundKey::new(&AES_256_GCM, vmpck) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => unreachable_key(),
    }
}

#[cold]
fn unreachable_key() -> LessSafeKey {
    // ring refuses only keys of the wrong length; [0; 32] has the right one.
    #[allow(clippy::expect_used, reason = "a 32-byte key is AES-256's length")]
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0u8; 32]).expect("AES-256 key length"))
}

/// The IV: the sequence number, little-endian, then four zero bytes.
fn nonce(seqno: u64) -> Nonce {
    let mut iv = [0u8; 12];
    if let Some(d) = iv.get_mut(..8) {
        d.copy_from_slice(&seqno.to_le_bytes());
    }
    Nonce::assume_unique_for_key(iv)
}

/// The header's authenticated fields (bytes 0x30..0x60) for `m`.
fn aad(m: &Message, size: u16) -> [u8; 0x30] {
    let mut a = [0u8; 0x30];
    let put = |a: &mut [u8; 0x30], at: usize, b: &[u8]| {
        if let Some(d) = a.get_mut(at..at.saturating_add(b.len())) {
            d.copy_from_slice(b);
        }
    };
    put(&mut a, 0, &[ALGO_AES_256_GCM, HDR_VERSION]);
    put(
        &mut a,
        2,
        &u16::try_from(HEADER_LEN).unwrap_or(0).to_le_bytes(),
    );
    put(&mut a, 4, &[m.msg_type, m.msg_version]);
    put(&mut a, 6, &size.to_le_bytes());
    put(&mut a, 0xc, &[m.vmpck]);
    a
}

/// Seals `m` with `vmpck`: the 96-byte header, then the encrypted payload.
pub fn seal(vmpck: &[u8; 32], m: &Message) -> Result<Vec<u8>, GuestMsgError> {
    if m.payload.is_empty() || m.payload.len() > MAX_PAYLOAD {
        return Err(header(
            "msg_size",
            0x36,
            format!("{} bytes (1 to {MAX_PAYLOAD})", m.payload.len()),
        ));
    }
    if m.vmpck > 3 {
        return Err(header("msg_vmpck", 0x3c, format!("{} (0-3)", m.vmpck)));
    }
    let size = u16::try_from(m.payload.len()).unwrap_or(u16::MAX);
    let aad_bytes = aad(m, size);
    let mut body = m.payload.clone();
    let tag = key(vmpck)
        .seal_in_place_separate_tag(nonce(m.seqno), Aad::from(aad_bytes), &mut body)
        .map_err(|_| header("payload", HEADER_LEN, "cannot be encrypted"))?;
    let mut out = vec![0u8; HEADER_LEN];
    if let Some(d) = out.get_mut(..16) {
        d.copy_from_slice(tag.as_ref());
    }
    if let Some(d) = out.get_mut(0x20..0x28) {
        d.copy_from_slice(&m.seqno.to_le_bytes());
    }
    if let Some(d) = out.get_mut(0x30..HEADER_LEN) {
        d.copy_from_slice(&aad_bytes);
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a sealed message with `vmpck`, checking the header as the firmware does:
/// algorithm 1, header version 1 and size 0x60, a nonzero payload size that is a
/// multiple of 16 and fits the message, VMPCK 0-3, reserved bytes zero, and the tag.
pub fn open(vmpck: &[u8; 32], bytes: &[u8]) -> Result<Message, GuestMsgError> {
    let hdr = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| header("header", 0, format!("{} bytes, not 96", bytes.len())))?;
    let b = |at: usize| hdr.get(at).copied().unwrap_or(0);
    let u16_at = |at: usize| u16::from_le_bytes([b(at), b(at.saturating_add(1))]);
    if b(0x30) != ALGO_AES_256_GCM {
        return Err(header(
            "algo",
            0x30,
            format!("{} (1: AES-256-GCM)", b(0x30)),
        ));
    }
    if b(0x31) != HDR_VERSION {
        return Err(header("hdr_version", 0x31, format!("{} (1)", b(0x31))));
    }
    if usize::from(u16_at(0x32)) != HEADER_LEN {
        return Err(header(
            "hdr_size",
            0x32,
            format!("{:#x} (0x60)", u16_at(0x32)),
        ));
    }
    let size = usize::from(u16_at(0x36));
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    if size == 0 || !size.is_multiple_of(16) || size > body.len() || size > MAX_PAYLOAD {
        return Err(header(
            "msg_size",
            0x36,
            format!(
                "{size} (nonzero, a multiple of 16, within the {} bytes given)",
                body.len()
            ),
        ));
    }
    let vmpck_index = b(0x3c);
    if vmpck_index > 3 {
        return Err(header("msg_vmpck", 0x3c, format!("{vmpck_index} (0-3)")));
    }
    let reserved_zero =
        |r: std::ops::Range<usize>| hdr.get(r).is_some_and(|s| s.iter().all(|x| *x == 0));
    if !reserved_zero(0x10..0x20)
        || !reserved_zero(0x28..0x30)
        || !reserved_zero(0x38..0x3c)
        || !reserved_zero(0x3d..HEADER_LEN)
    {
        return Err(header("reserved", 0x10, "not zero"));
    }
    let mut seqno = [0u8; 8];
    seqno.copy_from_slice(hdr.get(0x20..0x28).unwrap_or(&[0; 8]));
    let m = Message {
        seqno: u64::from_le_bytes(seqno),
        msg_type: b(0x34),
        msg_version: b(0x35),
        vmpck: vmpck_index,
        payload: Vec::new(),
    };
    let mut tag = [0u8; 16];
    tag.copy_from_slice(hdr.get(..16).unwrap_or(&[0; 16]));
    let mut payload = body.get(..size).unwrap_or_default().to_vec();
    key(vmpck)
        .open_in_place_separate_tag(
            nonce(m.seqno),
            Aad::from(aad(&m, u16::try_from(size).unwrap_or(0))),
            Tag::from(tag),
            &mut payload,
            0..,
        )
        .map_err(|_| GuestMsgError::Tag(vmpck_index))?;
    Ok(Message { payload, ..m })
}

/// MSG_REPORT_REQ's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRequest {
    /// REPORT_DATA.
    pub report_data: [u8; 64],
    /// The VMPL to report (at least the message's VMPCK index).
    pub vmpl: u32,
    /// KEY_SEL: 0 the VLEK if one is installed else the VCEK, 1 the VCEK, 2 the VLEK.
    pub key_sel: u32,
}

impl ReportRequest {
    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = vec![0u8; REPORT_REQ_LEN];
        if let Some(d) = p.get_mut(..64) {
            d.copy_from_slice(&self.report_data);
        }
        if let Some(d) = p.get_mut(0x40..0x44) {
            d.copy_from_slice(&self.vmpl.to_le_bytes());
        }
        if let Some(d) = p.get_mut(0x44..0x48) {
            d.copy_from_slice(&self.key_sel.to_le_bytes());
        }
        p
    }

    /// Decodes a payload: 0x60 bytes, KEY_SEL 0-2 in bits 1:0, the rest reserved zero.
    pub fn decode(p: &[u8]) -> Result<Self, GuestMsgError> {
        let bad = |field, offset, reason: String| GuestMsgError::Payload {
            field,
            offset,
            reason,
        };
        if p.len() != REPORT_REQ_LEN {
            return Err(bad("size", 0, format!("{} bytes, not 0x60", p.len())));
        }
        let u32_at = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(p.get(at..at.saturating_add(4)).unwrap_or(&[0; 4]));
            u32::from_le_bytes(w)
        };
        let key_sel = u32_at(0x44);
        if key_sel > 2 {
            return Err(bad("key_sel", 0x44, format!("{key_sel} (0-2)")));
        }
        if p.get(0x48..).is_some_and(|r| r.iter().any(|x| *x != 0)) {
            return Err(bad("reserved", 0x48, "not zero".into()));
        }
        let mut report_data = [0u8; 64];
        report_data.copy_from_slice(p.get(..64).unwrap_or(&[0; 64]));
        Ok(ReportRequest {
            report_data,
            vmpl: u32_at(0x40),
            key_sel,
        })
    }
}

/// MSG_REPORT_RSP's payload: status, the report's size, reserved, the report.
pub fn report_response(status: u32, report: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; REPORT_RSP_LEN];
    if let Some(d) = p.get_mut(..4) {
        d.copy_from_slice(&status.to_le_bytes());
    }
    let n = report.len().min(crate::snp::report::REPORT_LEN);
    if let Some(d) = p.get_mut(4..8) {
        d.copy_from_slice(&u32::try_from(n).unwrap_or(0).to_le_bytes());
    }
    if let (Some(d), Some(s)) = (
        p.get_mut(0x20..0x20_usize.saturating_add(n)),
        report.get(..n),
    ) {
        d.copy_from_slice(s);
    }
    p
}

/// The report in a MSG_REPORT_RSP payload: the status must be 0 and the size the
/// report's.
pub fn parse_report_response(p: &[u8]) -> Result<&[u8], GuestMsgError> {
    let bad = |field, offset, reason: String| GuestMsgError::Payload {
        field,
        offset,
        reason,
    };
    let u32_at = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(p.get(at..at.saturating_add(4)).unwrap_or(&[0; 4]));
        u32::from_le_bytes(w)
    };
    if p.len() < REPORT_RSP_LEN {
        return Err(bad(
            "size",
            0,
            format!("{} bytes, not {REPORT_RSP_LEN}", p.len()),
        ));
    }
    match u32_at(0) {
        0 => {}
        0x16 => return Err(bad("status", 0, "INVALID_PARAM (0x16)".into())),
        0x27 => return Err(bad("status", 0, "INVALID_KEY (0x27)".into())),
        s => return Err(bad("status", 0, format!("{s:#x}"))),
    }
    let size = u32_at(4);
    if usize::try_from(size).ok() != Some(crate::snp::report::REPORT_LEN) {
        return Err(bad("report_size", 4, format!("{size}, not 1184")));
    }
    p.get(0x20..REPORT_RSP_LEN)
        .ok_or_else(|| bad("report", 0x20, "truncated".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn a_request_round_trips_and_tampering_is_caught() {
        let vmpck = [7u8; 32];
        let req = ReportRequest {
            report_data: [0x42; 64],
            vmpl: 0,
            key_sel: 1,
        };
        let m = Message {
            seqno: 1,
            msg_type: MSG_REPORT_REQ,
            msg_version: 1,
            vmpck: 0,
            payload: req.encode(),
        };
        let sealed = seal(&vmpck, &m).unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + REPORT_REQ_LEN);
        // The header as the ABI lays it out.
        assert_eq!(&sealed[0x20..0x28], &1u64.to_le_bytes());
        assert_eq!(&sealed[0x30..0x38], &[1, 1, 0x60, 0, 5, 1, 0x60, 0]);
        // The payload is encrypted.
        assert_ne!(&sealed[HEADER_LEN..HEADER_LEN + 64], &[0x42; 64]);
        let opened = open(&vmpck, &sealed).unwrap();
        assert_eq!(opened, m);
        assert_eq!(ReportRequest::decode(&opened.payload).unwrap(), req);
        // Another key, a flipped payload bit, a changed authenticated header field.
        assert_eq!(open(&[8u8; 32], &sealed), Err(GuestMsgError::Tag(0)));
        let mut t = sealed.clone();
        t[HEADER_LEN] ^= 1;
        assert_eq!(open(&vmpck, &t), Err(GuestMsgError::Tag(0)));
        let mut t = sealed.clone();
        t[0x35] = 2;
        assert_eq!(open(&vmpck, &t), Err(GuestMsgError::Tag(0)));
        let mut t = sealed.clone();
        t[0x20] = 3;
        assert_eq!(open(&vmpck, &t), Err(GuestMsgError::Tag(0)));
        // Header rules.
        let mut t = sealed.clone();
        t[0x30] = 2;
        assert!(
            open(&vmpck, &t)
                .unwrap_err()
                .to_string()
                .contains("algo at byte 0x30")
        );
        let mut t = sealed.clone();
        t[0x36] = 0x58;
        assert!(
            open(&vmpck, &t)
                .unwrap_err()
                .to_string()
                .contains("msg_size")
        );
        assert!(open(&vmpck, &sealed[..50]).is_err());
        let mut t = sealed;
        t[0x3c] = 4;
        assert!(
            open(&vmpck, &t)
                .unwrap_err()
                .to_string()
                .contains("msg_vmpck")
        );
    }

    #[test]
    fn responses_carry_the_report() {
        let report = vec![0xabu8; 1184];
        let p = report_response(0, &report);
        assert_eq!(p.len(), 0x4c0);
        assert_eq!(parse_report_response(&p).unwrap(), &report[..]);
        assert!(parse_report_response(&report_response(0x16, &report)).is_err());
        assert!(parse_report_response(&p[..100]).is_err());
        assert!(ReportRequest::decode(&[0u8; 0x50]).is_err());
        let mut bad = ReportRequest {
            report_data: [0; 64],
            vmpl: 0,
            key_sel: 3,
        }
        .encode();
        assert!(ReportRequest::decode(&bad).is_err());
        bad[0x44] = 0;
        bad[0x50] = 1;
        assert!(ReportRequest::decode(&bad).is_err());
    }
}
