//! Intel's collateral for one platform: the Root CA CRL, the PCK CA's CRL, the TCB Info
//! and the QE Identity with their signatures and the TCB signing chain.
//!
//! The input form is the JSON bundle the project's vectors use (dcap-qvl's
//! `QuoteCollateralV3`): CRLs as hex DER (or PEM), issuer chains as PEM, the TCB Info and
//! QE Identity as the **exact** JSON text Intel signed (kept as given, never
//! re-serialised), signatures as hex r||s.

use crate::time::Time;
use crate::x509::{Cert, CertError, Crl};
use serde::Deserialize;

/// Why a collateral bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralError {
    /// A piece is missing (the verdict cannot be decided: collateral unavailable).
    #[error("the collateral has no `{0}`")]
    Missing(String),
    /// A piece is malformed.
    #[error("{0}")]
    Malformed(String),
}

/// The collateral bundle as read from JSON; every field is required.
#[derive(Debug, Deserialize)]
struct RawCollateral {
    pck_crl_issuer_chain: Option<String>,
    root_ca_crl: Option<String>,
    pck_crl: Option<String>,
    tcb_info_issuer_chain: Option<String>,
    tcb_info: Option<String>,
    tcb_info_signature: Option<String>,
    qe_identity_issuer_chain: Option<String>,
    qe_identity: Option<String>,
    qe_identity_signature: Option<String>,
}

/// A signed collateral item: the exact signed text, its signature and its signer.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The JSON text, exactly as signed.
    pub body: String,
    /// ECDSA P-256 r||s.
    pub signature: [u8; 64],
    /// The signing certificate (the first of its issuer chain; the root that follows it
    /// is never taken from the input).
    pub signer: Cert,
}

/// A parsed collateral bundle (nothing verified yet).
#[derive(Debug, Clone)]
pub struct Collateral {
    /// The Intel SGX Root CA's CRL (covers the intermediate CAs and the TCB signer).
    pub root_ca_crl: Crl,
    /// The PCK Platform or Processor CA's CRL (covers PCK certificates).
    pub pck_crl: Crl,
    /// The PCK CRL's issuer chain as supplied (the PCK CA, then the root): decoded, and
    /// checked against the PCK CRL's issuer and the trusted root when a quote is
    /// verified; the CRL itself is checked against the CA of the quote's own chain.
    pub pck_crl_issuer_chain: Vec<Cert>,
    /// The TCB Info.
    pub tcb_info: Signed,
    /// The QE Identity.
    pub qe_identity: Signed,
}

fn required(v: Option<String>, field: &str) -> Result<String, CollateralError> {
    v.ok_or_else(|| CollateralError::Missing(field.to_owned()))
}

fn crl(v: Option<String>, field: &str) -> Result<Crl, CollateralError> {
    let text = required(v, field)?;
    let bytes = if text.trim_start().starts_with("-----") {
        text.into_bytes()
    } else {
        hex::decode(text.trim()).map_err(|_| {
            CollateralError::Malformed(format!("`{field}` is neither hex DER nor PEM"))
        })?
    };
    Crl::parse(&bytes, field).map_err(|e| CollateralError::Malformed(e.to_string()))
}

fn chain(v: Option<String>, field: &str) -> Result<Vec<Cert>, CollateralError> {
    let text = required(v, field)?;
    Cert::parse_file(text.as_bytes(), field)
        .map_err(|e: CertError| CollateralError::Malformed(e.to_string()))
}

fn signer(v: Option<String>, field: &str) -> Result<Cert, CollateralError> {
    chain(v, field)?
        .into_iter()
        .next()
        .ok_or_else(|| CollateralError::Malformed(format!("`{field}` is empty")))
}

fn signed(
    body: Option<String>,
    sig: Option<String>,
    issuer: Option<String>,
    name: &str,
) -> Result<Signed, CollateralError> {
    let sig_field = format!("{name}_signature");
    let sig_text = required(sig, &sig_field)?;
    let signature = strict_hex::<64>(sig_text.trim()).ok_or_else(|| {
        CollateralError::Malformed(format!("`{sig_field}` is not 64 bytes of hex (r||s)"))
    })?;
    Ok(Signed {
        body: required(body, name)?,
        signature,
        signer: signer(issuer, &format!("{name}_issuer_chain"))?,
    })
}

impl Collateral {
    /// Reads a collateral bundle; a missing or undecodable piece is named.
    pub fn parse_json(text: &str) -> Result<Self, CollateralError> {
        let raw: RawCollateral = serde_json::from_str(text)
            .map_err(|e| CollateralError::Malformed(format!("JSON: {e}")))?;
        Ok(Collateral {
            root_ca_crl: crl(raw.root_ca_crl, "root_ca_crl")?,
            pck_crl: crl(raw.pck_crl, "pck_crl")?,
            pck_crl_issuer_chain: chain(raw.pck_crl_issuer_chain, "pck_crl_issuer_chain")?,
            tcb_info: signed(
                raw.tcb_info,
                raw.tcb_info_signature,
                raw.tcb_info_issuer_chain,
                "tcb_info",
            )?,
            qe_identity: signed(
                raw.qe_identity,
                raw.qe_identity_signature,
                raw.qe_identity_issuer_chain,
                "qe_identity",
            )?,
        })
    }
}

/// The files of a collateral directory, as Intel's PCS serves the pieces (and as the
/// vectors' `collateral/` directories hold them).
pub const PIECES: [&str; 6] = [
    "root_ca_crl.der",
    "pck_crl.der",
    "pck_crl_issuer_chain.pem",
    "tcb_signing_chain.pem",
    "tcb_info.json",
    "qe_identity.json",
];

/// An optional piece: the QE Identity's own issuer chain (Intel's PCS sends one with
/// each item; without it the TCB signing chain signs both).
pub const QE_IDENTITY_CHAIN: &str = "qe_identity_issuer_chain.pem";

/// An Intel PCS response for a signed item: `{"tcbInfo": {...}, "signature": "<hex>"}`
/// or `{"enclaveIdentity": {...}, "signature": "<hex>"}`. The signed bytes are the
/// item's value exactly as it appears in the response.
#[derive(Deserialize)]
struct PcsResponse<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: Option<&'a serde_json::value::RawValue>,
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: Option<&'a serde_json::value::RawValue>,
    signature: Option<String>,
}

impl Collateral {
    /// Reads collateral from its pieces, given as (file name, contents) pairs (the files
    /// of a directory; see [`PIECES`]):
    ///
    /// - `root_ca_crl.der`, `pck_crl.der`: the CRLs, DER or PEM;
    /// - `pck_crl_issuer_chain.pem`, `tcb_signing_chain.pem`: PEM chains (the TCB signing
    ///   chain signs both the TCB Info and the QE Identity);
    /// - `tcb_info.json`, `qe_identity.json`: Intel PCS's responses as served
    ///   (`{"tcbInfo": ..., "signature": ...}`, `{"enclaveIdentity": ..., ...}`), or the
    ///   exact signed JSON alone with its signature beside it in `tcb_info.sig.bin` /
    ///   `qe_identity.sig.bin` (64 bytes r||s, raw or as hex);
    /// - optionally `qe_identity_issuer_chain.pem`: the QE Identity's signer, when it is
    ///   given apart from the TCB signing chain.
    ///
    /// Other files are returned by name, not read. A missing or undecodable piece is
    /// named.
    pub fn from_pieces<'n>(
        files: &[(&'n str, &[u8])],
    ) -> Result<(Self, Vec<&'n str>), CollateralError> {
        let get = |name: &str| -> Result<&[u8], CollateralError> {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| *b)
                .ok_or_else(|| CollateralError::Missing(name.to_owned()))
        };
        let text = |name: &str| -> Result<String, CollateralError> {
            String::from_utf8(get(name)?.to_vec())
                .map_err(|_| CollateralError::Malformed(format!("`{name}` is not UTF-8 text")))
        };
        let crl = |name: &str| {
            Crl::parse(get(name)?, name).map_err(|e| CollateralError::Malformed(e.to_string()))
        };
        let tcb_signer = signer(
            Some(text("tcb_signing_chain.pem")?),
            "tcb_signing_chain.pem",
        )?;
        let qe_signer = match files.iter().find(|(n, _)| *n == QE_IDENTITY_CHAIN) {
            Some(_) => signer(Some(text(QE_IDENTITY_CHAIN)?), QE_IDENTITY_CHAIN)?,
            None => tcb_signer.clone(),
        };
        let item = |stem: &str, key: &str, signer: &Cert| -> Result<Signed, CollateralError> {
            let name = format!("{stem}.json");
            let body = text(&name)?;
            let (body, signature) = match pcs_response(&body, key, &name)? {
                Some(pair) => pair,
                None => {
                    let sig_name = format!("{stem}.sig.bin");
                    let sig = get(&sig_name)?;
                    let sig = <[u8; 64]>::try_from(sig)
                        .ok()
                        .or_else(|| {
                            std::str::from_utf8(sig)
                                .ok()
                                .and_then(|t| strict_hex::<64>(t.trim()))
                        })
                        .ok_or_else(|| {
                            CollateralError::Malformed(format!(
                                "`{sig_name}` is not 64 bytes of r||s (raw or hex)"
                            ))
                        })?;
                    (body, sig)
                }
            };
            Ok(Signed {
                body,
                signature,
                signer: signer.clone(),
            })
        };
        let collateral = Collateral {
            root_ca_crl: crl("root_ca_crl.der")?,
            pck_crl: crl("pck_crl.der")?,
            pck_crl_issuer_chain: chain(
                Some(text("pck_crl_issuer_chain.pem")?),
                "pck_crl_issuer_chain.pem",
            )?,
            tcb_info: item("tcb_info", "tcbInfo", &tcb_signer)?,
            qe_identity: item("qe_identity", "enclaveIdentity", &qe_signer)?,
        };
        let ignored = files
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !PIECES.contains(n) && *n != QE_IDENTITY_CHAIN && !n.ends_with(".sig.bin"))
            .collect();
        Ok((collateral, ignored))
    }
}

/// The signed value and its signature when `text` is an Intel PCS response carrying
/// `key`; `None` when it is the signed JSON itself.
fn pcs_response(
    text: &str,
    key: &str,
    name: &str,
) -> Result<Option<(String, [u8; 64])>, CollateralError> {
    let Ok(response) = serde_json::from_str::<PcsResponse<'_>>(text) else {
        return Ok(None);
    };
    let value = match key {
        "tcbInfo" => response.tcb_info,
        _ => response.enclave_identity,
    };
    match (value, response.signature) {
        (Some(value), Some(sig)) => {
            let signature = strict_hex::<64>(sig.trim()).ok_or_else(|| {
                CollateralError::Malformed(format!(
                    "`{name}`: the signature is not 64 bytes of hex (r||s)"
                ))
            })?;
            Ok(Some((value.get().to_owned(), signature)))
        }
        (Some(_), None) => Err(CollateralError::Malformed(format!(
            "`{name}`: a PCS response with `{key}` but no `signature`"
        ))),
        (None, Some(_)) => Err(CollateralError::Malformed(format!(
            "`{name}`: a PCS response without `{key}`"
        ))),
        (None, None) => Ok(None),
    }
}

/// A TCB status, as Intel's collateral names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum TcbStatus {
    /// The platform is patched.
    UpToDate,
    /// Patched; software mitigations are needed (see the advisories).
    SWHardeningNeeded,
    /// Patched; the platform's configuration needs attention (see the advisories).
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// Not patched.
    OutOfDate,
    /// Not patched, and configuration needed.
    OutOfDateConfigurationNeeded,
    /// Revoked: never acceptable.
    Revoked,
}

impl TcbStatus {
    /// Every status, best first.
    pub const ALL: [TcbStatus; 7] = [
        TcbStatus::UpToDate,
        TcbStatus::SWHardeningNeeded,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSWHardeningNeeded,
        TcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded,
        TcbStatus::Revoked,
    ];

    /// Intel's name for the status.
    pub fn name(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::Revoked => "Revoked",
        }
    }
}

impl std::fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An SVN entry of a TCB level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Component {
    /// The minimum SVN.
    pub svn: u8,
}

/// The TCB of one platform TCB level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlatformTcb {
    /// The 16 SGX TCB components.
    pub sgxtcbcomponents: Vec<Component>,
    /// PCESVN.
    pub pcesvn: u16,
    /// The 16 TDX TCB components (TDX TCB Info only).
    pub tdxtcbcomponents: Option<Vec<Component>>,
}

/// One TCB level: a minimum TCB and the status of platforms at or above it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Level<T> {
    /// The minimum TCB.
    pub tcb: T,
    /// When Intel assessed it.
    pub tcb_date: String,
    /// The status.
    pub tcb_status: TcbStatus,
    /// The security advisories that apply.
    #[serde(rename = "advisoryIDs", default)]
    pub advisory_ids: Vec<String>,
}

/// An ISV SVN (QE identity and TDX module levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IsvSvn {
    /// The minimum ISV SVN.
    pub isvsvn: u16,
}

/// A TDX module's identity in the TCB Info.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TdxModule {
    /// "TDX_01", ... (absent in the `tdxModule` summary).
    pub id: Option<String>,
    /// MRSIGNERSEAM (hex, 48 bytes).
    pub mrsigner: String,
    /// SEAMATTRIBUTES (hex, 8 bytes).
    pub attributes: String,
    /// The mask applied to SEAMATTRIBUTES.
    pub attributes_mask: String,
    /// The module's TCB levels (identities only).
    #[serde(default)]
    pub tcb_levels: Vec<Level<IsvSvn>>,
}

/// The TCB Info body (version 3, SGX or TDX).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcbInfo {
    /// "SGX" or "TDX".
    pub id: String,
    /// 3.
    pub version: u32,
    /// Issue date (RFC 3339).
    pub issue_date: String,
    /// Next update (RFC 3339): the TCB Info is stale after it.
    pub next_update: String,
    /// FMSPC (hex, 6 bytes).
    pub fmspc: String,
    /// PCE ID (hex, 2 bytes).
    pub pce_id: String,
    /// Intel's TCB evaluation data number.
    pub tcb_evaluation_data_number: u32,
    /// The TDX module summary (TDX).
    pub tdx_module: Option<TdxModule>,
    /// The TDX module identities (TDX).
    pub tdx_module_identities: Option<Vec<TdxModule>>,
    /// The platform TCB levels, highest first.
    pub tcb_levels: Vec<Level<PlatformTcb>>,
}

/// The QE Identity body (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QeIdentity {
    /// "TD_QE" (TDX) or "QE" (SGX).
    pub id: String,
    /// 2.
    pub version: u32,
    /// Issue date (RFC 3339).
    pub issue_date: String,
    /// Next update (RFC 3339).
    pub next_update: String,
    /// Intel's TCB evaluation data number.
    pub tcb_evaluation_data_number: u32,
    /// MISCSELECT (hex, 4 bytes).
    pub miscselect: String,
    /// Its mask.
    pub miscselect_mask: String,
    /// ATTRIBUTES (hex, 16 bytes).
    pub attributes: String,
    /// Its mask.
    pub attributes_mask: String,
    /// MRSIGNER (hex, 32 bytes).
    pub mrsigner: String,
    /// ISVPRODID.
    pub isvprodid: u16,
    /// The QE's TCB levels, highest first.
    pub tcb_levels: Vec<Level<IsvSvn>>,
}

/// `N` bytes of hex as Intel's services write them (no prefix).
fn strict_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Decodes a hex field of a collateral body.
pub fn hex_field<const N: usize>(value: &str, field: &str) -> Result<[u8; N], String> {
    strict_hex::<N>(value).ok_or_else(|| format!("{field} {value:?} is not {N} bytes of hex"))
}

/// The issue date and next update of a TCB Info or QE Identity, checked at `at`.
pub fn window(issue: &str, next: &str, at: Time) -> Result<String, String> {
    let issue_t = Time::parse_rfc3339(issue)?;
    let next_t = Time::parse_rfc3339(next)?;
    if at < issue_t {
        Err(format!(
            "issued {issue}, after the verification time {at} (not yet valid)"
        ))
    } else if at > next_t {
        Err(format!(
            "expired: its next update was due {next} (verification time {at})"
        ))
    } else {
        Ok(format!("issued {issue}, next update {next}"))
    }
}

/// Whether a CRL is current at `at` (thisUpdate <= at <= nextUpdate).
pub fn crl_window(crl: &Crl, at: Time) -> Result<String, String> {
    let (this, next) = crl.window();
    match next {
        None => Err("without a nextUpdate (cannot be judged current)".into()),
        Some(_) if at < this => Err(format!(
            "issued {this}, after the verification time {at} (not yet valid)"
        )),
        Some(next) if at > next => Err(format!(
            "expired: its next update was due {next} (verification time {at})"
        )),
        Some(next) => Ok(format!("thisUpdate {this}, nextUpdate {next}")),
    }
}
