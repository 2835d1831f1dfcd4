//! QEMU's fw_cfg through its port interface (QEMU docs/specs/fw_cfg.rst; cvm's device in
//! launcher/src/vmm/fwcfg.rs): a 16-bit write of the key to the selector 0x510 restarts
//! that item at offset 0, each read of the data port 0x511 returns its next byte. The
//! file directory (key 0x19) is a big-endian u32 count, then per file {u32 size, u16
//! select, u16 reserved, char name[56]}. Every length the host gives is bounded here: a
//! host can only make the lookup fail.

use crate::io::Io;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const FILE_DIR: u16 = 0x19;
const NAME_LEN: usize = 56;
/// More directory entries than any QEMU-compatible host serves are not walked.
const MAX_FILES: u32 = 4096;

fn read(io: &mut impl Io, buf: &mut [u8]) {
    for b in buf {
        *b = io.in8(DATA);
    }
}

fn be32(io: &mut impl Io) -> u32 {
    let mut b = [0u8; 4];
    read(io, &mut b);
    u32::from_be_bytes(b)
}

/// Reads the file `name` into `out`; its size when it is at most `out.len()`, `None`
/// when it is missing or larger.
pub fn read_file(io: &mut impl Io, name: &[u8], out: &mut [u8]) -> Option<usize> {
    io.out16(SELECTOR, FILE_DIR);
    let count = be32(io).min(MAX_FILES);
    let mut found = None;
    for _ in 0..count {
        let size = be32(io);
        let mut sel = [0u8; 4];
        read(io, &mut sel);
        let mut entry = [0u8; NAME_LEN];
        read(io, &mut entry);
        let len = entry.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        if found.is_none() && entry.get(..len) == Some(name) {
            found = Some((size, u16::from_be_bytes([sel[0], sel[1]])));
        }
    }
    let (size, key) = found?;
    let size = usize::try_from(size).ok()?;
    let dest = out.get_mut(..size)?;
    io.out16(SELECTOR, key);
    read(io, dest);
    Some(size)
}
