//! The built-in attesting guest measured by an independent tool: `cvm guest image` writes
//! the image, sev-snp-measure 0.0.13 (PyPI; the version ../shared/reference's tables come
//! from) computes its SNP launch digest, and `cvm measure --tee snp` with no image must
//! give the same. The tool is found through `CVM_SEV_SNP_MEASURE`, which .ci/run sets
//! after installing it into a virtual environment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_tests::cvm_json;
use cvm_tests::present as available;
use sha2::Digest as _;
use std::path::PathBuf;
use std::process::Command;

fn sev_snp_measure() -> Option<PathBuf> {
    std::env::var_os("CVM_SEV_SNP_MEASURE")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

#[test]
fn sev_snp_measure_agrees_on_the_attesting_guest() {
    let tool = sev_snp_measure();
    if !available(
        tool.is_some(),
        "sev-snp-measure not found: set CVM_SEV_SNP_MEASURE (.ci/run installs it)",
    ) {
        return;
    }
    let tool = tool.unwrap();
    let image = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("attesting-guest.fd");
    let image_arg = image.to_str().unwrap();
    let (code, written, err) = cvm_json(&["guest", "image", "--out", image_arg]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(written["size"], bytes.len());
    assert_eq!(
        written["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)).as_str()
    );
    // The CPU models with different signatures, both VMM conventions sev-snp-measure
    // and cvm share (EC2 orders the CPUID page last and sets rdx), and KVM's DebugSwap
    // feature bit.
    let cases: [(&str, &str, &str); 5] = [
        ("EPYC-v4", "QEMU", "0x1"),
        ("EPYC-Milan", "QEMU", "0x1"),
        ("EPYC-Genoa", "QEMU", "0x21"),
        ("EPYC-Milan", "ec2", "0x1"),
        ("EPYC-Turin", "QEMU", "0x1"),
    ];
    for (cpu, vmm, features) in cases {
        let out = Command::new(&tool)
            .args([
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                cpu,
                "--vmm-type",
                vmm,
                "--guest-features",
                features,
                "--ovmf",
                image_arg,
                "--output-format",
                "hex",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sev-snp-measure {cpu} {vmm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(expected.len(), 96, "{expected}");
        let vmm = vmm.to_ascii_lowercase();
        let (code, measured, err) = cvm_json(&[
            "measure",
            "--tee",
            "snp",
            "--vcpu-type",
            cpu,
            "--vmm",
            &vmm,
            "--guest-features",
            features,
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(measured["firmware"]["path"], "(built-in attesting guest)");
        assert_eq!(
            measured["measurement"],
            expected.as_str(),
            "{cpu} {vmm} {features}"
        );
    }
}
