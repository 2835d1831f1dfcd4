//! Collateral given as pieces (a directory, as Intel PCS serves them) verifies exactly as
//! the same collateral given as one JSON bundle; PCS responses are verified over the
//! signed value's exact bytes; the trustee case's real PCS responses are read as served.
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
use cvm_attest::tdx::collateral::{Collateral, TcbStatus};
use cvm_attest::tdx::pck::IntelRoot;
use cvm_attest::{Outcome, Time, Verdict};
use cvm_tests::{case_time, vectors};
use std::path::{Path, PathBuf};

fn verify(quote: &[u8], collateral: &Collateral, at: Time) -> Verdict<Claims> {
    Verifier {
        root: &IntelRoot::builtin().unwrap(),
        collateral: Some(collateral),
        reference: None,
        policy: &Policy::default(),
        event_log: None,
        plan_log: None,
        cache: &cvm_attest::Cache::default(),
        at,
    }
    .verify(quote)
}

/// The files of a case's `collateral/` directory.
fn pieces(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("collateral"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn from_pieces(files: &[(String, Vec<u8>)]) -> Collateral {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    Collateral::from_pieces(&refs).unwrap().0
}

/// The cases that have both forms of their collateral.
fn cases() -> Vec<PathBuf> {
    let Some(v) = vectors() else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(v.join("tdx"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("collateral.json").is_file() && d.join("collateral").is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn json(v: &Verdict<Claims>) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

fn check<'v>(v: &'v Verdict<Claims>, name: &str) -> Option<&'v cvm_attest::Check> {
    v.checks.iter().find(|c| c.name == name)
}

/// Replaces `piece.json` and `piece.sig.bin` by an Intel PCS response carrying `key`,
/// with the signed value written by `value` from the exact signed text.
fn as_pcs_response(
    files: &[(String, Vec<u8>)],
    piece: &str,
    key: &str,
    value: impl Fn(&str) -> String,
) -> Vec<(String, Vec<u8>)> {
    let body = |n: &str| files.iter().find(|(f, _)| f == n).unwrap().1.clone();
    let signed = String::from_utf8(body(&format!("{piece}.json"))).unwrap();
    let sig = hex::encode(body(&format!("{piece}.sig.bin")));
    let response = format!(r#"{{"{key}":{},"signature":"{sig}"}}"#, value(&signed));
    files
        .iter()
        .filter(|(n, _)| *n != format!("{piece}.sig.bin"))
        .map(|(n, b)| {
            if *n == format!("{piece}.json") {
                (n.clone(), response.clone().into_bytes())
            } else {
                (n.clone(), b.clone())
            }
        })
        .collect()
}

#[test]
fn pieces_verify_exactly_as_the_bundle() {
    let cases = cases();
    if !cvm_tests::present(!cases.is_empty(), "no TDX case with collateral pieces") {
        return;
    }
    let mut passed = 0;
    for dir in &cases {
        let quote = std::fs::read(dir.join("quote.bin")).unwrap();
        let bundle =
            Collateral::parse_json(&std::fs::read_to_string(dir.join("collateral.json")).unwrap())
                .unwrap();
        let at = case_time(dir);
        let verdict = verify(&quote, &bundle, at);
        passed += usize::from(
            verdict
                .claims
                .as_ref()
                .and_then(|c| c.tcb.as_ref())
                .is_some(),
        );
        let expected = json(&verdict);
        let files = pieces(dir);
        assert_eq!(
            json(&verify(&quote, &from_pieces(&files), at)),
            expected,
            "{}",
            dir.display()
        );
        // The same signed items as PCS responses, as served.
        let pcs = as_pcs_response(&files, "tcb_info", "tcbInfo", str::to_owned);
        let pcs = as_pcs_response(&pcs, "qe_identity", "enclaveIdentity", str::to_owned);
        assert_eq!(
            json(&verify(&quote, &from_pieces(&pcs), at)),
            expected,
            "{} (PCS responses)",
            dir.display()
        );
    }
    // Not vacuous: most cases get as far as a TCB status.
    assert!(passed >= cases.len() / 2, "{passed} of {}", cases.len());
}

/// A PCS response whose value was re-serialised (one space added) no longer verifies:
/// the signature is checked over the value's bytes as served, not over a re-encoding.
#[test]
fn a_reformatted_pcs_response_fails_its_signature() {
    let first = cases().into_iter().next();
    if !cvm_tests::present(first.is_some(), "no TDX case with collateral pieces") {
        return;
    }
    let Some(dir) = first else { return };
    let quote = std::fs::read(dir.join("quote.bin")).unwrap();
    let files = pieces(&dir);
    let spaced = as_pcs_response(&files, "tcb_info", "tcbInfo", |v| v.replacen(':', ": ", 1));
    let v = verify(&quote, &from_pieces(&spaced), case_time(&dir));
    assert_eq!(
        check(&v, "collateral.tcb_info.signature").map(|c| c.outcome),
        Some(Outcome::Fail)
    );
}

#[test]
fn a_missing_piece_is_named() {
    let first = cases().into_iter().next();
    if !cvm_tests::present(first.is_some(), "no TDX case with collateral pieces") {
        return;
    }
    let Some(dir) = first else { return };
    let files = pieces(&dir);
    for missing in [
        "pck_crl.der",
        "tcb_signing_chain.pem",
        "qe_identity.sig.bin",
    ] {
        let rest: Vec<(&str, &[u8])> = files
            .iter()
            .filter(|(n, _)| n != missing)
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let err = Collateral::from_pieces(&rest).unwrap_err().to_string();
        assert!(err.contains(missing), "{missing}: {err}");
    }
}

/// The trustee case ships Intel PCS's real responses (TCB Info and QE Identity for FMSPC
/// 00A06D080000, October 2025) without CRLs. Read as served and signed by the TCB signing
/// chain of another case of the same period, both signatures verify over the exact bytes,
/// and the TCB evaluation gives the status the vectors' curator worked out (OutOfDate:
/// PCESVN 11 below the required 13). The CRLs come from another case of another period,
/// so the verdict still fails, on their dates.
#[test]
fn the_trustee_pcs_responses_verify_as_served() {
    let Some(v) = vectors() else { return };
    let dir = v.join("tdx/tdx-v4-trustee-00a06d08-nocollateral");
    let raw = dir.join("collateral/raw");
    // A case whose TCB signing certificate is the 2025-2032 one.
    let donor = cases()
        .into_iter()
        .find(|d| {
            let chain = std::fs::read_to_string(d.join("collateral/tcb_signing_chain.pem"));
            let cert = cvm_attest::x509::Cert::parse_file(chain.unwrap().as_bytes(), "chain");
            cert.unwrap()[0]
                .valid_at(Time::parse_rfc3339("2025-11-01T00:00:00Z").unwrap())
                .is_ok()
        })
        .expect("a case with the 2025 TCB signing certificate");
    let mut files: Vec<(String, Vec<u8>)> = pieces(&donor)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("tcb_info") && !n.starts_with("qe_identity"))
        .collect();
    files.push((
        "tcb_info.json".into(),
        std::fs::read(raw.join("tcbInfo.json")).unwrap(),
    ));
    files.push((
        "qe_identity.json".into(),
        std::fs::read(raw.join("enclaveIdentity.json")).unwrap(),
    ));
    let quote = std::fs::read(dir.join("quote.bin")).unwrap();
    let at = Time::parse_rfc3339("2025-11-01T00:00:00Z").unwrap();
    let verdict = verify(&quote, &from_pieces(&files), at);
    for name in [
        "collateral.tcb_info.signature",
        "collateral.qe_identity.signature",
    ] {
        assert_eq!(
            check(&verdict, name).map(|c| c.outcome),
            Some(Outcome::Pass),
            "{name}: {:?}",
            check(&verdict, name)
        );
    }
    let tcb = verdict.claims.as_ref().and_then(|c| c.tcb.as_ref());
    assert_eq!(
        tcb.map(|t| t.status.status),
        Some(TcbStatus::OutOfDate),
        "{tcb:?}"
    );
}
