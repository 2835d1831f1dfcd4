//! Creates a realm on a real Arm CCA host with KVM's v14 realm interface, for an
//! operator:
//!
//!     RUSTFLAGS="--cfg cvm_hw" CVM_HW_TESTS=cca cargo test -p cvm-launcher --features cca --test hw_cca
//!
//! with `CVM_HW_CCA_KERNEL` an arm64 Linux Image (or gzip of one) and
//! `CVM_HW_CCA_HOST_CONFIG` the host's capabilities in `cvm measure`'s `--host-config`
//! format (ipa_bits, num_bps, num_wps as the RMM reports them). Ignored unless `--cfg
//! cvm_hw`; skipped unless `CVM_HW_TESTS` names `cca`. The dry run and the hardware launch
//! of the same command line must both succeed, with the same predicted RIM, and the realm
//! must have been entered (it runs until `--timeout`, or stops itself). The RIM the
//! hardware took is only in the realm's attestation token.
#![cfg(target_os = "linux")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, stdout_json};

#[test]
#[cfg_attr(
    not(cvm_hw),
    ignore = "needs an Arm CCA host with KVM's v14 realm interface: --cfg cvm_hw, CVM_HW_TESTS=cca"
)]
fn realm_launch_is_accepted_by_the_hardware() {
    if !common::hw_enabled("cca") {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k}"));
    let (kernel, config) = (var("CVM_HW_CCA_KERNEL"), var("CVM_HW_CCA_HOST_CONFIG"));
    let base = [
        "--format",
        "json",
        "launch",
        "--tee",
        "cca",
        "--kernel",
        &kernel,
        "--host-config",
        &config,
        "--memory",
        "512M",
        "--vcpus",
        "1",
        "--cmdline",
        "earlycon=uart,mmio,0x1000000 console=ttyS0",
    ];
    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let model = cvm(&dry);
    common::succeeded(&model);
    let mut real = base.to_vec();
    real.extend_from_slice(&["--timeout", "20s"]);
    let hw = cvm(&real);
    common::succeeded(&hw);
    let (m, h) = (stdout_json(&model), stdout_json(&hw));
    assert_eq!(m["rim"], h["predicted_rim"], "{m} {h}");
    assert!(h["outcome"].is_string(), "{h}");
}
