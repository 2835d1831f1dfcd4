//! The SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI 1.55, table 22 "ATTESTATION_REPORT
//! Structure"), versions 2 to 5, parsed from the raw 1184 bytes.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// Size of a report.
pub const REPORT_LEN: usize = 0x4a0;
/// End of the signed region (the signature covers bytes 0x000..0x2A0).
pub const SIGNED_LEN: usize = 0x2a0;
/// Report versions this parser knows the layout of.
pub const VERSIONS: std::ops::RangeInclusive<u32> = 2..=5;

/// The wire layout. Every field at its spec offset; `reserved*` must be zero.
#[derive(Debug, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawReport {
    /// 0x000 VERSION.
    pub version: U32,
    /// 0x004 GUEST_SVN.
    pub guest_svn: U32,
    /// 0x008 POLICY.
    pub policy: U64,
    /// 0x010 FAMILY_ID.
    pub family_id: [u8; 16],
    /// 0x020 IMAGE_ID.
    pub image_id: [u8; 16],
    /// 0x030 VMPL.
    pub vmpl: U32,
    /// 0x034 SIGNATURE_ALGO.
    pub signature_algo: U32,
    /// 0x038 CURRENT_TCB.
    pub current_tcb: [u8; 8],
    /// 0x040 PLATFORM_INFO.
    pub platform_info: U64,
    /// 0x048 AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1), SIGNING_KEY (bits 4:2).
    pub flags: U32,
    /// 0x04C reserved.
    pub reserved0: [u8; 4],
    /// 0x050 REPORT_DATA.
    pub report_data: [u8; 64],
    /// 0x090 MEASUREMENT.
    pub measurement: [u8; 48],
    /// 0x0C0 HOST_DATA.
    pub host_data: [u8; 32],
    /// 0x0E0 ID_KEY_DIGEST.
    pub id_key_digest: [u8; 48],
    /// 0x110 AUTHOR_KEY_DIGEST.
    pub author_key_digest: [u8; 48],
    /// 0x140 REPORT_ID.
    pub report_id: [u8; 32],
    /// 0x160 REPORT_ID_MA.
    pub report_id_ma: [u8; 32],
    /// 0x180 REPORTED_TCB.
    pub reported_tcb: [u8; 8],
    /// 0x188 CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (version 3+; reserved in 2).
    pub cpuid: [u8; 3],
    /// 0x18B reserved.
    pub reserved1: [u8; 21],
    /// 0x1A0 CHIP_ID.
    pub chip_id: [u8; 64],
    /// 0x1E0 COMMITTED_TCB.
    pub committed_tcb: [u8; 8],
    /// 0x1E8 CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR, reserved.
    pub current_version: [u8; 4],
    /// 0x1EC COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR, reserved.
    pub committed_version: [u8; 4],
    /// 0x1F0 LAUNCH_TCB.
    pub launch_tcb: [u8; 8],
    /// 0x1F8 LAUNCH_MIT_VECTOR (version 5; reserved before).
    pub launch_mit_vector: U64,
    /// 0x200 CURRENT_MIT_VECTOR (version 5; reserved before).
    pub current_mit_vector: U64,
    /// 0x208 reserved.
    pub reserved2: [u8; 0x98],
    /// 0x2A0 SIGNATURE.R, little-endian, 72 bytes.
    pub signature_r: [u8; 72],
    /// 0x2E8 SIGNATURE.S, little-endian, 72 bytes.
    pub signature_s: [u8; 72],
    /// 0x330 reserved, outside the signed region.
    pub unsigned_tail: [u8; 368],
}

const _: () = assert!(size_of::<RawReport>() == REPORT_LEN);

/// Why a report could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is not exactly one report long.
    #[error("the report is {len} bytes; an ATTESTATION_REPORT is exactly {REPORT_LEN} (0x4A0)")]
    Length {
        /// The input's length.
        len: usize,
    },
    /// A version whose layout this parser does not know.
    #[error(
        "report VERSION {version} at offset 0x0 is not supported (this verifier knows versions 2 to 5)"
    )]
    Version {
        /// The version found.
        version: u32,
    },
}

/// A field that must be zero but is not (or another structural defect that does not stop
/// the fields from being read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    /// Offset of the field.
    pub offset: usize,
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// Which key signed the report (flags bits 4:2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKey {
    /// The chip's VCEK.
    Vcek,
    /// A cloud provider's VLEK.
    Vlek,
    /// Unsigned (7).
    None,
    /// A reserved value.
    Reserved(u8),
}

/// A parsed report: the raw bytes (for the signature) and the fields.
#[derive(Debug)]
pub struct Report<'a> {
    raw: &'a [u8],
    /// The fields.
    pub fields: &'a RawReport,
    /// Must-be-zero fields that are not, and malformed signature encodings.
    pub defects: Vec<Defect>,
}

impl<'a> Report<'a> {
    /// Parses a report: exact length, known version; must-be-zero fields are recorded
    /// as [`Defect`]s (a verifier fails on them) rather than stopping the parse.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ParseError> {
        let fields =
            RawReport::ref_from_bytes(raw).map_err(|_| ParseError::Length { len: raw.len() })?;
        let version = fields.version.get();
        if !VERSIONS.contains(&version) {
            return Err(ParseError::Version { version });
        }
        let mut r = Report {
            raw,
            fields,
            defects: Vec::new(),
        };
        r.check_reserved();
        Ok(r)
    }

    /// The signed bytes, 0x000..0x2A0, exactly as given.
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.raw.get(..SIGNED_LEN).unwrap_or_default()
    }

    /// The signature as ring takes it: R || S, 48 bytes each, big-endian.
    pub fn signature_fixed(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        let (r, s) = out.split_at_mut(48);
        for (dst, src) in r
            .iter_mut()
            .zip(self.fields.signature_r.iter().take(48).rev())
        {
            *dst = *src;
        }
        for (dst, src) in s
            .iter_mut()
            .zip(self.fields.signature_s.iter().take(48).rev())
        {
            *dst = *src;
        }
        out
    }

    /// The report version.
    pub fn version(&self) -> u32 {
        self.fields.version.get()
    }

    /// The signing key named in the flags.
    pub fn signing_key(&self) -> SigningKey {
        match (self.fields.flags.get() >> 2) & 0x7 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::None,
            other => SigningKey::Reserved(u8::try_from(other).unwrap_or(u8::MAX)),
        }
    }

    /// AUTHOR_KEY_EN.
    pub fn author_key_en(&self) -> bool {
        self.fields.flags.get() & 1 != 0
    }

    /// MASK_CHIP_KEY: the platform does not use the VCEK; the firmware writes zeroes
    /// instead of a signature.
    pub fn mask_chip_key(&self) -> bool {
        self.fields.flags.get() & 2 != 0
    }

    /// CPUID family, model and stepping (version 3+).
    pub fn cpuid(&self) -> Option<[u8; 3]> {
        (self.version() >= 3).then_some(self.fields.cpuid)
    }

    fn check_reserved(&mut self) {
        let f = self.fields;
        let v = self.version();
        let mit = [
            f.launch_mit_vector.get().to_le_bytes(),
            f.current_mit_vector.get().to_le_bytes(),
        ]
        .concat();
        let after = |bytes: &'a [u8], from: usize| bytes.get(from..).unwrap_or_default();
        let mut zero = |offset: usize, field: &'static str, bytes: &[u8]| {
            if let Some(i) = bytes.iter().position(|b| *b != 0) {
                self.defects.push(Defect {
                    offset: offset.saturating_add(i),
                    field,
                    reason: "reserved, must be zero".into(),
                });
            }
        };
        zero(0x4c, "reserved after flags", &f.reserved0);
        if v < 3 {
            zero(0x188, "reserved (CPUID fields, version 2)", &f.cpuid);
        }
        zero(0x18b, "reserved after CPUID_STEP", &f.reserved1);
        zero(
            0x1eb,
            "reserved after CURRENT_MAJOR",
            after(&f.current_version, 3),
        );
        zero(
            0x1ef,
            "reserved after COMMITTED_MAJOR",
            after(&f.committed_version, 3),
        );
        if v < 5 {
            zero(0x1f8, "reserved (mitigation vectors, version < 5)", &mit);
        }
        zero(0x208, "reserved before the signature", &f.reserved2);
        zero(0x2a0 + 48, "SIGNATURE.R padding", after(&f.signature_r, 48));
        zero(0x2e8 + 48, "SIGNATURE.S padding", after(&f.signature_s, 48));
        zero(
            0x330,
            "unsigned tail (not covered by the signature)",
            &f.unsigned_tail,
        );
        let flags = f.flags.get();
        if flags >> 5 != 0 {
            self.defects.push(Defect {
                offset: 0x48,
                field: "flags",
                reason: format!("reserved bits 31:5 set ({flags:#x})"),
            });
        }
        if let SigningKey::Reserved(k) = self.signing_key() {
            self.defects.push(Defect {
                offset: 0x48,
                field: "SIGNING_KEY",
                reason: format!("reserved value {k}"),
            });
        }
        if f.signature_algo.get() != 1 {
            self.defects.push(Defect {
                offset: 0x34,
                field: "SIGNATURE_ALGO",
                reason: format!(
                    "{} is not ECDSA P-384 with SHA-384 (1), the only algorithm defined",
                    f.signature_algo.get()
                ),
            });
        }
    }
}
