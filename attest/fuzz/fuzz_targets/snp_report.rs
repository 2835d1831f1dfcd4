//! An SNP report on arbitrary bytes, through the whole verification (no certificates, so
//! the chain fails early; parsing, claims and appraisal all run).
#![no_main]

use cvm_attest::snp::appraise::{Expected, Policy, Reference};
use cvm_attest::snp::certs::{Roots, Supplied};
use cvm_attest::Time;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static ROOTS: OnceLock<Roots> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most inputs are not 1184 bytes long: also run them zero-padded to a report's
    // length, with a plausible version, so the field checks are reached.
    let mut report = [0u8; 0x4a0];
    for (d, s) in report.iter_mut().zip(data) {
        *d = *s;
    }
    if let Some(v) = report.first_mut() {
        *v = 2 + (*v & 3);
    }
    check(&report);
});

fn check(data: &[u8]) {
    let roots = ROOTS.get_or_init(|| Roots::amd().expect("built-in roots"));
    let reference = Reference {
        measurement: Expected::Skip,
        host_data: Expected::Skip,
        id_key_digest: Expected::Skip,
        author_key_digest: Expected::Skip,
        report_data: Expected::Skip,
        family_id: Expected::Skip,
        image_id: Expected::Skip,
    };
    let v = cvm_attest::snp::Verifier {
        roots,
        supplied: &Supplied::default(),
        crl: None,
        reference: Some(&reference),
        policy: &Policy::default(),
        at: Time(1_772_323_200),
        cache: &cvm_attest::Cache::default(),
    }
    .verify(data);
    assert_eq!(v.verdict, cvm_attest::Status::Fail);
    let _ = debug_len(&v);
}

/// Formats the whole verdict, claims included.
fn debug_len<T: std::fmt::Debug>(v: &T) -> usize {
    format!("{v:?}").len()
}
