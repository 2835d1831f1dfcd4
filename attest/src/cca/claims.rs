//! The claims of a CCA token, decoded (Arm CCA Security Model 1.0, RMM 1.0 A7.2; the
//! draft-ffm-rats-cca-token profiles): the platform's (profile, challenge, IDs,
//! lifecycle, software components, hash algorithm) and the realm's (challenge,
//! personalization value, RIM, REMs, the RAK and the hash algorithms).

use super::token::{ClaimReader, Signed, TokenError, hash_len};
use ciborium::Value;
use serde::Serialize;

/// Bytes shown as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

/// Platform claim keys.
mod key {
    pub const PROFILE: i64 = 265;
    pub const CHALLENGE: i64 = 10;
    pub const IMPLEMENTATION_ID: i64 = 2396;
    pub const INSTANCE_ID: i64 = 256;
    pub const CONFIG: i64 = 2401;
    pub const LIFECYCLE: i64 = 2395;
    pub const SW_COMPONENTS: i64 = 2399;
    pub const VERIFICATION_SERVICE: i64 = 2400;
    pub const HASH_ALGO: i64 = 2402;
    pub const REALM_PERSONALIZATION: i64 = 44235;
    pub const REALM_HASH_ALGO: i64 = 44236;
    pub const REALM_RAK: i64 = 44237;
    pub const REALM_RIM: i64 = 44238;
    pub const REALM_REMS: i64 = 44239;
    pub const REALM_RAK_HASH_ALGO: i64 = 44240;
    pub const REALM_MEC_POLICY: i64 = 44243;
}

/// The platform profiles this verifier reads.
pub const PLATFORM_PROFILES: [&str; 2] = [
    "http://arm.com/CCA-SSD/1.0.0",
    "tag:arm.com,2023:cca_platform#1.0.0",
];

/// The realm profiles this verifier reads (a legacy realm token has no profile claim).
pub const REALM_PROFILES: [&str; 2] = [
    "tag:arm.com,2023:realm#1.0.0",
    "tag:arm.com,2024:realm#2.0.0",
];

/// The lengths a realm measurement may have (SHA-256, SHA-384, SHA-512). RMM 1.0 keeps
/// RIM and REMs in 64-byte buffers; tokens carry them at the hash's length or whole.
pub const MEASUREMENT_LENS: [usize; 3] = [32, 48, 64];

/// One measured platform software component (PSA token, claim 2399).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwComponent {
    /// Its type (1), e.g. "BL", "RMM".
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its measurement (2).
    pub measurement: Hex,
    /// Its version (4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its signer ID (5).
    pub signer_id: Hex,
    /// The measurement's hash algorithm (6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_alg: Option<String>,
}

/// The platform token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformClaims {
    /// The profile (265).
    pub profile: String,
    /// The challenge (10): the hash of the RAK claim.
    pub challenge: Hex,
    /// The implementation ID (2396, 32 bytes).
    pub implementation_id: Hex,
    /// The instance ID (256, 33 bytes: a UEID, type 0x01).
    pub instance_id: Hex,
    /// The platform configuration (2401).
    pub config: Hex,
    /// The security lifecycle (2395).
    pub lifecycle: u16,
    /// Its name (PSA Security Model: 0x3000-0x30FF secured, ...).
    pub lifecycle_name: &'static str,
    /// The software components (2399).
    pub sw_components: Vec<SwComponent>,
    /// The verification service (2400), if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_service: Option<String>,
    /// The hash algorithm (2402).
    pub hash_algo: String,
}

/// The realm token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealmClaims {
    /// The profile (265), absent in legacy tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The challenge (10, 64 bytes): what the relying party asked the realm to bind.
    pub challenge: Hex,
    /// The Realm Personalization Value (44235, 64 bytes).
    pub personalization_value: Hex,
    /// The RIM and REM hash algorithm (44236).
    pub hash_algo: String,
    /// The Realm Initial Measurement (44238).
    pub rim: Hex,
    /// The Realm Extensible Measurements (44239).
    pub rems: Vec<Hex>,
    /// The RAK claim as carried (44237): a raw point or a COSE_Key.
    pub rak: Hex,
    /// The hash algorithm of the RAK in the platform challenge (44240).
    pub rak_hash_algo: String,
    /// The realm instance ID (256, profile realm#2.0.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Hex>,
}

/// Both tokens' claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The outer form.
    pub collection: super::token::Collection,
    /// The platform token's signature algorithm.
    pub platform_alg: super::keys::Alg,
    /// The realm token's signature algorithm.
    pub realm_alg: super::keys::Alg,
    /// The platform's claims.
    pub platform: PlatformClaims,
    /// The realm's claims.
    pub realm: RealmClaims,
}

/// The PSA lifecycle's name (PSA Security Model 1.0, the major state in bits 15:8).
pub fn lifecycle_name(v: u16) -> &'static str {
    match v >> 8 {
        0x00 => "unknown",
        0x10 => "assembly-and-test",
        0x20 => "psa-rot-provisioning",
        0x30 => "secured",
        0x40 => "non-psa-rot-debug",
        0x50 => "recoverable-psa-rot-debug",
        0x60 => "decommissioned",
        _ => "invalid",
    }
}

fn sw_component(v: &Value, i: usize, r: &ClaimReader<'_>) -> Result<SwComponent, TokenError> {
    let what = format!("software component {i}");
    let Value::Map(entries) = v else {
        return Err(r.error(
            key::SW_COMPONENTS,
            "sw-components",
            format!("{what} is not a map"),
        ));
    };
    let c = ClaimReader::new(entries, "platform");
    let wrap = |e: TokenError| {
        r.error(
            key::SW_COMPONENTS,
            "sw-components",
            format!("{what}: {}", e),
        )
    };
    Ok(SwComponent {
        kind: c.opt_text(1, "type").map_err(wrap)?,
        measurement: Hex(c.bytes(2, "measurement").map_err(wrap)?),
        version: c.opt_text(4, "version").map_err(wrap)?,
        signer_id: Hex(c.bytes(5, "signer-id").map_err(wrap)?),
        hash_alg: c.opt_text(6, "hash-alg").map_err(wrap)?,
    })
}

impl PlatformClaims {
    /// Decodes the platform token's claims.
    pub fn read(t: &Signed) -> Result<Self, TokenError> {
        let r = ClaimReader::new(&t.claims, "platform");
        let profile = r.text(key::PROFILE, "profile")?;
        if !PLATFORM_PROFILES.contains(&profile.as_str()) {
            return Err(r.error(
                key::PROFILE,
                "profile",
                format!("{profile:?} is not a CCA platform profile this verifier reads"),
            ));
        }
        let lifecycle = r.uint(key::LIFECYCLE, "lifecycle")?;
        let lifecycle = u16::try_from(lifecycle)
            .map_err(|_| r.error(key::LIFECYCLE, "lifecycle", format!("{lifecycle} > 0xffff")))?;
        let instance_id = r.bytes_len(key::INSTANCE_ID, "instance-id", &[33])?;
        if instance_id.first() != Some(&0x01) {
            return Err(r.error(
                key::INSTANCE_ID,
                "instance-id",
                "not a random UEID (type byte 0x01)",
            ));
        }
        let sw_components = r
            .array(key::SW_COMPONENTS, "sw-components")?
            .iter()
            .enumerate()
            .map(|(i, v)| sw_component(v, i, &r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PlatformClaims {
            profile,
            challenge: Hex(r.bytes_len(key::CHALLENGE, "challenge", &[32, 48, 64])?),
            implementation_id: Hex(r.bytes_len(
                key::IMPLEMENTATION_ID,
                "implementation-id",
                &[32],
            )?),
            instance_id: Hex(instance_id),
            config: Hex(r.bytes(key::CONFIG, "config")?),
            lifecycle,
            lifecycle_name: lifecycle_name(lifecycle),
            sw_components,
            verification_service: r.opt_text(key::VERIFICATION_SERVICE, "verification-service")?,
            hash_algo: r.text(key::HASH_ALGO, "hash-algo-id")?,
        })
    }
}

impl RealmClaims {
    /// Decodes the realm token's claims.
    pub fn read(t: &Signed) -> Result<Self, TokenError> {
        let r = ClaimReader::new(&t.claims, "realm");
        let profile = r.opt_text(key::PROFILE, "profile")?;
        if let Some(p) = profile
            .as_ref()
            .filter(|p| !REALM_PROFILES.contains(&p.as_str()))
        {
            return Err(r.error(
                key::PROFILE,
                "profile",
                format!("{p:?} is not a CCA realm profile this verifier reads"),
            ));
        }
        let hash_algo = r.text(key::REALM_HASH_ALGO, "hash-algo-id")?;
        hash_len(&hash_algo).ok_or_else(|| {
            r.error(
                key::REALM_HASH_ALGO,
                "hash-algo-id",
                format!("{hash_algo:?}: expected sha-256 or sha-512"),
            )
        })?;
        let rak_hash_algo = r.text(key::REALM_RAK_HASH_ALGO, "rak-hash-algo-id")?;
        if hash_len(&rak_hash_algo).is_none() {
            return Err(r.error(
                key::REALM_RAK_HASH_ALGO,
                "rak-hash-algo-id",
                format!("{rak_hash_algo:?}: expected sha-256 or sha-512"),
            ));
        }
        let rems = r.array(key::REALM_REMS, "rems")?;
        if rems.len() != 4 {
            return Err(r.error(
                key::REALM_REMS,
                "rems",
                format!("{} REMs, expected 4", rems.len()),
            ));
        }
        let rems = rems
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_bytes() {
                Some(b) if MEASUREMENT_LENS.contains(&b.len()) => Ok(Hex(b.clone())),
                Some(b) => Err(r.error(
                    key::REALM_REMS,
                    "rems",
                    format!("REM {i} is {} bytes, expected 32, 48 or 64", b.len()),
                )),
                None => Err(r.error(
                    key::REALM_REMS,
                    "rems",
                    format!("REM {i} is not a byte string"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let instance_id = match r.get(key::INSTANCE_ID) {
            None => None,
            Some(_) => Some(Hex(r.bytes(key::INSTANCE_ID, "instance-id")?)),
        };
        // The MEC policy (44243, realm#2.0.0) is read as present-or-not only.
        let _ = r.get(key::REALM_MEC_POLICY);
        Ok(RealmClaims {
            profile,
            challenge: Hex(r.bytes_len(key::CHALLENGE, "challenge", &[64])?),
            personalization_value: Hex(r.bytes_len(
                key::REALM_PERSONALIZATION,
                "personalization-value",
                &[64],
            )?),
            rim: Hex(r.bytes_len(key::REALM_RIM, "rim", &MEASUREMENT_LENS)?),
            rems,
            rak: Hex(r.bytes(key::REALM_RAK, "public-key")?),
            hash_algo,
            rak_hash_algo,
            instance_id,
        })
    }
}
