//! The top-level error of the `cvm` command and its mapping to exit codes.

use crate::exit::ExitCode;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

/// Everything that can stop a `cvm` command. Each variant maps to one [`ExitCode`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// An input file could not be read.
    #[error("cannot read {}", path.display())]
    ReadInput {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An input file is larger than cvm accepts for its kind.
    #[error("{}: larger than {limit} bytes, the most cvm reads for {what}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it was read as.
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A firmware or boot image is malformed, or cannot be launched as asked.
    #[error("{}", path.display())]
    Firmware {
        /// The file (or the inputs) concerned.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: cvm_firmware::FirmwareError,
    },
    /// A key file is malformed or holds the wrong kind of key.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Evidence or its certificates are malformed.
    #[error("{}", path.display())]
    Evidence {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: InputError,
    },
    /// A reference-value, policy, root, collateral or event-log file is malformed.
    #[error("{}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: InputError,
    },
    /// Collateral a verdict needs is missing (a piece of `--collateral`).
    #[error("{}: {reason}", path.display())]
    CollateralMissing {
        /// The collateral file or directory.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Verification completed and the evidence was rejected.
    #[error("verification failed: {first}")]
    Rejected {
        /// The most severe kind of failure.
        category: cvm_attest::Category,
        /// The first failed check.
        first: String,
    },
    /// A platform the command needs is not available on this host.
    #[error("{0}")]
    PlatformUnavailable(String),
    /// Launching the VM failed (KVM missing, or a launch step failing).
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[error("launch failed")]
    Launch(#[source] crate::vmm::LaunchError),
    /// Creating a realm failed (KVM or the model refused a step).
    #[error("realm launch failed")]
    Realm(#[source] crate::realm::RealmError),
    /// The guest stopped abnormally, or with a non-zero exit status.
    #[error("{0}")]
    GuestExit(String),
    /// An output file could not be written.
    #[error("cannot write {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing the result to standard output failed (a full disk, a device error; a
    /// closed pipe is not an error).
    #[error("cannot write the output to standard output")]
    Output(#[source] io::Error),
    /// A result could not be serialised (a bug).
    #[error("cannot serialise the result")]
    Serialize(#[source] serde_json::Error),
}

/// What the `attest` library found wrong with an input of `cvm verify`, as the
/// library's own error types (so a caller can tell a missing measurement from a bad
/// certificate without reading the message).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A reference-value, policy or event-log file.
    #[error(transparent)]
    Config(#[from] cvm_attest::config::ConfigError),
    /// A certificate, CRL or PEM file.
    #[error(transparent)]
    Cert(#[from] cvm_attest::x509::CertError),
    /// A collateral bundle or piece.
    #[error(transparent)]
    Collateral(#[from] cvm_attest::tdx::collateral::CollateralError),
    /// Evidence of no known kind, a file that is not text, a root of no known product.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::ReadInput { .. } => ExitCode::Usage,
            CliError::Firmware { .. }
            | CliError::TooLarge { .. }
            | CliError::Key { .. }
            | CliError::Evidence { .. }
            | CliError::Config { .. } => ExitCode::MalformedInput,
            CliError::Rejected { category, .. } => crate::cmd::verify::category_exit(*category),
            CliError::CollateralMissing { .. } => ExitCode::CollateralUnavailable,
            CliError::PlatformUnavailable(_) => ExitCode::PlatformUnavailable,
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            CliError::Launch(
                crate::vmm::LaunchError::NoKvm { .. } | crate::vmm::LaunchError::Unavailable(_),
            ) => ExitCode::PlatformUnavailable,
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            CliError::Launch(_) => ExitCode::LaunchFailed,
            CliError::Realm(e) if e.errno == libc_enodev() => ExitCode::PlatformUnavailable,
            CliError::Realm(_) => ExitCode::LaunchFailed,
            CliError::GuestExit(_) => ExitCode::GuestAbnormalExit,
            // Where the output goes is the caller's choice: a place that cannot be
            // written to is a usage error, not a bug.
            CliError::WriteFile { .. } | CliError::Output(_) => ExitCode::Usage,
            CliError::Serialize(_) => ExitCode::Internal,
        }
    }
}

/// ENODEV, with which the realm backend reports a host without realms (no /dev/kvm, no
/// KVM_CAP_ARM_RMI).
const fn libc_enodev() -> i32 {
    19
}

/// The error and its chain of causes on one line: `a: b: c`.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(line, ": {cause}");
        source = cause.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_printed_once_on_one_line() {
        let e = CliError::ReadInput {
            path: "/x/fw.fd".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "No such file"),
        };
        assert_eq!(one_line(&e), "cannot read /x/fw.fd: No such file");
        assert_eq!(e.exit_code(), ExitCode::Usage);
    }
}
