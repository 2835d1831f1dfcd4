//! `cvm collateral fetch`: what a piece of evidence needs, from the vendor's service,
//! verified before it is written.
//!
//! SEV-SNP (AMD's Key Distribution Service, "VCEK/VLEK Certificate and KDS Interface
//! Specification"): the VCEK at `/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&
//! ucodeSPL=..` (Turin: `fmcSPL` too, and the hardware ID is CHIP_ID's first 8 bytes),
//! the ASK and ARK at `/vcek/v1/{product}/cert_chain` (PEM, ASK first), the CRL at
//! `/vcek/v1/{product}/crl` (DER). Everything fetched goes through `cvm verify`'s chain,
//! signature and CRL checks at `--at` before any file is written; files are written to a
//! temporary name and renamed, so a directory never holds half of a fetch.

use super::verify::{self, Sources};
use super::{CmdResult, simple};
use crate::error::CliError;
use crate::fetch::{FetchError, Fetcher, Limits};
use crate::output::{Output, Render};
use clap::{Args, Subcommand};
use cvm_attest::snp::certs::Supplied;
use cvm_attest::snp::report::{Report, SigningKey};
use cvm_attest::snp::tcb::{Product, Tcb};
use cvm_attest::x509::{Cert, Crl};
use cvm_attest::{Category, Outcome, Time};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// AMD's Key Distribution Service.
pub const KDS_URL: &str = "https://kdsintf.amd.com";

/// What `cvm collateral` does.
#[derive(Debug, Subcommand)]
pub enum CollateralArgs {
    /// Fetch what evidence needs from the vendor's service, verify it, write it where
    /// `cvm verify` reads it.
    Fetch(FetchArgs),
}

/// Arguments of `cvm collateral fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// An SEV-SNP report (the raw 1184 bytes). Repeatable: each distinct certificate or
    /// CRL is fetched once.
    #[arg(long, value_name = "FILE", required = true)]
    pub evidence: Vec<PathBuf>,
    /// Where to write. With one `--evidence`, DIR itself becomes a `cvm verify --certs`
    /// directory (vcek.der, ask.pem, ark.pem) holding the CRL too (crl.der, for `--crl`);
    /// with several, one such directory per evidence file, named after the file.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The KDS's base URL (a mirror, or a test server).
    #[arg(long, value_name = "URL", default_value = KDS_URL)]
    pub kds_url: String,
    /// The product, for reports that do not name it (version 2 has no CPUID fields).
    #[arg(long, value_name = "Milan|Genoa|Turin", value_parser = parse_product)]
    pub product: Option<Product>,
    /// Also trust this root (a test or pre-production ARK; never needed for AMD's).
    #[arg(long, value_name = "FILE")]
    pub root: Vec<PathBuf>,
    /// The time the fetched certificates and CRL must be valid at, RFC 3339 UTC (default:
    /// now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// How long one request may take.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_seconds)]
    pub timeout: Duration,
}

fn parse_product(s: &str) -> Result<Product, String> {
    Product::ALL
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?}: expected Milan, Genoa or Turin"))
}

/// `30s`, `500ms`, `2m`, or bare seconds.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected e.g. 30s"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{s:?}: the unit is ms, s or m")),
    };
    if d.is_zero() {
        return Err("a timeout of zero".into());
    }
    Ok(d)
}

/// What was fetched for one piece of evidence.
#[derive(Debug, Serialize)]
pub struct Fetched {
    /// The evidence file.
    pub evidence: PathBuf,
    /// The product.
    pub product: &'static str,
    /// The VCEK's URL.
    pub vcek_url: String,
    /// The directory written.
    pub dir: PathBuf,
    /// The files written in it.
    pub files: Vec<&'static str>,
}

/// What `cvm collateral fetch` reports.
#[derive(Debug, Serialize)]
pub struct FetchReport {
    /// One entry per evidence file.
    pub fetched: Vec<Fetched>,
    /// HTTP requests sent (each distinct URL once; retries counted).
    pub requests: usize,
}

impl Render for FetchReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for f in &self.fetched {
            writeln!(
                out,
                "{}: {} VCEK, chain and CRL verified, written to {} ({})",
                f.evidence.display(),
                f.product,
                f.dir.display(),
                f.files.join(", ")
            )?;
        }
        writeln!(out, "{} requests", self.requests)
    }
}

/// Runs `cvm collateral`.
pub fn run(args: &CollateralArgs) -> CmdResult {
    match args {
        CollateralArgs::Fetch(a) => simple(|| Output::new(&fetch(a)?)),
    }
}

fn unavailable(e: FetchError) -> CliError {
    CliError::CollateralMissing {
        path: PathBuf::from(e.url),
        reason: e.reason,
    }
}

fn fetch(args: &FetchArgs) -> Result<FetchReport, CliError> {
    let at = verify::at_or_now(args.at.as_deref())?;
    let base = args.kds_url.trim_end_matches('/');
    let mut fetcher = Fetcher::new(Limits {
        timeout: args.timeout,
        ..Limits::default()
    });
    let mut fetched = Vec::new();
    for path in &args.evidence {
        let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
            path: path.clone(),
            source,
        })?;
        let report = Report::parse(&bytes).map_err(|e| CliError::Evidence {
            path: path.clone(),
            source: crate::error::InputError::Other(e.to_string()),
        })?;
        let product = product_of(&report, args.product, path)?;
        let vcek_url = vcek_url(base, product, &report)?;
        let vcek = fetcher.get(&vcek_url).map_err(unavailable)?;
        let chain_url = format!("{base}/vcek/v1/{product}/cert_chain");
        let chain = fetcher.get(&chain_url).map_err(unavailable)?;
        let crl_url = format!("{base}/vcek/v1/{product}/crl");
        let crl_der = fetcher.get(&crl_url).map_err(unavailable)?;
        let bad = |url: &str, what: String| {
            unavailable(FetchError {
                url: url.to_owned(),
                reason: what,
            })
        };
        let vcek_cert =
            Cert::from_der(&vcek, "the VCEK").map_err(|e| bad(&vcek_url, e.to_string()))?;
        let (ask, ark) = split_chain(&chain).map_err(|e| bad(&chain_url, e))?;
        let crl = Crl::parse(&crl_der, "the CRL").map_err(|e| bad(&crl_url, e.to_string()))?;
        check(args, path, &bytes, &vcek_cert, &ask, &ark, crl, at)?;
        let dir = if args.evidence.len() == 1 {
            args.out.clone()
        } else {
            args.out.join(
                path.file_stem()
                    .map_or_else(|| "evidence".into(), |s| s.to_string_lossy().into_owned()),
            )
        };
        let files: [(&'static str, Vec<u8>); 4] = [
            ("vcek.der", vcek),
            ("ask.pem", pem(ask.der()).into_bytes()),
            ("ark.pem", pem(ark.der()).into_bytes()),
            ("crl.der", crl_der),
        ];
        write_all(&dir, &files)?;
        fetched.push(Fetched {
            evidence: path.clone(),
            product: product.name(),
            vcek_url,
            dir,
            files: files.iter().map(|(n, _)| *n).collect(),
        });
    }
    Ok(FetchReport {
        fetched,
        requests: fetcher.requests,
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
fn vcek_url(base: &str, product: Product, r: &Report<'_>) -> Result<String, CliError> {
    match r.signing_key() {
        SigningKey::Vcek => {}
        SigningKey::Vlek => {
            return Err(CliError::CollateralMissing {
                path: PathBuf::from(format!("{base}/vlek/v1/{product}")),
                reason: "the report is signed with a VLEK, which the KDS does not hand out \
                         (it comes with the report, in the host's certificate table)"
                    .into(),
            });
        }
        other => {
            return Err(CliError::Usage(format!(
                "the report is not signed by a VCEK (SIGNING_KEY {other:?})"
            )));
        }
    }
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
    Ok(url)
}

/// The ASK and the ARK of a `cert_chain` response (PEM; told apart by their names).
fn split_chain(pem: &[u8]) -> Result<(Cert, Cert), String> {
    let certs = Cert::parse_file(pem, "the certificate chain").map_err(|e| e.to_string())?;
    let [a, b] = <[Cert; 2]>::try_from(certs)
        .map_err(|c| format!("{} certificates, expected the ASK and the ARK", c.len()))?;
    let is_ark = |c: &Cert| c.subject_cn().is_some_and(|n| n.starts_with("ARK-"));
    match (is_ark(&a), is_ark(&b)) {
        (false, true) => Ok((a, b)),
        (true, false) => Ok((b, a)),
        _ => Err("not one ASK (SEV-...) and one ARK (ARK-...)".into()),
    }
}

/// Verifies the report with the fetched certificates and CRL, as `cvm verify` would,
/// and refuses them unless every chain, signature and collateral check passes (the
/// appraisal of the claims is not this command's business).
#[allow(clippy::too_many_arguments, reason = "one call site, each piece named")]
fn check(
    args: &FetchArgs,
    path: &Path,
    report: &[u8],
    vcek: &Cert,
    ask: &Cert,
    ark: &Cert,
    crl: Crl,
    at: Time,
) -> Result<(), CliError> {
    let src = Sources {
        certs: None,
        crl: None,
        no_crl: false,
        root: &args.root,
        collateral: None,
        event_log: None,
        plan_log: None,
        policy: None,
    };
    let supplied = Supplied {
        vcek: Some(vcek.clone()),
        ask: Some(ask.clone()),
        ark: Some(ark.clone()),
        ..Supplied::default()
    };
    let mut inputs = verify::snp_inputs(&src, Some(verify::snp_reference_skip()), Some(supplied))?;
    inputs.set_crl(crl);
    let v = verify::verify_snp(&inputs, report, at);
    let verify::AnyVerdict::Snp(v) = v else {
        return Err(CliError::Usage("not an SNP verdict".into()));
    };
    let failed =
        v.0.checks
            .iter()
            .find(|c| c.outcome == Outcome::Fail && c.category != Category::Policy);
    match failed {
        None => Ok(()),
        Some(c) => Err(CliError::Rejected {
            category: c.category,
            first: format!(
                "{}: the fetched collateral does not verify, nothing written: {}: {}",
                path.display(),
                c.name,
                c.reason
            ),
        }),
    }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// Writes every file of `files` into `dir` (made if missing), each to a temporary name
/// then renamed over the old one, so no reader sees half a file.
fn write_all(dir: &Path, files: &[(&'static str, Vec<u8>)]) -> Result<(), CliError> {
    let fail = |path: &Path, source: io::Error| CliError::WriteFile {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut staged = Vec::new();
    for (name, bytes) in files {
        let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
        if let Err(e) = std::fs::write(&tmp, bytes) {
            for (t, _) in &staged {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(&tmp, e));
        }
        staged.push((tmp, dir.join(name)));
    }
    for (tmp, target) in &staged {
        std::fs::rename(tmp, target).map_err(|e| fail(target, e))?;
    }
    Ok(())
}
