//! OVMF booting a Linux kernel through cvm's fw_cfg, as QEMU's `-bios F -kernel K -initrd
//! I` does, for an operator on a host with full KVM (on the development machines OVMF is
//! emulated far too slowly: ../shared/KVM-HERE.md):
//!
//!     CVM_FIRMWARE_TESTS=1 cargo test -p cvm-launcher --test ovmf_boot
//!
//! and on SNP or TDX hosts, for the confidential builds as well:
//!
//!     CVM_FIRMWARE_TESTS=1 RUSTFLAGS="--cfg cvm_hw" CVM_HW_TESTS=snp|tdx \
//!         cargo test -p cvm-launcher --test ovmf_boot
//!
//! Inputs: Debian's OVMF builds from `$CVM_FIRMWARE_OVMF_DIR` (default `/usr/share/ovmf`,
//! where the ovmf, ovmf-amdsev and ovmf-inteltdx packages put `OVMF.fd`,
//! `OVMF.amdsev.fd` and `OVMF.inteltdx.fd`), and the kernel `$CVM_FIRMWARE_KERNEL`
//! (default the Debian cloud kernel in ../shared/reference/inputs). The initrd is built
//! here: `/dev/console` and an `/init` (launcher/guest/init.s) that prints one line and
//! stops the VM. Once enabled, a missing input fails the test.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, stdout_json, temp_file};
use std::path::PathBuf;

const INIT_LINE: &str = "cvm-init: the first init line";

/// A newc cpio archive (the initramfs format, `Documentation/driver-api/early-userspace`)
/// of `/dev`, `/dev/console` (char 5:1) and `/init`.
fn initrd() -> Vec<u8> {
    let init = std::fs::read(PathBuf::from(env!("OUT_DIR")).join("init")).unwrap();
    let mut out = Vec::new();
    let mut entry = |ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]| {
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(data.len()).unwrap(),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap(),
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    entry(1, "dev", 0o040_755, (0, 0), b"");
    entry(2, "dev/console", 0o020_600, (5, 1), b"");
    entry(3, "init", 0o100_755, (0, 0), &init);
    entry(4, "TRAILER!!!", 0, (0, 0), b"");
    out
}

/// An input the enabled test needs: missing is a failure, not a skip.
fn input(var: &str, default: PathBuf) -> String {
    let path = std::env::var_os(var).map_or(default, PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing (set {var}; CVM_FIRMWARE_TESTS=1 makes it required)",
        path.display()
    );
    path.display().to_string()
}

fn firmware(name: &str) -> String {
    let dir = std::env::var_os("CVM_FIRMWARE_OVMF_DIR")
        .map_or_else(|| PathBuf::from("/usr/share/ovmf"), PathBuf::from);
    input("CVM_FIRMWARE_OVMF_DIR", dir.join(name))
}

fn kernel() -> String {
    let default = common::shared("reference/inputs/amd64/vmlinuz-6.1.0-56-cloud-amd64")
        .unwrap_or_else(|| PathBuf::from("vmlinuz"));
    input("CVM_FIRMWARE_KERNEL", default)
}

/// `cvm launch --tee TEE --firmware FW --kernel K --initrd (ours)` with EXTRA; returns
/// the exit code, the report and the serial output.
fn boot(tee: &str, fw: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let initrd = temp_file(&format!("ovmf-initrd-{tee}.cpio"), initrd());
    let serial = temp_file(&format!("ovmf-serial-{tee}.txt"), b"");
    let kernel = kernel();
    let mut args = vec![
        "--format",
        "json",
        "launch",
        "--tee",
        tee,
        "--firmware",
        fw,
        "--kernel",
        &kernel,
        "--initrd",
        initrd.to_str().unwrap(),
        "--cmdline",
        "console=ttyS0 panic=-1 rdinit=/init",
        "--memory",
        "1G",
        "--timeout",
        "300s",
    ];
    let dest = format!("file:{}", serial.display());
    args.extend_from_slice(&["--serial", &dest]);
    args.extend_from_slice(extra);
    let out = cvm(&args);
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), stdout_json(&out), text)
}

/// The initrd, as GNU cpio reads it: the three entries, `/init` byte for byte.
#[test]
fn the_initrd_is_a_newc_archive() {
    let archive = temp_file("ovmf-initrd-check.cpio", initrd());
    let listing = std::process::Command::new("cpio")
        .args(["-it", "-v", "-F"])
        .arg(&archive)
        .output();
    let Some(out) = common::available(
        listing.is_ok(),
        "GNU cpio is not installed (.ci/run installs it)",
    )
    .then(|| listing.unwrap()) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" dev"));
    assert!(lines[1].starts_with("crw-------") && lines[1].contains("5,   1"));
    assert!(lines[1].ends_with(" dev/console"), "{text}");
    assert!(lines[2].starts_with("-rwxr-xr-x") && lines[2].ends_with(" init"));
    let dir = std::env::temp_dir().join(format!("cvm-cpio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let extract = std::process::Command::new("cpio")
        .args(["-i", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(&archive)
        .arg("init")
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(extract.success());
    let init = std::fs::read(PathBuf::from(env!("OUT_DIR")).join("init")).unwrap();
    assert_eq!(std::fs::read(dir.join("init")).unwrap(), init);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[cfg_attr(
    not(cvm_firmware_tests),
    ignore = "needs a host with full KVM: CVM_FIRMWARE_TESTS=1"
)]
fn ovmf_boots_the_kernel_from_fw_cfg() {
    let (code, json, serial) = boot("none", &firmware("OVMF.fd"), &[]);
    assert!(serial.contains(INIT_LINE), "{serial}");
    assert_eq!(json["boot"], "firmware+kernel");
    assert_eq!(code, Some(0), "{json}");
}

#[test]
#[cfg_attr(
    not(all(cvm_firmware_tests, cvm_hw)),
    ignore = "needs an SNP host: CVM_FIRMWARE_TESTS=1, --cfg cvm_hw, CVM_HW_TESTS=snp"
)]
fn amdsev_ovmf_boots_the_hashed_kernel_under_snp() {
    if !common::hw_enabled("snp") {
        return;
    }
    // The firmware checks the kernel, initrd and command line it reads from fw_cfg
    // against the hashes table in the launch measurement: a mismatch hangs it.
    let (code, json, serial) = boot("snp", &firmware("OVMF.amdsev.fd"), &[]);
    assert!(serial.contains(INIT_LINE), "{serial}");
    assert_eq!(code, Some(0), "{json}");
}

#[test]
#[cfg_attr(
    not(all(cvm_firmware_tests, cvm_hw)),
    ignore = "needs a TDX host: CVM_FIRMWARE_TESTS=1, --cfg cvm_hw, CVM_HW_TESTS=tdx"
)]
fn inteltdx_ovmf_boots_the_kernel_in_a_td() {
    if !common::hw_enabled("tdx") {
        return;
    }
    let acpi = input(
        "CVM_FIRMWARE_ACPI_TABLES",
        common::shared("reference/inputs/tdx-acpi/canonical-defaults/acpi_tables.bin")
            .unwrap_or_default(),
    );
    let (code, json, serial) = boot(
        "tdx",
        &firmware("OVMF.inteltdx.fd"),
        &["--acpi-tables", &acpi],
    );
    assert!(serial.contains(INIT_LINE), "{serial}");
    // A TD's init cannot reach the debug-exit port from user mode; the kernel's panic
    // reboots it instead.
    assert!(matches!(code, Some(0 | 8)), "{json}");
}
