//! AMD SEV, SEV-ES and SEV-SNP launch plans built from OVMF and optional direct-boot
//! inputs, as QEMU (or EC2, or GCE) performs the launch.

pub mod cpu;
pub mod hashes;
pub mod id_block;
pub mod vmsa;

use crate::bzimage::BzImage;
use crate::error::{FirmwareError, Result};
use crate::ovmf::{OvmfImage, SevSectionType};
use crate::plan::{LaunchPlan, Origin, PageKind, SevPart, Step, TeePart};
use crate::tee::Tee;
use crate::vcpu::VcpuState;
use std::borrow::Cow;
pub use vmsa::VmmType;

use crate::plan::PAGE;

/// Direct-boot inputs: the kernel, and optionally an initrd and a command line.
#[derive(Debug, Clone, Copy)]
pub struct DirectBoot<'a> {
    /// The kernel (a bzImage).
    pub kernel: &'a [u8],
    /// The initrd.
    pub initrd: Option<&'a [u8]>,
    /// The command line.
    pub cmdline: Option<&'a str>,
}

/// An SVSM launched with the firmware (SNP with QEMU only): the SVSM image ends
/// `vars_size` bytes below the firmware, every vCPU starts in the SVSM, and the SVSM's
/// own SEV metadata lays out the private pages. Every vCPU starts at the SVSM's first
/// byte.
#[derive(Debug, Clone, Copy)]
pub struct Svsm<'a> {
    /// The SVSM image (with its own footer table and SEV metadata).
    pub image: &'a OvmfImage<'a>,
    /// Size of the firmware variable store between the SVSM and the firmware.
    pub vars_size: u64,
    /// The x87 control word in the VMSAs ([`vmsa::X87_FCW_RESET`] models KVM;
    /// 0 reproduces sev-snp-measure 0.0.13).
    pub x87_fcw: u16,
}

/// What an SEV-family launch is built from.
#[derive(Debug, Clone, Copy)]
pub struct SevConfig<'a> {
    /// SNP, SEV-ES or SEV.
    pub tee: Tee,
    /// The firmware.
    pub firmware: &'a OvmfImage<'a>,
    /// Direct-boot inputs, measured through the kernel hashes table.
    pub direct_boot: Option<DirectBoot<'a>>,
    /// Number of vCPUs (at least 1).
    pub vcpus: u32,
    /// CPUID signature the VMM reports in RDX at reset.
    pub vcpu_sig: u32,
    /// Whose reset conventions to follow.
    pub vmm: VmmType,
    /// The VMSA `SEV_FEATURES` for SNP (ignored for SEV-ES and SEV, which use 0).
    pub guest_features: u64,
    /// An SVSM to launch with the firmware.
    pub svsm: Option<Svsm<'a>>,
    /// Guest RAM for a launch (`None`: the plan lays out none). Not measured.
    pub memory: Option<u64>,
}

/// What a launch of `cfg` with guest RAM `ram` serves through fw_cfg, as QEMU does for an
/// SEV guest: the memory map and vCPU count, and for a direct boot the kernel's items
/// unpatched (QEMU leaves a confidential guest's setup header alone), which are the bytes
/// the kernel hashes table covers. Nothing when the plan lays out no RAM (`cvm measure`:
/// fw_cfg is not measured).
fn served<'a>(
    cfg: &SevConfig<'a>,
    ram: &[crate::plan::RamRange],
) -> Result<crate::fwcfg::FwCfg<'a>> {
    use crate::fwcfg::FwCfg;
    let Some(low) = ram.first().map(|r| r.len) else {
        return Ok(FwCfg::default());
    };
    let base = match cfg.direct_boot {
        Some(db) => FwCfg::linux(
            db.kernel,
            db.initrd,
            db.cmdline.unwrap_or_default(),
            false,
            low,
            crate::tdx::QEMU_ACPI_DATA_SIZE,
        )?,
        None => FwCfg::default(),
    };
    base.with_e820(ram, true)
        .with_cpus(cfg.vcpus)
        .with_acpi(std::borrow::Cow::Owned(crate::x86::acpi::qemu_tables(
            cfg.vcpus,
        )?))
}

/// Builds the launch plan for `cfg`.
pub fn plan<'a>(cfg: &SevConfig<'a>) -> Result<LaunchPlan<'a>> {
    if !matches!(cfg.tee, Tee::Snp | Tee::SevEs | Tee::Sev) {
        return Err(FirmwareError::Unsupported(format!(
            "an SEV plan needs an SEV platform, not {}",
            cfg.tee.name()
        )));
    }
    if cfg.vcpus == 0 {
        return Err(FirmwareError::Unsupported(
            "at least one vCPU is needed".into(),
        ));
    }
    if let Some(svsm) = cfg.svsm {
        return svsm_plan(cfg, &svsm);
    }
    let fw = cfg.firmware;
    let kernel_hashes = match cfg.direct_boot {
        Some(db) => {
            BzImage::parse(db.kernel)?;
            Some(hashes::kernel_hashes(db.kernel, db.initrd, db.cmdline))
        }
        None => None,
    };
    let mut steps = vec![firmware_step(fw)];
    let table = kernel_hashes.as_ref().map(hashes::table);

    match cfg.tee {
        Tee::Snp => snp_metadata_steps(cfg, fw, false, table.as_ref(), &mut steps)?,
        _ => {
            if let Some(table) = table {
                let (gpa, len) = fw.sev_hashes_table()?.ok_or_else(|| {
                    FirmwareError::Unsupported(
                        "a kernel was given, but the firmware cannot measure it: it has no SEV \
                         hashes table (footer entry SEV_HASH_TABLE_RV)"
                            .into(),
                    )
                })?;
                if u64::from(len) < crate::bytes::to_u64(hashes::PADDED_LEN) {
                    return Err(FirmwareError::Unsupported(format!(
                        "the firmware's SEV hashes table area is {len} bytes, smaller than the \
                         {}-byte table",
                        hashes::PADDED_LEN
                    )));
                }
                steps.push(Step {
                    gpa: u64::from(gpa),
                    len: crate::bytes::to_u64(hashes::PADDED_LEN),
                    kind: PageKind::Normal,
                    data: Cow::Owned(table.to_vec()),
                    origin: Origin::KernelHashes,
                });
            }
        }
    }

    let vcpus = if cfg.tee == Tee::Sev {
        // Plain SEV does not encrypt or measure register state.
        Vec::new()
    } else {
        let ap_eip = fw.sev_es_reset_eip()?;
        (0..cfg.vcpus)
            .map(|i| {
                let eip = if i == 0 {
                    vmsa::BSP_EIP
                } else {
                    ap_eip.ok_or_else(|| {
                        FirmwareError::Unsupported(
                            "more than one vCPU needs the firmware's AP reset address, but it \
                             has no SEV-ES reset block"
                                .into(),
                        )
                    })?
                };
                Ok(VcpuState::X86(vmsa::reset_state(
                    cfg.vmm,
                    eip,
                    cfg.vcpu_sig,
                )))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let sev_features = if cfg.tee == Tee::Snp {
        cfg.guest_features
    } else {
        0
    };
    if cfg.tee == Tee::Snp {
        check_snp_layout(&steps)?;
    }
    let sev = SevPart {
        sev_features,
        kernel_hashes,
    };
    let ram = cfg.memory.map(crate::tdx::ram_ranges).unwrap_or_default();
    Ok(LaunchPlan {
        steps,
        vcpus,
        vcpu_count: cfg.vcpus,
        fw_cfg: served(cfg, &ram)?,
        ram,
        part: match cfg.tee {
            Tee::Snp => TeePart::Snp(sev),
            Tee::SevEs => TeePart::SevEs(sev),
            _ => TeePart::Sev(sev),
        },
    })
}

/// The firmware image, loaded whole so that it ends at 4 GiB.
fn firmware_step<'a>(fw: &OvmfImage<'a>) -> Step<'a> {
    Step {
        gpa: fw.gpa(),
        len: crate::bytes::to_u64(fw.data().len()),
        kind: PageKind::Normal,
        data: Cow::Borrowed(fw.data()),
        origin: Origin::Firmware,
    }
}

/// The SNP metadata sections, in table order (EC2 loads the CPUID pages last).
fn snp_metadata_steps<'a>(
    cfg: &SevConfig<'a>,
    fw: &OvmfImage<'_>,
    is_svsm: bool,
    table: Option<&[u8; hashes::PADDED_LEN]>,
    steps: &mut Vec<Step<'a>>,
) -> Result<()> {
    let sections = fw
        .sev_metadata()
        .map(|m| m.sections.as_slice())
        .unwrap_or(&[]);
    if table.is_some()
        && !sections
            .iter()
            .any(|s| s.kind == SevSectionType::SnpKernelHashes)
    {
        return Err(FirmwareError::Unsupported(
            "a kernel was given, but the firmware cannot measure it: its SEV metadata has no \
             SNP_KERNEL_HASHES section"
                .into(),
        ));
    }
    let mut deferred = Vec::new();
    for (index, s) in sections.iter().enumerate() {
        // A section of size zero (OVMF builds that reserve no SVSM CAA or SEC memory
        // declare them so) covers no page: it is measured as nothing, as sev-snp-measure
        // measures it (its page loops run zero times). The kernel hashes section alone
        // must hold the table when a kernel is given: that case still fails below.
        if s.size == 0 && !(s.kind == SevSectionType::SnpKernelHashes && table.is_some()) {
            continue;
        }
        let origin = if is_svsm {
            Origin::SvsmMetadata {
                index,
                section: s.kind,
            }
        } else {
            Origin::SevMetadata {
                index,
                section: s.kind,
            }
        };
        let blank = |kind| Step {
            gpa: u64::from(s.gpa),
            len: u64::from(s.size),
            kind,
            data: Cow::Borrowed(&[][..]),
            origin,
        };
        let step = match s.kind {
            SevSectionType::SnpSecMem if cfg.vmm == VmmType::Gce => blank(PageKind::Unmeasured),
            SevSectionType::SnpSecMem | SevSectionType::SvsmCaa => blank(PageKind::Zero),
            SevSectionType::SnpSecrets => blank(PageKind::Secrets),
            SevSectionType::Cpuid => blank(PageKind::Cpuid),
            SevSectionType::SnpKernelHashes => match table {
                None => blank(PageKind::Zero),
                Some(table) => hashes_page(cfg, s.gpa, s.size, table)?,
            },
            SevSectionType::Unknown(t) => {
                return Err(FirmwareError::Unsupported(format!(
                    "SEV metadata section {index} has type {t:#x}, which cvm does not know how \
                     to launch"
                )));
            }
        };
        if s.kind == SevSectionType::Cpuid && cfg.vmm == VmmType::Ec2 {
            deferred.push(step);
        } else {
            steps.push(step);
        }
    }
    steps.extend(deferred);
    Ok(())
}

/// The plan of an SNP launch with an SVSM (sev-snp-measure's `snp:svsm`): firmware
/// pages, SVSM pages, the SVSM's metadata pages, and every vCPU starting in the SVSM.
fn svsm_plan<'a>(cfg: &SevConfig<'a>, svsm: &Svsm<'a>) -> Result<LaunchPlan<'a>> {
    let unsupported = |m: &str| Err(FirmwareError::Unsupported(m.to_owned()));
    if cfg.tee != Tee::Snp {
        return unsupported("an SVSM is launched with SNP only");
    }
    if cfg.vmm != VmmType::Qemu {
        return unsupported("SVSM launches are modelled for QEMU only");
    }
    if cfg.direct_boot.is_some() {
        return unsupported("direct kernel boot is not measured with an SVSM");
    }
    let fw = cfg.firmware;
    let image = svsm.image;
    let len = crate::bytes::to_u64(image.data().len());
    let gpa = fw
        .gpa()
        .checked_sub(svsm.vars_size)
        .and_then(|end| end.checked_sub(len))
        .ok_or_else(|| {
            FirmwareError::Unsupported(format!(
                "an SVSM of {len:#x} bytes and {:#x} bytes of variables do not fit below the \
                 firmware at {:#x}",
                svsm.vars_size,
                fw.gpa()
            ))
        })?;
    // Every vCPU enters the SVSM at its first byte, in 32-bit protected mode.
    let eip = u32::try_from(gpa).map_err(|_| {
        FirmwareError::Unsupported(format!("the SVSM entry point {gpa:#x} is above 4 GiB"))
    })?;
    let mut steps = vec![
        firmware_step(fw),
        Step {
            gpa,
            len,
            kind: PageKind::Normal,
            data: Cow::Borrowed(image.data()),
            origin: Origin::Svsm,
        },
    ];
    snp_metadata_steps(cfg, image, true, None, &mut steps)?;
    check_snp_layout(&steps)?;
    let state = vmsa::svsm_state(eip, cfg.vcpu_sig, svsm.x87_fcw);
    let ram = cfg.memory.map(crate::tdx::ram_ranges).unwrap_or_default();
    Ok(LaunchPlan {
        steps,
        vcpus: (0..cfg.vcpus).map(|_| VcpuState::X86(state)).collect(),
        vcpu_count: cfg.vcpus,
        fw_cfg: served(cfg, &ram)?,
        ram,
        part: TeePart::Snp(SevPart {
            sev_features: cfg.guest_features,
            kernel_hashes: None,
        }),
    })
}

/// The one NORMAL page that carries the hashes table, at the offset the firmware's
/// footer entry names within the SNP_KERNEL_HASHES section.
fn hashes_page<'a>(
    cfg: &SevConfig<'a>,
    section_gpa: u32,
    section_size: u32,
    table: &[u8; hashes::PADDED_LEN],
) -> Result<Step<'a>> {
    let (table_gpa, _) = cfg.firmware.sev_hashes_table()?.ok_or_else(|| {
        FirmwareError::Unsupported(
            "the firmware has an SNP_KERNEL_HASHES section but no SEV hashes table location \
             (footer entry SEV_HASH_TABLE_RV)"
                .into(),
        )
    })?;
    let page_gpa = u64::from(table_gpa) & !(PAGE - 1);
    if u64::from(section_size) != PAGE || page_gpa != u64::from(section_gpa) {
        return Err(FirmwareError::Unsupported(format!(
            "the SEV hashes table at {table_gpa:#x} is not inside the one-page \
             SNP_KERNEL_HASHES section at {section_gpa:#x} (size {section_size:#x})"
        )));
    }
    let offset = usize::try_from(u64::from(table_gpa) & (PAGE - 1)).unwrap_or(usize::MAX);
    let mut page = vec![0u8; 4096];
    let dst = offset
        .checked_add(table.len())
        .and_then(|end| page.get_mut(offset..end))
        .ok_or_else(|| {
            FirmwareError::Unsupported(format!(
                "the SEV hashes table at {table_gpa:#x} does not fit in its page"
            ))
        })?;
    dst.copy_from_slice(table);
    Ok(Step {
        gpa: page_gpa,
        len: PAGE,
        kind: PageKind::Normal,
        data: Cow::Owned(page),
        origin: Origin::KernelHashes,
    })
}

/// SNP_LAUNCH_UPDATE works on whole pages, and the PSP refuses to validate a page twice.
fn check_snp_layout(steps: &[Step<'_>]) -> Result<()> {
    let mut ranges = Vec::with_capacity(steps.len());
    for s in steps {
        if s.gpa % PAGE != 0 || s.len % PAGE != 0 || s.len == 0 {
            return Err(FirmwareError::Unsupported(format!(
                "{:?} at {:#x} (+{:#x}) is not a whole number of 4 KiB pages",
                s.origin, s.gpa, s.len
            )));
        }
        let end = s.gpa.checked_add(s.len).ok_or_else(|| {
            FirmwareError::Unsupported(format!("{:?} at {:#x} wraps around", s.origin, s.gpa))
        })?;
        ranges.push((s.gpa, end, s.origin));
    }
    ranges.sort_by_key(|r| r.0);
    for w in ranges.windows(2) {
        if let [a, b] = w
            && b.0 < a.1
        {
            return Err(FirmwareError::Unsupported(format!(
                "{:?} at {:#x} overlaps {:?} at {:#x}..{:#x}",
                b.2, b.0, a.2, a.0, a.1
            )));
        }
    }
    Ok(())
}
