//! Arm CCA attestation tokens: parse ([`token`]), verify (the platform token with a
//! trusted CPAK, the realm token with the RAK it carries, the binding between them),
//! appraise ([`appraise`]) and return a [`Verdict`]. The CPAK is a raw public key: no
//! certificate, no validity period, so the verification time is recorded but judges
//! nothing. Fails closed: any failed check fails the verdict.

pub mod appraise;
pub mod claims;
pub mod keys;
pub mod token;

use crate::verdict::{Category, CheckId, Checks, Verdict};
use claims::{Claims, PlatformClaims, RealmClaims};
use cvm_firmware::Tee;
use keys::TrustAnchors;
use token::Token;

/// A CCA token verifier.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The trusted CPAKs.
    pub anchors: &'a TrustAnchors,
    /// The reference values (`None`: authenticity only).
    pub reference: Option<&'a appraise::Reference>,
    /// The policy.
    pub policy: &'a appraise::Policy,
    /// The verification time (recorded; raw keys have no validity to judge).
    pub at: crate::Time,
}

impl Verifier<'_> {
    /// Verifies one token end to end.
    pub fn verify(&self, bytes: &[u8]) -> Verdict<Claims> {
        let mut checks = Checks::default();
        let parsed = Token::parse(bytes).and_then(|t| {
            let platform = PlatformClaims::read(&t.platform)?;
            let realm = RealmClaims::read(&t.realm)?;
            Ok((t, platform, realm))
        });
        let (token, platform, realm) = match parsed {
            Ok(p) => p,
            Err(e) => {
                checks.record(CheckId::TokenParse, Category::Malformed, Err(e.to_string()));
                return Verdict::new(checks, Tee::Cca, None, None, self.at);
            }
        };
        checks.record(
            CheckId::TokenParse,
            Category::Malformed,
            Ok(format!(
                "{} collection, platform profile {}, realm profile {}",
                match token.collection {
                    token::Collection::Tag399 => "tag 399",
                    token::Collection::Cmw907 => "CMW (tag 907)",
                },
                platform.profile,
                realm.profile.as_deref().unwrap_or("(legacy, none)")
            )),
        );
        self.platform_signature(&token, &platform, &mut checks);
        realm_signature(&token, &realm, &mut checks);
        binding(&platform, &realm, &mut checks);
        let claims = Claims {
            collection: token.collection,
            platform_alg: token.platform.alg,
            realm_alg: token.realm.alg,
            platform,
            realm,
        };
        appraise::appraise(&claims, self.reference, self.policy, &mut checks);
        let product = Some(format!(
            "implementation {}",
            hex::encode(&claims.platform.implementation_id.0)
        ));
        Verdict::new(checks, Tee::Cca, product, Some(claims), self.at)
    }

    fn platform_signature(&self, t: &Token, p: &PlatformClaims, checks: &mut Checks) {
        let candidates: Vec<_> = self
            .anchors
            .candidates(&p.implementation_id.0, &p.instance_id.0)
            .collect();
        if candidates.is_empty() {
            checks.record(
                CheckId::PlatformAnchor,
                Category::Collateral,
                Err(format!(
                    "no trusted CPAK for implementation ID {} instance ID {} (give --cpak or \
                     --tastore)",
                    hex::encode(&p.implementation_id.0),
                    hex::encode(&p.instance_id.0)
                )),
            );
            return;
        }
        checks.record(
            CheckId::PlatformAnchor,
            Category::Collateral,
            Ok(format!(
                "{} trusted CPAK(s) for the platform ({})",
                candidates.len(),
                candidates
                    .iter()
                    .map(|a| a.source.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
        let mut why = Vec::new();
        let ok = candidates.iter().find(|a| match t.platform.verify(&a.key) {
            Ok(()) => true,
            Err(e) => {
                why.push(format!("{}: {e}", a.source));
                false
            }
        });
        checks.record(
            CheckId::PlatformSignature,
            Category::Signature,
            match ok {
                Some(a) => Ok(format!(
                    "{} signature by the CPAK of {}",
                    t.platform.alg.name(),
                    a.source
                )),
                None => Err(format!("no trusted CPAK verifies it: {}", why.join("; "))),
            },
        );
    }
}

fn realm_signature(t: &Token, r: &RealmClaims, checks: &mut Checks) {
    checks.record(
        CheckId::RealmSignature,
        Category::Signature,
        token::rak_key(&r.rak.0)
            .map_err(|e| format!("the RAK claim: {e}"))
            .and_then(|key| {
                t.realm.verify(&key).map(|()| {
                    format!(
                        "{} signature by the RAK ({}) the realm claims carry",
                        t.realm.alg.name(),
                        key.curve.name()
                    )
                })
            }),
    );
}

/// The platform vouches for the realm token through its challenge: the hash (the
/// realm's RAK hash algorithm) of the RAK claim's bytes as carried.
fn binding(p: &PlatformClaims, r: &RealmClaims, checks: &mut Checks) {
    let result = match token::hash(&r.rak_hash_algo, &r.rak.0) {
        None => Err(format!("RAK hash algorithm {:?} unknown", r.rak_hash_algo)),
        Some(h) if h == p.challenge.0 => Ok(format!(
            "the platform challenge is {}(RAK)",
            r.rak_hash_algo
        )),
        Some(h) => Err(format!(
            "the platform challenge {} is not {}(RAK) = {}: the realm token is not the one \
             the platform vouches for",
            hex::encode(&p.challenge.0),
            r.rak_hash_algo,
            hex::encode(h)
        )),
    };
    checks.record(CheckId::RealmBinding, Category::Signature, result);
}
