//! The Realm Initial Measurement of the rows of ../shared/reference/cca_ref.tsv
//! (veraison/cca-realm-measurements; the README there says only its RIM column is a
//! reference) reproduced through `cvm measure --tee cca`: every kvmtool, QEMU and
//! cloud-hypervisor row. The reference tool's arguments are
//! translated to cvm's: its host options and files, and the VMM's own command line
//! (vCPUs, memory, hash, which images it loads, its kernel parameters).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_tests::{read_tsv, reference_dir};
use std::path::Path;

/// Splits a command line, honouring single quotes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// kvmtool's and QEMU's `-m`: MiB, or with a unit.
fn memory_size(s: &str) -> String {
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{s}M")
    } else {
        s.to_owned()
    }
}

/// `cvm measure` arguments for a kvmtool row.
fn kvmtool_args(reference: &Path, row: &Row) -> Vec<String> {
    let id = &row["id"];
    let mut args: Vec<String> = ["measure", "--tee", "cca", "--vmm", "kvmtool"]
        .map(String::from)
        .to_vec();
    let files = tool_files(reference, row, &mut args);
    let vmm = words(&row["vmm_args"]);
    let mut it = vmm.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--realm" | "--irqchip=gicv3-its" => {}
            "-c" => args.extend(["--vcpus".into(), it.next().unwrap()]),
            "-m" => args.extend(["--memory".into(), memory_size(&it.next().unwrap())]),
            "--measurement-algo" => args.extend(["--hash".into(), it.next().unwrap()]),
            "-k" => {
                it.next();
                args.extend(["--kernel".into(), files["-k"].clone()]);
            }
            "-i" => {
                it.next();
                args.extend(["--initrd".into(), files["-i"].clone()]);
            }
            "--firmware" => {
                it.next();
                args.extend(["--firmware".into(), files["-f"].clone()]);
            }
            "-p" => args.extend(["--cmdline".into(), it.next().unwrap()]),
            "--console" => {
                it.next();
            }
            "--realm-pv" => {
                // kvmtool takes the RPV as base64 ("AQ==" is one byte, 0x01).
                assert_eq!(it.next().unwrap(), "AQ==", "{id}");
                args.extend(["--rpv".into(), "01".into()]);
            }
            other => panic!("{id}: kvmtool option {other}"),
        }
    }
    args
}

/// `cvm measure` arguments for a QEMU row (QEMU's own defaults: 128 MiB, one vCPU).
fn qemu_args(reference: &Path, row: &Row) -> Vec<String> {
    let id = &row["id"];
    let mut args: Vec<String> = ["measure", "--tee", "cca", "--vmm", "qemu"]
        .map(String::from)
        .to_vec();
    let files = tool_files(reference, row, &mut args);
    let (mut memory, mut vcpus) = ("128M".to_owned(), "1".to_owned());
    let vmm = words(&row["vmm_args"]);
    let mut it = vmm.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-enable-kvm" | "-nographic" | "-M" => {
                if a == "-M" {
                    let m = it.next().unwrap();
                    assert!(!m.contains("its=off"), "{id}");
                }
            }
            "-object" => {
                let o = it.next().unwrap();
                for item in o.split(',') {
                    if let Some(h) = item.strip_prefix("measurement-algorithm=") {
                        args.extend(["--hash".into(), h.into()]);
                    }
                }
            }
            "-cpu" => {
                for item in it.next().unwrap().split(',') {
                    match item.split_once('=') {
                        Some(("pmu", "on")) => args.push("--pmu".into()),
                        Some(("num-pmu-counters", n)) => {
                            args.extend(["--pmu-counters".into(), n.into()]);
                        }
                        None if item == "host" => {}
                        other => panic!("{id}: -cpu {other:?}"),
                    }
                }
            }
            "-smp" => vcpus = it.next().unwrap(),
            "-m" => memory = memory_size(&it.next().unwrap()),
            "-bios" => {
                it.next();
                args.extend(["--firmware".into(), files["-f"].clone()]);
            }
            "-kernel" => {
                it.next();
                args.extend(["--kernel".into(), files["-k"].clone()]);
            }
            "-initrd" => {
                it.next();
                args.extend(["--initrd".into(), files["-i"].clone()]);
            }
            "-append" => args.extend(["--cmdline".into(), it.next().unwrap()]),
            other => panic!("{id}: QEMU option {other}"),
        }
    }
    args.extend(["--memory".into(), memory, "--vcpus".into(), vcpus]);
    // QEMU's -cpu num-pmu-counters=N asks for at most N of the host's counters: cvm
    // takes the host's count, so give it the lower of the two.
    let counts: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--pmu-counters")
        .map(|(i, _)| i)
        .collect();
    if let [first, second] = counts[..] {
        let n = |i: usize| args[i + 1].parse::<u8>().unwrap();
        let low = n(first).min(n(second)).to_string();
        args[first + 1] = low;
        args.drain(second..second + 2);
    }
    args
}

/// `cvm measure` arguments for a cloud-hypervisor row.
fn cloud_hv_args(reference: &Path, row: &Row) -> Vec<String> {
    let id = &row["id"];
    let mut args: Vec<String> = ["measure", "--tee", "cca", "--vmm", "cloud-hv"]
        .map(String::from)
        .to_vec();
    let files = tool_files(reference, row, &mut args);
    let mut it = words(&row["vmm_args"]).into_iter();
    while let Some(a) = it.next() {
        let v = it.next().unwrap();
        let param = |key: &str| {
            v.split(',')
                .find_map(|item| item.strip_prefix(key))
                .unwrap_or_else(|| panic!("{id}: {a} {v}"))
                .to_owned()
        };
        match a.as_str() {
            "--platform" => args.extend(["--hash".into(), param("measurement_algo=")]),
            "--cpus" => args.extend(["--vcpus".into(), param("boot=")]),
            "--memory" => args.extend(["--memory".into(), param("size=")]),
            "--kernel" => args.extend(["--kernel".into(), files["-k"].clone()]),
            "--initramfs" => args.extend(["--initrd".into(), files["-i"].clone()]),
            "--cmdline" => args.extend(["--cmdline".into(), v]),
            other => panic!("{id}: cloud-hypervisor option {other}"),
        }
    }
    args
}

/// The reference tool's own options: host capabilities into `args`, image files
/// returned by option.
fn tool_files(
    reference: &Path,
    row: &Row,
    args: &mut Vec<String>,
) -> std::collections::BTreeMap<String, String> {
    let id = &row["id"];
    let path = |p: String| reference.join(p).display().to_string();
    let mut files = std::collections::BTreeMap::new();
    let mut it = words(&row["tool_args"]).into_iter();
    while let Some(a) = it.next() {
        let v = it.next().unwrap();
        match a.as_str() {
            "-c" => args.extend(["--host-config".into(), path(v)]),
            "-k" | "-i" | "-f" => {
                files.insert(a, path(v));
            }
            "--num-wps" | "--num-bps" | "--ipa-bits" => args.extend([a, v]),
            "--pmu-num-ctrs" => args.extend(["--pmu-counters".into(), v]),
            other => panic!("{id}: tool option {other}"),
        }
    }
    files
}

fn measure(args: &[String]) -> (u8, serde_json::Value) {
    let (code, json, _) = cvm_tests::cvm_json(args);
    (code, json)
}

fn reproduce(vmm: &str, count: usize, args: fn(&Path, &Row) -> Vec<String>) {
    let Some(r) = reference_dir() else { return };
    let rows: Vec<_> = read_tsv(&r.join("cca_ref.tsv"))
        .into_iter()
        .filter(|row| row["vmm"] == vmm)
        .collect();
    assert_eq!(rows.len(), count, "the {vmm} rows of cca_ref.tsv");
    let mut wrong = Vec::new();
    for row in &rows {
        let id = &row["id"];
        let (code, json) = measure(&args(&r, row));
        assert_eq!(code, 0, "{id}: {json}");
        assert_eq!(json["tee"], "cca", "{id}");
        let rim = json["rim"].as_str().unwrap();
        // The table keeps the RIM in its 64-byte field: SHA-256 values zero-padded.
        let want = &row["RIM"];
        let padded = format!("{rim:0<128}");
        if padded != *want || (rim.len() == 64 && !want.ends_with(&"0".repeat(64))) {
            wrong.push(format!("{id}: {rim} != {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

type Row = std::collections::BTreeMap<String, String>;

#[test]
fn every_kvmtool_row_reproduces_the_reference_rim_through_cvm_measure() {
    reproduce("kvmtool", 15, kvmtool_args);
}

#[test]
fn every_qemu_row_reproduces_the_reference_rim_through_cvm_measure() {
    reproduce("qemu", 19, qemu_args);
}

#[test]
fn every_cloud_hypervisor_row_reproduces_the_reference_rim_through_cvm_measure() {
    reproduce("cloud-hv", 2, cloud_hv_args);
}

#[test]
fn the_personalization_value_is_reported_not_measured() {
    // Rows cca-021 and cca-046 differ only by kvmtool's --realm-pv; the table's RIMs
    // are equal, and cvm reports the RPV beside the RIM.
    let Some(r) = reference_dir() else { return };
    let rows = read_tsv(&r.join("cca_ref.tsv"));
    let row = |id: &str| rows.iter().find(|x| x["id"] == id).unwrap().clone();
    let (_, a) = measure(&kvmtool_args(&r, &row("cca-021")));
    let (_, b) = measure(&kvmtool_args(&r, &row("cca-046")));
    assert_eq!(a["rim"], b["rim"]);
    assert_eq!(b["rpv"], format!("01{}", "00".repeat(63)));
    assert!(a.get("rpv").is_none());
}

#[test]
fn explain_lists_every_rmi_step_ending_in_the_rim() {
    let Some(r) = reference_dir() else { return };
    let rows = read_tsv(&r.join("cca_ref.tsv"));
    let row = rows.iter().find(|x| x["id"] == "cca-022").unwrap();
    let mut args = kvmtool_args(&r, row);
    args.push("--explain".into());
    let (code, json) = measure(&args);
    assert_eq!(code, 0, "{json}");
    let steps = json["steps"].as_array().unwrap();
    let commands: Vec<&str> = steps
        .iter()
        .map(|s| s["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "RMI_REALM_CREATE",
            "RMI_RTT_INIT_RIPAS",
            "RMI_DATA_CREATE",
            "RMI_DATA_CREATE",
            "RMI_DATA_CREATE",
            "RMI_REC_CREATE"
        ]
    );
    assert_eq!(steps.last().unwrap()["rim"], json["rim"]);
    // A boot a layout does not model is refused, not guessed: cloud-hypervisor with
    // firmware.
    let mut chv = kvmtool_args(&r, row);
    chv[4] = "cloud-hv".into();
    let fw = r.join("inputs/cca/fw-content.bin").display().to_string();
    chv.extend(["--firmware".into(), fw]);
    let (code, json) = measure(&chv);
    assert_eq!(code, 1, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("not modelled"), "{json}");
}

#[test]
fn the_reference_tools_own_qemu_test_values_are_reproduced() {
    // veraison/cca-realm-measurements tests/cmdline.rs (qemu_params, qemu_measurements):
    // its host options, QEMU's defaults (128 MiB, one vCPU, SHA-512), the PMU off and on.
    let Some(r) = reference_dir() else { return };
    let base = [
        "measure",
        "--tee",
        "cca",
        "--vmm",
        "qemu",
        "--num-wps",
        "6",
        "--num-bps",
        "6",
        "--ipa-bits",
        "52",
        "--pmu-counters",
        "6",
        "--memory",
        "128M",
    ];
    let run = |extra: &[&str]| {
        let mut a: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        let (code, json) = measure(&a);
        assert_eq!(code, 0, "{json}");
        json["rim"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        run(&[]),
        "cf409055d866eea6c8d5e7862b540ff1cac9b11f125d088587d5ae97a0e3341667cf8fb3983e7377bca5c01d037bd97081ebf3b4dcb648442149749f4d65eeb0"
    );
    assert_eq!(
        run(&["--pmu"]),
        "8120ef921a987a3f8b9d4bb5e40f8489e2b4fc69c5e1b17b1a9b040884a1211d99b2bddc3fddcc99ec99f4244743fe3dcd3d9020583b47f7b66a2ec66bb897b9"
    );
    // -kernel Image -initrd initrd (no -append) on the tool's test kernel, SHA-256, 2
    // vCPUs, 1 GiB: a case the table does not hold.
    let kernel = r.join("inputs/cca/linux.bin").display().to_string();
    let initrd = r
        .join("inputs/cca/initrd-content.bin")
        .display()
        .to_string();
    let mut a: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
    a.truncate(a.len() - 2);
    a.extend(
        [
            "--memory", "1G", "--vcpus", "2", "--hash", "sha256", "--kernel", &kernel, "--initrd",
            &initrd,
        ]
        .map(String::from),
    );
    let (code, json) = measure(&a);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        json["rim"],
        "9af47a8e4d6ac775e05f8a8893f9e383694688719d1bbb4281ed1c25056e0911"
    );
}
