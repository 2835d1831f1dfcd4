use serde::Serialize;
use std::fmt;

/// The kinds of guest cvm knows how to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
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
    /// A plain, unprotected KVM guest (development only).
    None,
}

impl Tee {
    /// Every TEE, in the order `cvm probe` reports them and `--tee auto` prefers them
    /// (strongest protection first; `none` is never chosen automatically).
    pub const ALL: [Tee; 6] = [
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
            Tee::None => "none",
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
    use clap::ValueEnum;

    #[test]
    fn cli_json_and_display_names_agree() {
        for tee in Tee::ALL {
            let cli = tee.to_possible_value().unwrap();
            assert_eq!(cli.get_name(), tee.name());
            assert_eq!(serde_json::to_value(tee).unwrap(), tee.name());
            assert_eq!(tee.to_string(), tee.name());
        }
    }
}
