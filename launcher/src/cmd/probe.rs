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
    /// ioctls on DIR/dev/kvm). `--root` is an older spelling.
    #[arg(
        long = "sysroot",
        alias = "root",
        value_name = "DIR",
        default_value = "/"
    )]
    pub sysroot: PathBuf,
    /// Exit with the platform-unavailable code unless this TEE is available
    /// (repeatable).
    #[arg(long, value_name = "TEE", value_parser = crate::tee_arg::one_of(&Tee::LAUNCHABLE))]
    pub require: Vec<Tee>,
}

/// Runs `cvm probe`.
pub fn run(args: &ProbeArgs) -> CmdResult {
    if !args.sysroot.is_dir() {
        return (
            None,
            Err(CliError::Usage(format!(
                "--sysroot {}: not a directory",
                args.sysroot.display()
            ))),
        );
    }
    let arch = Arch::of_root(&args.sysroot);
    let facts = probe::gather(&args.sysroot, arch, &SystemDevices);
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
