//! CCA tokens built here, for the algorithms no recorded token uses: a platform token
//! signed ES512 with a fixed P-521 key (RustCrypto's p521, with a random nonce) and a
//! realm token signed ES256 by a P-256 key of the Intel test PKI (ring), with the RAK
//! bound by the platform challenge, in a tag 399 collection
//! (`cvm_launcher::realm::token::collection`, which the model's RMM uses too).
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "test support code"
)]

use base64::Engine;
use coset::iana;

/// The fixed P-521 CPAK scalar (66 bytes).
fn cpak() -> p521::ecdsa::SigningKey {
    let mut scalar = [0x11u8; 66];
    scalar[0] = 0x01;
    p521::ecdsa::SigningKey::from_slice(&scalar).unwrap()
}

/// The CPAK as a JWK.
pub fn cpak_jwk() -> String {
    let point = p521::ecdsa::VerifyingKey::from(&cpak()).to_encoded_point(false);
    let b = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"{}\",\"y\":\"{}\"}}",
        b(point.x().unwrap()),
        b(point.y().unwrap())
    )
}

/// The realm's RAK (a P-256 key of the Intel test PKI) as an uncompressed point.
fn rak() -> ring::signature::EcdsaKeyPair {
    crate::tdx_test_pki::key("test-pck-key.pk8")
}

/// A token whose realm RIM is `rim` (32 bytes): ES512 platform, ES256 realm, built by the
/// same collection code as the model's RMM tokens.
pub fn token(rim: [u8; 32]) -> Vec<u8> {
    use cvm_launcher::realm::token::{Claims, Signer, collection};
    use ring::signature::KeyPair;
    let rak = rak();
    let mut instance_id = vec![0x01];
    instance_id.extend([0x22; 32]);
    let claims = Claims {
        rim: rim.to_vec(),
        challenge: [0x66; 64],
        rpv: [0x77; 64],
        rak: rak.public_key().as_ref().to_vec(),
        implementation_id: [0x33; 32],
        instance_id,
        sw_components: vec![("BL".into(), vec![0x44; 32], vec![0x55; 32])],
    };
    let cpak = cpak();
    let platform = |tbs: &[u8]| {
        use p521::ecdsa::signature::Signer as _;
        let sig: p521::ecdsa::Signature = cpak.sign(tbs);
        Ok(sig.to_vec())
    };
    let realm = |tbs: &[u8]| Ok(crate::tdx_test_pki::sign(&rak, tbs));
    collection(
        &claims,
        &Signer {
            alg: iana::Algorithm::ES512,
            sign: &platform,
        },
        &Signer {
            alg: iana::Algorithm::ES256,
            sign: &realm,
        },
    )
    .unwrap()
}
