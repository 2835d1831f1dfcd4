//! The subcommands. Each returns its rendered result (if it produced one) and whether it
//! succeeded, so that a result is printed even when the command then fails.

pub mod inspect;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod launch;
pub mod measure;
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
