//! Appraisal of SNP claims against reference values and a policy, failing closed.
//!
//! Reference values say what this exact guest must report (measurement, host data, keys,
//! report data); the policy says what any acceptable guest and platform must satisfy
//! (no debug, minimum TCB, ...). Both are trusted inputs, read from TOML or JSON.

use super::claims::Claims;
use super::report::{Report, SigningKey};
use super::tcb::{Component, Tcb};
use crate::config::other_tee;
use crate::verdict::{Category, CheckId, Checks};
use cvm_firmware::reference::{IdBlockValues, MeasuredValues, SnpValues};
use serde::Deserialize;

pub use crate::config::{Bytes, ConfigError, Expected, OneOrMany};
use crate::config::{check_tee, expect, flag, from_json_or_toml, reference_values};

/// Reference values for one guest image: what each compared field of the report must
/// be, or an explicit [`Expected::Skip`]. Every field must be named when the struct is
/// built, so none is left unchecked by omission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Acceptable MEASUREMENTs.
    pub measurement: Expected<Bytes<48>>,
    /// HOST_DATA.
    pub host_data: Expected<Bytes<32>>,
    /// ID_KEY_DIGEST.
    pub id_key_digest: Expected<Bytes<48>>,
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: Expected<Bytes<48>>,
    /// REPORT_DATA, exactly (e.g. a nonce).
    pub report_data: Expected<Bytes<64>>,
    /// FAMILY_ID.
    pub family_id: Expected<Bytes<16>>,
    /// IMAGE_ID.
    pub image_id: Expected<Bytes<16>>,
}

/// The reference-value file: every field but the measurement optional (left out means
/// skipped), the measurement required unless `skip_measurement = true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tee: Option<String>,
    measurement: Option<OneOrMany<Bytes<48>>>,
    #[serde(default)]
    skip_measurement: bool,
    host_data: Option<OneOrMany<Bytes<32>>>,
    id_key_digest: Option<OneOrMany<Bytes<48>>>,
    author_key_digest: Option<OneOrMany<Bytes<48>>>,
    report_data: Option<OneOrMany<Bytes<64>>>,
    family_id: Option<OneOrMany<Bytes<16>>>,
    image_id: Option<OneOrMany<Bytes<16>>>,
}

impl Reference {
    /// Every field skipped but the measurement (`cvm measure` output says nothing of
    /// the others).
    fn measurement_only(measurement: Expected<Bytes<48>>) -> Self {
        Reference {
            measurement,
            host_data: Expected::Skip,
            id_key_digest: Expected::Skip,
            author_key_digest: Expected::Skip,
            report_data: Expected::Skip,
            family_id: Expected::Skip,
            image_id: Expected::Skip,
        }
    }

    /// The reference values a launch's measurement gives: its launch digest, and with an
    /// ID block its digests and IDs; every other field skipped (a measurement says
    /// nothing of them).
    pub fn measured(values: &SnpValues, id_block: Option<&IdBlockValues>) -> Self {
        let exactly = |v: Option<Bytes<48>>| v.map_or(Expected::Skip, Expected::value);
        Reference {
            id_key_digest: exactly(id_block.map(|i| i.id_key_digest)),
            author_key_digest: exactly(id_block.and_then(|i| i.author_key_digest)),
            family_id: id_block.map_or(Expected::Skip, |i| Expected::value(i.family_id)),
            image_id: id_block.map_or(Expected::Skip, |i| Expected::value(i.image_id)),
            ..Reference::measurement_only(Expected::value(values.measurement))
        }
    }

    /// Reads reference values from TOML, JSON, or the JSON that `cvm measure` prints.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        reference_values(
            text,
            TEES,
            |m| match &m.values {
                MeasuredValues::Snp(v) => Ok(Reference::measured(v, m.id_block.as_ref())),
                other => Err(other_tee(other, "snp")),
            },
            File::into_reference,
        )
    }
}

impl File {
    fn into_reference(self) -> Result<Reference, ConfigError> {
        let f = self;
        check_tee(f.tee.as_deref(), "reference values", TEES)?;
        let measurement = match (f.measurement, f.skip_measurement) {
            (None, false) => {
                return Err(ConfigError::NoMeasurement {
                    give: "`measurement`",
                });
            }
            (Some(_), true) => {
                return Err(ConfigError::Contradiction(
                    "`measurement` and `skip_measurement` contradict each other".into(),
                ));
            }
            (m, _) => Expected::from_file(m),
        };
        Ok(Reference {
            measurement,
            host_data: Expected::from_file(f.host_data),
            id_key_digest: Expected::from_file(f.id_key_digest),
            author_key_digest: Expected::from_file(f.author_key_digest),
            report_data: Expected::from_file(f.report_data),
            family_id: Expected::from_file(f.family_id),
            image_id: Expected::from_file(f.image_id),
        })
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

impl TcbKind {
    fn check(self) -> CheckId {
        match self {
            TcbKind::Reported => CheckId::PolicyMinTcbReported,
            TcbKind::Committed => CheckId::PolicyMinTcbCommitted,
            TcbKind::Current => CheckId::PolicyMinTcbCurrent,
            TcbKind::Launch => CheckId::PolicyMinTcbLaunch,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TcbKind::Reported => "reported",
            TcbKind::Committed => "committed",
            TcbKind::Current => "current",
            TcbKind::Launch => "launch",
        }
    }
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

impl MinTcb {
    /// The minimum for one component.
    pub fn get(&self, c: Component) -> Option<u8> {
        match c {
            Component::Fmc => self.fmc,
            Component::Bl => self.bl,
            Component::Tee => self.tee,
            Component::Snp => self.snp,
            Component::Ucode => self.ucode,
        }
    }
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
    /// Accept a verdict whose ASK/ASVK revocation was not checked (no CRL given).
    /// Default false: without a CRL the verdict fails for want of collateral.
    pub allow_unchecked_revocation: bool,
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
            allow_unchecked_revocation: false,
        }
    }
}

impl Policy {
    /// Reads a policy from TOML or JSON.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let p: Policy = from_json_or_toml(text)?;
        check_tee(p.tee.as_deref(), "a policy", TEES)?;
        if p.min_tcb_applies_to.is_empty() {
            return Err(ConfigError::Invalid(
                "`min_tcb_applies_to` is empty: name at least one of reported, committed, \
                 current, launch"
                    .into(),
            ));
        }
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
            CheckId::Reference,
            Category::Policy,
            "--no-reference: authenticity only, no reference values compared",
        ),
        Some(r) => {
            expect(
                checks,
                CheckId::ReferenceMeasurement,
                "MEASUREMENT",
                &r.measurement,
                &f.measurement,
            );
            expect(
                checks,
                CheckId::ReferenceHostData,
                "HOST_DATA",
                &r.host_data,
                &f.host_data,
            );
            expect(
                checks,
                CheckId::ReferenceIdKeyDigest,
                "ID_KEY_DIGEST",
                &r.id_key_digest,
                &f.id_key_digest,
            );
            expect(
                checks,
                CheckId::ReferenceAuthorKeyDigest,
                "AUTHOR_KEY_DIGEST",
                &r.author_key_digest,
                &f.author_key_digest,
            );
            expect(
                checks,
                CheckId::ReferenceReportData,
                "REPORT_DATA",
                &r.report_data,
                &f.report_data,
            );
            expect(
                checks,
                CheckId::ReferenceFamilyId,
                "FAMILY_ID",
                &r.family_id,
                &f.family_id,
            );
            expect(
                checks,
                CheckId::ReferenceImageId,
                "IMAGE_ID",
                &r.image_id,
                &f.image_id,
            );
        }
    }
    appraise_policy(report, claims, policy, checks);
}

/// The POLICY bits SEV-SNP firmware ABI 1.55 (table 9) defines: 0-25. The firmware
/// refuses a guest policy with a reserved bit set (SNP_LAUNCH_START returns
/// POLICY_FAILURE), so a report with one comes from an ABI this verifier does not know.
const POLICY_DEFINED_BITS: u64 = (1 << 26) - 1;

/// The VMPLs that exist (SEV-SNP ABI 1.55 section 2.4: four levels, 0 to 3).
const MAX_VMPL: u32 = 3;

fn appraise_policy(report: &Report<'_>, claims: &Claims, policy: &Policy, checks: &mut Checks) {
    let p = &claims.policy;
    let raw = report.fields.policy.get();
    flag(
        checks,
        CheckId::PolicyReservedBit17,
        p.reserved_one,
        "POLICY bit 17 (reserved, must be one) is set",
        "POLICY bit 17 (reserved, must be one) is clear",
    );
    let unknown = raw & !POLICY_DEFINED_BITS;
    flag(
        checks,
        CheckId::PolicyReservedBits,
        unknown == 0,
        "POLICY bits 63:26 (reserved) are clear",
        &format!(
            "POLICY {raw:#x} sets reserved bits {unknown:#x} (63:26), which SEV-SNP ABI 1.55 \
             does not define"
        ),
    );
    flag(
        checks,
        CheckId::PolicyDebug,
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
        CheckId::PolicyMigrateMa,
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
        CheckId::PolicySmt,
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
            CheckId::PolicySingleSocket,
            p.single_socket,
            "SINGLE_SOCKET set",
            "SINGLE_SOCKET required but not set",
        );
    }
    if policy.require_ciphertext_hiding {
        flag(
            checks,
            CheckId::PolicyCiphertextHiding,
            p.ciphertext_hiding,
            "CIPHERTEXT_HIDING set",
            "CIPHERTEXT_HIDING required but not set",
        );
    }
    if policy.require_author_key {
        flag(
            checks,
            CheckId::PolicyAuthorKey,
            report.author_key_en(),
            "AUTHOR_KEY_EN set",
            "an author key is required",
        );
    }
    let svn = claims.guest_svn;
    checks.record(
        CheckId::PolicyGuestSvn,
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
    let vmpl = claims.vmpl;
    checks.record(
        CheckId::PolicyVmpl,
        Category::Policy,
        match &policy.vmpl {
            _ if vmpl > MAX_VMPL => Err(format!(
                "VMPL {vmpl} does not exist (there are four, 0 to {MAX_VMPL})"
            )),
            None => Ok(format!("VMPL {vmpl} (any of 0-{MAX_VMPL} accepted)")),
            Some(allowed) if allowed.contains(&vmpl) => Ok(format!("VMPL {vmpl} accepted")),
            Some(allowed) => Err(format!("VMPL {vmpl} is not one of {allowed:?}")),
        },
    );
    let key = match report.signing_key() {
        SigningKey::Vcek => Some(SigningKeyName::Vcek),
        SigningKey::Vlek => Some(SigningKeyName::Vlek),
        _ => None,
    };
    flag(
        checks,
        CheckId::PolicySigningKey,
        key.is_some_and(|k| policy.signing_keys.contains(&k)),
        &format!("signed by the {}", key_name(report.signing_key())),
        &format!(
            "signing key {} not accepted by the policy",
            key_name(report.signing_key())
        ),
    );
    if let Some(min) = &policy.min_tcb {
        for kind in &policy.min_tcb_applies_to {
            let claim = match kind {
                TcbKind::Reported => &claims.reported_tcb,
                TcbKind::Committed => &claims.committed_tcb,
                TcbKind::Current => &claims.current_tcb,
                TcbKind::Launch => &claims.launch_tcb,
            };
            checks.record(
                kind.check(),
                Category::Policy,
                match claim.decoded() {
                    None => Err("the product (and so the TCB layout) is unknown".into()),
                    Some(tcb) => tcb_at_least(tcb, min, kind.name()),
                },
            );
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
        if let Some(w) = min.get(component)
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
