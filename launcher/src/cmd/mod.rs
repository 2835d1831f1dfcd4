//! The subcommands. Each returns its rendered result (if it produced one) and whether it
//! succeeded, so that a result is printed even when the command then fails.

pub mod inspect;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod launch;
pub mod measure;
mod measure_tdx;
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

/// Reads an input file whole.
pub fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::ReadInput {
        path: path.to_owned(),
        source,
    })
}

/// Reads a possibly large input file (firmware, kernel, initrd) whole; see [`crate::input`].
pub fn read_input(path: &Path) -> Result<crate::input::Input, CliError> {
    crate::input::read(path).map_err(|source| CliError::ReadInput {
        path: path.to_owned(),
        source,
    })
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
