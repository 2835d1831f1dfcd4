//! cvm decodes CRLs field by field (keeping only the revoked serial numbers' positions);
//! `x509-cert` decodes them whole. On every CRL of the vectors and the test PKI, and on
//! mutations of them, the two must agree: the same window and serial numbers when both
//! accept, and the same verdict on whether the bytes are a CRL at all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::Time;
use cvm_attest::x509::Crl;
use der::Decode;
use std::path::{Path, PathBuf};
use x509_cert::crl::CertificateList;

fn crl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            crl_files(&path, out);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("crl") && n.ends_with(".der"))
        {
            out.push(path);
        }
    }
}

/// A CRL's validity window and revoked serial numbers.
type Decoded = ((Time, Option<Time>), Vec<Vec<u8>>);

/// What x509-cert makes of `der`.
fn reference(der: &[u8]) -> Option<Decoded> {
    let crl = CertificateList::from_der(der).ok()?;
    let t = &crl.tbs_cert_list;
    Some((
        (
            Time::from_der_time(&t.this_update),
            t.next_update.as_ref().map(Time::from_der_time),
        ),
        t.revoked_certificates
            .iter()
            .flatten()
            .map(|r| r.serial_number.as_bytes().to_vec())
            .collect(),
    ))
}

/// What cvm makes of `der`.
fn ours(der: &[u8]) -> Option<Decoded> {
    let crl = Crl::parse(der, "crl").ok()?;
    Some((
        crl.window(),
        crl.revoked_serials().map(<[u8]>::to_vec).collect(),
    ))
}

/// The test PKI's CRLs and, when the vectors are present, theirs.
fn all_crls() -> Vec<PathBuf> {
    let mut files = Vec::new();
    crl_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snp-test-pki"),
        &mut files,
    );
    match cvm_tests::vectors() {
        Some(dir) => crl_files(&dir, &mut files),
        None => eprintln!("only the test PKI's CRLs are compared"),
    }
    assert!(files.len() >= 2);
    files
}

#[test]
fn crls_decode_as_x509_cert_decodes_them() {
    let files = all_crls();
    let mut serials = 0;
    for path in &files {
        let der = std::fs::read(path).unwrap();
        let theirs = reference(&der);
        assert_eq!(ours(&der), theirs, "{}", path.display());
        serials += theirs.map_or(0, |(_, s)| s.len());
    }
    // The vectors' PCK CRLs list revoked certificates: the comparison is not vacuous.
    assert!(serials > 0, "no CRL lists a serial number");
}

#[test]
fn mutated_crls_are_refused_alike() {
    // Each distinct CRL once.
    let mut seen = std::collections::HashSet::new();
    let files: Vec<PathBuf> = all_crls()
        .into_iter()
        .filter(|p| seen.insert(std::fs::read(p).unwrap()))
        .collect();
    let mut refused = 0;
    for path in &files {
        let der = std::fs::read(path).unwrap();
        let step = (der.len() / 61).max(1);
        for i in (0..der.len()).step_by(step) {
            let truncated = &der[..i];
            assert_eq!(ours(truncated).is_some(), reference(truncated).is_some());
            for flip in [0x01u8, 0x80, 0xff] {
                let mut m = der.clone();
                m[i] ^= flip;
                let (a, b) = (ours(&m), reference(&m));
                assert_eq!(
                    a.is_some(),
                    b.is_some(),
                    "{}: byte {i} ^ {flip:#x}: cvm {a:?}, x509-cert {b:?}",
                    path.display()
                );
                if a.is_none() {
                    refused += 1;
                } else {
                    assert_eq!(a, b, "{}: byte {i} ^ {flip:#x}", path.display());
                }
            }
        }
    }
    assert!(refused > 0);
}
