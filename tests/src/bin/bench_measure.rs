//! Benchmark: `cvm measure` against sev-snp-measure on the largest reference configuration
//! (SNP, 64 vCPUs, the 4 MiB sid OVMF, the 14 MiB Debian kernel, initrd and command line),
//! and against the floor set by hashing alone. Prints ratios; asserts nothing about time.
//!
//! Run through `bench/measure.sh`, which builds cvm in release mode and installs
//! sev-snp-measure from PyPI into a virtualenv under `target/`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program that reports on stdout"
)]

use cvm_tests::{median, ms};
use sha2::{Digest, Sha256, Sha384};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 15;
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";

/// SHA-384 of every measured page (firmware, hashes page, one VMSA per vCPU) and SHA-256
/// of the kernel and initrd: the work no implementation can avoid, on one core.
fn hashing_floor(firmware: &[u8], kernel: &[u8], initrd: &[u8], vcpus: usize) -> Duration {
    let page = [0u8; 4096];
    let start = Instant::now();
    let mut sink = 0u8;
    for p in firmware
        .chunks(4096)
        .chain(std::iter::repeat_n(&page[..], vcpus + 1))
    {
        sink ^= Sha384::digest(p)[0];
    }
    sink ^= Sha256::digest(kernel)[0];
    sink ^= Sha256::digest(initrd)[0];
    std::hint::black_box(sink);
    start.elapsed()
}

fn main() {
    let opts = cvm_tests::bench_options(&["--cvm", "--reference-tool"]);
    let cvm = PathBuf::from(
        opts.get("--cvm")
            .map_or("target/release/cvm", String::as_str),
    );
    let tool = opts.get("--reference-tool").map(PathBuf::from);
    let inputs = cvm_tests::shared_dir().join("reference/inputs");
    let fw = inputs.join("sid/OVMF.amdsev.fd");
    let kernel = inputs.join("amd64/vmlinuz-6.1.0-56-cloud-amd64");
    let initrd = inputs.join("initrd-small.img");
    let s = |p: &Path| p.display().to_string();

    let cvm_args: Vec<String> = [
        "measure",
        "--tee",
        "snp",
        "--firmware",
        &s(&fw),
        "--kernel",
        &s(&kernel),
        "--initrd",
        &s(&initrd),
        "--cmdline",
        CMDLINE,
        "--vcpus",
        "64",
        "--vcpu-type",
        "EPYC-Genoa",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let tool_args: Vec<String> = [
        "--mode",
        "snp",
        "--vcpus",
        "64",
        "--vcpu-type",
        "EPYC-Genoa",
        "--ovmf",
        &s(&fw),
        "--kernel",
        &s(&kernel),
        "--initrd",
        &s(&initrd),
        "--append",
        CMDLINE,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let (fw_bytes, kernel_bytes, initrd_bytes) = (
        std::fs::read(&fw).unwrap(),
        std::fs::read(&kernel).unwrap(),
        std::fs::read(&initrd).unwrap(),
    );
    // Rounds interleave the three, so that a slow spell of this shared machine hits
    // all of them; each ratio is also taken within a round.
    let (mut cvm_times, mut floors, mut tool_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut to_floor, mut tool_to_cvm) = (Vec::new(), Vec::new());
    let mut cvm_digest = String::new();
    for _ in 0..RUNS {
        let (cvm_time, out) = cvm_tests::time_once(&cvm, &cvm_args);
        cvm_digest = out
            .lines()
            .find_map(|l| l.strip_prefix("measurement: "))
            .expect("measurement line")
            .to_owned();
        let floor = hashing_floor(&fw_bytes, &kernel_bytes, &initrd_bytes, 64);
        to_floor.push(cvm_time.as_secs_f64() / floor.as_secs_f64());
        cvm_times.push(cvm_time);
        floors.push(floor);
        if let Some(tool) = &tool {
            let (tool_time, out) = cvm_tests::time_once(tool, &tool_args);
            assert_eq!(
                out.trim(),
                cvm_digest,
                "the two tools disagree on the digest"
            );
            tool_to_cvm.push(tool_time.as_secs_f64() / cvm_time.as_secs_f64());
            tool_times.push(tool_time);
        }
    }
    println!(
        "configuration: snp, 64 vCPUs, {} (4 MiB), 14 MiB kernel, initrd, cmdline",
        fw.display()
    );
    println!("{RUNS} interleaved rounds; medians; cvm's is the wall time of the whole process");
    println!(
        "cvm measure:         {:>9.1} ms  ({cvm_digest})",
        ms(median(cvm_times))
    );
    println!(
        "hashing floor:       {:>9.1} ms  (SHA-384 of measured pages + SHA-256 of kernel and initrd, in-process, one core)",
        ms(median(floors))
    );
    println!(
        "cvm / floor:         {:>9.2}x  (median of the rounds' ratios)",
        cvm_tests::median_f64(to_floor)
    );
    if tool.is_none() {
        println!("sev-snp-measure: not run (pass --reference-tool PATH)");
        return;
    }
    println!(
        "sev-snp-measure:     {:>9.1} ms  (same digest)",
        ms(median(tool_times))
    );
    println!(
        "sev-snp-measure / cvm: {:>7.2}x  (median of the rounds' ratios)",
        cvm_tests::median_f64(tool_to_cvm)
    );
}
