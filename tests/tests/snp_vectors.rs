//! Every SNP case in shared/vectors passes at its verification time; every SNP negative
//! fails, for the reason its `expected` names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::snp::Verifier;
use cvm_attest::snp::appraise::Policy;
use cvm_attest::snp::certs::Roots;
use cvm_attest::snp::claims::Claims;
use cvm_attest::{Cache, Status, Time, Verdict};
use cvm_tests::{case_time, failed, negatives, read_tsv, snp_case, vectors};

/// The default policy, but for revocation: the corpus carries no AMD CRLs (the
/// vectors' README), so its reports are verified as `cvm verify --no-crl` does.
fn no_crl() -> Policy {
    Policy {
        allow_unchecked_revocation: true,
        ..Policy::default()
    }
}

fn verify(dir: &std::path::Path, at: Time) -> Verdict<Claims> {
    verify_with(dir, at, &no_crl())
}

fn verify_with(dir: &std::path::Path, at: Time, policy: &Policy) -> Verdict<Claims> {
    let case = snp_case(dir);
    Verifier {
        roots: &Roots::amd().unwrap(),
        supplied: &case.certs,
        crl: None,
        reference: None,
        policy,
        at,
        cache: &Cache::default(),
    }
    .verify(&case.report)
}

#[test]
fn every_snp_case_passes_at_its_time() {
    let Some(vectors) = vectors() else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(vectors.join("snp")).unwrap() {
        let dir = entry.unwrap().path();
        // The vectors assert authenticity (signature, chain, TCB and chip match); one
        // of them is a debug guest, which the default policy rightly refuses.
        let lenient = Policy {
            allow_debug: true,
            ..no_crl()
        };
        let v = verify_with(&dir, case_time(&dir), &lenient);
        assert_eq!(
            v.verdict,
            Status::Pass,
            "{}: {:#?}",
            dir.display(),
            failed(&v)
        );
        assert!(v.product.is_some());
        let v = verify(&dir, case_time(&dir));
        let debug = v.claims.as_ref().unwrap().policy.debug;
        let expect: Vec<String> = if debug {
            vec!["policy.debug: the guest policy allows debugging (the host can read guest memory); policy forbids it".into()]
        } else {
            vec![]
        };
        assert_eq!(failed(&v), expect, "{}", dir.display());
        // Under the default policy, an unchecked revocation fails the verdict.
        let v = verify_with(&dir, case_time(&dir), &Policy::default());
        let names: Vec<&str> = v.failed_checks().map(|c| c.name.name()).collect();
        let mut want = vec!["chain.crl"];
        if debug {
            want.push("policy.debug");
        }
        assert_eq!(names, want, "{}", dir.display());
        n += 1;
    }
    assert!(n >= 12, "only {n} SNP cases");
}

#[test]
fn the_vlek_is_expired_today() {
    let Some(vectors) = vectors() else { return };
    let dir = vectors.join("snp/snp-milan-v3-vlek-aws");
    let v = verify(&dir, Time::parse_rfc3339("2026-11-21T00:00:00Z").unwrap());
    assert_eq!(v.verdict, Status::Fail);
    let f = failed(&v);
    assert!(
        f.iter()
            .any(|c| c.starts_with("chain.leaf.signature.validity: VLEK: expired")),
        "{f:#?}"
    );
}

#[test]
fn a_vlek_without_its_asvk_is_missing_collateral() {
    let Some(vectors) = vectors() else { return };
    let dir = vectors.join("snp/snp-milan-v3-vlek-aws");
    let mut case = snp_case(&dir);
    case.certs.asvk = None;
    let v = Verifier {
        roots: &Roots::amd().unwrap(),
        supplied: &case.certs,
        crl: None,
        reference: None,
        policy: &no_crl(),
        at: case_time(&dir),
        cache: &Cache::default(),
    }
    .verify(&case.report);
    assert_eq!(v.failure(), Some(cvm_attest::Category::Collateral));
    assert!(
        failed(&v)[0].starts_with("chain.intermediate: no ASVK"),
        "{:#?}",
        failed(&v)
    );
}

/// The checks that must fail for each `expected` text of negatives.json.
fn must_fail(expected: &str) -> Vec<&'static str> {
    let rules: [(&str, &[&str]); 11] = [
        ("REJECT malformed", &["report.parse"]),
        ("report signature", &["report.signature"]),
        ("chip_id != hwID", &["leaf.chip_id"]),
        ("TCB != VCEK", &["leaf.tcb"]),
        ("signature encoding", &["report.structure"]),
        ("strict: reserved must be zero", &["report.structure"]),
        ("unsupported algo", &["report.structure"]),
        ("VCEK not signed by ASK", &["chain.leaf.signature"]),
        ("REJECT chain", &["chain."]),
        ("VCEK signature (chain)", &["chain.leaf.signature"]),
        ("VLEK expired", &["chain.leaf.signature.validity"]),
    ];
    let names: Vec<&str> = rules
        .iter()
        .filter(|(k, _)| expected.contains(k))
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    assert!(!names.is_empty(), "no rule for expected {expected:?}");
    names
}

#[test]
fn every_snp_negative_fails_for_its_reason() {
    let Some(vectors) = vectors() else { return };
    let list = negatives(&vectors, "snp");
    for neg in &list {
        let (id, expected) = (&neg.id, neg.expected.as_str());
        let v = verify(&neg.dir, neg.at);
        assert_eq!(v.verdict, Status::Fail, "{id} passed");
        let f = failed(&v);
        for name in must_fail(expected) {
            assert!(
                f.iter().any(|c| c.starts_with(name)),
                "{id} ({expected}): no failed {name}* check in {f:#?}"
            );
        }
    }
    assert!(list.len() >= 30, "only {} SNP negatives", list.len());
}

/// Every SNP row of results/GROUND_TRUTH.tsv: cvm's verdict at the row's time is the
/// curated one (`crosscheck`), including the rows where snpguest and the sev crate, lax in
/// the ways the vectors' README lists, accept what must be rejected.
#[test]
fn every_snp_row_of_the_ground_truth_matches() {
    let Some(vectors) = vectors() else { return };
    let rows = read_tsv(&vectors.join("results/GROUND_TRUTH.tsv"));
    let (mut n, mut stricter) = (0, 0);
    for row in rows.iter().filter(|r| r["tech"] == "snp") {
        let id = row["case"].as_str();
        let dir = match row["kind"].as_str() {
            "positive" => vectors.join("snp").join(id),
            _ => vectors.join("neg/snp").join(id),
        };
        let at = Time::parse_rfc3339(&row["verify_time"]).unwrap();
        // The table judges authenticity; the debug guest's policy is the appraisal's
        // business (every_snp_case_passes_at_its_time).
        let lenient = Policy {
            allow_debug: true,
            ..no_crl()
        };
        let v = verify_with(&dir, at, &lenient);
        let want = match row["crosscheck"].as_str() {
            "PASS" => Status::Pass,
            "FAIL" => Status::Fail,
            other => panic!("{id}: crosscheck {other:?}"),
        };
        assert_eq!(v.verdict, want, "{id}: {:#?}", failed(&v));
        if want == Status::Fail && row["refs"].contains("snpguest=PASS") {
            stricter += 1;
        }
        n += 1;
    }
    assert!(n >= 40, "only {n} SNP rows");
    assert!(stricter >= 4, "only {stricter} rows where snpguest is lax");
}
