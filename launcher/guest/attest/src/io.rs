//! Port I/O as each kind of guest does it: plain `in`/`out`; an SNP guest through the
//! GHCB (`snp.rs`); a TD through TDG.VP.VMCALL<Instruction.IO> (`tdx.rs`). The console
//! (COM1, written without waiting: cvm's and QEMU's 16550s never hold a byte back) and
//! the debug-exit port go through it.

use crate::hw;

const COM1: u16 = 0x3f8;
/// cvm's debug-exit port (the guest's exit status).
const DEBUG_EXIT: u16 = 0x501;

pub trait Io {
    fn out8(&mut self, port: u16, v: u8);
    fn out16(&mut self, port: u16, v: u16);
    fn in8(&mut self, port: u16) -> u8;

    fn write(&mut self, s: &[u8]) {
        for &b in s {
            self.out8(COM1, b);
        }
    }

    fn write_hex(&mut self, s: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for &b in s {
            for d in [b >> 4, b & 0xf] {
                let c = DIGITS.get(usize::from(d)).copied().unwrap_or(b'?');
                self.out8(COM1, c);
            }
        }
    }

    /// Writes `data` in standard base64 with padding (RFC 4648 section 4).
    fn write_base64(&mut self, data: &[u8]) {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let sym = |v: u32| ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'=');
        for chunk in data.chunks(3) {
            let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
            let n = (b(0) << 16) | (b(1) << 8) | b(2);
            let out = [
                sym(n >> 18),
                sym(n >> 12),
                if chunk.len() > 1 { sym(n >> 6) } else { b'=' },
                if chunk.len() > 2 { sym(n) } else { b'=' },
            ];
            self.write(&out);
        }
    }

    /// Ends the guest with `status` through the debug-exit port (cvm: the guest's exit
    /// status), and halts if the host has no such device.
    fn exit(&mut self, status: u8) -> ! {
        self.out8(DEBUG_EXIT, status);
        hw::halt()
    }
}

/// A plain VM's port I/O.
pub struct Plain;

impl Io for Plain {
    fn out8(&mut self, port: u16, v: u8) {
        hw::outb(port, v);
    }
    fn out16(&mut self, port: u16, v: u16) {
        hw::outw(port, v);
    }
    fn in8(&mut self, port: u16) -> u8 {
        hw::inb(port)
    }
}
