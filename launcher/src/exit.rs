//! The exit-status table of `cvm`.
//!
//! Pipelines branch on these numbers, so a code's meaning never changes once released.
//! Every error that reaches `main` is mapped to exactly one of them (see
//! [`crate::error::CliError::exit_code`]). The same table is in README.md.

use serde::Serialize;

/// What a `cvm` process exit status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum ExitCode {
    /// The command did what was asked; for `verify`, the verdict is "pass".
    Success = 0,
    /// Bad command line, or an input file that cannot be read.
    Usage = 1,
    /// Malformed input: evidence, firmware, kernel image, reference values, policy or
    /// configuration that does not parse or is out of range.
    MalformedInput = 2,
    /// A signature or certificate chain does not verify.
    SignatureInvalid = 3,
    /// Collateral (certificates, CRLs, TCB info) needed for a verdict is missing or stale.
    CollateralUnavailable = 4,
    /// The evidence is authentic, but the policy or the reference values reject it.
    PolicyRejected = 5,
    /// The requested platform (KVM, or a TEE) is not available on this host.
    PlatformUnavailable = 6,
    /// Launching the VM failed; everything that was created has been torn down.
    LaunchFailed = 7,
    /// The guest stopped abnormally (crash, triple fault, timeout, non-zero exit status).
    GuestAbnormalExit = 8,
    /// An internal error: a bug in cvm. Please report it.
    Internal = 9,
}

impl ExitCode {
    /// Every code, in numeric order (for documentation and tests).
    pub const ALL: [ExitCode; 10] = [
        ExitCode::Success,
        ExitCode::Usage,
        ExitCode::MalformedInput,
        ExitCode::SignatureInvalid,
        ExitCode::CollateralUnavailable,
        ExitCode::PolicyRejected,
        ExitCode::PlatformUnavailable,
        ExitCode::LaunchFailed,
        ExitCode::GuestAbnormalExit,
        ExitCode::Internal,
    ];

    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The stable kebab-case name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Usage => "usage",
            ExitCode::MalformedInput => "malformed-input",
            ExitCode::SignatureInvalid => "signature-invalid",
            ExitCode::CollateralUnavailable => "collateral-unavailable",
            ExitCode::PolicyRejected => "policy-rejected",
            ExitCode::PlatformUnavailable => "platform-unavailable",
            ExitCode::LaunchFailed => "launch-failed",
            ExitCode::GuestAbnormalExit => "guest-abnormal-exit",
            ExitCode::Internal => "internal",
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_names_distinct() {
        for (i, c) in ExitCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.code()), i);
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, serde_json::Value::from(c.name()));
        }
        let mut names: Vec<_> = ExitCode::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ExitCode::ALL.len());
    }
}
