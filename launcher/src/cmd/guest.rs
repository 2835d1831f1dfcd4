//! `cvm guest attest`: the guest side of `cvm launch --attest` (`cvm_attest::exchange`),
//! for Linux guests. It reads the launch's nonce from QEMU's fw_cfg sysfs interface, gets
//! evidence bound to it through the kernel's configfs-tsm report interface
//! (Documentation/ABI/testing/configfs-tsm-report), and writes the `CVM-EVIDENCE` line.

use super::{CmdResult, simple};
use crate::error::CliError;
use crate::output::{Output, Render};
use base64::Engine;
use clap::{Args, Subcommand};
use cvm_attest::exchange::{self, EvidenceKind, NONCE_LEN};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The guest side of `cvm launch --attest`.
#[derive(Debug, Subcommand)]
pub enum GuestArgs {
    /// Inside a Linux guest: get evidence bound to the launch's nonce and send it to the
    /// host's console.
    Attest(AttestArgs),
    /// Write the built-in attesting guest's image (what `cvm launch --tee snp|tdx` runs
    /// when no image is given), to measure it with another tool or boot it with another
    /// VMM.
    Image(ImageArgs),
}

/// Arguments of `cvm guest image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// What `cvm guest image` reports.
#[derive(Debug, Serialize)]
pub struct GuestImageReport {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub size: usize,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl Render for GuestImageReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "cvm: wrote the attesting guest ({} bytes, sha256 {}) to {}",
            self.size,
            self.sha256,
            self.path.display()
        )
    }
}

fn image(args: &ImageArgs) -> Result<GuestImageReport, CliError> {
    use sha2::Digest;
    let bytes = crate::guest::ATTEST_GUEST;
    std::fs::write(&args.out, bytes).map_err(|source| CliError::WriteFile {
        path: args.out.clone(),
        source,
    })?;
    Ok(GuestImageReport {
        path: args.out.clone(),
        size: bytes.len(),
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
    })
}

/// Where the nonce comes from (qemu_fw_cfg's sysfs file for fw_cfg `opt/cvm/nonce`).
const NONCE_PATH: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/cvm/nonce/raw";
/// configfs-tsm's report directory.
const TSM_REPORT: &str = "/sys/kernel/config/tsm/report";
/// Where Linux (6.0+) exposes the ACPI CCEL table's log area: a TDX guest's firmware
/// event log.
const CCEL_PATH: &str = "/sys/firmware/acpi/tables/data/CCEL";
/// The most a report attribute is read (a TDX quote with certification data, an SNP
/// certificate table: well under this).
const MAX_BLOB: u64 = 1 << 20;

/// Arguments of `cvm guest attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// Where to write the evidence line: a serial device or file, or `-` for stdout.
    #[arg(long, value_name = "PATH", default_value = "/dev/ttyS0")]
    pub to: String,
    /// The nonce file (default: fw_cfg's `opt/cvm/nonce` through the qemu_fw_cfg driver).
    #[arg(long, value_name = "FILE", default_value = NONCE_PATH)]
    pub nonce_file: PathBuf,
    /// configfs-tsm's report directory, where an entry is made for the request.
    #[arg(long, value_name = "DIR", default_value = TSM_REPORT, conflicts_with = "tsm_entry")]
    pub tsm_report: PathBuf,
    /// Use this existing configfs-tsm report entry instead of making one.
    #[arg(long, value_name = "DIR")]
    pub tsm_entry: Option<PathBuf>,
    /// TDX: the firmware's event log, sent as the auxiliary data so the host can replay
    /// it and say which event departs from its plan (default: the CCEL table's log area;
    /// its padding is not sent).
    #[arg(long, value_name = "FILE", default_value = CCEL_PATH)]
    pub event_log: PathBuf,
    /// TDX: send no event log.
    #[arg(long, conflicts_with = "event_log")]
    pub no_event_log: bool,
}

/// The TD's firmware event log at `path`, read and checked as the host will read it,
/// without the log area's padding; none, and why, when it is missing or damaged (the
/// evidence is still sent: the log only explains it).
fn tdx_event_log(path: &Path) -> (Vec<u8>, String) {
    let bytes = match read_small(path, "the event log") {
        Ok(b) => b,
        Err(e) => {
            let why = if path.exists() {
                e.to_string()
            } else {
                format!(
                    "{} does not exist (Linux 6.0+ exposes the CCEL table's log there)",
                    path.display()
                )
            };
            return (Vec::new(), format!("not sent: {why}"));
        }
    };
    match cvm_attest::eventlog::GuestLog::parse(&bytes) {
        Ok(g) => {
            let mut log = bytes;
            log.truncate(g.len);
            let note = format!("sent: {} events, {} bytes", g.events.len(), log.len());
            (log, note)
        }
        Err(e) => (Vec::new(), format!("not sent: {}: {e}", path.display())),
    }
}

/// What `cvm guest attest` reports.
#[derive(Debug, Serialize)]
pub struct GuestAttestReport {
    /// The provider configfs-tsm named (`sev_guest`, `tdx_guest`, ...).
    pub provider: String,
    /// The evidence type sent.
    pub evidence: &'static str,
    /// Its size.
    pub evidence_bytes: usize,
    /// The auxiliary data's size (0: none sent).
    pub aux_bytes: usize,
    /// TDX: what became of the event log (sent with N events, or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log: Option<String>,
    /// REPORT_DATA bound to the nonce, hex.
    pub report_data: String,
    /// Where the line went.
    pub to: String,
}

impl Render for GuestAttestReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "cvm: sent {} evidence ({} bytes, {} of auxiliary data) from {} to {}",
            self.evidence, self.evidence_bytes, self.aux_bytes, self.provider, self.to
        )?;
        if let Some(note) = &self.event_log {
            writeln!(out, "cvm: event log {note}")?;
        }
        Ok(())
    }
}

/// Runs `cvm guest`.
pub fn run(args: &GuestArgs) -> CmdResult {
    match args {
        // With `--to -` stdout carries the line alone; the summary goes to the log.
        GuestArgs::Attest(a) if a.to == "-" => match attest(a) {
            Ok(r) => {
                tracing::info!(
                    "sent {} evidence ({} bytes) from {}",
                    r.evidence,
                    r.evidence_bytes,
                    r.provider
                );
                if let Some(note) = &r.event_log {
                    tracing::info!("event log {note}");
                }
                (None, Ok(()))
            }
            Err(e) => (None, Err(e)),
        },
        GuestArgs::Attest(a) => simple(|| Output::new(&attest(a)?)),
        GuestArgs::Image(a) => simple(|| Output::new(&image(a)?)),
    }
}

fn unavailable(what: String) -> CliError {
    CliError::PlatformUnavailable(what)
}

fn read_small(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| unavailable(format!("{what} {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_BLOB.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| unavailable(format!("{what} {}: {e}", path.display())))?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > MAX_BLOB {
        return Err(unavailable(format!(
            "{what} {}: more than {MAX_BLOB} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

fn generation(entry: &Path) -> Result<String, CliError> {
    let g = read_small(&entry.join("generation"), "the report's generation")?;
    Ok(String::from_utf8_lossy(&g).trim().to_owned())
}

/// A report entry this process made (removed again when dropped), or one it was given.
struct Entry {
    path: PathBuf,
    ours: bool,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.ours
            && let Err(e) = std::fs::remove_dir(&self.path)
        {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

fn attest(args: &AttestArgs) -> Result<GuestAttestReport, CliError> {
    let nonce = read_small(&args.nonce_file, "the launch's nonce").map_err(|e| {
        unavailable(format!(
            "{e} (the host did not launch with cvm launch --attest, or the qemu_fw_cfg \
             driver is not loaded: modprobe qemu_fw_cfg)"
        ))
    })?;
    let nonce: [u8; NONCE_LEN] = nonce.as_slice().try_into().map_err(|_| {
        CliError::Usage(format!(
            "{}: {} bytes, not a {NONCE_LEN}-byte nonce",
            args.nonce_file.display(),
            nonce.len()
        ))
    })?;
    let binding = exchange::report_data(&nonce);
    let entry = match &args.tsm_entry {
        Some(p) => Entry {
            path: p.clone(),
            ours: false,
        },
        None => {
            if !args.tsm_report.is_dir() {
                return Err(unavailable(format!(
                    "{} does not exist: the kernel has no configfs-tsm reports \
                     (CONFIG_TSM_REPORTS, Linux 6.7+) or configfs is not mounted \
                     (mount -t configfs none /sys/kernel/config)",
                    args.tsm_report.display()
                )));
            }
            let path = args.tsm_report.join(format!("cvm-{}", std::process::id()));
            std::fs::create_dir(&path).map_err(|e| {
                unavailable(format!("cannot make the report {}: {e}", path.display()))
            })?;
            Entry { path, ours: true }
        }
    };
    let provider = read_small(&entry.path.join("provider"), "the report's provider")?;
    let provider = String::from_utf8_lossy(&provider).trim().to_owned();
    let kind = match provider.as_str() {
        "sev_guest" => EvidenceKind::Snp,
        "tdx_guest" => EvidenceKind::Tdx,
        "arm_cca_guest" | "arm-cca-guest" => EvidenceKind::Cca,
        "" => {
            return Err(unavailable(format!(
                "{}: no attestation provider is registered (the guest driver, e.g. \
                 sev-guest or tdx-guest, is not loaded)",
                entry.path.display()
            )));
        }
        other => {
            return Err(unavailable(format!(
                "{}: provider {other:?} is not one cvm knows (sev_guest, tdx_guest, \
                 arm_cca_guest)",
                entry.path.display()
            )));
        }
    };
    std::fs::write(entry.path.join("inblob"), binding).map_err(|e| {
        unavailable(format!(
            "cannot write {}: {e}",
            entry.path.join("inblob").display()
        ))
    })?;
    let before = generation(&entry.path)?;
    let evidence = read_small(&entry.path.join("outblob"), "the evidence")?;
    if evidence.is_empty() {
        return Err(unavailable(format!(
            "{}: the provider returned no evidence",
            entry.path.join("outblob").display()
        )));
    }
    // The certificate table (SNP) where the provider gives one.
    let aux_path = entry.path.join("auxblob");
    let mut aux = if aux_path.exists() {
        read_small(&aux_path, "the auxiliary data")?
    } else {
        Vec::new()
    };
    let mut event_log = None;
    if kind == EvidenceKind::Tdx && aux.is_empty() && !args.no_event_log {
        let (log, note) = tdx_event_log(&args.event_log);
        aux = log;
        event_log = Some(note);
    }
    // Another writer between our request and our reads would make these someone
    // else's: configfs-tsm counts every write in `generation`.
    let after = generation(&entry.path)?;
    if before != after {
        return Err(unavailable(format!(
            "{}: the report changed while it was read (generation {before} -> {after}): \
             another process uses this entry",
            entry.path.display()
        )));
    }
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut line = format!("CVM-EVIDENCE 1 {} {}", kind.name(), b64(&evidence));
    if !aux.is_empty() {
        line.push(' ');
        line.push_str(&b64(&aux));
    }
    line.push('\n');
    if line.len() > exchange::MAX_LINE {
        return Err(CliError::Usage(format!(
            "the evidence line would be {} bytes, more than the {} the host accepts",
            line.len(),
            exchange::MAX_LINE
        )));
    }
    let write_err = |e: io::Error| CliError::WriteFile {
        path: PathBuf::from(&args.to),
        source: e,
    };
    if args.to == "-" {
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes()).map_err(write_err)?;
        out.flush().map_err(write_err)?;
    } else {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&args.to)
            .map_err(write_err)?;
        f.write_all(line.as_bytes()).map_err(write_err)?;
    }
    Ok(GuestAttestReport {
        provider,
        evidence: kind.name(),
        evidence_bytes: evidence.len(),
        aux_bytes: aux.len(),
        event_log,
        report_data: hex::encode(binding),
        to: args.to.clone(),
    })
}
