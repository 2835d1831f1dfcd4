//! What a launch's measurement promises a verifier: the values the hardware will report
//! for it, typed, as `cvm measure` writes them and `cvm verify` (the attest crate) reads
//! them back as reference values. Writer and reader share these types, so the hand-off
//! cannot drift; a document says what it is by its `format` ([`MEASUREMENT_FORMAT`]), not
//! by which keys happen to be present.
//!
//! ```
//! use cvm_firmware::reference::{Hex, MeasuredValues, SnpValues};
//! let v = MeasuredValues::Snp(SnpValues { measurement: Hex([0xab; 48]) });
//! let json = serde_json::to_value(&v)?;
//! assert_eq!(json["tee"], "snp");
//! assert_eq!(serde_json::from_value::<MeasuredValues>(json)?, v);
//! # Ok::<(), serde_json::Error>(())
//! ```

use crate::launch::LaunchMeasurement;
use crate::tee::Tee;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `format` of `cvm measure`'s JSON documents.
pub const MEASUREMENT_FORMAT: &str = "cvm-measurement/1";

/// Exactly `N` bytes, written as lower-case hex. Read from hex in either case, with an
/// optional `0x` prefix (as people write values in reference files and on command
/// lines); any other length is refused, naming the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> Hex<N> {
    /// Parses `text` as [`Hex`] does when it is deserialized.
    pub fn parse(text: &str) -> Option<Self> {
        let mut out = [0u8; N];
        hex::decode_to_slice(text.strip_prefix("0x").unwrap_or(text), &mut out).ok()?;
        Some(Hex(out))
    }
}

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> Serialize for Hex<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hex::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not {N} bytes of hex")))
    }
}

/// A measurement whose length is its hash's (32, 48 or 64 bytes: a realm's RIM), as
/// lower-case hex; read like [`Hex`], any other length refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(pub Vec<u8>);

impl Digest {
    /// Parses `text` as [`Digest`] does when it is deserialized.
    pub fn parse(text: &str) -> Option<Self> {
        let b = hex::decode(text.strip_prefix("0x").unwrap_or(text)).ok()?;
        [32, 48, 64].contains(&b.len()).then_some(Digest(b))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not 32, 48 or 64 bytes of hex"))
        })
    }
}

/// The values a launch determines, per TEE (tagged by `tee`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tee")]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per command, read or written once: boxing would buy nothing"
)]
pub enum MeasuredValues {
    /// An SEV-SNP launch.
    #[serde(rename = "snp")]
    Snp(SnpValues),
    /// An SEV-ES launch.
    #[serde(rename = "sev-es")]
    SevEs(SevValues),
    /// An SEV launch.
    #[serde(rename = "sev")]
    Sev(SevValues),
    /// A TD.
    #[serde(rename = "tdx")]
    Tdx(TdxValues),
    /// An Arm CCA realm.
    #[serde(rename = "cca")]
    Cca(CcaValues),
}

/// What a realm token's RIM will be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcaValues {
    /// The Realm Initial Measurement (the realm hash's length).
    pub rim: Digest,
}

/// What an SNP attestation report's MEASUREMENT will be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpValues {
    /// The launch digest.
    pub measurement: Hex<48>,
}

/// What SEV-ES's and SEV's LAUNCH_MEASURE digest covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SevValues {
    /// The launch digest (SHA-256).
    pub measurement: Hex<32>,
}

/// What a TD quote's MRTD and RTMRs will be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxValues {
    /// MRTD.
    pub mrtd: Hex<48>,
    /// RTMR 0-3; `null` where the launch's inputs do not determine it (RTMR 0 without
    /// the ACPI tables, RTMR 1 and 2 without direct boot).
    pub rtmr: [Option<Hex<48>>; 4],
    /// MRCONFIGID, MROWNER and MROWNERCONFIG: what the VMM passes to KVM_TDX_INIT_VM (not
    /// measured; reported as given). Absent from files written before cvm reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_config_id: Option<Hex<48>>,
    /// MROWNER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_owner: Option<Hex<48>>,
    /// MROWNERCONFIG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_owner_config: Option<Hex<48>>,
}

/// The values an SNP report carries for a launch with a signed ID block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdBlockValues {
    /// ID_KEY_DIGEST: SHA-384 of the ID key.
    pub id_key_digest: Hex<48>,
    /// AUTHOR_KEY_DIGEST, when an author key signed the ID key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_key_digest: Option<Hex<48>>,
    /// FAMILY_ID.
    pub family_id: Hex<16>,
    /// IMAGE_ID.
    pub image_id: Hex<16>,
}

impl MeasuredValues {
    /// The TEE.
    pub fn tee(&self) -> Tee {
        match self {
            MeasuredValues::Snp(_) => Tee::Snp,
            MeasuredValues::SevEs(_) => Tee::SevEs,
            MeasuredValues::Sev(_) => Tee::Sev,
            MeasuredValues::Tdx(_) => Tee::Tdx,
            MeasuredValues::Cca(_) => Tee::Cca,
        }
    }
}

impl LaunchMeasurement {
    /// The values the hardware will report for this launch. `None` when the digest does
    /// not have its TEE's length (a measurement this crate did not compute).
    pub fn values(&self) -> Option<MeasuredValues> {
        Some(match self {
            LaunchMeasurement::Sev(m) => {
                let digest = m.digest.as_slice();
                match m.tee {
                    Tee::Snp => MeasuredValues::Snp(SnpValues {
                        measurement: Hex(digest.try_into().ok()?),
                    }),
                    Tee::SevEs => MeasuredValues::SevEs(SevValues {
                        measurement: Hex(digest.try_into().ok()?),
                    }),
                    _ => MeasuredValues::Sev(SevValues {
                        measurement: Hex(digest.try_into().ok()?),
                    }),
                }
            }
            LaunchMeasurement::Tdx(m) => MeasuredValues::Tdx(m.values()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn hex_takes_exactly_n_bytes_and_an_optional_prefix() {
        assert_eq!(Hex::<2>::parse("0xABcd"), Some(Hex([0xab, 0xcd])));
        assert_eq!(Hex::<2>::parse("abcd"), Some(Hex([0xab, 0xcd])));
        assert_eq!(Hex::<2>::parse("abc"), None);
        assert_eq!(Hex::<2>::parse("abcdef"), None);
        assert_eq!(Hex::<2>::parse("zzzz"), None);
        let e = serde_json::from_str::<Hex<48>>("\"abc\"").unwrap_err();
        assert!(
            e.to_string().contains("\"abc\" is not 48 bytes of hex"),
            "{e}"
        );
        assert_eq!(
            serde_json::to_string(&Hex([1u8, 0xfe])).unwrap(),
            "\"01fe\""
        );
    }

    #[test]
    fn values_are_tagged_by_tee_and_refuse_the_wrong_length() {
        let tdx = MeasuredValues::Tdx(TdxValues {
            mrtd: Hex([1; 48]),
            rtmr: [None, Some(Hex([2; 48])), None, None],
            mr_config_id: None,
            mr_owner: Some(Hex([3; 48])),
            mr_owner_config: None,
        });
        let json = serde_json::to_value(&tdx).unwrap();
        assert_eq!(json["tee"], "tdx");
        assert_eq!(json["rtmr"][0], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<MeasuredValues>(json).unwrap(), tdx);
        let short = serde_json::json!({"tee": "snp", "measurement": "00".repeat(32)});
        assert!(serde_json::from_value::<MeasuredValues>(short).is_err());
        let sev_es = serde_json::json!({"tee": "sev-es", "measurement": "00".repeat(32)});
        assert_eq!(
            serde_json::from_value::<MeasuredValues>(sev_es)
                .unwrap()
                .tee(),
            Tee::SevEs
        );
    }
}
