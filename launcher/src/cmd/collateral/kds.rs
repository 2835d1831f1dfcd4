//! AMD's Key Distribution Service ("VCEK/VLEK Certificate and KDS Interface
//! Specification"): the VCEK at `/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&
//! ucodeSPL=..` (Turin: `fmcSPL` too, and the hardware ID is CHIP_ID's first 8 bytes),
//! the ASK and ARK at `/vcek/v1/{product}/cert_chain` (PEM, ASK first), the CRL at
//! `/vcek/v1/{product}/crl` (DER); for VLEK-signed reports the ASVK and ARK at
//! `/vlek/v1/{product}/cert_chain` and the ASVK's CRL at `/vlek/v1/{product}/crl` (the
//! VLEK itself is never served: the host holds it and hands it out with the report).

use super::super::verify::{self, Sources};
use crate::error::CliError;
use crate::fetch::{FetchError, Response, Session, Want, unavailable};
use cvm_attest::snp::certs::Supplied;
use cvm_attest::snp::report::{Report, SigningKey};
use cvm_attest::snp::tcb::{Product, Tcb};
use cvm_attest::x509::{Cert, Crl};
use cvm_attest::{Category, Outcome, Time};
use std::path::{Path, PathBuf};

/// AMD's Key Distribution Service.
pub const KDS_URL: &str = "https://kdsintf.amd.com";

/// Which endorsement key signed a report, and so which chain and CRL it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Versioned Chip Endorsement Key: ARK -> ASK -> VCEK, all from the KDS.
    Vcek,
    /// Versioned Loaded Endorsement Key: ARK -> ASVK -> VLEK; the VLEK from the host.
    Vlek,
}

/// An SNP report's collateral, verified.
pub struct SnpCollateral {
    /// The product.
    pub product: Product,
    /// VCEK or VLEK.
    pub kind: KeyKind,
    /// The URL of the endorsement key (the VCEK's; for a VLEK, its chain's).
    pub key_url: String,
    /// The VCEK or VLEK.
    pub key: Cert,
    /// The ASK or ASVK.
    pub intermediate: Cert,
    /// The ARK.
    pub ark: Cert,
    /// The CRL.
    pub crl: Crl,
}

impl SnpCollateral {
    /// The certificates as `cvm verify` takes them.
    pub fn supplied(&self) -> Supplied {
        let (key, inter) = (Some(self.key.clone()), Some(self.intermediate.clone()));
        let ark = Some(self.ark.clone());
        match self.kind {
            KeyKind::Vcek => Supplied {
                vcek: key,
                ask: inter,
                ark,
                ..Supplied::default()
            },
            KeyKind::Vlek => Supplied {
                vlek: key,
                asvk: inter,
                ark,
                ..Supplied::default()
            },
        }
    }

    /// The files of a `cvm verify --certs` directory, with the CRL as `crl.der`.
    pub fn files(&self) -> [(&'static str, Vec<u8>); 4] {
        let (key, inter) = match self.kind {
            KeyKind::Vcek => ("vcek.der", "ask.pem"),
            KeyKind::Vlek => ("vlek.der", "asvk.pem"),
        };
        [
            (key, self.key.der().to_vec()),
            (inter, super::pem(self.intermediate.der()).into_bytes()),
            ("ark.pem", super::pem(self.ark.der()).into_bytes()),
            ("crl.der", self.crl.der().to_vec()),
        ]
    }
}

/// AMD's KDS at a base URL.
pub struct Kds {
    base: String,
}

impl Kds {
    /// The KDS at `base`.
    pub fn new(base: &str) -> Self {
        Kds {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The endorsement key, intermediate, ARK and CRL of the report `bytes` (from
    /// `path`), through `session`; verified together with the report as `cvm verify`
    /// would (with `roots` also trusted) before they are used, cached or kept. A VLEK
    /// report needs its VLEK given (`vlek`): the KDS does not serve it.
    pub fn snp(
        &self,
        session: &mut Session,
        (path, bytes): (&Path, &[u8]),
        product: Option<Product>,
        vlek: Option<&Cert>,
        roots: &[PathBuf],
        at: Time,
    ) -> Result<SnpCollateral, CliError> {
        let report = Report::parse(bytes).map_err(|e| CliError::Evidence {
            path: path.to_owned(),
            source: crate::error::InputError::Other(e.to_string()),
        })?;
        let product = product_of(&report, product, path)?;
        let base = &self.base;
        let (kind, dir) = match report.signing_key() {
            SigningKey::Vcek => (KeyKind::Vcek, "vcek"),
            SigningKey::Vlek => (KeyKind::Vlek, "vlek"),
            other => {
                return Err(CliError::Usage(format!(
                    "{}: the report is not signed by a VCEK or VLEK (SIGNING_KEY {other:?})",
                    path.display()
                )));
            }
        };
        let chain = Want {
            url: format!("{base}/{dir}/v1/{product}/cert_chain"),
            expiry: chain_expiry,
        };
        let crl = Want {
            url: format!("{base}/{dir}/v1/{product}/crl"),
            expiry: crl_expiry,
        };
        let wants = match kind {
            KeyKind::Vcek => vec![
                Want {
                    url: vcek_url(base, product, &report),
                    expiry: cert_expiry,
                },
                chain,
                crl,
            ],
            KeyKind::Vlek => {
                if vlek.is_none() {
                    return Err(CliError::CollateralMissing {
                        path: path.to_owned(),
                        reason: "the report is signed with a VLEK, which the KDS does not hand \
                                 out (the host does, in its certificate table): give it with \
                                 --certs DIR (vlek.der)"
                            .into(),
                    });
                }
                vec![chain, crl]
            }
        };
        session.obtain(&wants, at, |responses| {
            let c = assemble(product, kind, vlek, &wants, responses)?;
            check(path, bytes, &c, roots, at)?;
            Ok(c)
        })
    }
}

fn cert_expiry(r: &Response) -> Option<Time> {
    Cert::from_der(&r.body, "the VCEK")
        .ok()
        .map(|c| c.validity().1)
}

fn chain_expiry(r: &Response) -> Option<Time> {
    earliest_end(&r.body)
}

/// The end of a PEM chain's validity: its certificates' earliest notAfter.
pub(super) fn earliest_end(pem: &[u8]) -> Option<Time> {
    Cert::parse_file(pem, "the chain")
        .ok()?
        .iter()
        .map(|c| c.validity().1)
        .min()
}

fn crl_expiry(r: &Response) -> Option<Time> {
    Crl::parse(&r.body, "the CRL").ok()?.window().1
}

fn assemble(
    product: Product,
    kind: KeyKind,
    vlek: Option<&Cert>,
    wants: &[Want],
    responses: &[Response],
) -> Result<SnpCollateral, CliError> {
    let bad = |w: &Want, what: String| {
        unavailable(FetchError {
            url: w.url.clone(),
            reason: what,
        })
    };
    let pairs: Vec<(&Want, &Response)> = wants.iter().zip(responses).collect();
    let (key, key_url, rest) = match (kind, pairs.as_slice(), vlek) {
        (KeyKind::Vcek, [(w, r), rest @ ..], _) => (
            Cert::from_der(&r.body, "the VCEK").map_err(|e| bad(w, e.to_string()))?,
            w.url.clone(),
            rest,
        ),
        (KeyKind::Vlek, rest @ [(w, _), ..], Some(v)) => (v.clone(), w.url.clone(), rest),
        _ => {
            return Err(CliError::Usage(
                "the KDS items do not fit the report".into(),
            ));
        }
    };
    let [(chain_w, chain), (crl_w, crl)] = rest else {
        return Err(CliError::Usage(
            "the KDS items do not fit the report".into(),
        ));
    };
    let (intermediate, ark) = split_chain(&chain.body, kind).map_err(|e| bad(chain_w, e))?;
    let crl = Crl::parse(&crl.body, "the CRL").map_err(|e| bad(crl_w, e.to_string()))?;
    Ok(SnpCollateral {
        product,
        kind,
        key_url,
        key,
        intermediate,
        ark,
        crl,
    })
}

fn product_of(r: &Report<'_>, given: Option<Product>, path: &Path) -> Result<Product, CliError> {
    let reported = r
        .cpuid()
        .and_then(|[family, model, _]| Product::from_cpuid(family, model));
    match (reported, given) {
        (Some(p), Some(g)) if p != g => Err(CliError::Usage(format!(
            "{}: the report is from a {p} (its CPUID), not a {g} (--product)",
            path.display()
        ))),
        (Some(p), _) | (None, Some(p)) => Ok(p),
        (None, None) => Err(CliError::Usage(format!(
            "{}: the report does not say its product (version {}, no CPUID fields): give \
             --product Milan|Genoa|Turin",
            path.display(),
            r.version()
        ))),
    }
}

/// The KDS URL of the VCEK that signs `r`: its hardware ID and its REPORTED_TCB.
fn vcek_url(base: &str, product: Product, r: &Report<'_>) -> String {
    let chip = &r.fields.chip_id;
    let hwid = if product.has_fmc() {
        hex::encode(chip.get(..8).unwrap_or(chip))
    } else {
        hex::encode(chip)
    };
    let (tcb, _) = Tcb::decode(r.fields.reported_tcb, product);
    let mut url = format!("{base}/vcek/v1/{product}/{hwid}?");
    if let Some(fmc) = tcb.fmc {
        url.push_str(&format!("fmcSPL={fmc}&"));
    }
    url.push_str(&format!(
        "blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        tcb.bl, tcb.tee, tcb.snp, tcb.ucode
    ));
    url
}

/// The intermediate (ASK or ASVK) and the ARK of a `cert_chain` response (PEM; told
/// apart by their names).
fn split_chain(pem: &[u8], kind: KeyKind) -> Result<(Cert, Cert), String> {
    let certs = Cert::parse_file(pem, "the certificate chain").map_err(|e| e.to_string())?;
    let inter = match kind {
        KeyKind::Vcek => "ASK",
        KeyKind::Vlek => "ASVK",
    };
    let [a, b] = <[Cert; 2]>::try_from(certs)
        .map_err(|c| format!("{} certificates, expected the {inter} and the ARK", c.len()))?;
    let is_ark = |c: &Cert| c.subject_cn().is_some_and(|n| n.starts_with("ARK-"));
    match (is_ark(&a), is_ark(&b)) {
        (false, true) => Ok((a, b)),
        (true, false) => Ok((b, a)),
        _ => Err(format!("not one {inter} and one ARK (ARK-...)")),
    }
}

/// Verifies the report with the fetched certificates and CRL, as `cvm verify` would,
/// and refuses them unless every chain, signature and collateral check passes (the
/// appraisal of the claims is not this command's business).
fn check(
    path: &Path,
    report: &[u8],
    c: &SnpCollateral,
    roots: &[PathBuf],
    at: Time,
) -> Result<(), CliError> {
    let src = Sources {
        root: roots,
        ..Sources::default()
    };
    let mut inputs =
        verify::snp_inputs(&src, Some(verify::snp_reference_skip()), Some(c.supplied()))?;
    inputs.set_crl(c.crl.clone());
    let verify::AnyVerdict::Snp(v) = verify::verify_snp(&inputs, report, at) else {
        return Err(CliError::Usage("not an SNP verdict".into()));
    };
    refuse_failed(
        path,
        v.0.checks
            .iter()
            .find(|c| c.outcome == Outcome::Fail && c.category != Category::Policy),
    )
}

/// Ok unless `failed` names a failed check: then the collateral is refused (nothing
/// kept), with the check's category as the exit code.
pub(super) fn refuse_failed(
    path: &Path,
    failed: Option<&cvm_attest::Check>,
) -> Result<(), CliError> {
    match failed {
        None => Ok(()),
        Some(c) => Err(CliError::Rejected {
            category: c.category,
            first: format!(
                "{}: the fetched collateral does not verify, nothing kept: {}: {}",
                path.display(),
                c.name,
                c.reason
            ),
        }),
    }
}
