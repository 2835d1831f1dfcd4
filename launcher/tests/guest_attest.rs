//! `cvm guest attest` against a configfs-tsm report entry laid out in a temporary
//! directory as Documentation/ABI/testing/configfs-tsm-report describes it (provider,
//! inblob, outblob, auxblob, generation), holding real evidence from ../shared/vectors.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{binding, cvm, vectors};
use cvm_attest::exchange::{EvidenceKind, parse_line};
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cvm-guest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A report entry as the kernel presents it once the provider has answered.
fn entry(root: &Path, provider: &str, outblob: &[u8], auxblob: Option<&[u8]>) -> PathBuf {
    let e = root.join("report").join("entry0");
    std::fs::create_dir_all(&e).unwrap();
    std::fs::write(e.join("provider"), format!("{provider}\n")).unwrap();
    std::fs::write(e.join("generation"), "1\n").unwrap();
    std::fs::write(e.join("inblob"), b"").unwrap();
    std::fs::write(e.join("outblob"), outblob).unwrap();
    if let Some(a) = auxblob {
        std::fs::write(e.join("auxblob"), a).unwrap();
    }
    e
}

#[test]
fn an_snp_report_and_its_certificates_become_the_evidence_line() {
    let Some(v) = vectors() else { return };
    let report = std::fs::read(v.join("snp/snp-milan-v2-gosevguest/report.bin")).unwrap();
    let root = dir("snp");
    let table = b"not parsed by the guest side".to_vec();
    let e = entry(&root, "sev_guest", &report, Some(&table));
    let nonce = root.join("nonce");
    std::fs::write(&nonce, [9u8; 32]).unwrap();
    let out = root.join("ttyS0");
    std::fs::write(&out, b"").unwrap();
    let run = cvm(&[
        "guest",
        "attest",
        "--tsm-entry",
        e.to_str().unwrap(),
        "--nonce-file",
        nonce.to_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
    ]);
    common::succeeded(&run);
    // The request carried the binding of the nonce.
    assert_eq!(
        hex::encode(std::fs::read(e.join("inblob")).unwrap()),
        binding(&[9u8; 32])
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let line = parse_line(text.trim_end().as_bytes()).unwrap();
    assert_eq!(line.kind, EvidenceKind::Snp);
    assert_eq!(line.evidence, report);
    assert_eq!(line.aux.as_deref(), Some(&table[..]));
    let say = String::from_utf8_lossy(&run.stdout);
    assert!(say.contains("sent snp evidence (1184 bytes"), "{say}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_tdx_quote_goes_to_stdout_alone() {
    let Some(v) = vectors() else { return };
    let quote = std::fs::read(v.join("tdx/tdx-v4-phala-b0c06f-uptodate/quote.bin")).unwrap();
    let root = dir("tdx");
    let e = entry(&root, "tdx_guest", &quote, None);
    let nonce = root.join("nonce");
    std::fs::write(&nonce, [1u8; 32]).unwrap();
    let run = cvm(&[
        "guest",
        "attest",
        "--tsm-entry",
        e.to_str().unwrap(),
        "--nonce-file",
        nonce.to_str().unwrap(),
        "--to",
        "-",
    ]);
    common::succeeded(&run);
    let text = String::from_utf8(run.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line = parse_line(text.trim_end().as_bytes()).unwrap();
    assert_eq!((line.kind, line.aux), (EvidenceKind::Tdx, None));
    assert_eq!(line.evidence, quote);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_missing_interface_provider_or_nonce_is_a_clear_error() {
    let root = dir("errors");
    let nonce = root.join("nonce");
    std::fs::write(&nonce, [1u8; 32]).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec!["guest", "attest", "--to", "-"];
        a.extend_from_slice(extra);
        cvm(&a)
    };
    let n = nonce.to_str().unwrap();
    // No configfs-tsm at all: platform-unavailable (6).
    let gone = root.join("no-tsm");
    let out = args(&["--nonce-file", n, "--tsm-report", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONFIG_TSM_REPORTS"));
    // A report directory whose entries get no provider (not the kernel's): the entry
    // cvm made is removed again.
    let report = root.join("report");
    std::fs::create_dir_all(&report).unwrap();
    let out = args(&["--nonce-file", n, "--tsm-report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider"));
    assert_eq!(std::fs::read_dir(&report).unwrap().count(), 0);
    // An empty provider: no guest driver.
    let e = entry(&root, "", b"x", None);
    let out = args(&["--nonce-file", n, "--tsm-entry", e.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no attestation provider"));
    // No nonce: not launched with --attest.
    let missing = root.join("nonce-missing");
    let out = args(&["--nonce-file", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cvm launch --attest"));
    // A nonce of the wrong size.
    std::fs::write(&nonce, [1u8; 31]).unwrap();
    let out = args(&["--nonce-file", n, "--tsm-entry", e.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&root).ok();
}
