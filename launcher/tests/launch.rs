//! `cvm launch --tee none` on this machine's real KVM, with the payloads the build
//! assembles from `launcher/guest/`: the built-in guest (a bzImage), the test firmware.
//! Expected serial lines are computed here from the inputs (memory size, initrd bytes),
//! never taken from cvm. Skipped, with a message, where /dev/kvm is absent.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{binding, cvm, have_kvm, stdout_json, temp_file};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn payload(name: &str) -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join(format!("{name}.bin"))
}

/// Runs `cvm --format json launch --tee none ARGS` with the serial port in a file;
/// returns (exit code, JSON result, serial output).
fn launch(args: &[&str]) -> (i32, serde_json::Value, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let serial = temp_file(
        &format!("serial-{}.txt", N.fetch_add(1, Ordering::Relaxed)),
        b"",
    );
    let dest = format!("file:{}", serial.display());
    let mut all = vec![
        "--format", "json", "launch", "--tee", "none", "--serial", &dest,
    ];
    all.extend_from_slice(args);
    if !args.contains(&"--timeout") {
        all.extend_from_slice(&["--timeout", "60s"]);
    }
    let out = cvm(&all);
    let json = stdout_json(&out);
    let text = std::fs::read_to_string(&serial).unwrap();
    (out.status.code().unwrap(), json, text)
}

fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[test]
fn built_in_guest_reports_its_e820_map_and_stops_with_status_0() {
    if !have_kvm() {
        return;
    }
    let (code, json, serial) = launch(&["--memory", "64M"]);
    assert_eq!(code, 0, "{json} {serial}");
    assert_eq!(json["tee"], "none");
    assert_eq!(json["protected"], false);
    assert_eq!(json["boot"], "built-in");
    assert_eq!(json["stop"]["reason"], "debug-exit");
    assert_eq!(json["stop"]["guest_status"], 0);
    assert!(
        serial.contains("booted through the Linux 64-bit boot protocol"),
        "{serial}"
    );
    // RAM from 1 MiB to the end of the 64 MiB, and the MP table's reserved KiB.
    let top = (64u64 << 20) - 1;
    assert!(
        serial.contains(&format!("e820: 0x0000000000100000-{top:#018x} ram")),
        "{serial}"
    );
    assert!(
        serial.contains("e820: 0x000000000009fc00-0x000000000009ffff reserved"),
        "{serial}"
    );
    assert!(serial.contains("vcpus: 1\n"), "{serial}");
    assert!(serial.contains("initrd: none"), "{serial}");
    assert!(serial.ends_with("cvm built-in guest: done\n"), "{serial}");
    assert_eq!(json["unknown_accesses"], 0);
}

#[test]
fn linux_boot_protocol_passes_cmdline_and_initrd() {
    if !have_kvm() {
        return;
    }
    // 5001 bytes: not a multiple of anything the loader aligns to.
    let initrd_bytes: Vec<u8> = (0..5001u32)
        .map(|i| (i * 7 + i / 13).to_le_bytes()[0])
        .collect();
    let initrd = temp_file("initrd.img", &initrd_bytes);
    let kernel = payload("builtin");
    let (code, json, serial) = launch(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--cmdline",
        "console=ttyS0 root=/dev/vda ro",
        "--memory",
        "32M",
    ]);
    assert_eq!(code, 0, "{json} {serial}");
    assert_eq!(json["boot"], "kernel");
    assert!(
        serial.contains("cmdline: console=ttyS0 root=/dev/vda ro\n"),
        "{serial}"
    );
    assert!(serial.contains("type_of_loader 0xff"), "{serial}");
    // The initrd sits page-aligned at the top of RAM.
    let addr = ((32u64 << 20) - 5001) & !0xfff;
    let want = format!(
        "initrd: {addr:#018x} 5001 bytes fnv1a32 {:#010x}\n",
        fnv1a32(&initrd_bytes)
    );
    assert!(serial.contains(&want), "wanted {want:?} in {serial}");
}

#[test]
fn every_vcpu_announces_itself() {
    if !have_kvm() {
        return;
    }
    let (code, json, serial) = launch(&["--vcpus", "4"]);
    assert_eq!(code, 0, "{json} {serial}");
    assert!(serial.contains("vcpus: 4\n"), "{serial}");
    for id in 0..4 {
        assert!(
            serial.contains(&format!("vcpu {id} up")),
            "vcpu {id} missing: {serial}"
        );
    }
    assert_eq!(json["vcpus"], 4);
}

#[test]
fn firmware_boots_from_the_reset_vector_to_long_mode() {
    if !have_kvm() {
        return;
    }
    let fw = payload("reset");
    let (code, json, serial) = launch(&["--firmware", fw.to_str().unwrap()]);
    assert_eq!(code, 0, "{json} {serial}");
    assert_eq!(json["boot"], "firmware");
    // The plan serves four fw_cfg files for a firmware boot, `etc/e820` and QEMU's three
    // ACPI files (the firmware reads the signature through the ports and the directory's
    // count by DMA).
    assert_eq!(
        serial,
        "cvm test firmware: reset vector, protected mode, long mode: ok\n\
         fw_cfg: QEMU, DMA, 04 files\n"
    );
    // With --kernel the firmware finds the kernel's items too (QEMU's -bios F -kernel K):
    // etc/boot/kernel besides.
    let kernel = payload("builtin");
    let (code, json, serial) = launch(&[
        "--firmware",
        fw.to_str().unwrap(),
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "console=ttyS0",
    ]);
    assert_eq!(code, 0, "{json} {serial}");
    assert_eq!(json["boot"], "firmware+kernel");
    assert!(
        serial.ends_with("fw_cfg: QEMU, DMA, 05 files\n"),
        "{serial}"
    );
}

#[test]
fn unknown_ports_and_mmio_are_survived() {
    if !have_kvm() {
        return;
    }
    let (code, json, serial) = launch(&["--cmdline", "cvm.test=poke"]);
    assert_eq!(code, 0, "{json} {serial}");
    // 300 writes to port 0x1234, one read of 0x2000, an MMIO write and two MMIO reads
    // in the gap; both reads see all ones. (Its write to 0xcf8 selects 0:0.0 for the
    // PCI configuration mechanism, a device now: not counted.)
    assert_eq!(json["unknown_accesses"], 304, "{json}");
    assert!(
        serial.contains("unknown ports and MMIO: 0xffffffff 0xffffffff\n"),
        "{serial}"
    );
    assert!(serial.ends_with("done\n"), "{serial}");
}

#[test]
fn a_guest_that_never_stops_is_stopped_by_the_timeout() {
    if !have_kvm() {
        return;
    }
    let (code, json, serial) = launch(&["--cmdline", "cvm.test=hang", "--timeout", "1s"]);
    assert_eq!(code, 8, "{json}");
    assert_eq!(json["stop"]["reason"], "timeout");
    assert!(json["stop"]["guest_status"].is_null());
    assert!(serial.contains("spinning forever"), "{serial}");
}

#[test]
fn sigterm_stops_the_guest_and_cvm_exits() {
    if !have_kvm() {
        return;
    }
    let serial = temp_file("serial-sigterm.txt", b"");
    let dest = format!("file:{}", serial.display());
    let child = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args([
            "--format", "json", "launch", "--tee", "none", "--serial", &dest,
        ])
        .args(["--cmdline", "cvm.test=hang"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the guest is spinning, then ask cvm to stop.
    let start = Instant::now();
    while !std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .contains("spinning forever")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the guest never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["stop"]["reason"], "signal");
}

#[test]
fn triple_fault_and_nonzero_status_are_abnormal_exits() {
    if !have_kvm() {
        return;
    }
    let (code, json, _) = launch(&["--cmdline", "cvm.test=triple"]);
    assert_eq!((code, &json["stop"]["reason"]), (8, &"triple-fault".into()));
    let (code, json, _) = launch(&["--cmdline", "cvm.exit=42"]);
    assert_eq!(code, 8);
    assert_eq!(json["stop"]["reason"], "debug-exit");
    assert_eq!(json["stop"]["guest_status"], 42);
}

#[test]
fn split_irqchip_boots_too() {
    if !have_kvm() {
        return;
    }
    let (code, json, serial) = launch(&["--irqchip", "split", "--vcpus", "2"]);
    assert_eq!(code, 0, "{json} {serial}");
    assert!(serial.contains("vcpu 1 up"), "{serial}");
}

/// COM1's interrupt reaches the guest's handler through KVM's I/O APIC (in-kernel
/// irqchip) and through cvm's (split irqchip): the guest programs the I/O APIC's pin 4,
/// enables the transmitter-empty interrupt and stops with status 4 if no interrupt comes.
#[test]
fn serial_interrupts_reach_the_guest_with_either_irqchip() {
    if !have_kvm() {
        return;
    }
    for irqchip in ["in-kernel", "split"] {
        let (code, json, serial) = launch(&["--irqchip", irqchip, "--cmdline", "cvm.test=irq"]);
        assert_eq!(code, 0, "{irqchip}: {json} {serial}");
        // Version 0x11 with 24 pins (the MP table's), and IIR "transmitter empty" with the
        // 16550A's FIFO bits, read by the interrupt handler.
        assert!(
            serial
                .contains("I/O APIC version 0x00170011, COM1 interrupt on vector 0x30, IIR 0xc2\n"),
            "{irqchip}: {serial}"
        );
        // The split irqchip's I/O APIC page and absent 8259s are not unknown accesses.
        assert_eq!(json["unknown_accesses"], 0, "{irqchip}: {json}");
    }
}

/// One line on stderr, the given exit code, no result on stdout in text mode.
fn rejected(args: &[&str], code: i32, needle: &str) {
    let out = cvm(args);
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<_> = err
        .lines()
        .filter(|l| l.starts_with("cvm: error:"))
        .collect();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(needle), "{args:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_input_is_one_line_with_the_right_code() {
    let not_bzimage = temp_file("not-a-kernel", [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]);
    rejected(
        &[
            "launch",
            "--tee",
            "none",
            "--kernel",
            not_bzimage.to_str().unwrap(),
        ],
        2,
        "not-a-kernel: kernel: boot_flag",
    );
    let big = temp_file("big.fd", vec![0u8; 17 << 20]);
    rejected(
        &[
            "launch",
            "--tee",
            "none",
            "--firmware",
            big.to_str().unwrap(),
        ],
        2,
        "does not fit below 4 GiB",
    );
    let kernel = payload("builtin");
    rejected(
        &[
            "launch",
            "--tee",
            "none",
            "--kernel",
            kernel.to_str().unwrap(),
            "--memory",
            "1M",
        ],
        2,
        "too small",
    );
    let huge_initrd = temp_file("huge.img", vec![1u8; 3 << 20]);
    rejected(
        &[
            "launch",
            "--tee",
            "none",
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            huge_initrd.to_str().unwrap(),
            "--memory",
            "4M",
        ],
        2,
        "memory too small for the initrd",
    );
    rejected(&["launch", "--tee", "none", "--vcpus", "0"], 1, "--vcpus");
    rejected(
        &["launch", "--tee", "none", "--memory", "12Q"],
        1,
        "--memory",
    );
    rejected(
        &["launch", "--tee", "none", "--serial", "tcp:1"],
        1,
        "--serial",
    );
    rejected(
        &["launch", "--tee", "none", "--initrd", "x.img"],
        1,
        "--kernel",
    );
    // The plan options are measure's: those of another TEE are refused, not ignored.
    for (extra, why) in [
        (
            &["--vmm", "ec2"][..],
            "--vmm ec2|gce applies to --tee snp, sev-es, sev only, not --tee none",
        ),
        (
            &["--acpi-tables", "t.bin"][..],
            "--acpi-tables applies to --tee tdx only",
        ),
        (
            &["--guest-features", "0x21"][..],
            "--guest-features applies to --tee snp only",
        ),
        (
            &["--mrtd-order", "two-pass"][..],
            "--mrtd-order applies to --tee tdx only",
        ),
        (&["--vcpus", "256"][..], "a plain guest has at most 255"),
        (&["--memory", "8192G"][..], "at most 8191 GiB"),
        (
            &["--firmware", "f.fd", "--cmdline", "x"][..],
            "--cmdline is the kernel's: give --kernel too",
        ),
    ] {
        let mut args = vec!["launch", "--tee", "none"];
        args.extend_from_slice(extra);
        rejected(&args, 1, why);
    }
    // Refused before the host is asked whether it has the TEE at all.
    rejected(
        &["launch", "--tee", "snp", "--acpi-tables", "t.bin"],
        1,
        "--acpi-tables applies to --tee tdx only, not --tee snp",
    );
}

#[test]
fn no_kvm_is_platform_unavailable() {
    let out = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args(["launch", "--tee", "none"])
        .env("CVM_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kvm: cannot open it"), "{err}");
    assert!(err.contains("NOT protected"), "{err}");
}

#[test]
fn tee_auto_never_falls_back_to_an_unprotected_vm() {
    // This host has no TEE (and if one had one, its backend is not built yet): either
    // way `auto` must refuse rather than start a plain VM.
    let out = cvm(&["launch"]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tee none") || err.contains("not built yet"),
        "{err}"
    );
    assert!(!err.contains("NOT protected"), "{err}");
}

/// A real Linux kernel through the same direct-boot path, on hosts with full KVM (here a
/// kernel's CPL0 code is emulated and a boot takes many minutes). Build with
/// `CVM_LINUX_KERNEL=/path/to/bzImage` (and optionally `CVM_LINUX_INITRD`) set to run it.
/// Without an init the kernel panics and, with `panic=1 reboot=k`, resets through the
/// i8042, which stops the VM with status 0.
#[test]
#[cfg_attr(
    not(cvm_linux_kernel),
    ignore = "set CVM_LINUX_KERNEL (a bzImage) at build time, on a host with full KVM"
)]
fn boots_a_real_linux_kernel() {
    let kernel = std::env::var("CVM_LINUX_KERNEL").expect("CVM_LINUX_KERNEL");
    let mut args = vec![
        "--kernel".to_owned(),
        kernel,
        "--memory".to_owned(),
        "512M".to_owned(),
        "--vcpus".to_owned(),
        "2".to_owned(),
        "--cmdline".to_owned(),
        "console=ttyS0 panic=1 reboot=k".to_owned(),
        "--timeout".to_owned(),
        "600s".to_owned(),
    ];
    if let Ok(initrd) = std::env::var("CVM_LINUX_INITRD") {
        args.extend(["--initrd".to_owned(), initrd]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, json, serial) = launch(&args);
    assert!(serial.contains("Linux version"), "{serial}");
    // Both vCPUs, found through the MADT (or the MP table) and started.
    assert!(serial.contains("Brought up 1 node, 2 CPUs"), "{serial}");
    assert!(
        matches!(
            json["stop"]["reason"].as_str(),
            Some("reset" | "debug-exit")
        ),
        "{json}"
    );
    assert_eq!(code, 0, "{json}");
}

/// SHA-512 of the exchange's label and `nonce`, computed here from the README's
/// definition (not by cvm's code).
#[test]
fn the_attesting_guest_binds_the_nonce_and_says_a_plain_vm_has_no_tee() {
    if !have_kvm() {
        return;
    }
    let fw = payload("attest");
    let nonce = "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let (code, json, serial) = launch(&[
        "--firmware",
        fw.to_str().unwrap(),
        "--attest",
        "--nonce",
        nonce,
        "--attest-timeout",
        "30s",
    ]);
    // The guest boots from the reset vector to its Rust code, reads the nonce through
    // fw_cfg's ports and shows the report data a TEE's evidence would carry.
    let want = binding(&hex::decode(nonce).unwrap());
    assert_eq!(
        serial,
        format!(
            "cvm attest guest: report data {want}\n\
             cvm attest guest: no TEE (a plain VM has no evidence to give)\n"
        ),
        "{json}"
    );
    assert_eq!(json["stop"]["reason"], "debug-exit", "{json}");
    assert_eq!(json["stop"]["guest_status"], 2, "{json}");
    assert_ne!(code, 0, "no evidence is never a pass: {json}");

    // Without --attest there is no nonce to bind.
    let (code, json, serial) = launch(&["--firmware", fw.to_str().unwrap()]);
    assert_eq!(
        serial, "cvm attest guest: no 32-byte fw_cfg file opt/cvm/nonce\n",
        "{json}"
    );
    assert_eq!(json["stop"]["guest_status"], 3, "{json}");
    assert_ne!(code, 0, "{json}");
}
