//! Intel's PCK certificate chain (Intel SGX Root CA -> PCK Platform/Processor CA -> PCK
//! certificate) and the SGX extensions of the PCK certificate (FMSPC, PCE ID, TCB).
//!
//! The root is built in and pinned; the copy of it that a quote carries is compared with
//! it and otherwise ignored.

use crate::cache::Cache;
use crate::time::Time;
use crate::verdict::{Category, CheckId, Checks};
use crate::x509::{
    Cert, CertError, KeyProfile, Profile, SignatureProfile, certificate_chain_exact,
};
use der::asn1::{Any, ObjectIdentifier, OctetStringRef};
use der::{Decode, Tag, Tagged};

/// The built-in Intel SGX Root CA (see `src/trust/intel/PROVENANCE.md`).
const BUILTIN_ROOT: &[u8] = include_bytes!("../trust/intel/IntelSGXRootCA.der");

/// The SHA-256 of the Intel SGX Root CA's DER, as Intel publishes it.
pub const ROOT_FINGERPRINT: &str =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

/// Intel's PKI is ECDSA P-256 with SHA-256 throughout ("Intel SGX PCK Certificate and
/// Certificate Revocation List Profile Specification" 1.5, sections 1.1-1.4).
const fn intel(role: &'static str, ca: Option<u8>, crl_signer: bool) -> Profile {
    Profile {
        role,
        key: KeyProfile::P256,
        signed_with: SignatureProfile::EcdsaSha256,
        ca,
        crl_signer,
    }
}

/// The Intel SGX Root CA: self-signed, over one CA (the PCK CA), signing CRLs.
pub const ROOT_PROFILE: Profile = intel("Intel SGX Root CA", Some(1), true);
/// The PCK Platform or Processor CA: issues PCK certificates and signs the PCK CRL.
pub const PCK_CA_PROFILE: Profile = intel("PCK CA", Some(0), true);
/// The PCK certificate: an end entity.
pub const PCK_PROFILE: Profile = intel("PCK certificate", None, false);
/// The TCB signing certificate: an end entity.
pub const TCB_SIGNING_PROFILE: Profile = intel("TCB signing certificate", None, false);

/// The trust anchors of Intel's PKI: the built-in Intel SGX Root CA, and any root the
/// caller names explicitly (a test or pre-production PKI). Never taken from evidence.
#[derive(Debug, Clone)]
pub struct IntelRoot {
    certs: Vec<Cert>,
}

impl IntelRoot {
    /// The built-in Intel SGX Root CA.
    pub fn builtin() -> Result<Self, CertError> {
        Cert::from_der(BUILTIN_ROOT, "built-in Intel SGX Root CA").map(IntelRoot::from_cert)
    }

    /// One anchor alone, instead of the built-in one (tests of a wrong root).
    pub fn from_cert(cert: Cert) -> Self {
        IntelRoot { certs: vec![cert] }
    }

    /// Trusts one more root beside those already trusted (`cvm verify --root`).
    pub fn add_root(&mut self, cert: Cert) {
        self.certs.push(cert);
    }

    /// The first anchor (the built-in root, unless replaced).
    pub fn cert(&self) -> Option<&Cert> {
        self.certs.first()
    }

    /// Every anchor.
    pub fn certs(&self) -> &[Cert] {
        &self.certs
    }

    /// The anchor that issued `child`: one whose subject is the child's issuer and whose
    /// key verifies its signature; failing that, the first of that name (so that the
    /// caller's check reports why it does not verify); `None` if no anchor has the name.
    pub fn anchor_for(&self, child: &Cert, cache: &Cache) -> Option<&Cert> {
        let named = || self.certs.iter().filter(|a| child.issued_by_name(a));
        named()
            .find(|a| cache.cert_signed_by(child, a).is_ok())
            .or_else(|| named().next())
    }

    /// The anchor a CRL names as its issuer.
    pub fn crl_anchor(&self, crl: &crate::x509::Crl) -> Option<&Cert> {
        self.certs.iter().find(|a| crl.issued_by(a))
    }

    /// Whether `der` is one of the anchors.
    pub fn is_anchor(&self, der: &[u8]) -> bool {
        self.certs.iter().any(|a| a.der() == der)
    }
}

/// Which intermediate CA issued the PCK certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PckCa {
    /// "Intel SGX PCK Platform CA" (multi-package platforms, and every TDX platform).
    Platform,
    /// "Intel SGX PCK Processor CA".
    Processor,
}

const OID_SGX: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1");
const OID_PPID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.1");
const OID_TCB: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2");
const OID_PCESVN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2.17");
const OID_CPUSVN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2.18");
const OID_PCEID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.3");
const OID_FMSPC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.4");

/// The SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxExtensions {
    /// PPID (encrypted platform provisioning ID).
    pub ppid: Vec<u8>,
    /// SGX TCB component SVNs 1-16.
    pub tcb_components: [u8; 16],
    /// PCESVN.
    pub pce_svn: u16,
    /// CPUSVN.
    pub cpu_svn: [u8; 16],
    /// PCE ID.
    pub pce_id: [u8; 2],
    /// FMSPC: the platform family.
    pub fmspc: [u8; 6],
}

/// (OID, value) pairs of a `SEQUENCE OF SEQUENCE { OID, ANY }`.
fn pairs(items: der::Result<Vec<Any>>, what: &str) -> Result<Vec<(ObjectIdentifier, Any)>, String> {
    items
        .map_err(|e| format!("{what}: {e}"))?
        .into_iter()
        .map(|item| {
            let inner = item
                .decode_as::<Vec<Any>>()
                .map_err(|e| format!("{what}: {e}"))?;
            match inner.as_slice() {
                [oid, value] => Ok((
                    oid.decode_as::<ObjectIdentifier>()
                        .map_err(|e| format!("{what}: {e}"))?,
                    value.clone(),
                )),
                _ => Err(format!("{what}: an element is not an (OID, value) pair")),
            }
        })
        .collect()
}

fn octets<const N: usize>(value: &Any, oid: &ObjectIdentifier) -> Result<[u8; N], String> {
    let s = value
        .decode_as::<OctetStringRef<'_>>()
        .map_err(|e| format!("SGX extension {oid}: not an OCTET STRING ({e})"))?;
    <[u8; N]>::try_from(s.as_bytes()).map_err(|_| {
        format!(
            "SGX extension {oid}: {} bytes, expected {N}",
            s.as_bytes().len()
        )
    })
}

fn integer<T: TryFrom<u64>>(value: &Any, oid: &ObjectIdentifier) -> Result<T, String> {
    if value.tag() != Tag::Integer {
        return Err(format!("SGX extension {oid}: not an INTEGER"));
    }
    let v = value
        .decode_as::<u64>()
        .map_err(|e| format!("SGX extension {oid}: {e}"))?;
    T::try_from(v).map_err(|_| format!("SGX extension {oid}: {v} is out of range"))
}

impl SgxExtensions {
    /// Reads the SGX extensions of a PCK certificate.
    pub fn read(cert: &Cert) -> Result<Self, String> {
        let value = cert
            .extension(&OID_SGX)
            .ok_or("the PCK certificate has no SGX extensions (1.2.840.113741.1.13.1)")?;
        Self::parse(value)
    }

    /// Parses the DER value of the SGX extensions.
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        let mut ppid = None;
        let mut tcb = None;
        let mut pce_id = None;
        let mut fmspc = None;
        for (oid, value) in pairs(Vec::<Any>::from_der(der), "SGX extensions")? {
            if oid == OID_PPID {
                ppid = Some(octets::<16>(&value, &oid)?.to_vec());
            } else if oid == OID_TCB {
                tcb = Some(Self::parse_tcb(&value)?);
            } else if oid == OID_PCEID {
                pce_id = Some(octets::<2>(&value, &oid)?);
            } else if oid == OID_FMSPC {
                fmspc = Some(octets::<6>(&value, &oid)?);
            }
        }
        let missing = |name: &str| format!("the SGX extensions have no {name}");
        let (tcb_components, pce_svn, cpu_svn) = tcb.ok_or_else(|| missing("TCB"))?;
        Ok(SgxExtensions {
            ppid: ppid.ok_or_else(|| missing("PPID"))?,
            tcb_components,
            pce_svn,
            cpu_svn,
            pce_id: pce_id.ok_or_else(|| missing("PCE-ID"))?,
            fmspc: fmspc.ok_or_else(|| missing("FMSPC"))?,
        })
    }

    fn parse_tcb(value: &Any) -> Result<([u8; 16], u16, [u8; 16]), String> {
        let mut components: [Option<u8>; 16] = [None; 16];
        let mut pce_svn = None;
        let mut cpu_svn = None;
        for (oid, v) in pairs(value.decode_as::<Vec<Any>>(), "SGX TCB extension")? {
            if oid == OID_PCESVN {
                pce_svn = Some(integer::<u16>(&v, &oid)?);
            } else if oid == OID_CPUSVN {
                cpu_svn = Some(octets::<16>(&v, &oid)?);
            } else if let Some(slot) = component_index(&oid).and_then(|i| components.get_mut(i)) {
                *slot = Some(integer::<u8>(&v, &oid)?);
            }
        }
        let mut out = [0u8; 16];
        for (i, (o, c)) in out.iter_mut().zip(components).enumerate() {
            *o = c.ok_or_else(|| {
                format!(
                    "the SGX TCB extension has no component {}",
                    i.saturating_add(1)
                )
            })?;
        }
        Ok((
            out,
            pce_svn.ok_or("the SGX TCB extension has no PCESVN")?,
            cpu_svn.ok_or("the SGX TCB extension has no CPUSVN")?,
        ))
    }
}

/// The index (0-15) of an SGX TCB component OID `...13.1.2.<1-16>`.
fn component_index(oid: &ObjectIdentifier) -> Option<usize> {
    let parent = oid.parent()?;
    if parent != OID_TCB {
        return None;
    }
    let last = oid.arcs().last()?;
    let i = usize::try_from(last).ok()?.checked_sub(1)?;
    (i < 16).then_some(i)
}

/// Which collateral a quote's PCK chain (PEM) needs: its leaf's SGX extensions (the
/// FMSPC names the TCB Info) and which CA issued it (it names the PCK CRL). Nothing is
/// verified here: [`verify_chain`] does that when the quote is verified.
pub fn identify(pem: &[u8]) -> Result<(SgxExtensions, PckCa), String> {
    let certs = Cert::parse_file(pem, "the quote's PCK chain").map_err(|e| e.to_string())?;
    let [leaf, ca, ..] = certs.as_slice() else {
        return Err(format!(
            "{} certificate(s): the chain needs the PCK certificate and its CA",
            certs.len()
        ));
    };
    let ca_cn = ca.subject_cn().unwrap_or_default();
    let kind = match ca_cn.as_str() {
        "Intel SGX PCK Platform CA" => PckCa::Platform,
        "Intel SGX PCK Processor CA" => PckCa::Processor,
        _ => {
            return Err(format!(
                "the intermediate {ca_cn:?} is not an Intel SGX PCK Platform or Processor CA"
            ));
        }
    };
    Ok((SgxExtensions::read(leaf)?, kind))
}

/// A PCK chain whose signatures and validity have been verified.
#[derive(Debug, Clone)]
pub struct VerifiedPck {
    /// The PCK certificate.
    pub leaf: Cert,
    /// The intermediate CA that issued it.
    pub ca: Cert,
    /// Which CA that is.
    pub ca_kind: PckCa,
    /// The leaf's SGX extensions.
    pub ext: SgxExtensions,
}

/// Checks that `cert` matches `profile`, that `issuer` signed it (matching
/// `issuer_profile`, unless another check judges the issuer), and that it is valid at
/// `at`.
pub fn check_issued(
    (cert, profile): (&Cert, &Profile),
    (issuer, issuer_profile): (&Cert, Option<&Profile>),
    issuer_name: &str,
    at: Time,
    cache: &Cache,
) -> Result<(), String> {
    cert.check_profile(profile)?;
    if let Some(p) = issuer_profile {
        issuer.check_profile(p)?;
    }
    if !cert.issued_by_name(issuer) {
        return Err(format!("its issuer is not the {issuer_name}"));
    }
    cache
        .cert_signed_by(cert, issuer)
        .map_err(|e| format!("{e} with the {issuer_name}'s key"))?;
    cert.valid_at(at)
}

/// Verifies the PCK chain a quote carries up to `root`, recording `pck.*` checks.
pub fn verify_chain(
    pem: &[u8],
    root: &IntelRoot,
    at: Time,
    cache: &Cache,
    checks: &mut Checks,
) -> Option<VerifiedPck> {
    let ders = match certificate_chain_exact(pem, "the quote's PCK chain") {
        Ok(d) => d,
        Err(e) => {
            checks.record(CheckId::PckChain, Category::Signature, Err(e.to_string()));
            return None;
        }
    };
    let (leaf, ca, rest) = match ders.as_slice() {
        [leaf, ca, rest @ ..] => match (
            Cert::from_der(leaf, "the PCK certificate"),
            Cert::from_der(ca, "the PCK CA certificate"),
        ) {
            (Ok(leaf), Ok(ca)) => (leaf, ca, rest),
            (Err(e), _) | (_, Err(e)) => {
                checks.record(CheckId::PckChain, Category::Signature, Err(e.to_string()));
                return None;
            }
        },
        _ => {
            checks.record(
                CheckId::PckChain,
                Category::Signature,
                Err(format!(
                    "{} certificate(s): the chain needs the PCK certificate and its CA",
                    ders.len()
                )),
            );
            return None;
        }
    };
    if rest.iter().any(|der| !root.is_anchor(der)) {
        checks.skip(
            CheckId::PckChainRoot,
            Category::Signature,
            "the quote carries a root certificate that is not the trusted Intel SGX Root CA; \
             it is ignored",
        );
    }
    let ca_cn = ca.subject_cn().unwrap_or_default();
    let ca_kind = match ca_cn.as_str() {
        "Intel SGX PCK Platform CA" => Some(PckCa::Platform),
        "Intel SGX PCK Processor CA" => Some(PckCa::Processor),
        _ => None,
    };
    let ca_ok = checks.record(
        CheckId::PckCa,
        Category::Signature,
        match ca_kind {
            None => Err(format!(
                "the intermediate {ca_cn:?} is not an Intel SGX PCK Platform or Processor CA"
            )),
            Some(_) => match root.anchor_for(&ca, cache) {
                None => Err(format!(
                    "{ca_cn}: issued by {:?}, which is not a trusted root",
                    ca.issuer_cn().unwrap_or_default()
                )),
                Some(anchor) => check_issued(
                    (&ca, &PCK_CA_PROFILE),
                    (anchor, Some(&ROOT_PROFILE)),
                    "trusted Intel SGX Root CA",
                    at,
                    cache,
                )
                .map(|()| {
                    format!("{ca_cn}, signed by the trusted Intel SGX Root CA, valid at {at}")
                })
                .map_err(|e| format!("{ca_cn}: {e}")),
            },
        },
    );
    let leaf_cn = leaf.subject_cn().unwrap_or_default();
    let leaf_ok = checks.record(
        CheckId::PckLeaf,
        Category::Signature,
        if leaf_cn == "Intel SGX PCK Certificate" {
            check_issued((&leaf, &PCK_PROFILE), (&ca, None), &ca_cn, at, cache)
                .map(|()| format!("PCK certificate signed by the {ca_cn}, valid at {at}"))
                .map_err(|e| format!("PCK certificate: {e}"))
        } else {
            Err(format!(
                "the leaf {leaf_cn:?} is not an Intel SGX PCK Certificate"
            ))
        },
    );
    let ext = match SgxExtensions::read(&leaf) {
        Ok(e) => e,
        Err(e) => {
            checks.record(CheckId::PckExtensions, Category::Signature, Err(e));
            return None;
        }
    };
    match (ca_ok && leaf_ok, ca_kind) {
        (true, Some(ca_kind)) => Some(VerifiedPck {
            leaf,
            ca,
            ca_kind,
            ext,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_root_is_the_pinned_one() {
        let root = IntelRoot::builtin().unwrap();
        let cert = root.cert().unwrap();
        assert_eq!(hex::encode(cert.fingerprint()), ROOT_FINGERPRINT);
        assert_eq!(cert.subject_cn().unwrap(), "Intel SGX Root CA");
        cert.verify_signed_by(cert).unwrap();
        cert.check_profile(&ROOT_PROFILE).unwrap();
    }

    #[test]
    fn component_oids() {
        let c = |s: &str| component_index(&ObjectIdentifier::new_unwrap(s));
        assert_eq!(c("1.2.840.113741.1.13.1.2.1"), Some(0));
        assert_eq!(c("1.2.840.113741.1.13.1.2.16"), Some(15));
        assert_eq!(c("1.2.840.113741.1.13.1.2.17"), None);
        assert_eq!(c("1.2.840.113741.1.13.1.3.1"), None);
    }

    #[test]
    fn garbage_extensions_are_errors() {
        assert!(SgxExtensions::parse(b"").is_err());
        assert!(SgxExtensions::parse(&[0x30, 0x00]).is_err());
        assert!(SgxExtensions::parse(&[0x30, 0x03, 0x30, 0x01, 0x05]).is_err());
    }
}
