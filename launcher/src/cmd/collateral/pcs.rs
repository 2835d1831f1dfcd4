//! Intel's Provisioning Certification Service, API version 4 (and PCCS, the caching
//! service operators run, which serves the same paths): for a quote's platform, the TCB
//! Info at `/{tdx|sgx}/certification/v4/tcb?fmspc=..` (issuer chain in the
//! `TCB-Info-Issuer-Chain` header), the QE Identity at `/{tdx|sgx}/certification/v4/qe/
//! identity` (`SGX-Enclave-Identity-Issuer-Chain`), the PCK CRL at `/sgx/certification/
//! v4/pckcrl?ca={platform|processor}&encoding=der` (`SGX-PCK-CRL-Issuer-Chain`), and the
//! Intel SGX Root CA's CRL (Intel: `IntelSGXRootCA.der` on its certificates host, the
//! root certificate's CRL distribution point; PCCS: `/sgx/certification/v4/rootcacrl`,
//! which PCCS answers in hex). The issuer chains are percent-encoded PEM, kept exactly as
//! sent; the TCB Info and QE Identity are kept exactly as served (their signatures cover
//! the bytes of the `tcbInfo` / `enclaveIdentity` value as it appears in the response).
//! The TCB Info and QE Identity are those of the standard TCB evaluation unless asked
//! otherwise ([`TcbUpdate`]).

use super::super::verify;
use crate::error::{CliError, InputError};
use crate::fetch::{FetchError, Response, Session, Want, unavailable};
use cvm_attest::tdx::collateral::{self, Collateral};
use cvm_attest::tdx::pck::{self, PckCa};
use cvm_attest::tdx::quote::Quote;
use cvm_attest::x509::Crl;
use cvm_attest::{Outcome, Time};
use cvm_firmware::Tee;
use std::path::{Path, PathBuf};

/// Intel's Provisioning Certification Service.
pub const PCS_URL: &str = "https://api.trustedservices.intel.com";

/// The Intel SGX Root CA's CRL, at the root certificate's CRL distribution point.
pub const ROOT_CRL_URL: &str = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

const TCB_CHAIN: [&str; 2] = ["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"];
const QE_CHAIN: [&str; 1] = ["SGX-Enclave-Identity-Issuer-Chain"];
const PCK_CRL_CHAIN: [&str; 1] = ["SGX-PCK-CRL-Issuer-Chain"];

/// Which TCB evaluation the TCB Info and QE Identity come from (Intel PCS API v4, "Get
/// TCB Info V4" and "Get Quoting Enclave Identity V4": query `update=early|standard`, or
/// `tcbEvaluationDataNumber=N`, never both): the standard one (the service's default, no
/// parameter sent), the early one (a TCB recovery visible sooner), or a numbered one. A
/// number is checked against what comes back: both items must carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcbUpdate {
    /// `update=standard`, the default: no parameter sent.
    #[default]
    Standard,
    /// `update=early`.
    Early,
    /// `tcbEvaluationDataNumber=N`.
    Number(u32),
}

impl TcbUpdate {
    /// How a bundle's manifest records it (`pcs_tcb_update`): empty for the standard one.
    pub fn manifest_value(self) -> String {
        match self {
            TcbUpdate::Standard => String::new(),
            other => other.to_string(),
        }
    }

    /// The value a manifest recorded.
    pub fn from_manifest(v: &str) -> Result<Self, String> {
        match v {
            "" => Ok(TcbUpdate::Standard),
            v => v.parse(),
        }
    }

    /// The query parameter, if one is sent.
    fn param(self) -> Option<String> {
        match self {
            TcbUpdate::Standard => None,
            TcbUpdate::Early => Some("update=early".into()),
            TcbUpdate::Number(n) => Some(format!("tcbEvaluationDataNumber={n}")),
        }
    }
}

impl std::fmt::Display for TcbUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TcbUpdate::Standard => f.write_str("standard"),
            TcbUpdate::Early => f.write_str("early"),
            TcbUpdate::Number(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for TcbUpdate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "standard" => Ok(TcbUpdate::Standard),
            "early" => Ok(TcbUpdate::Early),
            n => n
                .parse()
                .map(TcbUpdate::Number)
                .map_err(|_| format!("{n:?}: standard, early, or a TCB evaluation data number")),
        }
    }
}

/// A quote's collateral, verified with it.
pub struct TdxCollateral {
    /// The platform's FMSPC (hex, upper case, as Intel writes it).
    pub fmspc: String,
    /// Which CA issued the PCK certificate.
    pub ca: PckCa,
    /// The TCB Info's URL.
    pub tcb_url: String,
    /// The pieces, as `cvm verify --collateral DIR` reads them.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// The collateral.
    pub collateral: Collateral,
}

/// Intel's PCS (or a PCCS) at a base URL, with the root CA CRL's URL.
pub struct Pcs {
    base: String,
    root_crl: String,
    update: TcbUpdate,
}

impl Pcs {
    /// The service at `base`; the root CA CRL at `root_crl`, or by default at Intel's
    /// URL when `base` is Intel's PCS and at `{base}/sgx/certification/v4/rootcacrl`
    /// (PCCS) otherwise.
    pub fn new(base: &str, root_crl: Option<&str>) -> Self {
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_owned();
        let root_crl = match root_crl {
            Some(u) => u.to_owned(),
            None if base == PCS_URL => ROOT_CRL_URL.to_owned(),
            None => format!("{base}/sgx/certification/v4/rootcacrl"),
        };
        Pcs {
            base,
            root_crl,
            update: TcbUpdate::Standard,
        }
    }

    /// The same service, asked for the TCB evaluation `update`.
    pub fn with_update(self, update: TcbUpdate) -> Self {
        Pcs { update, ..self }
    }

    /// The TCB evaluation asked for.
    pub fn update(&self) -> TcbUpdate {
        self.update
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The root CA CRL's URL.
    pub fn root_crl_url(&self) -> &str {
        &self.root_crl
    }

    /// The TCB Info, QE Identity, PCK CRL and root CA CRL of the quote `bytes` (from
    /// `path`), through `session`; verified with the quote (with `roots` also trusted)
    /// before they are used, cached or kept.
    pub fn tdx(
        &self,
        session: &mut Session,
        (path, bytes): (&Path, &[u8]),
        roots: &[PathBuf],
        at: Time,
    ) -> Result<TdxCollateral, CliError> {
        let evidence = |reason: String| CliError::Evidence {
            path: path.to_owned(),
            source: InputError::Other(reason),
        };
        let quote = Quote::parse(bytes).map_err(|e| evidence(e.to_string()))?;
        let (ext, ca) = pck::identify(quote.pck_chain_pem).map_err(|e| {
            evidence(format!(
                "cannot tell which collateral the quote needs from its PCK chain: {e}"
            ))
        })?;
        let fmspc = hex::encode_upper(ext.fmspc);
        let tee = match quote.tee() {
            Tee::Sgx => "sgx",
            _ => "tdx",
        };
        let base = &self.base;
        let ca_name = match ca {
            PckCa::Platform => "platform",
            PckCa::Processor => "processor",
        };
        let (and, query) = match self.update.param() {
            Some(p) => (format!("&{p}"), format!("?{p}")),
            None => (String::new(), String::new()),
        };
        let wants = [
            Want {
                url: format!("{base}/{tee}/certification/v4/tcb?fmspc={fmspc}{and}"),
                expiry: |r| signed_expiry(r, "tcbInfo", &TCB_CHAIN),
            },
            Want {
                url: format!("{base}/{tee}/certification/v4/qe/identity{query}"),
                expiry: |r| signed_expiry(r, "enclaveIdentity", &QE_CHAIN),
            },
            Want {
                url: format!("{base}/sgx/certification/v4/pckcrl?ca={ca_name}&encoding=der"),
                expiry: |r| {
                    let crl = Crl::parse(&r.body, "the PCK CRL").ok()?.window().1?;
                    Some(crl.min(chain_end(r, &PCK_CRL_CHAIN)?))
                },
            },
            Want {
                url: self.root_crl.clone(),
                expiry: |r| root_crl_der(&r.body).ok()?.1.window().1,
            },
        ];
        let tcb_url = wants[0].url.clone();
        session.obtain(&wants, at, |responses| {
            let files = pieces(&wants, responses)?;
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
            let (collateral, _) = Collateral::from_pieces(&refs).map_err(|e| {
                unavailable(FetchError {
                    url: self.base.clone(),
                    reason: e.to_string(),
                })
            })?;
            check(path, bytes, &collateral, roots, at)?;
            if let TcbUpdate::Number(n) = self.update {
                for (i, (item, body)) in [
                    ("TCB Info", &collateral.tcb_info.body),
                    ("QE Identity", &collateral.qe_identity.body),
                ]
                .into_iter()
                .enumerate()
                {
                    let served = evaluation_number(body);
                    if served != Some(n) {
                        return Err(unavailable(FetchError {
                            url: wants.get(i).map(|w| w.url.clone()).unwrap_or_default(),
                            reason: format!(
                                "asked for TCB evaluation data number {n}, the {item} has {}",
                                served.map_or_else(|| "none".to_owned(), |s| s.to_string())
                            ),
                        }));
                    }
                }
            }
            Ok(TdxCollateral {
                fmspc: fmspc.clone(),
                ca,
                tcb_url: tcb_url.clone(),
                files,
                collateral,
            })
        })
    }
}

/// The `tcbEvaluationDataNumber` of a TCB Info or QE Identity body.
fn evaluation_number(body: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    u32::try_from(v.get("tcbEvaluationDataNumber")?.as_u64()?).ok()
}

/// The end of a certificate chain header's validity (its earliest notAfter).
fn chain_end(r: &Response, names: &[&str]) -> Option<Time> {
    super::kds::earliest_end(r.decoded_header(names).ok()?.as_bytes())
}

/// When a signed item stops being usable: its `nextUpdate`, or its chain's end.
fn signed_expiry(r: &Response, key: &str, chain: &[&str]) -> Option<Time> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let next = Time::parse_rfc3339(v.get(key)?.get("nextUpdate")?.as_str()?).ok()?;
    Some(next.min(chain_end(r, chain)?))
}

/// The root CA CRL as DER: Intel serves DER, PCCS hex text.
fn root_crl_der(body: &[u8]) -> Result<(Vec<u8>, Crl), String> {
    match Crl::parse(body, "the root CA CRL") {
        Ok(c) => Ok((c.der().to_vec(), c)),
        Err(e) => {
            let der = std::str::from_utf8(body)
                .ok()
                .and_then(|t| hex::decode(t.trim()).ok())
                .ok_or_else(|| e.to_string())?;
            let c = Crl::parse(&der, "the root CA CRL").map_err(|e| e.to_string())?;
            Ok((der, c))
        }
    }
}

/// The responses as collateral pieces ([`collateral::PIECES`] and the QE Identity's
/// chain); a missing header or a body that is not what was asked for names its URL.
fn pieces(
    wants: &[Want; 4],
    responses: &[Response],
) -> Result<Vec<(&'static str, Vec<u8>)>, CliError> {
    let [tcb, qe, pck_crl, root_crl] = responses else {
        return Err(CliError::Usage("four collateral responses expected".into()));
    };
    let bad = |i: usize, reason: String| {
        unavailable(FetchError {
            url: wants.get(i).map(|w| w.url.clone()).unwrap_or_default(),
            reason,
        })
    };
    let (root_der, _) = root_crl_der(&root_crl.body).map_err(|e| bad(3, e))?;
    Ok(vec![
        ("root_ca_crl.der", root_der),
        ("pck_crl.der", pck_crl.body.clone()),
        (
            "pck_crl_issuer_chain.pem",
            pck_crl
                .decoded_header(&PCK_CRL_CHAIN)
                .map_err(|e| bad(2, e))?
                .into_bytes(),
        ),
        (
            "tcb_signing_chain.pem",
            tcb.decoded_header(&TCB_CHAIN)
                .map_err(|e| bad(0, e))?
                .into_bytes(),
        ),
        ("tcb_info.json", tcb.body.clone()),
        ("qe_identity.json", qe.body.clone()),
        (
            collateral::QE_IDENTITY_CHAIN,
            qe.decoded_header(&QE_CHAIN)
                .map_err(|e| bad(1, e))?
                .into_bytes(),
        ),
    ])
}

/// Verifies the quote with the fetched collateral, as `cvm verify` would, and refuses
/// the collateral unless every check of it passes: the PCK chain it is read against
/// (`pck.*`), the CRLs, signatures, dates and kinds (`collateral.*`) and the platform
/// (`tcb.fmspc`). The quote's own signatures and the TCB status are the verdict's
/// business, not this command's.
fn check(
    path: &Path,
    quote: &[u8],
    c: &Collateral,
    roots: &[PathBuf],
    at: Time,
) -> Result<(), CliError> {
    let src = verify::Sources {
        root: roots,
        ..verify::Sources::default()
    };
    let mut inputs = verify::tdx_inputs(&src, Some(verify::tdx_reference_skip()))?;
    inputs.set_collateral(c.clone());
    let verify::AnyVerdict::Tdx(v) = verify::verify_tdx(&inputs, quote, at) else {
        return Err(CliError::Usage("not a TDX verdict".into()));
    };
    let about_collateral = |name: &str| {
        name.starts_with("pck.") || name.starts_with("collateral") || name == "tcb.fmspc"
    };
    super::kds::refuse_failed(
        path,
        v.0.checks
            .iter()
            .find(|c| c.outcome == Outcome::Fail && about_collateral(c.name.name())),
    )
}
