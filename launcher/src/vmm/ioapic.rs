//! The I/O APIC the VMM emulates with the split irqchip (KVM then keeps only the local
//! APICs; TDX requires this mode). An Intel 82093AA as the MP table describes it: version
//! 0x11, 24 pins, at 0xfec0_0000 with the select register at +0x00 and the window at +0x10.
//!
//! Each interrupt the VMM's devices raise is an edge (an irqfd write in the in-kernel
//! mode): on an unmasked pin it becomes the message the redirection entry describes, sent
//! to the local APICs with `KVM_SIGNAL_MSI`; on a masked pin it is lost, as on the chip.
//! No device of cvm's asserts a level, so remote IRR is never set (it reads 0) and an EOI
//! from the local APIC (`KVM_EXIT_IOAPIC_EOI`) has nothing to clear. ExtINT entries have
//! no 8259 behind them in this mode and deliver nothing.

use cvm_firmware::x86::mptable::{IOAPIC_BASE, IOAPIC_VERSION, LAPIC_BASE};
use std::sync::Mutex;

/// Where the I/O APIC's registers are.
pub const BASE: u64 = IOAPIC_BASE as u64;
/// The MMIO window it answers: one page.
pub const SIZE: u64 = 0x1000;
/// Its input pins.
pub const PINS: usize = 24;

const SELECT: u64 = 0x00;
const WINDOW: u64 = 0x10;
const REG_ID: u8 = 0x00;
const REG_VERSION: u8 = 0x01;
const REG_ARBITRATION: u8 = 0x02;
const REG_TABLE: u8 = 0x10;

const RTE_VECTOR: u64 = 0xff;
const RTE_DELIVERY_SHIFT: u32 = 8;
const RTE_LOGICAL: u64 = 1 << 11;
const RTE_DELIVERY_STATUS: u64 = 1 << 12;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
const RTE_DEST_SHIFT: u32 = 56;
/// Bits of a redirection entry the guest cannot write.
const RTE_READ_ONLY: u64 = RTE_DELIVERY_STATUS | RTE_REMOTE_IRR;
const DELIVERY_EXTINT: u64 = 0b111;

/// An interrupt message for the local APICs, in the MSI format KVM takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msi {
    /// 0xfee0_0000 | destination << 12 | logical << 2.
    pub address: u32,
    /// Vector | delivery mode << 8 | assert << 14 | level << 15.
    pub data: u32,
}

/// Where messages go (`KVM_SIGNAL_MSI` on the VM; a recorder in tests).
pub trait MsiSink: Send + Sync {
    /// Sends `msi` to the local APICs.
    fn send(&self, msi: Msi) -> std::io::Result<()>;
}

/// The I/O APIC.
pub struct Ioapic {
    regs: Mutex<Registers>,
    sink: Box<dyn MsiSink>,
}

struct Registers {
    id: u8,
    select: u8,
    table: [u64; PINS],
}

impl Ioapic {
    /// An I/O APIC with APIC ID `id` in its reset state (every pin masked).
    pub fn new(id: u8, sink: Box<dyn MsiSink>) -> Self {
        Ioapic {
            regs: Mutex::new(Registers {
                id: id & 0xf,
                select: 0,
                table: [RTE_MASKED; PINS],
            }),
            sink,
        }
    }

    /// A read of `data.len()` bytes at `offset` in the register page. The select register
    /// and the window are 32 bits wide; anything else reads as zero.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let value = match self.regs.lock() {
            Ok(r) => match offset & !3 {
                SELECT => u32::from(r.select),
                WINDOW => r.indirect_read(),
                _ => 0,
            },
            Err(_) => u32::MAX,
        };
        let bytes = (value >> ((offset & 3) * 8)).to_le_bytes();
        data.fill(0);
        for (d, b) in data.iter_mut().zip(bytes) {
            *d = b;
        }
    }

    /// A write of `data` at `offset` in the register page (shorter than 32 bits: the
    /// missing high bytes are zero; writes elsewhere are ignored).
    pub fn write(&self, offset: u64, data: &[u8]) {
        let mut bytes = [0u8; 4];
        for (b, d) in bytes.iter_mut().zip(data) {
            *b = *d;
        }
        let value = u32::from_le_bytes(bytes);
        if let Ok(mut r) = self.regs.lock() {
            match offset {
                SELECT => r.select = bytes[0],
                WINDOW => r.indirect_write(value),
                _ => {}
            }
        }
    }

    /// An edge on `pin`: the message its redirection entry describes, unless the pin is
    /// masked, out of range or set to ExtINT (or a reserved delivery mode).
    pub fn pulse(&self, pin: usize) -> std::io::Result<()> {
        let entry = match self.regs.lock() {
            Ok(r) => r.table.get(pin).copied(),
            Err(_) => None,
        };
        match entry.and_then(message) {
            Some(msi) => self.sink.send(msi),
            None => Ok(()),
        }
    }
}

impl Registers {
    fn indirect_read(&self) -> u32 {
        match self.select {
            REG_ID | REG_ARBITRATION => u32::from(self.id) << 24,
            REG_VERSION => {
                let max_entry = u32::try_from(PINS - 1).unwrap_or(0);
                u32::from(IOAPIC_VERSION) | (max_entry << 16)
            }
            sel => match table_index(sel).and_then(|(i, high)| Some((self.table.get(i)?, high))) {
                Some((entry, high)) => half(*entry, high),
                None => u32::MAX,
            },
        }
    }

    fn indirect_write(&mut self, value: u32) {
        match self.select {
            REG_ID => self.id = u8::try_from((value >> 24) & 0xf).unwrap_or(0),
            REG_VERSION | REG_ARBITRATION => {}
            sel => {
                let Some((i, high)) = table_index(sel) else {
                    return;
                };
                if let Some(entry) = self.table.get_mut(i) {
                    let value = u64::from(value);
                    *entry = if high {
                        (*entry & 0xffff_ffff) | (value << 32)
                    } else {
                        (*entry & (!0xffff_ffff | RTE_READ_ONLY)) | (value & !RTE_READ_ONLY)
                    };
                }
            }
        }
    }
}

/// The redirection entry and dword a select value names.
fn table_index(select: u8) -> Option<(usize, bool)> {
    let n = usize::from(select.checked_sub(REG_TABLE)?);
    Some((n / 2, n % 2 == 1))
}

fn half(entry: u64, high: bool) -> u32 {
    let v = if high { entry >> 32 } else { entry };
    u32::try_from(v & 0xffff_ffff).unwrap_or(0)
}

/// The message an unmasked entry sends.
fn message(entry: u64) -> Option<Msi> {
    let mode = (entry >> RTE_DELIVERY_SHIFT) & 0b111;
    // Fixed, lowest priority, SMI, NMI and INIT travel as messages; 3 and 6 are reserved.
    if entry & RTE_MASKED != 0 || matches!(mode, 3 | 6 | DELIVERY_EXTINT) {
        return None;
    }
    let dest = (entry >> RTE_DEST_SHIFT) & 0xff;
    let logical = u64::from(entry & RTE_LOGICAL != 0);
    let level = entry & RTE_LEVEL != 0;
    let address = u64::from(LAPIC_BASE) | (dest << 12) | (logical << 2);
    let mut data = (entry & RTE_VECTOR) | (mode << 8);
    if level {
        data |= (1 << 15) | (1 << 14);
    }
    Some(Msi {
        address: u32::try_from(address).ok()?,
        data: u32::try_from(data).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<Msi>>>);
    impl MsiSink for Record {
        fn send(&self, msi: Msi) -> std::io::Result<()> {
            self.0.lock().unwrap().push(msi);
            Ok(())
        }
    }

    fn ioapic() -> (Ioapic, Record) {
        let rec = Record::default();
        (Ioapic::new(3, Box::new(rec.clone())), rec)
    }

    fn reg_read(io: &Ioapic, sel: u8) -> u32 {
        io.write(SELECT, &[sel, 0, 0, 0]);
        let mut b = [0u8; 4];
        io.read(WINDOW, &mut b);
        u32::from_le_bytes(b)
    }

    fn reg_write(io: &Ioapic, sel: u8, v: u32) {
        io.write(SELECT, &u32::from(sel).to_le_bytes());
        io.write(WINDOW, &v.to_le_bytes());
    }

    #[test]
    fn identification_registers_and_reset_state() {
        let (io, rec) = ioapic();
        assert_eq!(reg_read(&io, REG_ID), 3 << 24);
        assert_eq!(reg_read(&io, REG_VERSION), 0x0017_0011);
        assert_eq!(reg_read(&io, REG_ARBITRATION), 3 << 24);
        for pin in 0..PINS {
            let sel = REG_TABLE + u8::try_from(pin * 2).unwrap();
            assert_eq!(reg_read(&io, sel), 1 << 16, "pin {pin} masked at reset");
            assert_eq!(reg_read(&io, sel + 1), 0);
            io.pulse(pin).unwrap();
        }
        assert!(
            rec.0.lock().unwrap().is_empty(),
            "masked pins deliver nothing"
        );
        // Past the table, and the select register itself.
        assert_eq!(reg_read(&io, REG_TABLE + 48), u32::MAX);
        let mut b = [0u8; 4];
        io.read(SELECT, &mut b);
        assert_eq!(b, [REG_TABLE + 48, 0, 0, 0]);
        io.read(0x20, &mut b);
        assert_eq!(b, [0; 4]);
        // The ID is four bits wide and writable; version and arbitration are not.
        reg_write(&io, REG_ID, 0xff00_0000);
        assert_eq!(reg_read(&io, REG_ID), 0x0f00_0000);
        reg_write(&io, REG_VERSION, 0);
        assert_eq!(reg_read(&io, REG_VERSION), 0x0017_0011);
    }

    #[test]
    fn an_unmasked_edge_entry_sends_its_message() {
        let (io, rec) = ioapic();
        let sel = REG_TABLE + 2 * 4;
        reg_write(&io, sel + 1, 2 << 24); // destination APIC 2
        reg_write(&io, sel, 0x30 | (1 << 12) | (1 << 14)); // read-only bits ignored
        assert_eq!(reg_read(&io, sel), 0x30);
        io.pulse(4).unwrap();
        io.pulse(5).unwrap(); // still masked
        io.pulse(99).unwrap(); // no such pin
        assert_eq!(
            *rec.0.lock().unwrap(),
            [Msi {
                address: 0xfee0_2000,
                data: 0x30
            }]
        );
    }

    #[test]
    fn delivery_modes_destination_modes_and_triggers() {
        let (io, rec) = ioapic();
        let sel = REG_TABLE;
        reg_write(&io, sel + 1, 0x0f << 24);
        // Lowest priority, logical destination, level-triggered, active low.
        reg_write(
            &io,
            sel,
            0x41 | (1 << 8) | (1 << 11) | (1 << 13) | (1 << 15),
        );
        io.pulse(0).unwrap();
        // NMI.
        reg_write(&io, sel, 0x02 | (4 << 8));
        io.pulse(0).unwrap();
        // ExtINT and the reserved modes send nothing.
        for mode in [3u32, 6, 7] {
            reg_write(&io, sel, 0x20 | (mode << 8));
            io.pulse(0).unwrap();
        }
        // Masking again stops delivery.
        reg_write(&io, sel, 0x30 | (1 << 16));
        io.pulse(0).unwrap();
        assert_eq!(
            *rec.0.lock().unwrap(),
            [
                Msi {
                    address: 0xfee0_f004,
                    data: 0x41 | (1 << 8) | (1 << 14) | (1 << 15)
                },
                Msi {
                    address: 0xfee0_f000,
                    data: 0x02 | (4 << 8)
                },
            ]
        );
    }

    #[test]
    fn narrow_and_unaligned_accesses() {
        let (io, _) = ioapic();
        io.write(SELECT, &[REG_VERSION]);
        let mut b = [0u8; 2];
        io.read(WINDOW + 2, &mut b);
        assert_eq!(u16::from_le_bytes(b), 0x0017);
        let mut wide = [0xaau8; 8];
        io.read(WINDOW, &mut wide);
        assert_eq!(wide, [0x11, 0, 0x17, 0, 0, 0, 0, 0]);
        // A one-byte write to the window writes the low byte, the rest zero.
        io.write(SELECT, &[REG_TABLE + 1]);
        io.write(WINDOW, &[0xff, 0xff, 0xff, 0xff]);
        io.write(WINDOW, &[0x12]);
        assert_eq!(reg_read(&io, REG_TABLE + 1), 0x12);
        // Writes off the two registers change nothing.
        io.write(0x04, &[0x55]);
        io.write(0x14, &[0x55]);
        assert_eq!(reg_read(&io, REG_TABLE + 1), 0x12);
    }
}
