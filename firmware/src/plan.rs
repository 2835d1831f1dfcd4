//! The launch plan: the ordered list of what a launch loads, and the vCPUs it starts.
//!
//! A plan is built once from the inputs; `measure` folds it into a digest and the
//! launcher's backends execute it step by step. Nothing else is measured or launched.

use crate::ovmf::{SevSectionType, TdvfSectionType};
use crate::tee::Tee;
use crate::vcpu::VcpuState;
use serde::Serialize;
use std::borrow::Cow;

/// The page every plan is made of (SEV, SNP and TDX all launch 4 KiB pages).
pub const PAGE: u64 = 4096;

/// How a range of guest memory is handed to the hardware. For SNP these are the
/// SNP_LAUNCH_UPDATE page types; SEV and SEV-ES only have [`PageKind::Normal`] data. TDX
/// uses [`PageKind::Normal`] (TDH.MEM.PAGE.ADD then TDH.MR.EXTEND, page by page), and
/// the TDX-only [`PageKind::Added`], [`PageKind::Extended`] and [`PageKind::Augmented`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// Contents loaded and measured.
    Normal,
    /// Zero pages, measured as such.
    Zero,
    /// Pages that are validated but whose contents are not measured.
    Unmeasured,
    /// The SNP secrets page (filled by the firmware).
    Secrets,
    /// The SNP CPUID page (filled by the VMM, checked by the firmware).
    Cpuid,
    /// TDX: contents loaded with TDH.MEM.PAGE.ADD only; the GPAs are measured, the
    /// contents are not.
    Added,
    /// TDX: TDH.MR.EXTEND, in 256-byte chunks, of pages an earlier [`PageKind::Added`]
    /// step loaded with the same contents (the two-pass order of QEMU 8.x).
    Extended,
    /// TDX: nothing is added at launch (PAGE_AUG); the guest accepts the memory later.
    Augmented,
}

impl PageKind {
    /// The name used in `--explain` output.
    pub fn name(self) -> &'static str {
        match self {
            PageKind::Normal => "normal",
            PageKind::Zero => "zero",
            PageKind::Unmeasured => "unmeasured",
            PageKind::Secrets => "secrets",
            PageKind::Cpuid => "cpuid",
            PageKind::Added => "added",
            PageKind::Extended => "extended",
            PageKind::Augmented => "augmented",
        }
    }

    /// The SNP page type value (SEV-SNP ABI, PAGE_INFO.PAGE_TYPE); `None` for the
    /// TDX-only kinds.
    pub fn snp_page_type(self) -> Option<u8> {
        match self {
            PageKind::Normal => Some(1),
            PageKind::Zero => Some(3),
            PageKind::Unmeasured => Some(4),
            PageKind::Secrets => Some(5),
            PageKind::Cpuid => Some(6),
            PageKind::Added | PageKind::Extended | PageKind::Augmented => None,
        }
    }
}

/// Serialized by its [`PageKind::name`].
impl Serialize for PageKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Where a step's contents come from (for `--explain` and `inspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum Origin {
    /// The firmware image.
    Firmware,
    /// A section of the firmware's SEV metadata.
    SevMetadata {
        /// Its index in the metadata table.
        index: usize,
        /// Its type.
        section: SevSectionType,
    },
    /// The kernel hashes table (QEMU's `SEV_HASH_TABLE`).
    KernelHashes,
    /// An SVSM image loaded below the firmware.
    Svsm,
    /// A section of the SVSM image's SEV metadata.
    SvsmMetadata {
        /// Its index in the metadata table.
        index: usize,
        /// Its type.
        section: SevSectionType,
    },
    /// The boot GDT (plain direct boot).
    Gdt,
    /// Identity page tables (plain direct boot).
    PageTables,
    /// The MP table describing the vCPUs (plain direct boot).
    MpTable,
    /// The ACPI tables: RSDP, XSDT, FADT, DSDT, MADT (plain direct boot).
    AcpiTables,
    /// A section of the firmware's TDVF descriptor.
    Tdvf {
        /// Its index in the descriptor.
        index: usize,
        /// Its type.
        section: TdvfSectionType,
        /// Bytes of the section the image holds (`RawSize`); the step's data may be
        /// longer, since the VMM loads the whole section from the image.
        raw_size: u32,
    },
    /// The Linux zero page, `struct boot_params`.
    BootParams,
    /// The kernel command line.
    CommandLine,
    /// The protected-mode kernel of a bzImage.
    Kernel,
    /// The initrd.
    Initrd,
}

/// A range of guest RAM the plan lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RamRange {
    /// Guest physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A named file the VMM serves to the firmware through QEMU's fw_cfg interface (some
/// of which the firmware measures before it uses them: TDVF, into the RTMRs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgFile<'a> {
    /// The fw_cfg name ("etc/acpi/tables", "etc/e820", ...).
    pub name: &'static str,
    /// The contents, exactly as served.
    pub data: Cow<'a, [u8]>,
}

/// One step of a launch: a range of guest memory and how it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a> {
    /// Guest physical address of the first byte.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
    /// How the hardware receives it.
    pub kind: PageKind,
    /// The contents, for [`PageKind::Normal`] (empty for every other kind).
    pub data: Cow<'a, [u8]>,
    /// Where it comes from.
    pub origin: Origin,
}

/// The SHA-256 digests QEMU puts in the kernel hashes table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHashes {
    /// SHA-256 of the command line with its NUL terminator.
    pub cmdline: [u8; 32],
    /// SHA-256 of the initrd (of nothing, when there is none).
    pub initrd: [u8; 32],
    /// SHA-256 of the kernel file.
    pub kernel: [u8; 32],
}

/// Everything a launch loads and starts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan<'a> {
    /// Memory, in the order it is loaded.
    pub steps: Vec<Step<'a>>,
    /// The initial register state of the first `vcpus.len()` vCPUs, BSP first (SEV-ES and
    /// SNP: every vCPU's VMSA; plain SEV: none, since its register state is neither
    /// encrypted nor measured; plain guests: the BSP only).
    pub vcpus: Vec<VcpuState>,
    /// How many vCPUs the guest has. On plain guests, those past `vcpus` wait for a
    /// start-up IPI, as on real hardware.
    pub vcpu_count: u32,
    /// Guest RAM as the plan lays it out (empty when the plan leaves it to the VMM).
    pub ram: Vec<RamRange>,
    /// What the VMM serves through QEMU's fw_cfg device (empty: no fw_cfg device).
    pub fw_cfg: crate::fwcfg::FwCfg<'a>,
    /// What only this plan's TEE has, and so which TEE the plan is for.
    pub part: TeePart,
}

/// The parts of a plan only one TEE has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeePart {
    /// AMD SEV-SNP.
    Snp(SevPart),
    /// AMD SEV-ES.
    SevEs(SevPart),
    /// AMD SEV.
    Sev(SevPart),
    /// Intel TDX.
    Tdx(TdxPart),
    /// An Arm CCA realm (its parameters come with the realm plan).
    Cca,
    /// A plain, unprotected guest.
    None,
}

/// What an AMD SEV launch carries besides its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevPart {
    /// The VMSA `SEV_FEATURES` (SNP); zero for SEV-ES and SEV.
    pub sev_features: u64,
    /// The kernel hashes, when the plan carries a kernel hashes table.
    pub kernel_hashes: Option<KernelHashes>,
}

/// What a TDX launch carries besides its pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxPart {
    /// The edk2 recipe the TDVF image measures the boot with, and how it was decided.
    pub tdvf: crate::edk2::Detected,
    /// Whether the firmware extends RTMRs as TDVF does; `false` for an image whose cvm
    /// footer entry says it extends none ([`crate::ovmf::CvmGuestFlags`]).
    pub extends_rtmrs: bool,
}

impl TeePart {
    /// The TEE.
    pub fn tee(&self) -> Tee {
        match self {
            TeePart::Snp(_) => Tee::Snp,
            TeePart::SevEs(_) => Tee::SevEs,
            TeePart::Sev(_) => Tee::Sev,
            TeePart::Tdx(_) => Tee::Tdx,
            TeePart::Cca => Tee::Cca,
            TeePart::None => Tee::None,
        }
    }
}

impl LaunchPlan<'_> {
    /// The TEE the plan is for.
    pub fn tee(&self) -> Tee {
        self.part.tee()
    }

    /// The SEV part, for an SNP, SEV-ES or SEV plan.
    pub fn sev(&self) -> Option<&SevPart> {
        match &self.part {
            TeePart::Snp(p) | TeePart::SevEs(p) | TeePart::Sev(p) => Some(p),
            _ => None,
        }
    }

    /// The SEV features of the VMSAs (zero for any plan but SNP's).
    pub fn sev_features(&self) -> u64 {
        self.sev().map_or(0, |p| p.sev_features)
    }

    /// The TDX part, for a TDX plan.
    pub fn tdx(&self) -> Option<&TdxPart> {
        match &self.part {
            TeePart::Tdx(p) => Some(p),
            _ => None,
        }
    }

    /// The kernel hashes an SEV plan carries.
    pub fn kernel_hashes(&self) -> Option<&KernelHashes> {
        self.sev().and_then(|p| p.kernel_hashes.as_ref())
    }
}
