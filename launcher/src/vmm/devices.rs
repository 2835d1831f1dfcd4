//! The devices of a plain guest: a 16550 UART on COM1, the debug-exit port, the two legacy
//! reset ports, and with the split irqchip the I/O APIC; every other port or MMIO access
//! is ignored (reads as all ones) and logged at a limited rate, so that a guest cannot
//! flood the host's log or stop the VMM.

use super::fwcfg::{Dma, FwCfgDevice, PORTS as FW_CFG_PORTS};
use super::ioapic::{self, Ioapic};
use super::platform::Platform;
use super::rate::Counter;
use std::io::Write;
use std::sync::{Arc, Mutex};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// COM1's eight registers start here (where the plan's ACPI tables declare them).
pub const SERIAL_PORT: u16 = cvm_firmware::x86::COM1_PORT;
/// COM1's interrupt (ISA IRQ 4, I/O APIC pin 4).
pub const SERIAL_IRQ: u32 = cvm_firmware::x86::COM1_IRQ;
/// A write of one byte N to this port stops the VM with guest exit status N. (The address
/// of QEMU's `isa-debug-exit`; unlike QEMU, the value is the status itself.)
pub const DEBUG_EXIT_PORT: u16 = 0x501;
/// The i8042 command port: command 0xfe pulses the CPU reset line.
const I8042_COMMAND: u16 = 0x64;
const I8042_DATA: u16 = 0x60;
/// The PCI reset control register: bit 2 resets.
const RESET_CONTROL: u16 = 0xcf9;
/// POST code port, written by firmware and by Linux's I/O delay: ignored silently.
const POST_PORT: u16 = 0x80;
/// The 8259 PICs' and their edge/level control ports. They reach the VMM only with the
/// split irqchip, which has no 8259: reads float high (Linux's probe then finds no PIC),
/// writes are ignored, silently.
const PIC_PORTS: [u16; 6] = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1];

/// Why a device stops the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStop {
    /// The guest wrote its exit status to the debug-exit port.
    DebugExit(u8),
    /// The guest asked for a reset, through the named port.
    Reset(&'static str),
}

/// How the serial port's interrupt reaches the guest.
pub enum Interrupt {
    /// An irqfd on the in-kernel irqchip's GSI.
    Irqfd(EventFd),
    /// A pin of the VMM's I/O APIC (split irqchip).
    Ioapic(Arc<Ioapic>, usize),
}

impl Trigger for Interrupt {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        match self {
            Interrupt::Irqfd(fd) => fd.write(1),
            Interrupt::Ioapic(ioapic, pin) => ioapic.pulse(*pin),
        }
    }
}

/// Where the guest's serial output goes.
pub type SerialOut = Box<dyn Write + Send>;

/// The devices, shared by the vCPU threads.
pub struct Devices {
    serial: Mutex<Serial<Interrupt, vm_superio::serial::NoEvents, SerialOut>>,
    ioapic: Option<Arc<Ioapic>>,
    fw_cfg: Option<Mutex<FwCfgDevice>>,
    platform: Option<Mutex<Platform>>,
    /// fw_cfg DMA transfers refused (guest-triggered: logged at a limited rate).
    fw_cfg_refused: Counter,
    unknown: Counter,
}

impl Devices {
    /// Devices with the serial port writing to `out` and interrupting through `irq`; the
    /// I/O APIC that `irq` names, if any, also answers its MMIO page.
    pub fn new(out: SerialOut, irq: Interrupt) -> Self {
        let ioapic = match &irq {
            Interrupt::Ioapic(a, _) => Some(Arc::clone(a)),
            Interrupt::Irqfd(_) => None,
        };
        Devices {
            serial: Mutex::new(Serial::new(irq, out)),
            ioapic,
            fw_cfg: None,
            platform: None,
            fw_cfg_refused: Counter::default(),
            unknown: Counter::default(),
        }
    }

    /// The same devices with the chipset OVMF probes (PCI host bridge, PM timer, CMOS,
    /// debug port).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(Mutex::new(platform));
        self
    }

    /// The platform's lock, when it answers `port`.
    fn platform_at(&self, port: u16) -> Option<std::sync::MutexGuard<'_, Platform>> {
        let p = self.platform.as_ref()?.lock().ok()?;
        p.claims(port).then_some(p)
    }

    /// The same devices with QEMU's fw_cfg device at 0x510 serving `fw_cfg`.
    pub fn with_fw_cfg(mut self, fw_cfg: FwCfgDevice) -> Self {
        self.fw_cfg = Some(Mutex::new(fw_cfg));
        self
    }

    /// How many accesses went to ports or addresses with no device.
    pub fn unknown_accesses(&self) -> u64 {
        self.unknown.count()
    }

    /// A port write.
    pub fn pio_out(&self, port: u16, data: &[u8]) -> Option<DeviceStop> {
        let first = data.first().copied().unwrap_or(0);
        if let Some(f) = self
            .fw_cfg
            .as_ref()
            .filter(|_| FW_CFG_PORTS.contains(&port))
        {
            if let Ok(mut f) = f.lock()
                && let Some(dma @ (Dma::NoDescriptor | Dma::Error)) = f.pio_out(port, data)
            {
                let (n, log) = self.fw_cfg_refused.tick();
                if log {
                    tracing::warn!("guest: fw_cfg DMA refused: {dma:?} ({n} so far)");
                }
            }
            return None;
        }
        if let Some(mut p) = self.platform_at(port) {
            p.pio_out(port, data);
            return None;
        }
        match (port, serial_offset(port)) {
            (DEBUG_EXIT_PORT, _) => return Some(DeviceStop::DebugExit(first)),
            (I8042_COMMAND, _) if first == 0xfe => return Some(DeviceStop::Reset("i8042")),
            (RESET_CONTROL, _) if data.len() == 1 && first & 0x4 != 0 => {
                return Some(DeviceStop::Reset("0xcf9"));
            }
            (RESET_CONTROL | I8042_COMMAND | I8042_DATA | POST_PORT, _) => {}
            (p, None) if PIC_PORTS.contains(&p) => {}
            // The 16550's registers are one byte wide; a wider access is not the UART's
            // (Firecracker's serial device drops them the same way).
            (p, Some(off)) if data.len() == 1 => {
                if let Ok(mut s) = self.serial.lock()
                    && s.write(off, first).is_err()
                {
                    self.note_unknown(format_args!("serial output failed at port {p:#x}"));
                }
            }
            (p, Some(_)) => self.note_unknown(format_args!(
                "{}-byte write to serial port {p:#x} (one-byte accesses only)",
                data.len()
            )),
            (p, None) => {
                self.note_unknown(format_args!("write of {data:02x?} to unknown port {p:#x}"));
            }
        }
        None
    }

    /// A port read.
    pub fn pio_in(&self, port: u16, data: &mut [u8]) {
        if let Some(f) = self
            .fw_cfg
            .as_ref()
            .filter(|_| FW_CFG_PORTS.contains(&port))
        {
            match f.lock() {
                Ok(mut f) => f.pio_in(port, data),
                Err(_) => data.fill(0xff),
            }
            return;
        }
        if let Some(mut p) = self.platform_at(port) {
            p.pio_in(port, data);
            return;
        }
        match (port, serial_offset(port)) {
            (_, Some(off)) if data.len() == 1 => {
                let v = self.serial.lock().map_or(0xff, |mut s| s.read(off));
                data.fill(v);
            }
            (p, Some(_)) => {
                data.fill(0xff);
                self.note_unknown(format_args!(
                    "{}-byte read from serial port {p:#x} (one-byte accesses only)",
                    data.len()
                ));
            }
            (I8042_COMMAND | I8042_DATA | RESET_CONTROL, None) => data.fill(0),
            (p, None) if PIC_PORTS.contains(&p) => data.fill(0xff),
            (p, None) => {
                data.fill(0xff);
                self.note_unknown(format_args!(
                    "{}-byte read from unknown port {p:#x}",
                    data.len()
                ));
            }
        }
    }

    /// An MMIO read outside guest memory: the I/O APIC's page, or no device.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if let Some((io, offset)) = self.ioapic_at(addr) {
            return io.read(offset, data);
        }
        data.fill(0xff);
        self.note_unknown(format_args!(
            "{}-byte read at unmapped {addr:#x}",
            data.len()
        ));
    }

    /// An MMIO write outside guest memory: the I/O APIC's page, or ignored.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        if let Some((io, offset)) = self.ioapic_at(addr) {
            return io.write(offset, data);
        }
        self.note_unknown(format_args!("write of {data:02x?} at unmapped {addr:#x}"));
    }

    /// A local APIC's EOI for a level-triggered vector of the I/O APIC's
    /// (`KVM_EXIT_IOAPIC_EOI`). The I/O APIC sets no remote IRR (see [`ioapic`]), so there
    /// is nothing to clear.
    pub fn ioapic_eoi(&self, vector: u8) {
        tracing::trace!("I/O APIC EOI for vector {vector:#x}");
    }

    fn ioapic_at(&self, addr: u64) -> Option<(&Ioapic, u64)> {
        let offset = addr.checked_sub(ioapic::BASE)?;
        self.ioapic
            .as_deref()
            .filter(|_| offset < ioapic::SIZE)
            .map(|io| (io, offset))
    }

    fn note_unknown(&self, what: std::fmt::Arguments<'_>) {
        let (n, log) = self.unknown.tick();
        if log {
            tracing::warn!("guest: {what} (ignored; {n} such accesses so far)");
        }
    }
}

fn serial_offset(port: u16) -> Option<u8> {
    port.checked_sub(SERIAL_PORT)
        .filter(|o| *o < 8)
        .and_then(|o| u8::try_from(o).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn devices() -> (Devices, Capture) {
        let cap = Capture::default();
        let d = Devices::new(
            Box::new(cap.clone()),
            Interrupt::Irqfd(EventFd::new(0).unwrap()),
        );
        (d, cap)
    }

    #[test]
    fn serial_debug_exit_and_reset() {
        let (d, cap) = devices();
        for b in b"hi\n" {
            assert_eq!(d.pio_out(SERIAL_PORT, &[*b]), None);
        }
        assert_eq!(&cap.0.lock().unwrap()[..], b"hi\n");
        let mut lsr = [0u8];
        d.pio_in(SERIAL_PORT + 5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "THR empty");
        assert_eq!(
            d.pio_out(DEBUG_EXIT_PORT, &[7]),
            Some(DeviceStop::DebugExit(7))
        );
        assert_eq!(d.pio_out(0x64, &[0xfe]), Some(DeviceStop::Reset("i8042")));
        assert_eq!(d.pio_out(0xcf9, &[0x6]), Some(DeviceStop::Reset("0xcf9")));
        assert_eq!(d.pio_out(0xcf9, &[0x2]), None);
        assert_eq!(d.unknown_accesses(), 0);
    }

    #[test]
    fn serial_takes_one_byte_accesses_only() {
        let (d, cap) = devices();
        // A 16- or 32-bit write to the data port is not a character.
        assert_eq!(d.pio_out(SERIAL_PORT, b"ab"), None);
        assert_eq!(d.pio_out(SERIAL_PORT, b"wxyz"), None);
        assert!(cap.0.lock().unwrap().is_empty());
        let mut wide = [0u8; 2];
        d.pio_in(SERIAL_PORT + 5, &mut wide);
        assert_eq!(wide, [0xff, 0xff]);
        assert_eq!(d.unknown_accesses(), 3);
        assert_eq!(d.pio_out(SERIAL_PORT, b"c"), None);
        assert_eq!(&cap.0.lock().unwrap()[..], b"c");
    }

    #[derive(Default)]
    struct Sent(Mutex<Vec<ioapic::Msi>>);
    impl ioapic::MsiSink for Arc<Sent> {
        fn send(&self, msi: ioapic::Msi) -> std::io::Result<()> {
            self.0.lock().unwrap().push(msi);
            Ok(())
        }
    }

    #[test]
    fn split_irqchip_serial_interrupt_goes_through_the_ioapic_page() {
        let sent = Arc::new(Sent::default());
        let io = Arc::new(Ioapic::new(1, Box::new(Arc::clone(&sent))));
        let d = Devices::new(Box::new(std::io::sink()), Interrupt::Ioapic(io, 4));
        let ier = SERIAL_PORT + 1;
        // Pin 4 masked (reset state): enabling the THR-empty interrupt sends nothing.
        assert_eq!(d.pio_out(ier, &[0x02]), None);
        // Program pin 4 through the MMIO page: vector 0x41, to APIC 0.
        d.mmio_write(ioapic::BASE, &[0x18, 0, 0, 0]);
        d.mmio_write(ioapic::BASE + 0x10, &[0x41, 0, 0, 0]);
        let mut v = [0u8; 4];
        d.mmio_read(ioapic::BASE + 0x10, &mut v);
        assert_eq!(v, [0x41, 0, 0, 0]);
        let mut iir = [0u8];
        d.pio_in(SERIAL_PORT + 2, &mut iir); // acknowledge the pending one
        assert_eq!(d.pio_out(ier, &[0x02]), None);
        assert_eq!(
            *sent.0.lock().unwrap(),
            [ioapic::Msi {
                address: 0xfee0_0000,
                data: 0x41
            }]
        );
        // No 8259: reads float high, silently; past the I/O APIC page nothing answers.
        let mut b = [0u8; 1];
        d.pio_in(0x21, &mut b);
        assert_eq!((b, d.pio_out(0x20, &[0x11])), ([0xff], None));
        assert_eq!(d.unknown_accesses(), 0);
        d.mmio_read(ioapic::BASE + ioapic::SIZE, &mut v);
        assert_eq!((v, d.unknown_accesses()), ([0xff; 4], 1));
    }

    /// Random port and MMIO accesses of random widths, as a hostile guest may make, over
    /// the split irqchip's devices: nothing panics, every stop is one of the two kinds,
    /// and every unknown access is counted.
    #[test]
    fn random_guest_accesses_are_survived() {
        let sent = Arc::new(Sent::default());
        let io = Arc::new(Ioapic::new(0, Box::new(Arc::clone(&sent))));
        let d = Devices::new(Box::new(std::io::sink()), Interrupt::Ioapic(io, 4));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let ports = [
            0x3f8u16, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3ff, 0x21, 0x501, 0x1234,
        ];
        for _ in 0..200_000 {
            let r = next();
            let mut buf = [0u8; 8];
            let width = [1usize, 2, 4, 8][usize::try_from(r % 4).unwrap()];
            buf[..width].copy_from_slice(&next().to_le_bytes()[..width]);
            let port = ports[usize::try_from((r >> 8) % 10).unwrap()];
            // Mostly the select register (a register index below 0x40) and the window.
            let offsets = [
                0x00,
                0x10,
                0x00,
                0x10,
                0x12,
                0x40,
                ioapic::SIZE - 4,
                ioapic::SIZE,
            ];
            let offset = offsets[usize::try_from((r >> 16) % 8).unwrap()];
            if offset == 0 {
                buf[0] %= 0x40;
            }
            let addr = ioapic::BASE + offset;
            match (r >> 40) % 4 {
                0 => {
                    if let Some(stop) = d.pio_out(port, &buf[..width.min(4)]) {
                        assert!(matches!(
                            stop,
                            DeviceStop::DebugExit(_) | DeviceStop::Reset(_)
                        ));
                    }
                }
                1 => d.pio_in(port, &mut buf[..width.min(4)]),
                2 => d.mmio_write(addr, &buf[..width]),
                _ => d.mmio_read(addr, &mut buf[..width]),
            }
        }
        assert!(d.unknown_accesses() > 0, "{}", d.unknown_accesses());
        assert!(
            !sent.0.lock().unwrap().is_empty(),
            "some entry got unmasked"
        );
    }

    #[test]
    fn unknown_accesses_read_as_ones_and_are_counted() {
        let (d, _) = devices();
        let mut b = [0u8; 4];
        d.pio_in(0x1234, &mut b);
        assert_eq!(b, [0xff; 4]);
        assert_eq!(d.pio_out(0x1234, &[1]), None);
        d.mmio_read(0xd000_0000, &mut b);
        assert_eq!(b, [0xff; 4]);
        d.mmio_write(0xd000_0000, &[1, 2]);
        for _ in 0..5000 {
            d.pio_out(0x1234, &[1]);
        }
        assert_eq!(d.unknown_accesses(), 5004);
    }
}
