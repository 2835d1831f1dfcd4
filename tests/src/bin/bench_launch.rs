//! Benchmark: `cvm launch --tee none` against Debian's `qemu-system-x86_64 -enable-kvm`
//! booting the same payload (the test firmware from `launcher/guest/reset.s`: reset vector
//! to long mode, one line on COM1, debug-exit) to its exit, side by side in one run.
//! Prints the median wall times, their ratio, and each VMM's peak RSS (from GNU time);
//! asserts nothing about time.
//!
//! Run through `bench/launch.sh`, which builds cvm in release mode and passes the paths.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program that reports on stdout"
)]

use cvm_tests::{median, ms, ratio};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;
const MEMORY: &str = "128M";

struct Vmm {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// The exit status that means the payload ran to its end.
    ok_status: i32,
}

impl Vmm {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).stdin(Stdio::null());
        c
    }

    /// One run: wall time, and the serial output it printed.
    fn run(&self) -> (Duration, String) {
        let start = Instant::now();
        let out = self.command().output().expect("run the VMM");
        let wall = start.elapsed();
        assert_eq!(
            out.status.code(),
            Some(self.ok_status),
            "{}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        (wall, String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Peak RSS in KiB, through GNU time.
    fn peak_rss_kib(&self) -> u64 {
        let out = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run /usr/bin/time (Debian package `time`)");
        let err = String::from_utf8_lossy(&out.stderr);
        err.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no RSS from /usr/bin/time: {err}"))
    }
}

/// QEMU's pc machine with `machine` options, booting `firmware` with the debug-exit port.
fn qemu_vmm(name: &'static str, qemu: &Path, machine: &str, firmware: &str) -> Vmm {
    Vmm {
        name,
        program: qemu.to_path_buf(),
        args: [
            "-enable-kvm",
            "-cpu",
            "host,-arch-capabilities",
            "-machine",
            machine,
            "-m",
            MEMORY,
            "-nodefaults",
            "-nographic",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-bios",
            firmware,
            "-device",
            "isa-debug-exit,iobase=0x501,iosize=1",
            "-no-reboot",
        ]
        .map(String::from)
        .to_vec(),
        // isa-debug-exit turns the guest's 0 into (0 << 1) | 1.
        ok_status: 1,
    }
}

fn main() {
    let opts = cvm_tests::bench_options(&["--cvm", "--qemu", "--firmware"]);
    let opt = |name: &str| {
        opts.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("usage: bench_launch --cvm PATH --qemu PATH --firmware PATH"))
    };
    let (cvm, qemu, firmware) = (
        PathBuf::from(opt("--cvm")),
        PathBuf::from(opt("--qemu")),
        opt("--firmware"),
    );
    let cvm_args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "launch",
            "--tee",
            "none",
            "--memory",
            MEMORY,
            "--firmware",
            &firmware,
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let vmms = [
        Vmm {
            name: "cvm launch --tee none",
            program: cvm.clone(),
            args: cvm_args(&[]),
            ok_status: 0,
        },
        Vmm {
            name: "cvm launch --tee none --pit off",
            program: cvm.clone(),
            args: cvm_args(&["--pit", "off"]),
            ok_status: 0,
        },
        Vmm {
            name: "cvm launch --irqchip split",
            program: cvm.clone(),
            args: cvm_args(&["--irqchip", "split"]),
            ok_status: 0,
        },
        qemu_vmm("qemu-system-x86_64 -enable-kvm", &qemu, "pc", &firmware),
        qemu_vmm("qemu -machine pit=off", &qemu, "pc,pit=off", &firmware),
        qemu_vmm(
            "qemu -machine kernel-irqchip=split",
            &qemu,
            "pc,kernel-irqchip=split",
            &firmware,
        ),
    ];
    // Interleaved runs, so that both see the same machine state.
    let mut times: [Vec<Duration>; 6] = Default::default();
    for _ in 0..RUNS {
        for (i, v) in vmms.iter().enumerate() {
            let (t, serial) = v.run();
            assert!(serial.contains("long mode: ok"), "{}: {serial}", v.name);
            times[i].push(t);
        }
    }
    let medians = times.map(median);
    let [
        cvm_t,
        cvm_nopit_t,
        cvm_split_t,
        qemu_t,
        qemu_nopit_t,
        qemu_split_t,
    ] = medians;
    let rss: Vec<u64> = vmms.iter().map(Vmm::peak_rss_kib).collect();
    println!(
        "payload: launcher/guest/reset.s (64 KiB firmware), {MEMORY} guest RAM, medians of {RUNS} interleaved runs"
    );
    for ((v, t), r) in vmms.iter().zip(medians).zip(&rss) {
        println!(
            "{:36} {:8.2} ms   peak RSS {:6.1} MiB",
            v.name,
            ms(t),
            *r as f64 / 1024.0
        );
    }
    println!(
        "cvm / QEMU wall time: {:.3} with the same devices (in-kernel PIT, as QEMU's pc machine), {:.3} without the PIT, {:.3} with the split irqchip (target: under 0.2)",
        ratio(cvm_t, qemu_t),
        ratio(cvm_nopit_t, qemu_t),
        ratio(cvm_split_t, qemu_t)
    );
    println!(
        "like for like, cvm / QEMU: {:.3} with in-kernel PIT, {:.3} without a PIT, {:.3} with the split irqchip",
        ratio(cvm_t, qemu_t),
        ratio(cvm_nopit_t, qemu_nopit_t),
        ratio(cvm_split_t, qemu_split_t)
    );
    println!(
        "cvm's peak RSS: {:.1} MiB, guest RAM touched included (target: under 10 MiB beyond guest RAM)",
        rss[0] as f64 / 1024.0
    );
}
