//! The SNP verification paths no real vector covers, on the project's test PKI
//! (tests/fixtures/snp-test-pki, TEST KEYS ONLY): CRL revocation (and its absence), a
//! masked CHIP_ID, MASK_CHIP_KEY, an expired ASK, a VLEK with and without its ASVK, a
//! batch that verifies the chain once, and every certificate-profile rule. Reports are
//! built here and signed with the test VCEK/VLEK.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::snp::Verifier;
use cvm_attest::snp::appraise::Policy;
use cvm_attest::snp::certs::{Roots, Supplied};
use cvm_attest::snp::claims::Claims;
use cvm_attest::x509::{Cert, Crl};
use cvm_attest::{Cache, Category, Outcome, Status, Time, Verdict};
use cvm_tests::snp_test_pki::{Key, pki, report};
use cvm_tests::{crate_dir, failed};

fn cert(name: &str) -> Cert {
    Cert::from_der(&pki(name), name).unwrap()
}

fn crl(name: &str) -> Crl {
    Crl::parse(&pki(name), name).unwrap()
}

/// AMD's roots plus the test ARK, named explicitly (as `--root` does).
fn roots() -> Roots {
    let mut r = Roots::amd().unwrap();
    r.add_root(cert("test-ark.der")).unwrap();
    r
}

fn vcek_chain() -> Supplied {
    Supplied {
        vcek: Some(cert("test-vcek.der")),
        ask: Some(cert("test-ask.der")),
        ark: Some(cert("test-ark.der")),
        ..Supplied::default()
    }
}

fn vlek_chain() -> Supplied {
    Supplied {
        vlek: Some(cert("test-vlek.der")),
        asvk: Some(cert("test-asvk.der")),
        ark: Some(cert("test-ark.der")),
        ..Supplied::default()
    }
}

fn at(s: &str) -> Time {
    Time::parse_rfc3339(s).unwrap()
}

/// Inside every test certificate's and CRL's validity.
const INSIDE: &str = "2026-03-01T00:00:00Z";

fn verify(
    report: &[u8],
    supplied: &Supplied,
    crl: Option<&Crl>,
    time: &str,
    cache: &Cache,
) -> Verdict<Claims> {
    verify_on(&roots(), report, supplied, crl, time, cache)
}

/// The VCEK chain with `crl` at `time`, a fresh cache.
fn chain_at(report: &[u8], crl: Option<&Crl>, time: &str) -> Verdict<Claims> {
    verify(report, &vcek_chain(), crl, time, &Cache::default())
}

/// The common case: the VCEK chain, the CRL that revokes nothing, inside every validity
/// window.
fn plain(report: &[u8]) -> Verdict<Claims> {
    chain_at(report, Some(&crl("test-crl-empty.der")), INSIDE)
}

fn verify_on(
    roots: &Roots,
    report: &[u8],
    supplied: &Supplied,
    crl: Option<&Crl>,
    time: &str,
    cache: &Cache,
) -> Verdict<Claims> {
    verify_policy(
        roots,
        report,
        supplied,
        crl,
        time,
        cache,
        &Policy::default(),
    )
}

fn verify_policy(
    roots: &Roots,
    report: &[u8],
    supplied: &Supplied,
    crl: Option<&Crl>,
    time: &str,
    cache: &Cache,
    policy: &Policy,
) -> Verdict<Claims> {
    Verifier {
        roots,
        supplied,
        crl,
        reference: None,
        policy,
        at: at(time),
        cache,
    }
    .verify(report)
}

fn outcome(v: &Verdict<Claims>, name: &str) -> Outcome {
    v.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:#?}", v.checks))
        .outcome
}

fn assert_only_failure(v: &Verdict<Claims>, prefix: &str, category: Category) {
    assert_fails(v, prefix, category, "");
}

/// Only `prefix`* checks fail, in `category`, and the first says `reason`.
fn assert_fails(v: &Verdict<Claims>, prefix: &str, category: Category, reason: &str) {
    let f = failed(v);
    assert_eq!(v.verdict, Status::Fail);
    assert!(
        !f.is_empty() && f.iter().all(|c| c.starts_with(prefix)),
        "want only {prefix}* to fail: {f:#?}"
    );
    assert_eq!(v.failure(), Some(category), "{f:#?}");
    assert!(f[0].contains(reason), "want {reason:?} in {f:#?}");
}

#[test]
fn a_report_signed_on_the_test_chain_passes_with_the_test_root_named() {
    let v = plain(&report(Key::Vcek, |_| {}));
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    assert_eq!(outcome(&v, "leaf.chip_id"), Outcome::Pass);
    for name in [
        "chain.root.profile",
        "chain.intermediate.profile",
        "chain.leaf.profile",
    ] {
        assert_eq!(outcome(&v, name), Outcome::Pass, "{name}");
    }
    assert_eq!(v.product.as_deref(), Some("Milan"));
}

#[test]
fn amds_roots_alone_do_not_trust_the_test_chain() {
    let (amd, r) = (Roots::amd().unwrap(), report(Key::Vcek, |_| {}));
    let empty = crl("test-crl-empty.der");
    let v = verify_on(
        &amd,
        &r,
        &vcek_chain(),
        Some(&empty),
        INSIDE,
        &Cache::default(),
    );
    assert_only_failure(&v, "chain.supplied_ark", Category::Signature);
    let mut without_ark = vcek_chain();
    without_ark.ark = None;
    let v = verify_on(
        &amd,
        &r,
        &without_ark,
        Some(&empty),
        INSIDE,
        &Cache::default(),
    );
    assert_only_failure(&v, "chain.root", Category::Signature);
}

#[test]
fn a_crl_that_revokes_nothing_passes_and_one_revoking_the_ask_fails() {
    let r = report(Key::Vcek, |_| {});
    let v = chain_at(&r, Some(&crl("test-crl-empty.der")), INSIDE);
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    for name in [
        "chain.crl.signature",
        "chain.crl.validity",
        "chain.crl.revocation",
    ] {
        assert_eq!(outcome(&v, name), Outcome::Pass, "{name}");
    }
    let v = chain_at(&r, Some(&crl("test-crl-revokes-ask.der")), INSIDE);
    assert_fails(
        &v,
        "chain.crl.revocation",
        Category::Signature,
        "the ASK is revoked",
    );
}

#[test]
fn a_crl_outside_its_window_or_not_signed_by_the_root_fails() {
    let r = report(Key::Vcek, |_| {});
    // The CRLs were issued on 2025-01-01.
    let v = chain_at(&r, Some(&crl("test-crl-empty.der")), "2024-06-01T00:00:00Z");
    assert_only_failure(&v, "chain.crl.validity", Category::Collateral);
    // One flipped bit in the CRL's signature.
    let mut der = pki("test-crl-empty.der");
    let last = der.len() - 1;
    der[last] ^= 1;
    let bad = Crl::parse(&der, "tampered CRL").unwrap();
    let v = chain_at(&r, Some(&bad), INSIDE);
    assert_only_failure(&v, "chain.crl.signature", Category::Signature);
}

#[test]
fn an_expired_ask_fails_the_chain() {
    let r = report(Key::Vcek, |_| {});
    let empty = crl("test-crl-empty.der");
    // The test ASK is valid until 2030-01-01, the ARK and the VCEK beyond.
    let v = chain_at(&r, Some(&empty), "2029-12-31T00:00:00Z");
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    let v = chain_at(&r, Some(&empty), "2030-06-01T00:00:00Z");
    assert_fails(
        &v,
        "chain.intermediate.validity",
        Category::Signature,
        "ASK: expired",
    );
}

#[test]
fn a_masked_chip_id_is_skipped_and_a_wrong_one_fails() {
    let masked = report(Key::Vcek, |r| r[0x1a0..0x1e0].fill(0));
    let v = plain(&masked);
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    assert_eq!(outcome(&v, "leaf.chip_id"), Outcome::Skipped);
    let other = report(Key::Vcek, |r| r[0x1a0] ^= 1);
    let v = plain(&other);
    assert_only_failure(&v, "leaf.chip_id", Category::Signature);
}

#[test]
fn mask_chip_key_means_the_report_is_unsigned() {
    // What the firmware emits with MaskChipKey: the flag, and zeroes for a signature.
    let mut r = report(Key::Vcek, |r| r[0x48] |= 2);
    r[0x2a0..0x330].fill(0);
    let v = plain(&r);
    assert_fails(&v, "report.signature", Category::Signature, "MASK_CHIP_KEY");
}

#[test]
fn a_wrong_tcb_in_the_report_fails_the_leaf_match() {
    let r = report(Key::Vcek, |r| r[0x187] = 116);
    let v = plain(&r);
    assert_fails(
        &v,
        "leaf.tcb",
        Category::Signature,
        "ucode: report 116, certificate 115",
    );
}

#[test]
fn a_vlek_report_needs_its_asvk() {
    let r = report(Key::Vlek, |_| {});
    let empty = crl("test-crl-empty.der");
    let v = verify(&r, &vlek_chain(), Some(&empty), INSIDE, &Cache::default());
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    assert_eq!(outcome(&v, "leaf.chip_id"), Outcome::Skipped);
    let mut no_asvk = vlek_chain();
    no_asvk.asvk = None;
    let v = verify(&r, &no_asvk, Some(&empty), INSIDE, &Cache::default());
    assert_fails(&v, "chain.intermediate", Category::Collateral, "no ASVK");
    // The VCEK's chain does not vouch for a VLEK-signed report.
    let v = plain(&r);
    assert_only_failure(&v, "chain.leaf", Category::Collateral);
}

#[test]
fn a_batch_verifies_the_chain_once_and_never_remembers_a_failure() {
    let cache = Cache::default();
    let empty = crl("test-crl-empty.der");
    let first = report(Key::Vcek, |r| r[0x50] = 1);
    let v = verify(&first, &vcek_chain(), Some(&empty), INSIDE, &cache);
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    // ARK self-signature, ASK, VCEK and the CRL; the report's own signature is not kept.
    assert_eq!(cache.len(), 4);
    for n in 2..6u8 {
        let r = report(Key::Vcek, |r| r[0x50] = n);
        let v = verify(&r, &vcek_chain(), Some(&empty), INSIDE, &cache);
        assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    }
    assert_eq!(cache.len(), 4);
    // A report whose signature is broken still fails with a warm cache.
    let mut bad = report(Key::Vcek, |_| {});
    bad[0x50] ^= 1;
    let v = verify(&bad, &vcek_chain(), Some(&empty), INSIDE, &cache);
    assert_only_failure(&v, "report.signature", Category::Signature);
    // A VCEK whose signature is broken fails and is not remembered.
    let mut der = pki("test-vcek.der");
    let last = der.len() - 1;
    der[last] ^= 1;
    let chain = Supplied {
        vcek: Some(Cert::from_der(&der, "tampered VCEK").unwrap()),
        ..vcek_chain()
    };
    for _ in 0..2 {
        let v = verify(&first, &chain, Some(&empty), INSIDE, &cache);
        assert!(
            failed(&v)
                .iter()
                .any(|c| c.starts_with("chain.leaf.signature:")),
            "{:#?}",
            failed(&v)
        );
    }
    assert_eq!(cache.len(), 4);
}

#[test]
fn the_cli_names_a_root_checks_a_crl_and_verifies_a_batch() {
    use std::ffi::OsStr;
    let dir = std::env::temp_dir().join(format!("cvm-snp-test-keys-{}", std::process::id()));
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("vcek.der"), pki("test-vcek.der")).unwrap();
    std::fs::write(certs.join("ask.der"), pki("test-ask.der")).unwrap();
    let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
    std::fs::write(&a, report(Key::Vcek, |r| r[0x50] = 1)).unwrap();
    std::fs::write(&b, report(Key::Vcek, |r| r[0x50] = 2)).unwrap();
    let fixtures = crate_dir().join("fixtures/snp-test-pki");
    let root = fixtures.join("test-ark.der");
    // `cvm --format json verify` on both reports, run in process through the CLI.
    let run = |crl: &str, with_root: bool| {
        let crl = fixtures.join(crl);
        let mut args: Vec<&OsStr> = [
            "cvm",
            "--format",
            "json",
            "verify",
            "--at",
            INSIDE,
            "--no-reference",
        ]
        .map(OsStr::new)
        .to_vec();
        args.extend(["--evidence".as_ref(), a.as_os_str()]);
        args.extend(["--evidence".as_ref(), b.as_os_str()]);
        args.extend(["--certs".as_ref(), certs.as_os_str()]);
        args.extend(["--crl".as_ref(), crl.as_os_str()]);
        if with_root {
            args.extend(["--root".as_ref(), root.as_os_str()]);
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cvm_launcher::cli::run(args, &mut out, &mut err).code();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        (code, json, String::from_utf8_lossy(&err).into_owned())
    };
    let (code, json, err) = run("test-crl-empty.der", true);
    assert_eq!(code, 0, "{err} {json:#}");
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["verdicts"].as_array().unwrap().len(), 2);
    let (code, json, err) = run("test-crl-revokes-ask.der", true);
    assert_eq!(code, 3, "{err}");
    assert_eq!(json["verdict"], "fail");
    assert!(err.contains("the ASK is revoked"), "{err}");
    // Without --root, the test chain is anchored nowhere.
    let (code, _, err) = run("test-crl-empty.der", false);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("chain.root"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_crl_revocation_is_undecided_unless_the_policy_accepts_that() {
    let r = report(Key::Vcek, |_| {});
    let v = chain_at(&r, None, INSIDE);
    assert_fails(&v, "chain.crl", Category::Collateral, "no CRL given");
    let lenient = Policy {
        allow_unchecked_revocation: true,
        ..Policy::default()
    };
    let v = verify_policy(
        &roots(),
        &r,
        &vcek_chain(),
        None,
        INSIDE,
        &Cache::default(),
        &lenient,
    );
    assert_eq!(v.verdict, Status::Pass, "{:#?}", failed(&v));
    assert_eq!(outcome(&v, "chain.crl"), Outcome::Skipped);
    let reason = &v
        .checks
        .iter()
        .find(|c| c.name == "chain.crl")
        .unwrap()
        .reason;
    assert!(reason.contains("allow_unchecked_revocation"), "{reason}");
}

/// The TLVs (each whole: tag, length, value) inside the DER value `body`.
fn tlvs(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (len, header) = match rest[1] {
            n if n < 0x80 => (usize::from(n), 2),
            0x81 => (usize::from(rest[2]), 3),
            0x82 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            other => panic!("length form {other:#x}"),
        };
        let (tlv, tail) = rest.split_at(header + len);
        out.push(tlv);
        rest = tail;
    }
    out
}

/// The value of a single TLV.
fn value(tlv: &[u8]) -> &[u8] {
    let header = match tlv[1] {
        n if n < 0x80 => 2,
        0x81 => 3,
        _ => 4,
    };
    &tlv[header..]
}

/// A DER TLV of `tag` around `body`.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        n if n < 0x80 => out.push(u8::try_from(n).unwrap()),
        n if n < 0x100 => out.extend([0x81, u8::try_from(n).unwrap()]),
        n => out.extend(
            [0x82]
                .into_iter()
                .chain(u16::try_from(n).unwrap().to_be_bytes()),
        ),
    }
    out.extend_from_slice(body);
    out
}

#[test]
fn a_crl_without_next_update_is_not_current() {
    // The empty CRL without its nextUpdate (its signature no longer verifies either:
    // OpenSSL cannot issue such a CRL, so this one is cut from a real one).
    let der = pki("test-crl-empty.der");
    let [tbs, alg, sig] = tlvs(value(&der))[..] else {
        panic!("a CRL is three TLVs")
    };
    let fields: Vec<&[u8]> = tlvs(value(tbs));
    // version, signature, issuer, thisUpdate, nextUpdate, [0] extensions.
    assert_eq!(fields[4][0], 0x17, "nextUpdate is a UTCTime");
    let without: Vec<u8> = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    let cut = tlv(
        0x30,
        &[tlv(0x30, &without), alg.to_vec(), sig.to_vec()].concat(),
    );
    let crl = Crl::parse(&cut, "CRL without nextUpdate").unwrap();
    assert_eq!(crl.window().1, None);
    let v = chain_at(&report(Key::Vcek, |_| {}), Some(&crl), INSIDE);
    let f = failed(&v);
    assert!(
        f.iter()
            .any(|c| c.starts_with("chain.crl.validity: ") && c.contains("no nextUpdate")),
        "{f:#?}"
    );
}

/// One certificate of the VCEK chain replaced by `(role, file)` of the test PKI (or by
/// `der`), verified with the empty CRL; the named checks are the only ones that fail, and
/// the first of them says `reason`.
fn profile_case(replace: &[(&str, Vec<u8>)], fail: &[&str], reason: &str) {
    let mut chain = vcek_chain();
    let mut roots = roots();
    for (role, der) in replace {
        let c = Some(Cert::from_der(der, role).unwrap());
        match *role {
            "ark" => {
                roots = Roots::amd().unwrap();
                roots.add_root(c.clone().unwrap()).unwrap();
                chain.ark = c;
            }
            "ask" => chain.ask = c,
            "vcek" => chain.vcek = c,
            other => panic!("role {other}"),
        }
    }
    let v = verify_on(
        &roots,
        &report(Key::Vcek, |_| {}),
        &chain,
        Some(&crl("test-crl-empty.der")),
        INSIDE,
        &Cache::default(),
    );
    let f = failed(&v);
    let names: Vec<&str> = v.failed_checks().map(|c| c.name.name()).collect();
    assert_eq!(names, fail, "{f:#?}");
    assert!(f[0].contains(reason), "want {reason:?} in {f:#?}");
    assert_eq!(v.failure(), Some(Category::Signature));
}

#[test]
fn every_certificate_profile_rule_has_a_negative() {
    let bad = |f: &str| pki(f);
    // Issuers must be CAs that may sign certificates.
    profile_case(
        &[("ask", bad("bad-ask-not-ca.der"))],
        &["chain.intermediate.profile"],
        "ASK: not a CA certificate",
    );
    profile_case(
        &[("ask", bad("bad-ask-no-certsign.der"))],
        &["chain.intermediate.profile"],
        "ASK: keyUsage lacks keyCertSign",
    );
    // The root's pathLenConstraint 0 leaves no room for the ASK.
    profile_case(
        &[("ark", bad("bad-ark-pathlen0.der"))],
        &["chain.root.profile"],
        "ARK: pathLenConstraint 0",
    );
    // X.509 v3 only; no critical extension that is not processed.
    profile_case(
        &[("ask", bad("bad-ask-v1.der"))],
        &["chain.intermediate.profile"],
        "ASK: X.509 V1, not v3",
    );
    profile_case(
        &[("ask", bad("bad-ask-critical.der"))],
        &["chain.intermediate.profile"],
        "critical extension 1.3.6.1.4.1.3704.99",
    );
    // Key and signature algorithms pinned per role.
    profile_case(
        &[
            ("ask", bad("bad-ask-rsa2048.der")),
            ("vcek", bad("bad-vcek-under-rsa2048.der")),
        ],
        &["chain.intermediate.profile"],
        "ASK: the subject key is RSA-2048, not RSA-4096",
    );
    // RSASSA-PSS with SHA-256: the parameters are refused, and so is the signature.
    profile_case(
        &[("ask", bad("bad-ask-pss-sha256.der"))],
        &["chain.intermediate.profile", "chain.intermediate"],
        "ASK: RSASSA-PSS parameters: the hash is not SHA-384",
    );
    // A P-256 VCEK cannot have signed a P-384 report signature either.
    profile_case(
        &[("vcek", bad("bad-vcek-p256.der"))],
        &["chain.leaf.profile", "report.signature"],
        "VCEK: the subject key is not an EC P-384 key",
    );
    // An end entity must not be a CA.
    profile_case(
        &[("vcek", bad("bad-vcek-ca.der"))],
        &["chain.leaf.profile"],
        "VCEK: a CA certificate (basicConstraints cA) used as an end entity",
    );
    // notBefore after notAfter (and so never valid).
    profile_case(
        &[("vcek", bad("bad-vcek-reversed.der"))],
        &["chain.leaf.profile", "chain.leaf.signature.validity"],
        "is after notAfter",
    );
    // The outer signatureAlgorithm differs from the signed one (RFC 5280 4.1.1.2): the
    // salt length of the outer copy changed from 48 to 32, outside the signed bytes, so
    // the signature still verifies.
    let mut vcek = pki("test-vcek.der");
    let salt = [0xa2, 0x03, 0x02, 0x01, 0x30];
    let at = vcek
        .windows(salt.len())
        .rposition(|w| w == salt)
        .expect("the outer PSS salt");
    vcek[at + 4] = 0x20;
    profile_case(
        &[("vcek", vcek)],
        &["chain.leaf.profile", "chain.leaf.signature"],
        "differs from the signature algorithm inside the signed part",
    );
}

/// The checks that failed, by name.
fn failed_names(v: &Verdict<Claims>) -> Vec<&'static str> {
    v.failed_checks().map(|c| c.name.name()).collect()
}

#[test]
fn leniencies_of_the_report_fields_are_closed() {
    // VMPL 4 does not exist (four levels, 0-3), whatever the policy's VMPL list.
    let v = plain(&report(Key::Vcek, |r| r[0x30] = 4));
    assert_eq!(failed_names(&v), ["policy.vmpl"], "{:#?}", failed(&v));
    assert!(failed(&v)[0].contains("VMPL 4 does not exist"));
    // POLICY bit 26 is reserved in ABI 1.55.
    let v = plain(&report(Key::Vcek, |r| r[0x0b] |= 0x04));
    assert_eq!(
        failed_names(&v),
        ["policy.reserved_bits"],
        "{:#?}",
        failed(&v)
    );
    // A version 3 report always carries its CPUID; zero names no product.
    let v = plain(&report(Key::Vcek, |r| r[0x188..0x18b].fill(0)));
    assert_eq!(failed_names(&v), ["leaf.product"], "{:#?}", failed(&v));
    // A Genoa CPUID on the Milan chain.
    let v = plain(&report(Key::Vcek, |r| r[0x189] = 0x11));
    assert_eq!(failed_names(&v), ["leaf.product"], "{:#?}", failed(&v));
    assert!(
        failed(&v)[0].contains("CPUID says Genoa"),
        "{:#?}",
        failed(&v)
    );
}
