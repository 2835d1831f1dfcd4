//! `cvm verify` on real DCAP quotes: exit codes per failure kind, evidence detection,
//! reference values from `cvm measure --tee tdx`, event-log replay, refused options.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{case_fact, code, cvm, failed_with, stdout_json, temp_file, vectors, verdict_json};
use std::path::{Path, PathBuf};
use std::process::Output;

const UPTODATE: &str = "tdx/tdx-v4-phala-b0c06f-uptodate";
const AT: &str = "2025-07-01T00:00:00Z";

fn verify(case: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify".to_owned(),
        "--evidence".into(),
        case.join("quote.bin").display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    if case.join("collateral.json").is_file() {
        args.push("--collateral".into());
        args.push(case.join("collateral.json").display().to_string());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    cvm(&args)
}

fn case(rel: &str) -> Option<PathBuf> {
    vectors().map(|v| v.join(rel))
}

#[test]
fn pass_detected_and_json_verdict() {
    let Some(c) = case(UPTODATE) else { return };
    let out = verify(&c, &["--at", AT, "--no-reference"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v = verdict_json(&out);
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["tee"], "tdx");
    assert_eq!(v["claims"]["tcb"]["status"], "UpToDate");
    assert_eq!(v["claims"]["td"]["mr_td"], case_fact(&c, "mr_td"));
    assert_eq!(v["claims"]["pck"]["fmspc"], "B0C06F000000");
    // The same collateral as a directory of pieces gives the same verdict.
    let out = cvm(&[
        "verify",
        "--evidence",
        c.join("quote.bin").to_str().unwrap(),
        "--collateral",
        c.join("collateral").to_str().unwrap(),
        "--at",
        AT,
        "--no-reference",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(verdict_json(&out), v);
}

#[test]
fn exit_codes_per_failure_kind() {
    let Some(v) = vectors() else { return };
    // Stale collateral today: 4.
    let today = verify(
        &v.join(UPTODATE),
        &["--at", "2026-11-21T00:00:00Z", "--no-reference"],
    );
    assert!(failed_with(&today, 4).contains("expired"));
    // No collateral at all: 4, with the signatures still verified and reported.
    let nocoll = verify(
        &v.join("tdx/tdx-v4-gcp-00806f05-nocollateral"),
        &["--at", AT, "--no-reference"],
    );
    assert_eq!(code(&nocoll), 4);
    let j = verdict_json(&nocoll);
    let sig = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "quote.signature")
        .unwrap();
    assert_eq!(sig["outcome"], "pass");
    // A debug TD: policy, 5; allowed by a policy file, 0.
    let debug = v.join("tdx/tdx-v4-trustee-50806f-debug-td");
    let at = "2023-07-01T01:00:00Z";
    assert_eq!(code(&verify(&debug, &["--at", at, "--no-reference"])), 5);
    let allow = temp_file("tdx-allow-debug.toml", "allow_debug = true\n");
    let out = verify(
        &debug,
        &[
            "--at",
            at,
            "--no-reference",
            "--policy",
            allow.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    // A flipped MRTD bit: signature, 3. A truncated quote: malformed, 2.
    assert_eq!(
        code(&verify(
            &v.join("neg/tdx/tdx-neg-mrtd-bitflip"),
            &["--at", AT, "--no-reference"]
        )),
        3
    );
    let trunc = verify(
        &v.join("neg/tdx/tdx-neg-truncated"),
        &["--tee", "tdx", "--at", AT, "--no-reference"],
    );
    assert!(failed_with(&trunc, 2).contains("truncated"));
    // SWHardening needed (an SGX quote): rejected by the default policy, accepted by one
    // that names the status.
    let sgx = v.join("tdx/sgx-v3-phala-00a06711");
    assert_eq!(code(&verify(&sgx, &["--at", AT, "--no-reference"])), 5);
    let accept = temp_file(
        "tdx-accept.toml",
        "accepted_tcb_statuses = [\"UpToDate\", \"ConfigurationAndSWHardeningNeeded\"]\n",
    );
    let out = verify(
        &sgx,
        &[
            "--at",
            AT,
            "--no-reference",
            "--policy",
            accept.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let j = verdict_json(&out);
    assert_eq!(j["tee"], "sgx");
    assert_eq!(
        j["claims"]["tcb"]["advisory_ids"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
}

#[test]
fn reference_values_and_report_data() {
    let Some(c) = case(UPTODATE) else { return };
    let mrtd = case_fact(&c, "mr_td");
    let rtmr0 = case_fact(&c, "rtmr0");
    let rd = case_fact(&c, "report_data");
    let good = temp_file(
        "tdx-ref.toml",
        format!(
            "mrtd = [\"{}\", \"{mrtd}\"]\nrtmr0 = \"{rtmr0}\"\n",
            "00".repeat(48)
        ),
    );
    let out = verify(
        &c,
        &[
            "--at",
            AT,
            "--reference",
            good.to_str().unwrap(),
            "--report-data",
            &rd,
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let bad_rd = "11".repeat(64);
    let out = verify(
        &c,
        &["--at", AT, "--no-reference", "--report-data", &bad_rd],
    );
    assert!(failed_with(&out, 5).contains("reference.report_data"));

    // `cvm measure --tee tdx --format json` output is a reference: its MRTD and non-null
    // RTMRs are compared (here: a different image, so MRTD mismatches).
    let handoff = format!(
        r#"{{"format":"cvm-measurement/1","tee":"tdx","mrtd":"{}","rtmr":[null,null,null,null],"mrtd_order":"single-pass",
            "vcpus":1,"memory":0,"firmware":{{"path":"x","size":0,"sha256":""}}}}"#,
        "ab".repeat(48)
    );
    let h = temp_file(
        "tdx-handoff.json",
        handoff.replace("ab".repeat(48).as_str(), &mrtd),
    );
    let out = verify(&c, &["--at", AT, "--reference", h.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let h = temp_file("tdx-handoff-bad.json", handoff);
    let out = verify(&c, &["--at", AT, "--reference", h.to_str().unwrap()]);
    assert!(failed_with(&out, 5).contains("reference.mrtd"));
}

#[test]
fn event_log_replay_is_compared_with_the_rtmrs() {
    let Some(c) = case(UPTODATE) else { return };
    // A log whose RTMR 1 events cannot produce the quote's RTMR 1. The log states the
    // RTMR 1 its event gives: SHA-384(48 zero bytes || the digest), the extend of TDX
    // module's TDG.MR.RTMR.EXTEND.
    use sha2::{Digest, Sha384};
    let digest = [1u8; 48];
    let rtmr1 = Sha384::new()
        .chain_update([0u8; 48])
        .chain_update(digest)
        .finalize();
    let log_stating = |rtmr1: &str| {
        format!(
            r#"{{"format":"cvm-tdx-event-log/1","mrtd":"{}","rtmr":[null,{rtmr1},null,null],
            "events":[{{"rtmr":1,"type":"EV_EFI_BOOT_SERVICES_APPLICATION","digest":"{}","description":"kernel"}}]}}"#,
            "00".repeat(48),
            hex::encode(digest)
        )
    };
    let verify_with_log = |name: &str, rtmr1: &str| {
        let p = temp_file(name, log_stating(rtmr1));
        verify(
            &c,
            &[
                "--at",
                AT,
                "--no-reference",
                "--event-log",
                p.to_str().unwrap(),
            ],
        )
    };
    let check = |verdict: &serde_json::Value, name: &str| {
        verdict["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let out = verify_with_log("tdx-log.json", &format!("\"{}\"", hex::encode(rtmr1)));
    assert_eq!(code(&out), 5);
    let j = verdict_json(&out);
    let r1 = check(&j, "event_log.rtmr1");
    assert_eq!(r1["outcome"], "fail");
    let quote_rtmr1 = j["claims"]["td"]["rtmr"][1].as_str().unwrap();
    assert!(r1["reason"].as_str().unwrap().contains(quote_rtmr1));
    assert_eq!(check(&j, "event_log.rtmr0")["outcome"], "skipped");

    // A log that does not determine RTMR 1 (null: some of its inputs were not given to
    // cvm measure) is not replayed for it; one that contradicts itself is refused.
    let out = verify_with_log("tdx-log-partial.json", "null");
    let r1 = check(&verdict_json(&out), "event_log.rtmr1");
    assert_eq!(r1["outcome"], "skipped", "{r1}");
    let out = verify_with_log(
        "tdx-log-inconsistent.json",
        &format!("\"{}\"", "ff".repeat(48)),
    );
    assert!(failed_with(&out, 2).contains("do not replay to the RTMR 1"));
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let Some(c) = case(UPTODATE) else { return };
    // SNP options with a quote; TDX options with an SNP report.
    let out = verify(&c, &["--at", AT, "--no-reference", "--certs", "/tmp"]);
    assert!(failed_with(&out, 1).contains("--certs applies to --tee snp only, not --tee tdx"));
    // A collateral bundle missing a piece names it: collateral unavailable (4).
    let text = std::fs::read_to_string(c.join("collateral.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("pck_crl");
    let p = temp_file("tdx-coll-missing.json", v.to_string());
    let out = cvm(&[
        "verify",
        "--evidence",
        c.join("quote.bin").to_str().unwrap(),
        "--collateral",
        p.to_str().unwrap(),
        "--no-reference",
    ]);
    assert!(failed_with(&out, 4).contains("the collateral has no `pck_crl`"));
    // Not evidence at all.
    let junk = temp_file("junk.bin", b"not a quote");
    let out = cvm(&[
        "verify",
        "--evidence",
        junk.to_str().unwrap(),
        "--no-reference",
    ]);
    assert!(failed_with(&out, 2).contains("not an SEV-SNP report"));
}

/// `cvm verify` on several quotes with one collateral bundle, JSON.
fn batch(quotes: &[&Path], collateral: &Path) -> Output {
    let mut args: Vec<String> = vec!["verify".into()];
    for q in quotes {
        args.push("--evidence".into());
        args.push(q.display().to_string());
    }
    for a in [
        "--collateral",
        collateral.to_str().unwrap(),
        "--at",
        AT,
        "--no-reference",
        "--format",
        "json",
    ] {
        args.push(a.to_owned());
    }
    cvm(&args)
}

#[test]
fn a_batch_gives_every_verdict_and_the_worst_exit_code() {
    let Some(v) = vectors() else { return };
    let good = v.join(UPTODATE);
    let collateral = good.join("collateral.json");
    let q = good.join("quote.bin");
    let bad = v.join("neg/tdx/tdx-neg-mrtd-bitflip/quote.bin");
    let out = batch(&[&q, &bad], &collateral);
    assert_eq!(code(&out), 3);
    let j = stdout_json(&out);
    assert_eq!(j["verdict"], "fail");
    let verdicts = j["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0]["verdict"], "pass");
    assert!(
        verdicts[0]["evidence"]
            .as_str()
            .unwrap()
            .ends_with("uptodate/quote.bin")
    );
    assert_eq!(verdicts[1]["verdict"], "fail");
    assert_eq!(verdicts[1]["claims"]["tcb"]["status"], "UpToDate");
    // The same quote twice: the second verdict equals the first (remembered signature
    // verifications change nothing but the time taken).
    let out = batch(&[&q, &q], &collateral);
    assert_eq!(code(&out), 0);
    let j = stdout_json(&out);
    assert_eq!(j["verdicts"][0]["checks"], j["verdicts"][1]["checks"]);
}

#[test]
fn snp_options_are_refused_and_an_extra_root_is_an_anchor() {
    let Some(c) = case(UPTODATE) else { return };
    // SNP's revocation options are refused for a quote; --root is accepted (an extra
    // anchor beside the built-in one, which still verifies the real chain).
    let out = verify(&c, &["--at", AT, "--no-reference", "--no-crl"]);
    assert!(failed_with(&out, 1).contains("--no-crl applies to --tee snp only, not --tee tdx"));
    let root = cvm_root_pem();
    let out = verify(
        &c,
        &[
            "--at",
            AT,
            "--no-reference",
            "--root",
            root.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
}

/// Intel's root itself, as a file (an extra anchor that changes nothing).
fn cvm_root_pem() -> std::path::PathBuf {
    let root = vectors().unwrap().join("roots/intel/IntelSGXRootCA.pem");
    assert!(root.is_file(), "{}", root.display());
    root
}
