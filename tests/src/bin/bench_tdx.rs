//! Benchmark: `cvm measure --tee tdx` on the largest reference configuration (the 4 MiB
//! enrolled-keys TDVF image, 8 vCPUs, 16 GiB, the q35-with-hpet ACPI tables, the 14 MiB
//! Debian kernel with QEMU's patch, the initrd) against the floor set by hashing alone:
//! one SHA-384 pass over as many bytes as the measurement must hash (the MRTD records and
//! extended chunks, the CFV, the ACPI files, the kernel, the initrd). Prints ratios;
//! asserts nothing about time.
//!
//! Run through `bench/measure.sh` (after the SEV benchmark), which builds cvm in release
//! mode.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program that reports on stdout"
)]

use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::tdx::ATTR_MR_EXTEND;
use cvm_tests::{ms, ratio, time_command};
use sha2::Sha384;
use std::path::{Path, PathBuf};

const RUNS: usize = 7;

/// Bytes the TDX measurement hashes, whoever computes it.
fn hashed_bytes(firmware: &[u8], kernel: u64, initrd: u64, acpi: u64) -> u64 {
    let fw = OvmfImage::parse(firmware).unwrap();
    let mut n = 0u64;
    for s in &fw.tdvf().unwrap().sections {
        let pages = s.mem_size / 4096;
        n += pages * 128; // MEM.PAGE.ADD records
        if s.attributes & ATTR_MR_EXTEND != 0 {
            n += pages * 16 * (128 + 256); // MR.EXTEND records and chunks
        }
        if s.kind == cvm_firmware::ovmf::TdvfSectionType::Cfv {
            n += u64::from(s.raw_size); // RTMR 0
        }
    }
    // ACPI tables, loader (4 KiB) and RSDP; the kernel's Authenticode digest covers
    // (nearly) the whole file.
    n + acpi + 4096 + 20 + kernel + initrd
}

fn main() {
    let opts = cvm_tests::bench_options(&["--cvm"]);
    let cvm = PathBuf::from(
        opts.get("--cvm")
            .map_or("target/release/cvm", String::as_str),
    );
    let inputs = cvm_tests::shared_dir().join("reference/inputs");
    let fw = inputs.join("sid/OVMF.inteltdx.ms.fd");
    let kernel = inputs.join("amd64/vmlinuz-6.1.0-56-cloud-amd64");
    let initrd = inputs.join("initrd-small.img");
    let acpi = inputs.join("tdx-acpi/q35-with-hpet/acpi_tables.bin");
    let s = |p: &Path| p.display().to_string();
    let cvm_args: Vec<String> = [
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &s(&fw),
        "--kernel",
        &s(&kernel),
        "--initrd",
        &s(&initrd),
        "--cmdline",
        "console=ttyS0 root=/dev/vda1 ro",
        "--vcpus",
        "8",
        "--memory",
        "16G",
        "--acpi-tables",
        &s(&acpi),
        "--patch-kernel",
        // The reference tools' recipe: the same work as theirs (reading the image's own
        // recipe decompresses its DXE volume, about 0.2 s more).
        "--tdvf-recipe",
        "before-202505",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let (cvm_time, out) = time_command(&cvm, &cvm_args, RUNS);
    let mrtd = out
        .lines()
        .find_map(|l| l.strip_prefix("mrtd:  "))
        .expect("mrtd line")
        .to_owned();
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    let bytes = hashed_bytes(
        &std::fs::read(&fw).unwrap(),
        len(&kernel),
        len(&initrd),
        len(&acpi),
    );
    let floor = cvm_tests::one_pass_floor::<Sha384>(bytes, RUNS);
    println!(
        "configuration: tdx, 8 vCPUs, 16 GiB, {} (4 MiB), q35-with-hpet ACPI, 14 MiB kernel (patched), initrd",
        fw.display()
    );
    println!("median of {RUNS} runs each");
    println!(
        "cvm measure --tee tdx: {:>8.1} ms  (wall time of the process; MRTD {mrtd})",
        ms(cvm_time)
    );
    println!(
        "SHA-384 floor:         {:>8.1} ms  ({:.1} MiB hashed in one pass, in-process)",
        ms(floor),
        bytes as f64 / f64::from(1 << 20)
    );
    println!("cvm / floor:           {:>8.2}x", ratio(cvm_time, floor));
}
