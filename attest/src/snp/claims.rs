//! The decoded claims of a report, as the verdict shows them.

use super::report::{Report, SigningKey};
use super::tcb::{Product, Tcb};
use hex::encode;
use serde::Serialize;

/// The guest policy (SEV-SNP ABI 1.55 table 9), decoded.
#[derive(Debug, Clone, Serialize)]
pub struct GuestPolicy {
    /// The raw value.
    pub raw: String,
    /// ABI_MINOR.
    pub abi_minor: u8,
    /// ABI_MAJOR.
    pub abi_major: u8,
    /// SMT allowed.
    pub smt: bool,
    /// Bit 17, reserved, must be one.
    pub reserved_one: bool,
    /// Association with a migration agent allowed.
    pub migrate_ma: bool,
    /// Debugging allowed.
    pub debug: bool,
    /// Single socket only.
    pub single_socket: bool,
    /// CXL may be populated with guest memory.
    pub cxl_allow: bool,
    /// AES-256-XTS required.
    pub mem_aes_256_xts: bool,
    /// RAPL must be disabled.
    pub rapl_dis: bool,
    /// Ciphertext hiding required.
    pub ciphertext_hiding: bool,
    /// Page swap disabled.
    pub page_swap_disable: bool,
}

impl GuestPolicy {
    /// Decodes a POLICY value.
    pub fn new(p: u64) -> Self {
        let bit = |n: u32| p.checked_shr(n).unwrap_or(0) & 1 == 1;
        let [minor, major, ..] = p.to_le_bytes();
        GuestPolicy {
            raw: format!("{p:#x}"),
            abi_minor: minor,
            abi_major: major,
            smt: bit(16),
            reserved_one: bit(17),
            migrate_ma: bit(18),
            debug: bit(19),
            single_socket: bit(20),
            cxl_allow: bit(21),
            mem_aes_256_xts: bit(22),
            rapl_dis: bit(23),
            ciphertext_hiding: bit(24),
            page_swap_disable: bit(25),
        }
    }
}

/// A TCB value with its decoding (when the product, and so the layout, is known).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TcbClaim {
    /// Decoded.
    Decoded(Tcb),
    /// Raw only.
    Raw {
        /// The raw value.
        raw: String,
    },
}

impl TcbClaim {
    fn new(bytes: [u8; 8], product: Option<Product>) -> Self {
        match product {
            Some(p) => TcbClaim::Decoded(Tcb::decode(bytes, p).0),
            None => TcbClaim::Raw {
                raw: format!("{:#018x}", u64::from_le_bytes(bytes)),
            },
        }
    }

    /// The decoded TCB, if the layout is known.
    pub fn decoded(&self) -> Option<&Tcb> {
        match self {
            TcbClaim::Decoded(t) => Some(t),
            TcbClaim::Raw { .. } => None,
        }
    }
}

/// Every field of the signed part of a report, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// VERSION.
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// POLICY.
    pub policy: GuestPolicy,
    /// FAMILY_ID.
    pub family_id: String,
    /// IMAGE_ID.
    pub image_id: String,
    /// VMPL.
    pub vmpl: u32,
    /// SIGNATURE_ALGO.
    pub signature_algo: u32,
    /// CURRENT_TCB.
    pub current_tcb: TcbClaim,
    /// REPORTED_TCB (the TCB the VCEK is issued for).
    pub reported_tcb: TcbClaim,
    /// COMMITTED_TCB.
    pub committed_tcb: TcbClaim,
    /// LAUNCH_TCB.
    pub launch_tcb: TcbClaim,
    /// PLATFORM_INFO.
    pub platform_info: String,
    /// AUTHOR_KEY_EN.
    pub author_key_en: bool,
    /// MASK_CHIP_KEY.
    pub mask_chip_key: bool,
    /// SIGNING_KEY.
    pub signing_key: SigningKey,
    /// REPORT_DATA.
    pub report_data: String,
    /// MEASUREMENT.
    pub measurement: String,
    /// HOST_DATA.
    pub host_data: String,
    /// ID_KEY_DIGEST.
    pub id_key_digest: String,
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: String,
    /// REPORT_ID.
    pub report_id: String,
    /// REPORT_ID_MA.
    pub report_id_ma: String,
    /// CPUID family, model, stepping (version 3+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuid: Option<String>,
    /// CHIP_ID.
    pub chip_id: String,
    /// CURRENT_MAJOR.CURRENT_MINOR.CURRENT_BUILD.
    pub current_firmware: String,
    /// COMMITTED_MAJOR.COMMITTED_MINOR.COMMITTED_BUILD.
    pub committed_firmware: String,
    /// LAUNCH_MIT_VECTOR (version 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_mit_vector: Option<String>,
    /// CURRENT_MIT_VECTOR (version 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_mit_vector: Option<String>,
}

impl Claims {
    /// Decodes `r`'s signed fields (TCBs with `product`'s layout, when known).
    pub fn new(r: &Report<'_>, product: Option<Product>) -> Self {
        let f = r.fields;
        let version = |v: [u8; 4]| {
            let [build, minor, major, _] = v;
            format!("{major}.{minor}.{build}")
        };
        let v5 = r.version() >= 5;
        Claims {
            version: r.version(),
            guest_svn: f.guest_svn.get(),
            policy: GuestPolicy::new(f.policy.get()),
            family_id: encode(f.family_id),
            image_id: encode(f.image_id),
            vmpl: f.vmpl.get(),
            signature_algo: f.signature_algo.get(),
            current_tcb: TcbClaim::new(f.current_tcb, product),
            reported_tcb: TcbClaim::new(f.reported_tcb, product),
            committed_tcb: TcbClaim::new(f.committed_tcb, product),
            launch_tcb: TcbClaim::new(f.launch_tcb, product),
            platform_info: format!("{:#x}", f.platform_info.get()),
            author_key_en: r.author_key_en(),
            mask_chip_key: r.mask_chip_key(),
            signing_key: r.signing_key(),
            report_data: encode(f.report_data),
            measurement: encode(f.measurement),
            host_data: encode(f.host_data),
            id_key_digest: encode(f.id_key_digest),
            author_key_digest: encode(f.author_key_digest),
            report_id: encode(f.report_id),
            report_id_ma: encode(f.report_id_ma),
            cpuid: r
                .cpuid()
                .map(|[fam, model, step]| format!("{fam:02x}/{model:02x}/{step:02x}")),
            chip_id: encode(f.chip_id),
            current_firmware: version(f.current_version),
            committed_firmware: version(f.committed_version),
            launch_mit_vector: v5.then(|| format!("{:#x}", f.launch_mit_vector.get())),
            current_mit_vector: v5.then(|| format!("{:#x}", f.current_mit_vector.get())),
        }
    }
}
