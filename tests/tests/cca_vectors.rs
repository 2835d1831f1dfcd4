//! Every Arm CCA token of ../shared/vectors through `cvm verify`: each case as
//! results/GROUND_TRUTH.tsv records it (the broken-binding token fails for its binding),
//! every claim against the facts the vectors' curator recorded from the upstream sources,
//! with each form of trust anchor (the store, the JWK, the PEM key); every CCA negative
//! fails for its reason with its exit code; reference values, the challenge and the
//! lifecycle policy are appraised; and ES256 and ES512 tokens built here (signed by ring
//! and RustCrypto's p521) verify, and fail when a byte changes.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_tests::{case_fact, read_tsv, vectors};
use std::path::{Path, PathBuf};

fn run(args: &[&str]) -> (u8, serde_json::Value) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let (code, json, _) = cvm_tests::cvm_json(&all);
    (code, json)
}

fn verify(dir: &Path, anchor: (&str, &Path), extra: &[&str]) -> (u8, serde_json::Value) {
    let token = dir.join("token.cbor");
    let a = anchor.1.display().to_string();
    let mut args = vec!["--evidence", token.to_str().unwrap(), anchor.0, &a];
    if !extra.contains(&"--reference") {
        args.push("--no-reference");
    }
    args.extend_from_slice(extra);
    run(&args)
}

fn verdict(json: &serde_json::Value) -> &serde_json::Value {
    &json["verdicts"][0]
}

fn failed(json: &serde_json::Value) -> Vec<String> {
    verdict(json)["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The anchors a case directory offers.
fn anchors(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut a = vec![
        ("--tastore", dir.join("tastore.json")),
        ("--cpak", dir.join("cpak.jwk.json")),
    ];
    if dir.join("cpak.pub.pem").is_file() {
        a.push(("--cpak", dir.join("cpak.pub.pem")));
    }
    a
}

fn assert_facts(id: &str, dir: &Path, claims: &serde_json::Value) {
    let fact = |k: &str| case_fact(dir, k).unwrap_or_else(|| panic!("{id}: no fact {k}"));
    let p = &claims["platform"];
    let r = &claims["realm"];
    assert_eq!(p["challenge"], fact("platform_challenge"), "{id}");
    assert_eq!(p["implementation_id"], fact("implementation_id"), "{id}");
    assert_eq!(p["instance_id"], fact("instance_id"), "{id}");
    assert_eq!(
        format!("{:#x}", p["lifecycle"].as_u64().unwrap()),
        fact("lifecycle"),
        "{id}"
    );
    assert_eq!(r["challenge"], fact("realm_challenge"), "{id}");
    assert_eq!(r["rim"], fact("rim"), "{id}");
    assert_eq!(r["rems"][0], fact("rem0"), "{id}");
    assert_eq!(r["personalization_value"], fact("rpv"), "{id}");
    assert_eq!(r["hash_algo"], fact("realm_hash_alg"), "{id}");
    assert_eq!(r["rak_hash_algo"], fact("rak_hash_alg"), "{id}");
    let alg = |a: &str| match a {
        "-7" => "ES256",
        "-35" => "ES384",
        "-36" => "ES512",
        other => panic!("{id}: alg {other}"),
    };
    assert_eq!(claims["platform_alg"], alg(&fact("platform_alg")), "{id}");
    assert_eq!(claims["realm_alg"], alg(&fact("realm_alg")), "{id}");
}

#[test]
fn every_cca_case_matches_the_ground_truth() {
    let Some(v) = vectors() else { return };
    let rows: Vec<_> = read_tsv(&v.join("results/GROUND_TRUTH.tsv"))
        .into_iter()
        .filter(|r| r["tech"] == "cca" && r["kind"] == "positive")
        .collect();
    assert_eq!(rows.len(), 6, "the CCA cases of GROUND_TRUTH.tsv");
    for row in rows {
        let id = &row["case"];
        let dir = v.join("cca").join(id);
        let pass = row["expected"].starts_with("PASS");
        for (opt, path) in anchors(&dir) {
            let (code, json) = verify(&dir, (opt, &path), &[]);
            let what = format!("{id} with {opt} {}", path.display());
            assert_eq!(verdict(&json)["tee"], "cca", "{what}");
            if pass {
                assert_eq!(code, 0, "{what}: {json}");
                assert!(failed(&json).is_empty(), "{what}");
            } else {
                // The one failing case: both signatures valid, the binding broken.
                assert!(row["expected"].contains("hash(RAK)"), "{what}");
                assert_eq!(code, 3, "{what}: {json}");
                assert_eq!(failed(&json), ["realm.binding"], "{what}");
            }
            assert_facts(id, &dir, &verdict(&json)["claims"]);
        }
    }
}

/// The check a negative must fail, and the exit code, from its expected reason.
fn must_fail(expected: &str) -> (&'static str, u8) {
    if expected.contains("unknown collection tag") || expected.contains("malformed") {
        ("token.parse", 2)
    } else if expected.contains("platform signature") {
        ("platform.signature", 3)
    } else if expected.contains("realm signature") {
        ("realm.signature", 3)
    } else if expected.contains("hash(RAK)") {
        ("realm.binding", 3)
    } else {
        panic!("no rule for {expected:?}")
    }
}

#[test]
fn every_cca_negative_fails_for_its_reason() {
    let Some(v) = vectors() else { return };
    let text = std::fs::read_to_string(v.join("neg/negatives.json")).unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let negatives: Vec<_> = list.iter().filter(|n| n["tech"] == "cca").collect();
    assert_eq!(negatives.len(), 14);
    for n in negatives {
        let id = n["id"].as_str().unwrap();
        let dir = v.join("neg/cca").join(id);
        let (check, want) = must_fail(n["expected"].as_str().unwrap());
        // --tee cca: a token whose outer tag is wrong is still judged as a token.
        let (code, json) = verify(
            &dir,
            ("--tastore", &dir.join("tastore.json")),
            &["--tee", "cca"],
        );
        assert_eq!(code, want, "{id}: {json}");
        assert_eq!(failed(&json), [check], "{id}: {json}");
    }
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cvm-cca-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn reference_values_challenge_lifecycle_and_anchors_are_appraised() {
    let Some(v) = vectors() else { return };
    let dir = v.join("cca/cca-ffm00-tag399");
    let store = dir.join("tastore.json");
    let fact = |k: &str| case_fact(&dir, k).unwrap();
    let work = temp("appraise");
    let write = |name: &str, text: String| {
        let p = work.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let good = write(
        "good.toml",
        format!(
            "tee = \"cca\"\nrim = \"{}\"\nrem0 = \"{}\"\nrpv = \"{}\"\nimplementation_id = \"{}\"\n",
            fact("rim"),
            fact("rem0"),
            fact("rpv"),
            fact("implementation_id")
        ),
    );
    let a = ("--tastore", store.as_path());
    let (code, json) = verify(&dir, a, &["--reference", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{json}");
    let mut bad_rim = fact("rim");
    bad_rim.replace_range(0..2, "ff");
    let bad = write("bad.toml", format!("rim = \"{bad_rim}\"\n"));
    let (code, json) = verify(&dir, a, &["--reference", bad.to_str().unwrap()]);
    assert_eq!(code, 5, "{json}");
    assert_eq!(failed(&json), ["reference.rim"]);
    // The challenge: the realm's, and another.
    let (code, json) = verify(&dir, a, &["--report-data", &fact("realm_challenge")]);
    assert_eq!(code, 0, "{json}");
    let (code, json) = verify(&dir, a, &["--report-data", &"00".repeat(64)]);
    assert_eq!(code, 5, "{json}");
    assert_eq!(failed(&json), ["reference.report_data"]);
    // The lifecycle (0x3003, secured) against a policy that accepts only debug states.
    let debug = write(
        "policy.toml",
        "accepted_lifecycles = [\"non-psa-rot-debug\"]\n".into(),
    );
    let (code, json) = verify(&dir, a, &["--policy", debug.to_str().unwrap()]);
    assert_eq!(code, 5, "{json}");
    assert_eq!(failed(&json), ["policy.lifecycle"]);
    // Software components: the token's own measurements pass, a list without them fails.
    let (_, json) = verify(&dir, a, &[]);
    let comps = verdict(&json)["claims"]["platform"]["sw_components"].clone();
    let mut toml = String::from("skip_measurement = true\n");
    for c in comps.as_array().unwrap() {
        toml.push_str(&format!(
            "[[sw_components]]\nmeasurement = \"{}\"\n",
            c["measurement"].as_str().unwrap()
        ));
    }
    let known = write("components.toml", toml);
    let (code, json) = verify(&dir, a, &["--reference", known.to_str().unwrap()]);
    assert_eq!(code, 0, "{json}");
    let unknown = write(
        "unknown.toml",
        format!(
            "skip_measurement = true\n[[sw_components]]\nmeasurement = \"{}\"\n",
            "11".repeat(32)
        ),
    );
    let (code, json) = verify(&dir, a, &["--reference", unknown.to_str().unwrap()]);
    assert_eq!(code, 5, "{json}");
    assert_eq!(failed(&json), ["reference.sw_components"]);
    // A store whose entry is for another instance: no anchor for this platform (exit 4).
    let other = std::fs::read_to_string(&store)
        .unwrap()
        .replace(&fact("instance_id"), &format!("01{}", "ee".repeat(32)));
    let other = write("other.json", other);
    let (code, json) = verify(&dir, ("--tastore", &other), &[]);
    assert_eq!(code, 4, "{json}");
    assert_eq!(failed(&json), ["platform.anchor"]);
    // Options of other TEEs are refused; a token needs an anchor.
    let token = dir.join("token.cbor");
    let (code, _) = run(&["--evidence", token.to_str().unwrap(), "--no-reference"]);
    assert_eq!(code, 1);
    let (code, _) = run(&[
        "--evidence",
        token.to_str().unwrap(),
        "--tastore",
        store.to_str().unwrap(),
        "--certs",
        work.to_str().unwrap(),
        "--no-reference",
    ]);
    assert_eq!(code, 1);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn es512_and_es256_tokens_verify_and_a_changed_byte_fails() {
    let work = temp("algs");
    let jwk = work.join("cpak.jwk.json");
    std::fs::write(&jwk, cvm_tests::cca_test_token::cpak_jwk()).unwrap();
    let good = cvm_tests::cca_test_token::token([0x99; 32]);
    std::fs::write(work.join("token.cbor"), &good).unwrap();
    let (code, json) = verify(&work, ("--cpak", &jwk), &[]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(verdict(&json)["claims"]["platform_alg"], "ES512");
    assert_eq!(verdict(&json)["claims"]["realm_alg"], "ES256");
    assert_eq!(verdict(&json)["claims"]["realm"]["rim"], "99".repeat(32));
    // The RIM byte inside the realm token: the realm signature fails.
    let at = good.windows(32).position(|w| w == [0x99; 32]).unwrap();
    let mut bad = good.clone();
    bad[at] ^= 1;
    std::fs::write(work.join("token.cbor"), &bad).unwrap();
    let (code, json) = verify(&work, ("--cpak", &jwk), &[]);
    assert_eq!(code, 3, "{json}");
    assert_eq!(failed(&json), ["realm.signature"]);
    // The lifecycle inside the platform token: the ES512 signature fails.
    let lc = good
        .windows(5)
        .position(|w| w == [0x19, 0x09, 0x5b, 0x19, 0x30])
        .unwrap();
    let mut bad = good.clone();
    bad[lc + 4] ^= 0x01;
    std::fs::write(work.join("token.cbor"), &bad).unwrap();
    let (code, json) = verify(&work, ("--cpak", &jwk), &[]);
    assert_eq!(code, 3, "{json}");
    assert!(
        failed(&json).contains(&"platform.signature".to_owned()),
        "{json}"
    );
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn cvm_measure_output_is_taken_as_reference_values() {
    let Some(v) = vectors() else { return };
    let Some(r) = cvm_tests::reference_dir() else {
        return;
    };
    let dir = v.join("cca/cca-ffm00-tag399");
    let work = temp("handoff");
    let kernel = r.join("inputs/cca/linux.bin").display().to_string();
    let (code, measured, err) = cvm_tests::cvm_json(&[
        "measure",
        "--tee",
        "cca",
        "--vmm",
        "kvmtool",
        "--num-bps",
        "2",
        "--num-wps",
        "2",
        "--memory",
        "512M",
        "--kernel",
        &kernel,
    ]);
    assert_eq!(code, 0, "{err}");
    let file = work.join("measure.json");
    std::fs::write(&file, measured.to_string()).unwrap();
    let (code, json) = verify(
        &dir,
        ("--tastore", &dir.join("tastore.json")),
        &["--reference", file.to_str().unwrap()],
    );
    // The FVP token's realm is not this one: the RIM is compared, and differs.
    assert_eq!(code, 5, "{json}");
    assert_eq!(failed(&json), ["reference.rim"]);
    let reason = verdict(&json)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "reference.rim")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains(measured["rim"].as_str().unwrap()),
        "{reason}"
    );
    std::fs::remove_dir_all(&work).ok();
}
