//! Signature verifications that succeeded, remembered so that a batch verifies each
//! certificate, CRL and collateral signature once.

use crate::x509::{Cert, Crl};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Mutex;

/// Signature verifications that succeeded, remembered by a digest of (key or issuer,
/// signed bytes, signature): the same bytes under the same key cannot verify differently.
/// A batch shares one across its evidence, so AMD's ARK/ASK/VCEK signatures, Intel's PCK
/// CAs and the collateral are verified once. Failures are never remembered, and validity
/// windows, revocation and every report or quote signature are judged every time.
#[derive(Debug, Default)]
pub struct Cache(Mutex<HashSet<[u8; 32]>>);

impl Clone for Cache {
    fn clone(&self) -> Self {
        Cache(Mutex::new(
            self.0.lock().map(|s| s.clone()).unwrap_or_default(),
        ))
    }
}

impl Cache {
    /// Runs `verify` unless these exact `parts` verified before.
    pub fn verify(
        &self,
        parts: [&[u8]; 3],
        verify: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        let mut h = Sha256::new();
        for p in parts {
            h.update(u64::try_from(p.len()).unwrap_or(u64::MAX).to_le_bytes());
            h.update(p);
        }
        let key: [u8; 32] = h.finalize().into();
        if self.0.lock().is_ok_and(|s| s.contains(&key)) {
            return Ok(());
        }
        verify()?;
        if let Ok(mut s) = self.0.lock() {
            s.insert(key);
        }
        Ok(())
    }

    /// How many verifications are remembered.
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or_default()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Cert::verify_signed_by`], remembered.
    pub fn cert_signed_by(&self, cert: &Cert, issuer: &Cert) -> Result<(), String> {
        self.verify([issuer.der(), cert.der(), b"certificate"], || {
            cert.verify_signed_by(issuer)
        })
    }

    /// [`Crl::verify_signed_by`], remembered.
    pub fn crl_signed_by(&self, crl: &Crl, issuer: &Cert) -> Result<(), String> {
        self.verify([issuer.der(), crl.der(), b"crl"], || {
            crl.verify_signed_by(issuer)
        })
    }
}
