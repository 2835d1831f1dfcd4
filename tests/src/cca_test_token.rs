//! CCA tokens built here, for the algorithms no recorded token uses: a platform token
//! signed ES512 with a fixed P-521 key (RustCrypto's p521, with a random nonce) and a realm token signed ES256 by a P-256 key of the Intel test PKI (ring),
//! with the RAK bound by the platform challenge, in a tag 399 collection. Claim keys and
//! types as ../shared/FORMATS.md section 3 lists them.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "test support code"
)]

use base64::Engine;
use ciborium::Value;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use sha2::Digest;

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

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

/// The realm's RAK (a P-256 key of the Intel test PKI) as an uncompressed point.
fn rak() -> ring::signature::EcdsaKeyPair {
    crate::tdx_test_pki::key("test-pck-key.pk8")
}

/// A token whose realm RIM is `rim` (32 bytes): ES512 platform, ES256 realm.
pub fn token(rim: [u8; 32]) -> Vec<u8> {
    use ring::signature::KeyPair;
    let rak = rak();
    let rak_point = rak.public_key().as_ref().to_vec();
    let challenge = sha2::Sha256::digest(&rak_point).to_vec();
    let mut instance = vec![0x01];
    instance.extend([0x22; 32]);
    let platform = Value::Map(vec![
        (
            int(265),
            Value::Text("tag:arm.com,2023:cca_platform#1.0.0".into()),
        ),
        (int(10), bytes(&challenge)),
        (int(2396), bytes(&[0x33; 32])),
        (int(256), bytes(&instance)),
        (int(2401), bytes(&[0xcf])),
        (int(2395), int(0x3000)),
        (
            int(2399),
            Value::Array(vec![Value::Map(vec![
                (int(1), Value::Text("BL".into())),
                (int(2), bytes(&[0x44; 32])),
                (int(5), bytes(&[0x55; 32])),
            ])]),
        ),
        (int(2402), Value::Text("sha-256".into())),
    ]);
    let realm = Value::Map(vec![
        (int(10), bytes(&[0x66; 64])),
        (int(44235), bytes(&[0x77; 64])),
        (int(44236), Value::Text("sha-256".into())),
        (int(44237), bytes(&rak_point)),
        (int(44238), bytes(&rim)),
        (int(44239), Value::Array(vec![bytes(&[0; 32]); 4])),
        (int(44240), Value::Text("sha-256".into())),
    ]);
    let cpak = cpak();
    let platform = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES512)
                .build(),
        )
        .payload(cbor(&platform))
        .create_signature(b"", |tbs| {
            use p521::ecdsa::signature::Signer;
            let sig: p521::ecdsa::Signature = cpak.sign(tbs);
            sig.to_vec()
        })
        .build()
        .to_tagged_vec()
        .unwrap();
    let realm = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .build(),
        )
        .payload(cbor(&realm))
        .create_signature(b"", |tbs| crate::tdx_test_pki::sign(&rak, tbs))
        .build()
        .to_tagged_vec()
        .unwrap();
    let collection = Value::Tag(
        399,
        Box::new(Value::Map(vec![
            (int(44234), bytes(&platform)),
            (int(44241), bytes(&realm)),
        ])),
    );
    cbor(&collection)
}
