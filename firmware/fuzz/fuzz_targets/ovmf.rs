//! The OVMF footer table, SEV metadata and TDVF descriptor parser.
//!
//! The input becomes the body of a footer table framed by the real footer GUID (which a
//! fuzzer would never guess), inside a 16 KiB image whose other bytes also come from the
//! input, so that metadata offsets land on fuzzed structures.
#![no_main]

use cvm_firmware::guid::known::FOOTER_TABLE;
use cvm_firmware::ovmf::OvmfImage;
use libfuzzer_sys::fuzz_target;

const SIZE: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = OvmfImage::parse(data);
    let Some((&[lo, hi], rest)) = data.split_first_chunk::<2>() else { return };
    let split = rest.len().min(SIZE / 2);
    let (table, filler) = rest.split_at(split);
    let mut image = vec![0u8; SIZE];
    for (dst, src) in image.iter_mut().zip(filler) {
        *dst = *src;
    }
    let footer = SIZE - 32 - 18;
    image[footer - table.len()..footer].copy_from_slice(table);
    // The declared table size is fuzzed too (it may disagree with the real body).
    image[footer..footer + 2].copy_from_slice(&[lo, hi]);
    image[footer + 2..footer + 18].copy_from_slice(&FOOTER_TABLE.to_disk());
    if let Ok(fw) = OvmfImage::parse(&image) {
        let _ = fw.sev_es_reset_eip();
        let _ = fw.sev_hashes_table();
        let _ = fw.sev_secret_block();
    }
});
