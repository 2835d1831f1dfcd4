//! Every row of shared/reference/tdx_ref.tsv (fortanix/tdx-measure, dstack-mr, td-shim's
//! tee-info-hash): MRTD always, RTMR 1 and 2 wherever the tool gives them, RTMR 0 wherever
//! the row's note does not mark the tool's value invalid (the enrolled-keys image, for
//! which `enrolled_keys_rtmr0_measures_the_variable_store` shows the difference).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_firmware::hex;
use cvm_firmware::measure::tdx::{self, Event};
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::tdx::{AddOrder, DirectBoot, TdxConfig};
use cvm_tests::{read_tsv, reference_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn firmware_path(reference: &Path, label: &str) -> PathBuf {
    let (prefix, file) = label.split_once(':').expect("label is prefix:file");
    let dir = prefix.split('-').next().unwrap(); // sid, trixie, bookworm
    reference.join("inputs").join(dir).join(file)
}

#[derive(Debug, Default)]
struct Row {
    id: String,
    vcpus: u32,
    memory: u64,
    acpi: Option<String>,
    initrd: Option<&'static str>,
    patch_kernel: bool,
    order: AddOrder,
    kernel: bool,
}

fn parse_row(r: &BTreeMap<String, String>) -> Row {
    let mut row = Row {
        id: r["id"].clone(),
        vcpus: 1,
        memory: 2 << 30,
        kernel: r["kernel_sha256"] != "-",
        ..Row::default()
    };
    for opt in r["options"].split_whitespace() {
        match opt.split_once('=') {
            Some(("cpus", n)) => row.vcpus = n.parse().unwrap(),
            Some(("mem", m)) => {
                row.memory = m.strip_suffix('M').unwrap().parse::<u64>().unwrap() << 20;
            }
            Some(("acpi", a)) => row.acpi = Some(a.to_owned()),
            Some(("initrd", "small")) => row.initrd = Some("initrd-small.img"),
            Some(("initrd", "empty")) => row.initrd = Some(""),
            Some(("manifest" | "seperator", _)) => {}
            None if opt == "--patch-kernel" => row.patch_kernel = true,
            None if opt == "single-pass" || opt == "-" => {}
            None if opt.starts_with("two-pass") => row.order = AddOrder::TwoPass,
            // "(QEMU" "8.x)" of "two-pass(QEMU 8.x)"
            None if opt.ends_with(')') => {}
            Some(_) | None => panic!("{}: unknown option {opt:?}", row.id),
        }
    }
    // dstack-mr always serves the kernel as QEMU patches it.
    if r["tool"] == "dstack-mr" {
        row.patch_kernel = true;
    }
    row
}

struct Computed {
    mrtd: String,
    rtmr: [Option<String>; 4],
    events: Vec<Event>,
}

fn compute(reference: &Path, r: &BTreeMap<String, String>, row: &Row) -> Computed {
    let fw_bytes = std::fs::read(firmware_path(reference, &r["firmware"])).unwrap();
    let fw = OvmfImage::parse(&fw_bytes).unwrap();
    let inputs = reference.join("inputs");
    let kernel = std::fs::read(inputs.join("amd64/vmlinuz-6.1.0-56-cloud-amd64")).unwrap();
    let initrd = row.initrd.map(|f| match f {
        "" => Vec::new(),
        f => std::fs::read(inputs.join(f)).unwrap(),
    });
    let acpi = row
        .acpi
        .as_ref()
        .map(|a| std::fs::read(inputs.join("tdx-acpi").join(a).join("acpi_tables.bin")).unwrap());
    let cmdline = r["cmdline"].clone();
    let cfg = TdxConfig {
        firmware: &fw,
        memory: row.memory,
        vcpus: row.vcpus,
        order: row.order,
        direct_boot: row.kernel.then(|| DirectBoot {
            kernel: &kernel,
            initrd: initrd.as_deref(),
            cmdline: Some(&cmdline),
            patch_kernel: row.patch_kernel,
        }),
        acpi_tables: acpi.as_deref(),
    };
    let plan = cvm_firmware::tdx::plan(&cfg).unwrap_or_else(|e| panic!("{}: {e}", row.id));
    let m = tdx::measure(&plan).unwrap();
    Computed {
        mrtd: hex::encode(&m.mrtd),
        rtmr: m.rtmr.map(|r| r.map(|d| hex::encode(&d))),
        events: m.events,
    }
}

#[test]
fn every_row_matches_the_reference_tools() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let rows = read_tsv(&reference.join("tdx_ref.tsv"));
    assert!(rows.len() > 90, "tdx_ref.tsv has {} rows", rows.len());
    let mut failures = Vec::new();
    let (mut mrtds, mut rtmr0s, mut rtmr12s) = (0, 0, 0);
    for r in &rows {
        if r["MRTD"].starts_with("ERROR") {
            // A limit of the harness around dstack-mr (it needs a command line), not an
            // expected refusal: see the table's README.
            continue;
        }
        let row = parse_row(r);
        let got = compute(&reference, r, &row);
        let mut check = |what: &str, expected: &str, got: Option<&String>| {
            if expected == "-" {
                return false;
            }
            if got.map(String::as_str) != Some(expected) {
                failures.push(format!(
                    "{} {what}: expected {expected}, got {got:?}",
                    row.id
                ));
            }
            true
        };
        if check("MRTD", &r["MRTD"], Some(&got.mrtd)) {
            mrtds += 1;
        }
        let rtmr0_invalid = r["note"].starts_with("RTMR0 assumes empty");
        if !rtmr0_invalid && check("RTMR0", &r["RTMR0"], got.rtmr[0].as_ref()) {
            rtmr0s += 1;
        }
        let a = check("RTMR1", &r["RTMR1"], got.rtmr[1].as_ref());
        let b = check("RTMR2", &r["RTMR2"], got.rtmr[2].as_ref());
        if a && b {
            rtmr12s += 1;
        }
        if !failures.is_empty() && failures.len() < 4 {
            for e in &got.events {
                eprintln!(
                    "  {} rtmr{} {:?} {}",
                    row.id, e.rtmr, e.event_type, e.description
                );
            }
        }
    }
    eprintln!("checked {mrtds} MRTDs, {rtmr0s} RTMR0s, {rtmr12s} RTMR1/RTMR2 pairs");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(mrtds >= 80 && rtmr0s >= 50 && rtmr12s >= 70);
}
