//! The attestation token of the model's RMM (RSI_ATTESTATION_TOKEN_INIT/CONTINUE):
//! a tag 399 collection of a platform token signed by the CPAK and a realm token signed
//! by the RAK, whose public key the realm claims carry and whose hash the platform
//! challenge is (the binding). Claim keys and types as the CCA token profile has them
//! (../shared/FORMATS.md section 3, the claims `cvm verify --tee cca` decodes).
//!
//! The model signs with the CCA test keys (tests/fixtures/cca-test-pki: test keys only,
//! trusted by nothing unless `--cpak test-cpak.pem` names them): what it proves is the
//! plumbing (claims, binding, RIM, verdict), not a platform.

use ciborium::Value;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// A signature over to-be-signed bytes, or why there is none.
pub type Sign<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, String>;

/// A signer of one token: its COSE algorithm and the signature over a Sig_structure.
pub struct Signer<'a> {
    /// The `alg` of the protected header.
    pub alg: iana::Algorithm,
    /// Signs the to-be-signed bytes.
    pub sign: Sign<'a>,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The realm's RIM (as long as its hash).
    pub rim: Vec<u8>,
    /// The realm challenge (64 bytes: the nonce binding).
    pub challenge: [u8; 64],
    /// The Realm Personalization Value.
    pub rpv: [u8; 64],
    /// The RAK's public key as an uncompressed point.
    pub rak: Vec<u8>,
    /// The platform's implementation ID.
    pub implementation_id: [u8; 32],
    /// The platform's instance ID (type byte 0x01 and a 32-byte hash).
    pub instance_id: Vec<u8>,
    /// The platform's software components: (type, measurement, signer ID).
    pub sw_components: Vec<(String, Vec<u8>, Vec<u8>)>,
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn cbor(v: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| format!("CBOR: {e}"))?;
    Ok(out)
}

fn sign1(payload: Vec<u8>, s: &Signer<'_>) -> Result<Vec<u8>, String> {
    let mut failed = None;
    let msg = CoseSign1Builder::new()
        .protected(HeaderBuilder::new().algorithm(s.alg).build())
        .payload(payload)
        .create_signature(b"", |tbs| match (s.sign)(tbs) {
            Ok(sig) => sig,
            Err(e) => {
                failed = Some(e);
                Vec::new()
            }
        })
        .build();
    if let Some(e) = failed {
        return Err(e);
    }
    msg.to_tagged_vec().map_err(|e| format!("COSE: {e}"))
}

/// The tag 399 collection of `c`: the platform token (profile
/// `tag:arm.com,2023:cca_platform#1.0.0`, lifecycle secured, SHA-256, challenge the
/// SHA-256 of the RAK claim) signed by `platform`, the realm token (SHA-256 RIM and
/// REMs, the RAK and its hash algorithm) signed by `realm`.
pub fn collection(
    c: &Claims,
    platform: &Signer<'_>,
    realm: &Signer<'_>,
) -> Result<Vec<u8>, String> {
    let binding = Sha256::digest(&c.rak).to_vec();
    let components = c
        .sw_components
        .iter()
        .map(|(kind, value, signer)| {
            Value::Map(vec![
                (int(1), Value::Text(kind.clone())),
                (int(2), bytes(value)),
                (int(5), bytes(signer)),
            ])
        })
        .collect();
    let platform_claims = Value::Map(vec![
        (
            int(265),
            Value::Text("tag:arm.com,2023:cca_platform#1.0.0".into()),
        ),
        (int(10), bytes(&binding)),
        (int(2396), bytes(&c.implementation_id)),
        (int(256), bytes(&c.instance_id)),
        (int(2401), bytes(&[0xcf])),
        (int(2395), int(0x3000)),
        (int(2399), Value::Array(components)),
        (int(2402), Value::Text("sha-256".into())),
    ]);
    let rem = vec![0u8; c.rim.len()];
    let realm_claims = Value::Map(vec![
        (int(10), bytes(&c.challenge)),
        (int(44235), bytes(&c.rpv)),
        (int(44236), Value::Text("sha-256".into())),
        (int(44237), bytes(&c.rak)),
        (int(44238), bytes(&c.rim)),
        (int(44239), Value::Array(vec![bytes(&rem); 4])),
        (int(44240), Value::Text("sha-256".into())),
    ]);
    let platform = sign1(cbor(&platform_claims)?, platform)?;
    let realm = sign1(cbor(&realm_claims)?, realm)?;
    cbor(&Value::Tag(
        399,
        Box::new(Value::Map(vec![
            (int(44234), bytes(&platform)),
            (int(44241), bytes(&realm)),
        ])),
    ))
}

fn key(pk8: &[u8]) -> Result<EcdsaKeyPair, String> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pk8, &SystemRandom::new())
        .map_err(|e| format!("the model's test key: {e}"))
}

fn es256(k: &EcdsaKeyPair) -> impl Fn(&[u8]) -> Result<Vec<u8>, String> + '_ {
    move |tbs| {
        k.sign(&SystemRandom::new(), tbs)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "ECDSA signing failed".to_owned())
    }
}

/// The model's CPAK (tests/fixtures/cca-test-pki/test-cpak-key.pk8), and its public key
/// as `--cpak` takes it.
const CPAK: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/cca-test-pki/test-cpak-key.pk8"
));
/// The CPAK's public key (PEM SubjectPublicKeyInfo).
pub const CPAK_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/cca-test-pki/test-cpak.pem"
));
/// The model's RAK.
const RAK: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/cca-test-pki/test-rak-key.pk8"
));

/// The token the model's RMM gives a realm whose RIM is `rim` and whose challenge is
/// `challenge`: ES256 both, the test keys, implementation ID "cvm model RMM", the
/// instance ID the CPAK's hash, one software component (the model itself).
pub fn model_token(rim: &[u8], challenge: &[u8; 64]) -> Result<Vec<u8>, String> {
    let (cpak, rak) = (key(CPAK)?, key(RAK)?);
    let mut implementation_id = [0u8; 32];
    let name = b"cvm model RMM (test keys only)";
    if let Some(d) = implementation_id.get_mut(..name.len()) {
        d.copy_from_slice(name);
    }
    let mut instance_id = vec![0x01];
    instance_id.extend(Sha256::digest(cpak.public_key().as_ref()));
    let claims = Claims {
        rim: rim.to_vec(),
        challenge: *challenge,
        rpv: [0; 64],
        rak: rak.public_key().as_ref().to_vec(),
        implementation_id,
        instance_id,
        sw_components: vec![(
            "RMM".into(),
            Sha256::digest(b"cvm realm model").to_vec(),
            Sha256::digest(CPAK_PEM.as_bytes()).to_vec(),
        )],
    };
    let (p, r) = (es256(&cpak), es256(&rak));
    collection(
        &claims,
        &Signer {
            alg: iana::Algorithm::ES256,
            sign: &p,
        },
        &Signer {
            alg: iana::Algorithm::ES256,
            sign: &r,
        },
    )
}
