//! The one TEE type: the kinds of guest cvm launches, measures, and verifies the
//! evidence of. The command line's value sets, the plan, the probe, the verdict and
//! the quote parser all use it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A kind of (confidential) guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tee {
    /// AMD SEV-SNP.
    Snp,
    /// AMD SEV-ES (encrypted register state, no integrity).
    SevEs,
    /// AMD SEV (encrypted memory only).
    Sev,
    /// Intel TDX.
    Tdx,
    /// Arm CCA realm.
    Cca,
    /// Intel SGX enclave: evidence only (DCAP version 3 quotes); cvm launches no
    /// enclaves.
    Sgx,
    /// A plain, unprotected KVM guest (development only).
    None,
}

impl Tee {
    /// Every TEE.
    pub const ALL: [Tee; 7] = [
        Tee::Snp,
        Tee::Tdx,
        Tee::Cca,
        Tee::SevEs,
        Tee::Sev,
        Tee::Sgx,
        Tee::None,
    ];

    /// The guests a VMM can launch, in the order `cvm probe` reports them and `--tee
    /// auto` prefers them (strongest protection first; `none` is never chosen
    /// automatically).
    pub const LAUNCHABLE: [Tee; 6] = [
        Tee::Snp,
        Tee::Tdx,
        Tee::Cca,
        Tee::SevEs,
        Tee::Sev,
        Tee::None,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Tee::Snp => "snp",
            Tee::SevEs => "sev-es",
            Tee::Sev => "sev",
            Tee::Tdx => "tdx",
            Tee::Cca => "cca",
            Tee::Sgx => "sgx",
            Tee::None => "none",
        }
    }

    /// The TEE of that name.
    pub fn from_name(name: &str) -> Option<Tee> {
        Tee::ALL.into_iter().find(|t| t.name() == name)
    }

    /// One line for help texts.
    pub fn summary(self) -> &'static str {
        match self {
            Tee::Snp => "AMD SEV-SNP",
            Tee::SevEs => "AMD SEV-ES (encrypted register state, no integrity)",
            Tee::Sev => "AMD SEV (encrypted memory only)",
            Tee::Tdx => "Intel TDX",
            Tee::Cca => "Arm CCA realm",
            Tee::Sgx => "Intel SGX enclave (evidence only)",
            Tee::None => "a plain, unprotected KVM guest (development only)",
        }
    }

    /// Whether this TEE protects the guest from the host.
    pub fn is_confidential(self) -> bool {
        self != Tee::None
    }
}

impl fmt::Display for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_agree_with_serde() {
        for tee in Tee::ALL {
            assert_eq!(Tee::from_name(tee.name()), Some(tee));
            assert_eq!(tee.to_string(), tee.name());
            let json = serde_json::to_value(tee).unwrap();
            assert_eq!(json, tee.name());
            assert_eq!(serde_json::from_value::<Tee>(json).unwrap(), tee);
        }
        assert!(Tee::LAUNCHABLE.iter().all(|t| Tee::ALL.contains(t)));
        assert!(!Tee::LAUNCHABLE.contains(&Tee::Sgx));
    }
}
