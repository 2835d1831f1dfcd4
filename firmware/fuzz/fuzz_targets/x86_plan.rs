//! Plain x86 plans (the `none` backend) from arbitrary kernel, initrd and firmware bytes
//! (a kernel alone, firmware alone, or firmware booting a kernel through fw_cfg),
//! memory sizes and vCPU counts: an error or a plan whose steps lie in RAM or end at
//! 4 GiB, never a panic.
#![no_main]

use cvm_firmware::x86::{Boot, FOUR_GIB, PlainConfig, plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let memory = (u64::from(sel & 0x3f) + 1) << 20;
    let vcpus = u32::from(sel >> 6) + 1;
    let split = rest.len() * 3 / 4;
    let (kernel, initrd) = rest.split_at(split);
    let boot = match sel & 3 {
        0 | 2 => Boot::Linux {
            kernel,
            initrd: Some(initrd),
            cmdline: "console=ttyS0",
        },
        1 => Boot::Firmware(rest),
        _ => Boot::FirmwareKernel {
            firmware: initrd,
            kernel,
            initrd: None,
            cmdline: "",
        },
    };
    if let Ok(p) = plan(&PlainConfig {
        boot,
        memory,
        vcpus,
    }) {
        for s in &p.steps {
            let end = s.gpa + s.len;
            assert!(end <= memory || end == FOUR_GIB, "{:?} at {:#x}", s.origin, s.gpa);
        }
    }
});
