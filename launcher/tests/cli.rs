//! The real `cvm` binary: exit codes, one-line errors, JSON on stdout.
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
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hosts")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn probe_json_is_one_object_with_every_tee() {
    let out = cvm(&["probe", "--format", "json"]);
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["schema"], 1);
    let tees: Vec<_> = json["tees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tee"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tees, ["snp", "tdx", "cca", "sev-es", "sev", "none"]);
    // On a host with a working /dev/kvm, a plain VM is possible.
    if std::fs::File::open("/dev/kvm").is_ok() {
        assert_eq!(json["host"]["kvm"]["state"], "present");
        assert_eq!(json["host"]["kvm"]["api_version"], 12);
        assert_eq!(json["tees"][5]["available"], true);
    }
}

#[test]
fn probe_text_has_one_line_per_tee() {
    let out = cvm(&["probe"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for tee in ["snp", "tdx", "cca", "sev-es", "sev", "none"] {
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(tee))
            .collect();
        assert_eq!(lines.len(), 1, "{tee}: {text}");
        assert!(
            lines[0].contains(" available") || lines[0].contains(" unavailable: "),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn the_sysroot_must_exist_and_names_what_it_read() {
    for bad in ["/nonexistent/sysroot", "/etc/hostname"] {
        let out = cvm(&["probe", "--sysroot", bad]);
        assert!(failed_with(&out, 1).contains("not a directory"), "{bad}");
    }
    // A copy of an Arm host's files is an Arm host, whatever cvm runs on; messages name
    // the files read below the sysroot.
    let out = cvm(&[
        "probe",
        "--sysroot",
        &fixture("cca-fvp"),
        "--format",
        "json",
    ]);
    let json = stdout_json(&out);
    assert_eq!(json["host"]["arch"], "aarch64", "{json:#}");
    let snp = json["tees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tee"] == "snp")
        .unwrap();
    let reason = snp["reason"].as_str().unwrap();
    assert!(reason.contains("cca-fvp/dev/sev"), "{reason}");
    assert!(!reason.contains(" /dev/sev"), "{reason}");
}

#[test]
fn require_unavailable_tee_exits_platform_unavailable() {
    // The KVM-less fixture host can launch nothing.
    let out = cvm(&[
        "probe",
        "--sysroot",
        &fixture("no-kvm"),
        "--require",
        "none",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(6));
    let json = stdout_json(&out);
    assert_eq!(json["tees"][5]["available"], false);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("cvm: error: required TEE unavailable: none: no KVM: "),
        "{err}"
    );
}

#[test]
fn require_available_tee_succeeds() {
    if !common::have_kvm() {
        return;
    }
    let out = cvm(&["probe", "--require", "none"]);
    common::succeeded(&out);
}

#[test]
fn usage_errors_exit_1_with_one_line() {
    for args in [
        &["probe", "--require", "sgx"][..],
        &["frobnicate"][..],
        &["--format", "yaml", "probe"][..],
    ] {
        let out = cvm(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("cvm: error: "), "{err}");
    }
}

#[test]
fn no_subcommand_prints_help_and_exits_1() {
    let out = cvm::<&str>(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: cvm"));
}

#[test]
fn verbose_logs_go_to_stderr_only() {
    let out = cvm(&["-vvv", "probe", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    stdout_json(&out);
}

#[test]
fn measure_json_is_the_reference_digest() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let p = |rel: &str| inputs.join(rel).display().to_string();
    // Row sev-003 of sev_ref.tsv (sev-snp-measure 0.0.13 and snpguest agree).
    let out = cvm(&[
        "measure",
        "--tee",
        "snp",
        "--firmware",
        &p("sid/OVMF.amdsev.fd"),
        "--kernel",
        &p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        "--initrd",
        &p("initrd-small.img"),
        "--cmdline",
        "console=ttyS0 root=/dev/vda1 ro",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--format",
        "json",
    ]);
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["tee"], "snp");
    assert_eq!(
        json["measurement"],
        "01213fed0d4158c786b485b59cbaa4eb0de519582835451b03e8acf5165e59133aebd3ba09da1c86c363820e7c65b061"
    );
    assert_eq!(
        json["kernel"]["sha256"],
        "51349501a3d1ff83836437d2b365fd2d57f2feb8642d315e5181dec23d4c3275"
    );
    assert!(
        json.get("components").is_none(),
        "components only with --explain"
    );
}

#[test]
fn measure_explain_lists_components_ending_in_the_measurement() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let fw = inputs.join("sid/OVMF.amdsev.fd").display().to_string();
    let out = cvm(&[
        "measure",
        "--tee",
        "snp",
        "--firmware",
        &fw,
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
        "--explain",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json = stdout_json(&out);
    let comps = json["components"].as_array().unwrap();
    assert_eq!(comps[0]["name"], "firmware");
    assert_eq!(comps.iter().filter(|c| c["page_type"] == "vmsa").count(), 2);
    assert_eq!(comps.last().unwrap()["launch_digest"], json["measurement"]);
    assert_eq!(comps[0]["launch_digest"], json["firmware_digest"]);
}

#[test]
fn measure_bad_inputs_exit_2_with_one_line() {
    let short = temp_file("short.fd", [0u8; 1000]);
    let out = cvm(&[
        "measure",
        "--tee",
        "sev",
        "--firmware",
        short.to_str().unwrap(),
    ]);
    assert!(failed_with(&out, 2).contains("image size"));

    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let p = |rel: &str| inputs.join(rel).display().to_string();
    let cases: [(&[&str], &str); 3] = [
        // A kernel with firmware that cannot measure it (the tools refuse too).
        (
            &[
                "--tee",
                "snp",
                "--firmware",
                &p("bookworm/OVMF.fd"),
                "--kernel",
                &p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
                "--vcpu-type",
                "EPYC-v4",
            ],
            "SNP_KERNEL_HASHES",
        ),
        // A kernel that is not a bzImage.
        (
            &[
                "--tee",
                "sev",
                "--firmware",
                &p("sid/OVMF.amdsev.fd"),
                "--kernel",
                &p("initrd-small.img"),
            ],
            "not a bzImage",
        ),
        (
            &[
                "--tee",
                "snp",
                "--firmware",
                &p("sid/OVMF.amdsev.fd"),
                "--vcpu-type",
                "Pentium",
            ],
            "unknown vCPU type",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["measure"];
        all.extend_from_slice(args);
        let out = cvm(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let line = one_error_line(&out);
        assert!(line.contains(needle), "{line}");
    }
}

#[test]
fn measure_usage_errors_exit_1() {
    for args in [
        &[
            "measure",
            "--tee",
            "sev",
            "--firmware",
            "x.fd",
            "--initrd",
            "i",
        ][..],
        &[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            "/nonexistent/x.fd",
            "--vcpu-type",
            "EPYC",
        ][..],
        &[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            "x",
            "--vcpu-type",
            "EPYC",
            "--vcpu-sig",
            "1",
        ][..],
        // Out of range: vCPU counts KVM does not take, fields wider than CPUID's, an
        // option of another TEE.
        &["measure", "--tee", "snp", "--firmware", "x", "--vcpus", "0"][..],
        &[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            "x",
            "--vcpus",
            "4097",
        ][..],
        &[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            "x",
            "--vcpu-family",
            "271",
            "--vcpu-model",
            "1",
            "--vcpu-stepping",
            "1",
        ][..],
        &[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            "x",
            "--vcpu-family",
            "25",
            "--vcpu-model",
            "256",
            "--vcpu-stepping",
            "16",
        ][..],
        &[
            "measure",
            "--tee",
            "sev-es",
            "--firmware",
            "x",
            "--vcpu-type",
            "EPYC",
            "--guest-features",
            "0x21",
        ][..],
        // Launch limits.
        &["launch", "--tee", "none", "--timeout", "0"][..],
        &["launch", "--tee", "none", "--memory", "8192G"][..],
        &["launch", "--tee", "none", "--vcpus", "41"][..],
    ] {
        let out = cvm(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        one_error_line(&out);
    }
}

#[test]
fn inspect_firmware_reports_metadata() {
    let Some(inputs) = shared("reference/inputs") else {
        return;
    };
    let fw = inputs.join("sid/OVMF.amdsev.fd").display().to_string();
    let out = cvm(&["inspect", "firmware", &fw, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let json = stdout_json(&out);
    // As listed in shared/reference/ovmf_footer_tables.txt for this image.
    assert_eq!(json["footer_table"].as_array().unwrap().len(), 6);
    assert_eq!(json["sev_es_reset_eip"], 0x80b004);
    assert_eq!(
        json["sev_hashes_table"],
        serde_json::json!([0x810c00, 0x400])
    );
    let sections = json["sev_metadata"]["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 7);
    assert_eq!(sections[6]["kind"], "SNP_KERNEL_HASHES");
    assert_eq!(json["tdvf"]["sections"].as_array().unwrap().len(), 7);
}

/// Debian sid's TDX OVMF build carries SEV metadata whose SVSM_CAA and SNP_SEC_MEM
/// sections have size zero. sev-snp-measure measures nothing for them, and so does cvm.
/// The digests are sev-snp-measure 0.0.13's (run 2026-12-01 as `sev-snp-measure --mode
/// snp --vcpus N --vcpu-type T --ovmf OVMF.inteltdx.ms.fd`): no table row has this image
/// without a kernel.
#[test]
fn zero_size_sev_metadata_sections_measure_nothing() {
    let Some(fw) = common::shared("reference/inputs/sid/OVMF.inteltdx.ms.fd") else {
        return;
    };
    for (vcpus, cpu, digest) in [
        (
            "4",
            "EPYC-Milan",
            "1585ea7a12a4c80b6f30f3c05541e2d93f7653c8e3235356604a662cb5d622784a8edcadce5cef74388d299fdeb7b273",
        ),
        (
            "1",
            "EPYC-v4",
            "d5e76cb222de4e070fad3ff1653fe517d92c7a7d814cf59a6d6f2298a962fb8486475d4f1953079aa02451ab7de4c9de",
        ),
    ] {
        let out = cvm(&[
            "measure".as_ref(),
            "--tee".as_ref(),
            "snp".as_ref(),
            "--vcpus".as_ref(),
            vcpus.as_ref(),
            "--vcpu-type".as_ref(),
            cpu.as_ref(),
            "--firmware".as_ref(),
            fw.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ]);
        let json = stdout_json(&out);
        assert_eq!(json["measurement"], digest, "{vcpus} {cpu}");
    }
}
