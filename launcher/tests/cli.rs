//! The real `cvm` binary: exit codes, one-line errors, JSON on stdout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn cvm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args(args)
        .output()
        .expect("run cvm")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hosts")
        .join(name)
        .display()
        .to_string()
}

fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn probe_json_is_one_object_with_every_tee() {
    let out = cvm(&["probe", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
fn require_unavailable_tee_exits_platform_unavailable() {
    // The KVM-less fixture host can launch nothing.
    let out = cvm(&[
        "probe",
        "--root",
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
    if std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("skipped: no usable /dev/kvm on this host");
        return;
    }
    let out = cvm(&["probe", "--require", "none"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = cvm(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: cvm"));
}

#[test]
fn verbose_logs_go_to_stderr_only() {
    let out = cvm(&["-vvv", "probe", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    stdout_json(&out);
}
