//! Intel's PCS (API v4) and PCCS through `cvm collateral fetch`, `cvm verify --fetch` and
//! offline bundles, against a real HTTP server on 127.0.0.1 that serves the recorded
//! collateral of ../shared/vectors at the services' paths, with the issuer chains in
//! their headers, percent-encoded as Intel sends them: fetched items verified with the
//! quote before they are written, cached by their validity, a tampered cache entry
//! refused, and bundles (SNP and TDX together) verifying offline and again at use.
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

const UPTODATE: &str = "tdx/tdx-v4-phala-b0c06f-uptodate";
/// The case's verify_time (its collateral is valid 2025-06-19..2025-07-19).
const AT: &str = "2025-07-01T00:00:00Z";

/// Percent-encodes everything but RFC 3986's unreserved characters, as Intel's PCS
/// encodes the PEM of its `*-Issuer-Chain` headers.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
}

/// A PCS response for a signed item: `{"<key>":<exact signed body>,"signature":"<hex>"}`.
fn signed_response(dir: &Path, stem: &str, key: &str) -> Vec<u8> {
    let body = String::from_utf8(read(dir, &format!("{stem}.json"))).unwrap();
    let sig = hex::encode(read(dir, &format!("{stem}.sig.bin")));
    format!("{{\"{key}\":{body},\"signature\":\"{sig}\"}}").into_bytes()
}

fn with_chain(body: Vec<u8>, header: &str, chain: &[u8]) -> Answer {
    let mut a = Answer::ok(body);
    a.headers
        .push((header.into(), percent(std::str::from_utf8(chain).unwrap())));
    a
}

/// The paths a PCCS serves a quote's collateral at (`tee`: "tdx" or "sgx").
struct Paths {
    tcb: String,
    qe: String,
    pck_crl: String,
    root_crl: &'static str,
}

fn paths(tee: &str, fmspc: &str, ca: &str) -> Paths {
    Paths {
        tcb: format!("/{tee}/certification/v4/tcb?fmspc={fmspc}"),
        qe: format!("/{tee}/certification/v4/qe/identity"),
        pck_crl: format!("/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"),
        root_crl: "/sgx/certification/v4/rootcacrl",
    }
}

/// A PCCS on 127.0.0.1 serving the recorded collateral of `case` (a vectors directory).
fn pccs(case: &Path, p: &Paths) -> Server {
    let s = Server::start();
    serve(&s, case, p);
    s
}

fn serve(s: &Server, case: &Path, p: &Paths) {
    let c = case.join("collateral");
    let signing = read(&c, "tcb_signing_chain.pem");
    s.on(
        &p.tcb,
        vec![with_chain(
            signed_response(&c, "tcb_info", "tcbInfo"),
            "TCB-Info-Issuer-Chain",
            &signing,
        )],
    );
    s.on(
        &p.qe,
        vec![with_chain(
            signed_response(&c, "qe_identity", "enclaveIdentity"),
            "SGX-Enclave-Identity-Issuer-Chain",
            &signing,
        )],
    );
    s.on(
        &p.pck_crl,
        vec![with_chain(
            read(&c, "pck_crl.der"),
            "SGX-PCK-CRL-Issuer-Chain",
            &read(&c, "pck_crl_issuer_chain.pem"),
        )],
    );
    // PCCS answers the root CA CRL in hex (Intel's own host serves DER).
    s.on(
        p.root_crl,
        vec![Answer::ok(
            hex::encode(read(&c, "root_ca_crl.der")).into_bytes(),
        )],
    );
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cvm-intel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

use cvm_tests::cvm_json as run;

fn error(json: &serde_json::Value) -> String {
    json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn a_quote_s_collateral_is_fetched_verified_written_and_verifies_it() {
    let Some(v) = vectors() else { return };
    let case = v.join(UPTODATE);
    let server = pccs(&case, &paths("tdx", "B0C06F000000", "platform"));
    let work = temp("fetch");
    let out = work.join("collateral");
    let quote = case.join("quote.bin");
    let (code, json, _) = run(&[
        "collateral",
        "fetch",
        "--evidence",
        quote.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pcs-url",
        &server.url,
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["fetched"][0]["tee"], "tdx");
    assert_eq!(
        json["fetched"][0]["platform"],
        "FMSPC B0C06F000000, PCK Platform CA"
    );
    assert_eq!(json["requests"], 4, "{:?}", server.log());
    assert_eq!(
        names(&out),
        [
            "pck_crl.der",
            "pck_crl_issuer_chain.pem",
            "qe_identity.json",
            "qe_identity_issuer_chain.pem",
            "root_ca_crl.der",
            "tcb_info.json",
            "tcb_signing_chain.pem"
        ]
    );
    // The issuer chains decoded from their headers, the root CRL from PCCS's hex.
    let c = case.join("collateral");
    assert_eq!(
        read(&out, "tcb_signing_chain.pem"),
        read(&c, "tcb_signing_chain.pem")
    );
    assert_eq!(read(&out, "root_ca_crl.der"), read(&c, "root_ca_crl.der"));
    // What was written is what cvm verify reads: the case's ground truth, UpToDate.
    let (code, json, err) = run(&[
        "verify",
        "--evidence",
        quote.to_str().unwrap(),
        "--collateral",
        out.to_str().unwrap(),
        "--no-reference",
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json} {err}");
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn collateral_that_does_not_fit_or_verify_is_refused_and_nothing_written() {
    let Some(v) = vectors() else { return };
    let case = v.join(UPTODATE);
    let p = paths("tdx", "B0C06F000000", "platform");
    let quote = case.join("quote.bin");
    let fetch = |server: &Server, out: &Path, at: &str| {
        run(&[
            "collateral",
            "fetch",
            "--evidence",
            quote.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--pcs-url",
            &server.url,
            "--at",
            at,
        ])
    };
    let work = temp("refused");
    // A TCB Info changed by one character after Intel signed it: signature (exit 3).
    let server = pccs(&case, &p);
    let c = case.join("collateral");
    let forged = String::from_utf8(signed_response(&c, "tcb_info", "tcbInfo"))
        .unwrap()
        .replacen("UpToDate", "UpToDatE", 1)
        .into_bytes();
    server.on(
        &p.tcb,
        vec![with_chain(
            forged,
            "TCB-Info-Issuer-Chain",
            &read(&c, "tcb_signing_chain.pem"),
        )],
    );
    let out = work.join("forged");
    let (code, json, _) = fetch(&server, &out, AT);
    assert_eq!(code, 3, "{json}");
    assert!(error(&json).contains("collateral.tcb_info"), "{json}");
    assert!(!out.exists());
    // The collateral of another platform (an SGX one, FMSPC 00A067110000) served for
    // this one: the TCB Info does not fit the quote (exit 4), nothing written.
    let other = pccs(&case, &p);
    let sgx = v.join("tdx/sgx-v3-phala-00a06711/collateral");
    other.on(
        &p.tcb,
        vec![with_chain(
            signed_response(&sgx, "tcb_info", "tcbInfo"),
            "TCB-Info-Issuer-Chain",
            &read(&sgx, "tcb_signing_chain.pem"),
        )],
    );
    let out = work.join("other");
    let (code, json, _) = fetch(&other, &out, AT);
    assert_eq!(code, 4, "{json}");
    assert!(error(&json).contains("collateral.tcb_info.kind"), "{json}");
    assert!(!out.exists());
    // No issuer chain header: collateral unavailable, naming the URL and the header.
    let bare = pccs(&case, &p);
    bare.on(
        &p.qe,
        vec![Answer::ok(signed_response(
            &c,
            "qe_identity",
            "enclaveIdentity",
        ))],
    );
    let out = work.join("bare");
    let (code, json, _) = fetch(&bare, &out, AT);
    assert_eq!(code, 4, "{json}");
    let e = error(&json);
    assert!(
        e.contains("/tdx/certification/v4/qe/identity")
            && e.contains("SGX-Enclave-Identity-Issuer-Chain"),
        "{e}"
    );
    assert!(!out.exists());
    // Expired at the verification time: the collateral's category (exit 4).
    let out = work.join("late");
    let (code, json, _) = fetch(&pccs(&case, &p), &out, "2025-07-25T00:00:00Z");
    assert_eq!(code, 4, "{json}");
    assert!(error(&json).contains("expired"), "{json}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn an_sgx_quote_asks_the_sgx_paths() {
    let Some(v) = vectors() else { return };
    let case = v.join("tdx/sgx-v3-phala-00a06711");
    let fmspc = cvm_tests::case_fact(&case, "fmspc").unwrap_or_else(|| "00A067110000".into());
    let ca = cvm_tests::case_fact(&case, "pck_ca").unwrap_or_else(|| "processor".into());
    let server = pccs(&case, &paths("sgx", &fmspc.to_ascii_uppercase(), &ca));
    let work = temp("sgx");
    let out = work.join("c");
    let quote = case.join("quote.bin");
    let (code, json, _) = run(&[
        "collateral",
        "fetch",
        "--evidence",
        quote.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pcs-url",
        &server.url,
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json} {:?}", server.log());
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.starts_with("/sgx/certification/v4/tcb?"))
    );
    assert!(
        server
            .log()
            .iter()
            .any(|l| l == "/sgx/certification/v4/qe/identity")
    );
    std::fs::remove_dir_all(&work).ok();
}

fn verify_fetching(server: &Server, quote: &Path, cache: &Path, at: &str) -> serde_json::Value {
    let (code, json, _) = run(&[
        "verify",
        "--evidence",
        quote.to_str().unwrap(),
        "--fetch",
        "--pcs-url",
        &server.url,
        "--cache",
        cache.to_str().unwrap(),
        "--no-reference",
        "--at",
        at,
    ]);
    serde_json::json!({"code": code, "out": json})
}

#[test]
fn verify_fetch_caches_by_validity_and_refetches_a_tampered_entry() {
    let Some(v) = vectors() else { return };
    let case = v.join(UPTODATE);
    let p = paths("tdx", "B0C06F000000", "platform");
    let server = pccs(&case, &p);
    let work = temp("cache");
    let cache = work.join("cache");
    let quote = case.join("quote.bin");
    let r = verify_fetching(&server, &quote, &cache, AT);
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(server.log().len(), 4);
    // The cache layout: the TCB Info with its header beside it.
    let host = server.url.trim_start_matches("http://").replace(':', "_");
    let tcb = cache
        .join(&host)
        .join("tdx/certification/v4/tcb@fmspc=B0C06F000000");
    assert!(tcb.is_file());
    let headers = std::fs::read_to_string(
        cache
            .join(&host)
            .join("tdx/certification/v4/tcb@fmspc=B0C06F000000.headers"),
    )
    .unwrap();
    assert!(
        headers.starts_with("tcb-info-issuer-chain: -----BEGIN%20CERTIFICATE"),
        "{headers}"
    );
    // Again: all from the cache.
    let r = verify_fetching(&server, &quote, &cache, AT);
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(server.log().len(), 4, "{:?}", server.log());
    // A tampered TCB Info in the cache: refused, everything cached asked for again.
    let good = std::fs::read(&tcb).unwrap();
    let bad = String::from_utf8(good.clone())
        .unwrap()
        .replacen("UpToDate", "UpToDatE", 1);
    std::fs::write(&tcb, bad).unwrap();
    let r = verify_fetching(&server, &quote, &cache, AT);
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(server.count(&p.tcb), 2);
    assert_eq!(server.count(&p.qe), 2);
    assert_eq!(std::fs::read(&tcb).unwrap(), good);
    // After the TCB Info's nextUpdate the entry is stale: asked again, and the
    // service's is just as stale: the collateral is refused.
    let r = verify_fetching(&server, &quote, &cache, "2025-07-25T00:00:00Z");
    assert_eq!(r["code"], 4, "{r}");
    assert_eq!(server.count(&p.tcb), 3);
    std::fs::remove_dir_all(&work).ok();
}

/// A server with the SNP test PKI's collateral at the KDS's paths (VCEK and VLEK).
fn test_kds(s: &Server) {
    let mut hwid = String::from("c0ffee00");
    for i in 1u8..=60 {
        hwid.push_str(&format!("{i:02x}"));
    }
    s.on(
        &format!("/vcek/v1/Milan/{hwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"),
        vec![Answer::ok(pki("test-vcek.der"))],
    );
    for (dir, inter) in [("vcek", "test-ask.der"), ("vlek", "test-asvk.der")] {
        let mut chain = pem(&pki(inter)).into_bytes();
        chain.extend(pem(&pki("test-ark.der")).into_bytes());
        s.on(
            &format!("/{dir}/v1/Milan/cert_chain"),
            vec![Answer::ok(chain)],
        );
        s.on(
            &format!("/{dir}/v1/Milan/crl"),
            vec![Answer::ok(pki("test-crl-empty.der"))],
        );
    }
}

#[test]
fn a_vlek_report_gets_its_chain_and_crl_from_the_kds_and_its_vlek_from_the_host() {
    let server = Server::start();
    test_kds(&server);
    let work = temp("vlek");
    let certs = work.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("vlek.der"), pki("test-vlek.der")).unwrap();
    let r = work.join("report.bin");
    std::fs::write(&r, report(Key::Vlek, |_| {})).unwrap();
    let root = crate_dir().join("fixtures/snp-test-pki/test-ark.der");
    let base = [
        "verify",
        "--evidence",
        r.to_str().unwrap(),
        "--fetch",
        "--kds-url",
        &server.url,
        "--root",
        root.to_str().unwrap(),
        "--no-reference",
        "--at",
        "2026-03-01T00:00:00Z",
    ];
    // Without the VLEK: the KDS does not serve it; collateral unavailable (exit 4).
    let (code, json, _) = run(&base);
    assert_eq!(code, 4, "{json}");
    assert!(error(&json).contains("VLEK"), "{json}");
    let mut args = base.to_vec();
    args.extend(["--certs", certs.to_str().unwrap()]);
    let (code, json, _) = run(&args);
    assert_eq!(code, 0, "{json}");
    assert_eq!(server.count("/vlek/v1/Milan/cert_chain"), 1);
    assert_eq!(server.count("/vlek/v1/Milan/crl"), 1);
    assert!(
        server.log().iter().all(|l| !l.starts_with("/vcek/")),
        "{:?}",
        server.log()
    );
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_bundle_verifies_snp_and_tdx_evidence_offline_and_is_verified_again_at_use() {
    let Some(v) = vectors() else { return };
    let case = v.join(UPTODATE);
    let server = pccs(&case, &paths("tdx", "B0C06F000000", "platform"));
    test_kds(&server);
    let work = temp("bundle");
    std::fs::create_dir_all(&work).unwrap();
    let snp = work.join("report.bin");
    std::fs::write(&snp, report(Key::Vcek, |_| {})).unwrap();
    let quote = case.join("quote.bin");
    let bundle = work.join("collateral.tar");
    let root = crate_dir().join("fixtures/snp-test-pki/test-ark.der");
    let (code, json, _) = run(&[
        "collateral",
        "bundle",
        "--evidence",
        snp.to_str().unwrap(),
        "--evidence",
        quote.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--kds-url",
        &server.url,
        "--pcs-url",
        &server.url,
        "--root",
        root.to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["requests"], 7, "{:?}", server.log());
    let asked = server.log().len();
    let verify = |evidence: &Path, bundle: &Path| {
        run(&[
            "verify",
            "--evidence",
            evidence.to_str().unwrap(),
            "--collateral",
            bundle.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--no-reference",
            "--at",
            AT,
        ])
    };
    // Offline: both verify from the bundle alone, and the server hears nothing.
    for e in [&snp, &quote] {
        let (code, json, err) = verify(e, &bundle);
        assert_eq!(code, 0, "{} {json} {err}", e.display());
    }
    assert_eq!(server.log().len(), asked);
    // A bundle is verified at use: one changed byte in the TCB Info is a signature
    // failure (exit 3), never a silently accepted TCB status.
    let bytes = std::fs::read(&bundle).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"UpToDate")
        .expect("the TCB Info in the bundle");
    let mut tampered = bytes.clone();
    tampered[at + 7] = b'E';
    // Keep the tar header's checksum right: only the content changed.
    let bad = work.join("tampered.tar");
    std::fs::write(&bad, &tampered).unwrap();
    let (code, json, _) = verify(&quote, &bad);
    assert_eq!(code, 3, "{json}");
    assert!(error(&json).contains("collateral.tcb_info"), "{json}");
    // Evidence the bundle was not made for: collateral unavailable, naming the bundle.
    let other = v.join("tdx/tdx-v5-gotdx-90c06f-uptodate/quote.bin");
    let (code, json, _) = verify(&other, &bundle);
    assert_eq!(code, 4, "{json}");
    assert!(error(&json).contains("not in the bundle"), "{json}");
    // Not a bundle at all (a tar of something else): a clear error, exit 2.
    let mut junk = tar_of("hello.txt", b"hi");
    junk.truncate(1024 + 512);
    let junk_path = work.join("junk.tar");
    std::fs::write(&junk_path, junk).unwrap();
    let (code, json, _) = verify(&snp, &junk_path);
    assert_eq!(code, 2, "{json}");
    assert!(error(&json).contains("cvm-collateral.json"), "{json}");
    std::fs::remove_dir_all(&work).ok();
}

/// A one-file ustar archive (written by hand, to test the reader on a foreign tar).
fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(512 + data.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `--tcb-update`: `early` and a TCB evaluation data number are asked for on both signed
/// items (Intel PCS API v4: `update=early`, `tcbEvaluationDataNumber=N`; the server
/// answers only those routes), a number is checked against what is served, a bundle
/// remembers which evaluation it holds, and a value that is none of these is a usage
/// error.
#[test]
fn an_early_or_numbered_tcb_evaluation_is_asked_for_and_checked() {
    let Some(v) = vectors() else { return };
    let case = v.join(UPTODATE);
    let quote = case.join("quote.bin");
    // The case's TCB Info and QE Identity both carry evaluation data number 17.
    let served = |param: &str| {
        let mut p = paths("tdx", "B0C06F000000", "platform");
        p.tcb = format!("{}&{param}", p.tcb);
        p.qe = format!("{}?{param}", p.qe);
        (pccs(&case, &p), p)
    };
    let fetch = |server: &Server, update: &str, out: &Path| {
        run(&[
            "collateral",
            "fetch",
            "--evidence",
            quote.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--pcs-url",
            &server.url,
            "--tcb-update",
            update,
            "--at",
            AT,
        ])
    };
    for (update, param) in [
        ("early", "update=early"),
        ("17", "tcbEvaluationDataNumber=17"),
    ] {
        let (server, p) = served(param);
        let out = temp(&format!("update-{update}"));
        let (code, json, _) = fetch(&server, update, &out);
        assert_eq!(code, 0, "{update}: {json} {:?}", server.log());
        assert_eq!(server.count(&p.tcb), 1, "{:?}", server.log());
        assert_eq!(server.count(&p.qe), 1, "{:?}", server.log());
        std::fs::remove_dir_all(&out).ok();
    }
    // `cvm verify --fetch` asks the same.
    let (server, p) = served("update=early");
    let (code, json, err) = run(&[
        "verify",
        "--evidence",
        quote.to_str().unwrap(),
        "--fetch",
        "--pcs-url",
        &server.url,
        "--tcb-update",
        "early",
        "--no-reference",
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json} {err}");
    assert_eq!(server.count(&p.tcb), 1, "{:?}", server.log());
    // Asked for 18, served 17: refused, nothing written.
    let (server, _) = served("tcbEvaluationDataNumber=18");
    let out = temp("update-18");
    let (code, json, _) = fetch(&server, "18", &out);
    assert_eq!(code, 4, "{json}");
    assert!(
        error(&json).contains("asked for TCB evaluation data number 18, the TCB Info has 17"),
        "{json}"
    );
    assert!(!out.exists());
    // A bundle made with update=early verifies offline from it (the manifest says which
    // evaluation its responses are for).
    let (server, _) = served("update=early");
    let work = temp("update-bundle");
    std::fs::create_dir_all(&work).unwrap();
    let bundle = work.join("early.tar");
    let (code, json, _) = run(&[
        "collateral",
        "bundle",
        "--evidence",
        quote.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--pcs-url",
        &server.url,
        "--tcb-update",
        "early",
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json}");
    let asked = server.log().len();
    let (code, json, err) = run(&[
        "verify",
        "--evidence",
        quote.to_str().unwrap(),
        "--collateral",
        bundle.to_str().unwrap(),
        "--no-reference",
        "--at",
        AT,
    ]);
    assert_eq!(code, 0, "{json} {err}");
    assert_eq!(server.log().len(), asked, "offline");
    std::fs::remove_dir_all(&work).ok();
    let (code, json, _) = fetch(&server, "soon", &temp("update-soon"));
    assert_eq!(code, 1, "{json}");
}
