//! ACPI tables for plain Linux guests, built with rust-vmm's `acpi_tables`: an RSDP, an
//! XSDT, a hardware-reduced FADT, a DSDT declaring COM1, and a MADT with one local APIC
//! per vCPU and the I/O APIC. Linux kernels built without the MP table parser (Debian's
//! cloud kernel is one) learn their processors and the I/O APIC only from the MADT.
//!
//! The tables sit in the legacy BIOS area at [`ACPI_GPA`], where Linux also looks for the
//! RSDP when the zero page does not name it; cvm names it (`acpi_rsdp_addr`).

use super::{COM1_IRQ, COM1_PORT, mptable};
use crate::bytes::{put, to_u64};
use crate::error::{FirmwareError, Result};
use acpi_tables::Aml;
use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;

/// Where the tables start (the RSDP first; 16-byte aligned, in `0xe0000-0xfffff`).
pub const ACPI_GPA: u64 = 0xe_0000;
/// The room they may take: up to 1 MiB, where the kernel's RAM starts.
const ACPI_MAX: u64 = 0x2_0000;

const OEM_ID: [u8; 6] = *b"CVM   ";
const OEM_TABLE_ID: [u8; 8] = *b"CVMPLAIN";
const OEM_REVISION: u32 = 1;
const DSDT_REVISION: u8 = 6;
/// The XSDT's header and its two entries (FADT, MADT).
const XSDT_LEN: usize = 36 + 2 * 8;

/// IA-PC boot architecture flags (FADT `IAPC_BOOT_ARCH`): no VGA, no CMOS RTC; the absent
/// LEGACY_DEVICES and 8042 bits say there are no other ISA devices and no keyboard
/// controller.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

fn aml_bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// The DSDT (COM1) and the MADT for `vcpus` processors (local APIC IDs `0..vcpus`, the
/// I/O APIC taking the next ID, as in the MP table), checksums set.
fn dsdt_and_madt(vcpus: u32) -> Result<(Vec<u8>, Vec<u8>)> {
    let ioapic_id = mptable::ioapic_id(vcpus).ok_or_else(|| {
        FirmwareError::Unsupported(format!(
            "the MADT describes 1 to 255 processors, not {vcpus}"
        ))
    })?;

    // DSDT: \_SB.COM1, a 16550 (PNP0501) at 0x3f8, edge-triggered GSI 4.
    let hid = aml::EISAName::new("PNP0501");
    let io = aml::IO::new(COM1_PORT, COM1_PORT, 1, 8);
    let irq = aml::Interrupt::new(true, true, false, false, COM1_IRQ);
    let resources = aml::ResourceTemplate::new(vec![&io, &irq]);
    let names = [
        aml::Name::new("_HID".into(), &hid),
        aml::Name::new("_UID".into(), &aml::ZERO),
        aml::Name::new("_CRS".into(), &resources),
    ];
    let com1 = aml::Device::new(
        "_SB_.COM1".into(),
        names.iter().map(|n| -> &dyn Aml { n }).collect(),
    );
    let mut dsdt = Sdt::new(
        *b"DSDT",
        36,
        DSDT_REVISION,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    dsdt.append_slice(&aml_bytes(&com1));
    let dsdt = aml_bytes(&dsdt);

    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(mptable::LAPIC_BASE),
    );
    for id in 0..ioapic_id {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(ioapic_id, mptable::IOAPIC_BASE, 0));
    Ok((dsdt, aml_bytes(&madt)))
}

/// A hardware-reduced FADT with no DSDT address (the caller links it).
fn fadt() -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION).flag(Flags::HwReducedAcpi);
    fadt.iapc_boot_arch = (IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT).into();
    aml_bytes(&fadt.finalize())
}

/// The size QEMU pads `etc/acpi/tables` to (`acpi_build`: ACPI_BUILD_TABLE_SIZE).
pub const QEMU_TABLES_LEN: usize = 0x2_0000;

/// The same tables as QEMU serves its own through fw_cfg, for firmware that installs
/// them (OVMF's `AcpiPlatformDxe`): `etc/acpi/tables` laid out as QEMU's `acpi_build`
/// does, back to back from offset 0 (FACS, DSDT, FACP, APIC, RSDT), every pointer field
/// an offset into the blob and every checksum zero, left to the loader commands that
/// [`crate::tdx::acpi::Tables::derive`] writes for it; padded to [`QEMU_TABLES_LEN`].
pub fn qemu_tables(vcpus: u32) -> Result<Vec<u8>> {
    let (mut dsdt, mut madt) = dsdt_and_madt(vcpus)?;
    let mut fadt = fadt();
    // FACS (ACPI 6.5 5.2.10): signature, length 64, version 2, the rest zero.
    let mut facs = vec![0u8; 64];
    put(&mut facs, 0, b"FACS")?;
    put(&mut facs, 4, &64u32.to_le_bytes())?;
    put(&mut facs, 32, &[2])?;
    let at_dsdt = facs.len();
    let at_fadt = at_dsdt.saturating_add(dsdt.len());
    let at_madt = at_fadt.saturating_add(fadt.len());
    let off = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    // FADT: FIRMWARE_CTRL (36) the FACS, DSDT (40) and X_DSDT (140) the DSDT.
    put(&mut fadt, 36, &0u32.to_le_bytes())?;
    put(&mut fadt, 40, &off(at_dsdt).to_le_bytes())?;
    put(&mut fadt, 140, &u64::from(off(at_dsdt)).to_le_bytes())?;
    // RSDT (ACPI 6.5 5.2.7): the FADT and the MADT.
    let mut rsdt = Sdt::new(*b"RSDT", 36, 1, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    rsdt.append_slice(&off(at_fadt).to_le_bytes());
    rsdt.append_slice(&off(at_madt).to_le_bytes());
    let mut rsdt = aml_bytes(&rsdt);
    let mut out = facs;
    for t in [&mut dsdt, &mut fadt, &mut madt, &mut rsdt] {
        put(t, 9, &[0])?;
        out.extend_from_slice(t);
    }
    if out.len() > QEMU_TABLES_LEN {
        return Err(FirmwareError::Unsupported(format!(
            "the ACPI tables for {vcpus} vCPUs do not fit QEMU's {QEMU_TABLES_LEN:#x}-byte blob"
        )));
    }
    out.resize(QEMU_TABLES_LEN, 0);
    Ok(out)
}

/// The tables for `vcpus` processors, to be loaded at [`ACPI_GPA`].
pub fn build(vcpus: u32) -> Result<Vec<u8>> {
    let (dsdt, madt) = dsdt_and_madt(vcpus)?;

    // Layout: RSDP, XSDT (two entries), FADT, DSDT, MADT, each 16-byte aligned.
    let lens = [
        Rsdp::len(),
        XSDT_LEN,
        acpi_tables::fadt::FADT::len(),
        dsdt.len(),
        madt.len(),
    ];
    let mut at = [0usize; 5];
    let mut cursor = 0usize;
    for (a, len) in at.iter_mut().zip(lens) {
        *a = cursor.saturating_add(15) & !15;
        cursor = a.saturating_add(len);
    }
    if to_u64(cursor) > ACPI_MAX {
        return Err(FirmwareError::Unsupported(format!(
            "the ACPI tables for {vcpus} vCPUs do not fit in {ACPI_MAX:#x} bytes"
        )));
    }
    let gpa = |i: usize| ACPI_GPA.saturating_add(to_u64(at.get(i).copied().unwrap_or(0)));

    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(gpa(3))
        .flag(Flags::HwReducedAcpi);
    fadt.iapc_boot_arch = (IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT).into();
    let fadt = aml_bytes(&fadt.finalize());
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(gpa(2));
    xsdt.add_entry(gpa(4));
    let xsdt = aml_bytes(&xsdt);
    let rsdp = aml_bytes(&Rsdp::new(OEM_ID, gpa(1)));

    let mut out = vec![0u8; cursor];
    for (start, table) in at.into_iter().zip([&rsdp, &xsdt, &fadt, &dsdt, &madt]) {
        put(&mut out, start, table)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::tests::{u32_at, u64_at};

    /// A table at `gpa` in the blob: its bytes, checked for signature and checksum per the
    /// ACPI specification (header: signature 0-3, length 4-7, checksum over the length).
    fn table<'a>(blob: &'a [u8], gpa: u64, sig: &[u8; 4]) -> &'a [u8] {
        let off = usize::try_from(gpa - ACPI_GPA).unwrap();
        assert_eq!(&blob[off..off + 4], sig);
        let len = u32::from_le_bytes(blob[off + 4..off + 8].try_into().unwrap());
        let t = &blob[off..off + usize::try_from(len).unwrap()];
        let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        assert_eq!(sum, 0, "{} checksum", String::from_utf8_lossy(sig));
        t
    }

    #[test]
    fn tables_chain_from_the_rsdp_and_describe_the_vcpus_and_ioapic() {
        let blob = build(3).unwrap();
        // RSDP (ACPI 6.5 5.2.5.3): "RSD PTR ", checksum over 20 bytes, revision 2,
        // extended checksum over 36, XSDT address at 24.
        assert_eq!(&blob[..8], b"RSD PTR ");
        let sum = |b: &[u8]| b.iter().fold(0u8, |a, x| a.wrapping_add(*x));
        assert_eq!(sum(&blob[..20]), 0);
        assert_eq!(sum(&blob[..36]), 0);
        assert_eq!(blob[15], 2);
        let xsdt = table(&blob, u64_at(&blob, 24), b"XSDT");
        assert_eq!(xsdt.len(), 36 + 16);
        let fadt = table(&blob, u64_at(xsdt, 36), b"FACP");
        let madt = table(&blob, u64_at(xsdt, 44), b"APIC");
        // FADT: flags at 112 (HW_REDUCED_ACPI, bit 20), IAPC_BOOT_ARCH at 109, X_DSDT at 140.
        assert_ne!(u32_at(fadt, 112) & (1 << 20), 0);
        assert_eq!(
            u16::from_le_bytes([fadt[109], fadt[110]]),
            (1 << 2) | (1 << 5)
        );
        let dsdt = table(&blob, u64_at(fadt, 140), b"DSDT");
        // The COM1 device: its name, EISA ID PNP0501 (0x0105d041), port 0x3f8, GSI 4.
        let body = &dsdt[36..];
        let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"COM1"));
        assert!(has(&0x0105_d041u32.to_le_bytes()));
        assert!(
            has(&[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03]),
            "IO descriptor for 0x3f8"
        );
        assert!(
            has(&[0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0, 0, 0]),
            "GSI 4, edge"
        );
        // MADT: local APIC address at 36, then entries from 44.
        assert_eq!(u32_at(madt, 36), 0xfee0_0000);
        let mut entries = Vec::new();
        let mut off = 44;
        while off < madt.len() {
            let (kind, len) = (madt[off], usize::from(madt[off + 1]));
            entries.push((kind, madt[off..off + len].to_vec()));
            off += len;
        }
        assert_eq!(entries.len(), 4);
        for (i, (kind, e)) in (0u8..).zip(entries.iter().take(3)) {
            // Processor local APIC: UID, APIC ID, flags (enabled).
            assert_eq!((*kind, e[2], e[3], u32_at(e, 4)), (0, i, i, 1));
        }
        let (kind, io) = &entries[3];
        assert_eq!(
            (*kind, io[2]),
            (1, 3),
            "I/O APIC with the ID after the vCPUs'"
        );
        assert_eq!((u32_at(io, 4), u32_at(io, 8)), (0xfec0_0000, 0));
    }

    #[test]
    fn every_vcpu_count_from_1_to_255_and_no_other() {
        assert!(build(0).is_err());
        assert!(build(256).is_err());
        for n in 1..=255u32 {
            let blob = build(n).unwrap();
            assert!(to_u64(blob.len()) <= ACPI_MAX);
            let xsdt = table(&blob, u64_at(&blob, 24), b"XSDT");
            let madt = table(&blob, u64_at(xsdt, 44), b"APIC");
            // 8-byte local APIC entries, one 12-byte I/O APIC entry.
            assert_eq!(madt.len(), 44 + 8 * usize::try_from(n).unwrap() + 12, "{n}");
        }
    }

    /// Runs QEMU's loader script as a firmware would (hw/acpi/bios-linker-loader.c:
    /// ALLOCATE places a file, ADD_POINTER adds the pointee's address to the
    /// little-endian integer at an offset, ADD_CHECKSUM makes a range sum to zero) and
    /// returns each file's address and patched bytes.
    fn run_loader(mut files: Vec<(&str, Vec<u8>)>, loader: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
        let name = |b: &[u8]| {
            String::from_utf8(b.iter().take_while(|c| **c != 0).copied().collect()).unwrap()
        };
        let mut placed: Vec<(String, u64, Vec<u8>)> = Vec::new();
        let mut next = 0x7000_0000u64;
        for cmd in loader.chunks(128) {
            let le32 = |at: usize| u32::from_le_bytes(cmd[at..at + 4].try_into().unwrap());
            let idx = |at: usize| usize::try_from(le32(at)).unwrap();
            match le32(0) {
                1 => {
                    let n = name(&cmd[4..60]);
                    let align = u64::from(le32(60));
                    let i = files.iter().position(|(f, _)| *f == n).unwrap();
                    let (_, data) = files.remove(i);
                    next = next.div_ceil(align) * align;
                    placed.push((n, next, data.clone()));
                    next += u64::try_from(data.len()).unwrap();
                }
                2 => {
                    let (dst, src) = (name(&cmd[4..60]), name(&cmd[60..116]));
                    let (off, size) = (idx(116), usize::from(cmd[120]));
                    let base = placed.iter().find(|(f, _, _)| *f == src).unwrap().1;
                    let d = &mut placed.iter_mut().find(|(f, _, _)| *f == dst).unwrap().2;
                    let mut v = [0u8; 8];
                    v[..size].copy_from_slice(&d[off..off + size]);
                    let sum = (u64::from_le_bytes(v) + base).to_le_bytes();
                    d[off..off + size].copy_from_slice(&sum[..size]);
                }
                3 => {
                    let file = name(&cmd[4..60]);
                    let (at, start, len) = (idx(60), idx(64), idx(68));
                    let d = &mut placed.iter_mut().find(|(f, _, _)| *f == file).unwrap().2;
                    let sum = d[start..start + len]
                        .iter()
                        .fold(0u8, |a, b| a.wrapping_add(*b));
                    d[at] = d[at].wrapping_sub(sum);
                }
                _ => {}
            }
        }
        placed
    }

    #[test]
    fn qemus_files_link_to_the_same_tables() {
        let tables = qemu_tables(2).unwrap();
        assert_eq!(tables.len(), QEMU_TABLES_LEN);
        let files = crate::tdx::acpi::Tables::derive(&tables).unwrap();
        let placed = run_loader(
            vec![
                ("etc/acpi/rsdp", files.rsdp.to_vec()),
                ("etc/acpi/tables", tables.clone()),
            ],
            &files.loader,
        );
        let (_, rsdp_at, rsdp) = &placed[0];
        let (_, base, blob) = &placed[1];
        assert!(rsdp_at % 16 == 0 && base % 64 == 0);
        // Any guest address in the tables blob, checked as a table.
        let at = |gpa: u64, sig: &[u8; 4]| -> &[u8] {
            let off = usize::try_from(gpa - base).unwrap();
            assert_eq!(&blob[off..off + 4], sig);
            let len = usize::try_from(u32_at(&blob[off..], 4)).unwrap();
            let t = &blob[off..off + len];
            if sig != b"FACS" {
                let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                assert_eq!(sum, 0, "{} checksum", String::from_utf8_lossy(sig));
            }
            t
        };
        // RSDP revision 0: checksum over 20 bytes, RSDT at 16.
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        let rsdt = at(u64::from(u32_at(rsdp, 16)), b"RSDT");
        assert_eq!(rsdt.len(), 36 + 8);
        let fadt = at(u64::from(u32_at(rsdt, 36)), b"FACP");
        let madt = at(u64::from(u32_at(rsdt, 40)), b"APIC");
        at(u64::from(u32_at(fadt, 36)), b"FACS");
        let dsdt = at(u64::from(u32_at(fadt, 40)), b"DSDT");
        assert_eq!(u64_at(fadt, 140), u64::from(u32_at(fadt, 40)));
        assert!(dsdt.windows(4).any(|w| w == b"COM1"));
        // Two local APICs and the I/O APIC.
        assert_eq!(madt.len(), 44 + 2 * 8 + 12);
    }
}
