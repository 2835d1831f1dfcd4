//! TDX plan building and measurement from a hostile TDVF descriptor: the input's first
//! byte picks the memory size and the add order, the rest is the section table of an
//! image whose footer table points at it (the sections drive the plan, the TD HOB and
//! the MRTD fold, so this exercises the section checks).
#![no_main]

use cvm_firmware::guid::known::{FOOTER_TABLE, TDX_METADATA_OFFSET};
use cvm_firmware::measure::tdx::measure;
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::tdx::{AddOrder, TdxConfig, plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    const SIZE: usize = 16384;
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let sections = &rest[..rest.len().min(1024)];
    let mut image = vec![0u8; SIZE];
    let mut table = Vec::new();
    table.extend_from_slice(&4096u32.to_le_bytes()); // "TDVF" at SIZE - 4096
    table.extend_from_slice(&22u16.to_le_bytes());
    table.extend_from_slice(&TDX_METADATA_OFFSET.to_disk());
    table.extend_from_slice(&u16::try_from(table.len() + 18).unwrap().to_le_bytes());
    table.extend_from_slice(&FOOTER_TABLE.to_disk());
    image[SIZE - 32 - table.len()..SIZE - 32].copy_from_slice(&table);
    let at = SIZE - 4096;
    let n = (sections.len() / 32).min(60);
    image[at..at + 4].copy_from_slice(b"TDVF");
    image[at + 4..at + 8].copy_from_slice(&u32::try_from(16 + 32 * n).unwrap().to_le_bytes());
    image[at + 8..at + 12].copy_from_slice(&1u32.to_le_bytes());
    image[at + 12..at + 16].copy_from_slice(&u32::try_from(n).unwrap().to_le_bytes());
    image[at + 16..at + 16 + 32 * n].copy_from_slice(&sections[..32 * n]);
    let Ok(fw) = OvmfImage::parse(&image) else { return };
    let cfg = TdxConfig {
        firmware: &fw,
        memory: (u64::from(sel & 0x7f) + 1) << 26,
        vcpus: 1,
        order: if sel & 0x80 == 0 { AddOrder::SinglePass } else { AddOrder::TwoPass },
        direct_boot: None,
        acpi_tables: None,
        recipe: None,
    };
    if let Ok(p) = plan(&cfg) {
        let _ = measure(&p);
    }
});
