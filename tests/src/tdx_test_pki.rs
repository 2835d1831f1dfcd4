//! The Intel test PKI (tests/fixtures/tdx-test-pki, TEST KEYS ONLY): DCAP quotes and
//! their collateral built and signed with the test PCK and TCB signing keys, for the
//! tests that need evidence no real vector has (and the QGS test server of the TDX
//! dry-run attestation).

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    reason = "test support code"
)]

use crate::crate_dir;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// A file of the test PKI.
pub fn pki(name: &str) -> Vec<u8> {
    let path: PathBuf = crate_dir().join("fixtures/tdx-test-pki").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A certificate as PEM.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A P-256 key of the test PKI.
pub fn key(name: &str) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &pki(name),
        &SystemRandom::new(),
    )
    .unwrap()
}

/// An ECDSA P-256 signature, r || s.
pub fn sign(key: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    key.sign(&SystemRandom::new(), message)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The PCK chain a quote carries: the PCK certificate, its CA, the root (each DER).
pub struct Chain {
    /// The PCK certificate.
    pub pck: Vec<u8>,
    /// Its CA.
    pub ca: Vec<u8>,
    /// The root.
    pub root: Vec<u8>,
}

/// The test PKI's chain.
pub fn good_chain() -> Chain {
    Chain {
        pck: pki("test-pck.der"),
        ca: pki("test-ca.der"),
        root: pki("test-root.der"),
    }
}

/// A TD quote body (584 bytes): SEPT_VE_DISABLE, MRTD 0x11..., REPORTDATA 0x5a....
pub fn default_td_body() -> [u8; 584] {
    let mut td = [0u8; 584];
    td[120 + 3] = 0x10; // TDATTRIBUTES bit 28, SEPT_VE_DISABLE
    td[136..184].fill(0x11); // MRTD
    td[520..584].fill(0x5a); // REPORTDATA
    td
}

/// A version 4 TDX quote as Intel's quoting enclave builds it: the TD quote body `td`,
/// the QE report binding a fresh attestation key, signed by the test PCK key, and the
/// quote signed by the attestation key.
pub fn quote(chain: &Chain, td: &[u8; 584]) -> Vec<u8> {
    let rng = SystemRandom::new();
    let ak_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ak_pkcs8.as_ref(), &rng)
        .unwrap();
    let ak_public = &ak.public_key().as_ref()[1..];
    let mut q = Vec::new();
    q.extend(4u16.to_le_bytes()); // version
    q.extend(2u16.to_le_bytes()); // ECDSA-256-with-P-256
    q.extend(0x81u32.to_le_bytes()); // TDX
    q.extend(0u16.to_le_bytes()); // QE SVN
    q.extend(11u16.to_le_bytes()); // PCE SVN
    q.extend(cvm_attest::tdx::quote::INTEL_QE_VENDOR_ID);
    q.extend([0u8; 20]);
    q.extend(td);
    let isv_signature = sign(&ak, &q);
    let auth_data: Vec<u8> = (0u8..32).collect();
    let mut qe = vec![0u8; 384];
    qe[48] = 0x11; // ATTRIBUTES
    qe[128..160].fill(0x22); // MRSIGNER
    qe[256..258].copy_from_slice(&2u16.to_le_bytes()); // ISVPRODID
    let mut h = Sha256::new();
    h.update(ak_public);
    h.update(&auth_data);
    qe[320..352].copy_from_slice(&h.finalize());
    let qe_signature = sign(&key("test-pck-key.pk8"), &qe);
    let mut chain_pem = [&chain.pck, &chain.ca, &chain.root]
        .into_iter()
        .map(|d| pem(d))
        .collect::<String>()
        .into_bytes();
    chain_pem.push(0);
    let mut qe_data = qe;
    qe_data.extend(&qe_signature);
    qe_data.extend(u16::try_from(auth_data.len()).unwrap().to_le_bytes());
    qe_data.extend(&auth_data);
    qe_data.extend(5u16.to_le_bytes());
    qe_data.extend(u32::try_from(chain_pem.len()).unwrap().to_le_bytes());
    qe_data.extend(&chain_pem);
    let mut sig_data = isv_signature;
    sig_data.extend(ak_public);
    sig_data.extend(6u16.to_le_bytes());
    sig_data.extend(u32::try_from(qe_data.len()).unwrap().to_le_bytes());
    sig_data.extend(&qe_data);
    q.extend(u32::try_from(sig_data.len()).unwrap().to_le_bytes());
    q.extend(&sig_data);
    q
}

/// The TCB Info for the test platform: FMSPC C0FFEE000000, one UpToDate level at its
/// SGX components (3), PCESVN (11) and TDX components (0), and the TDX module summary
/// the TD report's zero MRSIGNERSEAM and SEAMATTRIBUTES match.
pub fn tcb_info() -> String {
    let sgx = vec![r#"{"svn":3}"#; 16].join(",");
    let tdx = vec![r#"{"svn":0}"#; 16].join(",");
    format!(
        r#"{{"id":"TDX","version":3,"issueDate":"2026-01-01T00:00:00Z","nextUpdate":"2026-12-01T00:00:00Z","fmspc":"C0FFEE000000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tdxModule":{{"mrsigner":"{}","attributes":"0000000000000000","attributesMask":"FFFFFFFFFFFFFFFF"}},"tcbLevels":[{{"tcb":{{"sgxtcbcomponents":[{sgx}],"pcesvn":11,"tdxtcbcomponents":[{tdx}]}},"tcbDate":"2025-01-01T00:00:00Z","tcbStatus":"UpToDate"}}]}}"#,
        "00".repeat(48)
    )
}

/// The QE Identity the test QE report matches.
pub fn qe_identity() -> String {
    format!(
        r#"{{"id":"TD_QE","version":2,"issueDate":"2026-01-01T00:00:00Z","nextUpdate":"2026-12-01T00:00:00Z","tcbEvaluationDataNumber":17,"miscselect":"00000000","miscselectMask":"FFFFFFFF","attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000","mrsigner":"{}","isvprodid":2,"tcbLevels":[{{"tcb":{{"isvsvn":0}},"tcbDate":"2025-01-01T00:00:00Z","tcbStatus":"UpToDate"}}]}}"#,
        "22".repeat(32)
    )
}

/// The collateral bundle, signed with the test TCB signing key; `tcb_signer` is the
/// certificate that heads both issuer chains, `pck_crl` the PCK CA's CRL.
pub fn collateral_json(tcb_signer: &[u8], pck_crl: &str) -> String {
    let tcb = key("test-tcb-key.pk8");
    let hex = |b: &[u8]| hex::encode(b);
    let root = pki("test-root.der");
    let signer_chain = format!("{}{}", pem(tcb_signer), pem(&root));
    let (info, identity) = (tcb_info(), qe_identity());
    serde_json::json!({
        "pck_crl_issuer_chain": format!("{}{}", pem(&pki("test-ca.der")), pem(&root)),
        "root_ca_crl": hex(&pki("test-root-crl.der")),
        "pck_crl": hex(&pki(pck_crl)),
        "tcb_info_issuer_chain": signer_chain,
        "tcb_info": info,
        "tcb_info_signature": hex(&sign(&tcb, info.as_bytes())),
        "qe_identity_issuer_chain": signer_chain,
        "qe_identity": identity,
        "qe_identity_signature": hex(&sign(&tcb, identity.as_bytes())),
    })
    .to_string()
}
