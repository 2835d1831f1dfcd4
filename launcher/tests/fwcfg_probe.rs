//! The built-in guest's fw_cfg probe (`cvm.test=fwcfg`): what cvm's fw_cfg device serves,
//! read by the guest through the DMA interface and hashed there, against digests this
//! test computes from the input files; and the same probe under QEMU (SeaBIOS boots it
//! through its real-mode entry), where the kernel, setup, initrd and command-line items
//! must be byte for byte cvm's, and every file only one of them serves must be named in
//! the README.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{available, binding, cvm, have_kvm, temp_file};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CMDLINE: &str = "cvm.test=fwcfg console=ttyS0";
const MEMORY_MIB: u64 = 128;

fn payload(name: &str) -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join(format!("{name}.bin"))
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The `fw_cfg NAME SIZE SHA256` lines of a probe's output, by name.
fn probe_lines(serial: &str) -> BTreeMap<String, (u64, String)> {
    assert!(
        serial.contains("fw_cfg signature QEMU features 0x00000003\n"),
        "{serial}"
    );
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("fw_cfg "))
        .filter(|l| !l.starts_with("signature"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l:?}");
            (f[0].to_owned(), (f[1].parse().unwrap(), f[2].to_owned()))
        })
        .collect()
}

/// The probe's inputs: the built-in guest as the kernel, and a 3001-byte initrd.
fn inputs() -> (PathBuf, Vec<u8>, PathBuf, Vec<u8>) {
    let kernel = payload("builtin");
    let kernel_bytes = std::fs::read(&kernel).unwrap();
    let initrd_bytes: Vec<u8> = (0..3001u32).map(|i| (i * 31 % 251) as u8).collect();
    let initrd = temp_file("probe-initrd.img", &initrd_bytes);
    (kernel, kernel_bytes, initrd, initrd_bytes)
}

/// Runs the probe under cvm; returns its lines.
fn under_cvm(kernel: &Path, initrd: &Path) -> BTreeMap<String, (u64, String)> {
    let serial = temp_file("probe-cvm.txt", b"");
    let out = cvm(&[
        "launch",
        "--tee",
        "none",
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--cmdline",
        CMDLINE,
        "--memory",
        &format!("{MEMORY_MIB}M"),
        "--serial",
        &format!("file:{}", serial.display()),
        "--timeout",
        "60s",
    ]);
    let text = std::fs::read_to_string(&serial).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    probe_lines(&text)
}

/// QEMU's `etc/e820` for `MEMORY_MIB` of RAM (../shared/FWCFG.md section 5, item 5):
/// KVM's identity map and TSS reserved first, then, on AMD hosts whose guests have 40 or
/// more physical address bits, the HyperTransport hole reserved, then the RAM.
fn e820(ht_hole: bool) -> String {
    let entry = |base: u64, len: u64, kind: u32| {
        [
            base.to_le_bytes().as_slice(),
            &len.to_le_bytes(),
            &kind.to_le_bytes(),
        ]
        .concat()
    };
    let mut table = entry(0xfeff_c000, 0x4000, 2);
    if ht_hole {
        table.extend(entry(0xfd_0000_0000, 12 << 30, 2));
    }
    table.extend(entry(0, MEMORY_MIB << 20, 1));
    sha256(&table)
}

#[test]
fn the_probe_reads_what_the_plan_serves() {
    if !have_kvm() {
        return;
    }
    let (kernel, kernel_bytes, initrd, initrd_bytes) = inputs();
    let got = under_cvm(&kernel, &initrd);
    // The setup is (setup_sects + 1) sectors; the kernel item is the rest of the file.
    let setup_len = (usize::from(kernel_bytes[0x1f1]) + 1) * 512;
    let mut cmdline = CMDLINE.as_bytes().to_vec();
    cmdline.push(0);
    let len = |b: &[u8]| u64::try_from(b.len()).unwrap();
    let prot = &kernel_bytes[setup_len..];
    assert_eq!(got["kernel"], (len(prot), sha256(prot)));
    assert_eq!(got["initrd"], (len(&initrd_bytes), sha256(&initrd_bytes)));
    assert_eq!(got["cmdline"], (len(&cmdline), sha256(&cmdline)));
    assert_eq!(got["setup"].0, u64::try_from(setup_len).unwrap());
    // QEMU's header patch: the setup differs from the file's.
    assert_ne!(got["setup"].1, sha256(&kernel_bytes[..setup_len]));
    assert_eq!(
        got["etc/boot/kernel"],
        (len(&kernel_bytes), sha256(&kernel_bytes))
    );
    assert_eq!(got["etc/e820"], (40, e820(false)));
    // cvm's own ACPI tables, in QEMU's three files and sizes (their contents are checked
    // by the firmware crate's loader test).
    assert_eq!(got["etc/acpi/tables"].0, 0x2_0000);
    assert_eq!(got["etc/acpi/rsdp"].0, 20);
    assert_eq!(got["etc/table-loader"].0, 4096);
    assert_eq!(got.len(), 9, "{got:?}");
}

/// The README's list of what cvm serves differently from QEMU: the text between the
/// heading "fw_cfg: cvm and QEMU" and the next heading.
fn readme_differences() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("### fw_cfg: cvm and QEMU")
        .expect("README has the fw_cfg comparison");
    let rest = &readme[start + 4..];
    rest[..rest.find("\n#").unwrap_or(rest.len())].to_owned()
}

fn qemu() -> Option<PathBuf> {
    let name = std::env::var_os("CVM_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into());
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    });
    let what = "qemu-system-x86_64 is not installed (.ci/run installs Debian's qemu-system-x86)";
    available(found.is_some(), what).then(|| found.unwrap())
}

/// QEMU's q35 on KVM with `MEMORY_MIB` of RAM, no default devices, COM1 into `serial`
/// and the debug-exit port at 0x501 (QEMU then exits with `(status << 1) | 1`), bounded
/// to 180 s; the boot arguments are the caller's.
fn qemu_vm(qemu: &Path, serial: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.arg("180")
        .arg(qemu)
        .args([
            "-enable-kvm",
            "-machine",
            "q35",
            "-cpu",
            "host,-arch-capabilities",
        ])
        .args(["-m", &MEMORY_MIB.to_string()])
        .args(["-nodefaults", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args([
            "-device",
            "isa-debug-exit,iobase=0x501,iosize=1",
            "-no-reboot",
        ]);
    c
}

#[test]
fn qemu_serves_the_same_kernel_items() {
    if !have_kvm() {
        return;
    }
    let Some(qemu) = qemu() else {
        return;
    };
    let (kernel, _, initrd, _) = inputs();
    let ours = under_cvm(&kernel, &initrd);

    let serial = temp_file("probe-qemu.txt", b"");
    let out = qemu_vm(&qemu, &serial)
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", CMDLINE])
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&serial).unwrap();
    // isa-debug-exit: QEMU exits with (status << 1) | 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("cvm built-in guest: booted through the real-mode entry\n"),
        "{text}"
    );
    let theirs = probe_lines(&text);

    for item in ["kernel", "setup", "initrd", "cmdline"] {
        assert_eq!(ours[item], theirs[item], "{item}");
    }
    // The memory map: QEMU's own, with or without the AMD HyperTransport hole.
    assert_eq!(ours["etc/e820"].1, e820(false));
    let qemu_e820 = &theirs["etc/e820"].1;
    assert!(
        *qemu_e820 == e820(false) || *qemu_e820 == e820(true),
        "QEMU's etc/e820 is neither layout: {:?}",
        theirs["etc/e820"]
    );
    // Every file only one side serves is named in the README.
    let differences = readme_differences();
    let one_sided: Vec<&String> = ours
        .keys()
        .filter(|k| !theirs.contains_key(*k))
        .chain(theirs.keys().filter(|k| !ours.contains_key(*k)))
        .filter(|k| !["kernel", "setup", "initrd", "cmdline"].contains(&k.as_str()))
        .collect();
    eprintln!("served by one side only: {one_sided:?}");
    let unnamed: Vec<&&String> = one_sided
        .iter()
        .filter(|k| !differences.contains(&format!("`{k}`")))
        .collect();
    assert!(unnamed.is_empty(), "not named in the README: {unnamed:?}");
}

/// The attesting guest's fw_cfg code against QEMU's device: booted as `-bios` (its SEV-ES
/// reset block and footer table are what QEMU's firmware parsing accepts) with the nonce
/// as `-fw_cfg name=opt/cvm/nonce`, it must print the binding this test computes and stop
/// with status 2 (a plain VM: no TEE), as under cvm (launcher/tests/launch.rs).
#[test]
fn the_attesting_guest_reads_its_nonce_from_qemu() {
    if !have_kvm() {
        return;
    }
    let Some(qemu) = qemu() else {
        return;
    };
    let nonce: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let nonce_file = temp_file("attest-nonce.bin", &nonce);
    let serial = temp_file("attest-qemu.txt", b"");
    let out = qemu_vm(&qemu, &serial)
        .arg("-bios")
        .arg(payload("attest"))
        .arg("-fw_cfg")
        .arg(format!("name=opt/cvm/nonce,file={}", nonce_file.display()))
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&serial).unwrap();
    assert_eq!(
        text,
        format!(
            "cvm attest guest: report data {}\n\
             cvm attest guest: no TEE (a plain VM has no evidence to give)\n",
            binding(&nonce)
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // isa-debug-exit: (status << 1) | 1.
    assert_eq!(out.status.code(), Some(5), "{text}");
}
