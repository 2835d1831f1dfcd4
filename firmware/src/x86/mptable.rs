//! The Intel MultiProcessor Specification 1.4 table (chapter 4): how a guest without ACPI
//! learns its processors, I/O APIC and legacy interrupt routing. Linux reads it when it
//! finds no ACPI tables; cvm's built-in guest reads it to count its vCPUs.

use crate::bytes::{put, to_u64};
use crate::error::{FirmwareError, Result};

/// Local APIC base address.
pub const LAPIC_BASE: u32 = 0xfee0_0000;
/// I/O APIC base address.
pub const IOAPIC_BASE: u32 = 0xfec0_0000;
/// Legacy ISA interrupts routed through the I/O APIC (pins 0-15).
const ISA_IRQS: u8 = 16;

const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;
const PROCESSOR_LEN: usize = 20;
const ENTRY_LEN: usize = 8;
/// Entries besides the processors: bus, I/O APIC, 16 I/O and 2 local interrupts.
const OTHER_ENTRIES: u16 = 20;
const FIXED_LEN: usize = FLOATING_LEN + HEADER_LEN + ENTRY_LEN * 20;
/// MP spec revision 1.4.
const SPEC_REV: u8 = 4;
const APIC_VERSION: u8 = 0x14;
/// The I/O APIC's version register value (an 82093AA: no EOI register).
pub const IOAPIC_VERSION: u8 = 0x11;

/// The size of the table for `vcpus` processors: floating pointer, header, one processor
/// entry each, the ISA bus, the I/O APIC, 16 I/O interrupt and 2 local interrupt entries.
pub fn size(vcpus: u32) -> u64 {
    to_u64(FIXED_LEN).saturating_add(u64::from(vcpus).saturating_mul(to_u64(PROCESSOR_LEN)))
}

/// The I/O APIC's ID with `vcpus` processors: the one after the last processor's (none
/// when the table cannot describe that many processors).
pub fn ioapic_id(vcpus: u32) -> Option<u8> {
    u8::try_from(vcpus).ok().filter(|_| vcpus > 0)
}

/// Builds the table to be loaded at guest physical address `gpa`, with processors whose
/// local APIC IDs are `0..vcpus` (vCPU 0 the bootstrap processor). The I/O APIC takes
/// the ID after the last processor's.
pub fn build(gpa: u32, vcpus: u32) -> Result<Vec<u8>> {
    let ioapic_id = ioapic_id(vcpus).ok_or_else(|| {
        FirmwareError::Unsupported(format!(
            "an MP table describes 1 to 255 processors, not {vcpus}"
        ))
    })?;
    let len = usize::try_from(size(vcpus))
        .map_err(|_| FirmwareError::Unsupported("MP table too large".into()))?;
    let config_gpa = gpa
        .checked_add(16)
        .ok_or_else(|| FirmwareError::Unsupported("MP table address out of range".into()))?;

    let mut entries = Vec::with_capacity(len.saturating_sub(FLOATING_LEN + HEADER_LEN));
    for id in 0..ioapic_id {
        let flags = if id == 0 { 0b11 } else { 0b01 }; // enabled, bootstrap
        entries.extend_from_slice(&[0, id, APIC_VERSION, flags]);
        entries.extend_from_slice(&0x0600u32.to_le_bytes()); // CPU signature: family 6
        entries.extend_from_slice(&0x0201u32.to_le_bytes()); // features: FPU, APIC
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[1, 0]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[2, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_BASE.to_le_bytes());
    for irq in 0..ISA_IRQS {
        // INT, conforming polarity and trigger, ISA bus 0 IRQ n -> I/O APIC pin n.
        entries.extend_from_slice(&[3, 0, 0, 0, 0, irq, ioapic_id, irq]);
    }
    // LINT0 is ExtINT (the 8259), LINT1 is NMI, on every local APIC (ID 0xff).
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);

    let base_len = u16::try_from(HEADER_LEN.saturating_add(entries.len()))
        .map_err(|_| FirmwareError::Unsupported("MP table too large".into()))?;
    let entry_count = u16::from(ioapic_id).saturating_add(OTHER_ENTRIES);
    let mut header = vec![0u8; HEADER_LEN];
    put(&mut header, 0, b"PCMP")?;
    put(&mut header, 4, &base_len.to_le_bytes())?;
    put(&mut header, 6, &[SPEC_REV])?;
    put(&mut header, 8, b"CVM     ")?;
    put(&mut header, 16, b"CVM VM      ")?;
    put(&mut header, 34, &entry_count.to_le_bytes())?;
    put(&mut header, 36, &LAPIC_BASE.to_le_bytes())?;
    let sum = checksum(&[&header, &entries]);
    put(&mut header, 7, &[sum])?;

    let mut floating = vec![0u8; FLOATING_LEN];
    put(&mut floating, 0, b"_MP_")?;
    put(&mut floating, 4, &config_gpa.to_le_bytes())?;
    put(&mut floating, 8, &[1, SPEC_REV])?; // length in 16-byte units, revision
    let sum = checksum(&[&floating]);
    put(&mut floating, 10, &[sum])?;

    let mut table = floating;
    table.extend_from_slice(&header);
    table.extend_from_slice(&entries);
    Ok(table)
}

/// The byte that makes the sum of `parts` zero modulo 256.
fn checksum(parts: &[&[u8]]) -> u8 {
    let sum = parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0u8, |a, b| a.wrapping_add(*b));
    0u8.wrapping_sub(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn table_layout_follows_the_mp_spec() {
        let t = build(0x9fc00, 3).unwrap();
        assert_eq!(u64::try_from(t.len()).unwrap(), size(3));
        // Floating pointer: signature, config table right after it, 16 bytes, rev 1.4.
        assert_eq!(&t[0..4], b"_MP_");
        assert_eq!(u32::from_le_bytes(t[4..8].try_into().unwrap()), 0x9fc10);
        assert_eq!((t[8], t[9]), (1, 4));
        assert_eq!(sum(&t[..16]), 0);
        // Header: signature, base table length covers everything after the pointer.
        let h = &t[16..];
        assert_eq!(&h[0..4], b"PCMP");
        assert_eq!(usize::from(u16::from_le_bytes([h[4], h[5]])), h.len());
        assert_eq!(sum(h), 0);
        assert_eq!(u16::from_le_bytes([h[34], h[35]]), 3 + 2 + 16 + 2);
        assert_eq!(
            u32::from_le_bytes(h[36..40].try_into().unwrap()),
            LAPIC_BASE
        );
        // Processors 0..3, only the first is the BSP.
        let p = &h[44..];
        for i in 0..3 {
            let e = &p[i * 20..];
            assert_eq!((e[0], usize::from(e[1])), (0, i));
            assert_eq!(e[3], if i == 0 { 3 } else { 1 });
        }
        // Bus then I/O APIC with the next ID.
        let rest = &p[60..];
        assert_eq!(&rest[0..8], b"\x01\x00ISA   ");
        assert_eq!(&rest[8..12], &[2, 3, 0x11, 1]);
        // Serial IRQ 4 reaches I/O APIC pin 4.
        let irq4 = &rest[16 + 4 * 8..16 + 5 * 8];
        assert_eq!(irq4, &[3, 0, 0, 0, 0, 4, 3, 4]);
    }

    #[test]
    fn processor_count_is_bounded() {
        assert!(build(0x9fc00, 0).is_err());
        assert!(build(0x9fc00, 256).is_err());
        assert!(build(u32::MAX - 4, 1).is_err());
    }
}
