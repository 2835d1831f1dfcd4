//! Derived negatives for the leniencies a strict verifier does not have (issue 17): each
//! is a real piece of evidence, collateral or configuration changed in one respect, and
//! each must be refused by the check (or the parse) named, and by nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::config::ConfigError;
use cvm_attest::tdx::Verifier;
use cvm_attest::tdx::appraise::{Policy, Reference};
use cvm_attest::tdx::claims::Claims;
use cvm_attest::tdx::collateral::{Collateral, TcbStatus};
use cvm_attest::tdx::pck::IntelRoot;
use cvm_attest::{Cache, Status, Time, Verdict};
use cvm_tests::{case_time, failed, tdx_case, vectors};
use std::path::{Path, PathBuf};

const UPTODATE: &str = "tdx/tdx-v4-phala-b0c06f-uptodate";
const SGX: &str = "tdx/sgx-v3-phala-00a06711";

/// Accepts every TCB status but Revoked, as the vectors' tests do: these negatives are
/// about one field each, not about the platform's TCB.
fn lenient() -> Policy {
    Policy {
        accepted_tcb_statuses: TcbStatus::ALL
            .into_iter()
            .filter(|s| *s != TcbStatus::Revoked)
            .collect(),
        ..Policy::default()
    }
}

fn case(rel: &str) -> Option<PathBuf> {
    vectors().map(|v| v.join(rel))
}

fn verify(
    dir: &Path,
    quote: &[u8],
    collateral: Option<&Collateral>,
    reference: Option<&Reference>,
    policy: &Policy,
) -> Verdict<Claims> {
    Verifier {
        root: &IntelRoot::builtin().unwrap(),
        collateral,
        reference,
        policy,
        event_log: None,
        plan_log: None,
        at: case_time(dir),
        cache: &Cache::default(),
    }
    .verify(quote)
}

fn names(v: &Verdict<Claims>) -> Vec<&'static str> {
    v.failed_checks().map(|c| c.name.name()).collect()
}

/// The case verified with `reference` and `policy` fails exactly `want`.
fn fails_only(rel: &str, reference: Option<&Reference>, policy: &Policy, want: &[&str]) {
    let Some(dir) = case(rel) else { return };
    let c = tdx_case(&dir);
    let v = verify(&dir, &c.quote, c.collateral.as_ref(), reference, policy);
    assert_eq!(names(&v), want, "{rel}: {:#?}", failed(&v));
}

#[test]
fn both_cases_pass_as_they_are() {
    for rel in [UPTODATE, SGX] {
        let Some(dir) = case(rel) else { return };
        let c = tdx_case(&dir);
        let policy = Policy {
            require_sept_ve_disable: false,
            ..lenient()
        };
        let v = verify(&dir, &c.quote, c.collateral.as_ref(), None, &policy);
        assert_eq!(v.verdict, Status::Pass, "{rel}: {:#?}", failed(&v));
    }
}

#[test]
fn reference_fields_of_the_other_evidence_type_are_refused() {
    let td_policy = Policy {
        require_sept_ve_disable: false,
        ..lenient()
    };
    // SGX fields on a TD quote: the file itself says it is for SGX.
    let sgx_ref = Reference::parse(&format!("mr_enclave = \"{}\"", "00".repeat(32))).unwrap();
    fails_only(
        UPTODATE,
        Some(&sgx_ref),
        &td_policy,
        &["reference", "reference.mr_enclave"],
    );
    // The same fields built by a library caller without naming the type.
    let untyped = Reference {
        tee: None,
        ..sgx_ref.clone()
    };
    fails_only(
        UPTODATE,
        Some(&untyped),
        &td_policy,
        &["reference.mr_enclave"],
    );
    // TD fields on an SGX quote.
    let td_ref = Reference::parse(&format!("mrtd = \"{}\"", "00".repeat(48))).unwrap();
    fails_only(
        SGX,
        Some(&td_ref),
        &lenient(),
        &["reference", "reference.mrtd"],
    );
    // A `tee` naming the other type, with nothing else to compare.
    let for_sgx = Reference::parse("tee = \"sgx\"\nskip_measurement = true").unwrap();
    fails_only(UPTODATE, Some(&for_sgx), &td_policy, &["reference"]);
    // A file mixing both kinds is refused when it is read.
    let mixed = format!(
        "mrtd = \"{}\"\nmr_signer = \"{}\"",
        "00".repeat(48),
        "00".repeat(32)
    );
    assert!(matches!(
        Reference::parse(&mixed),
        Err(ConfigError::Contradiction(m)) if m.contains("mix TD keys")
    ));
    let contradiction = format!("tee = \"sgx\"\nmrtd = \"{}\"", "00".repeat(48));
    assert!(Reference::parse(&contradiction).is_err());
}

#[test]
fn policy_keys_of_the_other_evidence_type_are_refused() {
    // `xfam` makes a policy a TD policy; an SGX quote fails it.
    let xfam = Policy::parse(
        "accepted_tcb_statuses = [\"UpToDate\", \"ConfigurationAndSWHardeningNeeded\"]\n\
         xfam = \"e702060000000000\"",
    )
    .unwrap();
    fails_only(SGX, None, &xfam, &["policy.tee"]);
    // `min_isv_svn` makes it an SGX policy; a TD quote fails it.
    let isv = Policy {
        require_sept_ve_disable: false,
        ..Policy::parse("min_isv_svn = 1").unwrap()
    };
    let isv = Policy {
        accepted_tcb_statuses: lenient().accepted_tcb_statuses,
        ..isv
    };
    fails_only(UPTODATE, None, &isv, &["policy.tee"]);
    assert!(Policy::parse("tee = \"sgx\"\nallow_migratable = true").is_err());
    assert!(Policy::parse("xfam = \"e702060000000000\"\nmin_isv_svn = 1").is_err());
}

#[test]
fn duplicate_keys_in_json_are_refused() {
    let m = "00".repeat(48);
    let dup = format!(r#"{{"mrtd": "{m}", "mrtd": "{}"}}"#, "11".repeat(48));
    let e = Reference::parse(&dup).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Syntax { format: "JSON", message } if message.contains("duplicate key \"mrtd\"")),
        "{e}"
    );
    let snp = format!(
        r#"{{"measurement": "{m}", "host_data": "{}", "host_data": "{}"}}"#,
        "00".repeat(32),
        "11".repeat(32)
    );
    assert!(cvm_attest::snp::appraise::Reference::parse(&snp).is_err());
    let policy = r#"{"allow_debug": false, "allow_debug": true}"#;
    assert!(Policy::parse(policy).is_err());
    assert!(cvm_attest::snp::appraise::Policy::parse(policy).is_err());
    // Nested objects too (cvm measure output as reference values).
    let nested = format!(
        r#"{{"tee": "tdx", "mrtd": "{m}", "rtmr": [null, null, null, null], "firmware": {{"path": "a", "path": "b"}}}}"#
    );
    assert!(Reference::parse(&nested).is_err());
}

#[test]
fn a_bad_hex_value_is_named() {
    let e = Reference::parse("mrtd = \"abc\"").unwrap_err();
    assert!(
        e.to_string().contains("\"abc\" is not 48 bytes of hex"),
        "{e}"
    );
    assert!(!e.to_string().contains("untagged"), "{e}");
}

#[test]
fn an_empty_min_tcb_applies_to_is_refused() {
    let e = cvm_attest::snp::appraise::Policy::parse("min_tcb_applies_to = []\n[min_tcb]\nbl = 1")
        .unwrap_err();
    assert!(e.to_string().contains("min_tcb_applies_to"), "{e}");
}

/// The quote with `junk` appended to the PEM of its PCK chain (before the NUL that ends
/// it), every enclosing length grown to match: the signatures still verify (none covers
/// the certification data).
fn with_chain_junk(quote: &[u8], junk: &[u8]) -> Vec<u8> {
    let begin = quote
        .windows(10)
        .position(|w| w == b"-----BEGIN")
        .expect("a PEM chain");
    let grow = |q: &mut Vec<u8>, at: usize| {
        let v = u32::from_le_bytes(q[at..at + 4].try_into().unwrap());
        let n = u32::try_from(junk.len()).unwrap();
        q[at..at + 4].copy_from_slice(&(v + n).to_le_bytes());
    };
    let size = usize::try_from(u32::from_le_bytes(
        quote[begin - 4..begin].try_into().unwrap(),
    ))
    .unwrap();
    let mut end = begin + size;
    if quote[end - 1] == 0 {
        end -= 1;
    }
    let mut q = quote[..end].to_vec();
    q.extend_from_slice(junk);
    q.extend_from_slice(&quote[end..]);
    // A v4 quote: the signature data length after the 48-byte header and the 584-byte
    // TD report; the certification data (type 6) size after the ISV signature and the
    // attestation key; the PCK chain's (type 5) size just before it.
    grow(&mut q, 632);
    grow(&mut q, 632 + 4 + 64 + 64 + 2);
    grow(&mut q, begin - 4);
    q
}

#[test]
fn the_pck_chain_of_a_quote_carries_certificates_only() {
    let Some(dir) = case(UPTODATE) else { return };
    let c = tdx_case(&dir);
    let policy = Policy {
        require_sept_ve_disable: false,
        ..lenient()
    };
    // Whitespace after the chain is harmless; anything else is not.
    let spaced = with_chain_junk(&c.quote, b"\n\n");
    let v = verify(&dir, &spaced, c.collateral.as_ref(), None, &policy);
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    for junk in [
        &b"extra bytes"[..],
        b"\0\0",
        b"-----BEGIN X-----\n-----END X-----\n",
    ] {
        let q = with_chain_junk(&c.quote, junk);
        let v = verify(&dir, &q, c.collateral.as_ref(), None, &policy);
        assert_eq!(names(&v), ["pck.chain"], "{junk:?}: {:#?}", failed(&v));
    }
}

#[test]
fn the_pck_crl_issuer_chain_is_checked() {
    let Some(dir) = case(UPTODATE) else { return };
    let c = tdx_case(&dir);
    let text = std::fs::read_to_string(dir.join("collateral.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The TCB signing chain in its place: its first certificate did not issue the CRL.
    json["pck_crl_issuer_chain"] = json["tcb_info_issuer_chain"].clone();
    let wrong = Collateral::parse_json(&json.to_string()).unwrap();
    let policy = Policy {
        require_sept_ve_disable: false,
        ..lenient()
    };
    let v = verify(&dir, &c.quote, Some(&wrong), None, &policy);
    assert_eq!(
        names(&v),
        ["collateral.pck_crl_issuer_chain"],
        "{:#?}",
        failed(&v)
    );
    assert!(failed(&v)[0].contains("is not the PCK CRL's issuer"));
    // Garbage in its place does not parse.
    json["pck_crl_issuer_chain"] =
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
    assert!(Collateral::parse_json(&json.to_string()).is_err());
}

#[test]
fn a_missing_piece_of_collateral_is_missing() {
    let Some(dir) = case(UPTODATE) else { return };
    let text = std::fs::read_to_string(dir.join("collateral.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.as_object_mut().unwrap().remove("pck_crl");
    let e = Collateral::parse_json(&json.to_string()).unwrap_err();
    assert_eq!(
        e,
        cvm_attest::tdx::collateral::CollateralError::Missing("pck_crl".into())
    );
}

#[test]
fn pem_text_before_the_begin_line_is_allowed() {
    let Some(dir) = case("snp/snp-milan-v3-oak-oc-release") else {
        return;
    };
    let ask = std::fs::read(dir.join("certs/ask.pem")).unwrap();
    let mut with_preamble = b"Subject: SEV-Milan\nIssuer: ARK-Milan\n".to_vec();
    with_preamble.extend_from_slice(&ask);
    let a = cvm_attest::x509::Cert::parse_file(&ask, "ask").unwrap();
    let b = cvm_attest::x509::Cert::parse_file(&with_preamble, "ask").unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].der(), b[0].der());
}

#[test]
fn at_is_parsed_strictly() {
    assert!(Time::parse_rfc3339("2026-03-01T00:00:00Z").is_ok());
    assert!(Time::parse_rfc3339("2026-03-01").is_err());
}
