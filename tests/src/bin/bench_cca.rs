//! Benchmark: `cvm measure --tee cca` (kvmtool's layout, SHA-256) of a realm with a 32 MiB
//! arm64 Image and a 16 MiB initrd in 1 GiB of RAM, against the floor set by hashing
//! alone: one SHA-256 pass over as many bytes as the RMM's measurement hashes (every
//! populated granule, a 256-byte descriptor per granule and per RIPAS block, the realm
//! and REC parameters). The images are generated here (no arm64 kernel is among the
//! reference inputs, and the reference tool, veraison/cca-realm-measurements, is not
//! installable offline). Prints ratios; asserts nothing about time.
//!
//! Run through `bench/measure.sh`, which builds cvm in release mode.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::indexing_slicing,
    reason = "a benchmark program that reports on stdout; its sizes are constants"
)]

use cvm_tests::{ms, ratio, time_command};
use sha2::Sha256;
use std::path::PathBuf;

const RUNS: usize = 7;
const KERNEL: usize = 32 << 20;
const INITRD: usize = 16 << 20;

fn main() {
    let opts = cvm_tests::bench_options(&["--cvm"]);
    let cvm = PathBuf::from(
        opts.get("--cvm")
            .map_or("target/release/cvm", String::as_str),
    );
    let dir = std::env::temp_dir().join(format!("cvm-bench-cca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // An arm64 Image header (Documentation/arch/arm64/booting.rst): text_offset 0,
    // image_size, the magic at 56; the rest pseudo-random.
    let mut kernel: Vec<u8> = (0..KERNEL as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    kernel[8..16].copy_from_slice(&0u64.to_le_bytes());
    kernel[16..24].copy_from_slice(&(KERNEL as u64).to_le_bytes());
    kernel[56..60].copy_from_slice(b"ARM\x64");
    let initrd: Vec<u8> = (0..INITRD as u32).map(|i| (i >> 5) as u8).collect();
    let (k, i) = (dir.join("Image"), dir.join("initrd"));
    std::fs::write(&k, &kernel).unwrap();
    std::fs::write(&i, &initrd).unwrap();
    let args: Vec<String> = [
        "measure",
        "--tee",
        "cca",
        "--vmm",
        "kvmtool",
        "--memory",
        "1G",
        "--vcpus",
        "4",
        "--num-bps",
        "6",
        "--num-wps",
        "4",
        "--ipa-bits",
        "40",
        "--kernel",
        k.to_str().unwrap(),
        "--initrd",
        i.to_str().unwrap(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let (cvm_time, out) = time_command(&cvm, &args, RUNS);
    let rim = out
        .lines()
        .find_map(|l| l.strip_prefix("rim: "))
        .expect("rim line")
        .to_owned();
    // Granules of the kernel, the initrd and the 64 KiB DTB, each hashed and then its
    // descriptor; RIPAS descriptors for 1 GiB (at most 512 blocks); two 4 KiB parameter
    // pages.
    let granules = ((KERNEL + INITRD) / 4096 + 16) as u64;
    let bytes = granules * (4096 + 256) + 512 * 256 + 2 * 4096;
    let floor = cvm_tests::one_pass_floor::<Sha256>(bytes, RUNS);
    println!("configuration: cca (kvmtool), 4 vCPUs, 1 GiB, 32 MiB Image, 16 MiB initrd");
    println!("median of {RUNS} runs each");
    println!(
        "cvm measure --tee cca: {:>8.1} ms  (wall time of the process; RIM {rim})",
        ms(cvm_time)
    );
    println!(
        "SHA-256 floor:         {:>8.1} ms  ({:.1} MiB hashed in one pass, in-process)",
        ms(floor),
        bytes as f64 / f64::from(1 << 20)
    );
    println!("cvm / floor:           {:>8.2}x", ratio(cvm_time, floor));
    std::fs::remove_dir_all(&dir).ok();
}
