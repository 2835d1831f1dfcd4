//! Public keys of CCA tokens: the CPAK that signs the platform token (given as a JWK or
//! a PEM SubjectPublicKeyInfo, alone or in a trust-anchor store matched by
//! implementation and instance ID) and the RAK that signs the realm token (from the
//! realm claims: a raw SEC1 point in legacy tokens, a COSE_Key in profiles realm#1.0.0
//! and later). ECDSA with P-256, P-384 (ring) and P-521 (RustCrypto's p521: ring has no
//! P-521), signatures raw r||s as COSE carries them (RFC 9053 2.1).

use base64::Engine;
use serde::Deserialize;

/// An elliptic curve of a COSE ECDSA algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Curve {
    /// NIST P-256 (ES256).
    #[serde(rename = "P-256")]
    P256,
    /// NIST P-384 (ES384).
    #[serde(rename = "P-384")]
    P384,
    /// NIST P-521 (ES512).
    #[serde(rename = "P-521")]
    P521,
}

impl Curve {
    /// The length of one coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The curve of an uncompressed SEC1 point of `len` bytes.
    pub fn of_point_len(len: usize) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            .find(|c| {
                c.coordinate_len()
                    .checked_mul(2)
                    .and_then(|n| n.checked_add(1))
                    == Some(len)
            })
    }

    /// The JOSE / COSE curve name.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

/// A COSE signature algorithm the tokens use (RFC 9053 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Alg {
    /// ECDSA P-256 SHA-256 (-7).
    #[serde(rename = "ES256")]
    Es256,
    /// ECDSA P-384 SHA-384 (-35).
    #[serde(rename = "ES384")]
    Es384,
    /// ECDSA P-521 SHA-512 (-36).
    #[serde(rename = "ES512")]
    Es512,
}

impl Alg {
    /// The algorithm of a COSE `alg` value.
    pub fn from_cose(v: i64) -> Option<Alg> {
        match v {
            -7 => Some(Alg::Es256),
            -35 => Some(Alg::Es384),
            -36 => Some(Alg::Es512),
            _ => None,
        }
    }

    /// The curve the algorithm signs with (RFC 9053: ES256 is P-256, and so on).
    pub fn curve(self) -> Curve {
        match self {
            Alg::Es256 => Curve::P256,
            Alg::Es384 => Curve::P384,
            Alg::Es512 => Curve::P521,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
        }
    }
}

/// An ECDSA public key: its curve and its uncompressed SEC1 point (0x04 || x || y).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The curve.
    pub curve: Curve,
    /// The point.
    pub point: Vec<u8>,
}

impl PublicKey {
    /// A key from an uncompressed SEC1 point (its length gives the curve).
    pub fn from_sec1(point: &[u8]) -> Result<Self, String> {
        let curve = Curve::of_point_len(point.len()).ok_or_else(|| {
            format!(
                "{} bytes is not an uncompressed P-256, P-384 or P-521 point",
                point.len()
            )
        })?;
        if point.first() != Some(&0x04) {
            return Err("not an uncompressed point (first byte is not 0x04)".into());
        }
        Ok(PublicKey {
            curve,
            point: point.to_vec(),
        })
    }

    fn from_coordinates(curve: Curve, x: &[u8], y: &[u8]) -> Result<Self, String> {
        let n = curve.coordinate_len();
        if x.len() != n || y.len() != n {
            return Err(format!(
                "{} coordinates of {} and {} bytes, expected {n} each",
                curve.name(),
                x.len(),
                y.len()
            ));
        }
        let mut point = Vec::with_capacity(n.saturating_mul(2).saturating_add(1));
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Ok(PublicKey { curve, point })
    }

    /// A key from a JWK (`{"kty": "EC", "crv": "P-384", "x": "..", "y": ".."}`, RFC 7518
    /// 6.2.1: coordinates base64url without padding, of the curve's full length).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if jwk.kty != "EC" {
            return Err(format!("kty {:?}: only EC keys sign CCA tokens", jwk.kty));
        }
        let curve = match jwk.crv.as_str() {
            "P-256" => Curve::P256,
            "P-384" => Curve::P384,
            "P-521" => Curve::P521,
            other => return Err(format!("crv {other:?}: expected P-256, P-384 or P-521")),
        };
        let b64 = |s: &str, what: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|e| format!("{what}: not base64url: {e}"))
        };
        PublicKey::from_coordinates(curve, &b64(&jwk.x, "x")?, &b64(&jwk.y, "y")?)
    }

    /// A key from a PEM or DER SubjectPublicKeyInfo (id-ecPublicKey on a named curve).
    pub fn from_spki(bytes: &[u8]) -> Result<Self, String> {
        use der::Decode;
        use x509_cert::spki::SubjectPublicKeyInfoOwned;
        let der = if bytes.trim_ascii_start().starts_with(b"-----") {
            let (label, der) =
                pem_rfc7468::decode_vec(bytes.trim_ascii()).map_err(|e| format!("PEM: {e}"))?;
            if label != "PUBLIC KEY" {
                return Err(format!("PEM label {label:?}: expected PUBLIC KEY"));
            }
            der
        } else {
            bytes.to_vec()
        };
        let spki = SubjectPublicKeyInfoOwned::from_der(&der).map_err(|e| format!("DER: {e}"))?;
        const EC: &str = "1.2.840.10045.2.1";
        if spki.algorithm.oid.to_string() != EC {
            return Err(format!(
                "algorithm {}: not an EC public key (id-ecPublicKey)",
                spki.algorithm.oid
            ));
        }
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
            .map(|o| o.to_string())
            .ok_or("no named curve")?;
        let curve = match curve_oid.as_str() {
            "1.2.840.10045.3.1.7" => Curve::P256,
            "1.3.132.0.34" => Curve::P384,
            "1.3.132.0.35" => Curve::P521,
            other => return Err(format!("curve {other}: expected P-256, P-384 or P-521")),
        };
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the key's BIT STRING has unused bits")?;
        let key = PublicKey::from_sec1(point)?;
        if key.curve != curve {
            return Err(format!(
                "a {} point under the {} curve OID",
                key.curve.name(),
                curve.name()
            ));
        }
        Ok(key)
    }

    /// A key from a COSE_Key (RFC 9053 7.1.1: kty 2 EC2, crv 1/2/3, x and y as byte
    /// strings).
    pub fn from_cose_key(bytes: &[u8]) -> Result<Self, String> {
        use coset::{CborSerializable, iana};
        let k = coset::CoseKey::from_slice(bytes).map_err(|e| format!("COSE_Key: {e:?}"))?;
        if k.kty != coset::KeyType::Assigned(iana::KeyType::EC2) {
            return Err(format!("COSE_Key kty {:?}: expected EC2", k.kty));
        }
        let param = |label: i64| {
            k.params
                .iter()
                .find_map(|(l, v)| (*l == coset::Label::Int(label)).then_some(v))
        };
        let curve = match param(-1).and_then(|v| v.as_integer()).map(i128::from) {
            Some(1) => Curve::P256,
            Some(2) => Curve::P384,
            Some(3) => Curve::P521,
            other => return Err(format!("COSE_Key crv {other:?}: expected 1, 2 or 3")),
        };
        let coord = |label: i64, name: &str| {
            param(label)
                .and_then(|v| v.as_bytes())
                .cloned()
                .ok_or_else(|| format!("COSE_Key has no {name} coordinate (a byte string)"))
        };
        PublicKey::from_coordinates(curve, &coord(-2, "x")?, &coord(-3, "y")?)
    }

    /// Verifies `sig` (r||s) over `msg` with `alg`, which must be this key's curve's.
    pub fn verify(&self, alg: Alg, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        if alg.curve() != self.curve {
            return Err(format!(
                "the token says {} but the key is on {}",
                alg.name(),
                self.curve.name()
            ));
        }
        let want = self.curve.coordinate_len().saturating_mul(2);
        if sig.len() != want {
            return Err(format!(
                "a {} signature of {} bytes, expected {want} (r||s)",
                alg.name(),
                sig.len()
            ));
        }
        let bad = || format!("the {} signature does not verify", alg.name());
        match alg {
            Alg::Es256 | Alg::Es384 => {
                let algorithm = if alg == Alg::Es256 {
                    &ring::signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &ring::signature::ECDSA_P384_SHA384_FIXED
                };
                ring::signature::UnparsedPublicKey::new(algorithm, &self.point)
                    .verify(msg, sig)
                    .map_err(|_| bad())
            }
            Alg::Es512 => {
                use p521::ecdsa::signature::Verifier;
                let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&self.point)
                    .map_err(|_| "the P-521 point is not on the curve".to_owned())?;
                let sig = p521::ecdsa::Signature::from_slice(sig).map_err(|_| bad())?;
                key.verify(msg, &sig).map_err(|_| bad())
            }
        }
    }
}

/// A JSON Web Key, as far as an EC public key goes.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    /// Key type: "EC".
    pub kty: String,
    /// Curve: "P-256", "P-384", "P-521".
    pub crv: String,
    /// x, base64url.
    pub x: String,
    /// y, base64url.
    pub y: String,
}

/// A trusted CPAK: the key, and the platform it belongs to (a store's entries name it;
/// a key given alone is trusted for any platform).
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The key.
    pub key: PublicKey,
    /// The platform's implementation ID, if the anchor is bound to one.
    pub implementation_id: Option<Vec<u8>>,
    /// The platform's instance ID, if the anchor is bound to one.
    pub instance_id: Option<Vec<u8>>,
    /// Where it came from, in messages.
    pub source: String,
}

/// One entry of a trust-anchor store (`tastore.json`: a JSON list).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreEntry {
    pkey: Jwk,
    #[serde(rename = "implementation-id")]
    implementation_id: String,
    #[serde(rename = "instance-id")]
    instance_id: String,
}

/// The CPAKs a verifier trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    /// The anchors.
    pub anchors: Vec<Anchor>,
}

impl TrustAnchors {
    /// Adds a CPAK given alone: a JWK (JSON), or a PEM or DER public key.
    pub fn add_key_file(&mut self, bytes: &[u8], source: &str) -> Result<(), String> {
        let key = if bytes.trim_ascii_start().starts_with(b"{") {
            let jwk: Jwk =
                serde_json::from_slice(bytes).map_err(|e| format!("{source}: JWK: {e}"))?;
            PublicKey::from_jwk(&jwk)
        } else {
            PublicKey::from_spki(bytes)
        }
        .map_err(|e| format!("{source}: {e}"))?;
        self.anchors.push(Anchor {
            key,
            implementation_id: None,
            instance_id: None,
            source: source.to_owned(),
        });
        Ok(())
    }

    /// Adds the entries of a trust-anchor store: a JSON list of `{"pkey": JWK,
    /// "implementation-id": hex, "instance-id": hex}`.
    pub fn add_store(&mut self, text: &str, source: &str) -> Result<(), String> {
        let entries: Vec<StoreEntry> =
            serde_json::from_str(text).map_err(|e| format!("{source}: {e}"))?;
        if entries.is_empty() {
            return Err(format!("{source}: the store has no entries"));
        }
        for (i, e) in entries.into_iter().enumerate() {
            let what = format!("{source}: entry {i}");
            let hexed = |s: &str, field: &str| {
                hex::decode(s).map_err(|_| format!("{what}: {field} is not hex"))
            };
            self.anchors.push(Anchor {
                key: PublicKey::from_jwk(&e.pkey).map_err(|e| format!("{what}: {e}"))?,
                implementation_id: Some(hexed(&e.implementation_id, "implementation-id")?),
                instance_id: Some(hexed(&e.instance_id, "instance-id")?),
                source: what,
            });
        }
        Ok(())
    }

    /// The anchors for a platform: those bound to its implementation and instance ID,
    /// then those trusted for any platform.
    pub fn candidates<'a>(
        &'a self,
        implementation_id: &'a [u8],
        instance_id: &'a [u8],
    ) -> impl Iterator<Item = &'a Anchor> + 'a {
        let bound = self.anchors.iter().filter(move |a| {
            a.implementation_id.as_deref() == Some(implementation_id)
                && a.instance_id.as_deref() == Some(instance_id)
        });
        let free = self
            .anchors
            .iter()
            .filter(|a| a.implementation_id.is_none() && a.instance_id.is_none());
        bound.chain(free)
    }
}
