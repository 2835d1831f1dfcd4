//! Every row of shared/reference/tdx_ref.tsv (fortanix/tdx-measure, dstack-mr, td-shim's
//! tee-info-hash): MRTD always, RTMR 1 and 2 wherever the tool gives them, RTMR 0 wherever
//! the row's note does not mark the tool's value invalid (the enrolled-keys image, for
//! which `enrolled_keys_rtmr0_measures_the_variable_store` shows the difference).
//!
//! Rows with an empty initrd: the tools measure " initrd=initrd" and an empty initrd into
//! RTMR 2; the firmware does neither (OVMF appends " initrd=initrd" only for an initrd of
//! nonzero size and installs no initrd LoadFile2 for an empty one, and the Linux EFI stub
//! measures no empty load options). For those rows the table's RTMR 2 is checked against
//! the tools' recipe and cvm's against the firmware's, both computed here.
//!
//! The tools follow the edk2 recipe from before edk2-stable202505, the image in the rows
//! (Debian's 2026.08 TDVF) a newer one: the rows are measured with the old recipe
//! (`Recipe::BEFORE_202505`, as `--tdvf-recipe before-202505` does), and
//! `the_image_measures_with_its_own_recipe` checks what the image's own recipe changes,
//! component by component.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_firmware::edk2::Recipe;
use cvm_firmware::measure::tdx::{self, Event};
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::tdx::{AddOrder, DirectBoot, TdxConfig};
use cvm_tests::{read_tsv, reference_dir};
use sha2::{Digest, Sha384};
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
    /// The recipe to measure with (`None`: the image's own).
    recipe: Option<Recipe>,
}

fn parse_row(r: &BTreeMap<String, String>) -> Row {
    let mut row = Row {
        id: r["id"].clone(),
        vcpus: 1,
        memory: 2 << 30,
        kernel: r["kernel_sha256"] != "-",
        recipe: Some(Recipe::BEFORE_202505),
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

/// Builds the row's plan and hands it to `f`.
fn with_plan<T>(
    reference: &Path,
    r: &BTreeMap<String, String>,
    row: &Row,
    f: impl FnOnce(&cvm_firmware::plan::LaunchPlan<'_>) -> T,
) -> T {
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
        recipe: row.recipe,
    };
    let plan = cvm_firmware::tdx::plan(&cfg).unwrap_or_else(|e| panic!("{}: {e}", row.id));
    f(&plan)
}

fn compute(reference: &Path, r: &BTreeMap<String, String>, row: &Row) -> Computed {
    with_plan(reference, r, row, |plan| {
        let m = tdx::measure(plan).unwrap();
        Computed {
            mrtd: hex::encode(m.mrtd),
            rtmr: m.rtmr.map(|r| r.map(hex::encode)),
            events: m.events,
        }
    })
}

fn sha384(data: &[u8]) -> [u8; 48] {
    Sha384::digest(data).into()
}

/// The image's own recipe (edk2-stable202508 or later, read from it) against the tools'
/// (before edk2-stable202505), on a row with an initrd: MRTD and RTMR 1 are the same;
/// RTMR 0 gains the fw_cfg cache events after the CFV event (here the boot-menu key
/// alone, two zero bytes, since the plan serves none of the cached files) and becomes
/// unpredicted (the SMBIOS event); RTMR 2 has "initrd=initrd " in front of the command
/// line instead of after it.
#[test]
fn the_image_measures_with_its_own_recipe() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let rows = read_tsv(&reference.join("tdx_ref.tsv"));
    let r = rows
        .iter()
        .find(|r| r["id"] == "tdx-001")
        .expect("row tdx-001");
    let old = parse_row(r);
    assert!(old.initrd.is_some_and(|i| !i.is_empty()));
    let new = Row {
        recipe: None,
        ..parse_row(r)
    };
    let (old_m, new_m) = (
        with_plan(&reference, r, &old, |p| tdx::measure(p).unwrap()),
        with_plan(&reference, r, &new, |p| tdx::measure(p).unwrap()),
    );
    assert_eq!(new_m.tdvf.recipe, Recipe::STABLE_202508);
    assert!(!new_m.tdvf.assumed, "{}", new_m.tdvf.why);
    assert_eq!(old_m.mrtd, new_m.mrtd);
    assert_eq!(old_m.rtmr[1], new_m.rtmr[1]);
    // RTMR 0: the old events, with the boot-menu key's inserted after the CFV's.
    assert!(old_m.rtmr[0].is_some());
    assert_eq!(new_m.rtmr[0], None);
    assert!(new_m.unpredicted[0].unwrap().contains("SMBIOS"));
    let digests = |m: &tdx::TdxMeasurement| -> Vec<[u8; 48]> {
        m.events
            .iter()
            .filter(|e| e.rtmr == 0)
            .map(|e| e.digest)
            .collect()
    };
    let mut expected = digests(&old_m);
    let cfv = old_m
        .events
        .iter()
        .filter(|e| e.rtmr == 0)
        .position(|e| e.description.starts_with("CFV"))
        .unwrap();
    expected.insert(cfv + 1, sha384(&[0, 0]));
    assert_eq!(digests(&new_m), expected);
    // RTMR 2: the prefix form, then the initrd.
    let initrd = std::fs::read(reference.join("inputs").join(old.initrd.unwrap())).unwrap();
    let options = format!("initrd=initrd {}", r["cmdline"]);
    let mut utf16: Vec<u8> = options.encode_utf16().flat_map(u16::to_le_bytes).collect();
    utf16.extend_from_slice(&[0, 0]);
    let rtmr2 = [sha384(&utf16), sha384(&initrd)]
        .iter()
        .fold([0u8; 48], |acc, d| tdx::extend(&acc, d));
    assert_eq!(new_m.rtmr[2], Some(rtmr2));
    assert_ne!(old_m.rtmr[2], new_m.rtmr[2]);
}

#[test]
fn every_row_matches_the_reference_tools() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let rows = read_tsv(&reference.join("tdx_ref.tsv"));
    assert!(rows.len() > 90, "tdx_ref.tsv has {} rows", rows.len());
    let mut failures = Vec::new();
    let (mut mrtds, mut rtmr0s, mut rtmr12s, mut empty_initrds) = (0, 0, 0, 0);
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
        let b = if row.initrd == Some("") && r["RTMR2"] != "-" {
            empty_initrds += 1;
            let cmdline = &r["cmdline"];
            check(
                "RTMR2 (tools' recipe)",
                &r["RTMR2"],
                Some(&rtmr2(cmdline, true)),
            );
            check(
                "RTMR2 (firmware's recipe)",
                &rtmr2(cmdline, false),
                got.rtmr[2].as_ref(),
            )
        } else {
            check("RTMR2", &r["RTMR2"], got.rtmr[2].as_ref())
        };
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
    eprintln!(
        "checked {mrtds} MRTDs, {rtmr0s} RTMR0s, {rtmr12s} RTMR1/RTMR2 pairs \
         ({empty_initrds} with an empty initrd)"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(mrtds >= 80 && rtmr0s >= 50 && rtmr12s >= 70 && empty_initrds >= 30);
}

/// RTMR 2 for `cmdline` and an empty initrd: as the tools compute it (`tools`: the load
/// options with " initrd=initrd", then the empty initrd) or as the firmware and the Linux
/// EFI stub do (the command line alone, measured only when it is not empty).
fn rtmr2(cmdline: &str, tools: bool) -> String {
    let mut options = cmdline.to_owned();
    if tools {
        options.push_str(" initrd=initrd");
    }
    let mut events = Vec::new();
    if !options.is_empty() {
        let mut utf16: Vec<u8> = options.encode_utf16().flat_map(u16::to_le_bytes).collect();
        utf16.extend_from_slice(&[0, 0]);
        events.push(Sha384::digest(&utf16));
    }
    if tools {
        events.push(Sha384::digest(b""));
    }
    let rtmr = events.iter().fold([0u8; 48], |r, d| {
        let mut h = Sha384::new();
        h.update(r);
        h.update(d);
        h.finalize().into()
    });
    hex::encode(rtmr)
}

/// OVMF.inteltdx.ms.fd ships with Microsoft's keys enrolled in its variable store, so
/// TDVF measures real PK, KEK, db and dbx contents (and SecureBoot = 1) where the
/// reference tools measure empty variables. cvm's RTMR 0 differs from the table's, and
/// only by those events: with them replaced by empty variables it is the table's value.
#[test]
fn enrolled_keys_rtmr0_measures_the_variable_store() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let rows = read_tsv(&reference.join("tdx_ref.tsv"));
    let r = rows
        .iter()
        .find(|r| r["id"] == "tdx-001")
        .expect("row tdx-001");
    assert!(r["firmware"].ends_with("OVMF.inteltdx.ms.fd"));
    let row = parse_row(r);
    let got = compute(&reference, r, &row);
    let ours = got.rtmr[0].clone().unwrap();
    assert_ne!(ours, r["RTMR0"], "the enrolled keys must change RTMR 0");

    let vars: Vec<&Event> = got
        .events
        .iter()
        .filter(|e| e.event_type == tdx::EventType::VariableDriverConfig)
        .collect();
    let names: Vec<&str> = vars
        .iter()
        .map(|e| e.description.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["SecureBoot", "PK", "KEK", "db", "dbx"]);
    for e in &vars {
        eprintln!("measured {}", e.description);
    }
    assert!(vars[0].description.contains("PK enrolled"));
    assert!(vars[1].description.contains("variable store at CFV offset"));

    // The PK that was measured is an EFI_SIGNATURE_LIST of one X.509 certificate, read
    // here straight from the image at the offset the event names.
    let fw = std::fs::read(firmware_path(&reference, &r["firmware"])).unwrap();
    let offset = vars[1].description.split("offset 0x").nth(1).unwrap();
    let offset = usize::from_str_radix(offset.split(',').next().unwrap(), 16).unwrap();
    let name_size = u32::from_le_bytes(fw[offset + 36..offset + 40].try_into().unwrap()) as usize;
    let data_size = u32::from_le_bytes(fw[offset + 40..offset + 44].try_into().unwrap()) as usize;
    let pk = &fw[offset + 60 + name_size..offset + 60 + name_size + data_size];
    let x509 = cvm_firmware::guid!("a5c059a1-94e4-4aa7-87b5-ab155c2bf072");
    assert_eq!(pk[..16], x509.to_disk(), "PK is an X.509 signature list");
    assert_eq!(
        u32::from_le_bytes(pk[16..20].try_into().unwrap()) as usize,
        pk.len()
    );
    assert_eq!(
        vars[1].digest,
        tdx::variable_event_digest(&cvm_firmware::tdx::varstore::GLOBAL_VARIABLE, "PK", pk)
    );

    // With the variables measured empty, as the tools assume, the table's value.
    let empty: Vec<[u8; 48]> = got
        .events
        .iter()
        .filter(|e| e.rtmr == 0)
        .map(|e| match e.event_type {
            tdx::EventType::VariableDriverConfig => {
                let name = e.description.split(' ').next().unwrap();
                let guid = if name == "db" || name == "dbx" {
                    cvm_firmware::tdx::varstore::IMAGE_SECURITY_DATABASE
                } else {
                    cvm_firmware::tdx::varstore::GLOBAL_VARIABLE
                };
                tdx::variable_event_digest(&guid, name, &[])
            }
            _ => e.digest,
        })
        .collect();
    let tools = empty.iter().fold([0u8; 48], |r, d| tdx::extend(&r, d));
    assert_eq!(hex::encode(tools), r["RTMR0"]);
}

/// The TDX backend over the model of KVM and the TDX module: every row in the single-pass
/// order is launched through the real backend code, and the MRTD the model's module keeps
/// is the table's; the two-pass rows (QEMU 8.x on the pre-upstream KVM interface) are
/// refused, naming the order, before anything is created.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn every_mrtd_row_launches_over_the_model() {
    use cvm_launcher::vmm::backend::PlatformOptions;
    use cvm_launcher::vmm::tdx::model::TdxModel;
    use cvm_launcher::vmm::tdx::{TdxBackend, TdxLaunch};
    use cvm_launcher::vmm::{IrqChip, LaunchError, setup};

    let Some(reference) = reference_dir() else {
        return;
    };
    let rows = read_tsv(&reference.join("tdx_ref.tsv"));
    let (mut launched, mut refused, mut failures) = (0, 0, Vec::new());
    for r in &rows {
        if r["MRTD"].starts_with("ERROR") || r["MRTD"] == "-" {
            continue;
        }
        let row = parse_row(r);
        let result = with_plan(&reference, r, &row, |plan| {
            let launch = TdxLaunch {
                attributes: cvm_launcher::vmm::tdx::ATTR_SEPT_VE_DISABLE,
                mrconfigid: [0; 48],
                mrowner: [0; 48],
                mrownerconfig: [0; 48],
                qgs: None,
            };
            let mut backend = TdxBackend::new(plan, launch)?;
            let mut model = TdxModel::default();
            let platform = PlatformOptions {
                irqchip: IrqChip::Split,
                pit: false,
            };
            setup(&mut model, &mut backend, plan, &platform)?;
            Ok::<_, LaunchError>(hex::encode(model.mrtd().unwrap()))
        });
        match (result, row.order) {
            (Ok(mrtd), AddOrder::SinglePass) => {
                launched += 1;
                if mrtd != r["MRTD"] {
                    failures.push(format!(
                        "{}: the model measured {mrtd}, the table has {}",
                        row.id, r["MRTD"]
                    ));
                }
            }
            (Err(e), AddOrder::TwoPass) if e.to_string().contains("two-pass") => refused += 1,
            (got, order) => failures.push(format!("{} ({order:?}): {got:?}", row.id)),
        }
    }
    eprintln!("tdx_ref.tsv over the model: {launched} launched, {refused} two-pass rows refused");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        launched >= 80 && refused >= 10,
        "{launched} launched, {refused} refused"
    );
}
