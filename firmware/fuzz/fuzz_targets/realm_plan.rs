//! Realm plans on arbitrary input: host-capability files, arm64 Image headers (and gzip),
//! and kvmtool's, QEMU's and cloud-hypervisor's layouts and DTBs with the input as kernel, initrd and
//! firmware, measured.
#![no_main]

use cvm_firmware::cca::layout::{HostCaps, Image, Inputs, Vmm, plan};
use cvm_firmware::cca::Hash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = HostCaps::parse(text);
    }
    let _ = Image::parse(data);
    let (first, rest) = data.split_at(data.len().min(8));
    let pick = |i: usize| first.get(i).copied().unwrap_or(0);
    let caps = HostCaps {
        ipa_bits: Some(32u8.saturating_add(pick(0) % 21)),
        num_bps: Some(2 + pick(1) % 63),
        num_wps: Some(2 + pick(2) % 63),
        sve_vl: Some(if pick(3) % 2 == 0 { 0 } else { 128 << (pick(3) % 5) }),
        pmu_num_ctrs: Some(pick(4) % 32),
        pmu: Some(pick(5) % 2 == 0),
        lpa2: Some(pick(6) % 2 == 0),
    };
    let inputs = Inputs {
        vmm: match pick(6) % 4 {
            0 => Vmm::Qemu,
            1 => Vmm::CloudHv,
            2 => Vmm::Cvm,
            _ => Vmm::Kvmtool,
        },
        caps,
        hash: if pick(7) % 2 == 0 { Hash::Sha256 } else { Hash::Sha512 },
        vcpus: 1 + u32::from(pick(0) % 8),
        memory: (2u64 << 20) * (1 + u64::from(pick(1))),
        kernel: (pick(2) % 2 == 0).then_some(rest),
        initrd: (pick(3) % 3 == 0).then_some(rest),
        firmware: (pick(4) % 3 == 0).then_some(rest),
        cmdline: std::str::from_utf8(rest).ok(),
        its: pick(5) % 2 == 0,
    };
    if let Ok((p, _)) = plan(&inputs) {
        let _ = p.measure();
    }
});
