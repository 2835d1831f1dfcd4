//! `cvm collateral fetch` against a real HTTP server on 127.0.0.1 with AMD KDS's URL
//! layout: the SNP test PKI's VCEK, chain and CRL for a report signed with it (trusted
//! through `--root` only), real reports' VCEK URLs (hardware ID and reported TCB, Turin's
//! 8-byte ID and fmcSPL), and the ways a service fails: 429 with Retry-After, 5xx, slow,
//! truncated, oversized and HTML answers, and collateral that does not verify. Nothing
//! is written unless everything verified.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_tests::http_server::{Answer, Server};
use cvm_tests::snp_test_pki::{Key, pki, report};
use cvm_tests::tdx_test_pki::pem;
use cvm_tests::{crate_dir, vectors};
use std::path::{Path, PathBuf};
use std::time::Duration;

const AT: &str = "2026-03-01T00:00:00Z";

/// The test VCEK's URL: generate.sh's hwID (c0ffee00 then 01..3c) and SPLs (bl 3, tee
/// 0, snp 8, ucode 115), as the KDS interface specification lays out a Milan VCEK URL.
fn test_vcek_path() -> String {
    let mut hwid = String::from("c0ffee00");
    for i in 1u8..=60 {
        hwid.push_str(&format!("{i:02x}"));
    }
    format!("/vcek/v1/Milan/{hwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115")
}

/// A server holding the test PKI's collateral at the KDS's paths.
fn test_kds(crl: &str) -> Server {
    let s = Server::start();
    s.on(&test_vcek_path(), vec![Answer::ok(pki("test-vcek.der"))]);
    let mut chain = pem(&pki("test-ask.der")).into_bytes();
    chain.extend(pem(&pki("test-ark.der")).into_bytes());
    s.on("/vcek/v1/Milan/cert_chain", vec![Answer::ok(chain)]);
    s.on("/vcek/v1/Milan/crl", vec![Answer::ok(pki(crl))]);
    s
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cvm-fetch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

use cvm_tests::cvm_json as run;

fn fetch(
    server: &Server,
    evidence: &[&Path],
    out: &Path,
    extra: &[&str],
) -> (u8, serde_json::Value) {
    let root = crate_dir().join("fixtures/snp-test-pki/test-ark.der");
    let mut args = vec!["collateral", "fetch"];
    let ev: Vec<String> = evidence.iter().map(|p| p.display().to_string()).collect();
    for e in &ev {
        args.extend(["--evidence", e.as_str()]);
    }
    let (out_s, root_s) = (out.display().to_string(), root.display().to_string());
    args.extend([
        "--out",
        &out_s,
        "--kds-url",
        &server.url,
        "--root",
        &root_s,
        "--at",
        AT,
    ]);
    args.extend_from_slice(extra);
    let (code, json, _) = run(&args);
    (code, json)
}

fn test_report(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, report(Key::Vcek, |_| {})).unwrap();
    p
}

fn error(json: &serde_json::Value) -> String {
    json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn fetched_collateral_is_verified_written_and_verifies_the_report() {
    let server = test_kds("test-crl-empty.der");
    let work = temp("ok");
    let r = test_report(&work, "report.bin");
    let out = work.join("certs");
    let (code, json) = fetch(&server, &[&r], &out, &[]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["fetched"][0]["platform"], "Milan VCEK");
    assert_eq!(json["fetched"][0]["tee"], "snp");
    assert_eq!(json["requests"], 3);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ark.pem", "ask.pem", "crl.der", "vcek.der"]);
    assert_eq!(
        std::fs::read(out.join("vcek.der")).unwrap(),
        pki("test-vcek.der")
    );
    // What was written is what cvm verify reads.
    let root = crate_dir().join("fixtures/snp-test-pki/test-ark.der");
    let (code, v, err) = run(&[
        "verify",
        "--evidence",
        r.to_str().unwrap(),
        "--certs",
        out.to_str().unwrap(),
        "--crl",
        out.join("crl.der").to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--no-reference",
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{v} {err}");
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_batch_asks_for_each_item_once_and_429_is_waited_out() {
    let server = test_kds("test-crl-empty.der");
    let mut limited = Answer::status(429);
    limited.headers.push(("Retry-After".into(), "1".into()));
    server.on(
        &test_vcek_path(),
        vec![limited, Answer::ok(pki("test-vcek.der"))],
    );
    let work = temp("batch");
    let a = test_report(&work, "a.bin");
    let b = test_report(&work, "b.bin");
    let out = work.join("out");
    let (code, json) = fetch(&server, &[&a, &b], &out, &[]);
    assert_eq!(code, 0, "{json}");
    // The VCEK twice (429, then 200), the chain and the CRL once, for both reports.
    assert_eq!(server.count(&test_vcek_path()), 2, "{:?}", server.log());
    assert_eq!(server.count("/vcek/v1/Milan/cert_chain"), 1);
    assert_eq!(server.count("/vcek/v1/Milan/crl"), 1);
    for d in ["a", "b"] {
        assert!(out.join(d).join("vcek.der").is_file(), "{d}");
    }
    std::fs::remove_dir_all(&work).ok();
}

/// `answer` in place of the CRL: the fetch fails with `code`, naming the URL and `why`,
/// and leaves nothing behind.
fn crl_answer_fails(name: &str, answer: Answer, extra: &[&str], code: u8, why: &str) {
    let server = test_kds("test-crl-empty.der");
    server.on("/vcek/v1/Milan/crl", vec![answer]);
    let work = temp(name);
    let r = test_report(&work, "report.bin");
    let out = work.join("certs");
    let (got, json) = fetch(&server, &[&r], &out, extra);
    assert_eq!(got, code, "{name}: {json}");
    let e = error(&json);
    assert!(
        e.contains("/vcek/v1/Milan/crl") && e.contains(why),
        "{name}: {e}"
    );
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "{name}"
    );
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn server_errors_and_bad_answers_are_collateral_unavailable() {
    crl_answer_fails(
        "5xx",
        Answer::status(503),
        &[],
        4,
        "HTTP 503 after 4 attempts",
    );
    crl_answer_fails("404", Answer::status(404), &[], 4, "HTTP 404");
    let mut slow = Answer::ok(pki("test-crl-empty.der"));
    slow.delay = Duration::from_secs(3);
    crl_answer_fails("slow", slow, &["--timeout", "1s"], 4, "timed out");
    let mut truncated = Answer::ok(pki("test-crl-empty.der"));
    truncated.claimed_len = Some(truncated.body.len() + 100);
    crl_answer_fails("truncated", truncated, &[], 4, "truncated");
    crl_answer_fails(
        "huge",
        Answer::ok(vec![0x30; 2 << 20]),
        &[],
        4,
        "larger than",
    );
    let mut html = Answer::ok(b"<html>sign in</html>".to_vec());
    html.headers = vec![("Content-Type".into(), "text/html; charset=utf-8".into())];
    crl_answer_fails("html", html, &[], 4, "HTML page");
    let mut png = Answer::ok(pki("test-crl-empty.der"));
    png.headers = vec![("Content-Type".into(), "image/png".into())];
    crl_answer_fails("png", png, &[], 4, "Content-Type image/png");
    let mut long_wait = Answer::status(429);
    long_wait
        .headers
        .push(("Retry-After".into(), "3600".into()));
    crl_answer_fails("429", long_wait, &[], 4, "asked to wait 3600 s");
    crl_answer_fails("garbage", Answer::ok(b"not a CRL".to_vec()), &[], 4, "CRL");
}

#[test]
fn collateral_that_does_not_verify_is_not_written() {
    // The CRL revokes the ASK: the chain fails, nothing is kept.
    let server = test_kds("test-crl-revokes-ask.der");
    let work = temp("revoked");
    let r = test_report(&work, "report.bin");
    let out = work.join("certs");
    let (code, json) = fetch(&server, &[&r], &out, &[]);
    assert_eq!(code, 3, "{json}");
    assert!(error(&json).contains("nothing kept"), "{json}");
    assert!(!out.exists());
    // Without the test root, nothing trusts the chain.
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = cvm_launcher::cli::run(
        [
            "cvm",
            "collateral",
            "fetch",
            "--evidence",
            r.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--kds-url",
            &server.url,
            "--at",
            AT,
        ],
        &mut o,
        &mut e,
    )
    .code();
    assert_eq!(code, 3, "{}", String::from_utf8_lossy(&e));
    assert!(!out.exists());
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn real_reports_ask_for_their_vcek_by_hardware_id_and_reported_tcb() {
    let Some(v) = vectors() else { return };
    // From each case's facts (chip_id, reported_tcb): Milan's 64-byte hardware ID;
    // Turin's first 8 bytes, with fmcSPL.
    let cases = [
        (
            "snp/snp-milan-v3-msft",
            "/vcek/v1/Milan/4ffb5cb4fd594f3fee6528fc3fb10370bb38abe89dcd",
            "blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219",
        ),
        (
            "snp/snp-turin-v5-oak",
            "/vcek/v1/Turin/3b42092f69c656d3",
            "fmcSPL=0&blSPL=1&teeSPL=0&snpSPL=2&ucodeSPL=71",
        ),
    ];
    for (case, path_start, query) in cases {
        let server = Server::start();
        let work = temp("real");
        let (code, json) = fetch(&server, &[&v.join(case).join("report.bin")], &work, &[]);
        // The test server has nothing: collateral unavailable, naming the VCEK's URL.
        assert_eq!(code, 4, "{json}");
        let log = server.log();
        assert_eq!(log.len(), 1, "{log:?}");
        let (path, q) = log[0].split_once('?').unwrap();
        assert!(path.starts_with(path_start), "{case}: {path}");
        assert_eq!(
            cvm_tests::http_server::route(&format!("/x?{q}")),
            cvm_tests::http_server::route(&format!("/x?{query}")),
            "{case}"
        );
        if case.contains("turin") {
            assert_eq!(
                path.len(),
                path_start.len(),
                "Turin's hardware ID is 8 bytes"
            );
        } else {
            assert_eq!(path.rsplit('/').next().unwrap().len(), 128, "{path}");
        }
        std::fs::remove_dir_all(&work).ok();
    }
}

fn verify_fetching(server: &Server, r: &Path, cache: &Path, at: &str) -> (u8, serde_json::Value) {
    let root = crate_dir().join("fixtures/snp-test-pki/test-ark.der");
    let (code, json, err) = run(&[
        "verify",
        "--evidence",
        r.to_str().unwrap(),
        "--fetch",
        "--kds-url",
        &server.url,
        "--cache",
        cache.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--no-reference",
        "--at",
        at,
    ]);
    assert!(!err.contains("panicked"), "{err}");
    (code, json)
}

#[test]
fn verify_fetch_caches_what_verified_and_never_trusts_the_cache_more_than_the_network() {
    let server = test_kds("test-crl-empty.der");
    let work = temp("cache");
    let r = test_report(&work, "report.bin");
    let cache = work.join("cache");
    let (code, json) = verify_fetching(&server, &r, &cache, AT);
    assert_eq!(code, 0, "{json}");
    assert_eq!(server.log().len(), 3);
    // The documented layout: DIR/<host>/<path>[@<query>].
    let host = server.url.trim_start_matches("http://").replace(':', "_");
    let crl_entry = cache.join(&host).join("vcek/v1/Milan/crl");
    assert_eq!(
        std::fs::read(&crl_entry).unwrap(),
        pki("test-crl-empty.der")
    );
    let vcek_entry = cache.join(&host).join("vcek/v1/Milan").join(format!(
        "{}@blSPL=3,teeSPL=0,snpSPL=8,ucodeSPL=115",
        test_vcek_path()
            .split('/')
            .nth(4)
            .unwrap()
            .split('?')
            .next()
            .unwrap()
    ));
    assert_eq!(std::fs::read(&vcek_entry).unwrap(), pki("test-vcek.der"));
    // Again: every item from the cache, no request.
    let (code, json) = verify_fetching(&server, &r, &cache, AT);
    assert_eq!(code, 0, "{json}");
    assert_eq!(server.log().len(), 3, "{:?}", server.log());
    // A tampered entry (another certificate in the VCEK's place) fails verification:
    // every cached item is fetched again, and the good ones replace them.
    std::fs::write(&vcek_entry, pki("test-vlek.der")).unwrap();
    let (code, json) = verify_fetching(&server, &r, &cache, AT);
    assert_eq!(code, 0, "{json}");
    assert_eq!(server.count(&test_vcek_path()), 2);
    assert_eq!(server.count("/vcek/v1/Milan/cert_chain"), 2);
    assert_eq!(std::fs::read(&vcek_entry).unwrap(), pki("test-vcek.der"));
    // Expiry is judged at the verification time: after the test ASK's notAfter
    // (2030-01-01) the cached chain is stale and asked for again; the service's chain
    // is just as expired, so the verdict fails on it.
    let (code, json) = verify_fetching(&server, &r, &cache, "2030-06-01T00:00:00Z");
    assert_eq!(code, 3, "{json}");
    assert_eq!(server.count("/vcek/v1/Milan/cert_chain"), 3);
    assert!(error(&json).contains("nothing kept"), "{json}");
    std::fs::remove_dir_all(&work).ok();
}
