//! X.509 certificates and CRLs as vendors' chains use them: decoded with `x509-cert`, but
//! every signature is checked over the **raw** to-be-signed bytes taken from the input,
//! never over a re-encoding of the decoded structure.

use crate::time::Time;
use der::asn1::ObjectIdentifier;
use der::{Decode, Reader, SliceReader};
use ring::signature::{self, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// RSASSA-PSS (RFC 4055).
pub const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// ecdsa-with-SHA384.
pub const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-ecPublicKey.
pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp384r1.
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// prime256v1 (P-256).
pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// commonName.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// rsaEncryption.
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-sha384.
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
/// id-mgf1.
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// basicConstraints.
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// keyUsage.
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// The subject key a role requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProfile {
    /// An RSA key of exactly this many modulus bits.
    Rsa(usize),
    /// An EC P-256 key.
    P256,
    /// An EC P-384 key.
    P384,
}

/// The signature algorithm a role's certificate is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProfile {
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, a 48-byte salt (AMD).
    RsaPssSha384,
    /// ecdsa-with-SHA256 (Intel).
    EcdsaSha256,
}

/// What a certificate in one role of a vendor chain must be (the checks webpki and
/// go-sev-guest make beyond the signature): X.509 v3, the pinned key and signature
/// algorithms, the same algorithm inside and outside the signed part (RFC 5280
/// 4.1.1.2), a validity window that is not reversed, no critical extension this verifier
/// does not process, and for a CA basicConstraints cA with keyCertSign (RFC 5280 4.2.1.9,
/// 4.2.1.3), for an end entity no cA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The role's name in messages ("ASK", "PCK certificate", ...).
    pub role: &'static str,
    /// The subject key.
    pub key: KeyProfile,
    /// How its issuer signs it.
    pub signed_with: SignatureProfile,
    /// `Some(n)`: a CA with `n` CA certificates below it in the chain (which its
    /// pathLenConstraint, if any, must allow); `None`: an end entity.
    pub ca: Option<u8>,
    /// Whether it signs CRLs (keyUsage, where present, must then include cRLSign).
    pub crl_signer: bool,
}

/// Why a certificate or CRL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Not DER, or not an X.509 structure.
    #[error("{what}: malformed DER ({reason})")]
    Malformed {
        /// Which certificate.
        what: String,
        /// The decoder's message.
        reason: String,
    },
    /// A certificate file's name does not say its role unambiguously.
    #[error("{what}: {reason}")]
    Name {
        /// Which file.
        what: String,
        /// What is wrong with its name.
        reason: String,
    },
    /// A PEM file could not be decoded.
    #[error("{what}: malformed PEM ({reason})")]
    Pem {
        /// Which file.
        what: String,
        /// The decoder's message.
        reason: String,
    },
}

/// A decoded certificate with the exact bytes it was decoded from.
#[derive(Debug, Clone)]
pub struct Cert {
    der: Vec<u8>,
    tbs: std::ops::Range<usize>,
    /// The decoded certificate.
    pub cert: Certificate,
}

impl Cert {
    /// Decodes one DER certificate. `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<Self, CertError> {
        let malformed = |e: der::Error| CertError::Malformed {
            what: what.to_owned(),
            reason: e.to_string(),
        };
        let cert = Certificate::from_der(der).map_err(malformed)?;
        let tbs = signed_range(der).map_err(malformed)?;
        Ok(Cert {
            der: der.to_vec(),
            tbs,
            cert,
        })
    }

    /// Decodes every certificate in a PEM file, or one DER certificate.
    pub fn parse_file(bytes: &[u8], what: &str) -> Result<Vec<Self>, CertError> {
        certificate_ders(bytes, what)?
            .iter()
            .map(|der| Cert::from_der(der, what))
            .collect()
    }

    /// The DER the certificate was decoded from.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the DER (the certificate's fingerprint).
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// The subject's common name.
    pub fn subject_cn(&self) -> Option<String> {
        common_name(&self.cert.tbs_certificate.subject)
    }

    /// The issuer's common name.
    pub fn issuer_cn(&self) -> Option<String> {
        common_name(&self.cert.tbs_certificate.issuer)
    }

    /// Whether `issuer`'s subject is this certificate's issuer (compared as encoded).
    pub fn issued_by_name(&self, issuer: &Cert) -> bool {
        self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
    }

    /// The validity window in seconds since the epoch.
    pub fn validity(&self) -> (Time, Time) {
        let v = &self.cert.tbs_certificate.validity;
        (
            Time::from_der_time(&v.not_before),
            Time::from_der_time(&v.not_after),
        )
    }

    /// Checks the validity window at `at`.
    pub fn valid_at(&self, at: Time) -> Result<(), String> {
        let (from, to) = self.validity();
        if at < from {
            Err(format!("not valid before {from} (verification time {at})"))
        } else if at > to {
            Err(format!("expired at {to} (verification time {at})"))
        } else {
            Ok(())
        }
    }

    /// Verifies that `issuer` signed this certificate (RSASSA-PSS with SHA-384, as AMD's
    /// ARK, ASK and ASVK sign; ECDSA P-384 with SHA-384; or ECDSA P-256 with SHA-256, as
    /// Intel's SGX root and CAs sign).
    pub fn verify_signed_by(&self, issuer: &Cert) -> Result<(), String> {
        let tbs = self.der.get(self.tbs.clone()).unwrap_or_default();
        verify_signature(
            issuer,
            &self.cert.signature_algorithm,
            tbs,
            self.cert.signature.as_bytes(),
        )
    }

    /// The subject public key's raw bits (PKCS#1 RSAPublicKey for RSA, the uncompressed
    /// point for EC).
    pub fn public_key_bits(&self) -> &[u8] {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    }

    /// The uncompressed P-384 point of an EC P-384 subject key.
    pub fn p384_public_key(&self) -> Result<&[u8], String> {
        self.ec_public_key(&SECP384R1, "P-384")
    }

    /// The uncompressed P-256 point of an EC P-256 subject key.
    pub fn p256_public_key(&self) -> Result<&[u8], String> {
        self.ec_public_key(&SECP256R1, "P-256")
    }

    fn ec_public_key(&self, want: &ObjectIdentifier, name: &str) -> Result<&[u8], String> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != EC_PUBLIC_KEY || curve.as_ref() != Some(want) {
            return Err(format!("the subject key is not an EC {name} key"));
        }
        Ok(self.public_key_bits())
    }

    /// The value of the extension `oid` (the contents of its extnValue OCTET STRING).
    pub fn extension(&self, oid: &ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| &e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// The serial number's bytes.
    pub fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }

    /// Checks the certificate against its role's profile; the first violation found.
    pub fn check_profile(&self, p: &Profile) -> Result<(), String> {
        let tbs = &self.cert.tbs_certificate;
        let role = p.role;
        if tbs.version != x509_cert::certificate::Version::V3 {
            return Err(format!("{role}: X.509 {:?}, not v3", tbs.version));
        }
        if self.cert.signature_algorithm != tbs.signature {
            return Err(format!(
                "{role}: the signatureAlgorithm ({}) differs from the signature algorithm \
                 inside the signed part ({}) (RFC 5280 4.1.1.2)",
                self.cert.signature_algorithm.oid, tbs.signature.oid
            ));
        }
        let (want_oid, want_name) = match p.signed_with {
            SignatureProfile::RsaPssSha384 => (RSASSA_PSS, "RSASSA-PSS with SHA-384"),
            SignatureProfile::EcdsaSha256 => (ECDSA_WITH_SHA256, "ECDSA with SHA-256"),
        };
        if tbs.signature.oid != want_oid {
            return Err(format!(
                "{role}: signed with {}, not {want_name}",
                tbs.signature.oid
            ));
        }
        signature_parameters(&tbs.signature).map_err(|e| format!("{role}: {e}"))?;
        self.check_key(p.key).map_err(|e| format!("{role}: {e}"))?;
        let (from, to) = self.validity();
        if from > to {
            return Err(format!("{role}: notBefore {from} is after notAfter {to}"));
        }
        let exts = tbs.extensions.as_deref().unwrap_or_default();
        for (i, e) in exts.iter().enumerate() {
            if exts
                .iter()
                .skip(i.saturating_add(1))
                .any(|o| o.extn_id == e.extn_id)
            {
                return Err(format!(
                    "{role}: extension {} appears twice (RFC 5280 4.2)",
                    e.extn_id
                ));
            }
            if e.critical && e.extn_id != BASIC_CONSTRAINTS && e.extn_id != KEY_USAGE {
                return Err(format!(
                    "{role}: critical extension {} is not one this verifier processes",
                    e.extn_id
                ));
            }
        }
        let value = |oid: &ObjectIdentifier| {
            exts.iter()
                .find(|e| &e.extn_id == oid)
                .map(|e| e.extn_value.as_bytes())
        };
        let basic = value(&BASIC_CONSTRAINTS)
            .map(x509_cert::ext::pkix::BasicConstraints::from_der)
            .transpose()
            .map_err(|e| format!("{role}: basicConstraints: {e}"))?;
        let usage = value(&KEY_USAGE)
            .map(x509_cert::ext::pkix::KeyUsage::from_der)
            .transpose()
            .map_err(|e| format!("{role}: keyUsage: {e}"))?;
        match p.ca {
            Some(below) => {
                match &basic {
                    Some(b) if b.ca => {}
                    _ => {
                        return Err(format!(
                            "{role}: not a CA certificate (no basicConstraints cA), yet it \
                             issues certificates"
                        ));
                    }
                }
                if let Some(limit) = basic.as_ref().and_then(|b| b.path_len_constraint)
                    && limit < below
                {
                    return Err(format!(
                        "{role}: pathLenConstraint {limit} allows fewer CAs below it than the \
                         chain has ({below})"
                    ));
                }
                if let Some(u) = &usage {
                    if !u.key_cert_sign() {
                        return Err(format!("{role}: keyUsage lacks keyCertSign"));
                    }
                    if p.crl_signer && !u.crl_sign() {
                        return Err(format!("{role}: keyUsage lacks cRLSign"));
                    }
                }
            }
            None => {
                if basic.as_ref().is_some_and(|b| b.ca) {
                    return Err(format!(
                        "{role}: a CA certificate (basicConstraints cA) used as an end entity"
                    ));
                }
                if let Some(u) = &usage
                    && !u.digital_signature()
                {
                    return Err(format!("{role}: keyUsage lacks digitalSignature"));
                }
            }
        }
        Ok(())
    }

    fn check_key(&self, want: KeyProfile) -> Result<(), String> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        match want {
            KeyProfile::Rsa(bits) => {
                if spki.algorithm.oid != RSA_ENCRYPTION {
                    return Err(format!(
                        "the subject key is {}, not an RSA key",
                        spki.algorithm.oid
                    ));
                }
                let have = rsa_modulus_bits(self.public_key_bits())
                    .map_err(|e| format!("the RSA public key: {e}"))?;
                if have != bits {
                    return Err(format!("the subject key is RSA-{have}, not RSA-{bits}"));
                }
                Ok(())
            }
            KeyProfile::P256 => self.p256_public_key().map(|_| ()),
            KeyProfile::P384 => self.p384_public_key().map(|_| ()),
        }
    }
}

/// The number of bits of an RSAPublicKey's modulus (RFC 8017 A.1.1).
fn rsa_modulus_bits(der: &[u8]) -> der::Result<usize> {
    let mut r = SliceReader::new(der)?;
    let modulus = r.sequence(|s| {
        let n = der::asn1::UintRef::decode(s)?;
        der::asn1::UintRef::decode(s)?;
        Ok(n)
    })?;
    r.finish(())?;
    let bytes = modulus.as_bytes();
    let lead = bytes.first().copied().unwrap_or(0);
    let lead_bits = usize::try_from(u8::BITS.saturating_sub(lead.leading_zeros())).unwrap_or(0);
    Ok(bytes
        .len()
        .saturating_sub(1)
        .saturating_mul(8)
        .saturating_add(lead_bits))
}

/// The parameters a signature algorithm must carry: RSASSA-PSS exactly SHA-384, MGF1
/// with SHA-384, a 48-byte salt and trailer 1 (what ring's PSS verification assumes, and
/// what AMD signs with; RFC 4055 3.1); ECDSA none at all (RFC 5758 3.2).
fn signature_parameters(alg: &x509_cert::spki::AlgorithmIdentifierOwned) -> Result<(), String> {
    if alg.oid == RSASSA_PSS {
        let params = alg
            .parameters
            .as_ref()
            .ok_or("RSASSA-PSS without parameters (the defaults are SHA-1)")?;
        pss_parameters(params.value()).map_err(|e| format!("RSASSA-PSS parameters: {e}"))
    } else if alg.oid == ECDSA_WITH_SHA256 || alg.oid == ECDSA_WITH_SHA384 {
        match &alg.parameters {
            None => Ok(()),
            Some(_) => Err(format!(
                "{} with parameters (RFC 5758 3.2: they must be absent)",
                alg.oid
            )),
        }
    } else {
        Err(format!("unsupported signature algorithm {}", alg.oid))
    }
}

/// Checks the contents of RSASSA-PSS-params (RFC 4055 3.1) against the SHA-384 profile.
fn pss_parameters(contents: &[u8]) -> Result<(), String> {
    use der::asn1::ContextSpecific;
    use x509_cert::spki::AlgorithmIdentifierOwned as Alg;
    let sha384 = |a: &Alg| {
        a.oid == SHA384
            && a.parameters
                .as_ref()
                .is_none_or(|p| der::Tagged::tag(p) == der::Tag::Null && p.value().is_empty())
    };
    let fields = || -> der::Result<_> {
        let mut r = SliceReader::new(contents)?;
        let hash = ContextSpecific::<Alg>::decode_explicit(&mut r, der::TagNumber::N0)?;
        let mgf = ContextSpecific::<Alg>::decode_explicit(&mut r, der::TagNumber::N1)?;
        let salt = ContextSpecific::<u64>::decode_explicit(&mut r, der::TagNumber::N2)?;
        let trailer = ContextSpecific::<u64>::decode_explicit(&mut r, der::TagNumber::N3)?;
        r.finish(())?;
        Ok([hash, mgf].map(|a| a.map(|c| c.value)))
            .map(|[h, m]| (h, m, salt.map(|c| c.value), trailer.map(|c| c.value)))
    };
    let (hash, mgf, salt, trailer) = fields().map_err(|e| e.to_string())?;
    if !hash.as_ref().is_some_and(sha384) {
        return Err("the hash is not SHA-384".into());
    }
    let mgf_hash = mgf
        .as_ref()
        .filter(|m| m.oid == MGF1)
        .and_then(|m| m.parameters.as_ref())
        .and_then(|p| p.decode_as::<Alg>().ok());
    if !mgf_hash.as_ref().is_some_and(sha384) {
        return Err("the mask generation function is not MGF1 with SHA-384".into());
    }
    if salt != Some(48) {
        return Err(format!(
            "salt length {}, not 48",
            salt.map_or("20 (the default)".to_owned(), |s| s.to_string())
        ));
    }
    if trailer.is_some_and(|t| t != 1) {
        return Err("trailer field is not 1".into());
    }
    Ok(())
}

/// A decoded CRL with the exact bytes it was decoded from.
///
/// Decoded with `der` field by field rather than as an `x509-cert` `CertificateList`:
/// the revoked entries (hundreds of them in an Intel PCK CRL, each with its extensions)
/// are checked for their structure and kept as the byte ranges of their serial numbers,
/// which is all a revocation check reads, instead of being decoded into owned values.
#[derive(Debug, Clone)]
pub struct Crl {
    der: Vec<u8>,
    tbs: std::ops::Range<usize>,
    issuer: x509_cert::name::Name,
    this_update: x509_cert::time::Time,
    next_update: Option<x509_cert::time::Time>,
    /// Where each revoked entry's serial number (INTEGER contents) lies in `der`.
    revoked: Vec<std::ops::Range<usize>>,
    /// The algorithm inside the signed part, and the one outside it.
    algorithms: (
        x509_cert::spki::AlgorithmIdentifierOwned,
        x509_cert::spki::AlgorithmIdentifierOwned,
    ),
    signature: Option<Vec<u8>>,
}

impl Crl {
    /// Decodes a CRL (DER or PEM `X509 CRL`).
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, CertError> {
        let der = if is_pem(bytes) {
            let text = std::str::from_utf8(bytes).map_err(|e| CertError::Pem {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
            pem_decode(text)
                .and_then(|blocks| {
                    blocks
                        .into_iter()
                        .find_map(|(label, der)| (label == "X509 CRL").then_some(der))
                        .ok_or_else(|| "no X509 CRL block".to_owned())
                })
                .map_err(|reason| CertError::Pem {
                    what: what.to_owned(),
                    reason,
                })?
        } else {
            bytes.to_vec()
        };
        Self::from_der(der).map_err(|e| CertError::Malformed {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    /// RFC 5280 section 5.1, strictly: every field's tag and length is checked, every
    /// revoked entry's structure too; nothing may follow the CRL.
    fn from_der(der: Vec<u8>) -> der::Result<Self> {
        let tbs = signed_range(&der)?;
        let base = der.as_ptr().addr();
        let mut outer = SliceReader::new(&der)?;
        let crl = outer.sequence(|r| {
            let (inner, issuer, this_update, next_update, revoked) = r.sequence(|t| {
                if t.peek_tag()? == der::Tag::Integer {
                    x509_cert::certificate::Version::decode(t)?;
                }
                let inner = x509_cert::spki::AlgorithmIdentifierOwned::decode(t)?;
                let issuer = x509_cert::name::Name::decode(t)?;
                let this_update = x509_cert::time::Time::decode(t)?;
                let next_update = match t.peek_tag() {
                    Ok(der::Tag::UtcTime | der::Tag::GeneralizedTime) => {
                        Some(x509_cert::time::Time::decode(t)?)
                    }
                    _ => None,
                };
                let mut revoked = Vec::new();
                if !t.is_finished() && t.peek_tag()? == der::Tag::Sequence {
                    t.sequence(|list| {
                        while !list.is_finished() {
                            list.sequence(|entry| {
                                // Canonical INTEGER, at most 21 bytes (x509-cert's
                                // limit, 20 octets plus a sign byte).
                                let int = der::asn1::IntRef::decode(entry)?;
                                if int.len() > der::Length::new(21) {
                                    return Err(der::Tag::Integer.value_error());
                                }
                                let serial = int.as_bytes();
                                // The reader lends slices of `der` itself.
                                let start = serial
                                    .as_ptr()
                                    .addr()
                                    .checked_sub(base)
                                    .ok_or(der::ErrorKind::Overflow)?;
                                let end = start
                                    .checked_add(serial.len())
                                    .ok_or(der::ErrorKind::Overflow)?;
                                x509_cert::time::Time::decode(entry)?;
                                if !entry.is_finished() {
                                    check_extensions(entry)?;
                                }
                                revoked.push(start..end);
                                Ok(())
                            })?;
                        }
                        Ok(())
                    })?;
                }
                if !t.is_finished() {
                    let ext =
                        der::asn1::ContextSpecific::<x509_cert::ext::Extensions>::decode_explicit(
                            t,
                            der::TagNumber::N0,
                        )?;
                    if ext.is_none() {
                        return Err(t.peek_tag()?.unexpected_error(None));
                    }
                }
                Ok((inner, issuer, this_update, next_update, revoked))
            })?;
            let alg = x509_cert::spki::AlgorithmIdentifierOwned::decode(r)?;
            let signature = der::asn1::BitStringRef::decode(r)?;
            Ok(Crl {
                der: Vec::new(),
                tbs: 0..0,
                issuer,
                this_update,
                next_update,
                revoked,
                algorithms: (inner, alg),
                signature: signature.as_bytes().map(<[u8]>::to_vec),
            })
        })?;
        outer.finish(())?;
        Ok(Crl { der, tbs, ..crl })
    }

    /// The DER the CRL was decoded from.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether `issuer`'s subject is the CRL's issuer.
    pub fn issued_by(&self, issuer: &Cert) -> bool {
        self.issuer == issuer.cert.tbs_certificate.subject
    }

    /// Verifies that `issuer` signed this CRL.
    pub fn verify_signed_by(&self, issuer: &Cert) -> Result<(), String> {
        if !self.issued_by(issuer) {
            return Err("the CRL's issuer is not the expected signer's subject".into());
        }
        let (inner, outer) = &self.algorithms;
        if inner != outer {
            return Err(format!(
                "the CRL's signatureAlgorithm ({}) differs from the one inside its signed part \
                 ({}) (RFC 5280 5.1.1.2)",
                outer.oid, inner.oid
            ));
        }
        let tbs = self.der.get(self.tbs.clone()).unwrap_or_default();
        verify_signature(issuer, outer, tbs, self.signature.as_deref())
    }

    /// The validity window: thisUpdate and nextUpdate (if any).
    pub fn window(&self) -> (Time, Option<Time>) {
        (
            Time::from_der_time(&self.this_update),
            self.next_update.as_ref().map(Time::from_der_time),
        )
    }

    /// The serial numbers the CRL lists (INTEGER contents, as encoded).
    pub fn revoked_serials(&self) -> impl Iterator<Item = &[u8]> {
        self.revoked
            .iter()
            .map(|r| self.der.get(r.clone()).unwrap_or_default())
    }

    /// Whether the CRL lists `cert`'s serial number.
    pub fn revokes(&self, cert: &Cert) -> bool {
        self.revoked_serials().any(|s| s == cert.serial())
    }
}

/// Checks the structure of `Extensions ::= SEQUENCE OF Extension` (RFC 5280 4.1) as
/// `x509-cert` decodes it, without keeping anything: a CRL entry's extensions (the
/// revocation reason) are never read.
fn check_extensions<'a, R: Reader<'a>>(r: &mut R) -> der::Result<()> {
    r.sequence(|list| {
        while !list.is_finished() {
            list.sequence(|ext| {
                ObjectIdentifier::decode(ext)?;
                if ext.peek_tag()? == der::Tag::Boolean {
                    bool::decode(ext)?;
                }
                der::asn1::OctetStringRef::decode(ext)?;
                Ok(())
            })?;
        }
        Ok(())
    })
}

fn verify_signature(
    issuer: &Cert,
    algorithm_id: &x509_cert::spki::AlgorithmIdentifierOwned,
    tbs: &[u8],
    sig: Option<&[u8]>,
) -> Result<(), String> {
    let sig = sig.ok_or("the signature BIT STRING has unused bits")?;
    signature_parameters(algorithm_id)?;
    let algorithm = &algorithm_id.oid;
    let alg: &dyn signature::VerificationAlgorithm = if *algorithm == RSASSA_PSS {
        // ring's PSS verification fixes MGF1 to the same hash and the salt to the hash
        // length: exactly AMD's parameters (SHA-384, MGF1-SHA-384, salt 48).
        &signature::RSA_PSS_2048_8192_SHA384
    } else if *algorithm == ECDSA_WITH_SHA384 {
        &signature::ECDSA_P384_SHA384_ASN1
    } else if *algorithm == ECDSA_WITH_SHA256 {
        // Intel's SGX/TDX PKI: P-256 keys throughout.
        &signature::ECDSA_P256_SHA256_ASN1
    } else {
        return Err(format!("unsupported signature algorithm {algorithm}"));
    };
    UnparsedPublicKey::new(alg, issuer.public_key_bits())
        .verify(tbs, sig)
        .map_err(|_| "the signature does not verify".to_owned())
}

/// The byte range of the first element inside the outer SEQUENCE (the to-be-signed part
/// of a certificate or CRL), exactly as it appears in the input.
fn signed_range(der: &[u8]) -> der::Result<std::ops::Range<usize>> {
    let mut outer = SliceReader::new(der)?;
    let header = der::Header::decode(&mut outer)?;
    header.tag.assert_eq(der::Tag::Sequence)?;
    let start = usize::try_from(outer.position())?;
    let tbs = outer.tlv_bytes()?;
    let end = start
        .checked_add(tbs.len())
        .ok_or(der::ErrorKind::Overflow)?;
    Ok(start..end)
}

fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)
        .and_then(|atv| {
            atv.value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .ok()
        })
}

/// The DER of every CERTIFICATE block of a PEM file (base64-decoded, not yet decoded as
/// X.509), or the bytes themselves if they are not PEM.
pub fn certificate_ders(bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>, CertError> {
    if !is_pem(bytes) {
        return Ok(vec![bytes.to_vec()]);
    }
    let pem_err = |reason: String| CertError::Pem {
        what: what.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| pem_err(e.to_string()))?;
    let out: Vec<Vec<u8>> = pem_decode(text)
        .map_err(pem_err)?
        .into_iter()
        .filter_map(|(label, der)| (label == "CERTIFICATE").then_some(der))
        .collect();
    if out.is_empty() {
        return Err(pem_err("no CERTIFICATE block".into()));
    }
    Ok(out)
}

/// Whether `bytes` are PEM text rather than DER: DER starts with a SEQUENCE tag, PEM
/// has a BEGIN line (explanatory text may come before it, RFC 7468 section 2).
fn is_pem(bytes: &[u8]) -> bool {
    bytes.first() != Some(&0x30) && bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The DER of every certificate of a PEM chain that must be exactly that: CERTIFICATE
/// blocks separated by whitespace, optionally ended by one NUL byte (as Intel's quoting
/// enclave writes the PCK chain into a quote), with no other text before, between or
/// after them.
pub fn certificate_chain_exact(bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let pem_err = |reason: String| CertError::Pem {
        what: what.to_owned(),
        reason,
    };
    let body = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    let text = std::str::from_utf8(body).map_err(|e| pem_err(e.to_string()))?;
    let mut rest = text.trim_start();
    let mut out = Vec::new();
    while !rest.is_empty() {
        if !rest.starts_with("-----BEGIN CERTIFICATE-----") {
            return Err(pem_err(format!(
                "{} bytes that are not a CERTIFICATE block",
                rest.len()
            )));
        }
        let (_, der, tail) = pem_block(rest).map_err(pem_err)?;
        out.push(der);
        rest = tail.trim_start();
    }
    if out.is_empty() {
        return Err(pem_err("no CERTIFICATE block".into()));
    }
    Ok(out)
}

/// The blocks of PEM text in order, each as its label and its contents. Text outside the
/// blocks is ignored (RFC 7468 section 2 allows explanatory text); each block is decoded
/// by [`pem_block`].
pub fn pem_decode(text: &str) -> Result<Vec<(&str, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("-----BEGIN ") {
        let (label, der, tail) = pem_block(rest.get(at..).unwrap_or_default())?;
        blocks.push((label, der));
        rest = tail;
    }
    Ok(blocks)
}

/// The PEM block at the start of `text`: its label, its contents, and the text after its
/// END line. The block itself is decoded by the `pem-rfc7468` crate: RFC 7468's strict
/// grammar (section 3; lines of at most 64 characters, LF or CRLF, no headers, canonical
/// padding) and constant-time base64, since a block may hold a private key.
fn pem_block(text: &str) -> Result<(&str, Vec<u8>, &str), String> {
    let after = text
        .strip_prefix("-----BEGIN ")
        .ok_or("no -----BEGIN line")?;
    let (label, _) = after
        .split_once("-----")
        .ok_or("a BEGIN line does not end in -----")?;
    let end = format!("-----END {label}-----");
    let (block, tail) = text
        .find(end.as_str())
        .and_then(|at| at.checked_add(end.len()))
        .and_then(|len| text.split_at_checked(len))
        .ok_or_else(|| format!("no {end} line"))?;
    let (_, der) =
        pem_rfc7468::decode_vec(block.as_bytes()).map_err(|e| format!("{label}: {e}"))?;
    Ok((label, der, tail))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    fn pem(label: &str, data: &[u8]) -> String {
        pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, data).unwrap()
    }

    #[test]
    fn pem_blocks_are_read_in_order_with_text_around_them() {
        let data: Vec<u8> = (0..=255).collect();
        let text = format!(
            "Certificate:\n  (openssl x509 -text)\n{}between\n{}",
            pem("CERTIFICATE", &data),
            pem("EC PRIVATE KEY", b"k")
        );
        let blocks = pem_decode(&text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], ("CERTIFICATE", data));
        assert_eq!(blocks[1], ("EC PRIVATE KEY", b"k".to_vec()));
        let crlf = pem("CERTIFICATE", b"abc").replace('\n', "\r\n");
        assert_eq!(pem_decode(&crlf).unwrap()[0].1, b"abc");
    }

    #[test]
    fn a_pem_block_outside_rfc7468_is_refused_naming_its_label() {
        let data = [7u8; 100];
        // Lines of 76 characters (MIME), not RFC 7468's 64.
        let b64 = pem("CERTIFICATE", &data)
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let (a, b) = b64.split_at(76);
        let wide = format!("-----BEGIN CERTIFICATE-----\n{a}\n{b}\n-----END CERTIFICATE-----\n");
        let e = pem_decode(&wide).unwrap_err();
        assert!(e.starts_with("CERTIFICATE: "), "{e}");
        let truncated = pem("CERTIFICATE", &data).replace("-----END CERTIFICATE-----", "");
        assert_eq!(
            pem_decode(&truncated).unwrap_err(),
            "no -----END CERTIFICATE----- line"
        );
        let headers = pem("EC PRIVATE KEY", &data).replacen(
            "-----\n",
            "-----\nProc-Type: 4,ENCRYPTED\n\n",
            1,
        );
        assert!(pem_decode(&headers).is_err());
    }

    #[test]
    fn an_exact_chain_takes_blocks_whitespace_and_one_nul_only() {
        let chain = format!(
            "{}\n{}\0",
            pem("CERTIFICATE", b"a"),
            pem("CERTIFICATE", b"b")
        );
        assert_eq!(
            certificate_chain_exact(chain.as_bytes(), "chain").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        let extra = format!("{}trailing", pem("CERTIFICATE", b"a"));
        let e = certificate_chain_exact(extra.as_bytes(), "chain").unwrap_err();
        assert!(e.to_string().contains("not a CERTIFICATE block"), "{e}");
    }
}
