//! Intel TDX: the launch plan of a TD booted from TDVF firmware.
//!
//! The plan follows the TDVF descriptor (TDVF design guide, "TDVF metadata") section by
//! section, in descriptor order, as QEMU and KVM load a TD:
//! - sections with `MR_EXTEND` are added and extended (TDH.MEM.PAGE.ADD, then
//!   TDH.MR.EXTEND of each 256-byte chunk) page by page, as Linux 6.16+
//!   `KVM_TDX_INIT_MEM_REGION` with `KVM_TDX_MEASURE_MEMORY_REGION` does ([`AddOrder::SinglePass`]),
//!   or all pages added first and then all extended, as QEMU 8.x did ([`AddOrder::TwoPass`]);
//! - other sections are added only (their GPAs are measured, their contents are not);
//! - `PAGE_AUG` sections are not added at all.
//!
//! The boot firmware volume (BFV) and configuration volume (CFV) are loaded from the image,
//! `MemoryDataSize` bytes from `DataOffset`, as QEMU does; the TD_HOB section receives the
//! TD HOB the VMM builds (a PHIT, then one resource descriptor per RAM range, accepted
//! (TD_HOB and TEMP_MEM sections) or unaccepted, in address order, then the end of the
//! list); TEMP_MEM sections are zero.
//!
//! RAM follows QEMU's q35 machine: below 4 GiB up to 2 GiB when the guest has 2.75 GiB or
//! more (the rest from 4 GiB up), otherwise up to 2.75 GiB.
//!
//! With direct boot, the kernel, initrd and command line, and the ACPI tables, are fw_cfg
//! files of the plan: TDVF measures them into RTMR 0-2 (see [`crate::measure::tdx`]).

pub mod acpi;
pub mod varstore;

use crate::bytes::{put, to_u64};
use crate::error::{FirmwareError, Result};
use crate::fwcfg::{ETC_BOOT_KERNEL, FwCfg};
use crate::ovmf::{OvmfImage, TdvfSection, TdvfSectionType};
use crate::plan::{LaunchPlan, Origin, PageKind, RamRange, Step, TdxPart, TeePart};
use std::borrow::Cow;

/// TDVF section attribute: the contents are extended into MRTD.
pub const ATTR_MR_EXTEND: u32 = 1;
/// TDVF section attribute: the pages are not added at launch (TDH.MEM.PAGE.AUG later).
pub const ATTR_PAGE_AUG: u32 = 2;
/// Bytes per TDH.MR.EXTEND.
pub const MR_EXTEND_CHUNK: u64 = 256;
pub use crate::ovmf::FOUR_GIB;
/// A TD page.
pub use crate::plan::PAGE;
/// QEMU q35: a guest with at least this much memory has 2 GiB below 4 GiB.
pub const Q35_HIGHMEM_THRESHOLD: u64 = 0xb000_0000;
/// QEMU q35: RAM below 4 GiB for guests at or above [`Q35_HIGHMEM_THRESHOLD`].
pub const Q35_LOWMEM_LARGE: u64 = 0x8000_0000;
/// The smallest TD cvm plans: the TDVF sections in RAM must fit well inside it.
pub const MIN_MEMORY: u64 = 32 << 20;
/// QEMU's `acpi_data_size` for q35 (the room the kernel patch keeps under the initrd).
pub const QEMU_ACPI_DATA_SIZE: u32 = 0x2_8000;

/// The fw_cfg names of the files TDVF measures.
pub mod fw_cfg {
    /// QEMU's ACPI table loader script.
    pub const TABLE_LOADER: &str = "etc/table-loader";
    /// The ACPI RSDP.
    pub const RSDP: &str = "etc/acpi/rsdp";
    /// The ACPI tables blob.
    pub const ACPI_TABLES: &str = "etc/acpi/tables";
    /// The kernel, as OVMF's kernel loader file system names it
    /// ([`crate::fwcfg::FwCfg::loader_blob`]).
    pub const KERNEL: &str = "kernel";
    /// The initrd.
    pub const INITRD: &str = "initrd";
    /// The command line, with its NUL.
    pub const CMDLINE: &str = "cmdline";
}

/// The order in which MR_EXTEND sections are added and extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddOrder {
    /// Each page added, then extended, then the next page (Linux 6.16+ KVM, QEMU 9+).
    #[default]
    SinglePass,
    /// All pages of a section added, then all extended (QEMU 8.x with the older KVM
    /// TDX interface).
    TwoPass,
}

/// Linux direct boot through TDVF (QEMU `-kernel`).
#[derive(Debug, Clone, Copy)]
pub struct DirectBoot<'a> {
    /// The kernel, a bzImage with an EFI stub (a PE image).
    pub kernel: &'a [u8],
    /// The initrd, if one is given (an empty file counts as given).
    pub initrd: Option<&'a [u8]>,
    /// The command line.
    pub cmdline: Option<&'a str>,
    /// Serve the kernel with QEMU's setup-header patch applied (what QEMU hands to
    /// OVMF before 2025.05 measures it; newer OVMF measures the image as built).
    pub patch_kernel: bool,
}

/// What a TDX launch plan is built from.
#[derive(Debug, Clone, Copy)]
pub struct TdxConfig<'a> {
    /// The TDVF firmware.
    pub firmware: &'a OvmfImage<'a>,
    /// Guest memory in bytes.
    pub memory: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// How MR_EXTEND sections are loaded.
    pub order: AddOrder,
    /// Direct kernel boot, if any.
    pub direct_boot: Option<DirectBoot<'a>>,
    /// QEMU's ACPI tables blob (`etc/acpi/tables`), if known.
    pub acpi_tables: Option<&'a [u8]>,
    /// The edk2 recipe the firmware measures with (`None`: read from the image,
    /// [`crate::edk2::detect`]).
    pub recipe: Option<crate::edk2::Recipe>,
}

/// Builds the TDX launch plan for `cfg`.
pub fn plan<'a>(cfg: &TdxConfig<'a>) -> Result<LaunchPlan<'a>> {
    if cfg.vcpus == 0 {
        return Err(FirmwareError::Unsupported(
            "at least one vCPU is needed".into(),
        ));
    }
    if cfg.memory < MIN_MEMORY || !cfg.memory.is_multiple_of(PAGE) {
        return Err(FirmwareError::Unsupported(format!(
            "memory size {:#x}: a TD needs a multiple of 4 KiB, at least {} MiB",
            cfg.memory,
            MIN_MEMORY >> 20
        )));
    }
    let fw = cfg.firmware;
    let desc = fw.tdvf().ok_or_else(|| {
        FirmwareError::Unsupported(
            "the firmware has no TDVF descriptor (footer entry TDX_METADATA_OFFSET): it \
             cannot boot a TD"
                .into(),
        )
    })?;
    let image = fw.data();
    let extends_rtmrs = !fw
        .cvm_guest_flags()?
        .is_some_and(crate::ovmf::CvmGuestFlags::no_rtmr_extends);
    if !extends_rtmrs && cfg.recipe.is_some() {
        return Err(FirmwareError::Unsupported(
            "an edk2 recipe was chosen, but this firmware is not TDVF: its CVM_GUEST footer \
             entry says it extends no RTMR"
                .into(),
        ));
    }
    let ram = ram_ranges(cfg.memory);
    let low_end = ram.first().map_or(0, |r| r.len);
    check_sections(&desc.sections, desc.offset, to_u64(image.len()), low_end)?;
    // Exactly one TD_HOB section (checked): it takes the HOB.
    let mut hob = Some(td_hob(&desc.sections, &ram)?);

    let mut steps = Vec::new();
    for (index, s) in desc.sections.iter().enumerate() {
        let origin = Origin::Tdvf {
            index,
            section: s.kind,
            raw_size: s.raw_size,
        };
        let data: Cow<'a, [u8]> = match s.kind {
            TdvfSectionType::Bfv | TdvfSectionType::Cfv => {
                Cow::Borrowed(section_bytes(image, s).unwrap_or_default())
            }
            TdvfSectionType::TdHob => Cow::Owned(hob.take().unwrap_or_default()),
            _ => Cow::Borrowed(&[]),
        };
        let step = |kind, data| Step {
            gpa: s.mem_address,
            len: s.mem_size,
            kind,
            data,
            origin,
        };
        if s.attributes & ATTR_PAGE_AUG != 0 {
            steps.push(step(PageKind::Augmented, Cow::Borrowed(&[])));
        } else if s.attributes & ATTR_MR_EXTEND == 0 {
            steps.push(step(PageKind::Added, data));
        } else if cfg.order == AddOrder::TwoPass {
            steps.push(step(PageKind::Added, data.clone()));
            steps.push(step(PageKind::Extended, data));
        } else {
            steps.push(step(PageKind::Normal, data));
        }
    }

    // What QEMU serves through fw_cfg (../shared/FWCFG.md 1.2): the kernel's items, as
    // `x86_load_linux` makes them, the memory map and vCPU count, and the ACPI files.
    let mut served = match cfg.direct_boot {
        Some(db) => {
            let items = FwCfg::linux(
                db.kernel,
                db.initrd,
                db.cmdline.unwrap_or_default(),
                db.patch_kernel,
                low_end,
                QEMU_ACPI_DATA_SIZE,
            )?;
            // The QEMU releases that patch a TD's setup header (`!sev_enabled()`) predate
            // `etc/boot/kernel` (QEMU 9.2); those that serve it leave the header alone.
            let items = if db.patch_kernel {
                items.without_file(ETC_BOOT_KERNEL)
            } else {
                items
            };
            // TDVF starts the kernel as an EFI application: refuse one it cannot measure.
            if let Some(kernel) = items.loader_blob(fw_cfg::KERNEL) {
                crate::pe::authenticode_layout(&kernel, "kernel")?;
            }
            items
        }
        None => FwCfg::default(),
    };
    if let Some(tables) = cfg.acpi_tables {
        served = served.with_acpi(Cow::Borrowed(tables))?;
    }

    Ok(LaunchPlan {
        steps,
        // The TDX module sets the initial vCPU state; it is neither chosen nor measured.
        vcpus: Vec::new(),
        vcpu_count: cfg.vcpus,
        fw_cfg: served.with_e820(&ram, false).with_cpus(cfg.vcpus),
        ram,
        part: TeePart::Tdx(TdxPart {
            tdvf: match (extends_rtmrs, cfg.recipe) {
                (false, _) => crate::edk2::Detected::none(),
                (true, Some(r)) => crate::edk2::Detected::chosen(r),
                (true, None) => crate::edk2::detect(image),
            },
            extends_rtmrs,
        }),
    })
}

/// The bytes QEMU loads for a BFV or CFV section: `MemoryDataSize` bytes from
/// `DataOffset` (checked by [`check_sections`]).
fn section_bytes<'a>(image: &'a [u8], s: &TdvfSection) -> Option<&'a [u8]> {
    let start = usize::try_from(s.data_offset).ok()?;
    let end = start.checked_add(usize::try_from(s.mem_size).ok()?)?;
    image.get(start..end)
}

/// RAM as QEMU's q35 machine lays it out.
pub fn ram_ranges(memory: u64) -> Vec<RamRange> {
    let lowmem = if memory >= Q35_HIGHMEM_THRESHOLD {
        Q35_LOWMEM_LARGE
    } else {
        Q35_HIGHMEM_THRESHOLD
    };
    let low = memory.min(lowmem);
    let mut ram = vec![RamRange { gpa: 0, len: low }];
    let high = memory.saturating_sub(low);
    if high > 0 {
        ram.push(RamRange {
            gpa: FOUR_GIB,
            len: high,
        });
    }
    ram
}

/// Checks the TDVF sections against the TDVF design guide and what QEMU accepts.
fn check_sections(
    sections: &[TdvfSection],
    desc_offset: u64,
    image_len: u64,
    low_ram_end: u64,
) -> Result<()> {
    let entry_offset = |i: usize| {
        desc_offset
            .saturating_add(16)
            .saturating_add(to_u64(i).saturating_mul(32))
    };
    let bad = |i: usize, reason: String| FirmwareError::Invalid {
        image: "firmware",
        field: "TDVF section",
        offset: entry_offset(i),
        reason: format!("section {i}: {reason}"),
    };
    for (i, s) in sections.iter().enumerate() {
        let end = s.mem_address.saturating_add(s.mem_size);
        if !s.mem_address.is_multiple_of(PAGE) || !s.mem_size.is_multiple_of(PAGE) {
            return Err(bad(
                i,
                format!(
                    "MemoryAddress {:#x} and MemoryDataSize {:#x} must be 4 KiB aligned",
                    s.mem_address, s.mem_size
                ),
            ));
        }
        if s.mem_size == 0 {
            return Err(bad(i, "MemoryDataSize is zero".into()));
        }
        if u64::from(s.raw_size) > s.mem_size {
            return Err(bad(
                i,
                format!(
                    "RawSize {:#x} exceeds MemoryDataSize {:#x}",
                    s.raw_size, s.mem_size
                ),
            ));
        }
        if s.attributes & !(ATTR_MR_EXTEND | ATTR_PAGE_AUG) != 0
            || s.attributes == ATTR_MR_EXTEND | ATTR_PAGE_AUG
        {
            return Err(bad(
                i,
                format!(
                    "attributes {:#x}: only MR_EXTEND (1) or PAGE_AUG (2) are defined, not both",
                    s.attributes
                ),
            ));
        }
        match s.kind {
            TdvfSectionType::Bfv | TdvfSectionType::Cfv => {
                let data_end = u64::from(s.data_offset).saturating_add(s.mem_size);
                if data_end > image_len {
                    return Err(bad(
                        i,
                        format!(
                            "{:?} data {:#x}..{data_end:#x} lies outside the {image_len:#x}-byte image",
                            s.kind, s.data_offset
                        ),
                    ));
                }
                if end > FOUR_GIB {
                    return Err(bad(i, format!("{:?} ends above 4 GiB", s.kind)));
                }
            }
            TdvfSectionType::TdHob | TdvfSectionType::TempMem => {
                if s.raw_size != 0 {
                    return Err(bad(i, format!("{:?} must have no data", s.kind)));
                }
                if s.attributes & ATTR_PAGE_AUG != 0 {
                    return Err(bad(i, format!("{:?} cannot be PAGE_AUG", s.kind)));
                }
                if end > low_ram_end {
                    return Err(FirmwareError::Unsupported(format!(
                        "TDVF section {i} ({:?}, {:#x}..{end:#x}) lies outside the guest's \
                         RAM below 4 GiB ({low_ram_end:#x} bytes): give the TD more memory",
                        s.kind, s.mem_address
                    )));
                }
            }
            other => {
                return Err(FirmwareError::Unsupported(format!(
                    "TDVF section {i} has type {other:?}; cvm plans TDVF firmware (BFV, CFV, \
                     TD_HOB, TEMP_MEM sections), not payload or permanent-memory sections"
                )));
            }
        }
        for (j, t) in sections.iter().enumerate().take(i) {
            let t_end = t.mem_address.saturating_add(t.mem_size);
            if s.mem_address < t_end && t.mem_address < end {
                return Err(bad(
                    i,
                    format!(
                        "{:#x}..{end:#x} overlaps section {j} ({:#x}..{t_end:#x})",
                        s.mem_address, t.mem_address
                    ),
                ));
            }
        }
    }
    let count = |kind| sections.iter().filter(|s| s.kind == kind).count();
    let (bfv, cfv, hobs) = (
        count(TdvfSectionType::Bfv),
        count(TdvfSectionType::Cfv),
        count(TdvfSectionType::TdHob),
    );
    if bfv != 1 {
        return Err(bad(
            0,
            format!("{bfv} BFV sections; exactly one is required"),
        ));
    }
    if cfv > 1 {
        return Err(bad(
            0,
            format!("{cfv} CFV sections; at most one is allowed"),
        ));
    }
    if hobs != 1 {
        return Err(bad(
            0,
            format!("{hobs} TD_HOB sections; exactly one is required"),
        ));
    }
    Ok(())
}

/// HOB types (UEFI PI spec vol. 3).
const HOB_HANDOFF: u16 = 1;
const HOB_RESOURCE_DESCRIPTOR: u16 = 3;
const HOB_END_OF_LIST: u16 = 0xffff;
const PHIT_LEN: u16 = 56;
const RESOURCE_LEN: u16 = 48;
const END_LEN: u16 = 8;
const RESOURCE_BYTES: usize = 48;
/// EFI_HOB_HANDOFF_TABLE_VERSION.
const PHIT_VERSION: u32 = 9;
/// EFI_RESOURCE_SYSTEM_MEMORY.
const RESOURCE_SYSTEM_MEMORY: u32 = 0;
/// EFI_RESOURCE_MEMORY_UNACCEPTED.
const RESOURCE_UNACCEPTED: u32 = 7;
/// PRESENT | INITIALIZED | TESTED.
const RESOURCE_ATTRIBUTES: u32 = 7;

/// Length of the end-of-list HOB that closes every HOB list.
pub const HOB_END_LEN: usize = 8;

/// Builds the TD HOB the VMM writes into the TD_HOB section: a PHIT, a resource descriptor per RAM range (accepted ranges for
/// the TD_HOB and TEMP_MEM sections, the rest unaccepted), and the end of the list.
fn td_hob(sections: &[TdvfSection], ram: &[RamRange]) -> Result<Vec<u8>> {
    let hob_section = sections
        .iter()
        .find(|s| s.kind == TdvfSectionType::TdHob)
        .ok_or_else(|| FirmwareError::Unsupported("no TD_HOB section".into()))?;
    let mut accepted: Vec<(u64, u64)> = sections
        .iter()
        .filter(|s| matches!(s.kind, TdvfSectionType::TdHob | TdvfSectionType::TempMem))
        .map(|s| (s.mem_address, s.mem_address.saturating_add(s.mem_size)))
        .collect();
    accepted.sort_unstable();
    let mut resources = Vec::new();
    for r in ram {
        let mut at = r.gpa;
        let end = r.gpa.saturating_add(r.len);
        for &(a, b) in accepted.iter().filter(|(a, _)| *a >= r.gpa && *a < end) {
            if a > at {
                resources.push((RESOURCE_UNACCEPTED, at, a));
            }
            resources.push((RESOURCE_SYSTEM_MEMORY, a, b));
            at = b;
        }
        if end > at {
            resources.push((RESOURCE_UNACCEPTED, at, end));
        }
    }
    let mut bytes = vec![0u8; usize::from(PHIT_LEN)];
    put(&mut bytes, 0, &HOB_HANDOFF.to_le_bytes())?;
    put(&mut bytes, 2, &PHIT_LEN.to_le_bytes())?;
    put(&mut bytes, 8, &PHIT_VERSION.to_le_bytes())?;
    for (ty, start, end) in resources {
        let mut r = [0u8; RESOURCE_BYTES];
        put(&mut r, 0, &HOB_RESOURCE_DESCRIPTOR.to_le_bytes())?;
        put(&mut r, 2, &RESOURCE_LEN.to_le_bytes())?;
        put(&mut r, 24, &ty.to_le_bytes())?;
        put(&mut r, 28, &RESOURCE_ATTRIBUTES.to_le_bytes())?;
        put(&mut r, 32, &start.to_le_bytes())?;
        put(&mut r, 40, &end.saturating_sub(start).to_le_bytes())?;
        bytes.extend_from_slice(&r);
    }
    let mut end = [0u8; HOB_END_LEN];
    put(&mut end, 0, &HOB_END_OF_LIST.to_le_bytes())?;
    put(&mut end, 2, &END_LEN.to_le_bytes())?;
    bytes.extend_from_slice(&end);
    let total = to_u64(bytes.len());
    if total > hob_section.mem_size {
        return Err(FirmwareError::Unsupported(format!(
            "the TD HOB ({total} bytes) does not fit its {:#x}-byte TD_HOB section",
            hob_section.mem_size
        )));
    }
    // PHIT.EfiEndOfHobList: the first byte past the end-of-list HOB.
    let end_of_list = hob_section.mem_address.saturating_add(total);
    put(&mut bytes, 48, &end_of_list.to_le_bytes())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
