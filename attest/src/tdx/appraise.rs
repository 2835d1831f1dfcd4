//! Appraisal of a quote's claims against reference values and a policy, failing closed;
//! and the replay of a `cvm measure --event-log` file against the quote's RTMRs.

use super::claims::{TdAttributes, enclave_debug};
use super::collateral::TcbStatus;
use super::quote::{Body, EnclaveReport, TdReport, Tee};
use crate::config::other_tee;
use crate::config::{
    Bytes, ConfigError, Expected, OneOrMany, check_tee, expect, flag, from_json, from_json_or_toml,
    inapplicable, reference_values,
};
use crate::verdict::{Category, CheckId, Checks};
use cvm_firmware::reference::{MeasuredValues, TdxValues};
use serde::Deserialize;

/// Reference values for one TD (or SGX enclave): what each compared field must be, or
/// an explicit [`Expected::Skip`]. Every field must be named when the struct is built.
/// A TD quote fails on any SGX field that is not skipped, an SGX quote on any TD field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The evidence type the values are for; `None` for either.
    pub tee: Option<Tee>,
    /// Acceptable MRTDs.
    pub mrtd: Expected<Bytes<48>>,
    /// RTMR 0 to 3.
    pub rtmr: [Expected<Bytes<48>>; 4],
    /// MRCONFIGID.
    pub mr_config_id: Expected<Bytes<48>>,
    /// MROWNER.
    pub mr_owner: Expected<Bytes<48>>,
    /// MROWNERCONFIG.
    pub mr_owner_config: Expected<Bytes<48>>,
    /// MRSERVICETD (TD report 1.5).
    pub mr_service_td: Expected<Bytes<48>>,
    /// Acceptable MRSEAMs (TDX module builds).
    pub mr_seam: Expected<Bytes<48>>,
    /// REPORTDATA, exactly (e.g. a nonce); TDs and enclaves.
    pub report_data: Expected<Bytes<64>>,
    /// Acceptable MRENCLAVEs (SGX).
    pub mr_enclave: Expected<Bytes<32>>,
    /// MRSIGNER (SGX).
    pub mr_signer: Expected<Bytes<32>>,
}

/// The reference-value file: optional fields (left out means skipped), a measurement
/// (`mrtd`, or `mr_enclave`) unless `skip_measurement = true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tee: Option<String>,
    mrtd: Option<OneOrMany<Bytes<48>>>,
    #[serde(default)]
    skip_measurement: bool,
    rtmr0: Option<OneOrMany<Bytes<48>>>,
    rtmr1: Option<OneOrMany<Bytes<48>>>,
    rtmr2: Option<OneOrMany<Bytes<48>>>,
    rtmr3: Option<OneOrMany<Bytes<48>>>,
    mr_config_id: Option<OneOrMany<Bytes<48>>>,
    mr_owner: Option<OneOrMany<Bytes<48>>>,
    mr_owner_config: Option<OneOrMany<Bytes<48>>>,
    mr_service_td: Option<OneOrMany<Bytes<48>>>,
    mr_seam: Option<OneOrMany<Bytes<48>>>,
    report_data: Option<OneOrMany<Bytes<64>>>,
    mr_enclave: Option<OneOrMany<Bytes<32>>>,
    mr_signer: Option<OneOrMany<Bytes<32>>>,
}

/// A `tee` key's value.
fn tee_named(name: Option<&str>, what: &'static str) -> Result<Option<Tee>, ConfigError> {
    check_tee(name, what, TEES)?;
    Ok(match name {
        Some("sgx") => Some(Tee::Sgx),
        Some(_) => Some(Tee::Tdx),
        None => None,
    })
}

/// The evidence type a file is for: the one its `tee` names, or the one its
/// type-specific keys belong to; refused when they disagree.
fn applies_to(
    named: Option<Tee>,
    td_keys: &[&str],
    sgx_keys: &[&str],
    what: &str,
) -> Result<Option<Tee>, ConfigError> {
    let list = |k: &[&str]| k.join(", ");
    match (named, td_keys.is_empty(), sgx_keys.is_empty()) {
        (_, false, false) => Err(ConfigError::Contradiction(format!(
            "{what} mix TD keys ({}) and SGX keys ({}); a file is for one or the other",
            list(td_keys),
            list(sgx_keys)
        ))),
        (Some(Tee::Sgx), false, _) => Err(ConfigError::Contradiction(format!(
            "{what} for \"sgx\" give TD keys ({}), which SGX enclaves do not have",
            list(td_keys)
        ))),
        (Some(Tee::Tdx), _, false) => Err(ConfigError::Contradiction(format!(
            "{what} for \"tdx\" give SGX keys ({}), which TDs do not have",
            list(sgx_keys)
        ))),
        (Some(t), _, _) => Ok(Some(t)),
        (None, false, true) => Ok(Some(Tee::Tdx)),
        (None, true, false) => Ok(Some(Tee::Sgx)),
        (None, true, true) => Ok(None),
    }
}

/// The names of the keys that are present.
fn given<'a>(keys: &[(&'a str, bool)]) -> Vec<&'a str> {
    keys.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect()
}

impl File {
    fn into_reference(self) -> Result<Reference, ConfigError> {
        let f = self;
        let td_keys = given(&[
            ("mrtd", f.mrtd.is_some()),
            ("rtmr0", f.rtmr0.is_some()),
            ("rtmr1", f.rtmr1.is_some()),
            ("rtmr2", f.rtmr2.is_some()),
            ("rtmr3", f.rtmr3.is_some()),
            ("mr_config_id", f.mr_config_id.is_some()),
            ("mr_owner", f.mr_owner.is_some()),
            ("mr_owner_config", f.mr_owner_config.is_some()),
            ("mr_service_td", f.mr_service_td.is_some()),
            ("mr_seam", f.mr_seam.is_some()),
        ]);
        let sgx_keys = given(&[
            ("mr_enclave", f.mr_enclave.is_some()),
            ("mr_signer", f.mr_signer.is_some()),
        ]);
        let what = "reference values";
        let tee = applies_to(
            tee_named(f.tee.as_deref(), what)?,
            &td_keys,
            &sgx_keys,
            what,
        )?;
        let measured = f.mrtd.is_some() || f.mr_enclave.is_some();
        if !measured && !f.skip_measurement {
            return Err(ConfigError::NoMeasurement {
                give: "`mrtd` (or `mr_enclave` for SGX)",
            });
        }
        if measured && f.skip_measurement {
            return Err(ConfigError::Contradiction(
                "a measurement and `skip_measurement` contradict each other".into(),
            ));
        }
        Ok(Reference {
            tee,
            mrtd: Expected::from_file(f.mrtd),
            rtmr: [f.rtmr0, f.rtmr1, f.rtmr2, f.rtmr3].map(Expected::from_file),
            mr_config_id: Expected::from_file(f.mr_config_id),
            mr_owner: Expected::from_file(f.mr_owner),
            mr_owner_config: Expected::from_file(f.mr_owner_config),
            mr_service_td: Expected::from_file(f.mr_service_td),
            mr_seam: Expected::from_file(f.mr_seam),
            report_data: Expected::from_file(f.report_data),
            mr_enclave: Expected::from_file(f.mr_enclave),
            mr_signer: Expected::from_file(f.mr_signer),
        })
    }
}

impl Reference {
    /// The reference values a TD's measurement gives: MRTD, and the RTMRs it determines;
    /// every other field skipped (a measurement says nothing of them).
    pub fn measured(values: &TdxValues) -> Self {
        Reference {
            tee: Some(Tee::Tdx),
            mrtd: Expected::value(values.mrtd),
            rtmr: values
                .rtmr
                .map(|r| r.map_or(Expected::Skip, Expected::value)),
            // As reported: files from before cvm reported them leave them unchecked.
            mr_config_id: values.mr_config_id.map_or(Expected::Skip, Expected::value),
            mr_owner: values.mr_owner.map_or(Expected::Skip, Expected::value),
            mr_owner_config: values
                .mr_owner_config
                .map_or(Expected::Skip, Expected::value),
            mr_service_td: Expected::Skip,
            mr_seam: Expected::Skip,
            report_data: Expected::Skip,
            mr_enclave: Expected::Skip,
            mr_signer: Expected::Skip,
        }
    }

    /// Reads reference values from TOML, JSON, or the JSON `cvm measure --tee tdx` prints.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        reference_values(
            text,
            TEES,
            |m| match &m.values {
                MeasuredValues::Tdx(v) => Ok(Reference::measured(v)),
                other => Err(other_tee(other, "tdx")),
            },
            File::into_reference,
        )
    }
}

/// The policy any acceptable TD (or enclave) and platform must satisfy.
/// `Policy::default()` is the default policy: TCB status UpToDate only, debug forbidden,
/// SEPT_VE_DISABLE required, migratable TDs and unnamed TD attribute bits forbidden,
/// any XFAM, for either evidence type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The evidence type the policy is for; `None` for either. A file's `tee`, or the
    /// type its TD-only or SGX-only keys belong to.
    pub tee: Option<Tee>,
    /// The TCB statuses accepted (Revoked never is). Default: UpToDate.
    pub accepted_tcb_statuses: Vec<TcbStatus>,
    /// Accept debug TDs (TDATTRIBUTES.DEBUG) and debug enclaves. Default false.
    pub allow_debug: bool,
    /// TDs: require TDATTRIBUTES.SEPT_VE_DISABLE (Linux guests need it to be safe from
    /// #VE injection on pending pages). Default true.
    pub require_sept_ve_disable: bool,
    /// TDs: accept migratable TDs. Default false.
    pub allow_migratable: bool,
    /// TDs: accept TDATTRIBUTES bits this verifier does not name (reserved,
    /// profiling). Default false.
    pub allow_other_td_attributes: bool,
    /// TDs: acceptable XFAMs. Default: any.
    pub xfam: Option<OneOrMany<Bytes<8>>>,
    /// SGX: minimum ISVSVN of an enclave. Default 0.
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

/// The policy file: every key optional, with the defaults above.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    tee: Option<String>,
    accepted_tcb_statuses: Option<Vec<TcbStatus>>,
    allow_debug: Option<bool>,
    require_sept_ve_disable: Option<bool>,
    allow_migratable: Option<bool>,
    allow_other_td_attributes: Option<bool>,
    xfam: Option<OneOrMany<Bytes<8>>>,
    min_isv_svn: Option<u16>,
}

impl Policy {
    /// Reads a policy from TOML or JSON.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let f: PolicyFile = from_json_or_toml(text)?;
        let what = "a policy";
        let td_keys = given(&[
            (
                "require_sept_ve_disable",
                f.require_sept_ve_disable.is_some(),
            ),
            ("allow_migratable", f.allow_migratable.is_some()),
            (
                "allow_other_td_attributes",
                f.allow_other_td_attributes.is_some(),
            ),
            ("xfam", f.xfam.is_some()),
        ]);
        let sgx_keys = given(&[("min_isv_svn", f.min_isv_svn.is_some())]);
        let tee = applies_to(
            tee_named(f.tee.as_deref(), what)?,
            &td_keys,
            &sgx_keys,
            "the policy's keys",
        )?;
        let d = Policy::default();
        let p = Policy {
            tee,
            accepted_tcb_statuses: f.accepted_tcb_statuses.unwrap_or(d.accepted_tcb_statuses),
            allow_debug: f.allow_debug.unwrap_or(d.allow_debug),
            require_sept_ve_disable: f
                .require_sept_ve_disable
                .unwrap_or(d.require_sept_ve_disable),
            allow_migratable: f.allow_migratable.unwrap_or(d.allow_migratable),
            allow_other_td_attributes: f
                .allow_other_td_attributes
                .unwrap_or(d.allow_other_td_attributes),
            xfam: f.xfam,
            min_isv_svn: f.min_isv_svn.unwrap_or(d.min_isv_svn),
        };
        if p.accepted_tcb_statuses.contains(&TcbStatus::Revoked) {
            return Err(ConfigError::Invalid(
                "a Revoked TCB is never acceptable".into(),
            ));
        }
        Ok(p)
    }
}

/// The TEE names TDX reference-value and policy files may give (SGX quotes share them).
const TEES: &[&str] = &["tdx", "sgx"];

use crate::eventlog::{self, AnyLog, Departure, GuestLog};
/// An RTMR event log, the type `cvm measure` writes it with.
pub use cvm_firmware::measure::tdx::{EVENT_LOG_FORMAT, EventLog};

/// Reads an event log (JSON; a key given twice is refused) and checks it
/// ([`EventLog::check`]: its format, its RTMR indices, and that its events replay to the
/// RTMR values it states).
pub fn parse_event_log(text: &str) -> Result<EventLog, ConfigError> {
    let log: EventLog = from_json(text)?;
    log.check().map_err(ConfigError::Invalid)?;
    Ok(log)
}

/// Appraises the quote's body against the reference values, the policy and the event log;
/// with a guest's log and the plan's, returns where the guest's events depart from the
/// plan's for each RTMR the guest's log explains (it replays to the quote's value) and
/// whose events differ from the plan's, and says so in that RTMR's reference check.
pub fn appraise(
    body: &Body,
    reference: Option<&Reference>,
    policy: &Policy,
    event_log: Option<&AnyLog>,
    plan_log: Option<&EventLog>,
    checks: &mut Checks,
) -> Vec<Departure> {
    let tee = match body {
        Body::Sgx(_) => Tee::Sgx,
        Body::Td10(_) | Body::Td15(_) => Tee::Tdx,
    };
    match reference {
        None => checks.skip(
            CheckId::Reference,
            Category::Policy,
            "--no-reference: authenticity only, no reference values compared",
        ),
        Some(r) => {
            if let Some(want) = r.tee {
                checks.record(
                    CheckId::Reference,
                    Category::Policy,
                    if want == tee {
                        Ok(format!("reference values for {}", want.name()))
                    } else {
                        Err(format!(
                            "the reference values are for {}, the quote is {}",
                            kind(want),
                            kind(tee)
                        ))
                    },
                );
            }
            match body {
                Body::Td10(t) | Body::Td15(t) => reference_td(r, t, checks),
                Body::Sgx(e) => reference_sgx(r, e, checks),
            }
        }
    }
    let mut departures = Vec::new();
    if let (Some(log), Some(td)) = (event_log, body.td()) {
        replay(log, td, checks);
        if let (AnyLog::Guest(guest), Some(plan)) = (log, plan_log) {
            departures = explain(guest, plan, td, checks);
        }
    }
    if let Some(want) = policy.tee {
        checks.record(
            CheckId::PolicyTee,
            Category::Policy,
            if want == tee {
                Ok(format!("a policy for {}", want.name()))
            } else {
                Err(format!(
                    "the policy is for {}, the quote is {}",
                    kind(want),
                    kind(tee)
                ))
            },
        );
    }
    match body {
        Body::Td10(t) | Body::Td15(t) => policy_td(policy, t, checks),
        Body::Sgx(e) => policy_sgx(policy, e, checks),
    }
    departures
}

/// For each RTMR the guest's log replays to (so its events are the TD's), the events
/// where it departs from the plan's; a departure is noted in the RTMR's reference check.
fn explain(guest: &GuestLog, plan: &EventLog, t: &TdReport, checks: &mut Checks) -> Vec<Departure> {
    let mut all = Vec::new();
    for ((i, id), got) in (0u8..4).zip(CheckId::REFERENCE_RTMR).zip(t.rtmr.iter()) {
        let replayed = guest.replay(i).map_or([0; 48], |(v, _)| v);
        if &replayed != got {
            continue;
        }
        let d = eventlog::departures(i, &plan.events, &guest.events);
        if let Some(first) = d.first() {
            let more = match d.len() {
                1 => String::new(),
                n => format!(
                    " (and {} more departures: see \"departures\")",
                    n.saturating_sub(1)
                ),
            };
            checks.annotate(
                id,
                &format!("the guest's event log departs from the plan: {first}{more}"),
            );
        }
        all.extend(d);
    }
    all
}

fn kind(t: Tee) -> &'static str {
    match t {
        Tee::Sgx => "an SGX enclave's",
        _ => "a TD's",
    }
}

fn reference_td(r: &Reference, t: &TdReport, checks: &mut Checks) {
    let sgx = "the reference values give an SGX enclave's field; the quote is a TD's";
    inapplicable(checks, CheckId::ReferenceMrEnclave, &r.mr_enclave, sgx);
    inapplicable(checks, CheckId::ReferenceMrSigner, &r.mr_signer, sgx);
    expect(checks, CheckId::ReferenceMrtd, "MRTD", &r.mrtd, &t.mr_td);
    let labels = ["RTMR0", "RTMR1", "RTMR2", "RTMR3"];
    for (((id, label), want), got) in CheckId::REFERENCE_RTMR
        .into_iter()
        .zip(labels)
        .zip(&r.rtmr)
        .zip(&t.rtmr)
    {
        expect(checks, id, label, want, got);
    }
    expect(
        checks,
        CheckId::ReferenceMrConfigId,
        "MRCONFIGID",
        &r.mr_config_id,
        &t.mr_config_id,
    );
    expect(
        checks,
        CheckId::ReferenceMrOwner,
        "MROWNER",
        &r.mr_owner,
        &t.mr_owner,
    );
    expect(
        checks,
        CheckId::ReferenceMrOwnerConfig,
        "MROWNERCONFIG",
        &r.mr_owner_config,
        &t.mr_owner_config,
    );
    match &t.mr_service_td {
        Some(got) => expect(
            checks,
            CheckId::ReferenceMrServiceTd,
            "MRSERVICETD",
            &r.mr_service_td,
            got,
        ),
        None => inapplicable(
            checks,
            CheckId::ReferenceMrServiceTd,
            &r.mr_service_td,
            "MRSERVICETD is required but the quote's TD report 1.0 has none",
        ),
    }
    expect(
        checks,
        CheckId::ReferenceMrSeam,
        "MRSEAM",
        &r.mr_seam,
        &t.mr_seam,
    );
    expect(
        checks,
        CheckId::ReferenceReportData,
        "REPORTDATA",
        &r.report_data,
        &t.report_data,
    );
}

fn reference_sgx(r: &Reference, e: &EnclaveReport, checks: &mut Checks) {
    let td = "the reference values give a TD's field; the quote is an SGX enclave's";
    inapplicable(checks, CheckId::ReferenceMrtd, &r.mrtd, td);
    for (id, want) in CheckId::REFERENCE_RTMR.iter().zip(&r.rtmr) {
        inapplicable(checks, *id, want, td);
    }
    inapplicable(checks, CheckId::ReferenceMrConfigId, &r.mr_config_id, td);
    inapplicable(checks, CheckId::ReferenceMrOwner, &r.mr_owner, td);
    inapplicable(
        checks,
        CheckId::ReferenceMrOwnerConfig,
        &r.mr_owner_config,
        td,
    );
    inapplicable(checks, CheckId::ReferenceMrServiceTd, &r.mr_service_td, td);
    inapplicable(checks, CheckId::ReferenceMrSeam, &r.mr_seam, td);
    expect(
        checks,
        CheckId::ReferenceMrEnclave,
        "MRENCLAVE",
        &r.mr_enclave,
        &e.mr_enclave,
    );
    expect(
        checks,
        CheckId::ReferenceMrSigner,
        "MRSIGNER",
        &r.mr_signer,
        &e.mr_signer,
    );
    expect(
        checks,
        CheckId::ReferenceReportData,
        "REPORTDATA",
        &r.report_data,
        &e.report_data,
    );
}

fn replay(log: &AnyLog, t: &TdReport, checks: &mut Checks) {
    let (stated, whose) = match log {
        AnyLog::Cvm(l) => (l.values.rtmr.map(|r| r.is_some()), "the event log's"),
        // A guest's log states no values: each register it has events for is replayed.
        AnyLog::Guest(_) => ([true; 4], "the guest's event log's"),
    };
    for (((i, id), got), stated) in (0u8..4)
        .zip(CheckId::EVENT_LOG_RTMR)
        .zip(t.rtmr.iter())
        .zip(stated)
    {
        match log.replay(i) {
            None => checks.skip(id, Category::Policy, "the event log has no events for it"),
            // Its events are logged, but the inputs that complete it were not given.
            Some(_) if !stated => checks.skip(
                id,
                Category::Policy,
                "the event log does not determine it (some of its inputs were not given to \
                 cvm measure)",
            ),
            Some((value, n)) => {
                checks.record(
                    id,
                    Category::Policy,
                    if &value == got {
                        Ok(format!(
                            "{whose} {n} events replay to RTMR{i} {}",
                            hex::encode(got)
                        ))
                    } else {
                        Err(format!(
                            "{whose} {n} events replay to {}, the quote's RTMR{i} is {}",
                            hex::encode(value),
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
        CheckId::PolicyDebug,
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
        CheckId::PolicySeptVeDisable,
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
        CheckId::PolicyMigratable,
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
        CheckId::PolicyTdAttributes,
        policy.allow_other_td_attributes || other == 0,
        &format!("TDATTRIBUTES {}", hex::encode(t.td_attributes)),
        &format!(
            "TDATTRIBUTES has bits {other:#018x} set that are reserved or not named \
             (allow_other_td_attributes)"
        ),
    );
    match &policy.xfam {
        None => checks.skip(
            CheckId::PolicyXfam,
            Category::Policy,
            &format!("XFAM {} (any accepted)", hex::encode(t.xfam)),
        ),
        Some(allowed) => flag(
            checks,
            CheckId::PolicyXfam,
            allowed.as_slice().iter().any(|x| x.0 == t.xfam),
            &format!("XFAM {} accepted", hex::encode(t.xfam)),
            &format!("XFAM {} is not an accepted value", hex::encode(t.xfam)),
        ),
    }
}

fn policy_sgx(policy: &Policy, e: &EnclaveReport, checks: &mut Checks) {
    let debug = enclave_debug(e);
    flag(
        checks,
        CheckId::PolicyDebug,
        policy.allow_debug || !debug,
        if debug {
            "debug enclave allowed by the policy"
        } else {
            "not a debug enclave"
        },
        "ATTRIBUTES.DEBUG is set: a debug enclave; policy forbids it",
    );
    checks.record(
        CheckId::PolicyIsvSvn,
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
    use sha2::{Digest, Sha384};

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
            r#"{{"format":"cvm-measurement/1","tee":"tdx","mrtd":"{}","rtmr":[null,"{}",null,null],"firmware":{{}}}}"#,
            "11".repeat(48),
            "22".repeat(48)
        );
        let r = Reference::parse(&json).unwrap();
        assert_eq!(r.mrtd, Expected::value(Bytes([0x11; 48])));
        assert_eq!(r.rtmr[1], Expected::value(Bytes([0x22; 48])));
        assert!(r.rtmr[0].is_skip() && r.rtmr[2].is_skip());
        assert_eq!(r.tee, Some(Tee::Tdx));
        let snp = r#"{"format":"cvm-measurement/1","tee":"snp","measurement":"00"}"#;
        assert!(
            Reference::parse(snp)
                .unwrap_err()
                .to_string()
                .contains("\"snp\"")
        );
        // A document says what it is by its format, not by the keys it happens to have.
        let unknown = json.replace("cvm-measurement/1", "cvm-measurement/2");
        let e = Reference::parse(&unknown).unwrap_err().to_string();
        assert!(e.contains("format \"cvm-measurement/2\""), "{e}");
        let unmarked = json.replace(r#""format":"cvm-measurement/1","#, "");
        assert!(Reference::parse(&unmarked).is_err());
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
    fn replay_extends_in_order_and_a_log_must_agree_with_itself() {
        let d1 = "01".repeat(48);
        let d2 = "02".repeat(48);
        // The expected RTMR 1, extended here by hand: SHA-384(old || digest).
        let mut r = [0u8; 48];
        for d in [[1u8; 48], [2u8; 48]] {
            let mut h = Sha384::new();
            h.update(r);
            h.update(d);
            r = h.finalize().into();
        }
        let log_with = |rtmr1: &str| {
            format!(
                r#"{{"format":"cvm-tdx-event-log/1","mrtd":"{m}","rtmr":[null,{rtmr1},null,null],
                "events":[
                {{"rtmr":1,"type":"EV_EFI_ACTION","digest":"{d1}","description":"a"}},
                {{"rtmr":1,"type":"EV_SEPARATOR","digest":"{d2}","description":"b"}}]}}"#,
                m = "00".repeat(48)
            )
        };
        let text = log_with(&format!("\"{}\"", hex::encode(r)));
        let log = parse_event_log(&text).unwrap();
        assert!(log.replay(0).is_none());
        assert_eq!(log.replay(1), Some((r, 2)));
        assert!(parse_event_log(&text.replace("/1", "/2")).is_err());
        let e = parse_event_log(&log_with(&format!("\"{}\"", "ff".repeat(48)))).unwrap_err();
        assert!(e.to_string().contains("do not replay to the RTMR 1"), "{e}");
        assert!(parse_event_log(&log_with("null")).is_ok());
        let unknown_type = text.replace("EV_EFI_ACTION", "EV_A");
        assert!(parse_event_log(&unknown_type).is_err());
    }
}
