//! Launches on real AMD hardware, for an operator on an SNP (or SEV-ES) host:
//!
//!     RUSTFLAGS="--cfg cvm_hw" CVM_HW_TESTS=snp cargo test -p cvm-launcher --test hw_sev
//!
//! (`CVM_HW_TESTS=snp,sev-es` for both; the Debian OVMF `OVMF.amdsev.fd` is read from
//! ../shared/reference/inputs/sid, or from `$CVM_HW_OVMF`). Ignored unless `--cfg cvm_hw`;
//! a TEE not named in `CVM_HW_TESTS` is not launched. Each test runs the dry run and the
//! hardware launch of the same command line: the hardware must accept every step the
//! model accepted, and the guest must start (it runs until `--timeout`, or stops itself).
//! The SNP measurement itself is only in the guest's attestation report; comparing it
//! with the dry run's needs the guest side of the launch -> evidence hand-off.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, stdout_json};

fn ovmf() -> String {
    std::env::var("CVM_HW_OVMF").unwrap_or_else(|_| {
        common::shared("reference/inputs/sid/OVMF.amdsev.fd")
            .unwrap()
            .display()
            .to_string()
    })
}

/// The dry run, then the hardware launch, of `cvm launch --tee TEE ARGS`.
fn launch_both(tee: &str, args: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let fw = ovmf();
    let mut base = vec![
        "--format",
        "json",
        "launch",
        "--tee",
        tee,
        "--firmware",
        &fw,
    ];
    base.extend_from_slice(args);
    let mut dry = base.clone();
    dry.push("--dry-run");
    let model = cvm(&dry);
    common::succeeded(&model);
    let mut real = base;
    real.extend_from_slice(&["--serial", "none", "--timeout", "20s"]);
    let hw = cvm(&real);
    let json = stdout_json(&hw);
    // Launch-failed (7) or platform-unavailable (6) means the hardware refused a step.
    assert!(
        matches!(hw.status.code(), Some(0 | 8)),
        "{}",
        String::from_utf8_lossy(&hw.stderr)
    );
    (stdout_json(&model), json)
}

#[test]
#[cfg_attr(
    not(cvm_hw),
    ignore = "needs an AMD SEV-SNP host: --cfg cvm_hw, CVM_HW_TESTS=snp"
)]
fn snp_ovmf_launch_is_accepted_by_the_hardware() {
    if !common::hw_enabled("snp") {
        return;
    }
    let (model, hw) = launch_both("snp", &["--vcpus", "2", "--vcpu-type", "EPYC-v4"]);
    assert_eq!(model["dry_run"], true);
    assert_eq!(hw["tee"], "snp");
    assert_ne!(hw["stop"]["reason"], "run-failed", "{hw}");
}

#[test]
#[cfg_attr(
    not(cvm_hw),
    ignore = "needs an AMD SEV-ES host: --cfg cvm_hw, CVM_HW_TESTS=sev-es"
)]
fn sev_es_ovmf_launch_is_accepted_by_the_hardware() {
    if !common::hw_enabled("sev-es") {
        return;
    }
    let (_, hw) = launch_both("sev-es", &["--vcpus", "2", "--vcpu-type", "EPYC-v4"]);
    // LAUNCH_MEASURE authenticates the digest under the launch's TIK; without a guest
    // owner's session nobody knows that TIK, so only its presence is checked here.
    let m = hw["launch_measure"].as_str().unwrap();
    assert_eq!(m.len(), 96, "{hw}");
    assert_ne!(hw["stop"]["reason"], "run-failed", "{hw}");
}

#[test]
#[cfg_attr(
    not(cvm_hw),
    ignore = "needs an AMD SEV-SNP host: --cfg cvm_hw, CVM_HW_TESTS=snp"
)]
fn the_attesting_guest_attests_on_snp() {
    if !common::hw_enabled("snp") {
        return;
    }
    // No image: the built-in attesting guest. Its report must carry the dry run's
    // measurement and the nonce binding; the chain needs the host's VCEK, which
    // `CVM_HW_SNP_CERTS` (a `cvm verify --certs` directory) provides when set: served to
    // the guest's extended request (Linux 7.0+, KVM_X86_SEV_SNP_REQ_CERTS; an older
    // host refuses --certs) and sent back with its report.
    let base = [
        "--format",
        "json",
        "launch",
        "--tee",
        "snp",
        "--vcpu-type",
        "EPYC-v4",
    ];
    let model = cvm(&[&base[..], &["--dry-run"]].concat());
    common::succeeded(&model);
    let model = stdout_json(&model);
    let certs = std::env::var("CVM_HW_SNP_CERTS").ok();
    let mut real = base.to_vec();
    real.extend_from_slice(&["--attest", "--attest-timeout", "60s", "--serial", "none"]);
    if let Some(dir) = &certs {
        real.extend_from_slice(&["--certs", dir]);
    }
    let hw = stdout_json(&cvm(&real));
    let v = &hw["attest"]["verdict"];
    assert_eq!(hw["attest"]["evidence"], "snp", "{hw}");
    assert_eq!(v["claims"]["measurement"], model["measurement"], "{hw}");
    for check in ["reference.measurement", "reference.report_data"] {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check)
            .unwrap();
        assert_eq!(c["outcome"], "pass", "{check}: {hw}");
    }
    if certs.is_some() {
        assert_eq!(v["verdict"], "pass", "{hw}");
    }
}
