//! Appraisal of SNP claims against reference values and a policy, failing closed.
//!
//! Reference values say what this exact guest must report (measurement, host data, keys,
//! report data); the policy says what any acceptable guest and platform must satisfy
//! (no debug, minimum TCB, ...). Both are trusted inputs, read from TOML or JSON.

use super::claims::Claims;
use super::report::{Report, SigningKey};
use super::tcb::Tcb;
use crate::verdict::{Category, Checks};
use serde::Deserialize;

pub use crate::config::{Bytes, ConfigError, OneOrMany};
use crate::config::{check_tee, eq_check, flag, from_json_or_toml, one_of, reference_values};

/// Reference values for one guest image. Every field given must match; the measurement
/// is required unless `skip_measurement` says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// "snp" (optional, checked when present).
    pub tee: Option<String>,
    /// Acceptable MEASUREMENTs.
    pub measurement: Option<OneOrMany<Bytes<48>>>,
    /// Accept any measurement (must be said explicitly).
    #[serde(default)]
    pub skip_measurement: bool,
    /// HOST_DATA.
    pub host_data: Option<Bytes<32>>,
    /// ID_KEY_DIGEST.
    pub id_key_digest: Option<Bytes<48>>,
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: Option<Bytes<48>>,
    /// REPORT_DATA, exactly (e.g. a nonce).
    pub report_data: Option<Bytes<64>>,
    /// FAMILY_ID.
    pub family_id: Option<Bytes<16>>,
    /// IMAGE_ID.
    pub image_id: Option<Bytes<16>>,
}

/// The subset of `cvm measure --format json` output that is a reference value.
#[derive(Debug, Deserialize)]
struct MeasureHandoff {
    tee: String,
    measurement: Bytes<48>,
    #[allow(dead_code, reason = "its presence marks cvm measure output")]
    firmware: serde_json::Value,
    id_block: Option<MeasureIdBlock>,
}

#[derive(Debug, Deserialize)]
struct MeasureIdBlock {
    id_key_digest: Bytes<48>,
    author_key_digest: Option<Bytes<48>>,
    family_id: Bytes<16>,
    image_id: Bytes<16>,
}

impl Reference {
    /// Reads reference values from TOML, JSON, or the JSON that `cvm measure` prints.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let r: Reference = reference_values(text, TEES, |value| {
            let m: MeasureHandoff = serde_json::from_value(value)
                .map_err(|e| ConfigError(format!("cvm measure output: {e}")))?;
            let id = m.id_block;
            Ok(Reference {
                tee: Some(m.tee),
                measurement: Some(OneOrMany::One(m.measurement)),
                id_key_digest: id.as_ref().map(|i| i.id_key_digest),
                author_key_digest: id.as_ref().and_then(|i| i.author_key_digest),
                family_id: id.as_ref().map(|i| i.family_id),
                image_id: id.as_ref().map(|i| i.image_id),
                ..Reference::default()
            })
        })?;
        check_tee(r.tee.as_deref(), "reference values", TEES)?;
        if r.measurement.is_none() && !r.skip_measurement {
            return Err(ConfigError(
                "no measurement: give `measurement`, or `skip_measurement = true` to accept any"
                    .into(),
            ));
        }
        if r.measurement.is_some() && r.skip_measurement {
            return Err(ConfigError(
                "`measurement` and `skip_measurement` contradict each other".into(),
            ));
        }
        Ok(r)
    }
}

/// Which TCB of the report a minimum applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcbKind {
    /// REPORTED_TCB: what the VCEK is issued for (and what the guest's keys derive from).
    Reported,
    /// COMMITTED_TCB: the platform cannot roll back below it.
    Committed,
    /// CURRENT_TCB: what is running now.
    Current,
    /// LAUNCH_TCB: what the guest was launched on.
    Launch,
}

/// A minimum TCB, per component; components left out are not constrained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// FMC (Turin).
    pub fmc: Option<u8>,
    /// Boot loader.
    pub bl: Option<u8>,
    /// TEE (PSP OS).
    pub tee: Option<u8>,
    /// SNP firmware.
    pub snp: Option<u8>,
    /// Microcode.
    pub ucode: Option<u8>,
}

/// The policy any acceptable SNP guest and platform must satisfy. `Policy::default()`
/// is the default policy: debug and migration agents forbidden, SMT allowed, any VMPL,
/// VCEK or VLEK, no minimum TCB or SVN.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// "snp" (optional, checked when present).
    pub tee: Option<String>,
    /// Accept guests whose policy allows debugging (the hypervisor can then read and
    /// change guest memory). Default false.
    pub allow_debug: bool,
    /// Accept guests that may be associated with a migration agent. Default false.
    pub allow_migration_agent: bool,
    /// Accept guests whose policy allows SMT. Default true.
    pub allow_smt: bool,
    /// Require SINGLE_SOCKET. Default false.
    pub require_single_socket: bool,
    /// Require CIPHERTEXT_HIDING. Default false.
    pub require_ciphertext_hiding: bool,
    /// Require AUTHOR_KEY_EN. Default false.
    pub require_author_key: bool,
    /// Minimum GUEST_SVN. Default 0.
    pub min_guest_svn: u32,
    /// Acceptable VMPLs. Default: any.
    pub vmpl: Option<Vec<u32>>,
    /// Acceptable signing keys. Default: both.
    pub signing_keys: Vec<SigningKeyName>,
    /// Minimum TCB per component.
    pub min_tcb: Option<MinTcb>,
    /// Which of the report's TCBs `min_tcb` applies to. Default: reported and committed.
    pub min_tcb_applies_to: Vec<TcbKind>,
}

/// A signing key, as a policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKeyName {
    /// VCEK.
    Vcek,
    /// VLEK.
    Vlek,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            tee: None,
            allow_debug: false,
            allow_migration_agent: false,
            allow_smt: true,
            require_single_socket: false,
            require_ciphertext_hiding: false,
            require_author_key: false,
            min_guest_svn: 0,
            vmpl: None,
            signing_keys: vec![SigningKeyName::Vcek, SigningKeyName::Vlek],
            min_tcb: None,
            min_tcb_applies_to: vec![TcbKind::Reported, TcbKind::Committed],
        }
    }
}

impl Policy {
    /// Reads a policy from TOML or JSON.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let p: Policy = from_json_or_toml(text)?;
        check_tee(p.tee.as_deref(), "a policy", TEES)?;
        Ok(p)
    }
}

/// The TEE names SNP reference-value and policy files may give.
const TEES: &[&str] = &["snp"];

/// Appraises `report` (already decoded into `claims`) against the reference values and
/// the policy, recording one check per rule.
pub fn appraise(
    report: &Report<'_>,
    claims: &Claims,
    reference: Option<&Reference>,
    policy: &Policy,
    checks: &mut Checks,
) {
    let f = report.fields;
    match reference {
        None => checks.skip(
            "reference",
            Category::Policy,
            "--no-reference: authenticity only, no reference values compared",
        ),
        Some(r) => {
            match (&r.measurement, r.skip_measurement) {
                (Some(m), _) => one_of(
                    checks,
                    "reference.measurement",
                    "MEASUREMENT",
                    m,
                    &f.measurement,
                ),
                (None, _) => checks.skip(
                    "reference.measurement",
                    Category::Policy,
                    "skip_measurement: any measurement accepted",
                ),
            }
            let absent = "no reference value given";
            eq_check(
                checks,
                "reference.host_data",
                "HOST_DATA",
                r.host_data.as_ref(),
                &f.host_data,
                absent,
            );
            eq_check(
                checks,
                "reference.id_key_digest",
                "ID_KEY_DIGEST",
                r.id_key_digest.as_ref(),
                &f.id_key_digest,
                absent,
            );
            eq_check(
                checks,
                "reference.author_key_digest",
                "AUTHOR_KEY_DIGEST",
                r.author_key_digest.as_ref(),
                &f.author_key_digest,
                absent,
            );
            eq_check(
                checks,
                "reference.report_data",
                "REPORT_DATA",
                r.report_data.as_ref(),
                &f.report_data,
                absent,
            );
            eq_check(
                checks,
                "reference.family_id",
                "FAMILY_ID",
                r.family_id.as_ref(),
                &f.family_id,
                absent,
            );
            eq_check(
                checks,
                "reference.image_id",
                "IMAGE_ID",
                r.image_id.as_ref(),
                &f.image_id,
                absent,
            );
        }
    }
    appraise_policy(report, claims, policy, checks);
}

fn appraise_policy(report: &Report<'_>, claims: &Claims, policy: &Policy, checks: &mut Checks) {
    let p = &claims.policy;
    flag(
        checks,
        "policy.reserved_bit17",
        p.reserved_one,
        "POLICY bit 17 (reserved, must be one) is set",
        "POLICY bit 17 (reserved, must be one) is clear",
    );
    flag(
        checks,
        "policy.debug",
        policy.allow_debug || !p.debug,
        if p.debug {
            "debug allowed by the guest and by the policy"
        } else {
            "debug disabled"
        },
        "the guest policy allows debugging (the host can read guest memory); policy forbids it",
    );
    flag(
        checks,
        "policy.migrate_ma",
        policy.allow_migration_agent || !p.migrate_ma,
        if p.migrate_ma {
            "migration agent allowed by the policy"
        } else {
            "no migration agent"
        },
        "the guest may be associated with a migration agent; policy forbids it",
    );
    flag(
        checks,
        "policy.smt",
        policy.allow_smt || !p.smt,
        if p.smt {
            "SMT allowed"
        } else {
            "SMT disallowed by the guest"
        },
        "the guest policy allows SMT; policy forbids it",
    );
    if policy.require_single_socket {
        flag(
            checks,
            "policy.single_socket",
            p.single_socket,
            "SINGLE_SOCKET set",
            "SINGLE_SOCKET required but not set",
        );
    }
    if policy.require_ciphertext_hiding {
        flag(
            checks,
            "policy.ciphertext_hiding",
            p.ciphertext_hiding,
            "CIPHERTEXT_HIDING set",
            "CIPHERTEXT_HIDING required but not set",
        );
    }
    if policy.require_author_key {
        flag(
            checks,
            "policy.author_key",
            report.author_key_en(),
            "AUTHOR_KEY_EN set",
            "an author key is required",
        );
    }
    let svn = claims.guest_svn;
    checks.record(
        "policy.guest_svn",
        Category::Policy,
        if svn >= policy.min_guest_svn {
            Ok(format!("GUEST_SVN {svn} >= {}", policy.min_guest_svn))
        } else {
            Err(format!(
                "GUEST_SVN {svn} < the minimum {}",
                policy.min_guest_svn
            ))
        },
    );
    match &policy.vmpl {
        None => checks.skip(
            "policy.vmpl",
            Category::Policy,
            &format!("VMPL {} (any accepted)", claims.vmpl),
        ),
        Some(allowed) => flag(
            checks,
            "policy.vmpl",
            allowed.contains(&claims.vmpl),
            &format!("VMPL {} accepted", claims.vmpl),
            &format!("VMPL {} is not one of {allowed:?}", claims.vmpl),
        ),
    }
    let key = match report.signing_key() {
        SigningKey::Vcek => Some(SigningKeyName::Vcek),
        SigningKey::Vlek => Some(SigningKeyName::Vlek),
        _ => None,
    };
    flag(
        checks,
        "policy.signing_key",
        key.is_some_and(|k| policy.signing_keys.contains(&k)),
        &format!("signed by the {}", key_name(report.signing_key())),
        &format!(
            "signing key {} not accepted by the policy",
            key_name(report.signing_key())
        ),
    );
    if let Some(min) = &policy.min_tcb {
        for kind in &policy.min_tcb_applies_to {
            let (name, claim) = match kind {
                TcbKind::Reported => ("reported", &claims.reported_tcb),
                TcbKind::Committed => ("committed", &claims.committed_tcb),
                TcbKind::Current => ("current", &claims.current_tcb),
                TcbKind::Launch => ("launch", &claims.launch_tcb),
            };
            let check = format!("policy.min_tcb.{name}");
            match claim.decoded() {
                None => {
                    checks.record(
                        &check,
                        Category::Policy,
                        Err("the product (and so the TCB layout) is unknown".into()),
                    );
                }
                Some(tcb) => {
                    checks.record(&check, Category::Policy, tcb_at_least(tcb, min, name));
                }
            }
        }
    }
}

fn key_name(k: SigningKey) -> String {
    match k {
        SigningKey::Vcek => "VCEK".into(),
        SigningKey::Vlek => "VLEK".into(),
        SigningKey::None => "none".into(),
        SigningKey::Reserved(v) => format!("reserved value {v}"),
    }
}

fn tcb_at_least(tcb: &Tcb, min: &MinTcb, name: &str) -> Result<String, String> {
    let mut low = Vec::new();
    for (component, have) in tcb.components() {
        let want = match component {
            "fmc" => min.fmc,
            "bl" => min.bl,
            "tee" => min.tee,
            "snp" => min.snp,
            _ => min.ucode,
        };
        if let Some(w) = want
            && have < w
        {
            low.push(format!("{component} {have} < {w}"));
        }
    }
    if min.fmc.is_some() && tcb.fmc.is_none() {
        low.push("fmc required but this product has no FMC".into());
    }
    if low.is_empty() {
        Ok(format!("{name} TCB ({tcb}) meets the minimum"))
    } else {
        Err(format!("{name} TCB below the minimum: {}", low.join(", ")))
    }
}
