//! Builds the guest payloads in `guest/` with the system assembler and linker (GNU
//! binutils): the built-in guest (a bzImage embedded in `cvm`) and the test firmware.
//! Nothing prebuilt is committed.
#![allow(clippy::print_stdout)] // a build script talks to Cargo through stdout

use std::path::{Path, PathBuf};
use std::process::Command;

const PAYLOADS: &[&str] = &["builtin", "reset"];

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| {
        format!(
            "cannot run {:?} (GNU binutils is needed): {e}",
            cmd.get_program()
        )
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn build(dir: &Path, out: &Path, name: &str) -> Result<(), String> {
    let src = dir.join(format!("{name}.s"));
    let script = dir.join(format!("{name}.ld"));
    let obj = out.join(format!("{name}.o"));
    let bin = out.join(format!("{name}.bin"));
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", script.display());
    run(Command::new("as").arg("--64").arg("-o").arg(&obj).arg(&src))?;
    run(Command::new("ld")
        .arg("-m")
        .arg("elf_x86_64")
        .arg("-T")
        .arg(&script)
        .arg("-o")
        .arg(&bin)
        .arg(&obj))
}

/// The attesting guest (guest/attest.s and the no_std crate guest/attest): the crate is
/// built by a nested Cargo with its own lock file and target directory under OUT_DIR,
/// with the flags of a freestanding build and none of the outer build's (coverage or
/// sanitizer flags, clippy's wrapper), then linked with the boot code by `ld`.
fn build_attest(dir: &Path, out: &Path) -> Result<(), String> {
    let krate = dir.join("attest");
    for f in [
        "attest.s",
        "attest.ld",
        "attest/Cargo.toml",
        "attest/Cargo.lock",
        "attest/.cargo/config.toml",
        "attest/src",
    ] {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = out.join("attest-target");
    run(Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(krate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The freestanding flags are in guest/attest/.cargo/config.toml, which Cargo
        // reads from the directory it runs in; the outer build's flags (which Cargo
        // hands build scripts in CARGO_ENCODED_RUSTFLAGS) would override them.
        .current_dir(&krate)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER"))?;
    let obj = out.join("attest.o");
    run(Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(&obj)
        .arg(dir.join("attest.s")))?;
    let elf = out.join("attest.elf");
    run(Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "--gc-sections",
            "--no-warn-rwx-segments",
            "-T",
        ])
        .arg(dir.join("attest.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(&obj)
        .arg(target.join("release").join("libcvm_attest_guest.a")))?;
    run(Command::new("objcopy")
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(out.join("attest.bin")))
}

/// The opt-in tests' Linux init: a static ELF (the default linker script, no -T).
fn build_init(dir: &Path, out: &Path) -> Result<(), String> {
    let src = dir.join("init.s");
    let obj = out.join("init.o");
    println!("cargo:rerun-if-changed={}", src.display());
    run(Command::new("as").arg("--64").arg("-o").arg(&obj).arg(&src))?;
    run(Command::new("ld")
        .args(["-m", "elf_x86_64", "-static", "-e", "_start", "-o"])
        .arg(out.join("init"))
        .arg(&obj))
}

fn main() {
    // The firmware boot tests (OVMF booting a Linux kernel) run only where asked: hosts
    // with full KVM, where OVMF runs at a usable speed.
    println!("cargo:rustc-check-cfg=cfg(cvm_firmware_tests)");
    println!("cargo:rerun-if-env-changed=CVM_FIRMWARE_TESTS");
    if std::env::var_os("CVM_FIRMWARE_TESTS").is_some_and(|v| v == "1") {
        println!("cargo:rustc-cfg=cvm_firmware_tests");
    }
    // The real-Linux boot test runs only where a kernel is named (hosts with full KVM).
    println!("cargo:rustc-check-cfg=cfg(cvm_linux_kernel)");
    println!("cargo:rerun-if-env-changed=CVM_LINUX_KERNEL");
    if std::env::var_os("CVM_LINUX_KERNEL").is_some() {
        println!("cargo:rustc-cfg=cvm_linux_kernel");
    }
    let dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("guest");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    for name in PAYLOADS {
        if let Err(e) = build(&dir, &out, name) {
            println!("cargo:warning=building guest payload {name}: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = build_attest(&dir, &out) {
        println!("cargo:warning=building the attesting guest: {e}");
        std::process::exit(1);
    }
    if let Err(e) = build_init(&dir, &out) {
        println!("cargo:warning=building the test init: {e}");
        std::process::exit(1);
    }
}
