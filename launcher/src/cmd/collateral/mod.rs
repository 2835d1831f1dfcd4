//! `cvm collateral`: what a piece of evidence needs, from the vendor's service
//! (AMD's KDS for SEV-SNP, [`kds`]; Intel's PCS or a PCCS for TDX and SGX, [`pcs`]),
//! verified with the evidence before it is written; and offline bundles of it
//! ([`bundle`]). Files are written to a temporary name and renamed, so a directory never
//! holds half of a fetch.

pub mod bundle;
pub mod kds;
pub mod pcs;

use super::verify;
use super::{CmdResult, simple};
use crate::error::CliError;
use crate::fetch::Session;
use crate::output::{Output, Render};
use clap::{Args, Subcommand};
use cvm_attest::snp::tcb::Product;
use cvm_attest::x509::Cert;
use cvm_firmware::Tee;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use kds::{KDS_URL, Kds};
pub use pcs::{PCS_URL, Pcs, ROOT_CRL_URL, TcbUpdate};

/// What `cvm collateral` does.
#[derive(Debug, Subcommand)]
pub enum CollateralArgs {
    /// Fetch what evidence needs from the vendor's service, verify it, write it where
    /// `cvm verify` reads it.
    Fetch(FetchArgs),
    /// Fetch what a set of evidence needs, verify it, and write it as one file for an
    /// offline site (`cvm verify --collateral FILE.tar`).
    Bundle(BundleArgs),
}

/// The services and how to reach and trust them (shared by `fetch` and `bundle`).
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// SEV-SNP reports (the raw 1184 bytes) or DCAP quotes (TDX, SGX). Repeatable: each
    /// distinct certificate, CRL or TCB Info is fetched once.
    #[arg(long, value_name = "FILE", required = true)]
    pub evidence: Vec<PathBuf>,
    /// AMD KDS's base URL (a mirror, or a test server).
    #[arg(long, value_name = "URL", default_value = KDS_URL)]
    pub kds_url: String,
    /// Intel PCS's base URL, or a PCCS's (the caching service operators run).
    #[arg(long, value_name = "URL", default_value = PCS_URL)]
    pub pcs_url: String,
    /// Where the Intel SGX Root CA's CRL is (default: Intel's, for Intel's PCS; a
    /// PCCS's `/sgx/certification/v4/rootcacrl` for any other --pcs-url).
    #[arg(long, value_name = "URL")]
    pub intel_root_crl_url: Option<String>,
    /// TDX, SGX: which of Intel's TCB evaluations the TCB Info and QE Identity are
    /// fetched for: `standard` (the service's default), `early` (a TCB recovery visible
    /// sooner), or a TCB evaluation data number (which both must then carry).
    #[arg(long, value_name = "standard|early|N", default_value = "standard")]
    pub tcb_update: TcbUpdate,
    /// SNP: the product, for reports that do not name it (version 2 has no CPUID fields).
    #[arg(long, value_name = "Milan|Genoa|Turin", value_parser = parse_product)]
    pub product: Option<Product>,
    /// SNP: certificates the host handed out with the report (a VLEK, which the KDS does
    /// not serve), as a `cvm verify --certs` directory.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Also trust this root (a test or pre-production ARK or Intel root; never needed
    /// for AMD's or Intel's).
    #[arg(long, value_name = "FILE")]
    pub root: Vec<PathBuf>,
    /// The time the fetched collateral must be valid at, RFC 3339 UTC (default: now).
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

/// Arguments of `cvm collateral fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The evidence and the services.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Where to write. With one `--evidence`, DIR itself: for SNP a `cvm verify --certs`
    /// directory (vcek.der or vlek.der, ask.pem or asvk.pem, ark.pem) holding the CRL too
    /// (crl.der, for `--crl`); for TDX a `cvm verify --collateral` directory of the
    /// pieces as Intel serves them. With several, one such directory per evidence file,
    /// named after the file.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Arguments of `cvm collateral bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The evidence and the services.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The bundle to write (a tar file).
    #[arg(long, value_name = "FILE.tar")]
    pub out: PathBuf,
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
    /// `snp` or `tdx`.
    pub tee: &'static str,
    /// What it is from: the SNP product, or the FMSPC and PCK CA of a quote.
    pub platform: String,
    /// The URL of the item that names the platform (the VCEK's, the TCB Info's).
    pub url: String,
    /// The directory written (`fetch` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The files written in it (`fetch` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<&'static str>,
}

/// What `cvm collateral fetch` and `bundle` report.
#[derive(Debug, Serialize)]
pub struct FetchReport {
    /// One entry per evidence file.
    pub fetched: Vec<Fetched>,
    /// The bundle written (`bundle` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    /// HTTP requests sent (each distinct URL once; retries counted).
    pub requests: usize,
}

impl Render for FetchReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for f in &self.fetched {
            write!(
                out,
                "{}: {} collateral ({}) verified",
                f.evidence.display(),
                f.tee,
                f.platform
            )?;
            match &f.dir {
                Some(d) => writeln!(out, ", written to {} ({})", d.display(), f.files.join(", "))?,
                None => writeln!(out)?,
            }
        }
        if let Some(b) = &self.bundle {
            writeln!(out, "bundle written to {}", b.display())?;
        }
        writeln!(out, "{} requests", self.requests)
    }
}

/// Runs `cvm collateral`.
pub fn run(args: &CollateralArgs) -> CmdResult {
    match args {
        CollateralArgs::Fetch(a) => simple(|| Output::new(&fetch(a)?)),
        CollateralArgs::Bundle(a) => simple(|| Output::new(&make_bundle(a)?)),
    }
}

/// The kind of evidence `bytes` is: a DCAP quote or an SNP report.
fn kind_of(path: &Path, bytes: &[u8]) -> Result<Tee, CliError> {
    verify::sniff(bytes).ok_or_else(|| CliError::Evidence {
        path: path.to_owned(),
        source: crate::error::InputError::Other(format!(
            "{} bytes is neither an SEV-SNP report (1184 bytes) nor a DCAP quote",
            bytes.len()
        )),
    })
}

/// One piece of evidence's collateral, verified.
pub enum Obtained {
    /// SEV-SNP.
    Snp(kds::SnpCollateral),
    /// TDX or SGX.
    Tdx(pcs::TdxCollateral),
}

impl Obtained {
    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        match self {
            Obtained::Snp(c) => c.files().to_vec(),
            Obtained::Tdx(c) => c.files.clone(),
        }
    }

    fn describe(&self, evidence: &Path) -> Fetched {
        let (tee, platform, url) = match self {
            Obtained::Snp(c) => (
                "snp",
                format!(
                    "{} {}",
                    c.product.name(),
                    match c.kind {
                        kds::KeyKind::Vcek => "VCEK",
                        kds::KeyKind::Vlek => "VLEK",
                    }
                ),
                c.key_url.clone(),
            ),
            Obtained::Tdx(c) => (
                "tdx",
                format!("FMSPC {}, PCK {:?} CA", c.fmspc, c.ca),
                c.tcb_url.clone(),
            ),
        };
        Fetched {
            evidence: evidence.to_owned(),
            tee,
            platform,
            url,
            dir: None,
            files: Vec::new(),
        }
    }
}

/// The services of a run, and its session.
pub struct Services {
    /// AMD's KDS.
    pub kds: Kds,
    /// Intel's PCS or a PCCS.
    pub pcs: Pcs,
    /// The session (network, cache, or a bundle).
    pub session: Session,
}

impl Services {
    /// The collateral of the evidence `bytes` (from `path`), verified at `at`.
    pub fn obtain(
        &mut self,
        (path, bytes): (&Path, &[u8]),
        product: Option<Product>,
        vlek: Option<&Cert>,
        roots: &[PathBuf],
        at: cvm_attest::Time,
    ) -> Result<Obtained, CliError> {
        match kind_of(path, bytes)? {
            Tee::Cca => Err(CliError::Usage(format!(
                "{}: a CCA token needs no collateral from a service (its platform key, the \
                 CPAK, is given to cvm verify with --cpak or --tastore)",
                path.display()
            ))),
            Tee::Snp => self
                .kds
                .snp(&mut self.session, (path, bytes), product, vlek, roots, at)
                .map(Obtained::Snp),
            _ => self
                .pcs
                .tdx(&mut self.session, (path, bytes), roots, at)
                .map(Obtained::Tdx),
        }
    }
}

/// Each `--evidence` file with its bytes and its verified collateral.
type AllObtained = Vec<(PathBuf, Vec<u8>, Obtained)>;

/// Fetches (and verifies) what every `--evidence` needs.
fn obtain_all(a: &ServiceArgs) -> Result<(Services, AllObtained, cvm_attest::Time), CliError> {
    let at = verify::at_or_now(a.at.as_deref())?;
    let vlek = match &a.certs {
        Some(d) => verify::read_certs(d)?.vlek,
        None => None,
    };
    let mut services = Services {
        kds: Kds::new(&a.kds_url),
        pcs: Pcs::new(&a.pcs_url, a.intel_root_crl_url.as_deref()).with_update(a.tcb_update),
        session: Session::network(a.timeout, a.cache.as_deref()),
    };
    let mut all = Vec::new();
    for path in &a.evidence {
        let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
            path: path.clone(),
            source,
        })?;
        let c = services.obtain((path, &bytes), a.product, vlek.as_ref(), &a.root, at)?;
        all.push((path.clone(), bytes, c));
    }
    Ok((services, all, at))
}

fn fetch(args: &FetchArgs) -> Result<FetchReport, CliError> {
    let (services, all, _) = obtain_all(&args.service)?;
    let mut fetched = Vec::new();
    let several = args.service.evidence.len() > 1;
    for (path, _, c) in &all {
        let dir = if several {
            args.out.join(
                path.file_stem()
                    .map_or_else(|| "evidence".into(), |s| s.to_string_lossy().into_owned()),
            )
        } else {
            args.out.clone()
        };
        let files = c.files();
        write_files(&dir, &files)?;
        let mut f = c.describe(path);
        f.files = files.iter().map(|(n, _)| *n).collect();
        f.dir = Some(dir);
        fetched.push(f);
    }
    Ok(FetchReport {
        fetched,
        bundle: None,
        requests: services.session.requests(),
    })
}

fn make_bundle(args: &BundleArgs) -> Result<FetchReport, CliError> {
    let (services, all, at) = obtain_all(&args.service)?;
    let manifest = bundle::Manifest {
        format: bundle::FORMAT.into(),
        version: 1,
        kds_url: services.kds.base().to_owned(),
        pcs_url: services.pcs.base().to_owned(),
        intel_root_crl_url: services.pcs.root_crl_url().to_owned(),
        pcs_tcb_update: services.pcs.update().manifest_value(),
        verified_at: at.to_string(),
        evidence: all
            .iter()
            .map(|(path, bytes, c)| bundle::BundledEvidence {
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                tee: match c {
                    Obtained::Snp(_) => "snp".into(),
                    Obtained::Tdx(_) => "tdx".into(),
                },
                sha256: {
                    use sha2::Digest;
                    hex::encode(sha2::Sha256::digest(bytes))
                },
            })
            .collect(),
        responses: services
            .session
            .kept
            .iter()
            .map(|(u, _)| u.clone())
            .collect(),
    };
    let bytes =
        bundle::write(&manifest, &services.session.kept).map_err(|source| CliError::WriteFile {
            path: args.out.clone(),
            source,
        })?;
    let (dir, name) = match (args.out.parent(), args.out.file_name()) {
        (Some(d), Some(n)) => (d.to_owned(), n.to_string_lossy().into_owned()),
        _ => (PathBuf::from("."), args.out.display().to_string()),
    };
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    write_files(&dir, &[(name.as_str(), bytes)])?;
    Ok(FetchReport {
        fetched: all.iter().map(|(p, _, c)| c.describe(p)).collect(),
        bundle: Some(args.out.clone()),
        requests: services.session.requests(),
    })
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
fn write_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), CliError> {
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
