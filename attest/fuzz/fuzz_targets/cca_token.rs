//! CCA tokens on arbitrary bytes: the collection, both COSE_Sign1 messages and every
//! claim, then the whole verifier with a trust anchor (signatures fail, nothing panics);
//! and the key readers (JWK, SPKI, COSE_Key, SEC1 points, a trust-anchor store).
#![no_main]

use cvm_attest::cca::appraise::{Policy, Reference};
use cvm_attest::cca::claims::{PlatformClaims, RealmClaims};
use cvm_attest::cca::keys::{PublicKey, TrustAnchors};
use cvm_attest::cca::token::Token;
use cvm_attest::cca::Verifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Token::parse(data) {
        let _ = PlatformClaims::read(&t.platform);
        let _ = RealmClaims::read(&t.realm);
    }
    let mut anchors = TrustAnchors::default();
    let _ = anchors.add_key_file(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = anchors.add_store(text, "fuzz");
        let _ = Reference::parse(text);
        let _ = Policy::parse(text);
    }
    let _ = PublicKey::from_cose_key(data);
    let _ = PublicKey::from_sec1(data);
    let _ = PublicKey::from_spki(data);
    let reference = Reference::skip();
    let v = Verifier {
        anchors: &anchors,
        reference: Some(&reference),
        policy: &Policy::default(),
        at: cvm_attest::Time(0),
    };
    let _ = v.verify(data);
});
