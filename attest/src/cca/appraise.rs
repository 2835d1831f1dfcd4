//! Appraisal of a realm's claims against reference values (RIM, REMs, personalization
//! value, challenge, the platform's implementation ID and software components) and a
//! policy (the platform's security lifecycle), failing closed.

use super::claims::{Claims, lifecycle_name};
use crate::config::{
    Bytes, ConfigError, Expected, HexValue, OneOrMany, check_tee, expect, from_json_or_toml,
    other_tee, reference_values,
};
use crate::verdict::{Category, CheckId, Checks};
use cvm_firmware::reference::MeasuredValues;
use serde::Deserialize;

/// A measurement of the length its hash algorithm gives (32, 48 or 64 bytes), as hex:
/// the type `cvm measure --tee cca` writes its RIM with.
pub use cvm_firmware::reference::Digest;

impl HexValue for Digest {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One acceptable platform software component: its measurement, and optionally its
/// type and signer ID, which must then match too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    /// The component's type (e.g. "BL", "RMM").
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its measurement.
    pub measurement: Digest,
    /// Its signer ID.
    pub signer_id: Option<Digest>,
}

/// Reference values for one realm: what each compared field must be, or an explicit
/// [`Expected::Skip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Acceptable RIMs.
    pub rim: Expected<Digest>,
    /// REM 0 to 3.
    pub rem: [Expected<Digest>; 4],
    /// The Realm Personalization Value.
    pub rpv: Expected<Bytes<64>>,
    /// The realm challenge, exactly (a nonce).
    pub report_data: Expected<Bytes<64>>,
    /// The platform's implementation ID.
    pub implementation_id: Expected<Bytes<32>>,
    /// The acceptable platform software components: every component the token lists
    /// must be one of these (`None`: not compared).
    pub sw_components: Option<Vec<ComponentRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tee: Option<String>,
    rim: Option<OneOrMany<Digest>>,
    #[serde(default)]
    skip_measurement: bool,
    rem0: Option<OneOrMany<Digest>>,
    rem1: Option<OneOrMany<Digest>>,
    rem2: Option<OneOrMany<Digest>>,
    rem3: Option<OneOrMany<Digest>>,
    rpv: Option<OneOrMany<Bytes<64>>>,
    report_data: Option<OneOrMany<Bytes<64>>>,
    implementation_id: Option<OneOrMany<Bytes<32>>>,
    sw_components: Option<Vec<ComponentRef>>,
}

impl Reference {
    /// Reference values that compare nothing (until fields are set).
    pub fn skip() -> Self {
        Reference {
            rim: Expected::Skip,
            rem: [
                Expected::Skip,
                Expected::Skip,
                Expected::Skip,
                Expected::Skip,
            ],
            rpv: Expected::Skip,
            report_data: Expected::Skip,
            implementation_id: Expected::Skip,
            sw_components: None,
        }
    }

    /// Reads reference values from TOML or JSON: `rim` (or `skip_measurement = true`),
    /// `rem0`-`rem3`, `rpv`, `report_data`, `implementation_id` (each one value or a list),
    /// `sw_components` (a list of `{type, measurement, signer_id}`).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        reference_values(
            text,
            &["cca"],
            |m| match m.values {
                MeasuredValues::Cca(v) => Ok(Reference {
                    rim: Expected::value(v.rim),
                    ..Reference::skip()
                }),
                other => Err(other_tee(&other, "cca")),
            },
            File::into_reference,
        )
    }
}

impl File {
    fn into_reference(self) -> Result<Reference, ConfigError> {
        let f = self;
        check_tee(f.tee.as_deref(), "reference values", &["cca"])?;
        if f.rim.is_none() && !f.skip_measurement {
            return Err(ConfigError::NoMeasurement { give: "rim" });
        }
        if f.rim.is_some() && f.skip_measurement {
            return Err(ConfigError::Contradiction(
                "both `rim` and `skip_measurement = true`".into(),
            ));
        }
        Ok(Reference {
            rim: Expected::from_file(f.rim),
            rem: [
                Expected::from_file(f.rem0),
                Expected::from_file(f.rem1),
                Expected::from_file(f.rem2),
                Expected::from_file(f.rem3),
            ],
            rpv: Expected::from_file(f.rpv),
            report_data: Expected::from_file(f.report_data),
            implementation_id: Expected::from_file(f.implementation_id),
            sw_components: f.sw_components,
        })
    }
}

/// The policy: the platform security lifecycles accepted. `Policy::default()` accepts
/// `secured` (0x3000-0x30FF) only: a platform in a debug or provisioning state does
/// not protect realms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Accepted lifecycle states, by name (`secured`, `non-psa-rot-debug`, ...).
    pub accepted_lifecycles: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            accepted_lifecycles: vec!["secured".into()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    tee: Option<String>,
    accepted_lifecycles: Option<Vec<String>>,
}

/// The lifecycle state names.
const LIFECYCLES: [&str; 7] = [
    "unknown",
    "assembly-and-test",
    "psa-rot-provisioning",
    "secured",
    "non-psa-rot-debug",
    "recoverable-psa-rot-debug",
    "decommissioned",
];

impl Policy {
    /// Reads a policy from TOML or JSON.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let f: PolicyFile = from_json_or_toml(text)?;
        check_tee(f.tee.as_deref(), "a policy", &["cca"])?;
        let d = Policy::default();
        let accepted = f.accepted_lifecycles.unwrap_or(d.accepted_lifecycles);
        if let Some(bad) = accepted.iter().find(|l| !LIFECYCLES.contains(&l.as_str())) {
            return Err(ConfigError::Invalid(format!(
                "lifecycle {bad:?}: expected one of {}",
                LIFECYCLES.join(", ")
            )));
        }
        if accepted.iter().any(|l| l == "decommissioned") {
            return Err(ConfigError::Invalid(
                "a decommissioned platform is never acceptable".into(),
            ));
        }
        Ok(Policy {
            accepted_lifecycles: accepted,
        })
    }
}

/// Records the appraisal checks of `c`.
pub fn appraise(c: &Claims, reference: Option<&Reference>, policy: &Policy, checks: &mut Checks) {
    let lc = c.platform.lifecycle;
    let name = lifecycle_name(lc);
    checks.record(
        CheckId::PolicyLifecycle,
        Category::Policy,
        if policy.accepted_lifecycles.iter().any(|a| a == name) {
            Ok(format!("lifecycle {lc:#06x} ({name})"))
        } else {
            Err(format!(
                "lifecycle {lc:#06x} ({name}) is not accepted by the policy (accepted: {})",
                policy.accepted_lifecycles.join(", ")
            ))
        },
    );
    let Some(r) = reference else {
        checks.skip(
            CheckId::Reference,
            Category::Policy,
            "--no-reference: authenticity only, no reference values compared",
        );
        return;
    };
    checks.record(
        CheckId::Reference,
        Category::Policy,
        Ok("reference values for a CCA realm".into()),
    );
    expect(checks, CheckId::ReferenceRim, "RIM", &r.rim, &c.realm.rim.0);
    for ((id, want), (i, got)) in CheckId::REFERENCE_REM
        .into_iter()
        .zip(&r.rem)
        .zip(c.realm.rems.iter().enumerate())
    {
        expect(checks, id, &format!("REM{i}"), want, &got.0);
    }
    expect(
        checks,
        CheckId::ReferenceRpv,
        "the personalization value",
        &r.rpv,
        &c.realm.personalization_value.0,
    );
    expect(
        checks,
        CheckId::ReferenceReportData,
        "the realm challenge",
        &r.report_data,
        &c.realm.challenge.0,
    );
    expect(
        checks,
        CheckId::ReferenceImplementationId,
        "the implementation ID",
        &r.implementation_id,
        &c.platform.implementation_id.0,
    );
    match &r.sw_components {
        None => checks.skip(
            CheckId::ReferenceSwComponents,
            Category::Policy,
            "software components not compared: the reference values list none",
        ),
        Some(list) => {
            let unknown: Vec<String> = c
                .platform
                .sw_components
                .iter()
                .filter(|sc| {
                    !list.iter().any(|want| {
                        want.measurement.0 == sc.measurement.0
                            && want
                                .kind
                                .as_ref()
                                .is_none_or(|k| sc.kind.as_ref() == Some(k))
                            && want
                                .signer_id
                                .as_ref()
                                .is_none_or(|s| s.0 == sc.signer_id.0)
                    })
                })
                .map(|sc| {
                    format!(
                        "{} {}",
                        sc.kind.as_deref().unwrap_or("(no type)"),
                        hex::encode(&sc.measurement.0)
                    )
                })
                .collect();
            checks.record(
                CheckId::ReferenceSwComponents,
                Category::Policy,
                if unknown.is_empty() {
                    Ok(format!(
                        "all {} software components are reference values",
                        c.platform.sw_components.len()
                    ))
                } else {
                    Err(format!(
                        "software components not among the reference values: {}",
                        unknown.join(", ")
                    ))
                },
            );
        }
    }
}
