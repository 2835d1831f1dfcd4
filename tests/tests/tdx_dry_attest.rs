//! `cvm launch --tee tdx --dry-run --attest` end to end without hardware: the model's TDX
//! module answers TDG.MR.REPORT, the TDREPORT goes to a QGS at `--qgs` in Intel's QGS
//! message protocol, and the QGS test server here turns it into a quote signed by the
//! Intel test PKI (tests/fixtures/tdx-test-pki, trusted only through `--root`). The
//! verdict checks the plan's MRTD, the owner's registers and the nonce binding: the
//! plumbing, not the hardware.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_tests::tdx_test_pki::{collateral_json, good_chain, pki, quote};
use cvm_tests::{crate_dir, reference_dir};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// The TD quote body a quoting enclave makes of a TDREPORT (TDX module ABI TDREPORT_STRUCT;
/// Intel's TD quote body): TEE_TCB_INFO's SVNs, MRSEAM, MRSIGNERSEAM and attributes,
/// then TDINFO's attributes, XFAM, MRTD, owner registers and RTMRs, then REPORTDATA.
fn body(tdreport: &[u8]) -> [u8; 584] {
    let mut b = [0u8; 584];
    b[0..16].copy_from_slice(&tdreport[0x108..0x118]);
    b[16..64].copy_from_slice(&tdreport[0x118..0x148]);
    b[64..112].copy_from_slice(&tdreport[0x148..0x178]);
    b[112..120].copy_from_slice(&tdreport[0x178..0x180]);
    b[120..520].copy_from_slice(&tdreport[0x200..0x390]);
    b[520..584].copy_from_slice(&tdreport[0x80..0xc0]);
    b
}

/// A QGS that answers one GET_QUOTE_REQ with a quote on the test PKI.
fn qgs(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("cvm-qgs-dry-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; usize::try_from(u32::from_be_bytes(len)).unwrap()];
        s.read_exact(&mut m).unwrap();
        // Header (16), then report_size and id_size, then the report.
        let report_size =
            usize::try_from(u32::from_le_bytes(m[16..20].try_into().unwrap())).unwrap();
        assert_eq!(report_size, 1024);
        let q = quote(&good_chain(), &body(&m[24..24 + report_size]));
        let size = u32::try_from(16 + 8 + q.len()).unwrap();
        let mut out = size.to_be_bytes().to_vec();
        out.extend(1u16.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(1u32.to_le_bytes()); // GET_QUOTE_RESP
        out.extend(size.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(u32::try_from(q.len()).unwrap().to_le_bytes());
        out.extend(&q);
        s.write_all(&out).unwrap();
    });
    path
}

fn run(args: &[&str]) -> (u8, serde_json::Value) {
    let (code, json, _) = cvm_tests::cvm_json(args);
    (code, json)
}

fn check<'v>(v: &'v serde_json::Value, name: &str) -> &'v str {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))["outcome"]
        .as_str()
        .unwrap()
}

#[test]
fn the_model_and_a_test_qgs_attest_a_td() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let fw = reference.join("inputs/sid/OVMF.inteltdx.ms.fd");
    let collateral =
        std::env::temp_dir().join(format!("cvm-dry-collateral-{}.json", std::process::id()));
    std::fs::write(
        &collateral,
        collateral_json(&pki("test-tcb.der"), "test-pck-crl.der"),
    )
    .unwrap();
    let root = crate_dir().join("fixtures/tdx-test-pki/test-root.der");
    let config_id = "c0".repeat(48);
    let socket = qgs("root");
    let (fw, collateral, root, addr) = (
        fw.display().to_string(),
        collateral.display().to_string(),
        root.display().to_string(),
        format!("unix:{}", socket.display()),
    );
    let (code, json) = run(&[
        "launch",
        "--tee",
        "tdx",
        "--dry-run",
        "--attest",
        "--firmware",
        &fw,
        "--qgs",
        &addr,
        "--collateral",
        &collateral,
        "--root",
        &root,
        "--at",
        "2026-03-01T00:00:00Z",
        "--mrconfigid",
        &config_id,
    ]);
    let v = &json["attest"]["verdict"];
    assert_eq!(code, 0, "{json}");
    assert_eq!(v["verdict"], "pass");
    for c in [
        "reference.mrtd",
        "reference.mr_config_id",
        "reference.mr_owner",
        "reference.report_data",
        "launch.reference",
        "quote.signature",
        "tcb.status",
    ] {
        assert_eq!(check(v, c), "pass", "{c}");
    }
    // The model runs no firmware: its RTMRs are not compared.
    assert_eq!(check(v, "reference.rtmr0"), "skipped");
    assert_eq!(v["claims"]["td"]["mr_td"], json["mrtd"]);
    assert_eq!(v["claims"]["td"]["mr_config_id"], config_id.as_str());
    std::fs::remove_file(&socket).ok();
    // The attesting guest (no image given) extends no RTMR: its plan predicts all four
    // zero, which the model's TDREPORT carries, so they are compared and pass.
    let socket = qgs("builtin");
    let addr = format!("unix:{}", socket.display());
    let (code, json) = run(&[
        "launch",
        "--tee",
        "tdx",
        "--dry-run",
        "--attest",
        "--qgs",
        &addr,
        "--collateral",
        &collateral,
        "--root",
        &root,
        "--at",
        "2026-03-01T00:00:00Z",
    ]);
    let v = &json["attest"]["verdict"];
    assert_eq!(code, 0, "{json}");
    assert_eq!(v["verdict"], "pass");
    let zero = "00".repeat(48);
    for i in 0..4 {
        assert_eq!(check(v, &format!("reference.rtmr{i}")), "pass", "rtmr{i}");
        assert_eq!(json["rtmr_expected_from_plan"][i], zero.as_str());
        assert_eq!(v["claims"]["td"]["rtmr"][i], zero.as_str(), "{v}");
    }
    assert_eq!(json["tdvf_recipe"]["name"], "none");
    std::fs::remove_file(&socket).ok();
    // Without the test root nothing trusts the quote; without --qgs there is none.
    let socket = qgs("no-root");
    let addr = format!("unix:{}", socket.display());
    let (code, json) = run(&[
        "launch",
        "--tee",
        "tdx",
        "--dry-run",
        "--attest",
        "--firmware",
        &fw,
        "--qgs",
        &addr,
        "--collateral",
        &collateral,
        "--at",
        "2026-03-01T00:00:00Z",
    ]);
    assert_ne!(code, 0);
    assert_eq!(check(&json["attest"]["verdict"], "pck.ca"), "fail");
    std::fs::remove_file(&socket).ok();
    let (code, json) = run(&[
        "launch",
        "--tee",
        "tdx",
        "--dry-run",
        "--attest",
        "--firmware",
        &fw,
    ]);
    assert_eq!(code, 1, "{json}");
    assert!(json["error"]["message"].as_str().unwrap().contains("--qgs"));
}
