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

use cvm_attest::tdx::Verifier;
use cvm_attest::tdx::appraise::Policy;
use cvm_attest::tdx::claims::Claims;
use cvm_attest::tdx::collateral::Collateral;
use cvm_attest::tdx::pck::IntelRoot;
use cvm_attest::x509::Cert;
use cvm_attest::{Cache, Status, Time, Verdict};
use cvm_tests::tdx_test_pki::{Chain, collateral_json, default_td_body, good_chain, pki, quote};
use cvm_tests::{crate_dir, failed};

/// Inside every test certificate's, CRL's and collateral item's validity.
const INSIDE: &str = "2026-03-01T00:00:00Z";

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
        plan_log: None,
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
    let q = quote(&good_chain(), &default_td_body());
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
    let q = quote(&good_chain(), &default_td_body());
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
    let q = quote(&chain, &default_td_body());
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
    let v = verify_on(
        &roots_with("test-root.der"),
        &quote(&good_chain(), &default_td_body()),
        &c,
    );
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
    std::fs::write(&q, quote(&good_chain(), &default_td_body())).unwrap();
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
