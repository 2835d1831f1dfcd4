//! The attesting guest's fw_cfg lookup (launcher/guest/attest/src/fwcfg.rs `read_file`),
//! compiled from its source, against a host that answers with arbitrary bytes: it ends,
//! reads a bounded number of bytes, and never returns more than fits. Then against a
//! well-formed directory made from the same bytes: it finds the nonce file and reads it
//! exactly.
#![no_main]

/// What io.rs needs of the guest's hardware module; never reached here (the fuzz `Io`
/// implements the port accesses).
mod hw {
    pub fn outb(_: u16, _: u8) {
        unreachable!("the fuzz target's Io does the port I/O")
    }
    pub fn outw(_: u16, _: u16) {
        unreachable!("the fuzz target's Io does the port I/O")
    }
    pub fn inb(_: u16) -> u8 {
        unreachable!("the fuzz target's Io does the port I/O")
    }
    pub fn halt() -> ! {
        unreachable!("the fuzz target's Io does the port I/O")
    }
}
#[path = "../../../launcher/guest/attest/src/fwcfg.rs"]
mod fwcfg;
#[allow(dead_code, reason = "the guest's Plain port I/O is compiled, not used")]
#[path = "../../../launcher/guest/attest/src/io.rs"]
mod io;

use libfuzzer_sys::fuzz_target;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const FILE_DIR: u16 = 0x19;
/// The most entries the guest walks (fwcfg.rs MAX_FILES) and the bytes of each.
const MAX_FILES: usize = 4096;
const ENTRY: usize = 64;

/// A fw_cfg device: the selected item's bytes, read in order, zero past the end (QEMU).
struct Device<'a> {
    items: Vec<(u16, &'a [u8])>,
    /// What a key not in `items` holds.
    other: &'a [u8],
    selected: &'a [u8],
    at: usize,
    reads: usize,
}

impl io::Io for Device<'_> {
    fn out8(&mut self, _: u16, _: u8) {}
    fn out16(&mut self, port: u16, v: u16) {
        assert_eq!(port, SELECTOR);
        self.selected = self
            .items
            .iter()
            .find(|(k, _)| *k == v)
            .map_or(self.other, |(_, d)| d);
        self.at = 0;
    }
    fn in8(&mut self, port: u16) -> u8 {
        assert_eq!(port, DATA);
        self.reads += 1;
        let b = self.selected.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&out_len, rest)) = data.split_first() else {
        return;
    };
    // Any bytes as the directory, and as every other item.
    let mut out = vec![0u8; usize::from(out_len)];
    let mut dev = Device {
        items: Vec::new(),
        other: rest,
        selected: &[],
        at: 0,
        reads: 0,
    };
    if let Some(n) = fwcfg::read_file(&mut dev, b"opt/cvm/nonce", &mut out) {
        assert!(n <= out.len());
    }
    assert!(dev.reads <= 4 + MAX_FILES * ENTRY + out.len());

    // A well-formed directory: files named "f<i>" holding the chunks of `rest`, the
    // nonce file among them at the place the first byte picks.
    let chunks: Vec<&[u8]> = rest.chunks(7).take(1000).collect();
    let at = usize::from(out_len) % (chunks.len() + 1);
    let nonce: &[u8] = rest.get(..rest.len().min(32)).unwrap_or_default();
    let mut names: Vec<Vec<u8>> = (0..chunks.len())
        .map(|i| format!("f{i}").into_bytes())
        .collect();
    let mut contents = chunks;
    names.insert(at, b"opt/cvm/nonce".to_vec());
    contents.insert(at, nonce);
    let mut dir = (names.len() as u32).to_be_bytes().to_vec();
    for (i, (name, content)) in names.iter().zip(&contents).enumerate() {
        dir.extend((content.len() as u32).to_be_bytes());
        dir.extend((0x20 + i as u16).to_be_bytes());
        dir.extend([0, 0]);
        let mut n = [0u8; 56];
        n[..name.len()].copy_from_slice(name);
        dir.extend(n);
    }
    let mut items: Vec<(u16, &[u8])> = vec![(FILE_DIR, &dir)];
    for (i, c) in contents.iter().enumerate() {
        items.push((0x20 + i as u16, c));
    }
    let mut dev = Device {
        items,
        other: &[],
        selected: &[],
        at: 0,
        reads: 0,
    };
    let mut out = [0u8; 32];
    assert_eq!(
        fwcfg::read_file(&mut dev, b"opt/cvm/nonce", &mut out),
        Some(nonce.len())
    );
    assert_eq!(&out[..nonce.len()], nonce);
    // Too small a buffer: refused, nothing read past it.
    if !nonce.is_empty() {
        let mut small = vec![0u8; nonce.len() - 1];
        assert_eq!(
            fwcfg::read_file(&mut dev, b"opt/cvm/nonce", &mut small),
            None
        );
    }
});
