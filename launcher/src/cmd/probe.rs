//! `cvm probe`.

use super::CmdResult;
use crate::error::CliError;
use crate::output::Output;
use crate::probe::{self, Arch, SystemDevices, Tee};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `cvm probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Read sysfs, procfs and device nodes below this directory instead of `/` (to
    /// examine a copy of another host's /sys and /proc; device queries are still real
    /// ioctls on ROOT/dev/kvm).
    #[arg(long, value_name = "ROOT", default_value = "/")]
    pub root: PathBuf,
    /// Exit with the platform-unavailable code unless this TEE is available
    /// (repeatable).
    #[arg(long, value_enum, value_name = "TEE")]
    pub require: Vec<Tee>,
}

/// Runs `cvm probe`.
pub fn run(args: &ProbeArgs) -> CmdResult {
    let facts = probe::gather(&args.root, Arch::current(), &SystemDevices);
    let report = probe::assess(&facts);
    let output = match Output::new(&report) {
        Ok(o) => o,
        Err(e) => return (None, Err(e)),
    };
    let unavailable: Vec<String> = args
        .require
        .iter()
        .filter_map(|&tee| {
            let st = report.status(tee)?;
            (!st.available).then(|| format!("{tee}: {}", st.reason.as_deref().unwrap_or("")))
        })
        .collect();
    let result = if unavailable.is_empty() {
        Ok(())
    } else {
        Err(CliError::PlatformUnavailable(format!(
            "required TEE unavailable: {}",
            unavailable.join(" | ")
        )))
    };
    (Some(output), result)
}
