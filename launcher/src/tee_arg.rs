//! `--tee` values: the sets of [`Tee`] each subcommand takes (and `auto` where it
//! chooses), derived from the one TEE type, so that the command line, JSON and the code
//! name every TEE the same way.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use cvm_firmware::Tee;
use std::fmt;

/// A `--tee` value that may also be `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeeChoice {
    /// Let cvm choose (from the evidence, or the strongest TEE the host has).
    Auto,
    /// This TEE.
    Tee(Tee),
}

impl fmt::Display for TeeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TeeChoice::Auto => f.pad("auto"),
            TeeChoice::Tee(t) => f.pad(t.name()),
        }
    }
}

/// The TEEs `cvm measure` computes a launch measurement for.
pub const MEASURED: [Tee; 5] = [Tee::Snp, Tee::SevEs, Tee::Sev, Tee::Tdx, Tee::Cca];

/// The evidence `cvm verify` judges: SEV-SNP reports and Intel DCAP quotes (TDX, and
/// SGX version 3 quotes through the same path).
pub const EVIDENCE: [Tee; 3] = [Tee::Snp, Tee::Tdx, Tee::Cca];

fn possible(tees: &[Tee]) -> Vec<PossibleValue> {
    tees.iter()
        .map(|t| PossibleValue::new(t.name()).help(t.summary()))
        .collect()
}

/// The parser of a `--tee` that takes one of `tees`.
pub fn one_of(tees: &'static [Tee]) -> impl TypedValueParser<Value = Tee> {
    PossibleValuesParser::new(possible(tees))
        .try_map(|s: String| Tee::from_name(&s).ok_or_else(|| format!("unknown TEE {s:?}")))
}

/// The parser of a `--tee` that takes `auto` or one of `tees`.
pub fn auto_or(tees: &'static [Tee]) -> impl TypedValueParser<Value = TeeChoice> {
    let auto = PossibleValue::new("auto").help("let cvm choose");
    PossibleValuesParser::new(std::iter::once(auto).chain(possible(tees))).try_map(|s: String| {
        match s.as_str() {
            "auto" => Ok(TeeChoice::Auto),
            name => Tee::from_name(name)
                .map(TeeChoice::Tee)
                .ok_or_else(|| format!("unknown TEE {s:?}")),
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn every_name_parses_to_its_tee() {
        let cmd = clap::Command::new("t");
        for tee in Tee::LAUNCHABLE {
            let v = one_of(&Tee::LAUNCHABLE)
                .parse_ref(&cmd, None, std::ffi::OsStr::new(tee.name()))
                .unwrap();
            assert_eq!(v, tee);
        }
        let auto = auto_or(&EVIDENCE)
            .parse_ref(&cmd, None, std::ffi::OsStr::new("auto"))
            .unwrap();
        assert_eq!(auto, TeeChoice::Auto);
        // Realms are measured; SGX enclaves are not (cvm launches none).
        assert_eq!(
            one_of(&MEASURED)
                .parse_ref(&cmd, None, std::ffi::OsStr::new("cca"))
                .unwrap(),
            Tee::Cca
        );
        assert!(
            one_of(&MEASURED)
                .parse_ref(&cmd, None, std::ffi::OsStr::new("sgx"))
                .is_err()
        );
    }
}
