//! DCAP verification on the project's Intel test PKI (tests/fixtures/tdx-test-pki, TEST
//! KEYS ONLY): a TDX quote and its collateral are built here and signed with the test
//! PCK and TCB signing keys, so that the paths no real vector covers run: a root named
//! with `--root`, a revoked PCK certificate, and every certificate-profile rule of
//! Intel's roles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use base64::Engine as _;
use cvm_attest::tdx::Verifier;
use cvm_attest::tdx::appraise::Policy;
use cvm_attest::tdx::claims::Claims;
use cvm_attest::tdx::collateral::Collateral;
use cvm_attest::tdx::pck::IntelRoot;
use cvm_attest::x509::Cert;
use cvm_attest::{Cache, Status, Time, Verdict};
use cvm_tests::{crate_dir, failed};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Inside every test certificate's, CRL's and collateral item's validity.
const INSIDE: &str = "2026-03-01T00:00:00Z";

fn pki(name: &str) -> Vec<u8> {
    let path: PathBuf = crate_dir().join("fixtures/tdx-test-pki").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn key(name: &str) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &pki(name),
        &SystemRandom::new(),
    )
    .unwrap()
}

fn sign(key: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    key.sign(&SystemRandom::new(), message)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The PCK chain a quote carries: the PCK certificate, its CA, the root (each DER).
struct Chain {
    pck: Vec<u8>,
    ca: Vec<u8>,
    root: Vec<u8>,
}

fn good_chain() -> Chain {
    Chain {
        pck: pki("test-pck.der"),
        ca: pki("test-ca.der"),
        root: pki("test-root.der"),
    }
}

/// A version 4 TDX quote as Intel's quoting enclave builds it: a TD report with
/// SEPT_VE_DISABLE, the QE report binding a fresh attestation key, signed by the test
/// PCK key, and the quote signed by the attestation key.
fn quote(chain: &Chain) -> Vec<u8> {
    let rng = SystemRandom::new();
    let ak_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ak_pkcs8.as_ref(), &rng)
        .unwrap();
    let ak_public = &ak.public_key().as_ref()[1..];
    let mut q = Vec::new();
    q.extend(4u16.to_le_bytes()); // version
    q.extend(2u16.to_le_bytes()); // ECDSA-256-with-P-256
    q.extend(0x81u32.to_le_bytes()); // TDX
    q.extend(0u16.to_le_bytes()); // QE SVN
    q.extend(11u16.to_le_bytes()); // PCE SVN
    q.extend(cvm_attest::tdx::quote::INTEL_QE_VENDOR_ID);
    q.extend([0u8; 20]);
    let mut td = vec![0u8; 584];
    td[120 + 3] = 0x10; // TDATTRIBUTES bit 28, SEPT_VE_DISABLE
    td[136..184].fill(0x11); // MRTD
    td[520..584].fill(0x5a); // REPORTDATA
    q.extend(&td);
    let isv_signature = sign(&ak, &q);
    let auth_data: Vec<u8> = (0u8..32).collect();
    let mut qe = vec![0u8; 384];
    qe[48] = 0x11; // ATTRIBUTES
    qe[128..160].fill(0x22); // MRSIGNER
    qe[256..258].copy_from_slice(&2u16.to_le_bytes()); // ISVPRODID
    let mut h = Sha256::new();
    h.update(ak_public);
    h.update(&auth_data);
    qe[320..352].copy_from_slice(&h.finalize());
    let qe_signature = sign(&key("test-pck-key.pk8"), &qe);
    let mut chain_pem = [&chain.pck, &chain.ca, &chain.root]
        .into_iter()
        .map(|d| pem(d))
        .collect::<String>()
        .into_bytes();
    chain_pem.push(0);
    let mut qe_data = qe;
    qe_data.extend(&qe_signature);
    qe_data.extend(u16::try_from(auth_data.len()).unwrap().to_le_bytes());
    qe_data.extend(&auth_data);
    qe_data.extend(5u16.to_le_bytes());
    qe_data.extend(u32::try_from(chain_pem.len()).unwrap().to_le_bytes());
    qe_data.extend(&chain_pem);
    let mut sig_data = isv_signature;
    sig_data.extend(ak_public);
    sig_data.extend(6u16.to_le_bytes());
    sig_data.extend(u32::try_from(qe_data.len()).unwrap().to_le_bytes());
    sig_data.extend(&qe_data);
    q.extend(u32::try_from(sig_data.len()).unwrap().to_le_bytes());
    q.extend(&sig_data);
    q
}

/// The TCB Info for the test platform: FMSPC C0FFEE000000, one UpToDate level at its
/// SGX components (3), PCESVN (11) and TDX components (0), and the TDX module summary
/// the TD report's zero MRSIGNERSEAM and SEAMATTRIBUTES match.
fn tcb_info() -> String {
    let sgx = vec![r#"{"svn":3}"#; 16].join(",");
    let tdx = vec![r#"{"svn":0}"#; 16].join(",");
    format!(
        r#"{{"id":"TDX","version":3,"issueDate":"2026-01-01T00:00:00Z","nextUpdate":"2026-12-01T00:00:00Z","fmspc":"C0FFEE000000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tdxModule":{{"mrsigner":"{}","attributes":"0000000000000000","attributesMask":"FFFFFFFFFFFFFFFF"}},"tcbLevels":[{{"tcb":{{"sgxtcbcomponents":[{sgx}],"pcesvn":11,"tdxtcbcomponents":[{tdx}]}},"tcbDate":"2025-01-01T00:00:00Z","tcbStatus":"UpToDate"}}]}}"#,
        "00".repeat(48)
    )
}

/// The QE Identity the test QE report matches.
fn qe_identity() -> String {
    format!(
        r#"{{"id":"TD_QE","version":2,"issueDate":"2026-01-01T00:00:00Z","nextUpdate":"2026-12-01T00:00:00Z","tcbEvaluationDataNumber":17,"miscselect":"00000000","miscselectMask":"FFFFFFFF","attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000","mrsigner":"{}","isvprodid":2,"tcbLevels":[{{"tcb":{{"isvsvn":0}},"tcbDate":"2025-01-01T00:00:00Z","tcbStatus":"UpToDate"}}]}}"#,
        "22".repeat(32)
    )
}

/// The collateral bundle, signed with the test TCB signing key; `tcb_signer` is the
/// certificate that heads both issuer chains, `pck_crl` the PCK CA's CRL.
fn collateral_json(tcb_signer: &[u8], pck_crl: &str) -> String {
    let tcb = key("test-tcb-key.pk8");
    let hex = |b: &[u8]| hex::encode(b);
    let root = pki("test-root.der");
    let signer_chain = format!("{}{}", pem(tcb_signer), pem(&root));
    let (info, identity) = (tcb_info(), qe_identity());
    serde_json::json!({
        "pck_crl_issuer_chain": format!("{}{}", pem(&pki("test-ca.der")), pem(&root)),
        "root_ca_crl": hex(&pki("test-root-crl.der")),
        "pck_crl": hex(&pki(pck_crl)),
        "tcb_info_issuer_chain": signer_chain,
        "tcb_info": info,
        "tcb_info_signature": hex(&sign(&tcb, info.as_bytes())),
        "qe_identity_issuer_chain": signer_chain,
        "qe_identity": identity,
        "qe_identity_signature": hex(&sign(&tcb, identity.as_bytes())),
    })
    .to_string()
}

fn collateral() -> Collateral {
    Collateral::parse_json(&collateral_json(&pki("test-tcb.der"), "test-pck-crl.der")).unwrap()
}

/// Intel's root and the test root, as `cvm verify --root test-root.der` trusts them.
fn roots_with(anchor: &str) -> IntelRoot {
    let mut r = IntelRoot::builtin().unwrap();
    r.add_root(Cert::from_der(&pki(anchor), anchor).unwrap());
    r
}

fn verify_on(root: &IntelRoot, quote: &[u8], collateral: &Collateral) -> Verdict<Claims> {
    Verifier {
        root,
        collateral: Some(collateral),
        reference: None,
        policy: &Policy::default(),
        event_log: None,
        at: Time::parse_rfc3339(INSIDE).unwrap(),
        cache: &Cache::default(),
    }
    .verify(quote)
}

fn names(v: &Verdict<Claims>) -> Vec<&'static str> {
    v.failed_checks().map(|c| c.name.name()).collect()
}

#[test]
fn a_quote_on_the_test_pki_passes_with_its_root_named_and_only_then() {
    let q = quote(&good_chain());
    let v = verify_on(&roots_with("test-root.der"), &q, &collateral());
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    let tcb = v.claims.as_ref().unwrap().tcb.as_ref().unwrap();
    assert_eq!(tcb.status.status.name(), "UpToDate");
    // Intel's root alone anchors nothing of it.
    let v = verify_on(&IntelRoot::builtin().unwrap(), &q, &collateral());
    let n = names(&v);
    assert!(n.contains(&"pck.ca"), "{:#?}", failed(&v));
    assert!(
        failed(&v)[0].contains("not a trusted root"),
        "{:#?}",
        failed(&v)
    );
}

#[test]
fn a_revoked_pck_certificate_fails() {
    let q = quote(&good_chain());
    let revoking = Collateral::parse_json(&collateral_json(
        &pki("test-tcb.der"),
        "test-pck-crl-revokes-pck.der",
    ))
    .unwrap();
    let v = verify_on(&roots_with("test-root.der"), &q, &revoking);
    assert_eq!(names(&v), ["pck.revocation"], "{:#?}", failed(&v));
    assert!(failed(&v)[0].contains("the PCK certificate is revoked"));
}

/// The quote with one certificate of its chain replaced, on the test root (or another
/// anchor); exactly `want` fail and the first says `reason`.
fn chain_case(chain: Chain, anchor: &str, want: &[&str], reason: &str) {
    let q = quote(&chain);
    let v = verify_on(&roots_with(anchor), &q, &collateral());
    assert_eq!(names(&v), want, "{:#?}", failed(&v));
    assert!(
        failed(&v)[0].contains(reason),
        "want {reason:?}: {:#?}",
        failed(&v)
    );
}

#[test]
fn every_intel_certificate_profile_rule_has_a_negative() {
    let bad = |f: &str| pki(f);
    chain_case(
        Chain {
            ca: bad("bad-ca-not-ca.der"),
            ..good_chain()
        },
        "test-root.der",
        &["pck.ca"],
        "PCK CA: not a CA certificate",
    );
    chain_case(
        Chain {
            ca: bad("bad-ca-no-crlsign.der"),
            ..good_chain()
        },
        "test-root.der",
        &["pck.ca"],
        "PCK CA: keyUsage lacks cRLSign",
    );
    chain_case(
        Chain {
            ca: bad("bad-ca-critical.der"),
            ..good_chain()
        },
        "test-root.der",
        &["pck.ca"],
        "critical extension 1.2.840.113741.1.99",
    );
    chain_case(
        Chain {
            pck: bad("bad-pck-sha384.der"),
            ..good_chain()
        },
        "test-root.der",
        &["pck.leaf"],
        "PCK certificate: signed with 1.2.840.10045.4.3.3, not ECDSA with SHA-256",
    );
    chain_case(
        Chain {
            pck: bad("bad-pck-p384.der"),
            ..good_chain()
        },
        "test-root.der",
        &["pck.leaf"],
        "PCK certificate: the subject key is not an EC P-256 key",
    );
    // A root whose pathLenConstraint 0 leaves no room for the PCK CA: every certificate
    // it issued fails.
    chain_case(
        good_chain(),
        "bad-root-pathlen0.der",
        &[
            "pck.ca",
            "collateral.pck_crl_issuer_chain",
            "collateral.tcb_info.signer",
            "collateral.qe_identity.signer",
        ],
        "Intel SGX Root CA: pathLenConstraint 0",
    );
    // A TCB signing certificate that is a CA is no end entity.
    let c = Collateral::parse_json(&collateral_json(&pki("bad-tcb-ca.der"), "test-pck-crl.der"))
        .unwrap();
    let v = verify_on(&roots_with("test-root.der"), &quote(&good_chain()), &c);
    assert_eq!(
        names(&v),
        [
            "collateral.tcb_info.signer",
            "collateral.qe_identity.signer"
        ],
        "{:#?}",
        failed(&v)
    );
    assert!(failed(&v)[0].contains("TCB signing certificate: a CA certificate"));
}

#[test]
fn the_cli_trusts_the_test_root_only_when_named() {
    let dir = std::env::temp_dir().join(format!("cvm-tdx-test-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let q = dir.join("quote.bin");
    std::fs::write(&q, quote(&good_chain())).unwrap();
    let c = dir.join("collateral.json");
    std::fs::write(
        &c,
        collateral_json(&pki("test-tcb.der"), "test-pck-crl.der"),
    )
    .unwrap();
    let root = crate_dir().join("fixtures/tdx-test-pki/test-root.der");
    let run = |with_root: bool| {
        let mut args: Vec<std::ffi::OsString> = ["cvm", "verify", "--at", INSIDE, "--no-reference"]
            .map(Into::into)
            .to_vec();
        for (flag, path) in [("--evidence", &q), ("--collateral", &c)] {
            args.extend([flag.into(), path.into()]);
        }
        if with_root {
            args.extend(["--root".into(), root.clone().into()]);
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cvm_launcher::cli::run(args, &mut out, &mut err).code();
        (code, String::from_utf8_lossy(&err).into_owned())
    };
    let (code, err) = run(true);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(false);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pck.ca"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
