//! The subcommands. Each returns its rendered result (if it produced one) and whether it
//! succeeded, so that a result is printed even when the command then fails.

pub mod attest_launch;
pub mod collateral;
pub mod guest;
pub mod inspect;
#[cfg(target_os = "linux")]
pub mod launch;
pub mod launch_cca;
pub mod measure;
pub mod measure_cca;
mod measure_tdx;
pub mod plan_args;
pub mod probe;
pub mod verify;

use crate::error::CliError;
use crate::output::Output;
use std::path::Path;

/// What a subcommand hands back to `main`.
pub type CmdResult = (Option<Output>, Result<(), CliError>);

/// A command that either fails before producing output or produces it and succeeds.
pub fn simple(f: impl FnOnce() -> Result<Output, CliError>) -> CmdResult {
    match f() {
        Ok(out) => (Some(out), Ok(())),
        Err(e) => (None, Err(e)),
    }
}

/// A command whose report comes with the command's own result (a launch whose guest
/// failed still reports what happened), or that failed before producing one.
pub fn reported<R: crate::output::Render>(
    r: Result<(R, Result<(), CliError>), CliError>,
) -> CmdResult {
    match r {
        Ok((report, result)) => match Output::new(&report) {
            Ok(out) => (Some(out), result),
            Err(e) => (None, Err(e)),
        },
        Err(e) => (None, Err(e)),
    }
}

/// The kinds of input file cvm reads, each with the largest size it accepts. A file is
/// measured before it is read and read no further than its limit, so that `/dev/zero`
/// or a huge file is refused at once rather than read until memory runs out. README.md
/// ("Input limits") has the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Attestation evidence (an SNP report, a DCAP quote).
    Evidence,
    /// A certificate file (`--certs`, `--root`).
    Certificate,
    /// A CRL or a piece of collateral (`--crl`, `--collateral`).
    Collateral,
    /// Reference values, a policy, an event log to replay, a key.
    Config,
    /// Firmware (`--firmware`, `--svsm`).
    Firmware,
    /// A kernel image.
    Kernel,
    /// An initrd.
    Initrd,
    /// ACPI tables (`--acpi-tables`).
    AcpiTables,
}

const MIB: u64 = 1 << 20;

impl InputKind {
    /// Every kind, in the README's order.
    pub const ALL: [InputKind; 8] = [
        InputKind::Evidence,
        InputKind::Certificate,
        InputKind::Collateral,
        InputKind::Config,
        InputKind::Firmware,
        InputKind::Kernel,
        InputKind::Initrd,
        InputKind::AcpiTables,
    ];

    /// The largest file accepted, in bytes. Evidence is a few KiB (an SNP report 1184
    /// bytes, a DCAP quote with its PCK chain about 5 KiB); Intel's largest PCK CRL is
    /// under 1 MiB; firmware is mapped below 4 GiB beside the rest of the platform
    /// (OVMF builds are 2-4 MiB, QEMU's largest flash 64 MiB).
    pub fn limit(self) -> u64 {
        match self {
            InputKind::Evidence | InputKind::Certificate | InputKind::AcpiTables => MIB,
            InputKind::Collateral | InputKind::Config => 16 * MIB,
            InputKind::Firmware => 64 * MIB,
            InputKind::Kernel => 512 * MIB,
            InputKind::Initrd => 4096 * MIB,
        }
    }

    /// What the file is, in messages.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Evidence => "evidence",
            InputKind::Certificate => "a certificate",
            InputKind::Collateral => "collateral",
            InputKind::Config => "a configuration file",
            InputKind::Firmware => "firmware",
            InputKind::Kernel => "a kernel",
            InputKind::Initrd => "an initrd",
            InputKind::AcpiTables => "ACPI tables",
        }
    }
}

fn read_error(path: &Path, kind: InputKind, source: std::io::Error) -> CliError {
    if source.kind() == std::io::ErrorKind::FileTooLarge {
        CliError::TooLarge {
            path: path.to_owned(),
            what: kind.name(),
            limit: kind.limit(),
        }
    } else {
        CliError::ReadInput {
            path: path.to_owned(),
            source,
        }
    }
}

/// Reads a small input file whole, refusing one larger than its kind's limit.
pub fn read_file(path: &Path, kind: InputKind) -> Result<Vec<u8>, CliError> {
    crate::input::read_bounded(path, kind.limit()).map_err(|e| read_error(path, kind, e))
}

/// Reads a possibly large input file (firmware, kernel, initrd) whole, refusing one
/// larger than its kind's limit; see [`crate::input`].
pub fn read_input(path: &Path, kind: InputKind) -> Result<crate::input::Input, CliError> {
    crate::input::read(path, kind.limit()).map_err(|e| read_error(path, kind, e))
}

/// Logs a plan: a summary at info level, every step at debug level (the steps the
/// measurement folds and the launch loads, in order).
pub fn log_plan(plan: &cvm_firmware::plan::LaunchPlan<'_>) {
    tracing::info!(
        "{} launch plan: {} steps, {} vCPU{}",
        plan.tee().name(),
        plan.steps.len(),
        plan.vcpu_count,
        if plan.vcpu_count == 1 { "" } else { "s" }
    );
    for (i, s) in plan.steps.iter().enumerate() {
        tracing::debug!(
            "plan step {i}: {:?}, {} at {:#x}, {:#x} bytes",
            s.origin,
            s.kind.name(),
            s.gpa,
            s.len
        );
    }
}

/// Parses `128M`, `2G`, `4096`, `512KiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M or G)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}
