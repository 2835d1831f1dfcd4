//! Plans for plain (unprotected) x86-64 KVM guests: the `none` backend's launches.
//!
//! Two boot paths, both ordinary [`LaunchPlan`]s: firmware boot (an image mapped so that
//! it ends at 4 GiB, the bootstrap processor at the reset vector) and Linux direct boot
//! (the 64-bit boot protocol: zero page with the e820 map, command line, initrd, identity
//! page tables, a flat GDT, and an MP table and ACPI tables describing the vCPUs and the
//! I/O APIC).
//!
//! Guest physical layout below 1 MiB for direct boot (the numbers are the constants below):
//!
//! | range | contents |
//! |---|---|
//! | `0x0500-0x0527` | GDT: null, null, code64 `0x10`, data `0x18`, TSS `0x20` |
//! | `0x1000-0x6fff` | free for the guest (AP start-up trampolines) |
//! | `0x7000-0x7fff` | the zero page (`boot_params`), RSI on entry |
//! | `0x8ff0` | initial stack pointer |
//! | `0x9000-0xefff` | page tables: PML4, PDPT, four PDs identity-mapping 4 GiB with 2 MiB pages |
//! | `0x20000-0x2ffff` | the command line |
//! | `0x9fc00-0x9ffff` | the MP table (reserved in the e820 map) |
//! | `0xe0000-` | ACPI tables: RSDP, XSDT, FADT, DSDT, MADT (in the BIOS area, not RAM in e820) |
//!
//! RAM is `[0, min(size, 3 GiB))` and, for larger guests, the rest from 4 GiB up; the gap
//! `3 GiB-4 GiB` holds the I/O APIC, the local APIC, KVM's real-mode TSS and identity-map
//! pages (`0xfeffc000-0xfeffffff`) and the firmware (at most 16 MiB, ending at 4 GiB).

pub mod acpi;
mod linux;
pub use linux::MPTABLE_MAX_VCPUS;
pub mod mptable;

pub use linux::E820_RAM;
pub use linux::E820_RESERVED;

use crate::error::{FirmwareError, Result};
use crate::fwcfg::FwCfg;
use crate::plan::{LaunchPlan, Origin, PageKind, RamRange, Step, TeePart};
use crate::vcpu::{Segment, VcpuState, X86Vcpu};
use std::borrow::Cow;

/// The GDT of direct boot.
pub const GDT_GPA: u64 = 0x500;
/// Start of the range left to the guest below the zero page.
pub const GUEST_FREE_START: u64 = 0x1000;
/// The zero page (`struct boot_params`).
pub const ZERO_PAGE_GPA: u64 = 0x7000;
/// The initial stack pointer of direct boot.
pub const BOOT_STACK: u64 = 0x8ff0;
/// The PML4 of the identity page tables.
pub const PML4_GPA: u64 = 0x9000;
/// The command line.
pub const CMDLINE_GPA: u64 = 0x2_0000;
/// Room for the command line, with its NUL.
pub const CMDLINE_MAX: u64 = 0x1_0000;
/// The MP table (the first KiB of the EBDA, where Linux looks for it).
pub const MPTABLE_GPA: u64 = 0x9_fc00;
/// End of conventional memory.
pub const EBDA_END: u64 = 0xa_0000;
/// Where the kernel goes unless it prefers a higher address.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the MMIO gap below 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// 4 GiB: where the firmware ends, and where RAM above the gap starts.
pub use crate::ovmf::FOUR_GIB;
/// The lowest address firmware may occupy: at most 16 MiB end at 4 GiB (as with QEMU's
/// flash), above the local APIC and the pages KVM needs for its real-mode TSS.
pub const FIRMWARE_LOWEST: u64 = 0xff00_0000;
/// The smallest guest cvm lays out.
pub const MIN_MEMORY: u64 = 2 << 20;
/// COM1, the 16550 the VMM emulates and the DSDT declares: its first port.
pub const COM1_PORT: u16 = 0x3f8;
/// COM1's ISA interrupt (I/O APIC pin 4).
pub const COM1_IRQ: u32 = 4;

/// Where the BSP starts after reset.
const RESET_VECTOR: u32 = 0xffff_fff0;
use crate::plan::PAGE;
const PDPT_GPA: u64 = 0xa000;
const PD_GPA: u64 = 0xb000;
/// Segment selectors of the boot GDT (the Linux boot protocol's `__BOOT_CS`/`__BOOT_DS`).
const BOOT_CS: u16 = 0x10;
const BOOT_DS: u16 = 0x18;
const BOOT_TSS: u16 = 0x20;

/// How a plain guest boots.
#[derive(Debug, Clone, Copy)]
pub enum Boot<'a> {
    /// An OVMF-style image, mapped so that it ends at 4 GiB; the BSP starts at the reset
    /// vector `0xfffffff0` in real mode.
    Firmware(&'a [u8]),
    /// Firmware as for [`Boot::Firmware`] that boots a kernel it reads through fw_cfg
    /// (QEMU's `-bios F -kernel K`): the kernel's items are served as QEMU serves them to
    /// a guest that is not confidential, setup header patched.
    FirmwareKernel {
        /// The firmware image.
        firmware: &'a [u8],
        /// The kernel file.
        kernel: &'a [u8],
        /// The initrd, if any.
        initrd: Option<&'a [u8]>,
        /// The command line (without NUL).
        cmdline: &'a str,
    },
    /// A bzImage through the 64-bit Linux boot protocol.
    Linux {
        /// The bzImage file.
        kernel: &'a [u8],
        /// The initrd, if any.
        initrd: Option<&'a [u8]>,
        /// The command line (without NUL).
        cmdline: &'a str,
    },
}

/// What a plain guest is launched with.
#[derive(Debug, Clone, Copy)]
pub struct PlainConfig<'a> {
    /// The boot path.
    pub boot: Boot<'a>,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
}

/// Builds the plan of a plain guest. vCPU 0 starts in the plan's register state; the
/// others wait for a start-up IPI, as on real hardware.
pub fn plan<'a>(cfg: &PlainConfig<'a>) -> Result<LaunchPlan<'a>> {
    if cfg.vcpus == 0 {
        return Err(FirmwareError::Unsupported(
            "at least one vCPU is needed".into(),
        ));
    }
    if cfg.memory < MIN_MEMORY {
        return Err(FirmwareError::Unsupported(format!(
            "{} bytes of memory is too small: at least {} MiB is needed",
            cfg.memory,
            MIN_MEMORY >> 20
        )));
    }
    if !cfg.memory.is_multiple_of(PAGE) {
        return Err(FirmwareError::Unsupported(format!(
            "memory size {} is not a multiple of 4 KiB",
            cfg.memory
        )));
    }
    let ram = ram_ranges(cfg.memory);
    let below_4g = ram.first().map_or(0, |r| r.len);
    // QEMU serves the memory map and vCPU count for every boot, and the kernel's items
    // for a direct boot, setup header patched (not a confidential guest).
    let (steps, bsp, fw_cfg) = match cfg.boot {
        Boot::Firmware(image) => (
            vec![firmware_step(image)?],
            X86Vcpu::reset(RESET_VECTOR),
            FwCfg::default(),
        ),
        Boot::FirmwareKernel {
            firmware,
            kernel,
            initrd,
            cmdline,
        } => (
            vec![firmware_step(firmware)?],
            X86Vcpu::reset(RESET_VECTOR),
            FwCfg::linux(
                kernel,
                initrd,
                cmdline,
                true,
                below_4g,
                crate::tdx::QEMU_ACPI_DATA_SIZE,
            )?,
        ),
        Boot::Linux {
            kernel,
            initrd,
            cmdline,
        } => {
            let (steps, bsp) = linux::steps(cfg, &ram, kernel, initrd, cmdline)?;
            let items = FwCfg::linux(
                kernel,
                initrd,
                cmdline,
                true,
                below_4g,
                crate::tdx::QEMU_ACPI_DATA_SIZE,
            )?;
            (steps, bsp, items)
        }
    };
    Ok(LaunchPlan {
        steps,
        vcpus: vec![VcpuState::X86(bsp)],
        vcpu_count: cfg.vcpus,
        fw_cfg: fw_cfg
            .with_e820(&ram, true)
            .with_cpus(cfg.vcpus)
            .with_acpi(std::borrow::Cow::Owned(acpi::qemu_tables(cfg.vcpus)?))?,
        ram,
        part: TeePart::None,
    })
}

/// RAM below the MMIO gap and, for guests larger than the gap's start, above 4 GiB.
fn ram_ranges(memory: u64) -> Vec<RamRange> {
    let low = memory.min(MMIO_GAP_START);
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

/// The firmware, ending at 4 GiB.
fn firmware_step(image: &[u8]) -> Result<Step<'_>> {
    let len = crate::bytes::to_u64(image.len());
    let room = FOUR_GIB.saturating_sub(FIRMWARE_LOWEST);
    if len == 0 || !len.is_multiple_of(PAGE) {
        return Err(FirmwareError::Invalid {
            image: "firmware",
            field: "size",
            offset: 0,
            reason: format!("{len} bytes is not a non-zero multiple of 4 KiB"),
        });
    }
    if len > room {
        return Err(FirmwareError::Invalid {
            image: "firmware",
            field: "size",
            offset: 0,
            reason: format!(
                "{len} bytes does not fit below 4 GiB: at most {room} bytes (16 MiB) may end there"
            ),
        });
    }
    Ok(Step {
        gpa: FOUR_GIB.saturating_sub(len),
        len,
        kind: PageKind::Normal,
        data: Cow::Borrowed(image),
        origin: Origin::Firmware,
    })
}

/// 64-bit mode with the boot GDT's flat segments and the identity page tables.
fn long_mode_state(rip: u64) -> X86Vcpu {
    // Attributes: code = type 0xb, S, P, L, G; data = type 0x3, S, P, D/B, G;
    // TSS = busy 64-bit TSS, P.
    let data = Segment::new(BOOT_DS, 0xc93, 0xffff_ffff, 0);
    X86Vcpu {
        es: data,
        cs: Segment::new(BOOT_CS, 0xa9b, 0xffff_ffff, 0),
        ss: data,
        ds: data,
        fs: data,
        gs: data,
        gdtr: Segment::new(0, 0, GDT_LIMIT, GDT_GPA),
        ldtr: Segment::new(0, 0, 0, 0),
        idtr: Segment::new(0, 0, 0, 0),
        tr: Segment::new(BOOT_TSS, 0x8b, 0x67, 0),
        efer: 0x500,      // LME, LMA
        cr0: 0x8000_0033, // PG, NE, ET, MP, PE
        cr3: PML4_GPA,
        cr4: 0x20, // PAE
        dr6: 0xffff_0ff0,
        dr7: 0x400,
        rflags: 0x2,
        rip,
        rsp: BOOT_STACK,
        rsi: ZERO_PAGE_GPA,
        g_pat: 0x0007_0406_0007_0406,
        xcr0: 0x1,
        mxcsr: 0x1f80,
        x87_fcw: 0x37f,
        ..X86Vcpu::default()
    }
}

/// GDTR limit of the five-descriptor boot GDT.
const GDT_LIMIT: u32 = 5 * 8 - 1;

/// The boot GDT in its in-memory form.
fn gdt() -> Vec<u8> {
    [
        0u64,
        0,
        0x00af_9b00_0000_ffff, // 0x10: 64-bit code, flat
        0x00cf_9300_0000_ffff, // 0x18: data, flat
        0x0000_8b00_0000_0067, // 0x20: busy 64-bit TSS at 0 (never used for switches)
    ]
    .iter()
    .flat_map(|d| d.to_le_bytes())
    .collect()
}

/// Identity page tables for the first 4 GiB: PML4 -> PDPT -> four PDs of 2 MiB pages.
fn page_tables() -> Vec<u8> {
    let present_rw = 0x3u64;
    let mut t = Vec::with_capacity(6 * 4096);
    let mut table = |entries: &mut dyn Iterator<Item = u64>| {
        let mut page = [0u8; 4096];
        for (slot, e) in page.chunks_exact_mut(8).zip(entries) {
            slot.copy_from_slice(&e.to_le_bytes());
        }
        t.extend_from_slice(&page);
    };
    table(&mut std::iter::once(PDPT_GPA | present_rw));
    table(&mut (0..4u64).map(|i| PD_GPA.saturating_add(i.saturating_mul(PAGE)) | present_rw));
    for pd in 0..4u64 {
        // 2 MiB pages (PS) covering GiB `pd`.
        table(&mut (0..512u64).map(move |i| ((pd << 30) | (i << 21)) | present_rw | 0x80));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bzimage::tests::fake_bzimage;

    fn linux(kernel: &[u8], memory: u64) -> Result<LaunchPlan<'_>> {
        plan(&PlainConfig {
            boot: Boot::Linux {
                kernel,
                initrd: None,
                cmdline: "console=ttyS0",
            },
            memory,
            vcpus: 2,
        })
    }

    #[test]
    fn firmware_with_a_kernel_serves_it_as_qemu_does() {
        let fw = vec![0x90u8; 64 << 10];
        let k = fake_bzimage(64 << 10);
        let p = plan(&PlainConfig {
            boot: Boot::FirmwareKernel {
                firmware: &fw,
                kernel: &k,
                initrd: Some(b"rd"),
                cmdline: "quiet",
            },
            memory: 64 << 20,
            vcpus: 1,
        })
        .unwrap();
        // The firmware is the only step, and the BSP starts at its reset vector.
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].gpa + p.steps[0].len, FOUR_GIB);
        assert_eq!(p.vcpus, vec![VcpuState::X86(X86Vcpu::reset(RESET_VECTOR))]);
        // Not a confidential guest: QEMU patches the setup header (type_of_loader 0xb0).
        let setup = p.fw_cfg.item(crate::fwcfg::key::SETUP_DATA).unwrap();
        assert_eq!(setup[0x210], 0xb0);
        assert_eq!(
            p.fw_cfg.item(crate::fwcfg::key::INITRD_DATA).unwrap(),
            b"rd"
        );
        assert_eq!(
            p.fw_cfg.item(crate::fwcfg::key::CMDLINE_DATA).unwrap(),
            b"quiet\0"
        );
        assert_eq!(
            p.fw_cfg.file(crate::fwcfg::ETC_BOOT_KERNEL).unwrap(),
            &k[..]
        );
        assert!(p.fw_cfg.file("etc/e820").is_some());
    }

    #[test]
    fn firmware_ends_at_4gib_and_bsp_starts_at_the_reset_vector() {
        let fw = vec![0x90u8; 64 << 10];
        let p = plan(&PlainConfig {
            boot: Boot::Firmware(&fw),
            memory: 64 << 20,
            vcpus: 3,
        })
        .unwrap();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].gpa + p.steps[0].len, FOUR_GIB);
        assert_eq!(p.vcpus.len(), 1);
        assert_eq!(p.vcpu_count, 3);
        let bsp = *p.vcpus[0].x86().unwrap();
        assert_eq!(bsp.cs.base + bsp.rip, 0xffff_fff0);
        assert_eq!(
            p.ram,
            vec![RamRange {
                gpa: 0,
                len: 64 << 20
            }]
        );
    }

    #[test]
    fn firmware_size_is_checked() {
        for len in [0usize, 100, 20 << 20] {
            let fw = vec![0u8; len];
            let err = plan(&PlainConfig {
                boot: Boot::Firmware(&fw),
                memory: 64 << 20,
                vcpus: 1,
            })
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("firmware: size"), "{err}");
        }
    }

    #[test]
    fn memory_above_the_gap_moves_to_4gib() {
        let fw = vec![0u8; 4096];
        let p = plan(&PlainConfig {
            boot: Boot::Firmware(&fw),
            memory: 4 << 30,
            vcpus: 1,
        })
        .unwrap();
        assert_eq!(
            p.ram,
            vec![
                RamRange {
                    gpa: 0,
                    len: 3 << 30
                },
                RamRange {
                    gpa: 4 << 30,
                    len: 1 << 30
                }
            ]
        );
    }

    #[test]
    fn bad_sizes_are_rejected() {
        let k = fake_bzimage(8192);
        assert!(
            linux(&k, 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("too small")
        );
        assert!(
            linux(&k, (8 << 20) + 1)
                .unwrap_err()
                .to_string()
                .contains("4 KiB")
        );
        let e = plan(&PlainConfig {
            boot: Boot::Firmware(&k),
            memory: 8 << 20,
            vcpus: 0,
        })
        .unwrap_err();
        assert!(e.to_string().contains("at least one vCPU"));
    }

    #[test]
    fn page_tables_identity_map_4gib() {
        let t = page_tables();
        assert_eq!(t.len(), 6 * 4096);
        let q = |off: usize| u64::from_le_bytes(t[off..off + 8].try_into().unwrap());
        assert_eq!(q(0), PDPT_GPA | 3);
        assert_eq!(q(4096 + 3 * 8), (PD_GPA + 3 * PAGE) | 3);
        // The last 2 MiB page of the fourth GiB maps itself.
        assert_eq!(q(5 * 4096 + 511 * 8), 0xffe0_0000 | 0x83);
        assert_eq!(PD_GPA + 4 * PAGE, 0xf000);
    }

    #[test]
    fn gdt_descriptors_match_the_segment_state() {
        let g = gdt();
        let s = long_mode_state(0x100200);
        let desc = |sel: u16| u64::from_le_bytes(g[usize::from(sel)..][..8].try_into().unwrap());
        // Access byte and flags nibble of each descriptor = the packed attributes.
        let attrib = |d: u64| u16::try_from(((d >> 40) & 0xff) | (((d >> 52) & 0xf) << 8)).unwrap();
        assert_eq!(attrib(desc(s.cs.selector)), s.cs.attrib);
        assert_eq!(attrib(desc(s.ds.selector)), s.ds.attrib);
        assert_eq!(attrib(desc(s.tr.selector)), s.tr.attrib);
        assert_eq!(usize::try_from(GDT_LIMIT + 1).unwrap(), g.len());
    }
}
