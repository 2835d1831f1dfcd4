//! Every TDX/SGX case in shared/vectors gives the verdict and TCB status that
//! results/GROUND_TRUTH.tsv records at its verification time, and is rejected as expired
//! today; every TDX negative fails, for the reason its `expected` names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::tdx::Verifier;
use cvm_attest::tdx::appraise::Policy;
use cvm_attest::tdx::claims::Claims;
use cvm_attest::tdx::collateral::TcbStatus;
use cvm_attest::tdx::pck::IntelRoot;
use cvm_attest::x509::Cert;
use cvm_attest::{Category, Outcome, Status, Time, Verdict};
use cvm_tests::{case_fact, case_time, failed, negatives, read_tsv, tdx_case, vectors};
use std::path::Path;

/// Accepts every TCB status but Revoked and does not require SEPT_VE_DISABLE: the
/// vectors assert authenticity and TCB status, not this project's default policy.
fn lenient() -> Policy {
    Policy {
        accepted_tcb_statuses: TcbStatus::ALL
            .into_iter()
            .filter(|s| *s != TcbStatus::Revoked)
            .collect(),
        require_sept_ve_disable: false,
        ..Policy::default()
    }
}

fn verify_with(dir: &Path, at: Time, policy: &Policy, root: &IntelRoot) -> Verdict<Claims> {
    let case = tdx_case(dir);
    Verifier {
        root,
        collateral: case.collateral.as_ref(),
        reference: None,
        policy,
        event_log: None,
        plan_log: None,
        cache: &cvm_attest::Cache::default(),
        at,
    }
    .verify(&case.quote)
}

fn verify(dir: &Path, at: Time, policy: &Policy) -> Verdict<Claims> {
    verify_with(dir, at, policy, &IntelRoot::builtin().unwrap())
}

fn failed_names(v: &Verdict<Claims>) -> Vec<&str> {
    v.failed_checks().map(|c| c.name.name()).collect()
}

/// The cryptographic checks every case passes at its time: PCK chain, QE report, binding
/// and quote signature.
const CRYPTO: [&str; 5] = [
    "pck.ca",
    "pck.leaf",
    "qe.report_signature",
    "qe.report_data",
    "quote.signature",
];

fn assert_crypto_ok(id: &str, v: &Verdict<Claims>) {
    for name in CRYPTO {
        let c = v.checks.iter().find(|c| c.name == name);
        assert_eq!(
            c.map(|c| c.outcome),
            Some(Outcome::Pass),
            "{id}: {name}: {c:?}"
        );
    }
}

/// The claims agree with the facts the curator recorded from the upstream sources.
fn assert_facts(id: &str, dir: &Path, claims: &Claims) {
    let fact = |k: &str| case_fact(dir, k);
    let mut compared = 0;
    let mut eq = |k: &str, got: Option<&str>| {
        if let (Some(want), Some(got)) = (fact(k), got) {
            assert_eq!(
                got.to_ascii_lowercase(),
                want.to_ascii_lowercase(),
                "{id}: {k}"
            );
            compared += 1;
        }
    };
    let td = claims.td.as_ref();
    eq("mr_td", td.map(|t| t.mr_td.as_str()));
    eq("rtmr0", td.map(|t| t.rtmr[0].as_str()));
    eq("td_attributes", td.map(|t| t.td_attributes.as_str()));
    eq("xfam", td.map(|t| t.xfam.as_str()));
    eq("mr_seam", td.map(|t| t.mr_seam.as_str()));
    eq("tee_tcb_svn", td.map(|t| t.tee_tcb_svn.as_str()));
    eq("tee_tcb_svn2", td.and_then(|t| t.tee_tcb_svn_2.as_deref()));
    eq("mr_servicetd", td.and_then(|t| t.mr_service_td.as_deref()));
    let e = claims.enclave.as_ref();
    eq("mr_enclave", e.map(|e| e.mr_enclave.as_str()));
    eq("mr_signer", e.map(|e| e.mr_signer.as_str()));
    let rd = td
        .map(|t| t.report_data.as_str())
        .or(e.map(|e| e.report_data.as_str()));
    eq("report_data", rd);
    let pck = claims.pck.as_ref();
    eq("fmspc", pck.map(|p| p.fmspc.as_str()));
    eq("pck_cpusvn", pck.map(|p| p.cpu_svn.as_str()));
    let pcesvn = pck.map(|p| p.pce_svn.to_string());
    eq("pck_pcesvn", pcesvn.as_deref());
    let version = format!("quote_v{}", claims.version);
    assert!(
        std::fs::read_to_string(dir.join("case.json"))
            .unwrap()
            .contains(&version),
        "{id}: not a {version}"
    );
    assert!(compared >= 6, "{id}: only {compared} facts compared");
}

#[test]
fn every_tdx_case_matches_the_ground_truth() {
    let Some(vectors) = vectors() else { return };
    let rows = read_tsv(&vectors.join("results/GROUND_TRUTH.tsv"));
    let mut n = 0;
    for row in rows
        .iter()
        .filter(|r| r["tech"] == "tdx" && r["kind"] == "positive")
    {
        let id = row["case"].as_str();
        let dir = vectors.join("tdx").join(id);
        let expected = row["expected"].as_str();
        let at = Time::parse_rfc3339(&row["verify_time"]).unwrap();
        assert_eq!(at, case_time(&dir), "{id}");
        let v = verify(&dir, at, &lenient());
        assert_crypto_ok(id, &v);
        assert_facts(id, &dir, v.claims.as_ref().unwrap());
        let status = v.claims.as_ref().and_then(|c| c.tcb.as_ref());
        if let Some(rest) = expected.strip_prefix("PASS status=") {
            let (want, advisories) = rest.split_once(" advisories=").unwrap();
            assert_eq!(v.verdict, Status::Pass, "{id}: {:#?}", failed(&v));
            let s = &status.unwrap().status;
            assert_eq!(s.status.name(), want, "{id}");
            let want_ids: Vec<&str> = advisories
                .trim_matches(['[', ']'])
                .split(',')
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(s.advisory_ids, want_ids, "{id}");
            // The default policy accepts UpToDate only, and says why otherwise.
            let d = verify(&dir, at, &Policy::default());
            if want == "UpToDate" {
                assert_eq!(d.verdict, Status::Pass, "{id}: {:#?}", failed(&d));
            } else {
                assert_eq!(failed_names(&d), ["tcb.status"], "{id}");
                assert_eq!(d.failure(), Some(Category::Policy));
            }
        } else if expected.starts_with("crypto-only PASS") {
            assert_eq!(failed_names(&v), ["collateral"], "{id}: {:#?}", failed(&v));
            assert_eq!(v.failure(), Some(Category::Collateral));
            assert!(status.is_none());
        } else if expected.starts_with("FAIL No matching TCB level") {
            assert_eq!(
                failed_names(&v),
                ["tcb.platform"],
                "{id}: {:#?}",
                failed(&v)
            );
            assert!(failed(&v)[0].contains("no TCB level matches"));
        } else if expected.starts_with("FAIL (policy) Debug TD") {
            assert_eq!(failed_names(&v), ["policy.debug"], "{id}");
            assert_eq!(status.unwrap().status.status, TcbStatus::UpToDate, "{id}");
            let debug = Policy {
                allow_debug: true,
                ..lenient()
            };
            assert_eq!(verify(&dir, at, &debug).verdict, Status::Pass, "{id}");
        } else {
            panic!("{id}: no rule for expected {expected:?}");
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} TDX cases");
}

#[test]
fn every_tdx_case_is_rejected_as_expired_today() {
    let Some(vectors) = vectors() else { return };
    // The date of writing; any later date only moves further past every window.
    let today = Time::parse_rfc3339("2026-11-21T00:00:00Z").unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(vectors.join("tdx")).unwrap() {
        let dir = entry.unwrap().path();
        let id = dir.file_name().unwrap().to_string_lossy().into_owned();
        let v = verify(&dir, today, &lenient());
        assert_eq!(v.verdict, Status::Fail, "{id}");
        // Stale collateral; and where a certificate has expired too (the 2023 cases' old
        // TCB signing certificate), an expired certificate, which is a chain failure.
        // Failures the case has at its own time too are not the date's doing.
        let own = verify(&dir, case_time(&dir), &lenient());
        let own = failed_names(&own);
        for c in v.failed_checks().filter(|c| !own.contains(&c.name.name())) {
            let stale = c.category == Category::Collateral
                || (c.category == Category::Signature && c.reason.contains("expired at"));
            assert!(stale, "{id}: {} failed: {}", c.name, c.reason);
        }
        let f = failed(&v);
        if dir.join("collateral.json").is_file() {
            // The PCK CRL is always judged; the TCB Info and QE Identity only once their
            // signer verified (an expired signer stops there).
            assert!(
                f.iter()
                    .any(|c| c.starts_with("collateral.pck_crl.validity") && c.contains("expired")),
                "{id}: PCK CRL not expired: {f:#?}"
            );
            assert!(
                f.iter()
                    .any(|c| c.starts_with("collateral.tcb_info.") && c.contains("expired")),
                "{id}: TCB Info not expired: {f:#?}"
            );
        } else {
            assert!(
                f.iter().any(|c| c.starts_with("collateral: no collateral")),
                "{id}"
            );
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} TDX cases");
}

/// The checks that must fail for each `expected` text of the TDX negatives.
fn must_fail(expected: &str) -> &'static [&'static str] {
    let rules: [(&str, &[&str]); 13] = [
        ("REJECT quote signature", &["quote.signature"]),
        (
            "REJECT QE report-data binding / quote signature",
            &["qe.report_data", "quote.signature"],
        ),
        ("REJECT QE report-data binding", &["qe.report_data"]),
        ("REJECT QE report signature", &["qe.report_signature"]),
        (
            "REJECT collateral not yet valid",
            &[
                "collateral.tcb_info.validity",
                "collateral.qe_identity.validity",
            ],
        ),
        (
            "REJECT collateral expired",
            &[
                "collateral.tcb_info.validity",
                "collateral.qe_identity.validity",
            ],
        ),
        ("REJECT FMSPC mismatch", &["tcb.fmspc"]),
        ("REJECT PCK chain does not reach trusted root", &["pck.ca"]),
        ("REJECT PCK chain", &["pck.leaf"]),
        ("REJECT CRL signature", &["collateral.pck_crl"]),
        (
            "REJECT QE Identity signature",
            &["collateral.qe_identity.signature"],
        ),
        (
            "REJECT TCB Info signature",
            &["collateral.tcb_info.signature"],
        ),
        ("REJECT malformed", &["quote.parse"]),
    ];
    rules
        .iter()
        .find(|(k, _)| expected.starts_with(k))
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no rule for expected {expected:?}"))
}

#[test]
fn every_tdx_negative_fails_for_its_reason() {
    let Some(vectors) = vectors() else { return };
    let list = negatives(&vectors, "tdx");
    for neg in &list {
        let (id, expected) = (&neg.id, neg.expected.as_str());
        let root = match std::fs::read(neg.dir.join("wrong_root.der")) {
            Ok(der) => IntelRoot::from_cert(Cert::from_der(&der, "wrong root").unwrap()),
            Err(_) => IntelRoot::builtin().unwrap(),
        };
        let v = verify_with(&neg.dir, neg.at, &lenient(), &root);
        assert_eq!(v.verdict, Status::Fail, "{id} passed");
        let names = failed_names(&v);
        for name in must_fail(expected) {
            assert!(
                names.contains(name),
                "{id} ({expected}): {name} did not fail: {:#?}",
                failed(&v)
            );
        }
    }
    assert!(list.len() >= 25, "only {} TDX negatives", list.len());
}
