//! The launch -> evidence exchange between `cvm launch --attest` and a guest.
//!
//! 1. The host draws a fresh 32-byte nonce per launch (or takes the pipeline's) and
//!    serves it to the guest as the fw_cfg file [`NONCE_FILE`].
//! 2. The guest binds it into its evidence: REPORT_DATA (SNP) or REPORTDATA (TDX) is
//!    [`report_data`]: SHA-512 of [`LABEL`] followed by the nonce.
//! 3. The guest writes one line on its serial console:
//!    `CVM-EVIDENCE 1 <snp|tdx|cca> <base64 evidence> [<base64 auxiliary data>]`
//!    (standard base64 with padding; the auxiliary data is the SNP certificate table,
//!    or the TD's firmware event log, [`crate::eventlog`]'s format, if any).
//!
//! The channel is untrusted by design: the evidence authenticates itself, and the nonce
//! binding shows it is this launch's. Lines are bounded ([`MAX_LINE`]); a malformed one
//! is an error that names the field and its offset, never a panic.

use base64::Engine;
use sha2::{Digest, Sha512};

/// The nonce's length.
pub const NONCE_LEN: usize = 32;
/// The fw_cfg file the nonce is served as.
pub const NONCE_FILE: &str = "opt/cvm/nonce";
/// What the guest hashes in front of the nonce.
pub const LABEL: &[u8] = b"cvm-evidence-nonce/1";
/// How every evidence line starts.
pub const PREFIX: &[u8] = b"CVM-EVIDENCE ";
/// The protocol version in the line.
pub const VERSION: &[u8] = b"1";
/// The longest line accepted, newline excluded: 256 KiB of base64 holds a TDX quote with
/// its certification data and collateral, or an SNP report with its certificate table.
pub const MAX_LINE: usize = 256 << 10;

/// REPORT_DATA / REPORTDATA for `nonce`: SHA-512(LABEL || nonce).
pub fn report_data(nonce: &[u8; NONCE_LEN]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(LABEL);
    h.update(nonce);
    h.finalize().into()
}

/// The evidence type a line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// An SEV-SNP attestation report.
    Snp,
    /// A TDX (DCAP) quote.
    Tdx,
    /// An Arm CCA attestation token.
    Cca,
}

impl EvidenceKind {
    /// The name in the line.
    pub fn name(self) -> &'static str {
        match self {
            EvidenceKind::Snp => "snp",
            EvidenceKind::Tdx => "tdx",
            EvidenceKind::Cca => "cca",
        }
    }
}

/// One evidence line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceLine {
    /// The evidence type.
    pub kind: EvidenceKind,
    /// The evidence.
    pub evidence: Vec<u8>,
    /// The auxiliary data, if the line has any.
    pub aux: Option<Vec<u8>>,
}

/// Why a line is not an evidence line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Longer than [`MAX_LINE`].
    #[error("an evidence line longer than {MAX_LINE} bytes")]
    TooLong,
    /// A field is wrong.
    #[error("evidence line, {field} at byte {offset}: {reason}")]
    Field {
        /// The field (`version`, `type`, `evidence`, `aux`, `end`).
        field: &'static str,
        /// Its offset in the line.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

fn field(field: &'static str, offset: usize, reason: impl Into<String>) -> LineError {
    LineError::Field {
        field,
        offset,
        reason: reason.into(),
    }
}

/// Decodes one line (without its newline; a trailing carriage return is allowed).
pub fn parse_line(line: &[u8]) -> Result<EvidenceLine, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line
        .strip_prefix(PREFIX)
        .ok_or_else(|| field("prefix", 0, "does not start with \"CVM-EVIDENCE \""))?;
    let mut offset = PREFIX.len();
    let mut fields = rest.split(|b| *b == b' ');
    let mut next = || {
        let f = fields.next();
        let at = offset;
        if let Some(f) = f {
            offset = offset.saturating_add(f.len()).saturating_add(1);
        }
        (f, at)
    };
    match next() {
        (Some(VERSION), _) => {}
        (v, at) => {
            return Err(field(
                "version",
                at,
                format!(
                    "{:?}, expected 1",
                    String::from_utf8_lossy(v.unwrap_or_default())
                ),
            ));
        }
    }
    let kind = match next() {
        (Some(b"snp"), _) => EvidenceKind::Snp,
        (Some(b"tdx"), _) => EvidenceKind::Tdx,
        (Some(b"cca"), _) => EvidenceKind::Cca,
        (t, at) => {
            return Err(field(
                "type",
                at,
                format!(
                    "{:?}, expected snp, tdx or cca",
                    String::from_utf8_lossy(t.unwrap_or_default())
                ),
            ));
        }
    };
    let decode = |name: &'static str, (f, at): (Option<&[u8]>, usize)| {
        let f = f.ok_or_else(|| field(name, at, "missing"))?;
        if f.is_empty() {
            return Err(field(name, at, "empty"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(f)
            .map_err(|e| field(name, at, format!("not base64: {e}")))
    };
    let evidence = decode("evidence", next())?;
    let aux = match next() {
        (None, _) => None,
        f => Some(decode("aux", f)?),
    };
    if let (Some(_), at) = next() {
        return Err(field("end", at, "more than five fields"));
    }
    Ok(EvidenceLine {
        kind,
        evidence,
        aux,
    })
}

/// Finds evidence lines in a console's output as it is written, buffering only lines
/// that start with [`PREFIX`] (other output passes without being kept).
#[derive(Debug, Default)]
pub struct LineScanner {
    line: Vec<u8>,
    /// The rest of the current line is not kept: not an evidence line, or too long.
    skipping: bool,
    /// The current line was already reported (too long).
    reported: bool,
}

impl LineScanner {
    /// Feeds console bytes; calls `found` for every complete evidence line, decoded or
    /// with its error (a line longer than [`MAX_LINE`] is reported once, as soon as it
    /// is too long).
    pub fn feed(&mut self, bytes: &[u8], found: &mut dyn FnMut(Result<EvidenceLine, LineError>)) {
        for &b in bytes {
            if b == b'\n' {
                // Only a line that has the whole prefix is an evidence line ("CVM" alone
                // is just console output).
                if !self.skipping && self.line.len() >= PREFIX.len() {
                    found(parse_line(&self.line));
                }
                self.line.clear();
                self.skipping = false;
                self.reported = false;
                continue;
            }
            if self.skipping {
                continue;
            }
            if self.line.len() >= MAX_LINE {
                if !self.reported {
                    found(Err(LineError::TooLong));
                    self.reported = true;
                }
                self.skipping = true;
                self.line.clear();
                continue;
            }
            self.line.push(b);
            let n = self.line.len().min(PREFIX.len());
            if self.line.get(..n) != PREFIX.get(..n) {
                self.skipping = true;
                self.line.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn lines_decode_and_errors_name_the_field() {
        let line = format!("CVM-EVIDENCE 1 snp {} {}\r", b64(b"report"), b64(b"certs"));
        let l = parse_line(line.as_bytes()).unwrap();
        assert_eq!(l.kind, EvidenceKind::Snp);
        assert_eq!(l.evidence, b"report");
        assert_eq!(l.aux.as_deref(), Some(&b"certs"[..]));
        let l = parse_line(format!("CVM-EVIDENCE 1 tdx {}", b64(b"quote")).as_bytes()).unwrap();
        assert_eq!((l.kind, l.aux), (EvidenceKind::Tdx, None));
        let err = |s: &str| parse_line(s.as_bytes()).unwrap_err().to_string();
        assert!(err("CVM-EVIDENCE 2 snp AAAA").contains("version at byte 13"));
        assert!(err("CVM-EVIDENCE 1 sgx AAAA").contains("type at byte 15"));
        assert!(err("CVM-EVIDENCE 1 snp").contains("evidence at byte 19: missing"));
        assert!(err("CVM-EVIDENCE 1 snp A*AA").contains("evidence at byte 19: not base64"));
        assert!(err("CVM-EVIDENCE 1 snp  AAAA").contains("evidence at byte 19: empty"));
        assert!(err("CVM-EVIDENCE 1 snp AAAA AAAA x").contains("end at byte 29"));
        assert!(err("CVM-EVIDENCE 1 snp AAAA ").contains("aux at byte 24: empty"));
        assert!(err("cvm-evidence 1 snp AAAA").contains("prefix"));
    }

    #[test]
    fn the_scanner_keeps_only_evidence_lines() {
        let mut found = Vec::new();
        let mut s = LineScanner::default();
        let long = vec![b'x'; MAX_LINE * 2];
        s.feed(b"booting...\nCVM-EVID", &mut |r| found.push(r));
        s.feed(b"ENCE 1 snp ", &mut |r| found.push(r));
        s.feed(&long, &mut |r| found.push(r));
        s.feed(
            b"\nCVM-EVIDENCE 1 tdx cXVvdGU=\nnoise CVM-EVIDENCE 1 tdx AAAA\n",
            &mut |r| found.push(r),
        );
        s.feed(b"CVM\nCVM-EVIDENCE\n", &mut |r| found.push(r));
        s.feed(b"CVM-EVIDENCE 1 cca AAAA", &mut |r| found.push(r));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], Err(LineError::TooLong));
        assert_eq!(found[1].as_ref().unwrap().evidence, b"quote");
        // The unterminated line is not complete yet.
        s.feed(b"\n", &mut |r| found.push(r));
        assert_eq!(found[2].as_ref().unwrap().kind, EvidenceKind::Cca);
        // Long console output that is not evidence is not buffered.
        let mut quiet = LineScanner::default();
        quiet.feed(&long, &mut |_| panic!("not evidence"));
        assert!(quiet.line.capacity() < 64);
    }

    #[test]
    fn the_binding_is_sha512_of_the_label_and_nonce() {
        let nonce = [7u8; 32];
        let mut input = b"cvm-evidence-nonce/1".to_vec();
        input.extend_from_slice(&nonce);
        assert_eq!(
            report_data(&nonce).to_vec(),
            Sha512::digest(&input).to_vec()
        );
    }
}
