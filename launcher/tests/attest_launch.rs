//! `cvm launch --attest` on this machine, for real: the built-in guest under `--tee none`
//! delivers real evidence from ../shared/vectors (`cvm.test=evidence:TYPE` prints its
//! initrd as the evidence line), and the host verifies it. The signature and chain
//! checks pass; the nonce binding and the missing reference values fail, with the
//! policy-rejected exit code. Malformed, oversized and missing evidence give clear
//! errors and the guest-failed code, and the VM is always torn down.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, have_kvm, stdout_json, temp_file, vectors};
use sha2::{Digest, Sha512};
use std::path::PathBuf;

const POLICY_REJECTED: i32 = 5;
const GUEST_FAILED: i32 = 8;

fn builtin() -> String {
    PathBuf::from(env!("OUT_DIR"))
        .join("builtin.bin")
        .display()
        .to_string()
}

/// `cvm --format json launch --tee none --kernel (built-in) --initrd INITRD --cmdline
/// CMDLINE --attest EXTRA`: exit code, report, stderr.
fn attest(initrd: &str, cmdline: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let kernel = builtin();
    let mut args = vec![
        "--format",
        "json",
        "launch",
        "--tee",
        "none",
        "--kernel",
        &kernel,
        "--initrd",
        initrd,
        "--cmdline",
        cmdline,
        "--serial",
        "none",
        "--timeout",
        "60s",
        "--attest",
    ];
    args.extend_from_slice(extra);
    let out = cvm(&args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), stdout_json(&out), err)
}

fn check<'v>(verdict: &'v serde_json::Value, name: &str) -> &'v str {
    verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))["outcome"]
        .as_str()
        .unwrap()
}

#[test]
fn a_real_snp_report_is_verified_and_fails_only_on_binding_and_references() {
    if !have_kvm() {
        return;
    }
    let Some(v) = vectors() else { return };
    let case = v.join("snp/snp-milan-v2-gosevguest");
    let out = temp_file("attest-evidence.bin", b"");
    let nonce = "11".repeat(32);
    let (code, json, err) = attest(
        case.join("report.bin").to_str().unwrap(),
        "cvm.test=evidence:snp",
        &[
            "--certs",
            case.join("certs").to_str().unwrap(),
            "--no-crl",
            "--nonce",
            &nonce,
            "--after-attest",
            "stop",
            "--evidence-out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, POLICY_REJECTED, "{err}");
    let a = &json["attest"];
    assert_eq!(a["nonce"], nonce.as_str());
    // The binding the guest should have put in REPORT_DATA: SHA-512(label || nonce).
    let mut h = Sha512::new();
    h.update(b"cvm-evidence-nonce/1");
    h.update([0x11u8; 32]);
    assert_eq!(a["report_data"], hex::encode(h.finalize()));
    assert_eq!(a["evidence"], "snp");
    let v = &a["verdict"];
    assert_eq!(v["verdict"], "fail");
    for passed in [
        "report.signature",
        "chain.root",
        "chain.leaf.signature",
        "leaf.chip_id",
    ] {
        assert_eq!(check(v, passed), "pass", "{passed}");
    }
    assert_eq!(check(v, "reference.report_data"), "fail");
    assert_eq!(check(v, "launch.reference"), "fail");
    assert_eq!(json["stop"]["reason"], "attested");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(case.join("report.bin")).unwrap()
    );
    assert!(err.contains("verification failed"), "{err}");
}

#[test]
fn with_after_attest_run_the_verdict_comes_while_the_guest_runs_on() {
    if !have_kvm() {
        return;
    }
    let Some(v) = vectors() else { return };
    let case = v.join("snp/snp-milan-v2-gosevguest");
    // The built-in guest stops by itself after the line; the verdict was said before.
    let (code, json, err) = attest(
        case.join("report.bin").to_str().unwrap(),
        "cvm.test=evidence:snp",
        &["--certs", case.join("certs").to_str().unwrap(), "--no-crl"],
    );
    assert_eq!(code, POLICY_REJECTED, "{err}");
    assert!(
        err.contains("cvm: attestation verdict: fail: verification failed"),
        "{err}"
    );
    assert_eq!(json["stop"]["reason"], "debug-exit");
    assert_eq!(json["attest"]["verdict"]["verdict"], "fail");
}

#[test]
fn a_real_tdx_quote_is_verified_with_its_collateral() {
    if !have_kvm() {
        return;
    }
    let Some(v) = vectors() else { return };
    let case = v.join("tdx/tdx-v4-phala-b0c06f-uptodate");
    let (code, json, err) = attest(
        case.join("quote.bin").to_str().unwrap(),
        "cvm.test=evidence:tdx",
        &[
            "--collateral",
            case.join("collateral.json").to_str().unwrap(),
            "--at",
            "2025-07-01T00:00:00Z",
            "--after-attest",
            "stop",
        ],
    );
    assert_eq!(code, POLICY_REJECTED, "{err}");
    let v = &json["attest"]["verdict"];
    assert_eq!(v["tee"], "tdx");
    for passed in [
        "quote.signature",
        "pck.leaf",
        "qe.report_signature",
        "tcb.status",
    ] {
        assert_eq!(check(v, passed), "pass", "{passed}");
    }
    assert_eq!(check(v, "reference.report_data"), "fail");
    assert_eq!(check(v, "launch.reference"), "fail");
}

#[test]
fn malformed_oversized_and_missing_evidence_are_guest_failures() {
    if !have_kvm() {
        return;
    }
    let small = temp_file("attest-small.bin", [1u8, 2, 3]);
    let small = small.to_str().unwrap();
    // A type the protocol does not have: reported, ignored, and then no evidence.
    let (code, json, err) = attest(small, "cvm.test=evidence:sgx", &[]);
    assert_eq!(code, GUEST_FAILED, "{err}");
    let malformed = json["attest"]["malformed_lines"].as_array().unwrap();
    assert!(malformed[0].as_str().unwrap().contains("type at byte 15"));
    assert!(err.contains("no valid evidence"), "{err}");
    // Over the line limit (256 KiB of base64): reported as too long.
    let big = temp_file("attest-big.bin", vec![0xa5u8; 200 << 10]);
    let (code, json, err) = attest(big.to_str().unwrap(), "cvm.test=evidence:snp", &[]);
    assert_eq!(code, GUEST_FAILED, "{err}");
    assert!(
        json["attest"]["malformed_lines"][0]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{json}"
    );
    // No evidence at all within --attest-timeout: the VM is stopped.
    let (code, json, err) = attest(small, "cvm.test=hang", &["--attest-timeout", "1s"]);
    assert_eq!(code, GUEST_FAILED, "{err}");
    assert_eq!(json["stop"]["reason"], "attest-timeout");
    assert!(err.contains("no CVM-EVIDENCE line"), "{err}");
}

/// The TD event log builder of the tests crate (one source file, no dependency).
#[path = "../../tests/src/tcg_test_log.rs"]
mod tcg_test_log;

/// A TDX guest's firmware log (TCG crypto-agile, SHA-384, as the CCEL holds it) with one
/// event in RTMR 0 and one in RTMR 1, after TDVF's EV_NO_ACTION.
fn td_events() -> Vec<tcg_test_log::TdEvent> {
    use tcg_test_log::TdEvent;
    vec![
        TdEvent {
            rtmr: 0,
            event_type: 0x8000_000b,
            digest: [1; 48],
            data: b"\x09TdxTable\0".to_vec(),
        },
        TdEvent {
            rtmr: 1,
            event_type: 0x8000_0007,
            digest: [2; 48],
            data: b"Calling EFI Application".to_vec(),
        },
    ]
}

/// The launch path with a guest's event log: the quote of a real TD and a log sent as
/// the auxiliary data (`cvm.test=evidence:tdx@N`): read, reported, replayed against the
/// quote's RTMRs (which this made-up log cannot reproduce: the checks say by how much);
/// a log that is not a TD's is reported and the quote still verified.
#[test]
fn a_guest_event_log_is_replayed_against_the_quote() {
    if !have_kvm() {
        return;
    }
    let Some(v) = vectors() else { return };
    let case = v.join("tdx/tdx-v4-phala-b0c06f-uptodate");
    let quote = std::fs::read(case.join("quote.bin")).unwrap();
    let extra = [
        "--collateral".to_owned(),
        case.join("collateral.json").to_str().unwrap().to_owned(),
        "--at".into(),
        "2025-07-01T00:00:00Z".into(),
        "--after-attest".into(),
        "stop".into(),
    ];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let cmdline = format!("cvm.test=evidence:tdx@{}", quote.len());
    let events = td_events();
    let log = tcg_test_log::encode(&events, 0);
    let mut initrd = quote.clone();
    initrd.extend(&log);
    let path = temp_file("attest-tdx-log.bin", &initrd);
    let (code, json, err) = attest(path.to_str().unwrap(), &cmdline, &extra);
    assert_eq!(code, POLICY_REJECTED, "{err}");
    let a = &json["attest"];
    assert_eq!(
        a["event_log"],
        format!("2 events ({} bytes) replayed", log.len()),
        "{a}"
    );
    let v = &a["verdict"];
    assert_eq!(check(v, "quote.signature"), "pass");
    assert_eq!(check(v, "event_log.rtmr0"), "fail");
    assert_eq!(check(v, "event_log.rtmr1"), "fail");
    assert_eq!(check(v, "event_log.rtmr2"), "skipped");
    let detail = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "event_log.rtmr0")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    // The value the events extend RTMR 0 to, computed by the builder.
    let rtmr0 = hex::encode(tcg_test_log::replay(&events)[0]);
    assert!(
        detail.contains(&format!(
            "the guest's event log's 1 events replay to {rtmr0}"
        )),
        "{detail}"
    );
    // A TPM-shaped log (SHA-256 only) is not a TD's: reported, and the quote verified.
    let mut tpm = log.clone();
    let at = tpm.windows(2).position(|w| w == [0x0c, 0x00]).unwrap();
    tpm[at] = 0x0b;
    let mut initrd = quote.clone();
    initrd.extend(&tpm);
    let path = temp_file("attest-tdx-tpm-log.bin", &initrd);
    let (code, json, err) = attest(path.to_str().unwrap(), &cmdline, &extra);
    assert_eq!(code, POLICY_REJECTED, "{err}");
    let a = &json["attest"];
    assert!(
        a["event_log"].as_str().unwrap().starts_with("not read: "),
        "{a}"
    );
    assert_eq!(check(&a["verdict"], "quote.signature"), "pass");
    let names: Vec<&str> = a["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("event_log.")),
        "{names:?}"
    );
}

/// A real CCA token from the guest of a plain launch: not this launch's evidence, refused
/// with the usage code and a one-line reason, the VM torn down.
#[test]
fn a_cca_token_is_not_a_plain_launchs_evidence() {
    if !have_kvm() {
        return;
    }
    let Some(vectors) = common::vectors() else {
        return;
    };
    let token = vectors.join("cca/cca-ffm00-tag399/token.cbor");
    let (code, _json, err) = attest(token.to_str().unwrap(), "cvm.test=evidence:cca", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the guest sent a CCA token, which a --tee none launch cannot produce"),
        "{err}"
    );
}

/// `--dry-run --attest` for SNP: the guest's report request, sealed with the VMPCK0 of the
/// model's secrets page, answered by the model's firmware with a report signed by the SNP
/// test PKI's VCEK; the verdict passes only with that PKI's root named, and checks the
/// plan's measurement, HOST_DATA and the nonce binding.
#[test]
fn snp_dry_run_attests_through_the_model() {
    let Some(firmware) = common::shared("reference/inputs/sid/OVMF.amdsev.fd") else {
        return;
    };
    let pki = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/snp-test-pki");
    let (fw, ark, crl) = (
        firmware.display().to_string(),
        pki.join("test-ark.der").display().to_string(),
        pki.join("test-crl-empty.der").display().to_string(),
    );
    let host_data = "ab".repeat(32);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--format",
            "json",
            "launch",
            "--tee",
            "snp",
            "--dry-run",
            "--attest",
            "--firmware",
            &fw,
            "--vcpu-type",
            "EPYC-Milan",
            "--crl",
            &crl,
            "--host-data",
            &host_data,
        ];
        args.extend_from_slice(extra);
        let out = cvm(&args);
        (out.status.code().unwrap(), stdout_json(&out))
    };
    let (code, json) = run(&["--root", &ark]);
    assert_eq!(code, 0, "{json}");
    let v = &json["attest"]["verdict"];
    assert_eq!(v["verdict"], "pass");
    for c in [
        "reference.measurement",
        "reference.host_data",
        "reference.report_data",
        "launch.reference",
        "report.signature",
        "chain.crl.revocation",
    ] {
        assert_eq!(check(v, c), "pass", "{c}");
    }
    assert_eq!(v["claims"]["measurement"], json["measurement"]);
    assert_eq!(v["claims"]["host_data"], host_data.as_str());
    assert_eq!(v["claims"]["report_data"], json["attest"]["report_data"]);
    // Without the test root, nothing trusts the model's VCEK.
    let (code, json) = run(&[]);
    assert_ne!(code, 0);
    assert_eq!(
        check(&json["attest"]["verdict"], "chain.supplied_ark"),
        "fail"
    );
}

#[test]
fn attest_options_are_checked() {
    // A TD's dry run needs a QGS to attest; SEV and SEV-ES have no evidence; the
    // verification options need --attest.
    let out = cvm(&["launch", "--tee", "tdx", "--dry-run", "--attest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --qgs"));
    let out = cvm(&["launch", "--tee", "sev-es", "--attest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no attestation"));
    let out = cvm(&["launch", "--tee", "none", "--no-crl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--attest"));
    let out = cvm(&["launch", "--tee", "none", "--attest", "--nonce", "abcd"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn without_images_snp_and_tdx_plan_the_attesting_guest() {
    let image = PathBuf::from(env!("OUT_DIR")).join("attest.bin");
    let image = image.to_str().unwrap();
    let json = |args: &[&str]| {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = cvm(&all);
        (out.status.code().unwrap(), stdout_json(&out))
    };
    let bytes = std::fs::read(image).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    // SNP: `cvm measure` with no image, with the image named, and the model's launch
    // of it agree; the model accepts every step (SEV metadata: pre-validated pages, the
    // secrets and CPUID pages).
    let snp = ["--tee", "snp", "--vcpu-type", "EPYC-Milan"];
    let (code, builtin) = json(&[&["measure"][..], &snp].concat());
    assert_eq!(code, 0, "{builtin}");
    assert_eq!(builtin["firmware"]["path"], "(built-in attesting guest)");
    assert_eq!(builtin["firmware"]["sha256"], sha.as_str());
    let (code, named) = json(&[&["measure", "--firmware", image][..], &snp].concat());
    assert_eq!(code, 0, "{named}");
    assert_eq!(builtin["measurement"], named["measurement"]);
    let (code, launched) = json(&[&["launch", "--dry-run"][..], &snp].concat());
    assert_eq!(code, 0, "{launched}");
    assert_eq!(launched["boot"], "built-in");
    assert_eq!(launched["measurement"], builtin["measurement"]);
    // The model's report of that launch verifies against the plan with the test root.
    let pki = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/snp-test-pki");
    let (ark, crl) = (
        pki.join("test-ark.der").display().to_string(),
        pki.join("test-crl-empty.der").display().to_string(),
    );
    let attest = [
        "launch",
        "--dry-run",
        "--attest",
        "--root",
        &ark,
        "--crl",
        &crl,
    ];
    let (code, attested) = json(&[&attest[..], &snp].concat());
    assert_eq!(code, 0, "{attested}");
    let v = &attested["attest"]["verdict"];
    assert_eq!(check(v, "reference.measurement"), "pass");
    assert_eq!(v["claims"]["measurement"], builtin["measurement"]);
    // TDX: the image's TDVF descriptor (BFV measured, TEMP_MEM and TD HOB accepted).
    let (code, builtin) = json(&["measure", "--tee", "tdx"]);
    assert_eq!(code, 0, "{builtin}");
    assert_eq!(builtin["firmware"]["sha256"], sha.as_str());
    let (code, named) = json(&["measure", "--tee", "tdx", "--firmware", image]);
    assert_eq!(code, 0, "{named}");
    assert_eq!(builtin["mrtd"], named["mrtd"]);
    // It extends no RTMR (its CVM_GUEST footer entry): all four are predicted zero, and
    // no edk2 recipe applies (choosing one is refused).
    let zero = "00".repeat(48);
    for i in 0..4 {
        assert_eq!(builtin["rtmr"][i], zero.as_str(), "{builtin}");
    }
    assert_eq!(builtin["tdvf_recipe"]["name"], "none");
    let (code, err) = json(&["measure", "--tee", "tdx", "--tdvf-recipe", "202508"]);
    assert_ne!(code, 0, "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("extends no RTMR"), "{err}");
    let (code, launched) = json(&["launch", "--tee", "tdx", "--dry-run"]);
    assert_eq!(code, 0, "{launched}");
    assert_eq!(launched["mrtd"], builtin["mrtd"]);
    // It runs on one vCPU; SEV and SEV-ES have no built-in guest, and a kernel needs
    // firmware to boot it. Each is a usage error naming why.
    let refused = |args: &[&str], why: &str| {
        let (code, err) = json(args);
        assert_eq!(code, 1, "{err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{err}");
    };
    for tee in ["snp", "tdx"] {
        refused(
            &["launch", "--tee", tee, "--dry-run", "--vcpus", "2"],
            "one vCPU",
        );
    }
    refused(
        &["measure", "--tee", "sev-es", "--vcpu-type", "EPYC-Milan"],
        "needs --firmware",
    );
    refused(
        &["measure", "--tee", "snp", "--kernel", image],
        "needs --firmware",
    );
}
