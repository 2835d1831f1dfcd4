//! The Arm CCA attestation token: the outer collection (CBOR tag 399, RMM 1.0 and
//! draft-ffm-rats-cca-token-00; or tag 907, a CMW collection as TF-M writes it, each
//! entry `[263, bstr]`), the two COSE_Sign1 messages in it (tag 18, `alg` in the
//! protected header, payload attached), and their claims. Everything is parsed from
//! untrusted bytes: every key, type and length is checked, and an error names the field.

use super::keys::{Alg, PublicKey};
use ciborium::Value;
use coset::TaggedCborSerializable;

/// The collection tags.
pub const TAG_COLLECTION: u64 = 399;
/// The CMW collection tag (draft-ietf-rats-msg-wrap).
pub const TAG_CMW: u64 = 907;
/// The platform token's key in the collection.
pub const KEY_PLATFORM: u64 = 44234;
/// The realm token's key in the collection.
pub const KEY_REALM: u64 = 44241;
/// The CoAP content format of a COSE_Sign1-wrapped EAT in a CMW entry.
pub const CMW_CONTENT_FORMAT: u64 = 263;
/// The largest token read (a token is a few KiB).
pub const MAX_TOKEN: usize = 64 * 1024;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TokenError {
    /// The field (e.g. `collection`, `platform.claims.2395 (lifecycle)`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> TokenError {
    TokenError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Which outer form the token came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Collection {
    /// CBOR tag 399.
    Tag399,
    /// CBOR tag 907 (CMW collection).
    Cmw907,
}

/// A COSE_Sign1 message of the token, as received.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The message (its protected header kept as received).
    pub cose: coset::CoseSign1,
    /// Its algorithm (from the protected header).
    pub alg: Alg,
    /// The payload's claims map.
    pub claims: Vec<(Value, Value)>,
}

impl Signed {
    /// Verifies the signature with `key` over the Sig_structure built from the message
    /// as received (RFC 9052 4.4: the protected header's original bytes, no external AAD).
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        self.cose
            .verify_signature(b"", |sig, data| key.verify(self.alg, data, sig))
    }
}

/// A parsed token (nothing verified).
#[derive(Debug, Clone)]
pub struct Token {
    /// The outer form.
    pub collection: Collection,
    /// The platform token.
    pub platform: Signed,
    /// The realm token.
    pub realm: Signed,
}

/// Decodes one CBOR item that is the whole of `bytes`.
fn decode_whole(bytes: &[u8], field: &str) -> Result<Value, TokenError> {
    let mut rest = bytes;
    let v: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, 64)
        .map_err(|e| err(field, format!("not CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(err(
            field,
            format!(
                "{} bytes after the CBOR item (at offset {})",
                rest.len(),
                bytes.len().saturating_sub(rest.len())
            ),
        ));
    }
    Ok(v)
}

fn int_key(k: &Value) -> Option<i128> {
    k.as_integer().map(i128::from)
}

/// A map's entries, refusing a key given twice.
fn map_entries(v: Value, field: &str) -> Result<Vec<(Value, Value)>, TokenError> {
    let Value::Map(entries) = v else {
        return Err(err(field, "not a CBOR map"));
    };
    for (i, (k, _)) in entries.iter().enumerate() {
        if entries.iter().take(i).any(|(other, _)| other == k) {
            return Err(err(field, format!("key {k:?} appears twice")));
        }
    }
    Ok(entries)
}

fn sign1(bytes: &[u8], field: &str) -> Result<Signed, TokenError> {
    let cose = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| err(field, format!("not a tagged COSE_Sign1 (tag 18): {e:?}")))?;
    let alg = match &cose.protected.header.alg {
        Some(coset::RegisteredLabelWithPrivate::Assigned(coset::iana::Algorithm::ES256)) => {
            Alg::Es256
        }
        Some(coset::RegisteredLabelWithPrivate::Assigned(coset::iana::Algorithm::ES384)) => {
            Alg::Es384
        }
        Some(coset::RegisteredLabelWithPrivate::Assigned(coset::iana::Algorithm::ES512)) => {
            Alg::Es512
        }
        Some(other) => {
            return Err(err(
                format!("{field}.protected.alg"),
                format!("{other:?}: expected ES256, ES384 or ES512"),
            ));
        }
        None => {
            return Err(err(
                format!("{field}.protected.alg"),
                "missing (an algorithm only in the unprotected header is not trusted)",
            ));
        }
    };
    let payload = cose.payload.as_deref().ok_or_else(|| {
        err(
            format!("{field}.payload"),
            "detached (nil): it must be attached",
        )
    })?;
    let claims = map_entries(
        decode_whole(payload, &format!("{field}.payload"))?,
        &format!("{field}.claims"),
    )?;
    Ok(Signed { cose, alg, claims })
}

impl Token {
    /// Parses a token.
    pub fn parse(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_TOKEN {
            return Err(err(
                "token",
                format!("{} bytes, more than the {MAX_TOKEN} read", bytes.len()),
            ));
        }
        let (collection, inner) = match decode_whole(bytes, "token")? {
            Value::Tag(TAG_COLLECTION, inner) => (Collection::Tag399, *inner),
            Value::Tag(TAG_CMW, inner) => (Collection::Cmw907, *inner),
            Value::Tag(t, _) => {
                return Err(err(
                    "collection",
                    format!("CBOR tag {t}: expected 399 (CCA token collection) or 907 (CMW)"),
                ));
            }
            _ => return Err(err("collection", "not a tagged CBOR item (399 or 907)")),
        };
        let entries = map_entries(inner, "collection")?;
        let mut platform = None;
        let mut realm = None;
        for (k, v) in entries {
            let key = int_key(&k);
            let (slot, name) = match key {
                Some(n) if n == i128::from(KEY_PLATFORM) => (&mut platform, "platform"),
                Some(n) if n == i128::from(KEY_REALM) => (&mut realm, "realm"),
                _ => {
                    return Err(err(
                        "collection",
                        format!("unknown entry {k:?} (expected 44234 and 44241)"),
                    ));
                }
            };
            let bytes = match (collection, v) {
                (Collection::Tag399, Value::Bytes(b)) => b,
                (Collection::Cmw907, Value::Array(a)) => match <[Value; 2]>::try_from(a) {
                    Ok([Value::Integer(cf), Value::Bytes(b)])
                        if i128::from(cf) == i128::from(CMW_CONTENT_FORMAT) =>
                    {
                        b
                    }
                    _ => {
                        return Err(err(
                            format!("collection.{name}"),
                            "a CMW entry must be [263, bstr]",
                        ));
                    }
                },
                (Collection::Tag399, _) => {
                    return Err(err(format!("collection.{name}"), "not a byte string"));
                }
                (Collection::Cmw907, _) => {
                    return Err(err(
                        format!("collection.{name}"),
                        "a CMW entry must be [263, bstr]",
                    ));
                }
            };
            *slot = Some(sign1(&bytes, name)?);
        }
        Ok(Token {
            collection,
            platform: platform.ok_or_else(|| err("collection", "no platform token (44234)"))?,
            realm: realm.ok_or_else(|| err("collection", "no realm token (44241)"))?,
        })
    }
}

/// Reads claims from a claims map, naming each claim in errors.
pub(crate) struct ClaimReader<'a> {
    entries: &'a [(Value, Value)],
    token: &'static str,
}

impl<'a> ClaimReader<'a> {
    pub(crate) fn new(entries: &'a [(Value, Value)], token: &'static str) -> Self {
        ClaimReader { entries, token }
    }

    fn field(&self, key: i64, name: &str) -> String {
        format!("{}.claims.{key} ({name})", self.token)
    }

    pub(crate) fn get(&self, key: i64) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| int_key(k) == Some(i128::from(key)))
            .map(|(_, v)| v)
    }

    fn required(&self, key: i64, name: &str) -> Result<&'a Value, TokenError> {
        self.get(key)
            .ok_or_else(|| err(self.field(key, name), "missing"))
    }

    pub(crate) fn bytes(&self, key: i64, name: &str) -> Result<Vec<u8>, TokenError> {
        self.required(key, name)?
            .as_bytes()
            .cloned()
            .ok_or_else(|| err(self.field(key, name), "not a byte string"))
    }

    pub(crate) fn bytes_len(
        &self,
        key: i64,
        name: &str,
        lens: &[usize],
    ) -> Result<Vec<u8>, TokenError> {
        let b = self.bytes(key, name)?;
        if !lens.contains(&b.len()) {
            let want: Vec<String> = lens.iter().map(ToString::to_string).collect();
            return Err(err(
                self.field(key, name),
                format!("{} bytes, expected {}", b.len(), want.join(" or ")),
            ));
        }
        Ok(b)
    }

    pub(crate) fn text(&self, key: i64, name: &str) -> Result<String, TokenError> {
        self.required(key, name)?
            .as_text()
            .map(str::to_owned)
            .ok_or_else(|| err(self.field(key, name), "not a text string"))
    }

    pub(crate) fn opt_text(&self, key: i64, name: &str) -> Result<Option<String>, TokenError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.text(key, name).map(Some),
        }
    }

    pub(crate) fn uint(&self, key: i64, name: &str) -> Result<u64, TokenError> {
        self.required(key, name)?
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| err(self.field(key, name), "not an unsigned integer"))
    }

    pub(crate) fn array(&self, key: i64, name: &str) -> Result<&'a [Value], TokenError> {
        self.required(key, name)?
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| err(self.field(key, name), "not an array"))
    }

    pub(crate) fn error(&self, key: i64, name: &str, reason: impl Into<String>) -> TokenError {
        err(self.field(key, name), reason)
    }
}

/// The hash algorithm names the tokens use (IANA Named Information Hash Algorithm).
pub(crate) fn hash_len(name: &str) -> Option<usize> {
    match name {
        "sha-256" => Some(32),
        "sha-384" => Some(48),
        "sha-512" => Some(64),
        _ => None,
    }
}

/// `data` hashed with the named algorithm.
pub(crate) fn hash(name: &str, data: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    match name {
        "sha-256" => Some(sha2::Sha256::digest(data).to_vec()),
        "sha-384" => Some(sha2::Sha384::digest(data).to_vec()),
        "sha-512" => Some(sha2::Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// A COSE key or raw point from the realm's RAK claim.
pub(crate) fn rak_key(bytes: &[u8]) -> Result<PublicKey, String> {
    if bytes.first() == Some(&0x04) {
        PublicKey::from_sec1(bytes)
    } else {
        PublicKey::from_cose_key(bytes)
    }
}
