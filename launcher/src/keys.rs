//! Loading the operator's signing keys (SNP ID and author keys) from PEM files.

use crate::cmd::{InputKind, read_file};
use crate::error::CliError;
use cvm_firmware::sev::id_block::SigningKey;
use der::Decode;
use ring::rand::SecureRandom;
use std::path::Path;

/// The named curve secp384r1 (P-384).
const SECP384R1: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Loads an ECDSA P-384 private key from a PEM file: PKCS#8 (`BEGIN PRIVATE KEY`) or
/// SEC1 (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes). Encrypted keys
/// are refused: decrypt them into a protected file first.
pub fn load_p384(
    path: &Path,
    role: &'static str,
    rng: &dyn SecureRandom,
) -> Result<SigningKey, CliError> {
    let bad = |reason: String| CliError::Key {
        path: path.to_owned(),
        reason,
    };
    let pem = read_file(path, InputKind::Config)?;
    // RFC 7468 PEM, read as its section 2 allows: text before the BEGIN line is ignored.
    let text = std::str::from_utf8(&pem)
        .map_err(|_| bad("not a PEM document (not text: is it DER?)".into()))?;
    let blocks =
        cvm_attest::x509::pem_decode(text).map_err(|e| bad(format!("not a PEM document ({e})")))?;
    let (label, der) = blocks
        .into_iter()
        .next()
        .ok_or_else(|| bad("not a PEM document (no -----BEGIN line)".into()))?;
    let key = match label {
        "PRIVATE KEY" => SigningKey::from_pkcs8(&der, role, rng),
        "EC PRIVATE KEY" => {
            let sec1 = sec1::EcPrivateKey::from_der(&der)
                .map_err(|e| bad(format!("malformed SEC1 EC private key ({e})")))?;
            match sec1.parameters.and_then(|p| p.named_curve()) {
                Some(curve) if curve != SECP384R1 => {
                    return Err(bad(format!(
                        "the key is on curve {curve}; SNP takes P-384 (1.3.132.0.34) only"
                    )));
                }
                _ => {}
            }
            let public = sec1
                .public_key
                .ok_or_else(|| bad("the SEC1 key does not include its public key".into()))?;
            SigningKey::from_private_and_public(sec1.private_key, public, role, rng)
        }
        other => {
            return Err(bad(format!(
                "a {other:?} PEM block; expected an unencrypted \"PRIVATE KEY\" or \
                 \"EC PRIVATE KEY\""
            )));
        }
    };
    key.map_err(|e| bad(e.to_string()))
}
