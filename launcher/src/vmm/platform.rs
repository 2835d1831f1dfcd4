//! The chipset OVMF probes before it boots a kernel (../shared/FWCFG.md section 2.3), as
//! QEMU's `q35` and `pc` machines present it:
//!
//! - PCI configuration mechanism #1 (0xCF8 address, 0xCFC-0xCFF data): the host bridge at
//!   0:0.0 (Q35 MCH 8086:29C0 or i440FX 8086:1237: OVMF picks its platform by this ID),
//!   and the function that holds the ACPI PM base (Q35: the ICH9 LPC bridge at 0:1f.0,
//!   PMBASE at 0x40, ACPI_EN in 0x44 bit 7; pc: PIIX3 ISA at 0:1.0 and PIIX4 PM at 0:1.3,
//!   PMBA at 0x40, PMIOSE in 0x80 bit 0). Their registers past the ID keep what the
//!   firmware writes; absent functions read all ones (QEMU).
//! - The ACPI PM timer at PMBASE + 8, once the firmware enables the PM I/O space: a
//!   24-bit counter at 3.579545 MHz (OVMF's AcpiTimerLib times every delay with it).
//! - The CMOS (0x70 index, 0x71 data): memory size (0x34/0x35: RAM from 16 MiB to the end
//!   of low RAM in 64 KiB units; 0x5b-0x5d: RAM above 4 GiB in 64 KiB units), and an RTC
//!   that OVMF's PcRtc driver accepts (status A 0x26, B 24-hour BCD, D valid; the host's
//!   UTC time, in BCD).
//! - The firmware's debug port 0x402 (QEMU's `isa-debugcon`): reads 0xE9, writes go to
//!   `--firmware-log`.

use std::io::Write;
use std::time::Instant;

/// `--machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// QEMU's q35 (ICH9): the default.
    #[default]
    Q35,
    /// QEMU's pc (i440FX, PIIX3/PIIX4).
    Pc,
}

/// The PCI address port.
pub const PCI_ADDRESS: u16 = 0xcf8;
/// The PCI data ports.
pub const PCI_DATA: std::ops::Range<u16> = 0xcfc..0xd00;
/// The CMOS index and data ports.
pub const CMOS: std::ops::Range<u16> = 0x70..0x72;
/// The firmware's debug port.
pub const DEBUG_PORT: u16 = 0x402;
/// What a read of the debug port answers (QEMU `isa-debugcon` `readback`).
const DEBUG_READBACK: u8 = 0xe9;
/// The PM timer's rate.
const PM_TIMER_HZ: u128 = 3_579_545;

/// One PCI function's configuration space.
#[derive(Debug, Clone)]
struct Function {
    dev: u8,
    func: u8,
    config: [u8; 256],
}

impl Function {
    fn new(
        dev: u8,
        func: u8,
        vendor: u16,
        device: u16,
        class: u8,
        subclass: u8,
        multi: bool,
    ) -> Self {
        let mut config = [0u8; 256];
        config[0..2].copy_from_slice(&vendor.to_le_bytes());
        config[2..4].copy_from_slice(&device.to_le_bytes());
        config[0x0a] = subclass;
        config[0x0b] = class;
        config[0x0e] = if multi { 0x80 } else { 0 };
        Function { dev, func, config }
    }
}

/// The chipset's state.
pub struct Platform {
    machine: Machine,
    functions: Vec<Function>,
    address: u32,
    cmos_index: u8,
    cmos: [u8; 128],
    start: Instant,
    firmware_log: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("machine", &self.machine)
            .field("address", &self.address)
            .finish()
    }
}

fn bcd(v: u64) -> u8 {
    u8::try_from(((v / 10) % 10) << 4 | (v % 10)).unwrap_or(0)
}

impl Platform {
    /// The `machine`'s chipset for a guest with `low` bytes of RAM below 4 GiB and `high`
    /// above, the debug port writing to `firmware_log`.
    pub fn new(
        machine: Machine,
        low: u64,
        high: u64,
        firmware_log: Option<Box<dyn Write + Send>>,
    ) -> Self {
        let functions = match machine {
            Machine::Q35 => vec![
                Function::new(0, 0, 0x8086, 0x29c0, 0x06, 0x00, false),
                Function::new(0x1f, 0, 0x8086, 0x2918, 0x06, 0x01, true),
            ],
            Machine::Pc => vec![
                Function::new(0, 0, 0x8086, 0x1237, 0x06, 0x00, false),
                Function::new(1, 0, 0x8086, 0x7000, 0x06, 0x01, true),
                Function::new(1, 3, 0x8086, 0x7113, 0x06, 0x80, false),
            ],
        };
        let mut cmos = [0u8; 128];
        // QEMU pc_cmos_init: extended memory above 16 MiB in 64 KiB units (capped at
        // 0xffff), and above 4 GiB in 64 KiB units (24 bits).
        let mid = (low.saturating_sub(16 << 20) >> 16).min(0xffff);
        cmos[0x34] = u8::try_from(mid & 0xff).unwrap_or(0);
        cmos[0x35] = u8::try_from(mid >> 8).unwrap_or(0);
        let above = (high >> 16).min(0xff_ffff);
        cmos[0x5b] = u8::try_from(above & 0xff).unwrap_or(0);
        cmos[0x5c] = u8::try_from((above >> 8) & 0xff).unwrap_or(0);
        cmos[0x5d] = u8::try_from(above >> 16).unwrap_or(0);
        cmos[0x0a] = 0x26; // 32.768 kHz, 1024 Hz rate, no update in progress
        cmos[0x0b] = 0x02; // 24-hour, BCD
        cmos[0x0d] = 0x80; // valid RAM and time
        Platform {
            machine,
            functions,
            address: 0,
            cmos_index: 0,
            cmos,
            start: Instant::now(),
            firmware_log,
        }
    }

    /// Whether the platform answers `port`.
    pub fn claims(&self, port: u16) -> bool {
        port == PCI_ADDRESS
            || PCI_DATA.contains(&port)
            || CMOS.contains(&port)
            || port == DEBUG_PORT
            || self.pm_timer_port() == Some(port)
    }

    /// The function the address register selects, and the register offset.
    fn selected(&mut self) -> Option<(&mut Function, usize)> {
        let a = self.address;
        if a & (1 << 31) == 0 || (a >> 16) & 0xff != 0 {
            return None;
        }
        let dev = u8::try_from((a >> 11) & 0x1f).unwrap_or(0xff);
        let func = u8::try_from((a >> 8) & 0x7).unwrap_or(0xff);
        let reg = usize::try_from(a & 0xfc).unwrap_or(0);
        self.functions
            .iter_mut()
            .find(|f| f.dev == dev && f.func == func)
            .map(|f| (f, reg))
    }

    /// The PM timer's port, once the firmware has enabled the PM I/O space.
    fn pm_timer_port(&self) -> Option<u16> {
        let (dev, func, enable_reg, enable_bit) = match self.machine {
            Machine::Q35 => (0x1f, 0, 0x44, 0x80),
            Machine::Pc => (1, 3, 0x80, 0x01),
        };
        let f = self
            .functions
            .iter()
            .find(|f| f.dev == dev && f.func == func)?;
        if f.config[enable_reg] & enable_bit == 0 {
            return None;
        }
        let base = u16::from_le_bytes([f.config[0x40], f.config[0x41]]) & 0xff80;
        (base != 0).then(|| base.wrapping_add(8))
    }

    fn pm_timer(&self) -> u32 {
        let ticks = self.start.elapsed().as_nanos() * PM_TIMER_HZ / 1_000_000_000;
        u32::try_from(ticks & 0xff_ffff).unwrap_or(0)
    }

    fn rtc(&mut self) {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = i64::try_from(days).unwrap_or(0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        self.cmos[0x00] = bcd(rem % 60);
        self.cmos[0x02] = bcd((rem / 60) % 60);
        self.cmos[0x04] = bcd(rem / 3600);
        self.cmos[0x06] = bcd((days + 4) % 7 + 1);
        self.cmos[0x07] = bcd(u(day));
        self.cmos[0x08] = bcd(u(month));
        self.cmos[0x09] = bcd(u(year) % 100);
        self.cmos[0x32] = bcd(u(year) / 100);
    }

    /// A port read.
    pub fn pio_in(&mut self, port: u16, data: &mut [u8]) {
        match port {
            PCI_ADDRESS if data.len() == 4 => data.copy_from_slice(&self.address.to_le_bytes()),
            p if PCI_DATA.contains(&p) => {
                let off = usize::from(p - PCI_DATA.start);
                match self.selected() {
                    Some((f, reg)) => {
                        for (i, d) in data.iter_mut().enumerate() {
                            *d = f.config.get(reg + off + i).copied().unwrap_or(0xff);
                        }
                    }
                    None => data.fill(0xff),
                }
            }
            0x70 => data.fill(self.cmos_index),
            0x71 => {
                let i = usize::from(self.cmos_index & 0x7f);
                if i < 0x0a || i == 0x32 {
                    self.rtc();
                }
                let v = self.cmos.get(i).copied().unwrap_or(0xff);
                data.fill(v);
            }
            DEBUG_PORT => data.fill(DEBUG_READBACK),
            p if Some(p) == self.pm_timer_port() && data.len() == 4 => {
                data.copy_from_slice(&self.pm_timer().to_le_bytes());
            }
            _ => data.fill(0xff),
        }
    }

    /// A port write.
    pub fn pio_out(&mut self, port: u16, data: &[u8]) {
        match (port, data) {
            (PCI_ADDRESS, [a, b, c, d]) => self.address = u32::from_le_bytes([*a, *b, *c, *d]),
            (p, _) if PCI_DATA.contains(&p) => {
                let off = usize::from(p - PCI_DATA.start);
                if let Some((f, reg)) = self.selected() {
                    for (i, v) in data.iter().enumerate() {
                        let at = reg + off + i;
                        // The ID, class and header type are read-only.
                        if (0x10..0x100).contains(&at) || at == 0x04 || at == 0x05 {
                            f.config[at] = *v;
                        }
                    }
                }
            }
            (0x70, [v]) => self.cmos_index = *v,
            (0x71, [v]) => {
                let i = usize::from(self.cmos_index & 0x7f);
                // The memory-size bytes and status D are QEMU's to set; others keep what
                // the firmware writes (status A/B/C, the shutdown byte 0x0f, ...).
                if !matches!(i, 0x0d | 0x34 | 0x35 | 0x5b..=0x5d)
                    && let Some(c) = self.cmos.get_mut(i)
                {
                    *c = *v;
                }
            }
            (DEBUG_PORT, _) => {
                if let Some(log) = self.firmware_log.as_mut() {
                    let _ = log.write_all(data);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use std::sync::{Arc, Mutex};

    fn config(p: &mut Platform, dev: u32, func: u32, reg: u32, width: usize) -> u32 {
        p.pio_out(
            PCI_ADDRESS,
            &((1 << 31) | (dev << 11) | (func << 8) | (reg & 0xfc)).to_le_bytes(),
        );
        let mut b = vec![0u8; width];
        p.pio_in(PCI_DATA.start + u16::try_from(reg & 3).unwrap(), &mut b);
        b.resize(4, 0);
        u32::from_le_bytes(b.try_into().unwrap())
    }

    #[test]
    fn the_host_bridge_names_the_machine() {
        let mut q35 = Platform::new(Machine::Q35, 2 << 30, 0, None);
        assert_eq!(config(&mut q35, 0, 0, 0, 4), 0x29c0_8086);
        assert_eq!(config(&mut q35, 0, 0, 2, 2), 0x29c0, "the DID OVMF reads");
        assert_eq!(
            config(&mut q35, 0x1f, 0, 0x08, 4) >> 16,
            0x0601,
            "an ISA bridge"
        );
        assert_eq!(
            config(&mut q35, 3, 0, 0, 4),
            0xffff_ffff,
            "absent functions"
        );
        let mut pc = Platform::new(Machine::Pc, 2 << 30, 0, None);
        assert_eq!(config(&mut pc, 0, 0, 2, 2), 0x1237);
        // The ID is read-only; the registers above keep what the firmware writes.
        pc.pio_out(PCI_DATA.start, &[0, 0, 0, 0]);
        assert_eq!(config(&mut pc, 0, 0, 0, 4), 0x1237_8086);
    }

    #[test]
    fn the_pm_timer_appears_where_the_firmware_puts_it_and_ticks() {
        let mut p = Platform::new(Machine::Q35, 2 << 30, 0, None);
        assert!(!p.claims(0x608));
        // OVMF: PMBASE 0x600 at 0:1f.0 0x40, then ACPI_EN (0x44 bit 7).
        p.pio_out(
            PCI_ADDRESS,
            &((1u32 << 31) | (0x1f << 11) | 0x40).to_le_bytes(),
        );
        p.pio_out(PCI_DATA.start, &0x601u32.to_le_bytes());
        p.pio_out(
            PCI_ADDRESS,
            &((1u32 << 31) | (0x1f << 11) | 0x44).to_le_bytes(),
        );
        p.pio_out(PCI_DATA.start, &[0x80]);
        assert!(p.claims(0x608));
        let read = |p: &mut Platform| {
            let mut b = [0u8; 4];
            p.pio_in(0x608, &mut b);
            u32::from_le_bytes(b)
        };
        let a = read(&mut p);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = read(&mut p);
        assert!(
            b.wrapping_sub(a) & 0xff_ffff >= 7000,
            "{a} {b}: 2 ms is about 7159 ticks"
        );
        assert!(a <= 0xff_ffff && b <= 0xff_ffff, "24 bits");
    }

    #[test]
    fn cmos_holds_the_memory_size_and_a_valid_clock() {
        let mut p = Platform::new(Machine::Q35, 0x8000_0000, 6 << 30, None);
        let cmos = |p: &mut Platform, i: u8| {
            p.pio_out(0x70, &[i]);
            let mut b = [0u8];
            p.pio_in(0x71, &mut b);
            b[0]
        };
        // (2 GiB - 16 MiB) / 64 KiB = 0x7f00; 6 GiB / 64 KiB = 0x018000.
        assert_eq!((cmos(&mut p, 0x34), cmos(&mut p, 0x35)), (0x00, 0x7f));
        assert_eq!(
            (cmos(&mut p, 0x5b), cmos(&mut p, 0x5c), cmos(&mut p, 0x5d)),
            (0x00, 0x80, 0x01)
        );
        assert_eq!(cmos(&mut p, 0x0d) & 0x80, 0x80, "valid RAM and time");
        assert_eq!(cmos(&mut p, 0x0a) & 0x80, 0, "no update in progress");
        let century = cmos(&mut p, 0x32);
        assert_eq!(century, 0x20);
        let month = cmos(&mut p, 0x08);
        assert!(
            (0x01..=0x12).contains(&month) && month & 0xf <= 9,
            "{month:#x} is BCD"
        );
        // The firmware may not change the memory size.
        p.pio_out(0x70, &[0x34]);
        p.pio_out(0x71, &[0xff]);
        assert_eq!(cmos(&mut p, 0x34), 0x00);
    }

    #[test]
    fn the_debug_port_reads_e9_and_logs() {
        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let mut p = Platform::new(Machine::Q35, 1 << 30, 0, Some(Box::new(log.clone())));
        let mut b = [0u8];
        p.pio_in(DEBUG_PORT, &mut b);
        assert_eq!(b[0], 0xe9);
        for c in b"PEI\n" {
            p.pio_out(DEBUG_PORT, &[*c]);
        }
        assert_eq!(&*log.0.lock().unwrap(), b"PEI\n");
    }
}
