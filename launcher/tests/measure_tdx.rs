//! `cvm measure --tee tdx` through the real binary: JSON, the event log, errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, failed_with, one_error_line, shared, stdout_json, temp_file};
use sha2::{Digest, Sha384};

/// Row tdx-024 of shared/reference/tdx_ref.tsv (fortanix/tdx-measure): trixie's OVMF,
/// 4 vCPUs, 2 GiB, the canonical ACPI tables, the small initrd.
#[test]
fn json_and_event_log_match_the_reference_row() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let p = |rel: &str| inputs.join(rel).display().to_string();
    let log = std::env::temp_dir().join(format!("cvm-tdx-events-{}.json", std::process::id()));
    let out = cvm(&[
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &p("trixie/OVMF.fd"),
        "--kernel",
        &p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        "--initrd",
        &p("initrd-small.img"),
        "--cmdline",
        "console=ttyS0 root=/dev/vda1 ro",
        "--vcpus",
        "4",
        "--memory",
        "2048M",
        "--acpi-tables",
        &p("tdx-acpi/canonical-defaults/acpi_tables.bin"),
        "--event-log-out",
        log.to_str().unwrap(),
        "--format",
        "json",
    ]);
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["tee"], "tdx");
    assert_eq!(
        json["mrtd"],
        "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11"
    );
    let rtmr = json["rtmr"].as_array().unwrap();
    assert_eq!(
        rtmr[0],
        "e1cf95c7fedaa78087b3eb237148869f804642b7939d59c8825db269ffadf190d4a7fd4f44d9b10ba7ff44c12dd564f5"
    );
    assert_eq!(
        rtmr[1],
        "7c8fc1156aa7d170c971af918b68aa22cda486113fbf513d3031b2dc792fc78a6c534d8382b9205b16b2aa2d16b6557c"
    );
    assert_eq!(
        rtmr[2],
        "a03a3b67b97d95710f76f6cb39c59a82a45980a5997f7f2fa18837969073d73110c27a5ccaaf05cf127ad7d73b4af508"
    );
    assert_eq!(rtmr[3], "0".repeat(96));
    assert!(json.get("events").is_none(), "events only with --explain");
    // Trixie's OVMF is edk2 2025.02: the recipe the reference tools follow.
    assert_eq!(json["tdvf_recipe"]["name"], "before edk2-stable202505");
    assert_eq!(json["tdvf_recipe"]["assumed"], false);
    // The verifier reads this very output as reference values.
    let r = cvm_attest::tdx::appraise::Reference::parse(std::str::from_utf8(&out.stdout).unwrap())
        .unwrap();
    let digest = |v: &serde_json::Value| {
        cvm_attest::config::Expected::value(cvm_attest::config::Bytes(
            hex::decode(v.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        ))
    };
    assert_eq!(r.mrtd, digest(&json["mrtd"]));
    assert_eq!(r.rtmr[0], digest(&rtmr[0]));
    assert_eq!(r.rtmr[3], digest(&rtmr[3]));

    // The event log replays to the RTMRs: what a verifier does with it.
    let text = std::fs::read(&log).unwrap();
    std::fs::remove_file(&log).ok();
    // cvm verify reads it, and its own check (events replay to the RTMRs it states)
    // passes; the replay below is done by hand, independently of both.
    cvm_attest::tdx::appraise::parse_event_log(std::str::from_utf8(&text).unwrap()).unwrap();
    let log: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(log["format"], "cvm-tdx-event-log/1");
    let events = log["events"].as_array().unwrap();
    for (i, expected) in rtmr.iter().enumerate().take(3) {
        let mut r = [0u8; 48];
        for e in events.iter().filter(|e| e["rtmr"] == i) {
            let d = hex::decode(e["digest"].as_str().unwrap()).unwrap();
            let mut h = Sha384::new();
            h.update(r);
            h.update(d);
            r = h.finalize().into();
        }
        assert_eq!(hex::encode(r), *expected, "RTMR{i} replay");
    }
    assert!(
        events
            .iter()
            .all(|e| e["type"].is_string() && e["description"].is_string())
    );
}

/// Debian's 2026.08 TDVF measures with edk2-stable202508's recipe, which cvm reads from
/// the image: RTMR 0 gains the fw_cfg cache events and is not predicted (the SMBIOS
/// event), and the report says why; `--tdvf-recipe` chooses another recipe.
#[test]
fn a_newer_tdvf_is_measured_with_its_own_recipe() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let p = |rel: &str| inputs.join(rel).display().to_string();
    let (fw, kernel, initrd, acpi) = (
        p("sid/OVMF.inteltdx.ms.fd"),
        p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        p("initrd-small.img"),
        p("tdx-acpi/canonical-defaults/acpi_tables.bin"),
    );
    let args = [
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &fw,
        "--kernel",
        &kernel,
        "--initrd",
        &initrd,
        "--acpi-tables",
        &acpi,
        "--format",
        "json",
        "--explain",
    ];
    let out = cvm(&args);
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["tdvf_recipe"]["name"], "edk2-stable202508 or later");
    assert_eq!(json["tdvf_recipe"]["assumed"], false);
    assert_eq!(json["tdvf_recipe"]["chosen"], false);
    assert!(json["rtmr"][0].is_null());
    assert!(
        json["unpredicted"][0].as_str().unwrap().contains("SMBIOS"),
        "{json}"
    );
    assert!(json["rtmr"][2].is_string());
    let events = json["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["description"] == "fw_cfg BootMenu (QEMU FW CFG), 2 bytes"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["description"]
            .as_str()
            .unwrap()
            .contains("\"initrd=initrd ")),
        "{events:?}"
    );
    // Chosen: the old recipe, RTMR 0 predicted again.
    let mut old = args.to_vec();
    old.extend_from_slice(&["--tdvf-recipe", "before-202505"]);
    let out = cvm(&old);
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["tdvf_recipe"]["chosen"], true);
    assert!(json["rtmr"][0].is_string());
}

#[test]
fn bad_inputs_and_misplaced_options() {
    // A firmware without a TDVF descriptor: malformed input, exit 2.
    let plain = temp_file("plain.fd", vec![0u8; 8192]);
    let out = cvm(&[
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        plain.to_str().unwrap(),
    ]);
    assert!(failed_with(&out, 2).contains("no TDVF descriptor"));

    // Options of the other TEE are usage errors, both ways.
    for args in [
        &[
            "measure",
            "--tee",
            "tdx",
            "--firmware",
            "x",
            "--vcpu-type",
            "EPYC",
        ][..],
        &[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            "x",
            "--memory",
            "4G",
        ][..],
        &[
            "measure",
            "--tee",
            "sev",
            "--firmware",
            "x",
            "--acpi-tables",
            "a",
        ][..],
    ] {
        let out = cvm(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            one_error_line(&out).contains("applies to --tee"),
            "{args:?}"
        );
    }

    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let fw = inputs.join("trixie/OVMF.fd").display().to_string();
    // A kernel that is not a PE image (the initrd, here).
    let not_pe = inputs.join("initrd-small.img").display().to_string();
    let out = cvm(&[
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &fw,
        "--kernel",
        &not_pe,
    ]);
    let err = failed_with(&out, 2);
    assert!(
        err.contains("initrd-small.img") && err.contains("kernel"),
        "{err}"
    );
    // Too little memory.
    let out = cvm(&[
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &fw,
        "--memory",
        "8M",
    ]);
    assert!(failed_with(&out, 2).contains("at least 32 MiB"));
}

#[test]
fn inspect_lists_the_variables_rtmr0_measures() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let ms = inputs.join("sid/OVMF.inteltdx.ms.fd").display().to_string();
    let out = cvm(&["inspect", "firmware", &ms, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let json = stdout_json(&out);
    let names: Vec<&str> = json["cfv_variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["KEK", "PK", "db", "dbx"]);
    // An image without enrolled keys has an empty store: the field is left out.
    let plain = inputs.join("trixie/OVMF.fd").display().to_string();
    let json = stdout_json(&cvm(&["inspect", "firmware", &plain, "--format", "json"]));
    assert!(json.get("cfv_variables").is_none());
}

#[test]
fn an_unwritable_event_log_is_a_usage_error() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let out = cvm(&[
        "measure".as_ref(),
        "--tee".as_ref(),
        "tdx".as_ref(),
        "--firmware".as_ref(),
        inputs.join("trixie/OVMF.fd").as_os_str(),
        "--event-log-out".as_ref(),
        "/nonexistent/dir/log.json".as_ref(),
    ]);
    assert!(failed_with(&out, 1).contains("/nonexistent/dir/log.json"));
}
