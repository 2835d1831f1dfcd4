//! AMD's certificate chains: ARK -> ASK -> VCEK and ARK -> ASVK -> VLEK.
//!
//! The ARKs are built in (pinned by SHA-256); an ARK supplied with the evidence is used
//! only if it is byte for byte a trusted root. Every certificate's validity is checked at
//! the verification time.

use super::Verifier;
use super::tcb::{Component, Product};
use crate::verdict::{Category, CheckId, Checks};
use crate::x509::{Cert, CertError, Crl, KeyProfile, Profile, SignatureProfile};
use der::Decode;
use der::asn1::ObjectIdentifier;

/// The built-in ARKs and ASKs (see `src/trust/amd/PROVENANCE.md`).
const BUILTIN: [(Product, &[u8], &[u8]); 3] = [
    (
        Product::Milan,
        include_bytes!("../trust/amd/milan-ark.pem"),
        include_bytes!("../trust/amd/milan-ask.pem"),
    ),
    (
        Product::Genoa,
        include_bytes!("../trust/amd/genoa-ark.pem"),
        include_bytes!("../trust/amd/genoa-ask.pem"),
    ),
    (
        Product::Turin,
        include_bytes!("../trust/amd/turin-ark.pem"),
        include_bytes!("../trust/amd/turin-ask.pem"),
    ),
];

/// The SHA-256 of each built-in ARK's DER, as AMD publishes them.
pub const ARK_FINGERPRINTS: [(Product, &str); 3] = [
    (
        Product::Milan,
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    ),
    (
        Product::Genoa,
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    ),
    (
        Product::Turin,
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
    ),
];

/// The trust anchors: AMD's ARKs, plus any root the caller names explicitly.
#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<(Product, Cert)>,
    asks: Vec<(Product, Cert)>,
}

impl Roots {
    /// AMD's ARKs for Milan, Genoa and Turin (and their ASKs, for evidence that comes
    /// with a VCEK alone).
    pub fn amd() -> Result<Self, CertError> {
        let mut roots = Vec::new();
        let mut asks = Vec::new();
        for (product, ark, ask) in BUILTIN {
            roots.extend(
                Cert::parse_file(ark, "built-in ARK")?
                    .into_iter()
                    .map(|c| (product, c)),
            );
            asks.extend(
                Cert::parse_file(ask, "built-in ASK")?
                    .into_iter()
                    .map(|c| (product, c)),
            );
        }
        Ok(Roots { roots, asks })
    }

    /// Trusts one more root (for test or pre-production AMD roots). Its product is read
    /// from its subject (`ARK-<product>`).
    pub fn add_root(&mut self, cert: Cert) -> Result<(), String> {
        let cn = cert.subject_cn().unwrap_or_default();
        let product = Product::ALL
            .into_iter()
            .find(|p| cn == format!("ARK-{}", p.name()))
            .ok_or_else(|| format!("root {cn:?} is not named ARK-Milan, ARK-Genoa or ARK-Turin"))?;
        self.roots.push((product, cert));
        Ok(())
    }

    fn root_for(&self, child: &Cert) -> Option<&(Product, Cert)> {
        self.roots.iter().find(|(_, r)| child.issued_by_name(r))
    }

    fn is_root(&self, cert: &Cert) -> bool {
        self.roots.iter().any(|(_, r)| r.der() == cert.der())
    }
}

/// The certificates supplied with one report, by role (from their file names).
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    /// `vcek.*`.
    pub vcek: Option<Cert>,
    /// `vlek.*`.
    pub vlek: Option<Cert>,
    /// `ask.*`.
    pub ask: Option<Cert>,
    /// `asvk.*`.
    pub asvk: Option<Cert>,
    /// `ark.*`.
    pub ark: Option<Cert>,
}

impl Supplied {
    /// Sorts certificate files by role from their names: `vcek`, `vlek`, `ask`, `asvk`,
    /// `ark`, bare or with one of the extensions `.der`, `.pem`, `.crt`, `.cer`
    /// (case-insensitive). A role's name with another suffix (`vcek.der.bak`), or two
    /// files for one role (`vcek.der` and `vcek.pem`), is refused rather than resolved
    /// by the order of the files. Files with other names are returned unused, so the
    /// caller can say so.
    pub fn from_files<'n>(files: &[(&'n str, &[u8])]) -> Result<(Self, Vec<&'n str>), CertError> {
        const EXTENSIONS: [&str; 4] = ["der", "pem", "crt", "cer"];
        let mut s = Supplied::default();
        let mut taken: Vec<(&'static str, &str)> = Vec::new();
        let mut ignored = Vec::new();
        for (name, bytes) in files {
            let base = name.rsplit('/').next().unwrap_or(name);
            let lower = base.to_ascii_lowercase();
            let (stem, ext) = lower.split_once('.').unwrap_or((lower.as_str(), ""));
            let role: &'static str = match stem {
                "vcek" => "vcek",
                "vlek" => "vlek",
                "ask" => "ask",
                "asvk" => "asvk",
                "ark" => "ark",
                _ => {
                    ignored.push(*name);
                    continue;
                }
            };
            let bad_name = |reason: String| CertError::Name {
                what: (*name).to_owned(),
                reason,
            };
            if !ext.is_empty() && !EXTENSIONS.contains(&ext) {
                return Err(bad_name(format!(
                    "a {role} certificate is named {role}, {role}.der, .pem, .crt or .cer"
                )));
            }
            if let Some((_, other)) = taken.iter().find(|(r, _)| *r == role) {
                return Err(bad_name(format!(
                    "{other} is the {role} certificate too: keep one of them"
                )));
            }
            taken.push((role, name));
            let slot = match role {
                "vcek" => &mut s.vcek,
                "vlek" => &mut s.vlek,
                "ask" => &mut s.ask,
                "asvk" => &mut s.asvk,
                _ => &mut s.ark,
            };
            let mut certs = Cert::parse_file(bytes, name)?;
            if certs.len() != 1 {
                return Err(CertError::Pem {
                    what: (*name).to_owned(),
                    reason: format!("{} certificates where one was expected", certs.len()),
                });
            }
            *slot = certs.pop();
        }
        Ok((s, ignored))
    }
}

/// Which kind of key signs the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    /// Versioned Chip Endorsement Key.
    Vcek,
    /// Versioned Loaded Endorsement Key.
    Vlek,
}

impl LeafKind {
    fn name(self) -> &'static str {
        match self {
            LeafKind::Vcek => "VCEK",
            LeafKind::Vlek => "VLEK",
        }
    }
    fn intermediate(self) -> &'static str {
        match self {
            LeafKind::Vcek => "ASK",
            LeafKind::Vlek => "ASVK",
        }
    }

    /// The leaf's profile: a P-384 key signed by its intermediate (SEV-SNP ABI 1.55
    /// section 2.3 and AMD's "Versioned Chip Endorsement Key" specification).
    fn leaf_profile(self) -> Profile {
        Profile {
            role: self.name(),
            key: KeyProfile::P384,
            signed_with: SignatureProfile::RsaPssSha384,
            ca: None,
            crl_signer: false,
        }
    }

    /// The intermediate's profile: an RSA-4096 CA signed by the ARK, issuing leaves only.
    fn intermediate_profile(self) -> Profile {
        Profile {
            role: self.intermediate(),
            key: KeyProfile::Rsa(4096),
            signed_with: SignatureProfile::RsaPssSha384,
            ca: Some(0),
            crl_signer: false,
        }
    }
}

/// The ARK's profile: a self-signed RSA-4096 CA that signs the intermediates and the CRL.
pub const ARK_PROFILE: Profile = Profile {
    role: "ARK",
    key: KeyProfile::Rsa(4096),
    signed_with: SignatureProfile::RsaPssSha384,
    ca: Some(1),
    crl_signer: true,
};

/// Records the profile check `id` of `cert`.
fn profile(checks: &mut Checks, id: CheckId, cert: &Cert, p: &Profile) -> bool {
    checks.record(
        id,
        Category::Signature,
        cert.check_profile(p).map(|()| {
            let key = match p.key {
                KeyProfile::Rsa(bits) => format!("RSA-{bits}"),
                KeyProfile::P256 => "EC P-256".to_owned(),
                KeyProfile::P384 => "EC P-384".to_owned(),
            };
            let what = if p.ca.is_some() { "CA" } else { "end entity" };
            format!(
                "{}: X.509 v3 {what}, {key} key, signed with the pinned algorithm",
                p.role
            )
        }),
    )
}

/// A leaf certificate whose chain verified.
#[derive(Debug, Clone)]
pub struct VerifiedLeaf {
    /// The leaf.
    pub cert: Cert,
    /// VCEK or VLEK.
    pub kind: LeafKind,
    /// The product of the root it chains to.
    pub product: Product,
    /// Whether every link, validity and revocation check passed (the leaf is returned
    /// even when one failed, so that the report can still be checked against it and the
    /// verdict lists every problem; the verdict fails either way).
    pub chain_ok: bool,
}

/// Verifies the chain for a `kind`-signed report, recording every step in `checks`.
/// Returns the leaf once it is anchored in a trusted root, with whether every check of
/// the chain passed.
pub fn verify_chain(v: &Verifier<'_>, kind: LeafKind, checks: &mut Checks) -> Option<VerifiedLeaf> {
    let (supplied, roots, at, cache) = (v.supplied, v.roots, v.at, v.cache);
    let (leaf, intermediate) = match kind {
        LeafKind::Vcek => (supplied.vcek.as_ref(), supplied.ask.as_ref()),
        LeafKind::Vlek => (supplied.vlek.as_ref(), supplied.asvk.as_ref()),
    };
    let leaf_name = kind.name();
    let Some(leaf) = leaf else {
        checks.record(
            CheckId::ChainLeaf,
            Category::Collateral,
            Err(format!(
                "the report is {leaf_name}-signed but no {leaf_name} certificate was supplied"
            )),
        );
        return None;
    };
    let want_cn = format!("SEV-{leaf_name}");
    let cn = leaf.subject_cn().unwrap_or_default();
    if !checks.record(
        CheckId::ChainLeaf,
        Category::Signature,
        if cn == want_cn {
            Ok(format!("{leaf_name} certificate (CN {cn})"))
        } else {
            Err(format!(
                "the {leaf_name} certificate's subject CN is {cn:?}, not {want_cn:?}"
            ))
        },
    ) {
        return None;
    }
    // The intermediate: the supplied one, or (VCEK only) a built-in ASK with the right
    // subject.
    let builtin_ask = (kind == LeafKind::Vcek)
        .then(|| {
            roots
                .asks
                .iter()
                .map(|(_, c)| c)
                .find(|c| leaf.issued_by_name(c))
        })
        .flatten();
    let inter_name = kind.intermediate();
    let Some(inter) = intermediate.or(builtin_ask) else {
        checks.record(
            CheckId::ChainIntermediate,
            Category::Collateral,
            Err(format!(
                "no {inter_name} certificate was supplied for the {leaf_name} (issuer {:?})",
                leaf.issuer_cn().unwrap_or_default()
            )),
        );
        return None;
    };
    // The root.
    if let Some(ark) = &supplied.ark
        && !checks.record(
            CheckId::ChainSuppliedArk,
            Category::Signature,
            if roots.is_root(ark) {
                Ok("the supplied ARK is a trusted root".into())
            } else {
                Err(format!(
                    "the supplied ARK (CN {:?}, SHA-256 {}) is not a built-in AMD root or a \
                     root named with --root",
                    ark.subject_cn().unwrap_or_default(),
                    hex::encode(ark.fingerprint())
                ))
            },
        )
    {
        return None;
    }
    let Some((product, root)) = roots.root_for(inter) else {
        checks.record(
            CheckId::ChainRoot,
            Category::Signature,
            Err(format!(
                "the {inter_name} (CN {:?}) is issued by {:?}, which is not a trusted root",
                inter.subject_cn().unwrap_or_default(),
                inter.issuer_cn().unwrap_or_default()
            )),
        );
        return None;
    };
    let root_cn = root.subject_cn().unwrap_or_default();
    let mut ok = profile(checks, CheckId::ChainRootProfile, root, &ARK_PROFILE);
    ok &= profile(
        checks,
        CheckId::ChainIntermediateProfile,
        inter,
        &kind.intermediate_profile(),
    );
    ok &= profile(
        checks,
        CheckId::ChainLeafProfile,
        leaf,
        &kind.leaf_profile(),
    );
    ok &= checks.record(
        CheckId::ChainRoot,
        Category::Signature,
        cache
            .cert_signed_by(root, root)
            .map(|()| format!("{root_cn} (built-in or named root), self-signature valid"))
            .map_err(|e| format!("{root_cn}: {e}")),
    );
    ok &= checks.record(
        CheckId::ChainRootValidity,
        Category::Signature,
        root.valid_at(at)
            .map(|()| format!("{root_cn} valid at {at}"))
            .map_err(|e| format!("{root_cn}: {e}")),
    );
    ok &= link(
        v,
        checks,
        (
            CheckId::ChainIntermediate,
            CheckId::ChainIntermediateValidity,
        ),
        inter_name,
        inter,
        root,
    );
    ok &= link(
        v,
        checks,
        (CheckId::ChainLeafSignature, CheckId::ChainLeafValidity),
        leaf_name,
        leaf,
        inter,
    );
    match v.crl {
        Some(crl) => ok &= check_crl(v, checks, crl, root, inter, inter_name),
        None if v.policy.allow_unchecked_revocation => checks.skip(
            CheckId::ChainCrl,
            Category::Collateral,
            &format!(
                "no CRL given: the {inter_name}'s revocation is not checked, as the policy \
                 allows (allow_unchecked_revocation, --no-crl)"
            ),
        ),
        None => {
            ok &= checks.record(
                CheckId::ChainCrl,
                Category::Collateral,
                Err(format!(
                    "no CRL given: whether the {inter_name} is revoked cannot be decided (give \
                     --crl with AMD's CRL for the {product}, or --no-crl to accept an unchecked \
                     chain)"
                )),
            );
        }
    }
    Some(VerifiedLeaf {
        cert: leaf.clone(),
        kind,
        product: *product,
        chain_ok: ok,
    })
}

fn link(
    v: &Verifier<'_>,
    checks: &mut Checks,
    (name, validity): (CheckId, CheckId),
    what: &str,
    child: &Cert,
    issuer: &Cert,
) -> bool {
    let (cache, at) = (v.cache, v.at);
    let issuer_cn = issuer.subject_cn().unwrap_or_default();
    let signed = if child.issued_by_name(issuer) {
        cache
            .cert_signed_by(child, issuer)
            .map(|()| format!("{what} signed by {issuer_cn}"))
            .map_err(|e| format!("{what} not signed by {issuer_cn}: {e}"))
    } else {
        Err(format!(
            "{what}'s issuer {:?} is not {issuer_cn:?}",
            child.issuer_cn().unwrap_or_default()
        ))
    };
    let a = checks.record(name, Category::Signature, signed);
    let b = checks.record(
        validity,
        Category::Signature,
        child
            .valid_at(at)
            .map(|()| format!("{what} valid at {at}"))
            .map_err(|e| format!("{what}: {e}")),
    );
    a && b
}

fn check_crl(
    v: &Verifier<'_>,
    checks: &mut Checks,
    crl: &Crl,
    root: &Cert,
    inter: &Cert,
    inter_name: &str,
) -> bool {
    let (cache, at) = (v.cache, v.at);
    let signed = checks.record(
        CheckId::ChainCrlSignature,
        Category::Signature,
        cache
            .crl_signed_by(crl, root)
            .map(|()| "CRL signed by the root".to_owned())
            .map_err(|e| format!("CRL: {e}")),
    );
    let (this, next) = crl.window();
    let current = checks.record(
        CheckId::ChainCrlValidity,
        Category::Collateral,
        match next {
            _ if at < this => Err(format!(
                "CRL issued {this}, after the verification time {at}"
            )),
            None => Err(format!(
                "the CRL of {this} has no nextUpdate, so nothing says when it stops being \
                 current (RFC 5280 5.1.2.5 requires one)"
            )),
            Some(n) if at > n => Err(format!(
                "CRL stale: its next update was due {n} (verification time {at})"
            )),
            Some(n) => Ok(format!("CRL of {this} current at {at} (next update {n})")),
        },
    );
    let not_revoked = checks.record(
        CheckId::ChainCrlRevocation,
        Category::Signature,
        if crl.revokes(inter) {
            Err(format!("the {inter_name} is revoked by the CRL"))
        } else {
            Ok(format!("the {inter_name} is not revoked"))
        },
    );
    signed && current && not_revoked
}

/// The AMD VCEK/VLEK extensions (OID arc 1.3.6.1.4.1.3704.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmdExtensions {
    /// productName, e.g. "Milan-B0".
    pub product_name: Option<String>,
    /// blSPL.
    pub bl: Option<u64>,
    /// teeSPL.
    pub tee: Option<u64>,
    /// snpSPL.
    pub snp: Option<u64>,
    /// ucodeSPL.
    pub ucode: Option<u64>,
    /// fmcSPL (Turin).
    pub fmc: Option<u64>,
    /// hwID (VCEK only): 64 bytes, 8 on Turin.
    pub hw_id: Option<Vec<u8>>,
}

const fn amd_oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}
const OID_PRODUCT_NAME: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.2");
const OID_BL: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.3.1");
const OID_TEE: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.3.2");
const OID_SNP: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.3.3");
const OID_UCODE: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.3.8");
const OID_FMC: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.3.9");
const OID_HW_ID: ObjectIdentifier = amd_oid("1.3.6.1.4.1.3704.1.4");

impl AmdExtensions {
    /// The certificate's SPL for one TCB component.
    pub fn spl(&self, c: Component) -> Option<u64> {
        match c {
            Component::Fmc => self.fmc,
            Component::Bl => self.bl,
            Component::Tee => self.tee,
            Component::Snp => self.snp,
            Component::Ucode => self.ucode,
        }
    }

    /// Reads the extensions of `cert`; a malformed value is an error naming its OID.
    pub fn read(cert: &Cert) -> Result<Self, String> {
        let int = |oid: &ObjectIdentifier| -> Result<Option<u64>, String> {
            cert.extension(oid)
                .map(|v| {
                    let i = der::asn1::Uint::from_der(v)
                        .map_err(|e| format!("extension {oid}: not a DER INTEGER ({e})"))?;
                    let bytes = i.as_bytes();
                    if bytes.len() > 8 {
                        return Err(format!("extension {oid}: integer too large"));
                    }
                    Ok(bytes.iter().fold(0u64, |acc, b| {
                        acc.checked_shl(8).unwrap_or(0) | u64::from(*b)
                    }))
                })
                .transpose()
        };
        let product_name = cert
            .extension(&OID_PRODUCT_NAME)
            .map(|v| {
                der::asn1::Ia5StringRef::from_der(v)
                    .map(|s| s.as_str().to_owned())
                    .map_err(|e| format!("extension {OID_PRODUCT_NAME}: not an IA5String ({e})"))
            })
            .transpose()?;
        let hw_id = cert.extension(&OID_HW_ID).map(|v| {
            // Raw bytes as AMD's KDS issues them; some issuers wrap them in an OCTET STRING.
            match der::asn1::OctetStringRef::from_der(v) {
                Ok(inner) if v.len() != 64 && v.len() != 8 => inner.as_bytes().to_vec(),
                _ => v.to_vec(),
            }
        });
        Ok(AmdExtensions {
            product_name,
            bl: int(&OID_BL)?,
            tee: int(&OID_TEE)?,
            snp: int(&OID_SNP)?,
            ucode: int(&OID_UCODE)?,
            fmc: int(&OID_FMC)?,
            hw_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_arks_are_the_pinned_ones() {
        let roots = Roots::amd().unwrap();
        assert_eq!(roots.roots.len(), 3);
        for (product, pin) in ARK_FINGERPRINTS {
            let (_, ark) = roots.roots.iter().find(|(p, _)| *p == product).unwrap();
            assert_eq!(hex::encode(ark.fingerprint()), pin);
            assert_eq!(ark.subject_cn().unwrap(), format!("ARK-{product}"));
            ark.verify_signed_by(ark).unwrap();
        }
        for (product, ask) in &roots.asks {
            let (_, ark) = roots.roots.iter().find(|(p, _)| p == product).unwrap();
            ask.verify_signed_by(ark).unwrap();
        }
    }

    #[test]
    fn file_roles_come_from_names() {
        let ark = BUILTIN[0].1;
        let (s, ignored) =
            Supplied::from_files(&[("ARK.pem", ark), ("README", b"x".as_slice())]).unwrap();
        assert!(s.ark.is_some() && s.vcek.is_none());
        assert_eq!(ignored, ["README"]);
        assert!(Supplied::from_files(&[("vcek.der", b"junk".as_slice())]).is_err());
        // A role's file with an undocumented suffix, or two files for one role.
        let e = Supplied::from_files(&[("ark.pem.bak", ark)]).unwrap_err();
        assert!(e.to_string().contains("ark.pem.bak"), "{e}");
        let e = Supplied::from_files(&[("ark.pem", ark), ("ARK.der", ark)]).unwrap_err();
        assert!(
            e.to_string().contains("ark.pem is the ark certificate too"),
            "{e}"
        );
        assert!(
            Supplied::from_files(&[("ark", ark)])
                .unwrap()
                .0
                .ark
                .is_some()
        );
    }
}
