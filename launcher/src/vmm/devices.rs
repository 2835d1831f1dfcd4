//! The devices of a plain guest: a 16550 UART on COM1, the debug-exit port, the two legacy
//! reset ports; every other port or MMIO access is ignored (reads as all ones) and logged
//! at a limited rate, so that a guest cannot flood the host's log or stop the VMM.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// COM1's eight registers start here.
pub const SERIAL_PORT: u16 = 0x3f8;
/// COM1's interrupt (ISA IRQ 4, I/O APIC pin 4).
pub const SERIAL_IRQ: u32 = 4;
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
/// How many unknown accesses are logged one by one before only every 1000th is.
const LOG_FIRST: u64 = 8;

/// Why a device stops the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStop {
    /// The guest wrote its exit status to the debug-exit port.
    DebugExit(u8),
    /// The guest asked for a reset, through the named port.
    Reset(&'static str),
}

/// Raises the serial interrupt through an irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Where the guest's serial output goes.
pub type SerialOut = Box<dyn Write + Send>;

/// The devices, shared by the vCPU threads.
pub struct Devices {
    serial: Mutex<Serial<IrqTrigger, vm_superio::serial::NoEvents, SerialOut>>,
    unknown: AtomicU64,
}

impl Devices {
    /// Devices with the serial port writing to `out` and interrupting through `irq`.
    pub fn new(out: SerialOut, irq: EventFd) -> Self {
        Devices {
            serial: Mutex::new(Serial::new(IrqTrigger(irq), out)),
            unknown: AtomicU64::new(0),
        }
    }

    /// How many accesses went to ports or addresses with no device.
    pub fn unknown_accesses(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// A port write.
    pub fn pio_out(&self, port: u16, data: &[u8]) -> Option<DeviceStop> {
        let first = data.first().copied().unwrap_or(0);
        match (port, serial_offset(port)) {
            (DEBUG_EXIT_PORT, _) => return Some(DeviceStop::DebugExit(first)),
            (I8042_COMMAND, _) if first == 0xfe => return Some(DeviceStop::Reset("i8042")),
            (RESET_CONTROL, _) if data.len() == 1 && first & 0x4 != 0 => {
                return Some(DeviceStop::Reset("0xcf9"));
            }
            (RESET_CONTROL | I8042_COMMAND | I8042_DATA | POST_PORT, _) => {}
            (p, Some(off)) => {
                if let Ok(mut s) = self.serial.lock()
                    && s.write(off, first).is_err()
                {
                    self.note_unknown(format_args!("serial output failed at port {p:#x}"));
                }
            }
            (p, None) => {
                self.note_unknown(format_args!("write of {data:02x?} to unknown port {p:#x}"));
            }
        }
        None
    }

    /// A port read.
    pub fn pio_in(&self, port: u16, data: &mut [u8]) {
        match (port, serial_offset(port)) {
            (_, Some(off)) => {
                let v = self.serial.lock().map_or(0xff, |mut s| s.read(off));
                data.fill(0);
                if let Some(b) = data.first_mut() {
                    *b = v;
                }
            }
            (I8042_COMMAND | I8042_DATA | RESET_CONTROL, None) => data.fill(0),
            (p, None) => {
                data.fill(0xff);
                self.note_unknown(format_args!(
                    "read of {} bytes from unknown port {p:#x}",
                    data.len()
                ));
            }
        }
    }

    /// An MMIO read outside guest memory: no device is there.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        data.fill(0xff);
        self.note_unknown(format_args!(
            "read of {} bytes at unmapped {addr:#x}",
            data.len()
        ));
    }

    /// An MMIO write outside guest memory: ignored.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        self.note_unknown(format_args!("write of {data:02x?} at unmapped {addr:#x}"));
    }

    fn note_unknown(&self, what: std::fmt::Arguments<'_>) {
        let n = self
            .unknown
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n <= LOG_FIRST || n.is_multiple_of(1000) {
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
        let d = Devices::new(Box::new(cap.clone()), EventFd::new(0).unwrap());
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
