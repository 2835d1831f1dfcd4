//! SNP ID blocks: the layout against an independent tool, and `cvm measure --id-key`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cvm_firmware::sev::id_block::{self, IdBlock};
use ring::rand::SystemRandom;
use std::path::PathBuf;
use std::process::Output;

mod common;

use common::{cvm, shared};

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/keys")
        .join(name)
}

/// The lines `snp-create-id-block` (sev-snp-measure 0.0.13) printed for the test keys.
struct ToolOutput {
    id_block: Vec<u8>,
    id_auth: Vec<u8>,
    id_key_digest: Vec<u8>,
    author_key_digest: Vec<u8>,
}

fn tool_output() -> ToolOutput {
    let text = std::fs::read_to_string(key_path("sev-snp-measure-0.0.13-id-block.txt")).unwrap();
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let (block, auth) = first.split_once(",id-auth=").unwrap();
    let b64 = |s: &str| BASE64.decode(s.trim()).unwrap();
    let field = |line: Option<&str>, name: &str| b64(line.unwrap().strip_prefix(name).unwrap());
    ToolOutput {
        id_block: b64(block.strip_prefix("id-block=").unwrap()),
        id_auth: b64(auth),
        id_key_digest: field(lines.next(), "id_key_hash: "),
        author_key_digest: field(lines.next(), "author_key: "),
    }
}

const TOOL_MEASUREMENT: &str = "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c";

#[test]
fn id_block_matches_sev_snp_measure() {
    let tool = tool_output();
    let rng = SystemRandom::new();
    let id =
        cvm_launcher::keys::load_p384(&key_path("test-only-id-key-sec1.pem"), "ID", &rng).unwrap();
    let author =
        cvm_launcher::keys::load_p384(&key_path("test-only-author-key-pkcs8.pem"), "author", &rng)
            .unwrap();
    let block = IdBlock {
        launch_digest: cvm_firmware::reference::Hex::parse(TOOL_MEASUREMENT)
            .unwrap()
            .0,
        ..IdBlock::default()
    };
    let ours = id_block::sign(&block, &id, Some(&author), &rng).unwrap();
    assert_eq!(ours.id_block.as_slice(), tool.id_block.as_slice());
    assert_eq!(ours.id_key_digest.as_slice(), tool.id_key_digest.as_slice());
    assert_eq!(
        ours.author_key_digest.unwrap().as_slice(),
        tool.author_key_digest.as_slice()
    );
    // Everything but the two (randomised) ECDSA signatures is byte for byte the same.
    assert_eq!(tool.id_auth.len(), ours.id_auth.len());
    for (range, what) in [
        (0..0x40, "algorithms"),
        (0x240..0x680, "ID key"),
        (0x880..0x1000, "author key"),
    ] {
        assert_eq!(
            &ours.id_auth[range.clone()],
            &tool.id_auth[range.clone()],
            "{what}"
        );
    }
}

fn firmware() -> Option<String> {
    shared("reference/inputs/sid/OVMF.amdsev.fd").map(|p| p.display().to_string())
}

fn measure_with(fw: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "measure",
        "--tee",
        "snp",
        "--firmware",
        fw,
        "--vcpu-type",
        "EPYC-v4",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    cvm(&args)
}

#[test]
fn measure_signs_an_id_block_for_its_own_measurement() {
    let Some(fw) = firmware() else { return };
    let tool = tool_output();
    let id = key_path("test-only-id-key-sec1.pem");
    let out = measure_with(
        &fw,
        &[
            "--id-key",
            id.to_str().unwrap(),
            "--family-id",
            "00112233445566778899aabbccddeeff",
            "--guest-svn",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &json["id_block"];
    let block = BASE64.decode(b["id_block"].as_str().unwrap()).unwrap();
    assert_eq!(
        hex::encode(&block[..48]),
        json["measurement"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(&block[0x30..0x40]),
        "00112233445566778899aabbccddeeff"
    );
    assert_eq!(&block[0x54..0x58], &[3, 0, 0, 0]);
    assert_eq!(&block[0x58..0x60], &0x30000_u64.to_le_bytes());
    assert_eq!(b["id_key_digest"], hex::encode(&tool.id_key_digest));
    assert_eq!(b["author_key_enabled"], false);
    assert!(b.get("author_key_digest").is_none());
    assert_eq!(
        BASE64.decode(b["id_auth"].as_str().unwrap()).unwrap().len(),
        0x1000
    );

    // The verifier reads this very output as reference values: the measurement and the
    // ID block's digest and IDs, the values the tool and the block above give.
    use cvm_attest::config::{Bytes, Expected};
    let r = cvm_attest::snp::appraise::Reference::parse(std::str::from_utf8(&out.stdout).unwrap())
        .unwrap();
    assert_eq!(
        r.measurement,
        Expected::value(Bytes(block[..48].try_into().unwrap()))
    );
    assert_eq!(
        r.id_key_digest,
        Expected::value(Bytes(tool.id_key_digest[..].try_into().unwrap()))
    );
    assert_eq!(
        r.family_id,
        Expected::value(Bytes(block[0x30..0x40].try_into().unwrap()))
    );
    assert!(r.author_key_digest.is_skip() && r.host_data.is_skip());
}

#[test]
fn id_block_errors_are_one_line() {
    let Some(fw) = firmware() else { return };
    let p256 = key_path("test-only-p256-key.pem");
    let id = key_path("test-only-id-key-sec1.pem");
    let cases: [(&[&str], i32, &str); 4] = [
        (&["--id-key", p256.to_str().unwrap()], 2, "P-384"),
        (&["--id-key", fw.as_str()], 2, "not a PEM document"),
        (
            &["--id-key", id.to_str().unwrap(), "--guest-policy", "0x1"],
            1,
            "bit 17",
        ),
        (&["--policy", "0x30000"], 1, "--id-key"),
    ];
    for (extra, code, needle) in cases {
        let out = measure_with(&fw, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let out = cvm(&[
        "measure",
        "--tee",
        "sev",
        "--firmware",
        &fw,
        "--id-key",
        id.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("snp only"));
}
