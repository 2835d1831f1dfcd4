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
use crate::fetch::{DiskCache, FetchError, Fetcher, Limits};
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
    /// Keep what was fetched (after it verified) in DIR, and use entries still valid at
    /// `--at` instead of asking again.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

pub(crate) fn parse_product(s: &str) -> Result<Product, String> {
    Product::ALL
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?}: expected Milan, Genoa or Turin"))
}

/// `30s`, `500ms`, `2m`, or bare seconds.
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
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

pub(crate) fn unavailable(e: FetchError) -> CliError {
    CliError::CollateralMissing {
        path: PathBuf::from(e.url),
        reason: e.reason,
    }
}

fn fetch(args: &FetchArgs) -> Result<FetchReport, CliError> {
    let at = verify::at_or_now(args.at.as_deref())?;
    let mut kds = Kds::new(&args.kds_url, args.timeout, args.cache.as_deref());
    let mut fetched = Vec::new();
    for path in &args.evidence {
        let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
            path: path.clone(),
            source,
        })?;
        let c = kds.snp(path, &bytes, args.product, &args.root, at)?;
        let dir = if args.evidence.len() == 1 {
            args.out.clone()
        } else {
            args.out.join(
                path.file_stem()
                    .map_or_else(|| "evidence".into(), |s| s.to_string_lossy().into_owned()),
            )
        };
        let files: [(&'static str, Vec<u8>); 4] = [
            ("vcek.der", c.vcek.der().to_vec()),
            ("ask.pem", pem(c.ask.der()).into_bytes()),
            ("ark.pem", pem(c.ark.der()).into_bytes()),
            ("crl.der", c.crl.der().to_vec()),
        ];
        write_all(&dir, &files)?;
        fetched.push(Fetched {
            evidence: path.clone(),
            product: c.product.name(),
            vcek_url: c.vcek_url,
            dir,
            files: files.iter().map(|(n, _)| *n).collect(),
        });
    }
    Ok(FetchReport {
        fetched,
        requests: kds.fetcher.requests,
    })
}

/// An SNP report's collateral, verified.
pub struct SnpCollateral {
    /// The product.
    pub product: Product,
    /// The VCEK's URL.
    pub vcek_url: String,
    /// The VCEK.
    pub vcek: Cert,
    /// The ASK.
    pub ask: Cert,
    /// The ARK.
    pub ark: Cert,
    /// The CRL.
    pub crl: Crl,
}

/// The three items of an SNP report's collateral.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    Vcek,
    Chain,
    Crl,
}

/// AMD's KDS, with an optional cache: a fetch session.
pub struct Kds {
    base: String,
    /// The HTTP client (it counts requests).
    pub fetcher: Fetcher,
    cache: Option<DiskCache>,
}

impl Kds {
    /// A session with the KDS at `base`.
    pub fn new(base: &str, timeout: Duration, cache: Option<&Path>) -> Self {
        Kds {
            base: base.trim_end_matches('/').to_owned(),
            fetcher: Fetcher::new(Limits {
                timeout,
                ..Limits::default()
            }),
            cache: cache.map(DiskCache::new),
        }
    }

    /// The VCEK, ASK, ARK and CRL of the report `bytes` (from `path`), from the cache
    /// where an entry is still valid at `at`, else from the KDS; verified together with
    /// the report as `cvm verify` would (with `roots` also trusted) before they are used
    /// or cached. When cached items are part of a failure, they are dropped and fetched
    /// again.
    pub fn snp(
        &mut self,
        path: &Path,
        bytes: &[u8],
        product: Option<Product>,
        roots: &[PathBuf],
        at: Time,
    ) -> Result<SnpCollateral, CliError> {
        let report = Report::parse(bytes).map_err(|e| CliError::Evidence {
            path: path.to_owned(),
            source: crate::error::InputError::Other(e.to_string()),
        })?;
        let product = product_of(&report, product, path)?;
        let base = &self.base;
        let urls = [
            (Item::Vcek, vcek_url(base, product, &report)?),
            (Item::Chain, format!("{base}/vcek/v1/{product}/cert_chain")),
            (Item::Crl, format!("{base}/vcek/v1/{product}/crl")),
        ];
        let mut bodies: [Vec<u8>; 3] = Default::default();
        let mut cached = Vec::new();
        for ((item, url), body) in urls.iter().zip(bodies.iter_mut()) {
            let hit = self
                .cache
                .as_ref()
                .and_then(|c| c.load(url))
                .filter(|b| expiry(*item, b).is_some_and(|end| at < end));
            *body = match hit {
                Some(b) => {
                    cached.push(url.clone());
                    b
                }
                None => self.fetcher.get(url).map_err(unavailable)?,
            };
        }
        let mut result = assemble(product, &urls, &bodies)
            .and_then(|c| check(path, bytes, &c, roots, at).map(|()| c));
        if result.is_err() && !cached.is_empty() {
            // A cache is never trusted more than the network: when what came from it
            // does not verify, every cached item is fetched again.
            for ((_, url), body) in urls.iter().zip(bodies.iter_mut()) {
                if cached.contains(url) {
                    if let Some(c) = &self.cache {
                        c.forget(url);
                    }
                    *body = self.fetcher.get(url).map_err(unavailable)?;
                }
            }
            cached.clear();
            result = assemble(product, &urls, &bodies)
                .and_then(|c| check(path, bytes, &c, roots, at).map(|()| c));
        }
        let collateral = result?;
        if let Some(c) = &self.cache {
            for ((_, url), body) in urls.iter().zip(&bodies) {
                if !cached.contains(url) {
                    c.store(url, body).map_err(|source| CliError::WriteFile {
                        path: c.path(url),
                        source,
                    })?;
                }
            }
        }
        Ok(collateral)
    }
}

/// When an item stops being usable: a certificate's notAfter (the earliest, for the
/// chain), a CRL's nextUpdate (none: at once).
fn expiry(item: Item, bytes: &[u8]) -> Option<Time> {
    match item {
        Item::Vcek => Cert::from_der(bytes, "the VCEK")
            .ok()
            .map(|c| c.validity().1),
        Item::Chain => Cert::parse_file(bytes, "the chain")
            .ok()?
            .iter()
            .map(|c| c.validity().1)
            .min(),
        Item::Crl => Crl::parse(bytes, "the CRL").ok()?.window().1,
    }
}

fn assemble(
    product: Product,
    urls: &[(Item, String); 3],
    bodies: &[Vec<u8>; 3],
) -> Result<SnpCollateral, CliError> {
    let bad = |url: &str, what: String| {
        unavailable(FetchError {
            url: url.to_owned(),
            reason: what,
        })
    };
    let [(_, vcek_url), (_, chain_url), (_, crl_url)] = urls;
    let [vcek, chain, crl] = bodies;
    let vcek = Cert::from_der(vcek, "the VCEK").map_err(|e| bad(vcek_url, e.to_string()))?;
    let (ask, ark) = split_chain(chain).map_err(|e| bad(chain_url, e))?;
    let crl = Crl::parse(crl, "the CRL").map_err(|e| bad(crl_url, e.to_string()))?;
    Ok(SnpCollateral {
        product,
        vcek_url: vcek_url.clone(),
        vcek,
        ask,
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
fn check(
    path: &Path,
    report: &[u8],
    c: &SnpCollateral,
    roots: &[PathBuf],
    at: Time,
) -> Result<(), CliError> {
    let src = Sources {
        certs: None,
        crl: None,
        no_crl: false,
        root: roots,
        collateral: None,
        event_log: None,
        plan_log: None,
        policy: None,
    };
    let supplied = Supplied {
        vcek: Some(c.vcek.clone()),
        ask: Some(c.ask.clone()),
        ark: Some(c.ark.clone()),
        ..Supplied::default()
    };
    let mut inputs = verify::snp_inputs(&src, Some(verify::snp_reference_skip()), Some(supplied))?;
    inputs.set_crl(c.crl.clone());
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
                "{}: the fetched collateral does not verify, nothing kept: {}: {}",
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
