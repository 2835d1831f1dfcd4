//! Appraisal of a quote's claims against reference values and a policy, failing closed;
//! and the replay of a `cvm measure --event-log` file against the quote's RTMRs.

use super::claims::{TdAttributes, enclave_debug};
use super::collateral::TcbStatus;
use super::quote::{Body, EnclaveReport, TdReport};
use crate::config::{
    Bytes, ConfigError, OneOrMany, check_tee, eq_check, flag, from_json_or_toml, one_of,
    reference_values,
};
use crate::verdict::{Category, Checks};
use cvm_firmware::hex;
use serde::Deserialize;
use sha2::{Digest, Sha384};

/// Reference values for one TD (or SGX enclave). Every field given must match; MRTD
/// (MRENCLAVE for SGX) is required unless `skip_measurement` says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// "tdx" (optional, checked when present).
    pub tee: Option<String>,
    /// Acceptable MRTDs.
    pub mrtd: Option<OneOrMany<Bytes<48>>>,
    /// Accept any MRTD / MRENCLAVE (must be said explicitly).
    #[serde(default)]
    pub skip_measurement: bool,
    /// RTMR 0.
    pub rtmr0: Option<Bytes<48>>,
    /// RTMR 1.
    pub rtmr1: Option<Bytes<48>>,
    /// RTMR 2.
    pub rtmr2: Option<Bytes<48>>,
    /// RTMR 3.
    pub rtmr3: Option<Bytes<48>>,
    /// MRCONFIGID.
    pub mr_config_id: Option<Bytes<48>>,
    /// MROWNER.
    pub mr_owner: Option<Bytes<48>>,
    /// MROWNERCONFIG.
    pub mr_owner_config: Option<Bytes<48>>,
    /// MRSERVICETD (TD report 1.5).
    pub mr_service_td: Option<Bytes<48>>,
    /// Acceptable MRSEAMs (TDX module builds).
    pub mr_seam: Option<OneOrMany<Bytes<48>>>,
    /// REPORTDATA, exactly (e.g. a nonce).
    pub report_data: Option<Bytes<64>>,
    /// Acceptable MRENCLAVEs (SGX).
    pub mr_enclave: Option<OneOrMany<Bytes<32>>>,
    /// MRSIGNER (SGX).
    pub mr_signer: Option<Bytes<32>>,
}

/// The subset of `cvm measure --tee tdx --format json` output that is a reference value.
#[derive(Debug, Deserialize)]
struct MeasureHandoff {
    mrtd: Bytes<48>,
    rtmr: [Option<Bytes<48>>; 4],
}

impl Reference {
    /// Reads reference values from TOML, JSON, or the JSON `cvm measure --tee tdx` prints.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let r: Reference = reference_values(text, TEES, |value| {
            let m: MeasureHandoff = serde_json::from_value(value)
                .map_err(|e| ConfigError(format!("cvm measure output: {e}")))?;
            let [rtmr0, rtmr1, rtmr2, rtmr3] = m.rtmr;
            Ok(Reference {
                tee: Some("tdx".into()),
                mrtd: Some(OneOrMany::One(m.mrtd)),
                rtmr0,
                rtmr1,
                rtmr2,
                rtmr3,
                ..Reference::default()
            })
        })?;
        check_tee(r.tee.as_deref(), "reference values", TEES)?;
        let given = r.mrtd.is_some() || r.mr_enclave.is_some();
        if !given && !r.skip_measurement {
            return Err(ConfigError(
                "no measurement: give `mrtd` (or `mr_enclave` for SGX), or \
                 `skip_measurement = true` to accept any"
                    .into(),
            ));
        }
        if given && r.skip_measurement {
            return Err(ConfigError(
                "a measurement and `skip_measurement` contradict each other".into(),
            ));
        }
        Ok(r)
    }
}

/// The policy any acceptable TD (or enclave) and platform must satisfy.
/// `Policy::default()` is the default policy: TCB status UpToDate only, debug forbidden,
/// SEPT_VE_DISABLE required, migratable TDs and unnamed TD attribute bits forbidden,
/// any XFAM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// "tdx" (optional, checked when present).
    pub tee: Option<String>,
    /// The TCB statuses accepted (Revoked never is). Default: UpToDate.
    pub accepted_tcb_statuses: Vec<TcbStatus>,
    /// Accept debug TDs (TDATTRIBUTES.DEBUG) and debug enclaves. Default false.
    pub allow_debug: bool,
    /// Require TDATTRIBUTES.SEPT_VE_DISABLE (Linux guests need it to be safe from #VE
    /// injection on pending pages). Default true.
    pub require_sept_ve_disable: bool,
    /// Accept migratable TDs. Default false.
    pub allow_migratable: bool,
    /// Accept TDATTRIBUTES bits this verifier does not name (reserved, profiling).
    /// Default false.
    pub allow_other_td_attributes: bool,
    /// Acceptable XFAMs. Default: any.
    pub xfam: Option<OneOrMany<Bytes<8>>>,
    /// Minimum ISVSVN of an SGX enclave. Default 0.
    pub min_isv_svn: u16,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            tee: None,
            accepted_tcb_statuses: vec![TcbStatus::UpToDate],
            allow_debug: false,
            require_sept_ve_disable: true,
            allow_migratable: false,
            allow_other_td_attributes: false,
            xfam: None,
            min_isv_svn: 0,
        }
    }
}

impl Policy {
    /// Reads a policy from TOML or JSON.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let p: Policy = from_json_or_toml(text)?;
        check_tee(p.tee.as_deref(), "a policy", TEES)?;
        if p.accepted_tcb_statuses.contains(&TcbStatus::Revoked) {
            return Err(ConfigError("a Revoked TCB is never acceptable".into()));
        }
        Ok(p)
    }
}

/// The TEE names TDX reference-value and policy files may give (SGX quotes share them).
const TEES: &[&str] = &["tdx", "sgx"];

/// One event of a `cvm-tdx-event-log/1` file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEvent {
    /// The RTMR it extends (0-3).
    pub rtmr: u8,
    /// Its TCG event type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The SHA-384 digest extended.
    pub digest: Bytes<48>,
    /// What was measured.
    pub description: String,
}

/// A `cvm measure --tee tdx --event-log` file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventLog {
    /// The events, in order.
    pub events: Vec<LogEvent>,
}

/// The format name of the event logs `cvm measure` writes.
pub const EVENT_LOG_FORMAT: &str = "cvm-tdx-event-log/1";

impl EventLog {
    /// Reads an event log.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            format: String,
            events: Vec<LogEvent>,
        }
        let f: File = serde_json::from_str(text).map_err(|e| ConfigError(format!("JSON: {e}")))?;
        if f.format != EVENT_LOG_FORMAT {
            return Err(ConfigError(format!(
                "format {:?}, expected {EVENT_LOG_FORMAT:?}",
                f.format
            )));
        }
        if let Some(e) = f.events.iter().find(|e| e.rtmr > 3) {
            return Err(ConfigError(format!(
                "an event extends RTMR {}; there are four (0-3)",
                e.rtmr
            )));
        }
        Ok(EventLog { events: f.events })
    }

    /// Replays the events of RTMR `index`: `None` when the log has none for it.
    pub fn replay(&self, index: u8) -> Option<([u8; 48], usize)> {
        let mut value = [0u8; 48];
        let mut n = 0usize;
        for e in self.events.iter().filter(|e| e.rtmr == index) {
            let mut h = Sha384::new();
            h.update(value);
            h.update(e.digest.0);
            value = h.finalize().into();
            n = n.saturating_add(1);
        }
        (n > 0).then_some((value, n))
    }
}

/// Appraises the quote's body against the reference values, the policy and the event log.
pub fn appraise(
    body: &Body,
    reference: Option<&Reference>,
    policy: &Policy,
    event_log: Option<&EventLog>,
    checks: &mut Checks,
) {
    match reference {
        None => checks.skip(
            "reference",
            Category::Policy,
            "--no-reference: authenticity only, no reference values compared",
        ),
        Some(r) => match body {
            Body::Td10(t) | Body::Td15(t) => reference_td(r, t, checks),
            Body::Sgx(e) => reference_sgx(r, e, checks),
        },
    }
    if let (Some(log), Some(td)) = (event_log, body.td()) {
        replay(log, td, checks);
    }
    match body {
        Body::Td10(t) | Body::Td15(t) => policy_td(policy, t, checks),
        Body::Sgx(e) => policy_sgx(policy, e, checks),
    }
}

const ABSENT: &str = "no reference value given";

fn reference_td(r: &Reference, t: &TdReport, checks: &mut Checks) {
    match &r.mrtd {
        Some(m) => one_of(checks, "reference.mrtd", "MRTD", m, &t.mr_td),
        None if r.mr_enclave.is_some() => {
            checks.record(
                "reference.mrtd",
                Category::Policy,
                Err(
                    "the reference values are for an SGX enclave (mr_enclave), the quote is a TD's"
                        .into(),
                ),
            );
        }
        None => checks.skip(
            "reference.mrtd",
            Category::Policy,
            "skip_measurement: any MRTD accepted",
        ),
    }
    for (i, want) in [&r.rtmr0, &r.rtmr1, &r.rtmr2, &r.rtmr3]
        .into_iter()
        .enumerate()
    {
        if let Some(got) = t.rtmr.get(i) {
            eq_check(
                checks,
                &format!("reference.rtmr{i}"),
                &format!("RTMR{i}"),
                want.as_ref(),
                got,
                ABSENT,
            );
        }
    }
    eq_check(
        checks,
        "reference.mr_config_id",
        "MRCONFIGID",
        r.mr_config_id.as_ref(),
        &t.mr_config_id,
        ABSENT,
    );
    eq_check(
        checks,
        "reference.mr_owner",
        "MROWNER",
        r.mr_owner.as_ref(),
        &t.mr_owner,
        ABSENT,
    );
    eq_check(
        checks,
        "reference.mr_owner_config",
        "MROWNERCONFIG",
        r.mr_owner_config.as_ref(),
        &t.mr_owner_config,
        ABSENT,
    );
    match (&r.mr_service_td, &t.mr_service_td) {
        (Some(_), None) => {
            checks.record(
                "reference.mr_service_td",
                Category::Policy,
                Err("MRSERVICETD is required but the quote's TD report 1.0 has none".into()),
            );
        }
        (want, Some(got)) => eq_check(
            checks,
            "reference.mr_service_td",
            "MRSERVICETD",
            want.as_ref(),
            got,
            ABSENT,
        ),
        (None, None) => {}
    }
    match &r.mr_seam {
        Some(m) => one_of(checks, "reference.mr_seam", "MRSEAM", m, &t.mr_seam),
        None => checks.skip("reference.mr_seam", Category::Policy, ABSENT),
    }
    eq_check(
        checks,
        "reference.report_data",
        "REPORTDATA",
        r.report_data.as_ref(),
        &t.report_data,
        ABSENT,
    );
}

fn reference_sgx(r: &Reference, e: &EnclaveReport, checks: &mut Checks) {
    match &r.mr_enclave {
        Some(m) => one_of(
            checks,
            "reference.mr_enclave",
            "MRENCLAVE",
            m,
            &e.mr_enclave,
        ),
        None if r.mrtd.is_some() => {
            checks.record(
                "reference.mr_enclave",
                Category::Policy,
                Err(
                    "the reference values are for a TD (mrtd), the quote is an SGX enclave's"
                        .into(),
                ),
            );
        }
        None => checks.skip(
            "reference.mr_enclave",
            Category::Policy,
            "skip_measurement: any MRENCLAVE accepted",
        ),
    }
    eq_check(
        checks,
        "reference.mr_signer",
        "MRSIGNER",
        r.mr_signer.as_ref(),
        &e.mr_signer,
        ABSENT,
    );
    eq_check(
        checks,
        "reference.report_data",
        "REPORTDATA",
        r.report_data.as_ref(),
        &e.report_data,
        ABSENT,
    );
}

fn replay(log: &EventLog, t: &TdReport, checks: &mut Checks) {
    for (i, got) in (0u8..4).zip(t.rtmr.iter()) {
        let name = format!("event_log.rtmr{i}");
        match log.replay(i) {
            None => checks.skip(
                &name,
                Category::Policy,
                "the event log has no events for it",
            ),
            Some((value, n)) => {
                checks.record(
                    &name,
                    Category::Policy,
                    if &value == got {
                        Ok(format!("{n} events replay to RTMR{i} {}", hex::encode(got)))
                    } else {
                        Err(format!(
                            "{n} events replay to {}, the quote's RTMR{i} is {}",
                            hex::encode(&value),
                            hex::encode(got)
                        ))
                    },
                );
            }
        }
    }
}

fn policy_td(policy: &Policy, t: &TdReport, checks: &mut Checks) {
    let a = TdAttributes::new(t.td_attributes);
    flag(
        checks,
        "policy.debug",
        policy.allow_debug || !a.debug,
        if a.debug {
            "debug TD allowed by the policy"
        } else {
            "not a debug TD"
        },
        "TDATTRIBUTES.DEBUG is set: the host can read and change the TD's state; policy forbids it",
    );
    flag(
        checks,
        "policy.sept_ve_disable",
        a.sept_ve_disable || !policy.require_sept_ve_disable,
        if a.sept_ve_disable {
            "SEPT_VE_DISABLE set"
        } else {
            "SEPT_VE_DISABLE clear, not required by the policy"
        },
        "TDATTRIBUTES.SEPT_VE_DISABLE is clear (the host can inject #VE on pending pages); policy requires it",
    );
    flag(
        checks,
        "policy.migratable",
        policy.allow_migratable || !a.migratable,
        if a.migratable {
            "migratable TD allowed by the policy"
        } else {
            "not migratable"
        },
        "TDATTRIBUTES.MIGRATABLE is set; policy forbids migratable TDs",
    );
    let other = TdAttributes::other_bits(t.td_attributes);
    flag(
        checks,
        "policy.td_attributes",
        policy.allow_other_td_attributes || other == 0,
        &format!("TDATTRIBUTES {}", hex::encode(&t.td_attributes)),
        &format!(
            "TDATTRIBUTES has bits {other:#018x} set that are reserved or not named \
             (allow_other_td_attributes)"
        ),
    );
    match &policy.xfam {
        None => checks.skip(
            "policy.xfam",
            Category::Policy,
            &format!("XFAM {} (any accepted)", hex::encode(&t.xfam)),
        ),
        Some(allowed) => flag(
            checks,
            "policy.xfam",
            allowed.as_slice().iter().any(|x| x.0 == t.xfam),
            &format!("XFAM {} accepted", hex::encode(&t.xfam)),
            &format!("XFAM {} is not an accepted value", hex::encode(&t.xfam)),
        ),
    }
}

fn policy_sgx(policy: &Policy, e: &EnclaveReport, checks: &mut Checks) {
    let debug = enclave_debug(e);
    flag(
        checks,
        "policy.debug",
        policy.allow_debug || !debug,
        if debug {
            "debug enclave allowed by the policy"
        } else {
            "not a debug enclave"
        },
        "ATTRIBUTES.DEBUG is set: a debug enclave; policy forbids it",
    );
    checks.record(
        "policy.isv_svn",
        Category::Policy,
        if e.isv_svn >= policy.min_isv_svn {
            Ok(format!("ISVSVN {} >= {}", e.isv_svn, policy.min_isv_svn))
        } else {
            Err(format!(
                "ISVSVN {} < the minimum {}",
                e.isv_svn, policy.min_isv_svn
            ))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_needs_a_measurement_or_an_explicit_skip() {
        assert!(Reference::parse("").is_err());
        assert!(Reference::parse("skip_measurement = true").is_ok());
        let m = format!("mrtd = \"{}\"", "ab".repeat(48));
        assert!(Reference::parse(&m).is_ok());
        assert!(Reference::parse(&format!("{m}\nskip_measurement = true")).is_err());
        assert!(Reference::parse("tee = \"snp\"\nskip_measurement = true").is_err());
    }

    #[test]
    fn measure_output_is_a_reference() {
        let json = format!(
            r#"{{"tee":"tdx","mrtd":"{}","rtmr":[null,"{}",null,null],"firmware":{{}}}}"#,
            "11".repeat(48),
            "22".repeat(48)
        );
        let r = Reference::parse(&json).unwrap();
        assert_eq!(r.mrtd, Some(OneOrMany::One(Bytes([0x11; 48]))));
        assert_eq!(r.rtmr1, Some(Bytes([0x22; 48])));
        assert!(r.rtmr0.is_none() && r.rtmr2.is_none());
        let snp = r#"{"tee":"snp","measurement":"00","firmware":{}}"#;
        assert!(Reference::parse(snp).unwrap_err().0.contains("\"snp\""));
    }

    #[test]
    fn policy_refuses_revoked() {
        assert!(Policy::parse("accepted_tcb_statuses = [\"Revoked\"]").is_err());
        let p =
            Policy::parse("accepted_tcb_statuses = [\"UpToDate\", \"SWHardeningNeeded\"]").unwrap();
        assert_eq!(p.accepted_tcb_statuses.len(), 2);
        assert!(p.require_sept_ve_disable && !p.allow_debug);
    }

    #[test]
    fn replay_extends_in_order() {
        let d1 = "01".repeat(48);
        let d2 = "02".repeat(48);
        let text = format!(
            r#"{{"format":"cvm-tdx-event-log/1","events":[
                {{"rtmr":1,"type":"EV_A","digest":"{d1}","description":"a"}},
                {{"rtmr":1,"type":"EV_B","digest":"{d2}","description":"b"}}]}}"#
        );
        let log = EventLog::parse(&text).unwrap();
        assert!(log.replay(0).is_none());
        let mut r = [0u8; 48];
        for d in [[1u8; 48], [2u8; 48]] {
            let mut h = Sha384::new();
            h.update(r);
            h.update(d);
            r = h.finalize().into();
        }
        assert_eq!(log.replay(1), Some((r, 2)));
        assert!(EventLog::parse(&text.replace("/1", "/2")).is_err());
    }
}
