//! Linux direct boot through the 64-bit boot protocol (Documentation/arch/x86/boot.rst,
//! "64-bit Boot Protocol"; `struct boot_params` in arch/x86/include/uapi/asm/bootparam.h).

use super::{
    CMDLINE_GPA, CMDLINE_MAX, EBDA_END, GDT_GPA, HIMEM_START, MPTABLE_GPA, PAGE, PML4_GPA,
    PlainConfig, ZERO_PAGE_GPA, acpi, gdt, long_mode_state, mptable, page_tables,
};
use crate::bytes::{Image, put, to_u64};
use crate::bzimage::BzImage;
use crate::error::{FirmwareError, Result};
use crate::plan::{Origin, PageKind, RamRange, Step};
use crate::vcpu::X86Vcpu;
use std::borrow::Cow;

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// `boot_params` offsets (bootparam.h).
const BP_ACPI_RSDP_ADDR: usize = 0x070;
const BP_EXT_RAMDISK_IMAGE: usize = 0x0c0;
const BP_EXT_RAMDISK_SIZE: usize = 0x0c4;
const BP_EXT_CMD_LINE_PTR: usize = 0x0c8;
const BP_E820_ENTRIES: usize = 0x1e8;
const BP_HDR: usize = 0x1f1;
const BP_VID_MODE: usize = 0x1fa;
const BP_TYPE_OF_LOADER: usize = 0x210;
const BP_RAMDISK_IMAGE: usize = 0x218;
const BP_RAMDISK_SIZE: usize = 0x21c;
const BP_INITRD_ADDR_MAX: u64 = 0x22c;
const BP_CMD_LINE_PTR: usize = 0x228;
const BP_E820_TABLE: usize = 0x2d0;
const E820_MAX_ENTRIES: usize = 128;
/// `xloadflags` bit 0: the kernel has a 64-bit entry point at +0x200.
const XLF_KERNEL_64: u16 = 1;

/// The most processors the MP table describes in the last KiB of base memory (its fixed
/// part, then 20 bytes per processor, between `MPTABLE_GPA` and `EBDA_END`); a larger
/// guest gets no MP table and finds its vCPUs in ACPI's MADT.
pub const MPTABLE_MAX_VCPUS: u32 = 40;

/// The direct-boot steps and the BSP's entry state.
pub(super) fn steps<'a>(
    cfg: &PlainConfig<'a>,
    ram: &[RamRange],
    kernel: &'a [u8],
    initrd: Option<&'a [u8]>,
    cmdline: &str,
) -> Result<(Vec<Step<'a>>, X86Vcpu)> {
    let img = Image::new("kernel", kernel);
    let hdr = BzImage::parse(kernel)?;
    if hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(img.invalid(
            "xloadflags",
            0x236,
            "XLF_KERNEL_64 is clear: the kernel has no 64-bit entry point",
        ));
    }
    let low_end = ram.first().map_or(0, |r| r.len);

    // The protected-mode kernel at its preferred address (at least 1 MiB).
    let load = hdr.pref_address.max(HIMEM_START);
    let body = img.bytes(
        hdr.kernel_offset,
        img.len().saturating_sub(hdr.kernel_offset),
        "protected-mode kernel",
    )?;
    let footprint = to_u64(body.len()).max(u64::from(hdr.init_size));
    let kernel_end = load
        .checked_add(footprint)
        .filter(|end| *end <= low_end)
        .ok_or_else(|| {
            FirmwareError::Unsupported(format!(
                "memory too small for the kernel: it needs {footprint:#x} bytes from {load:#x}, \
                 but RAM below the MMIO gap ends at {low_end:#x}"
            ))
        })?;

    // The command line, NUL-terminated.
    let max = u64::from(hdr.cmdline_size).min(CMDLINE_MAX.saturating_sub(1));
    if cmdline.contains('\0') || to_u64(cmdline.len()) > max {
        return Err(FirmwareError::Unsupported(format!(
            "the command line is {} bytes; this kernel accepts at most {max} (and no NUL)",
            cmdline.len()
        )));
    }
    let mut cmd = cmdline.as_bytes().to_vec();
    cmd.push(0);

    // The initrd at the top of low RAM, page-aligned, under the kernel's limit.
    let initrd_step = match initrd {
        Some(data) if !data.is_empty() => {
            let addr_max = u64::from(img.u32(BP_INITRD_ADDR_MAX, "initrd_addr_max")?);
            let top = low_end.min(addr_max.saturating_add(1));
            let len = to_u64(data.len());
            let gpa = top
                .checked_sub(len)
                .map(|a| a & !(PAGE - 1))
                .filter(|a| *a >= kernel_end)
                .ok_or_else(|| {
                    FirmwareError::Unsupported(format!(
                        "memory too small for the initrd: {len} bytes do not fit between the \
                         kernel's end {kernel_end:#x} and {top:#x}"
                    ))
                })?;
            Some(Step {
                gpa,
                len,
                kind: PageKind::Normal,
                data: Cow::Borrowed(data),
                origin: Origin::Initrd,
            })
        }
        _ => None,
    };

    let e820 = e820_map(ram);
    let boot_params = zero_page(&img, &e820, initrd_step.as_ref())?;
    // The MP table lives in the last KiB of base memory, which holds 40 processors; a
    // larger guest finds its vCPUs in ACPI's MADT alone (Linux prefers it anyway).
    let mp = if cfg.vcpus <= MPTABLE_MAX_VCPUS {
        Some(mptable::build(
            u32::try_from(MPTABLE_GPA).unwrap_or(0),
            cfg.vcpus,
        )?)
    } else {
        None
    };
    let acpi_tables = acpi::build(cfg.vcpus)?;

    let normal = |gpa: u64, data: Cow<'a, [u8]>, origin: Origin| Step {
        gpa,
        len: to_u64(data.len()),
        kind: PageKind::Normal,
        data,
        origin,
    };
    let mut steps = vec![
        normal(GDT_GPA, Cow::Owned(gdt()), Origin::Gdt),
        normal(PML4_GPA, Cow::Owned(page_tables()), Origin::PageTables),
    ];
    steps.extend(mp.map(|mp| normal(MPTABLE_GPA, Cow::Owned(mp), Origin::MpTable)));
    steps.extend([
        normal(acpi::ACPI_GPA, Cow::Owned(acpi_tables), Origin::AcpiTables),
        normal(ZERO_PAGE_GPA, Cow::Owned(boot_params), Origin::BootParams),
        normal(CMDLINE_GPA, Cow::Owned(cmd), Origin::CommandLine),
        normal(load, Cow::Borrowed(body), Origin::Kernel),
    ]);
    steps.extend(initrd_step);
    Ok((steps, long_mode_state(load.saturating_add(0x200))))
}

/// One e820 entry: address, size, type.
pub(super) type E820Entry = (u64, u64, u32);

/// The e820 map: conventional memory below the MP table, the MP table reserved, RAM from
/// 1 MiB to the MMIO gap, and RAM above 4 GiB.
pub(super) fn e820_map(ram: &[RamRange]) -> Vec<E820Entry> {
    let mut map = vec![
        (0, MPTABLE_GPA, E820_RAM),
        (MPTABLE_GPA, EBDA_END - MPTABLE_GPA, E820_RESERVED),
    ];
    for r in ram {
        let start = r.gpa.max(HIMEM_START);
        let end = r.gpa.saturating_add(r.len);
        if end > start {
            map.push((start, end.saturating_sub(start), E820_RAM));
        }
    }
    map
}

/// The zero page: the kernel's setup header copied in, then the loader's fields.
fn zero_page(img: &Image<'_>, e820: &[E820Entry], initrd: Option<&Step<'_>>) -> Result<Vec<u8>> {
    let mut bp = vec![0u8; 4096];
    // The header runs from 0x1f1 to 0x202 + the byte at 0x201 (the jump's offset).
    let hdr_end = 0x202u64.saturating_add(u64::from(img.u8(0x201, "jump")?));
    let hdr_end = hdr_end.min(to_u64(BP_E820_TABLE));
    let header = img.bytes(
        to_u64(BP_HDR),
        hdr_end.saturating_sub(to_u64(BP_HDR)),
        "setup header",
    )?;
    put(&mut bp, BP_HDR, header)?;

    put(&mut bp, BP_ACPI_RSDP_ADDR, &acpi::ACPI_GPA.to_le_bytes())?;
    put(&mut bp, BP_VID_MODE, &0xffffu16.to_le_bytes())?;
    put(&mut bp, BP_TYPE_OF_LOADER, &[0xff])?;
    let cmd_ptr = u32::try_from(CMDLINE_GPA).unwrap_or(0);
    put(&mut bp, BP_CMD_LINE_PTR, &cmd_ptr.to_le_bytes())?;
    put(&mut bp, BP_EXT_CMD_LINE_PTR, &0u32.to_le_bytes())?;
    if let Some(step) = initrd {
        let split = |v: u64| -> (u32, u32) {
            (
                u32::try_from(v & 0xffff_ffff).unwrap_or(0),
                u32::try_from(v >> 32).unwrap_or(0),
            )
        };
        let (addr_lo, addr_hi) = split(step.gpa);
        let (len_lo, len_hi) = split(step.len);
        put(&mut bp, BP_RAMDISK_IMAGE, &addr_lo.to_le_bytes())?;
        put(&mut bp, BP_RAMDISK_SIZE, &len_lo.to_le_bytes())?;
        put(&mut bp, BP_EXT_RAMDISK_IMAGE, &addr_hi.to_le_bytes())?;
        put(&mut bp, BP_EXT_RAMDISK_SIZE, &len_hi.to_le_bytes())?;
    }
    if e820.len() > E820_MAX_ENTRIES {
        return Err(FirmwareError::Unsupported("too many e820 entries".into()));
    }
    put(
        &mut bp,
        BP_E820_ENTRIES,
        &[u8::try_from(e820.len()).unwrap_or(0)],
    )?;
    let mut off = BP_E820_TABLE;
    for (addr, size, kind) in e820 {
        put(&mut bp, off, &addr.to_le_bytes())?;
        put(&mut bp, off.saturating_add(8), &size.to_le_bytes())?;
        put(&mut bp, off.saturating_add(16), &kind.to_le_bytes())?;
        off = off.saturating_add(20);
    }
    Ok(bp)
}

#[cfg(test)]
mod tests {
    use super::super::{Boot, FOUR_GIB, plan};
    use super::*;
    use crate::bytes::tests::u32_at;
    use crate::bzimage::tests::fake_bzimage;

    fn kernel() -> Vec<u8> {
        let mut k = fake_bzimage(8192);
        k[0x201] = 0x6a; // header ends at 0x26c
        k[0x236] = 1; // XLF_KERNEL_64
        k[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes());
        k[0x400] = 0xf4;
        k
    }

    #[test]
    fn zero_page_carries_the_loader_fields() {
        let k = kernel();
        let initrd = vec![7u8; 5000];
        let p = plan(&PlainConfig {
            boot: Boot::Linux {
                kernel: &k,
                initrd: Some(&initrd),
                cmdline: "console=ttyS0 quiet",
            },
            memory: 64 << 20,
            vcpus: 4,
        })
        .unwrap();
        let by = |o: Origin| p.steps.iter().find(|s| s.origin == o).unwrap();
        let bp = &by(Origin::BootParams).data;
        assert_eq!(&bp[0x202..0x206], b"HdrS");
        assert_eq!(bp[BP_TYPE_OF_LOADER], 0xff);
        assert_eq!(u64::from(u32_at(bp, BP_CMD_LINE_PTR)), CMDLINE_GPA);
        let init = by(Origin::Initrd);
        assert_eq!(init.gpa % 4096, 0);
        assert!(init.gpa + 5000 <= 64 << 20);
        assert_eq!(u64::from(u32_at(bp, BP_RAMDISK_IMAGE)), init.gpa);
        assert_eq!(u32_at(bp, BP_RAMDISK_SIZE), 5000);
        assert_eq!(bp[BP_E820_ENTRIES], 3);
        // Third e820 entry: RAM from 1 MiB to the end.
        let e = &bp[BP_E820_TABLE + 40..];
        assert_eq!(u64::from_le_bytes(e[0..8].try_into().unwrap()), HIMEM_START);
        assert_eq!(
            u64::from_le_bytes(e[8..16].try_into().unwrap()),
            (64 << 20) - HIMEM_START
        );
        assert_eq!(u32_at(e, 16), E820_RAM);
        assert_eq!(&by(Origin::CommandLine).data[..], b"console=ttyS0 quiet\0");
        let kern = by(Origin::Kernel);
        assert_eq!((kern.gpa, kern.data[0]), (HIMEM_START, 0xf4));
        let bsp = p.vcpus[0].x86().unwrap();
        assert_eq!(bsp.rip, HIMEM_START + 0x200);
        assert_eq!(bsp.rsi, ZERO_PAGE_GPA);
    }

    /// The error of a direct-boot plan that must fail.
    fn rejection(
        kernel: &[u8],
        initrd: Option<&[u8]>,
        cmdline: &str,
        memory: u64,
        vcpus: u32,
    ) -> String {
        plan(&PlainConfig {
            boot: Boot::Linux {
                kernel,
                initrd,
                cmdline,
            },
            memory,
            vcpus,
        })
        .map(|_| ())
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn sizes_are_checked() {
        let k = kernel();
        let long = "x".repeat(3000);
        assert!(rejection(&k, None, &long, 8 << 20, 1).contains("at most 2048"));
        let big = vec![0u8; 7 << 20];
        let e = rejection(&k, Some(&big), "", 8 << 20, 1);
        assert!(e.contains("memory too small for the initrd"), "{e}");
        let mut huge_init = kernel();
        huge_init[0x260..0x264].copy_from_slice(&(64u32 << 20).to_le_bytes());
        let e = rejection(&huge_init, None, "", 8 << 20, 1);
        assert!(e.contains("memory too small for the kernel"), "{e}");
        let mut k32 = kernel();
        k32[0x236] = 0;
        let e = rejection(&k32, None, "", 8 << 20, 1);
        assert!(e.contains("XLF_KERNEL_64"), "{e}");
    }

    #[test]
    fn e820_covers_high_memory() {
        let m = e820_map(&[
            RamRange {
                gpa: 0,
                len: 3 << 30,
            },
            RamRange {
                gpa: FOUR_GIB,
                len: 1 << 30,
            },
        ]);
        assert_eq!(m.len(), 4);
        assert_eq!(m[3], (FOUR_GIB, 1 << 30, E820_RAM));
    }

    #[test]
    fn vcpus_beyond_the_mp_table_are_in_the_madt_alone() {
        let k = kernel();
        let origins = |vcpus| {
            plan(&PlainConfig {
                boot: Boot::Linux {
                    kernel: &k,
                    initrd: None,
                    cmdline: "",
                },
                memory: 8 << 20,
                vcpus,
            })
            .unwrap()
            .steps
            .iter()
            .map(|s| s.origin)
            .collect::<Vec<_>>()
        };
        assert!(origins(MPTABLE_MAX_VCPUS).contains(&Origin::MpTable));
        let big = origins(MPTABLE_MAX_VCPUS + 1);
        assert!(!big.contains(&Origin::MpTable), "{big:?}");
        assert!(big.contains(&Origin::AcpiTables), "{big:?}");
        // And 40 processors fill the MP table's KiB exactly as computed.
        assert!(
            MPTABLE_GPA + mptable::size(MPTABLE_MAX_VCPUS) <= EBDA_END
                && MPTABLE_GPA + mptable::size(MPTABLE_MAX_VCPUS + 1) > EBDA_END
        );
    }
}
