//! Launches on a real Intel TDX host, for an operator:
//!
//!     RUSTFLAGS="--cfg cvm_hw" CVM_HW_TESTS=tdx cargo test -p cvm-launcher --test hw_tdx
//!
//! (Debian's `OVMF.inteltdx.fd` is read from `$CVM_HW_TDVF`, or the `.ms.fd` build from
//! ../shared/reference/inputs/sid.) Ignored unless `--cfg cvm_hw`; skipped unless
//! `CVM_HW_TESTS` names `tdx`. The dry run and the hardware launch of the same command line
//! must both succeed and the TD must start (it runs until `--timeout`, or stops itself).
//! The MRTD is only in the TD's quote; comparing it with the dry run's needs the guest
//! side of the launch -> evidence hand-off.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, stdout_json};

#[test]
#[cfg_attr(
    not(cvm_hw),
    ignore = "needs an Intel TDX host: --cfg cvm_hw, CVM_HW_TESTS=tdx"
)]
fn tdvf_launch_is_accepted_by_the_hardware() {
    if !common::hw_enabled("tdx") {
        return;
    }
    let fw = std::env::var("CVM_HW_TDVF").unwrap_or_else(|_| {
        common::shared("reference/inputs/sid/OVMF.inteltdx.ms.fd")
            .unwrap()
            .display()
            .to_string()
    });
    let base = [
        "--format",
        "json",
        "launch",
        "--tee",
        "tdx",
        "--firmware",
        &fw,
        "--vcpus",
        "2",
    ];
    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let model = cvm(&dry);
    common::succeeded(&model);
    let mut real = base.to_vec();
    real.extend_from_slice(&["--serial", "none", "--timeout", "20s"]);
    let hw = cvm(&real);
    assert!(
        matches!(hw.status.code(), Some(0 | 8)),
        "the hardware refused a step: {}",
        String::from_utf8_lossy(&hw.stderr)
    );
    let json = stdout_json(&hw);
    assert_ne!(json["stop"]["reason"], "run-failed", "{json}");
    assert_eq!(stdout_json(&model)["tee"], "tdx");
}

#[test]
#[cfg_attr(
    not(cvm_hw),
    ignore = "needs an Intel TDX host: --cfg cvm_hw, CVM_HW_TESTS=tdx"
)]
fn the_attesting_guest_attests_on_tdx() {
    if !common::hw_enabled("tdx") {
        return;
    }
    // No image: the built-in attesting guest; its quote comes from the host's QGS
    // (`CVM_HW_QGS`, default vsock:2:4050) and must carry the dry run's MRTD and the
    // nonce binding. `CVM_HW_TDX_COLLATERAL` (as `cvm verify --collateral`) makes the
    // whole verdict checkable.
    let model = cvm(&["--format", "json", "launch", "--tee", "tdx", "--dry-run"]);
    common::succeeded(&model);
    let model = stdout_json(&model);
    let qgs = std::env::var("CVM_HW_QGS").unwrap_or_else(|_| "vsock:2:4050".into());
    let collateral = std::env::var("CVM_HW_TDX_COLLATERAL").ok();
    let mut real = vec![
        "--format",
        "json",
        "launch",
        "--tee",
        "tdx",
        "--attest",
        "--attest-timeout",
        "60s",
        "--qgs",
        &qgs,
        "--serial",
        "none",
    ];
    if let Some(c) = &collateral {
        real.extend_from_slice(&["--collateral", c]);
    }
    let hw = stdout_json(&cvm(&real));
    let v = &hw["attest"]["verdict"];
    assert_eq!(hw["attest"]["evidence"], "tdx", "{hw}");
    assert_eq!(v["claims"]["mrtd"], model["mrtd"], "{hw}");
    if collateral.is_some() {
        assert_eq!(v["verdict"], "pass", "{hw}");
    }
}
