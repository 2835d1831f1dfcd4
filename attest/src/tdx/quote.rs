//! Intel DCAP quotes: version 4 and 5 (TDX, TD report 1.0 and 1.5) and version 3 (SGX),
//! with ECDSA-256 attestation keys.
//!
//! The parse is bounded by the lengths the quote declares: every length must agree with
//! its contents exactly, and bytes after the declared end (buffer padding, which real
//! quote-generation libraries leave) are counted and reported but never read.

use std::fmt;

/// The quote header's length.
pub const HEADER_LEN: usize = 48;
/// A TD report 1.0 body.
pub const TD10_LEN: usize = 584;
/// A TD report 1.5 body (1.0 plus TEE_TCB_SVN_2 and MRSERVICETD).
pub const TD15_LEN: usize = 648;
/// An SGX enclave report body (also the QE report).
pub const ENCLAVE_REPORT_LEN: usize = 384;
/// Intel's QE vendor ID.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Attestation key type 2: ECDSA-256-with-P-256.
pub const ECDSA_P256: u16 = 2;
/// TEE type of a TDX quote.
pub const TEE_TDX: u32 = 0x81;
/// TEE type of an SGX quote.
pub const TEE_SGX: u32 = 0;
/// Certification data type 5: the PCK certificate chain, PEM.
pub const CERT_PCK_CHAIN: u16 = 5;
/// Certification data type 6: the QE report certification data.
pub const CERT_QE_REPORT: u16 = 6;

/// Why a quote could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteError {
    /// The quote ends inside a field.
    #[error("truncated: {field} at offset {offset:#x} needs {need} bytes, {have} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its offset in the quote.
        offset: usize,
        /// Its length.
        need: usize,
        /// The bytes left from its offset.
        have: usize,
    },
    /// A field holds a value this verifier does not accept.
    #[error("{field} at offset {offset:#x}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its offset in the quote.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Which TEE produced the quote: [`Tee::Tdx`] (versions 4 and 5) or [`Tee::Sgx`]
/// (version 3), the one TEE type of the firmware crate.
pub use cvm_firmware::Tee;

/// The quote header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 3, 4 or 5.
    pub version: u16,
    /// 2 (ECDSA-256-with-P-256).
    pub att_key_type: u16,
    /// 0x81 TDX, 0 SGX.
    pub tee_type: u32,
    /// QE SVN (SGX v3; reserved in v4/v5).
    pub qe_svn: u16,
    /// PCE SVN (SGX v3; reserved in v4/v5).
    pub pce_svn: u16,
    /// The QE vendor (Intel's QE: [`INTEL_QE_VENDOR_ID`]).
    pub qe_vendor_id: [u8; 16],
    /// User data (the first 16 bytes are the platform's QE ID).
    pub user_data: [u8; 20],
}

/// A TD report body (1.0, or 1.5 with the last two fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdReport {
    /// TEE_TCB_SVN: [0] TDX module minor SVN, [1] module major version, then the
    /// platform's TDX TCB components.
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM: the TDX module's measurement.
    pub mr_seam: [u8; 48],
    /// MRSIGNERSEAM: its signer (zero for Intel's modules).
    pub mr_signer_seam: [u8; 48],
    /// SEAMATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// TDATTRIBUTES.
    pub td_attributes: [u8; 8],
    /// XFAM.
    pub xfam: [u8; 8],
    /// MRTD: the build-time measurement.
    pub mr_td: [u8; 48],
    /// MRCONFIGID.
    pub mr_config_id: [u8; 48],
    /// MROWNER.
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG.
    pub mr_owner_config: [u8; 48],
    /// RTMR 0-3.
    pub rtmr: [[u8; 48]; 4],
    /// REPORTDATA.
    pub report_data: [u8; 64],
    /// TEE_TCB_SVN_2 (TD report 1.5).
    pub tee_tcb_svn_2: Option<[u8; 16]>,
    /// MRSERVICETD (TD report 1.5).
    pub mr_service_td: Option<[u8; 48]>,
}

/// An SGX enclave report body (the ISV enclave of an SGX quote, and every QE report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnclaveReport {
    /// CPUSVN.
    pub cpu_svn: [u8; 16],
    /// MISCSELECT.
    pub misc_select: u32,
    /// ATTRIBUTES.
    pub attributes: [u8; 16],
    /// MRENCLAVE.
    pub mr_enclave: [u8; 32],
    /// MRSIGNER.
    pub mr_signer: [u8; 32],
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// REPORTDATA.
    pub report_data: [u8; 64],
}

/// The quote's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A TD report 1.0 (v4, or v5 body type 2).
    Td10(TdReport),
    /// A TD report 1.5 (v5 body type 3).
    Td15(TdReport),
    /// An SGX enclave report (v3).
    Sgx(EnclaveReport),
}

impl Body {
    /// The TD report, for TDX quotes.
    pub fn td(&self) -> Option<&TdReport> {
        match self {
            Body::Td10(r) | Body::Td15(r) => Some(r),
            Body::Sgx(_) => None,
        }
    }

    /// "TD report 1.0", "TD report 1.5" or "SGX enclave report".
    pub fn name(&self) -> &'static str {
        match self {
            Body::Td10(_) => "TD report 1.0",
            Body::Td15(_) => "TD report 1.5",
            Body::Sgx(_) => "SGX enclave report",
        }
    }
}

/// A parsed quote, borrowing from the input.
#[derive(Clone, PartialEq, Eq)]
pub struct Quote<'a> {
    raw: &'a [u8],
    signed_len: usize,
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
    /// The ECDSA P-256 signature r||s (big-endian) over the header and body.
    pub signature: [u8; 64],
    /// The attestation public key x||y.
    pub attestation_key: [u8; 64],
    /// The QE report, decoded.
    pub qe_report: EnclaveReport,
    /// The QE report's raw 384 bytes (what the PCK key signed).
    pub qe_report_raw: &'a [u8],
    /// The QE report's signature r||s by the PCK key.
    pub qe_report_signature: [u8; 64],
    /// The QE authentication data.
    pub qe_auth_data: &'a [u8],
    /// The PCK certificate chain, PEM (leaf, intermediate CA, root).
    pub pck_chain_pem: &'a [u8],
    /// Bytes after the quote's declared end (not part of the quote).
    pub trailing: usize,
}

impl fmt::Debug for Quote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quote")
            .field("header", &self.header)
            .field("body", &self.body.name())
            .field("signed_len", &self.signed_len)
            .field("trailing", &self.trailing)
            .finish_non_exhaustive()
    }
}

/// A bounds-checked reader that names the field and offset of every failure.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], QuoteError> {
        let have = self.data.len().saturating_sub(self.pos);
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(QuoteError::Truncated {
                field,
                offset: self.pos,
                need: n,
                have,
            })?;
        self.pos = self.pos.saturating_add(n);
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], QuoteError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, QuoteError> {
        self.array::<2>(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, QuoteError> {
        self.array::<4>(field).map(u32::from_le_bytes)
    }

    fn len32(&mut self, field: &'static str) -> Result<usize, QuoteError> {
        let at = self.pos;
        let n = self.u32(field)?;
        usize::try_from(n).map_err(|_| invalid(field, at, format!("length {n} too large")))
    }

    fn skip(&mut self, n: usize, field: &'static str) -> Result<(), QuoteError> {
        self.take(n, field).map(|_| ())
    }
}

fn invalid(field: &'static str, offset: usize, reason: String) -> QuoteError {
    QuoteError::Invalid {
        field,
        offset,
        reason,
    }
}

/// Reads a section of `len` declared bytes and requires `parse` to consume it exactly.
fn section<'a, T>(
    r: &mut Reader<'a>,
    len: usize,
    field: &'static str,
    parse: impl FnOnce(&mut Reader<'a>) -> Result<T, QuoteError>,
) -> Result<T, QuoteError> {
    let start = r.pos;
    let bytes = r.take(len, field)?;
    let mut inner = Reader {
        data: r
            .data
            .get(..start.saturating_add(bytes.len()))
            .unwrap_or(r.data),
        pos: start,
    };
    let value = parse(&mut inner)?;
    if inner.pos != start.saturating_add(len) {
        return Err(invalid(
            field,
            start,
            format!(
                "declares {len} bytes but its contents take {}",
                inner.pos.saturating_sub(start)
            ),
        ));
    }
    Ok(value)
}

impl EnclaveReport {
    fn read(r: &mut Reader<'_>) -> Result<Self, QuoteError> {
        let cpu_svn = r.array("CPUSVN")?;
        let misc_select = r.u32("MISCSELECT")?;
        r.skip(28, "reserved")?;
        let attributes = r.array("ATTRIBUTES")?;
        let mr_enclave = r.array("MRENCLAVE")?;
        r.skip(32, "reserved")?;
        let mr_signer = r.array("MRSIGNER")?;
        r.skip(96, "reserved")?;
        let isv_prod_id = r.u16("ISVPRODID")?;
        let isv_svn = r.u16("ISVSVN")?;
        r.skip(60, "reserved")?;
        let report_data = r.array("REPORTDATA")?;
        Ok(EnclaveReport {
            cpu_svn,
            misc_select,
            attributes,
            mr_enclave,
            mr_signer,
            isv_prod_id,
            isv_svn,
            report_data,
        })
    }
}

impl TdReport {
    fn read(r: &mut Reader<'_>, v15: bool) -> Result<Self, QuoteError> {
        let tee_tcb_svn = r.array("TEE_TCB_SVN")?;
        let mr_seam = r.array("MRSEAM")?;
        let mr_signer_seam = r.array("MRSIGNERSEAM")?;
        let seam_attributes = r.array("SEAMATTRIBUTES")?;
        let td_attributes = r.array("TDATTRIBUTES")?;
        let xfam = r.array("XFAM")?;
        let mr_td = r.array("MRTD")?;
        let mr_config_id = r.array("MRCONFIGID")?;
        let mr_owner = r.array("MROWNER")?;
        let mr_owner_config = r.array("MROWNERCONFIG")?;
        let rtmr = [
            r.array("RTMR0")?,
            r.array("RTMR1")?,
            r.array("RTMR2")?,
            r.array("RTMR3")?,
        ];
        let report_data = r.array("REPORTDATA")?;
        let (tee_tcb_svn_2, mr_service_td) = if v15 {
            (
                Some(r.array("TEE_TCB_SVN_2")?),
                Some(r.array("MRSERVICETD")?),
            )
        } else {
            (None, None)
        };
        Ok(TdReport {
            tee_tcb_svn,
            mr_seam,
            mr_signer_seam,
            seam_attributes,
            td_attributes,
            xfam,
            mr_td,
            mr_config_id,
            mr_owner,
            mr_owner_config,
            rtmr,
            report_data,
            tee_tcb_svn_2,
            mr_service_td,
        })
    }
}

/// The QE report certification data (type 6, or inline in v3).
struct QeData<'a> {
    report: EnclaveReport,
    report_raw: &'a [u8],
    signature: [u8; 64],
    auth_data: &'a [u8],
    pck_chain_pem: &'a [u8],
}

fn read_qe_data<'a>(r: &mut Reader<'a>) -> Result<QeData<'a>, QuoteError> {
    let raw_at = r.pos;
    let report = EnclaveReport::read(r)?;
    let report_raw = r.data.get(raw_at..r.pos).unwrap_or_default();
    let signature = r.array("QE report signature")?;
    let auth_len = usize::from(r.u16("QE authentication data length")?);
    let auth_data = r.take(auth_len, "QE authentication data")?;
    let type_at = r.pos;
    let cert_type = r.u16("certification data type")?;
    if cert_type != CERT_PCK_CHAIN {
        return Err(invalid(
            "certification data type",
            type_at,
            format!(
                "{cert_type}: only type 5 (the PCK certificate chain, PEM) is supported; \
                 other types need the platform's PCK certificate fetched separately"
            ),
        ));
    }
    let pem_len = r.len32("certification data size")?;
    let pck_chain_pem = r.take(pem_len, "PCK certificate chain")?;
    Ok(QeData {
        report,
        report_raw,
        signature,
        auth_data,
        pck_chain_pem,
    })
}

impl<'a> Quote<'a> {
    /// Parses a quote.
    pub fn parse(raw: &'a [u8]) -> Result<Self, QuoteError> {
        let mut r = Reader::new(raw);
        let version = r.u16("version")?;
        let att_key_type = r.u16("attestation key type")?;
        let tee_type = r.u32("TEE type")?;
        let qe_svn = r.u16("QE SVN")?;
        let pce_svn = r.u16("PCE SVN")?;
        let qe_vendor_id = r.array("QE vendor ID")?;
        let user_data = r.array("user data")?;
        let header = Header {
            version,
            att_key_type,
            tee_type,
            qe_svn,
            pce_svn,
            qe_vendor_id,
            user_data,
        };
        let tee = match (version, tee_type) {
            (3, _) => Tee::Sgx,
            (4 | 5, TEE_TDX) => Tee::Tdx,
            (4 | 5, TEE_SGX) => {
                return Err(invalid(
                    "TEE type",
                    4,
                    format!("SGX (0) in a version {version} quote: SGX quotes are version 3"),
                ));
            }
            (4 | 5, t) => {
                return Err(invalid(
                    "TEE type",
                    4,
                    format!("{t:#x} is neither TDX (0x81) nor SGX (0)"),
                ));
            }
            (v, _) => {
                return Err(invalid(
                    "version",
                    0,
                    format!("{v}: only DCAP quote versions 3 (SGX), 4 and 5 (TDX) are defined"),
                ));
            }
        };
        if att_key_type != ECDSA_P256 {
            return Err(invalid(
                "attestation key type",
                2,
                format!("{att_key_type}: only 2 (ECDSA-256-with-P-256) is supported"),
            ));
        }
        let body = match (tee, version) {
            (Tee::Sgx, _) => Body::Sgx(EnclaveReport::read(&mut r)?),
            (_, 4) => Body::Td10(TdReport::read(&mut r, false)?),
            (_, _) => {
                let type_at = r.pos;
                let body_type = r.u16("body type")?;
                let size_at = r.pos;
                let size = r.len32("body size")?;
                let (want, v15) = match body_type {
                    2 => (TD10_LEN, false),
                    3 => (TD15_LEN, true),
                    t => {
                        return Err(invalid(
                            "body type",
                            type_at,
                            format!(
                                "{t}: version 5 bodies are 2 (TD report 1.0) or 3 (TD report 1.5)"
                            ),
                        ));
                    }
                };
                if size != want {
                    return Err(invalid(
                        "body size",
                        size_at,
                        format!("{size} bytes for body type {body_type}, which is {want} bytes"),
                    ));
                }
                let report = TdReport::read(&mut r, v15)?;
                if v15 {
                    Body::Td15(report)
                } else {
                    Body::Td10(report)
                }
            }
        };
        let signed_len = r.pos;
        let sig_len = r.len32("signature data length")?;
        let (signature, attestation_key, qe) = section(&mut r, sig_len, "signature data", |s| {
            let signature = s.array("quote signature")?;
            let attestation_key = s.array("attestation key")?;
            let qe = if tee == Tee::Sgx {
                read_qe_data(s)?
            } else {
                let type_at = s.pos;
                let cert_type = s.u16("certification data type")?;
                if cert_type != CERT_QE_REPORT {
                    return Err(invalid(
                        "certification data type",
                        type_at,
                        format!(
                            "{cert_type}: TDX quotes carry type 6 (QE report certification data)"
                        ),
                    ));
                }
                let len = s.len32("certification data size")?;
                section(s, len, "QE report certification data", read_qe_data)?
            };
            Ok((signature, attestation_key, qe))
        })?;
        Ok(Quote {
            raw,
            signed_len,
            header,
            body,
            signature,
            attestation_key,
            qe_report: qe.report,
            qe_report_raw: qe.report_raw,
            qe_report_signature: qe.signature,
            qe_auth_data: qe.auth_data,
            pck_chain_pem: qe.pck_chain_pem,
            trailing: raw.len().saturating_sub(r.pos),
        })
    }

    /// The TEE.
    pub fn tee(&self) -> Tee {
        match self.body {
            Body::Sgx(_) => Tee::Sgx,
            Body::Td10(_) | Body::Td15(_) => Tee::Tdx,
        }
    }

    /// The bytes the attestation key signed: the header and the body (with v5's type and
    /// size fields), exactly as given.
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.raw.get(..self.signed_len).unwrap_or_default()
    }

    /// The quote's length without the trailing bytes.
    pub fn len(&self) -> usize {
        self.raw.len().saturating_sub(self.trailing)
    }

    /// Whether the quote is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
