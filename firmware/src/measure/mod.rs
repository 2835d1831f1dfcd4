//! Launch measurement: a fold over a [`LaunchPlan`](crate::plan::LaunchPlan).

pub mod sev;
pub mod tdx;

use serde::Serialize;

/// One contributing component of a measurement, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// What it is ("firmware", "SEV metadata 2: SNP_SECRETS", "VMSA vCPU 0", ...).
    pub name: String,
    /// Guest physical address (the VMSA GPA for VMSA pages; absent for plain hashes).
    pub gpa: Option<u64>,
    /// Length in bytes.
    pub len: u64,
    /// How it was handed to the hardware.
    pub page_type: &'static str,
    /// SHA-256 of its contents (absent for pages whose contents are not measured).
    pub sha256: Option<String>,
    /// The running launch digest after this component (SNP only).
    pub launch_digest: Option<String>,
}
