//! SEV plan building and measurement from hostile SEV metadata: the input is the "ASEV"
//! section table of an image whose footer table points at it (the metadata drives the
//! page layout, so this exercises the layout checks).
#![no_main]

use cvm_firmware::guid::known::{FOOTER_TABLE, OVMF_SEV_METADATA, SEV_ES_RESET_BLOCK};
use cvm_firmware::measure::sev::measure;
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::Tee;
use cvm_firmware::sev::{self, SevConfig, VmmType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    const SIZE: usize = 8192;
    let sections = &data[..data.len().min(1024)];
    let mut image = vec![0u8; SIZE];
    // Footer table: reset block, metadata offset, then the footer header.
    let mut table = Vec::new();
    table.extend_from_slice(&0x0080_b004u32.to_le_bytes());
    table.extend_from_slice(&22u16.to_le_bytes());
    table.extend_from_slice(&SEV_ES_RESET_BLOCK.to_disk());
    table.extend_from_slice(&4096u32.to_le_bytes()); // "ASEV" at SIZE - 4096
    table.extend_from_slice(&22u16.to_le_bytes());
    table.extend_from_slice(&OVMF_SEV_METADATA.to_disk());
    table.extend_from_slice(&u16::try_from(table.len() + 18).unwrap().to_le_bytes());
    table.extend_from_slice(&FOOTER_TABLE.to_disk());
    image[SIZE - 32 - table.len()..SIZE - 32].copy_from_slice(&table);
    let asev = SIZE - 4096;
    let n = sections.len() / 12;
    image[asev..asev + 4].copy_from_slice(b"ASEV");
    image[asev + 4..asev + 8].copy_from_slice(&u32::try_from(16 + 12 * n).unwrap().to_le_bytes());
    image[asev + 8..asev + 12].copy_from_slice(&1u32.to_le_bytes());
    image[asev + 12..asev + 16].copy_from_slice(&u32::try_from(n).unwrap().to_le_bytes());
    image[asev + 16..asev + 16 + 12 * n].copy_from_slice(&sections[..12 * n]);
    let Ok(fw) = OvmfImage::parse(&image) else { return };
    for tee in [Tee::Snp, Tee::SevEs, Tee::Sev] {
        let cfg = SevConfig {
            tee,
            firmware: &fw,
            direct_boot: None,
            vcpus: 2,
            vcpu_sig: 0x00a0_0f11,
            vmm: VmmType::Ec2,
            guest_features: 1,
            svsm: None,
            memory: Some(8 << 20),
        };
        if let Ok(plan) = sev::plan(&cfg) {
            let _ = measure(&plan, &Default::default());
        }
    }
});
