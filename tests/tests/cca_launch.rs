//! `cvm launch --tee cca --dry-run`: the realm of cvm's own layout created through the
//! realm backend against the model of KVM's v14 interface and the RMM, whose RIM must be
//! the one `cvm measure --tee cca --vmm cvm` predicts from the same options (the plan
//! measured is the plan launched), on the reference inputs of ../shared/reference; and
//! what the launch refuses, with its exit code.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_tests::reference_dir;

/// `cvm --format json ARGS` in process: exit code, stdout, stderr.
fn cvm(args: &[String]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut all = vec!["cvm".to_owned(), "--format".into(), "json".into()];
    all.extend(args.iter().cloned());
    let code = cvm_launcher::cli::run(all, &mut out, &mut err).code();
    let err = String::from_utf8_lossy(&err).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// The realm options of each case: host capabilities and images.
fn cases(inputs: &std::path::Path) -> Vec<Vec<String>> {
    let f = |n: &str| inputs.join(n).display().to_string();
    let cfg = |n: &str| inputs.join("configs").join(n).display().to_string();
    vec![
        strings(&["--host-config", &cfg("fvp.conf"), "--memory", "512M"]),
        strings(&[
            "--host-config",
            &cfg("fvp.conf"),
            "--host-config",
            &cfg("kvm.conf"),
            "--memory",
            "512M",
            "--kernel",
            &f("linux.bin"),
        ]),
        strings(&[
            "--host-config",
            &cfg("rmm-1.0-eac5.conf"),
            "--ipa-bits",
            "44",
            "--memory",
            "1G",
            "--vcpus",
            "2",
            "--kernel",
            &f("linux.bin.gz"),
            "--initrd",
            &f("initrd-content.bin"),
            "--cmdline",
            "earlycon quiet",
        ]),
        strings(&[
            "--host-config",
            &cfg("qemu-max-8.2.conf"),
            "--memory",
            "256M",
            "--vcpus",
            "4",
            "--firmware",
            &f("fw-content.bin"),
        ]),
        strings(&[
            "--ipa-bits",
            "40",
            "--num-bps",
            "6",
            "--num-wps",
            "4",
            "--memory",
            "512M",
            "--kernel",
            &f("linux.bin"),
            "--initrd",
            &f("initrd-content.bin"),
        ]),
    ]
}

#[test]
fn dry_run_rim_is_the_measured_rim() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let inputs = reference.join("inputs/cca");
    for case in cases(&inputs) {
        let mut measure = strings(&["measure", "--tee", "cca", "--vmm", "cvm"]);
        measure.extend(case.iter().cloned());
        let (code, out, err) = cvm(&measure);
        assert_eq!(code, 0, "{case:?}: {err}");
        let want = json(&out)["rim"].as_str().unwrap().to_owned();
        assert_eq!(want.len(), 64, "{case:?}");

        let mut launch = strings(&["launch", "--tee", "cca", "--dry-run", "--explain"]);
        launch.extend(case.iter().cloned());
        let (code, out, err) = cvm(&launch);
        assert_eq!(code, 0, "{case:?}: {err}");
        let got = json(&out);
        assert_eq!(got["rim"], want.as_str(), "{case:?}");
        assert_eq!(got["predicted_rim"], want.as_str(), "{case:?}");
        assert_eq!(got["interface"], "kvm-rmi-v14");
        let calls = got["calls"].as_array().unwrap();
        assert_eq!(calls.first().unwrap()["call"], "KVM_CHECK_EXTENSION");
        assert_eq!(calls.last().unwrap()["call"], "KVM_RUN");
        assert!(
            got["granules"].as_u64().unwrap() >= 16,
            "{case:?}: the DTB alone is 16"
        );

        // The same images in kvmtool's own realms (RMM 1.0's order, RIPAS measured)
        // measure differently: the interface is part of the measurement.
        let mut kvmtool = measure.clone();
        kvmtool[4] = "kvmtool".into();
        let (code, out, err) = cvm(&kvmtool);
        assert_eq!(code, 0, "{err}");
        assert_ne!(json(&out)["rim"], want.as_str(), "{case:?}");
    }
}

#[test]
fn refusals() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let cfg = reference
        .join("inputs/cca/configs/fvp.conf")
        .display()
        .to_string();
    let base = [
        "launch",
        "--tee",
        "cca",
        "--memory",
        "512M",
        "--host-config",
        &cfg,
    ];
    for (extra, code, says) in [
        // No realm backend here: built without it, or KVM without KVM_CAP_ARM_RMI.
        (&[][..], 6, "realm"),
        (&["--dry-run", "--vmm", "kvmtool"][..], 1, "--vmm"),
        (
            &["--dry-run", "--root", "x.der", "--attest"][..],
            1,
            "--root",
        ),
        (
            &["--dry-run", "--guest-policy", "0x30000"][..],
            1,
            "--guest-policy",
        ),
        (&["--dry-run", "--rpv", "01"][..], 1, "--rpv"),
        (&["--dry-run", "--hash", "sha512"][..], 1, "SHA-256"),
        (&["--dry-run", "--pmu"][..], 1, "--pmu"),
        // 32 IPA bits leave 2 GiB of protected IPA space: the RAM at 2 GiB is outside it,
        // and KVM refuses the populate.
        (&["--dry-run", "--ipa-bits", "32"][..], 7, "protected half"),
    ] {
        let mut args = strings(&base);
        args.extend(strings(extra));
        let (got, out, err) = cvm(&args);
        assert_eq!(got, code, "{extra:?}: {err}");
        let e = &json(&out)["error"];
        assert_eq!(e["code"], u64::from(code), "{extra:?}: {out}");
        assert!(
            e["message"].as_str().unwrap().contains(says),
            "{extra:?}: {out}"
        );
        assert!(err.contains(says), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
    }
    // The host's capabilities are needed to model its RMM.
    let (got, _, err) = cvm(&strings(&[
        "launch",
        "--tee",
        "cca",
        "--dry-run",
        "--memory",
        "512M",
    ]));
    assert_eq!(got, 1, "{err}");
    assert!(err.contains("num_bps"), "{err}");
    // SNP launches take no realm options.
    let (got, _, err) = cvm(&strings(&[
        "launch",
        "--tee",
        "snp",
        "--dry-run",
        "--memory",
        "64M",
        "--num-bps",
        "4",
    ]));
    assert_eq!(got, 1, "{err}");
    assert!(err.contains("--num-bps applies to --tee cca only"), "{err}");
}

/// `--dry-run --attest`: the realm's token from the model's RMM, signed with the CCA test
/// keys, read back through the exchange and verified against the plan's RIM and the
/// nonce binding; trusted only when `--cpak` names the test CPAK; the saved token passes
/// `cvm verify` with `cvm measure`'s output as reference values.
#[test]
fn dry_run_attest_verifies_the_models_token() {
    use sha2::{Digest, Sha512};
    let Some(reference) = reference_dir() else {
        return;
    };
    let inputs = reference.join("inputs/cca");
    let cfg = inputs.join("configs/fvp.conf").display().to_string();
    let kernel = inputs.join("linux.bin").display().to_string();
    let cpak = cvm_tests::crate_dir()
        .join("fixtures/cca-test-pki/test-cpak.pem")
        .display()
        .to_string();
    let dir = std::env::temp_dir().join(format!("cvm-cca-attest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token.cbor").display().to_string();
    let nonce = "11".repeat(32);
    let plan = [
        "--memory",
        "512M",
        "--host-config",
        &cfg,
        "--kernel",
        &kernel,
    ];
    let mut args = strings(&[
        "launch",
        "--tee",
        "cca",
        "--dry-run",
        "--attest",
        "--nonce",
        &nonce,
    ]);
    args.extend(strings(&plan));
    let mut trusted = args.clone();
    trusted.extend(strings(&["--cpak", &cpak, "--evidence-out", &token]));
    let (code, out, err) = cvm(&trusted);
    assert_eq!(code, 0, "{err}");
    let got = json(&out);
    let a = &got["attest"];
    // The binding, computed here: SHA-512("cvm-evidence-nonce/1" || nonce).
    let mut h = Sha512::new();
    h.update(b"cvm-evidence-nonce/1");
    h.update([0x11u8; 32]);
    let binding = hex::encode(h.finalize());
    assert_eq!(a["report_data"], binding.as_str());
    assert_eq!(a["evidence"], "cca");
    let v = &a["verdict"];
    assert_eq!(v["verdict"], "pass", "{v}");
    let outcome = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {v}"))["outcome"]
            .clone()
    };
    for name in [
        "platform.signature",
        "realm.signature",
        "realm.binding",
        "reference.rim",
        "reference.report_data",
        "launch.reference",
    ] {
        assert_eq!(outcome(name), "pass", "{name}");
    }
    assert_eq!(v["claims"]["realm"]["rim"], got["rim"]);

    // The saved token through cvm verify, with cvm measure's JSON as reference values.
    let mut measure = strings(&["measure", "--tee", "cca", "--vmm", "cvm"]);
    measure.extend(strings(&plan));
    let (code, out, err) = cvm(&measure);
    assert_eq!(code, 0, "{err}");
    let values = dir.join("reference.json");
    std::fs::write(&values, out).unwrap();
    let (code, out, err) = cvm(&strings(&[
        "verify",
        "--tee",
        "cca",
        "--evidence",
        &token,
        "--cpak",
        &cpak,
        "--reference",
        values.to_str().unwrap(),
        "--report-data",
        &binding,
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["verdict"], "pass");

    // Without the test CPAK named, nothing trusts the model's platform token.
    let (code, out, err) = cvm(&args);
    assert_ne!(code, 0, "{err}");
    assert_eq!(json(&out)["attest"]["verdict"]["verdict"], "fail");
    assert!(err.contains("platform.anchor"), "{err}");
    // Another platform's CPAK does not verify it either.
    if let Some(v) = cvm_tests::vectors() {
        let other = v
            .join("cca/cca-ffm00-tag399/cpak.jwk.json")
            .display()
            .to_string();
        let mut wrong = args.clone();
        wrong.extend(strings(&["--cpak", &other]));
        let (code, _, err) = cvm(&wrong);
        assert_ne!(code, 0, "{err}");
    }
    // A realm on KVM has no guest side yet; --cpak is a realm's option only.
    let mut real = strings(&["launch", "--tee", "cca", "--attest", "--cpak", &cpak]);
    real.extend(strings(&plan));
    let (code, _, err) = cvm(&real);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--attest runs with --dry-run"), "{err}");
    let (code, _, err) = cvm(&strings(&[
        "launch",
        "--tee",
        "snp",
        "--dry-run",
        "--memory",
        "64M",
        "--attest",
        "--cpak",
        &cpak,
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--cpak applies to --tee cca only"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
