//! Intel DCAP quotes (TDX v4/v5, SGX v3): parse, verify the PCK chain to the built-in
//! Intel SGX Root CA, the QE report and the quote signature, verify Intel's collateral
//! (CRLs, TCB Info, QE Identity) at the given time, evaluate the TCB status, appraise the
//! claims.
//!
//! ```no_run
//! use cvm_attest::Cache;
//! use cvm_attest::tdx::{Verifier, appraise::Policy, collateral::Collateral, pck::IntelRoot};
//! use cvm_attest::time::Time;
//! # let quote: Vec<u8> = vec![];
//! # let collateral_json = "";
//! let root = IntelRoot::builtin()?;
//! let collateral = Collateral::parse_json(collateral_json)?;
//! let policy = Policy::default();
//! let verifier = Verifier {
//!     root: &root,
//!     collateral: Some(&collateral),
//!     reference: None,
//!     policy: &policy,
//!     event_log: None,
//!     plan_log: None,
//!     at: Time::parse_rfc3339("2025-07-01T00:00:00Z")?,
//!     cache: &Cache::default(),
//! };
//! println!("{}", serde_json::to_string(&verifier.verify(&quote))?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod appraise;
pub mod claims;
pub mod collateral;
pub mod pck;
pub mod quote;
pub mod tcb;

use crate::cache::Cache;

use crate::eventlog::AnyLog;
use crate::time::Time;
use crate::verdict::{Category, CheckId, Checks, Verdict};
use crate::x509::{Cert, Crl};
use appraise::{EventLog, Policy, Reference};
use claims::{Claims, PckClaims, TcbClaims};
use collateral::{Collateral, QeIdentity, Signed, TcbInfo, TcbStatus};
use pck::{IntelRoot, VerifiedPck};
use quote::{INTEL_QE_VENDOR_ID, Quote, Tee};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use tcb::StatusAdvisories;

/// Everything a verification needs besides the quote.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The trust anchor (the built-in Intel SGX Root CA).
    pub root: &'a IntelRoot,
    /// Intel's collateral for the quote's platform; without it the signatures and the
    /// chain are still verified, and the verdict fails for want of collateral.
    pub collateral: Option<&'a Collateral>,
    /// Reference values; `None` only when the caller said explicitly that it checks
    /// authenticity alone.
    pub reference: Option<&'a Reference>,
    /// The policy.
    pub policy: &'a Policy,
    /// An event log to replay against the RTMRs: cvm's, or the guest's firmware log.
    pub event_log: Option<&'a AnyLog>,
    /// The plan's events (`cvm measure --event-log-out`): with a guest's log, what its
    /// events are compared with, event by event, to say where they depart.
    pub plan_log: Option<&'a EventLog>,
    /// The verification time.
    pub at: Time,
    /// Remembered signature verifications (a fresh one per quote, or one per batch).
    pub cache: &'a Cache,
}

impl Verifier<'_> {
    /// Verifies one quote end to end.
    pub fn verify(&self, quote_bytes: &[u8]) -> Verdict<Claims> {
        let mut checks = Checks::default();
        let quote = match Quote::parse(quote_bytes) {
            Ok(q) => q,
            Err(e) => {
                checks.record(CheckId::QuoteParse, Category::Malformed, Err(e.to_string()));
                return Verdict::new(checks, Tee::Tdx, None, None, self.at);
            }
        };
        let mut claims = Claims::new(&quote);
        structure(&quote, &mut checks);
        let pck = pck::verify_chain(
            quote.pck_chain_pem,
            self.root,
            self.at,
            self.cache,
            &mut checks,
        );
        if let Some(p) = &pck {
            claims.pck = Some(PckClaims::new(&p.ext, p.ca_kind));
            qe_report_signature(&quote, p, self.cache, &mut checks);
        }
        qe_binding(&quote, &mut checks);
        quote_signature(&quote, self.cache, &mut checks);
        match self.collateral {
            None => {
                checks.record(
                    CheckId::Collateral,
                    Category::Collateral,
                    Err(
                        "no collateral given: revocation, the QE identity and the TCB status \
                         cannot be decided (give --collateral)"
                            .into(),
                    ),
                );
            }
            Some(c) => claims.tcb = self.with_collateral(&quote, pck.as_ref(), c, &mut checks),
        }
        let departures = appraise::appraise(
            &quote.body,
            self.reference,
            self.policy,
            self.event_log,
            self.plan_log,
            &mut checks,
        );
        let product = claims
            .pck
            .as_ref()
            .map(|p| format!("FMSPC {} (PCK {:?} CA)", p.fmspc, p.ca));
        let mut v = Verdict::new(checks, quote.tee(), product, Some(claims), self.at);
        v.departures = departures;
        v
    }

    fn with_collateral(
        &self,
        quote: &Quote<'_>,
        pck: Option<&VerifiedPck>,
        c: &Collateral,
        checks: &mut Checks,
    ) -> Option<TcbClaims> {
        let at = self.at;
        let anchor = self.root.crl_anchor(&c.root_ca_crl);
        crl_checks(
            checks,
            (
                CheckId::CollateralRootCaCrl,
                CheckId::CollateralRootCaCrlValidity,
            ),
            "Root CA CRL",
            &c.root_ca_crl,
            (anchor, "trusted Intel SGX Root CA"),
            self,
        );
        if let Some(p) = pck {
            crl_checks(
                checks,
                (CheckId::CollateralPckCrl, CheckId::CollateralPckCrlValidity),
                "PCK CRL",
                &c.pck_crl,
                (Some(&p.ca), "PCK certificate's CA"),
                self,
            );
            revocation(p, c, checks);
        }
        checks.record(
            CheckId::CollateralPckCrlIssuerChain,
            Category::Signature,
            pck_crl_issuer_chain(c, pck, self),
        );
        let tcb_info: Option<TcbInfo> = signed_item(
            &c.tcb_info,
            &TCB_INFO_CHECKS,
            "TCB Info",
            self,
            &c.root_ca_crl,
            checks,
        );
        let qe_identity: Option<QeIdentity> = signed_item(
            &c.qe_identity,
            &QE_IDENTITY_CHECKS,
            "QE Identity",
            self,
            &c.root_ca_crl,
            checks,
        );
        if let Some(info) = &tcb_info {
            check_window(
                checks,
                CheckId::CollateralTcbInfoValidity,
                "TCB Info",
                &info.issue_date,
                &info.next_update,
                at,
            );
            let (want_id, min_version) = match quote.tee() {
                Tee::Sgx => ("SGX", 3),
                _ => ("TDX", 3),
            };
            checks.record(
                CheckId::CollateralTcbInfoKind,
                Category::Collateral,
                if info.id == want_id && info.version >= min_version {
                    Ok(format!("{} TCB Info version {}", info.id, info.version))
                } else {
                    Err(format!(
                        "TCB Info id {:?} version {}: a {} quote needs id {want_id:?} version >= {min_version}",
                        info.id,
                        info.version,
                        quote.tee().name()
                    ))
                },
            );
        }
        if let Some(id) = &qe_identity {
            check_window(
                checks,
                CheckId::CollateralQeIdentityValidity,
                "QE Identity",
                &id.issue_date,
                &id.next_update,
                at,
            );
            let want = match quote.tee() {
                Tee::Sgx => "QE",
                _ => "TD_QE",
            };
            checks.record(
                CheckId::CollateralQeIdentityKind,
                Category::Collateral,
                if id.id == want && id.version == 2 {
                    Ok(format!("{} identity version {}", id.id, id.version))
                } else {
                    Err(format!(
                        "QE Identity id {:?} version {}: a {} quote needs {want:?} version 2",
                        id.id,
                        id.version,
                        quote.tee().name()
                    ))
                },
            );
        }
        let qe_status = qe_identity.as_ref().and_then(|id| {
            checks.record(
                CheckId::QeIdentity,
                Category::Signature,
                tcb::qe_identity_matches(id, &quote.qe_report),
            );
            let status = tcb::qe_status(id, &quote.qe_report);
            checks.record(
                CheckId::QeTcb,
                Category::Signature,
                status
                    .as_ref()
                    .map(|s| format!("QE ISVSVN {}: {}", quote.qe_report.isv_svn, s.status))
                    .map_err(Clone::clone),
            );
            status.ok()
        });
        let (info, p) = (tcb_info?, pck?);
        let fmspc_ok = checks.record(
            CheckId::TcbFmspc,
            Category::Collateral,
            match (
                collateral::hex_field::<6>(&info.fmspc, "fmspc"),
                collateral::hex_field::<2>(&info.pce_id, "pceId"),
            ) {
                (Ok(f), Ok(pce)) if f == p.ext.fmspc && pce == p.ext.pce_id => Ok(format!(
                    "the TCB Info is for the platform's FMSPC {} and PCE ID {}",
                    info.fmspc, info.pce_id
                )),
                (Ok(_), Ok(_)) => Err(format!(
                    "the TCB Info is for FMSPC {} / PCE ID {}, the PCK certificate says {} / {}",
                    info.fmspc,
                    info.pce_id,
                    hex::encode(p.ext.fmspc).to_ascii_uppercase(),
                    hex::encode(p.ext.pce_id).to_ascii_uppercase()
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
        );
        if !fmspc_ok {
            return None;
        }
        let td = quote.body.td();
        let platform = tcb::platform_level(&info, &p.ext, td);
        checks.record(
            CheckId::TcbPlatform,
            Category::Policy,
            platform
                .as_ref()
                .map(|(s, date)| format!("platform TCB level {} (tcbDate {date})", s.status))
                .map_err(Clone::clone),
        );
        let module = td.map(|td| {
            let m = tcb::module_status(&info, td);
            checks.record(
                CheckId::TcbModule,
                Category::Signature,
                m.as_ref().map(|(_, why)| why.clone()).map_err(Clone::clone),
            );
            m
        });
        let (platform, tcb_date) = platform.ok()?;
        let module = match module {
            Some(Ok((status, _))) => status,
            Some(Err(_)) => return None,
            None => None,
        };
        let qe = qe_status?;
        let mut merged = platform.clone();
        if let Some(m) = &module {
            merged = merged.merge(m);
        }
        merged = merged.merge(&qe);
        tcb_status(&merged, self.policy, checks);
        Some(TcbClaims {
            status: merged,
            platform,
            tcb_date,
            module,
            qe,
            evaluation_data_number: info.tcb_evaluation_data_number,
        })
    }
}

fn structure(quote: &Quote<'_>, checks: &mut Checks) {
    let trailing = match quote.trailing {
        0 => String::new(),
        n => format!("; {n} bytes after its end ignored (not part of the quote)"),
    };
    checks.record(
        CheckId::QuoteStructure,
        Category::Malformed,
        if quote.header.qe_vendor_id == INTEL_QE_VENDOR_ID {
            Ok(format!(
                "version {} {} quote, {}, {} bytes, Intel's QE{trailing}",
                quote.header.version,
                quote.tee().name().to_ascii_uppercase(),
                quote.body.name(),
                quote.len()
            ))
        } else {
            Err(format!(
                "QE vendor ID {} is not Intel's ({})",
                hex::encode(quote.header.qe_vendor_id),
                hex::encode(INTEL_QE_VENDOR_ID)
            ))
        },
    );
}

fn p256_verify(cache: &Cache, key: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
    cache
        .verify([key, message, signature], || {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
                .verify(message, signature)
                .map_err(|_| String::new())
        })
        .is_ok()
}

fn qe_report_signature(quote: &Quote<'_>, p: &VerifiedPck, cache: &Cache, checks: &mut Checks) {
    let result = p.leaf.p256_public_key().and_then(|key| {
        if p256_verify(cache, key, quote.qe_report_raw, &quote.qe_report_signature) {
            Ok("ECDSA P-256/SHA-256 over the 384 bytes of the QE report, by the PCK key".into())
        } else {
            Err("the QE report's signature does not verify with the PCK certificate's key".into())
        }
    });
    checks.record(CheckId::QeReportSignature, Category::Signature, result);
}

fn qe_binding(quote: &Quote<'_>, checks: &mut Checks) {
    let mut h = Sha256::new();
    h.update(quote.attestation_key);
    h.update(quote.qe_auth_data);
    let digest: [u8; 32] = h.finalize().into();
    let (head, tail) = quote.qe_report.report_data.split_at(32);
    checks.record(
        CheckId::QeReportData,
        Category::Signature,
        if head == digest && tail.iter().all(|b| *b == 0) {
            Ok("QE REPORTDATA = SHA-256(attestation key || QE authentication data) || 32 zero bytes".into())
        } else {
            Err(format!(
                "QE REPORTDATA {} does not bind the attestation key: SHA-256(key || auth data) is {}",
                hex::encode(quote.qe_report.report_data),
                hex::encode(digest)
            ))
        },
    );
}

fn quote_signature(quote: &Quote<'_>, cache: &Cache, checks: &mut Checks) {
    let mut key = [0u8; 65];
    let (prefix, point) = key.split_at_mut(1);
    prefix.fill(0x04);
    point.copy_from_slice(&quote.attestation_key);
    let n = quote.signed_bytes().len();
    checks.record(
        CheckId::QuoteSignature,
        Category::Signature,
        if p256_verify(cache, &key, quote.signed_bytes(), &quote.signature) {
            Ok(format!(
                "ECDSA P-256/SHA-256 over the header and body (bytes 0-{}), by the attestation key",
                n.saturating_sub(1)
            ))
        } else {
            Err(format!(
                "the quote signature over bytes 0-{} does not verify with the attestation key",
                n.saturating_sub(1)
            ))
        },
    );
}

/// The PCK CRL's issuer chain, as the collateral supplies it: the PCK CA that signed the
/// CRL (the same CA as the quote's chain names, when that verified), issued by a trusted
/// root and valid, followed by nothing but trusted roots.
fn pck_crl_issuer_chain(
    c: &Collateral,
    pck: Option<&VerifiedPck>,
    v: &Verifier<'_>,
) -> Result<String, String> {
    let (at, cache) = (v.at, v.cache);
    let (first, rest) = c
        .pck_crl_issuer_chain
        .split_first()
        .ok_or("the PCK CRL issuer chain is empty")?;
    let cn = first.subject_cn().unwrap_or_default();
    if !c.pck_crl.issued_by(first) {
        return Err(format!(
            "its first certificate ({cn:?}) is not the PCK CRL's issuer"
        ));
    }
    if let Some(p) = pck
        && first.cert.tbs_certificate.subject != p.ca.cert.tbs_certificate.subject
    {
        return Err(format!(
            "its first certificate ({cn:?}) is not the quote's PCK CA ({:?})",
            p.ca.subject_cn().unwrap_or_default()
        ));
    }
    let anchor = v.root.anchor_for(first, cache).ok_or_else(|| {
        format!(
            "{cn:?} is issued by {:?}, which is not a trusted root",
            first.issuer_cn().unwrap_or_default()
        )
    })?;
    pck::check_issued(
        (first, &pck::PCK_CA_PROFILE),
        (anchor, Some(&pck::ROOT_PROFILE)),
        "trusted Intel SGX Root CA",
        at,
        cache,
    )
    .map_err(|e| format!("{cn}: {e}"))?;
    if let Some(other) = rest.iter().find(|r| !v.root.is_anchor(r.der())) {
        return Err(format!(
            "it carries a root ({:?}) that is not a trusted one",
            other.subject_cn().unwrap_or_default()
        ));
    }
    Ok(format!(
        "{cn}, the PCK CRL's issuer, signed by the trusted Intel SGX Root CA, valid at {at}"
    ))
}

fn revocation(p: &VerifiedPck, c: &Collateral, checks: &mut Checks) {
    let mut revoked = Vec::new();
    if c.root_ca_crl.revokes(&p.ca) {
        revoked.push("the PCK CA is revoked by the Root CA CRL");
    }
    if c.pck_crl.revokes(&p.leaf) {
        revoked.push("the PCK certificate is revoked by the PCK CRL");
    }
    checks.record(
        CheckId::PckRevocation,
        Category::Signature,
        if revoked.is_empty() {
            Ok("neither the PCK certificate nor its CA is revoked".into())
        } else {
            Err(revoked.join("; "))
        },
    );
}

/// The checks of one signed collateral item.
struct ItemChecks {
    signer: CheckId,
    signature: CheckId,
    body: CheckId,
}

const TCB_INFO_CHECKS: ItemChecks = ItemChecks {
    signer: CheckId::CollateralTcbInfoSigner,
    signature: CheckId::CollateralTcbInfoSignature,
    body: CheckId::CollateralTcbInfoBody,
};

const QE_IDENTITY_CHECKS: ItemChecks = ItemChecks {
    signer: CheckId::CollateralQeIdentitySigner,
    signature: CheckId::CollateralQeIdentitySignature,
    body: CheckId::CollateralQeIdentityBody,
};

/// Verifies a signed collateral item: its signer chains to the root, is Intel's TCB
/// signing certificate, valid and not revoked; the signature is over the exact bytes;
/// then the body is decoded.
fn signed_item<T: serde::de::DeserializeOwned>(
    item: &Signed,
    ids: &ItemChecks,
    name: &str,
    v: &Verifier<'_>,
    root_crl: &Crl,
    checks: &mut Checks,
) -> Option<T> {
    let (at, cache) = (v.at, v.cache);
    let signer_ok = checks.record(ids.signer, Category::Signature, {
        let signer = &item.signer;
        let cn = signer.subject_cn().unwrap_or_default();
        let anchor = v.root.anchor_for(signer, cache);
        if cn != "Intel SGX TCB Signing" {
            Err(format!(
                "the {name} signer {cn:?} is not Intel SGX TCB Signing"
            ))
        } else if root_crl.revokes(signer) {
            Err(format!("the {name} signer is revoked by the Root CA CRL"))
        } else if let Some(anchor) = anchor {
            pck::check_issued(
                (signer, &pck::TCB_SIGNING_PROFILE),
                (anchor, Some(&pck::ROOT_PROFILE)),
                "trusted Intel SGX Root CA",
                at,
                cache,
            )
            .map(|()| format!("{cn}, signed by the trusted Intel SGX Root CA, valid at {at}"))
            .map_err(|e| format!("the {name} signer: {e}"))
        } else {
            Err(format!(
                "the {name} signer is issued by {:?}, which is not a trusted root",
                signer.issuer_cn().unwrap_or_default()
            ))
        }
    });
    let signature_ok = signer_ok
        && checks.record(
            ids.signature,
            Category::Signature,
            item.signer.p256_public_key().and_then(|k| {
                if p256_verify(cache, k, item.body.as_bytes(), &item.signature) {
                    Ok(format!(
                        "ECDSA P-256/SHA-256 over the {} bytes of the {name} as given",
                        item.body.len()
                    ))
                } else {
                    Err(format!(
                        "the {name} signature does not verify over its exact bytes"
                    ))
                }
            }),
        );
    if !signature_ok {
        return None;
    }
    match serde_json::from_str::<T>(&item.body) {
        Ok(v) => Some(v),
        Err(e) => {
            checks.record(
                ids.body,
                Category::Malformed,
                Err(format!("the signed {name} does not decode: {e}")),
            );
            None
        }
    }
}

/// A CRL's signature (by `signer`) and its currency at `at`: a stale CRL is stale
/// collateral, a bad signature a bad signature.
fn crl_checks(
    checks: &mut Checks,
    (signature, validity): (CheckId, CheckId),
    name: &str,
    crl: &Crl,
    (signer, signer_name): (Option<&Cert>, &str),
    v: &Verifier<'_>,
) {
    let (at, cache) = (v.at, v.cache);
    checks.record(
        signature,
        Category::Signature,
        match signer {
            None => Err(format!("{name}: its issuer is not the {signer_name}")),
            Some(signer) => cache
                .crl_signed_by(crl, signer)
                .map(|()| format!("{name} signed by the {signer_name}"))
                .map_err(|e| format!("{name}: {e}")),
        },
    );
    checks.record(
        validity,
        Category::Collateral,
        collateral::crl_window(crl, at).map_err(|e| format!("the {name} is {e}")),
    );
}

fn check_window(
    checks: &mut Checks,
    check: CheckId,
    name: &str,
    issue: &str,
    next: &str,
    at: Time,
) {
    checks.record(
        check,
        Category::Collateral,
        collateral::window(issue, next, at).map_err(|e| format!("the {name} is {e}")),
    );
}

fn tcb_status(merged: &StatusAdvisories, policy: &Policy, checks: &mut Checks) {
    let advisories = if merged.advisory_ids.is_empty() {
        "no advisories".to_owned()
    } else {
        format!("advisories {}", merged.advisory_ids.join(", "))
    };
    let (category, result) = if merged.status == TcbStatus::Revoked {
        (
            Category::Signature,
            Err(format!("the TCB is Revoked ({advisories})")),
        )
    } else if policy.accepted_tcb_statuses.contains(&merged.status) {
        (
            Category::Policy,
            Ok(format!("TCB status {} ({advisories})", merged.status)),
        )
    } else {
        (
            Category::Policy,
            Err(format!(
                "TCB status {} ({advisories}) is not accepted by the policy (accepted: {})",
                merged.status,
                policy
                    .accepted_tcb_statuses
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )
    };
    checks.record(CheckId::TcbStatus, category, result);
}
