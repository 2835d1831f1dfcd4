//! `cvm verify` on real SNP vectors: exit codes per failure kind, reference hand-off from
//! `cvm measure`, policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{case_fact, code, cvm, failed_with, stdout_json, temp_file, vectors};
use std::path::Path;
use std::process::Output;

fn verify(case: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify".to_owned(),
        "--tee".into(),
        "snp".into(),
        "--evidence".into(),
        case.join("report.bin").display().to_string(),
        "--certs".into(),
        case.join("certs").display().to_string(),
        "--at".into(),
        "2026-03-01T00:00:00Z".into(),
        // The corpus has no AMD CRLs.
        "--no-crl".into(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    cvm(&args)
}

#[test]
fn pass_with_reference_values_and_exit_codes_per_failure() {
    let Some(v) = vectors() else { return };
    let case = v.join("snp/snp-milan-v3-oak-oc-release");
    let m = case_fact(&case, "measurement");
    let rd = case_fact(&case, "report_data");

    // TOML reference values with the right measurement (one of two).
    let good = temp_file(
        "good.toml",
        format!(
            "measurement = [\"{}\", \"{m}\"]\nreport_data = \"{rd}\"\n",
            "00".repeat(48)
        ),
    );
    let out = verify(&case, &["--reference", good.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let batch = stdout_json(&out);
    assert_eq!(batch["schema"], 1);
    assert_eq!(batch["verdict"], "pass");
    let j = &batch["verdicts"][0];
    assert_eq!(j["verdict"], "pass");
    assert_eq!(j["product"], "Milan");
    assert_eq!(j["claims"]["measurement"], m.as_str());

    // cvm measure's JSON as reference values: a different image fails the policy (5).
    let handoff = temp_file(
        "measure.json",
        format!(
            r#"{{"format": "cvm-measurement/1", "tee": "snp", "measurement": "{}", "vcpus": 1, "vmm": "qemu", "firmware": {{"path": "x", "sha256": "00", "size": 1}}}}"#,
            "ab".repeat(48)
        ),
    );
    let out = verify(&case, &["--reference", handoff.to_str().unwrap()]);
    assert_eq!(code(&out), 5);
    let j = &stdout_json(&out)["verdicts"][0];
    assert_eq!(j["verdict"], "fail");
    let failed: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["reference.measurement"]);

    // `cvm measure --tee tdx` output is not an SNP reference: malformed input (2),
    // naming the TEE.
    let tdx = temp_file(
        "tdx.json",
        format!(
            r#"{{"format": "cvm-measurement/1", "tee": "tdx", "mrtd": "{}", "rtmr": [null, null, null, null], "firmware": {{"path": "x", "sha256": "00", "size": 1}}}}"#,
            "ab".repeat(48)
        ),
    );
    let out = verify(&case, &["--reference", tdx.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("for \"tdx\", not \"snp\""));

    // A wrong nonce: policy (5).
    let out = verify(
        &case,
        &["--no-reference", "--report-data", &"11".repeat(64)],
    );
    assert_eq!(code(&out), 5);

    // A policy demanding newer microcode than the report's: policy (5).
    let strict = temp_file("strict.toml", "[min_tcb]\nucode = 255\n");
    let out = verify(
        &case,
        &["--no-reference", "--policy", strict.to_str().unwrap()],
    );
    assert_eq!(code(&out), 5);
    // A policy with a typo is a malformed input (2), not a silent default.
    let typo = temp_file("typo.toml", "allow_debugg = true\n");
    let out = verify(
        &case,
        &["--no-reference", "--policy", typo.to_str().unwrap()],
    );
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_debugg"));

    // Neither --reference nor --no-reference: usage (1).
    let out = verify(&case, &[]);
    assert_eq!(code(&out), 1);
}

#[test]
fn signature_malformed_and_missing_collateral_have_their_own_codes() {
    let Some(v) = vectors() else { return };
    let neg = v.join("neg/snp");
    assert_eq!(
        code(&verify(
            &neg.join("snp-neg-measurement-bitflip"),
            &["--no-reference"]
        )),
        3
    );
    assert_eq!(
        code(&verify(
            &neg.join("snp-neg-truncated-1183"),
            &["--no-reference"]
        )),
        2
    );
    assert_eq!(
        code(&verify(
            &neg.join("snp-neg-unsigned-tail-nonzero"),
            &["--no-reference"]
        )),
        2
    );
    // No VCEK supplied: collateral unavailable (4).
    let case = v.join("snp/snp-genoa-v5-oak");
    let empty = std::env::temp_dir().join(format!("cvm-verify-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = cvm(&[
        "verify".as_ref(),
        "--evidence".as_ref(),
        case.join("report.bin").as_os_str(),
        "--certs".as_ref(),
        empty.as_os_str(),
        "--at".as_ref(),
        "2026-03-01T00:00:00Z".as_ref(),
        "--no-crl".as_ref(),
        "--no-reference".as_ref(),
    ]);
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no VCEK certificate"), "{err}");
}

#[test]
fn leniencies_of_the_command_line_are_closed() {
    let Some(v) = vectors() else { return };
    let case = v.join("snp/snp-milan-v3-oak-oc-release");
    let rd = case_fact(&case, "report_data");
    // --report-data may not contradict the reference file: usage (1).
    let file = temp_file(
        "rd.toml",
        format!("skip_measurement = true\nreport_data = \"{rd}\"\n"),
    );
    let file = file.to_str().unwrap();
    let other = "11".repeat(64);
    let out = verify(&case, &["--reference", file, "--report-data", &other]);
    assert!(failed_with(&out, 1).contains("--report-data differs"));
    // The same value is no contradiction.
    let out = verify(&case, &["--reference", file, "--report-data", &rd]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    // --crl and --no-crl contradict each other.
    let crl = temp_file("no.crl", b"x");
    let out = verify(&case, &["--no-reference", "--crl", crl.to_str().unwrap()]);
    assert_eq!(code(&out), 1);

    // Two files for one role, or a role's file with an undocumented suffix: malformed (2).
    for (a, b) in [("vcek.der", "vcek.pem"), ("vcek.der", "vcek.der.bak")] {
        let dir = std::env::temp_dir().join(format!("cvm-certs-{}-{b}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["ask.pem", "ark.pem"] {
            std::fs::copy(case.join("certs").join(name), dir.join(name)).unwrap();
        }
        std::fs::copy(case.join("certs/vcek.der"), dir.join(a)).unwrap();
        std::fs::copy(case.join("certs/vcek.der"), dir.join(b)).unwrap();
        let out = cvm(&[
            "verify".as_ref(),
            "--evidence".as_ref(),
            case.join("report.bin").as_os_str(),
            "--certs".as_ref(),
            dir.as_os_str(),
            "--no-crl".as_ref(),
            "--no-reference".as_ref(),
        ]);
        assert!(failed_with(&out, 2).contains(b), "{b}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // A DCAP quote cut to an SNP report's length is still a quote: malformed (2), not
    // a usage error about --certs.
    let quote = std::fs::read(v.join("tdx/tdx-v4-phala-b0c06f-uptodate/quote.bin")).unwrap();
    let cut = temp_file("cut-quote.bin", &quote[..1184]);
    let out = cvm(&[
        "verify".as_ref(),
        "--evidence".as_ref(),
        cut.as_os_str(),
        "--no-reference".as_ref(),
    ]);
    assert!(failed_with(&out, 2).contains("quote.parse"));

    // Evidence that never ends is refused at its limit, not read until memory runs out.
    let out = cvm(&[
        "verify",
        "--evidence",
        "/dev/zero",
        "--no-reference",
        "--certs",
        "/nonexistent",
    ]);
    assert!(failed_with(&out, 2).contains("larger than 1048576 bytes"));
}

#[test]
fn a_closed_pipe_keeps_the_verdicts_code_and_logs_show_each_check() {
    use std::process::{Command, Stdio};
    let Some(v) = vectors() else { return };
    let case = v.join("snp/snp-milan-v3-oak-oc-release");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "verify",
            "--evidence",
            &case.join("report.bin").display().to_string(),
            "--certs",
            &case.join("certs").display().to_string(),
            "--at",
            "2026-03-01T00:00:00Z",
            "--no-reference",
            "--format",
            "json",
        ]
        .map(str::to_owned)
        .to_vec();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    // The reader closes the pipe before cvm writes: cvm ends quietly with the
    // verdict's own code (4: no CRL), not as an internal error.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args(args(&[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    // -vv logs every check as it is decided, and the verdict; stdout stays JSON.
    let out = cvm(&args(&["--no-crl", "-vv"]));
    assert_eq!(code(&out), 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("report.signature Pass"), "{err}");
    assert!(err.contains("snp verdict Pass"), "{err}");
    assert!(
        !err.contains("\u{1b}["),
        "no colour when stderr is not a terminal"
    );
    stdout_json(&out);
}
