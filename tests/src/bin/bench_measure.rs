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

use cvm_tests::{median, ms, ratio};
use sha2::{Digest, Sha256, Sha384};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";

/// SHA-384 of every measured page (firmware, hashes page, one VMSA per vCPU) and SHA-256
/// of the kernel and initrd: the work no implementation can avoid.
fn hashing_floor(firmware: &[u8], kernel: &[u8], initrd: &[u8], vcpus: usize) -> Duration {
    let page = [0u8; 4096];
    let mut times = Vec::new();
    for _ in 0..RUNS {
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
        times.push(start.elapsed());
    }
    median(times)
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
    let (cvm_time, cvm_out) = cvm_tests::time_command(&cvm, &cvm_args, RUNS);
    let cvm_digest = cvm_out
        .lines()
        .find_map(|l| l.strip_prefix("measurement: "))
        .expect("measurement line")
        .to_owned();

    let floor = hashing_floor(
        &std::fs::read(&fw).unwrap(),
        &std::fs::read(&kernel).unwrap(),
        &std::fs::read(&initrd).unwrap(),
        64,
    );
    println!(
        "configuration: snp, 64 vCPUs, {} (4 MiB), 14 MiB kernel, initrd, cmdline",
        fw.display()
    );
    println!("median of {RUNS} runs each, wall time of the whole process");
    println!(
        "cvm measure:         {:>9.1} ms  ({cvm_digest})",
        ms(cvm_time)
    );
    println!(
        "hashing floor:       {:>9.1} ms  (SHA-384 of measured pages + SHA-256 of kernel and initrd, in-process)",
        ms(floor)
    );
    println!("cvm / floor:         {:>9.2}x", ratio(cvm_time, floor));

    match tool {
        Some(tool) => {
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
            let (tool_time, tool_out) = cvm_tests::time_command(&tool, &tool_args, RUNS);
            let tool_digest = tool_out.trim();
            assert_eq!(
                tool_digest, cvm_digest,
                "the two tools disagree on the digest"
            );
            println!(
                "sev-snp-measure:     {:>9.1} ms  (same digest)",
                ms(tool_time)
            );
            println!(
                "sev-snp-measure / cvm: {:>7.2}x",
                ratio(tool_time, cvm_time)
            );
        }
        None => println!("sev-snp-measure: not run (pass --reference-tool PATH)"),
    }
}
