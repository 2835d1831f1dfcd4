//! The SNP ID block and ID authentication structure handed to SNP_LAUNCH_FINISH.
//!
//! Launching with an ID block pins the image: the PSP refuses to finish the launch unless
//! the block's launch digest equals the digest it computed, and the block's policy equals
//! the guest policy. The ID key's SHA-384 (and the author key's) then appear in every
//! attestation report as ID_KEY_DIGEST (and AUTHOR_KEY_DIGEST). Layouts: SEV-SNP Firmware
//! ABI 1.55, tables "ID_BLOCK", "ID_AUTH_INFO", "ECDSA public key" and "ECDSA signature".
//!
//! Signing needs randomness (ECDSA); the caller passes the generator, so this module stays
//! free of I/O.

use crate::bytes::put_at;
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha384};

/// Size of the ID block.
pub const ID_BLOCK_LEN: usize = 0x60;
/// Size of the ID authentication information structure.
pub const ID_AUTH_LEN: usize = 0x1000;
/// Size of an SNP ECDSA public key structure.
pub const PUBLIC_KEY_LEN: usize = 0x404;
/// Size of an SNP ECDSA signature structure.
pub const SIGNATURE_LEN: usize = 0x200;

/// ID_KEY_ALGO / AUTH_KEY_ALGO: ECDSA P-384 with SHA-384.
const ALGO_ECDSA_P384_SHA384: u32 = 1;
/// The curve field of a public key: P-384.
const CURVE_P384: u32 = 2;
/// Each coordinate and signature component is a 72-byte little-endian field.
const COMPONENT: usize = 0x48;
/// A P-384 scalar or coordinate.
const P384: usize = 48;

const AUTH_BLOCK_SIG: usize = 0x40;
const AUTH_ID_KEY: usize = 0x240;
const AUTH_ID_KEY_SIG: usize = 0x680;
const AUTH_AUTHOR_KEY: usize = 0x880;

/// Why an ID block could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdBlockError {
    /// The key is not an ECDSA P-384 key pair.
    #[error("{role} key: {reason}")]
    Key {
        /// "ID" or "author".
        role: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The signing operation failed.
    #[error("signing with the {role} key failed")]
    Signing {
        /// "ID" or "author".
        role: &'static str,
    },
}

/// The fields of an ID block. [`IdBlock::default`] is what QEMU and sev-snp-measure use
/// when only a digest is given: zero IDs, SVN 0, policy 0x30000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBlock {
    /// The expected launch digest (the SNP measurement).
    pub launch_digest: [u8; 48],
    /// FAMILY_ID, reported back in the attestation report.
    pub family_id: [u8; 16],
    /// IMAGE_ID, reported back in the attestation report.
    pub image_id: [u8; 16],
    /// GUEST_SVN, reported back in the attestation report.
    pub guest_svn: u32,
    /// The guest policy; the launch must use exactly this policy.
    pub policy: u64,
}

impl Default for IdBlock {
    fn default() -> Self {
        IdBlock {
            launch_digest: [0; 48],
            family_id: [0; 16],
            image_id: [0; 16],
            guest_svn: 0,
            policy: DEFAULT_POLICY,
        }
    }
}

/// The guest policy QEMU uses by default (SMT allowed, ABI major 0, bit 17 reserved-one).
pub const DEFAULT_POLICY: u64 = 0x3_0000;

impl IdBlock {
    /// The 0x60-byte structure (VERSION is 1, the only defined version).
    pub fn to_bytes(&self) -> [u8; ID_BLOCK_LEN] {
        let mut b = [0u8; ID_BLOCK_LEN];
        put_at::<0x00, _, _>(&mut b, &self.launch_digest);
        put_at::<0x30, _, _>(&mut b, &self.family_id);
        put_at::<0x40, _, _>(&mut b, &self.image_id);
        put_at::<0x50, _, _>(&mut b, &1u32.to_le_bytes());
        put_at::<0x54, _, _>(&mut b, &self.guest_svn.to_le_bytes());
        put_at::<0x58, _, _>(&mut b, &self.policy.to_le_bytes());
        b
    }
}

/// An ID block signed for SNP_LAUNCH_FINISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIdBlock {
    /// The ID block (ID_BLOCK_UADDR's contents).
    pub id_block: [u8; ID_BLOCK_LEN],
    /// The ID authentication information (ID_AUTH_UADDR's contents).
    pub id_auth: Box<[u8; ID_AUTH_LEN]>,
    /// SHA-384 of the ID key structure: the report's ID_KEY_DIGEST.
    pub id_key_digest: [u8; 48],
    /// SHA-384 of the author key structure: the report's AUTHOR_KEY_DIGEST (set only
    /// when an author key signed the ID key; the launch must then set AUTHOR_KEY_EN).
    pub author_key_digest: Option<[u8; 48]>,
}

/// An ECDSA P-384 signing key (the only kind SNP takes for ID and author keys).
#[derive(Debug)]
pub struct SigningKey {
    pair: EcdsaKeyPair,
    role: &'static str,
}

impl SigningKey {
    /// From a PKCS#8 document (`BEGIN PRIVATE KEY`, DER).
    pub fn from_pkcs8(
        der: &[u8],
        role: &'static str,
        rng: &dyn SecureRandom,
    ) -> Result<Self, IdBlockError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der, rng)
            .map(|pair| SigningKey { pair, role })
            .map_err(|e| rejected(role, &e))
    }

    /// From a raw private scalar and its uncompressed public point (as a SEC1
    /// `EC PRIVATE KEY` holds them). The pair must match.
    pub fn from_private_and_public(
        private: &[u8],
        public: &[u8],
        role: &'static str,
        rng: &dyn SecureRandom,
    ) -> Result<Self, IdBlockError> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            private,
            public,
            rng,
        )
        .map(|pair| SigningKey { pair, role })
        .map_err(|e| rejected(role, &e))
    }
}

fn rejected(role: &'static str, e: &ring::error::KeyRejected) -> IdBlockError {
    IdBlockError::Key {
        role,
        reason: format!("not a usable ECDSA P-384 private key ({e})"),
    }
}

/// Signs `block` with `id_key` and, when given, signs the ID key with `author_key`.
pub fn sign(
    block: &IdBlock,
    id_key: &SigningKey,
    author_key: Option<&SigningKey>,
    rng: &dyn SecureRandom,
) -> Result<SignedIdBlock, IdBlockError> {
    let id_block = block.to_bytes();
    let id_pub = public_key_struct(id_key)?;
    let mut auth = Box::new([0u8; ID_AUTH_LEN]);
    put_at::<0, _, _>(&mut auth, &ALGO_ECDSA_P384_SHA384.to_le_bytes());
    put_at::<AUTH_BLOCK_SIG, _, _>(&mut auth, &signature_struct(id_key, &id_block, rng)?);
    put_at::<AUTH_ID_KEY, _, _>(&mut auth, &id_pub);
    let author_key_digest = match author_key {
        Some(author) => {
            let author_pub = public_key_struct(author)?;
            put_at::<4, _, _>(&mut auth, &ALGO_ECDSA_P384_SHA384.to_le_bytes());
            put_at::<AUTH_ID_KEY_SIG, _, _>(&mut auth, &signature_struct(author, &id_pub, rng)?);
            put_at::<AUTH_AUTHOR_KEY, _, _>(&mut auth, &author_pub);
            Some(Sha384::digest(author_pub).into())
        }
        None => None,
    };
    Ok(SignedIdBlock {
        id_block,
        id_auth: auth,
        id_key_digest: Sha384::digest(id_pub).into(),
        author_key_digest,
    })
}

/// The SNP public key structure of `key`: curve 2, then Qx and Qy little-endian in
/// 72-byte fields, zero to 0x404 bytes. Its SHA-384 is the key digest in reports.
pub fn public_key_struct(key: &SigningKey) -> Result<[u8; PUBLIC_KEY_LEN], IdBlockError> {
    // ring's public key is the uncompressed SEC1 point: 0x04 || X || Y, big-endian.
    let point = key.pair.public_key().as_ref();
    let (x, y) = match point {
        [0x04, xy @ ..] if xy.len() == 2 * P384 => xy.split_at(P384),
        _ => {
            return Err(IdBlockError::Key {
                role: key.role,
                reason: "not a P-384 public key".into(),
            });
        }
    };
    let mut s = [0u8; PUBLIC_KEY_LEN];
    put_at::<0, _, _>(&mut s, &CURVE_P384.to_le_bytes());
    put_at::<4, _, _>(&mut s, &little_endian_component(x));
    put_at::<{ 4 + COMPONENT }, _, _>(&mut s, &little_endian_component(y));
    Ok(s)
}

/// An SNP signature structure: R and S little-endian in 72-byte fields.
fn signature_struct(
    key: &SigningKey,
    msg: &[u8],
    rng: &dyn SecureRandom,
) -> Result<[u8; SIGNATURE_LEN], IdBlockError> {
    let role = key.role;
    let sig = key
        .pair
        .sign(rng, msg)
        .map_err(|_| IdBlockError::Signing { role })?;
    // The fixed format is r || s, big-endian, 48 bytes each.
    let (r, s) = match sig.as_ref() {
        rs if rs.len() == 2 * P384 => rs.split_at(P384),
        _ => return Err(IdBlockError::Signing { role }),
    };
    let mut out = [0u8; SIGNATURE_LEN];
    put_at::<0, _, _>(&mut out, &little_endian_component(r));
    put_at::<COMPONENT, _, _>(&mut out, &little_endian_component(s));
    Ok(out)
}

/// A big-endian integer as a 72-byte little-endian field.
fn little_endian_component(big_endian: &[u8]) -> [u8; COMPONENT] {
    let mut out = [0u8; COMPONENT];
    for (dst, src) in out.iter_mut().zip(big_endian.iter().rev()) {
        *dst = *src;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};

    fn key() -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        SigningKey::from_pkcs8(pkcs8.as_ref(), "test", &rng).unwrap()
    }

    #[test]
    fn p256_keys_are_refused() {
        let rng = SystemRandom::new();
        let p256 =
            EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap();
        let e = SigningKey::from_pkcs8(p256.as_ref(), "ID", &rng).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ID key: not a usable ECDSA P-384"),
            "{e}"
        );
    }

    /// Reads a 72-byte little-endian field back as a 48-byte big-endian integer, as the
    /// PSP does, refusing non-zero padding.
    fn be48(field: &[u8]) -> Vec<u8> {
        assert!(field[P384..COMPONENT].iter().all(|b| *b == 0));
        field[..P384].iter().rev().copied().collect()
    }

    /// Verifies a signature structure the way the PSP reads it: key and signature are
    /// decoded from the little-endian structures, not taken from ring.
    fn psp_verifies(key_struct: &[u8], sig_struct: &[u8], msg: &[u8]) -> bool {
        assert_eq!(u32::from_le_bytes(key_struct[..4].try_into().unwrap()), 2);
        let mut point = vec![4u8];
        point.extend(be48(&key_struct[4..4 + COMPONENT]));
        point.extend(be48(&key_struct[4 + COMPONENT..4 + 2 * COMPONENT]));
        assert!(key_struct[4 + 2 * COMPONENT..].iter().all(|b| *b == 0));
        let mut rs = be48(&sig_struct[..COMPONENT]);
        rs.extend(be48(&sig_struct[COMPONENT..2 * COMPONENT]));
        assert!(sig_struct[2 * COMPONENT..].iter().all(|b| *b == 0));
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point)
            .verify(msg, &rs)
            .is_ok()
    }

    #[test]
    fn id_block_layout() {
        let b = IdBlock {
            launch_digest: [0xaa; 48],
            family_id: [1; 16],
            image_id: [2; 16],
            guest_svn: 7,
            policy: 0x3_001f,
        }
        .to_bytes();
        assert_eq!(&b[..48], &[0xaa; 48]);
        assert_eq!(&b[0x30..0x40], &[1; 16]);
        assert_eq!(&b[0x40..0x50], &[2; 16]);
        assert_eq!(&b[0x50..0x58], &[1, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&b[0x58..], &0x3_001f_u64.to_le_bytes());
    }

    #[test]
    fn signatures_verify_as_the_psp_reads_them() {
        let rng = SystemRandom::new();
        let (id, author) = (key(), key());
        let block = IdBlock {
            launch_digest: [3; 48],
            ..IdBlock::default()
        };
        let s = sign(&block, &id, Some(&author), &rng).unwrap();
        let auth = &s.id_auth[..];
        assert_eq!(&auth[..8], &[1, 0, 0, 0, 1, 0, 0, 0]);
        let id_pub = &auth[AUTH_ID_KEY..AUTH_ID_KEY + PUBLIC_KEY_LEN];
        let author_pub = &auth[AUTH_AUTHOR_KEY..AUTH_AUTHOR_KEY + PUBLIC_KEY_LEN];
        assert!(psp_verifies(
            id_pub,
            &auth[AUTH_BLOCK_SIG..AUTH_BLOCK_SIG + SIGNATURE_LEN],
            &s.id_block
        ));
        assert!(psp_verifies(
            author_pub,
            &auth[AUTH_ID_KEY_SIG..AUTH_ID_KEY_SIG + SIGNATURE_LEN],
            id_pub
        ));
        // A signature over anything else does not verify.
        let mut other = s.id_block;
        other[0] ^= 1;
        assert!(!psp_verifies(
            id_pub,
            &auth[AUTH_BLOCK_SIG..AUTH_BLOCK_SIG + SIGNATURE_LEN],
            &other
        ));
        assert_eq!(s.id_key_digest, <[u8; 48]>::from(Sha384::digest(id_pub)));
        assert_eq!(
            s.author_key_digest,
            Some(<[u8; 48]>::from(Sha384::digest(author_pub)))
        );
        // Reserved areas stay zero.
        assert!(auth[8..AUTH_BLOCK_SIG].iter().all(|b| *b == 0));
        assert!(
            auth[AUTH_ID_KEY + PUBLIC_KEY_LEN..AUTH_ID_KEY_SIG]
                .iter()
                .all(|b| *b == 0)
        );
        assert!(
            auth[AUTH_AUTHOR_KEY + PUBLIC_KEY_LEN..]
                .iter()
                .all(|b| *b == 0)
        );
    }

    #[test]
    fn without_author_key_the_author_half_is_zero() {
        let rng = SystemRandom::new();
        let s = sign(&IdBlock::default(), &key(), None, &rng).unwrap();
        assert_eq!(&s.id_auth[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert!(s.id_auth[AUTH_ID_KEY_SIG..].iter().all(|b| *b == 0));
        assert_eq!(s.author_key_digest, None);
    }
}
