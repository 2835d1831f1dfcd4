//! cvm's Linux boot plan against rust-vmm's linux-loader on the same bzImage (the Debian
//! cloud kernel of `shared/reference/inputs`): the protected-mode kernel linux-loader
//! loads is, byte for byte, the plan's kernel step; and the zero page that linux-loader's
//! `boot_params` encodes from that kernel's setup header and the loader's fields is, byte
//! for byte, the plan's. The expected e820 map is written out here from the documented
//! layout, not taken from cvm.
#![cfg(target_arch = "x86_64")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_firmware::plan::{LaunchPlan, Origin, Step};
use cvm_firmware::x86::{Boot, PlainConfig, plan};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

const KERNEL: &str = "inputs/amd64/vmlinuz-6.1.0-56-cloud-amd64";

fn step<'p>(p: &'p LaunchPlan<'_>, origin: Origin) -> &'p Step<'p> {
    p.steps
        .iter()
        .find(|s| s.origin == origin)
        .unwrap_or_else(|| panic!("no {origin:?} step"))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
fn debian_kernel_loads_and_boot_params_as_linux_loader_encodes_them() {
    let Some(dir) = cvm_tests::reference_dir() else {
        return;
    };
    let kernel = std::fs::read(dir.join(KERNEL)).unwrap();
    let initrd: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
    let memory: u64 = 256 << 20;
    let cmdline = "console=ttyS0 panic=-1 quiet";
    let p = plan(&PlainConfig {
        boot: Boot::Linux {
            kernel: &kernel,
            initrd: Some(&initrd),
            cmdline,
        },
        memory,
        vcpus: 2,
    })
    .unwrap();

    // The protected-mode kernel, loaded by linux-loader where the plan puts it.
    let k = step(&p, Origin::Kernel);
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), usize::try_from(memory).unwrap())])
            .unwrap();
    let loaded = BzImage::load(
        &mem,
        Some(GuestAddress(k.gpa)),
        &mut std::io::Cursor::new(&kernel),
        Some(GuestAddress(0x10_0000)),
    )
    .unwrap();
    assert_eq!(loaded.kernel_end - k.gpa, k.len, "kernel length");
    let mut body = vec![0u8; k.data.len()];
    mem.read_slice(&mut body, GuestAddress(k.gpa)).unwrap();
    assert!(body == *k.data, "the kernel bytes differ");
    // The preferred address, as the boot protocol asks of a 64-bit loader.
    assert_eq!(k.gpa, u64::from(u32_at(&kernel, 0x258)), "pref_address");

    // The zero page from linux-loader's types, with the loader's fields cvm documents.
    let mut bp = boot_params {
        hdr: loaded.setup_header.unwrap(),
        ..Default::default()
    };
    // linux-loader rewrites code32_start to the load address; the 64-bit entry does not
    // read it, and cvm leaves the kernel's value.
    bp.hdr.code32_start = u32_at(&kernel, 0x214);
    bp.acpi_rsdp_addr = 0xe_0000;
    bp.hdr.vid_mode = 0xffff;
    bp.hdr.type_of_loader = 0xff;
    bp.hdr.cmd_line_ptr = 0x2_0000;
    let rd = step(&p, Origin::Initrd);
    bp.hdr.ramdisk_image = u32::try_from(rd.gpa).unwrap();
    bp.hdr.ramdisk_size = u32::try_from(initrd.len()).unwrap();
    let e820 = [
        (0, 0x9_fc00, 1),                   // conventional memory
        (0x9_fc00, 0x400, 2),               // the MP table, reserved
        (0x10_0000, memory - 0x10_0000, 1), // RAM from 1 MiB
    ];
    for (i, (addr, size, kind)) in e820.into_iter().enumerate() {
        bp.e820_table[i] = boot_e820_entry {
            addr,
            size,
            r#type: kind,
        };
    }
    bp.e820_entries = 3;
    let zero_page = step(&p, Origin::BootParams);
    assert_eq!(zero_page.gpa, 0x7000);
    let ours = &zero_page.data[..];
    let theirs = bp.as_slice();
    assert_eq!(ours.len(), theirs.len(), "zero page size");
    let diff: Vec<usize> = (0..ours.len()).filter(|i| ours[*i] != theirs[*i]).collect();
    assert!(
        diff.is_empty(),
        "zero page bytes differ at offsets {diff:#x?}"
    );

    // The command line and the initrd where the zero page says; the initrd page-aligned,
    // past the kernel's init_size and below initrd_addr_max.
    let cmd = step(&p, Origin::CommandLine);
    assert_eq!(cmd.gpa, 0x2_0000);
    assert_eq!(&cmd.data[..], format!("{cmdline}\0").as_bytes());
    assert!(*rd.data == initrd[..]);
    assert_eq!(rd.gpa % 4096, 0);
    assert!(rd.gpa >= k.gpa + u64::from(bp.hdr.init_size));
    assert!(rd.gpa + rd.len <= u64::from(bp.hdr.initrd_addr_max) + 1);
    assert!(rd.gpa + rd.len <= memory);
}
