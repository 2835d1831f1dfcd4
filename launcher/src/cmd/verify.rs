//! `cvm verify`: verify attestation evidence and appraise it; exit 0 only for a pass.

use super::{CmdResult, read_file};
use crate::error::CliError;
use crate::output::{Output, Render};
use clap::{Args, ValueEnum};
use cvm_attest::snp::appraise::{Bytes, Policy, Reference};
use cvm_attest::snp::certs::{Roots, Supplied};
use cvm_attest::snp::claims::Claims;
use cvm_attest::x509::{Cert, Crl};
use cvm_attest::{Category, Outcome, Status, Time, Verdict};
use cvm_firmware::hex;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The evidence types `cvm verify` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyTee {
    /// Detect from the evidence.
    Auto,
    /// An AMD SEV-SNP ATTESTATION_REPORT (raw, 1184 bytes).
    Snp,
}

/// Arguments of `cvm verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("refs").required(true).args(["reference", "no_reference"])))]
pub struct VerifyArgs {
    /// The evidence type.
    #[arg(long, value_enum, default_value_t = VerifyTee::Auto)]
    pub tee: VerifyTee,
    /// The evidence file (SNP: the raw report).
    #[arg(long, value_name = "FILE")]
    pub evidence: PathBuf,
    /// Directory of certificates, by role: vcek or vlek, ask or asvk, and optionally ark
    /// (.der, .pem, .crt). AMD's ARKs (and ASKs) are built in.
    #[arg(long, value_name = "DIR")]
    pub certs: PathBuf,
    /// An ARK-signed CRL (DER or PEM) revoking ASKs/ASVKs.
    #[arg(long, value_name = "FILE")]
    pub crl: Option<PathBuf>,
    /// Also trust this root certificate (an AMD ARK not built in).
    #[arg(long, value_name = "FILE")]
    pub root: Vec<PathBuf>,
    /// The verification time, RFC 3339 UTC (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Reference values (TOML, JSON, or `cvm measure --format json` output).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Check authenticity only: compare no reference values.
    #[arg(long)]
    pub no_reference: bool,
    /// The policy (TOML or JSON; default: the documented default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// REPORT_DATA must be exactly this (64 bytes of hex, e.g. a nonce).
    #[arg(long, value_name = "HEX")]
    pub report_data: Option<String>,
}

/// The verdict as `cvm verify` prints it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct VerifyReport(pub Verdict<Claims>);

impl Render for VerifyReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let v = &self.0;
        let status = match v.verdict {
            Status::Pass => "pass",
            Status::Fail => "fail",
        };
        writeln!(out, "verdict: {status}")?;
        writeln!(
            out,
            "tee:     {} ({})",
            v.tee,
            v.product.as_deref().unwrap_or("product unknown")
        )?;
        writeln!(out, "time:    {}", v.verification_time)?;
        if let Some(c) = &v.claims {
            writeln!(out, "measurement: {}", c.measurement)?;
            writeln!(out, "report data: {}", c.report_data)?;
        }
        for c in &v.checks {
            let tag = match c.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::Skipped => "skip",
            };
            writeln!(out, "  [{tag}] {}: {}", c.name, c.reason)?;
        }
        Ok(())
    }
}

/// Runs `cvm verify`.
pub fn run(args: &VerifyArgs) -> CmdResult {
    let verdict = match verdict(args) {
        Ok(v) => v,
        Err(e) => return (None, Err(e)),
    };
    let failure = verdict.failure().zip(
        verdict
            .checks
            .iter()
            .find(|c| c.outcome == Outcome::Fail)
            .map(|c| format!("{}: {}", c.name, c.reason)),
    );
    let report = VerifyReport(verdict);
    match Output::new(&report) {
        Ok(out) => (
            Some(out),
            match failure {
                None => Ok(()),
                Some((category, first)) => Err(CliError::Rejected { category, first }),
            },
        ),
        Err(e) => (None, Err(e)),
    }
}

fn verdict(args: &VerifyArgs) -> Result<Verdict<Claims>, CliError> {
    let at = match &args.at {
        Some(s) => Time::parse_rfc3339(s).map_err(CliError::Usage)?,
        None => now()?,
    };
    let evidence = read_file(&args.evidence)?;
    if args.tee == VerifyTee::Auto && evidence.len() != cvm_attest::snp::report::REPORT_LEN {
        return Err(CliError::Evidence {
            path: args.evidence.clone(),
            reason: format!(
                "{} bytes is not an SEV-SNP report (1184 bytes), the only evidence type \
                 supported yet; give --tee to be told what is wrong with it",
                evidence.len()
            ),
        });
    }
    let mut roots = Roots::amd().map_err(|e| CliError::Evidence {
        path: PathBuf::from("built-in AMD roots"),
        reason: e.to_string(),
    })?;
    for path in &args.root {
        let bytes = read_file(path)?;
        for cert in Cert::parse_file(&bytes, &path.display().to_string())
            .map_err(|e| config(path, e.to_string()))?
        {
            roots.add_root(cert).map_err(|e| config(path, e))?;
        }
    }
    let supplied = read_certs(&args.certs)?;
    let crl = args
        .crl
        .as_deref()
        .map(|p| {
            let bytes = read_file(p)?;
            Crl::parse(&bytes, &p.display().to_string()).map_err(|e| CliError::Evidence {
                path: p.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let mut reference = match &args.reference {
        Some(p) => Some(read_text(p, Reference::parse)?),
        None => None,
    };
    if let Some(rd) = &args.report_data {
        let value = hex::decode_exact::<64>(rd).ok_or_else(|| {
            CliError::Usage(format!("--report-data {rd:?} is not 64 bytes of hex"))
        })?;
        let r = reference.get_or_insert_with(|| Reference {
            skip_measurement: true,
            ..Reference::default()
        });
        r.report_data = Some(Bytes(value));
    }
    let policy = match &args.policy {
        Some(p) => read_text(p, Policy::parse)?,
        None => Policy::default(),
    };
    Ok(cvm_attest::snp::verify(
        &evidence,
        &supplied,
        &roots,
        crl.as_ref(),
        reference.as_ref(),
        &policy,
        at,
    ))
}

fn config(path: &Path, reason: String) -> CliError {
    CliError::Config {
        path: path.to_owned(),
        reason,
    }
}

fn read_text<T, E: std::fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, CliError> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| config(path, "not UTF-8 text".into()))?;
    parse(&text).map_err(|e| config(path, e.to_string()))
}

/// Reads the certificates in `dir`, by role from their file names (see
/// [`Supplied::from_files`]); other files are ignored with a warning.
pub fn read_certs(dir: &Path) -> Result<Supplied, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CliError::ReadInput {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CliError::ReadInput {
            path: dir.to_owned(),
            source,
        })?;
        if entry.path().is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, read_file(&entry.path())?));
        }
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (supplied, ignored) = Supplied::from_files(&refs).map_err(|e| CliError::Evidence {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    for name in ignored {
        tracing::warn!(
            "{}: ignoring {name} (not vcek, vlek, ask, asvk or ark)",
            dir.display()
        );
    }
    Ok(supplied)
}

fn now() -> Result<Time, CliError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Time(d.as_secs()))
        .map_err(|_| CliError::Usage("the system clock is before 1970: give --at".into()))
}

/// The exit-code category of a failed verdict.
pub fn category_exit(category: Category) -> crate::exit::ExitCode {
    use crate::exit::ExitCode;
    match category {
        Category::Malformed => ExitCode::MalformedInput,
        Category::Signature => ExitCode::SignatureInvalid,
        Category::Collateral => ExitCode::CollateralUnavailable,
        Category::Policy => ExitCode::PolicyRejected,
    }
}
