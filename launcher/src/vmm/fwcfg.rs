//! QEMU's fw_cfg device, x86 I/O-port variant with DMA (QEMU `hw/nvram/fw_cfg.c`,
//! `docs/specs/fw_cfg.rst`; ../shared/FWCFG.md section 1), serving exactly the plan's
//! items ([`cvm_firmware::fwcfg::FwCfg`]).
//!
//! - 0x510, 16-bit write: the selector (little-endian); the data offset goes back to 0.
//!   An 8-bit write there is a data write, ignored; an 8-bit read there reads data.
//! - 0x511, read: the next bytes of the selected item, 0 past its end or for a key that
//!   has no item. Writes are ignored (since QEMU 2.4).
//! - 0x514 and 0x518, 32-bit writes (big-endian): the DMA address's high and low halves;
//!   the write to 0x518 starts the transfer and the register reads 0 again after it.
//!   Reads of 0x514..0x51b return `"QEMU CFG"`.
//! - DMA descriptor (16 bytes, big-endian): control, length, address. SELECT (bit 3,
//!   key in bits 31:16) first; then READ (bit 1: copy from the offset, zeroes past the end),
//!   else WRITE (bit 4: refused, no item is writable), else SKIP (bit 2: advance); the
//!   control word is written back as 0, or ERROR (bit 0) on an error.
//!
//! Every address and length the guest gives is checked against guest RAM before it is
//! used (through [`Runtime`], which under SNP and TDX is the shared side, as the firmware
//! arranges its DMA buffers).

use super::backend::Runtime;
use cvm_firmware::fwcfg::FwCfg;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The selector port.
pub const PORT_SELECTOR: u16 = 0x510;
/// The data port.
pub const PORT_DATA: u16 = 0x511;
/// The DMA address register's first port (high half); the low half is at +4.
pub const PORT_DMA: u16 = 0x514;
/// The ports the device answers: 0x510..0x51c.
pub const PORTS: std::ops::Range<u16> = 0x510..0x51c;

const DMA_SIGNATURE: &[u8; 8] = b"QEMU CFG";
const CTL_ERROR: u32 = 0x01;
const CTL_READ: u32 = 0x02;
const CTL_SKIP: u32 = 0x04;
const CTL_SELECT: u32 = 0x08;
const CTL_WRITE: u32 = 0x10;
/// Bit 15 of a key, `FW_CFG_ARCH_LOCAL`; bit 14, the write channel, is ignored.
const KEY_MASK: u16 = 0xbfff;
/// Bytes copied per guest-memory write of a DMA read.
const CHUNK: usize = 64 << 10;

/// The device's state, behind the devices' lock.
pub struct FwCfgDevice {
    items: BTreeMap<u16, Vec<u8>>,
    key: u16,
    offset: u64,
    dma_high: u64,
    memory: Arc<dyn Runtime>,
}

impl std::fmt::Debug for FwCfgDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwCfgDevice")
            .field("items", &self.items.len())
            .field("key", &self.key)
            .field("offset", &self.offset)
            .finish()
    }
}

/// What one DMA transfer did, for the tests and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dma {
    /// The descriptor could not be read (outside guest RAM): nothing written back.
    NoDescriptor,
    /// Done; the control word was written back as 0.
    Done,
    /// Refused (WRITE, or data outside guest RAM); ERROR written back.
    Error,
}

impl FwCfgDevice {
    /// A device serving `cfg`, doing DMA through `memory`. `Err` when the plan's items
    /// cannot be laid out (the firmware crate says why).
    pub fn new(cfg: &FwCfg<'_>, memory: Arc<dyn Runtime>) -> Result<Self, String> {
        let items = cfg
            .contents()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k, v.into_owned()))
            .collect();
        Ok(FwCfgDevice {
            items,
            key: 0,
            offset: 0,
            dma_high: 0,
            memory,
        })
    }

    fn item(&self) -> &[u8] {
        self.items
            .get(&(self.key & KEY_MASK))
            .map_or(&[], Vec::as_slice)
    }

    fn select(&mut self, key: u16) {
        self.key = key;
        self.offset = 0;
    }

    /// QEMU `fw_cfg_read`: the byte at the offset, which advances only inside the item.
    fn next_byte(&mut self) -> u8 {
        match usize::try_from(self.offset)
            .ok()
            .and_then(|o| self.item().get(o).copied())
        {
            Some(b) => {
                self.offset = self.offset.saturating_add(1);
                b
            }
            None => 0,
        }
    }

    /// A port read of `data.len()` bytes at `port` (one of [`PORTS`]).
    pub fn pio_in(&mut self, port: u16, data: &mut [u8]) {
        match port {
            // Successive bytes, for wide reads (the data register is big-endian, so bytes
            // land in item order) and for string reads (`rep insb`, which SEV-ES guests'
            // #VC handler turns into one exit of many bytes) alike.
            PORT_DATA => data.iter_mut().for_each(|d| *d = self.next_byte()),
            PORT_SELECTOR if data.len() == 1 => {
                if let Some(d) = data.first_mut() {
                    *d = self.next_byte();
                }
            }
            p if (PORT_DMA..PORT_DMA + 8).contains(&p) => {
                let at = usize::from(p - PORT_DMA);
                for (i, d) in data.iter_mut().enumerate() {
                    *d = DMA_SIGNATURE.get(at + i).copied().unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    /// A port write at `port` (one of [`PORTS`]).
    pub fn pio_out(&mut self, port: u16, data: &[u8]) -> Option<Dma> {
        match (port, data) {
            (PORT_SELECTOR, [lo, hi]) => {
                self.select(u16::from_le_bytes([*lo, *hi]));
                None
            }
            (PORT_DMA, [a, b, c, d]) => {
                self.dma_high = u64::from(u32::from_be_bytes([*a, *b, *c, *d])) << 32;
                None
            }
            (p, [a, b, c, d]) if p == PORT_DMA + 4 => {
                let addr = self.dma_high | u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
                self.dma_high = 0;
                Some(self.dma(addr))
            }
            // 8-bit data writes, other widths and ports: ignored, as QEMU does.
            _ => None,
        }
    }

    /// Runs the DMA descriptor at `addr`.
    pub fn dma(&mut self, addr: u64) -> Dma {
        let mut desc = [0u8; 16];
        if !self.memory.is_ram(addr, 16) || self.memory.read(addr, &mut desc).is_err() {
            return Dma::NoDescriptor;
        }
        let word = |i: usize| u32::from_be_bytes([desc[i], desc[i + 1], desc[i + 2], desc[i + 3]]);
        let control = word(0);
        let length = word(4);
        let target = u64::from_be_bytes(desc[8..16].try_into().unwrap_or([0; 8]));
        if control & CTL_SELECT != 0 {
            self.select(u16::try_from(control >> 16).unwrap_or(0));
        }
        let ok = if control & CTL_READ != 0 {
            self.dma_read(target, length)
        } else if control & CTL_WRITE != 0 {
            false
        } else {
            if control & CTL_SKIP != 0 {
                self.offset = self.offset.saturating_add(u64::from(length));
            }
            true
        };
        let status: u32 = if ok { 0 } else { CTL_ERROR };
        if self.memory.write(addr, &status.to_be_bytes()).is_err() {
            return Dma::NoDescriptor;
        }
        if ok { Dma::Done } else { Dma::Error }
    }

    /// Copies `length` bytes of the item from the offset to guest RAM at `target`,
    /// zero-filled past the item's end; `false` (nothing copied) when the target is not
    /// all guest RAM.
    fn dma_read(&mut self, target: u64, length: u32) -> bool {
        let len = u64::from(length);
        if len > 0 && !self.memory.is_ram(target, len) {
            return false;
        }
        let item_len = u64::try_from(self.item().len()).unwrap_or(u64::MAX);
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(u64::try_from(CHUNK).unwrap_or(u64::MAX));
            let start = self.offset.saturating_add(done);
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
            if start < item_len {
                let from = usize::try_from(start).unwrap_or(usize::MAX);
                let avail = self.item().get(from..).unwrap_or_default();
                let k = avail.len().min(buf.len());
                buf[..k].copy_from_slice(&avail[..k]);
            }
            if self.memory.write(target + done, &buf).is_err() {
                return false;
            }
            done += n;
        }
        self.offset = self.offset.saturating_add(len);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use crate::vmm::convert::fake::Fake;
    use cvm_firmware::fwcfg::key;
    use cvm_firmware::plan::FwCfgFile;
    use std::borrow::Cow;

    fn device() -> (FwCfgDevice, Arc<Fake>) {
        let cfg = FwCfg {
            items: vec![(key::CMDLINE_DATA, Cow::Borrowed(b"console=ttyS0\0"))],
            files: vec![FwCfgFile {
                name: "etc/e820",
                data: Cow::Owned((0u8..40).collect()),
            }],
        };
        let mem = Arc::new(Fake::default());
        (FwCfgDevice::new(&cfg, mem.clone()).unwrap(), mem)
    }

    fn read(d: &mut FwCfgDevice, key: u16, n: usize) -> Vec<u8> {
        d.pio_out(PORT_SELECTOR, &key.to_le_bytes());
        (0..n)
            .map(|_| {
                let mut b = [0u8];
                d.pio_in(PORT_DATA, &mut b);
                b[0]
            })
            .collect()
    }

    fn descriptor(mem: &Fake, at: u64, control: u32, length: u32, target: u64) {
        let mut d = Vec::new();
        d.extend_from_slice(&control.to_be_bytes());
        d.extend_from_slice(&length.to_be_bytes());
        d.extend_from_slice(&target.to_be_bytes());
        mem.write(at, &d).unwrap();
    }

    fn start(d: &mut FwCfgDevice, at: u64) -> Option<Dma> {
        d.pio_out(PORT_DMA, &u32::try_from(at >> 32).unwrap().to_be_bytes());
        d.pio_out(
            PORT_DMA + 4,
            &u32::try_from(at & 0xffff_ffff).unwrap().to_be_bytes(),
        )
    }

    fn bytes(mem: &Fake, at: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        mem.read(at, &mut b).unwrap();
        b
    }

    #[test]
    fn the_port_interface_serves_signature_id_directory_and_items() {
        let (mut d, _) = device();
        assert_eq!(read(&mut d, key::SIGNATURE, 4), b"QEMU");
        assert_eq!(read(&mut d, key::ID, 4), 3u32.to_le_bytes());
        let dir = read(&mut d, key::FILE_DIR, 4 + 64);
        assert_eq!(&dir[..4], &1u32.to_be_bytes());
        assert_eq!(&dir[4..8], &40u32.to_be_bytes());
        assert_eq!(&dir[8..10], &0x20u16.to_be_bytes());
        assert_eq!(&dir[12..21], b"etc/e820\0");
        // Past the end and unknown keys read 0; selecting again restarts.
        assert_eq!(read(&mut d, key::CMDLINE_DATA, 16)[13..], [0, 0, 0]);
        assert_eq!(read(&mut d, 0x1234, 2), [0, 0]);
        assert_eq!(read(&mut d, 0x20, 3), [0, 1, 2]);
        // An 8-bit write to the selector is a data write (ignored); reads there read data.
        d.pio_out(PORT_SELECTOR, &[0x19]);
        let mut b = [0u8];
        d.pio_in(PORT_SELECTOR, &mut b);
        assert_eq!(b[0], 3, "still item 0x20, at offset 3");
        // A string read (one exit, many bytes) continues the item.
        let mut many = [0u8; 5];
        d.pio_in(PORT_DATA, &mut many);
        assert_eq!(many, [4, 5, 6, 7, 8]);
        let mut sig = [0u8; 4];
        d.pio_in(PORT_DMA, &mut sig);
        assert_eq!(&sig, b"QEMU");
        d.pio_in(PORT_DMA + 4, &mut sig);
        assert_eq!(&sig, b" CFG");
    }

    #[test]
    fn dma_reads_skips_selects_and_refuses_writes() {
        let (mut d, mem) = device();
        // SELECT etc/e820 and READ 8 bytes.
        descriptor(
            &mem,
            0x1000,
            (0x20 << 16) | CTL_SELECT | CTL_READ,
            8,
            0x2000,
        );
        assert_eq!(start(&mut d, 0x1000), Some(Dma::Done));
        assert_eq!(bytes(&mem, 0x2000, 8), (0u8..8).collect::<Vec<_>>());
        assert_eq!(
            bytes(&mem, 0x1000, 4),
            [0, 0, 0, 0],
            "control written back as 0"
        );
        // SKIP 30, then READ 4: two item bytes, then zeroes.
        descriptor(&mem, 0x1000, CTL_SKIP, 30, 0);
        assert_eq!(start(&mut d, 0x1000), Some(Dma::Done));
        descriptor(&mem, 0x1000, CTL_READ, 4, 0x3000);
        mem.write(0x3000, &[0xff; 4]).unwrap();
        assert_eq!(start(&mut d, 0x1000), Some(Dma::Done));
        assert_eq!(bytes(&mem, 0x3000, 4), [38, 39, 0, 0]);
        // WRITE: no item is writable.
        descriptor(&mem, 0x1000, CTL_WRITE, 4, 0x3000);
        assert_eq!(start(&mut d, 0x1000), Some(Dma::Error));
        assert_eq!(bytes(&mem, 0x1000, 4), CTL_ERROR.to_be_bytes());
        // A target outside guest RAM: ERROR, nothing written.
        descriptor(&mem, 0x1000, CTL_READ, 16, (1 << 30) - 8);
        assert_eq!(start(&mut d, 0x1000), Some(Dma::Error));
        // A descriptor outside guest RAM: nothing read or written back.
        assert_eq!(start(&mut d, (1 << 30) - 8), Some(Dma::NoDescriptor));
        assert_eq!(start(&mut d, u64::MAX - 3), Some(Dma::NoDescriptor));
        // The address register is cleared after each transfer.
        assert_eq!(d.dma_high, 0);
    }

    #[test]
    fn random_port_and_dma_traffic_stays_inside_guest_memory() {
        let (mut d, mem) = device();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let r = next();
            let port = PORTS.start + u16::try_from(r % 12).unwrap();
            let width = [1usize, 2, 4][usize::try_from((r >> 8) % 3).unwrap()];
            if r & (1 << 20) != 0 {
                let mut buf = vec![0u8; width];
                d.pio_in(port, &mut buf);
            } else {
                // Descriptors at random places, some in RAM, with random fields.
                let at = (next() % (2 << 30)) & !0xf;
                if r & (1 << 21) != 0 && at + 16 <= 1 << 30 {
                    let target = next() % (3 << 29);
                    descriptor(
                        &mem,
                        at,
                        u32::try_from(next() & 0xffff_ffff).unwrap(),
                        u32::try_from(next() % 64).unwrap(),
                        target,
                    );
                }
                let value = u32::try_from(next() & 0xffff_ffff).unwrap().to_be_bytes();
                d.pio_out(port, &value[..width]);
                if port == PORT_DMA + 4 && width == 4 {
                    start(&mut d, at);
                }
            }
        }
        // The fake's writes all fell in its guest RAM (it refuses any other).
        let calls = mem.calls.lock().unwrap();
        assert!(calls.iter().all(|(gpa, len, _, _)| gpa + len <= 1 << 30));
    }
}
