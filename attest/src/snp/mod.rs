//! AMD SEV-SNP attestation reports: parse, verify the signature and the AMD chain, match
//! the VCEK/VLEK to the report, appraise the claims.
//!
//! ```no_run
//! use cvm_attest::snp::{Verifier, appraise::{Expected, Policy, Reference}, certs::{Roots, Supplied}};
//! use cvm_attest::config::Bytes;
//! use cvm_attest::x509::Crl;
//! use cvm_attest::{Cache, Time};
//! # let report_bytes: Vec<u8> = vec![];
//! # let supplied = Supplied::default();
//! # let crl_der: Vec<u8> = vec![];
//! let roots = Roots::amd()?;
//! let crl = Crl::parse(&crl_der, "AMD's CRL")?;
//! // Every field is named: a value, a set of values, or a skip said on purpose.
//! let reference = Reference {
//!     measurement: Expected::value(Bytes([0x5a; 48])),
//!     host_data: Expected::Skip,
//!     id_key_digest: Expected::Skip,
//!     author_key_digest: Expected::Skip,
//!     report_data: Expected::value(Bytes([0; 64])),
//!     family_id: Expected::Skip,
//!     image_id: Expected::Skip,
//! };
//! let verifier = Verifier {
//!     roots: &roots,
//!     supplied: &supplied,
//!     crl: Some(&crl),
//!     reference: Some(&reference),
//!     policy: &Policy::default(),
//!     at: Time::parse_rfc3339("2026-03-01T00:00:00Z")?,
//!     cache: &Cache::default(),
//! };
//! println!("{}", serde_json::to_string(&verifier.verify(&report_bytes))?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod appraise;
pub mod cert_table;
pub mod certs;
pub mod claims;
pub mod guest_msg;
pub mod report;
pub mod tcb;

use crate::cache::Cache;
use crate::time::Time;
use crate::verdict::{Category, CheckId, Checks, Verdict};
use crate::x509::Crl;
use appraise::{Policy, Reference};
use certs::{AmdExtensions, LeafKind, Roots, Supplied, VerifiedLeaf};
use claims::Claims;
use hex::encode;
use report::{Report, SigningKey};
use ring::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use tcb::{Product, Tcb};

/// What verifying SNP reports needs besides the report itself.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The trust anchors.
    pub roots: &'a Roots,
    /// The certificates supplied with the evidence.
    pub supplied: &'a Supplied,
    /// An ARK-signed CRL, when given.
    pub crl: Option<&'a Crl>,
    /// Reference values; `None` only when the caller said explicitly that it checks
    /// authenticity alone (`--no-reference`).
    pub reference: Option<&'a Reference>,
    /// The policy.
    pub policy: &'a Policy,
    /// The verification time.
    pub at: Time,
    /// Remembered certificate and CRL signature verifications (a fresh one per report,
    /// or one per batch, so that a batch verifies the chain once). The report's own
    /// signature is always verified.
    pub cache: &'a Cache,
}

impl Verifier<'_> {
    /// Verifies one report end to end.
    pub fn verify(&self, report_bytes: &[u8]) -> Verdict<Claims> {
        verify(self, report_bytes)
    }
}

fn verify(v: &Verifier<'_>, report_bytes: &[u8]) -> Verdict<Claims> {
    let at = v.at;
    let mut checks = Checks::default();
    let report = match Report::parse(report_bytes) {
        Ok(r) => r,
        Err(e) => {
            checks.record(
                CheckId::ReportParse,
                Category::Malformed,
                Err(e.to_string()),
            );
            return finish(checks, None, None, at);
        }
    };
    let defects: Vec<String> = report
        .defects
        .iter()
        .map(|d| format!("{} at {:#x}: {}", d.field, d.offset, d.reason))
        .collect();
    checks.record(
        CheckId::ReportStructure,
        Category::Malformed,
        if defects.is_empty() {
            Ok(format!(
                "version {}, {} bytes, reserved fields and the unsigned tail zero",
                report.version(),
                report::REPORT_LEN
            ))
        } else {
            Err(defects.join("; "))
        },
    );
    let kind = match report.signing_key() {
        SigningKey::Vcek => Some(LeafKind::Vcek),
        SigningKey::Vlek => Some(LeafKind::Vlek),
        other => {
            checks.record(
                CheckId::ReportSigningKey,
                Category::Signature,
                Err(format!(
                    "SIGNING_KEY is {other:?}: the report is not signed by a VCEK or VLEK"
                )),
            );
            None
        }
    };
    let leaf = kind.and_then(|k| certs::verify_chain(v, k, &mut checks));
    let cpuid_product = report
        .cpuid()
        .and_then(|[fam, model, _]| Product::from_cpuid(fam, model));
    let product = leaf.as_ref().map(|l| l.product).or(cpuid_product);
    if let Some(leaf) = &leaf {
        check_signature(&report, leaf, &mut checks);
        match_leaf(&report, leaf, cpuid_product, &mut checks);
    }
    if let Some(p) = product {
        check_tcb_reserved(&report, p, &mut checks);
    }
    let claims = Claims::new(&report, product);
    appraise::appraise(&report, &claims, v.reference, v.policy, &mut checks);
    finish(checks, product, Some(claims), at)
}

fn finish(
    checks: Checks,
    product: Option<Product>,
    claims: Option<Claims>,
    at: Time,
) -> Verdict<Claims> {
    Verdict::new(
        checks,
        cvm_firmware::Tee::Snp,
        product.map(|p| p.name().to_owned()),
        claims,
        at,
    )
}

fn check_signature(report: &Report<'_>, leaf: &VerifiedLeaf, checks: &mut Checks) {
    let name = match leaf.kind {
        LeafKind::Vcek => "VCEK",
        LeafKind::Vlek => "VLEK",
    };
    if report.mask_chip_key() {
        checks.record(
            CheckId::ReportSignature,
            Category::Signature,
            Err(
                "MASK_CHIP_KEY is set: the firmware wrote zeroes instead of signing the report, \
                 so nothing vouches for it"
                    .to_owned(),
            ),
        );
        return;
    }
    let result = leaf.cert.p384_public_key().and_then(|key| {
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
            .verify(report.signed_bytes(), &report.signature_fixed())
            .map_err(|_| {
                format!(
                    "the ECDSA P-384 signature over bytes 0x000-0x29F does not verify with the {name}"
                )
            })
    });
    checks.record(
        CheckId::ReportSignature,
        Category::Signature,
        result
            .map(|()| format!("ECDSA P-384/SHA-384 over the raw bytes 0x000-0x29F, by the {name}")),
    );
}

/// The leaf's extensions must describe this report: TCB, chip and product.
fn match_leaf(
    report: &Report<'_>,
    leaf: &VerifiedLeaf,
    cpuid_product: Option<Product>,
    checks: &mut Checks,
) {
    let ext = match AmdExtensions::read(&leaf.cert) {
        Ok(e) => e,
        Err(e) => {
            checks.record(CheckId::LeafExtensions, Category::Signature, Err(e));
            return;
        }
    };
    let (tcb, _) = Tcb::decode(report.fields.reported_tcb, leaf.product);
    let mut mismatches = Vec::new();
    for (name, value) in tcb.components() {
        match ext.spl(name) {
            Some(v) if v == u64::from(value) => {}
            Some(v) => mismatches.push(format!("{name}: report {value}, certificate {v}")),
            None => mismatches.push(format!("{name}: the certificate has no {name}SPL")),
        }
    }
    checks.record(
        CheckId::LeafTcb,
        Category::Signature,
        if mismatches.is_empty() {
            Ok(format!(
                "REPORTED_TCB ({tcb}) equals the certificate's SPLs"
            ))
        } else {
            Err(format!(
                "REPORTED_TCB does not match the certificate: {}",
                mismatches.join(", ")
            ))
        },
    );
    match leaf.kind {
        LeafKind::Vlek => checks.skip(
            CheckId::LeafChipId,
            Category::Signature,
            "VLEK certificates carry no hwID",
        ),
        // The platform's MASK_CHIP_ID setting zeroes CHIP_ID; the VCEK, derived from
        // the chip's own secret, still ties the signature to one chip.
        LeafKind::Vcek if report.fields.chip_id.iter().all(|b| *b == 0) => checks.skip(
            CheckId::LeafChipId,
            Category::Signature,
            "CHIP_ID is zero (masked by the platform's MASK_CHIP_ID): the VCEK signature \
             alone ties the report to a chip",
        ),
        LeafKind::Vcek => {
            let chip = &report.fields.chip_id;
            let result = match &ext.hw_id {
                None => Err("the VCEK has no hwID extension".to_owned()),
                Some(hw) => {
                    let (head, tail) = chip.split_at(hw.len().min(chip.len()));
                    if head == hw.as_slice() && tail.iter().all(|b| *b == 0) {
                        Ok(format!(
                            "CHIP_ID equals the VCEK's hwID ({} bytes)",
                            hw.len()
                        ))
                    } else {
                        Err(format!(
                            "CHIP_ID {} is not the VCEK's hwID {}",
                            encode(chip),
                            encode(hw)
                        ))
                    }
                }
            };
            checks.record(CheckId::LeafChipId, Category::Signature, result);
        }
    }
    let name = ext.product_name.unwrap_or_default();
    let mut problems = Vec::new();
    if !name.starts_with(leaf.product.name()) {
        problems.push(format!(
            "productName {name:?} does not belong to the {} chain",
            leaf.product
        ));
    }
    match (report.cpuid(), cpuid_product) {
        (Some(_), Some(p)) if p != leaf.product => problems.push(format!(
            "the report's CPUID says {p}, the chain says {}",
            leaf.product
        )),
        // Version 3 and later reports always carry the CPUID (SEV-SNP ABI 1.55 table
        // 22); zero, like any other family and model no product has, contradicts the
        // chain.
        (Some([fam, model, _]), None) => problems.push(format!(
            "the report's CPUID family {fam:#x} model {model:#x} is not an SEV-SNP product"
        )),
        _ => {}
    }
    checks.record(
        CheckId::LeafProduct,
        Category::Signature,
        if problems.is_empty() {
            Ok(format!("{} (productName {name:?})", leaf.product))
        } else {
            Err(problems.join("; "))
        },
    );
}

fn check_tcb_reserved(report: &Report<'_>, product: Product, checks: &mut Checks) {
    let f = report.fields;
    let mut bad = Vec::new();
    for (offset, name, bytes) in [
        (0x38usize, "CURRENT_TCB", f.current_tcb),
        (0x180, "REPORTED_TCB", f.reported_tcb),
        (0x1e0, "COMMITTED_TCB", f.committed_tcb),
        (0x1f0, "LAUNCH_TCB", f.launch_tcb),
    ] {
        for i in Tcb::decode(bytes, product).1 {
            bad.push(format!(
                "{name} byte {i} (offset {:#x}) is reserved for {product}, must be zero",
                offset.saturating_add(i)
            ));
        }
    }
    checks.record(
        CheckId::ReportTcbReserved,
        Category::Malformed,
        if bad.is_empty() {
            Ok(format!("TCB reserved bytes zero ({product} layout)"))
        } else {
            Err(bad.join("; "))
        },
    );
}
