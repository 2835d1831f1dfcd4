//! `cvm launch --tee tdx --dry-run`: the whole TD launch through the real TDX backend
//! against cvm's model of KVM and the TDX module. Expected values are rows of
//! ../shared/reference/tdx_ref.tsv (fortanix/tdx-measure), never cvm's output.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;

use common::{cvm, failed_with, shared, stdout_json};

fn row(id: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let table = std::fs::read_to_string(shared("reference/tdx_ref.tsv")?).unwrap();
    let mut lines = table.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_owned))
                .collect()
        })
        .find(|r: &std::collections::BTreeMap<String, String>| r["id"] == id)
}

/// `cvm --format json launch --tee tdx --dry-run` with Debian's TDVF and `args`.
fn dry_run(args: &[&str]) -> Option<std::process::Output> {
    let dir = shared("reference/inputs")?;
    let fw = dir.join("sid/OVMF.inteltdx.ms.fd").display().to_string();
    let mut all = vec![
        "--format",
        "json",
        "launch",
        "--tee",
        "tdx",
        "--dry-run",
        "--firmware",
        &fw,
    ];
    all.extend_from_slice(args);
    Some(cvm(&all))
}

#[test]
fn a_direct_boot_td_dry_run_has_the_reference_mrtd_and_rtmrs() {
    // tdx-001: 4 vCPUs, 2 GiB, QEMU's canonical ACPI tables, the small initrd, the kernel
    // as QEMU patches it.
    let (Some(r), Some(dir)) = (row("tdx-001"), shared("reference/inputs")) else {
        return;
    };
    let p = |rel: &str| dir.join(rel).display().to_string();
    let (kernel, initrd, acpi) = (
        p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        p("initrd-small.img"),
        p("tdx-acpi/canonical-defaults/acpi_tables.bin"),
    );
    let out = dry_run(&[
        "--vcpus",
        "4",
        "--memory",
        "2048M",
        "--kernel",
        &kernel,
        "--initrd",
        &initrd,
        "--cmdline",
        &r["cmdline"],
        "--acpi-tables",
        &acpi,
        "--patch-kernel",
        // The table's tool follows the edk2 recipe from before edk2-stable202505.
        "--tdvf-recipe",
        "before-202505",
        "--explain",
    ])
    .unwrap();
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["tdvf_recipe"]["name"], "before edk2-stable202505");
    assert_eq!(json["tdvf_recipe"]["chosen"], true);
    assert_eq!(json["mrtd"], r["MRTD"].as_str());
    let rtmr = &json["rtmr_expected_from_plan"];
    // This image enrolls Microsoft's keys, which the tool's RTMR 0 does not measure (the
    // table's note says so; tests/tests/tdx_reference.rs shows the difference).
    if !r["note"].starts_with("RTMR0 assumes empty") {
        assert_eq!(rtmr[0], r["RTMR0"].as_str());
    }
    assert!(rtmr[0].is_string());
    assert_eq!(rtmr[1], r["RTMR1"].as_str());
    assert_eq!(rtmr[2], r["RTMR2"].as_str());
    let issued = json["issued"].as_array().unwrap();
    let names: Vec<&str> = issued
        .iter()
        .map(|i| i["ioctl"].as_str().unwrap())
        .collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("KVM_TDX_INIT_VM") < at("KVM_CREATE_VCPU"));
    assert!(at("KVM_TDX_INIT_VCPU") < at("KVM_TDX_INIT_MEM_REGION"));
    assert_eq!(names.last(), Some(&"KVM_TDX_FINALIZE_VM"));
    assert_eq!(
        names.iter().filter(|n| **n == "KVM_TDX_INIT_VCPU").count(),
        4
    );
    let kinds: Vec<&str> = issued
        .iter()
        .filter_map(|i| i["page_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"measured") && kinds.contains(&"added"),
        "{kinds:?}"
    );
}

#[test]
fn td_refusals_name_what_is_refused() {
    let Some(out) = dry_run(&["--mrtd-order", "two-pass"]) else {
        return;
    };
    let e = failed_with(&out, 7);
    assert!(e.contains("two-pass"), "{e}");
    let e = failed_with(&dry_run(&["--irqchip", "in-kernel"]).unwrap(), 1);
    assert!(e.contains("split irqchip"), "{e}");
    // Linux 6.16's KVM supports no TD attribute but SEPT_VE_DISABLE: DEBUG is refused
    // before the TD is initialized.
    let debug = dry_run(&["--insecure-allow-debug"]).unwrap();
    assert_eq!(debug.status.code(), Some(6));
    let e = String::from_utf8_lossy(&debug.stderr);
    assert!(
        e.contains("DEBUG attribute") && e.contains("bits 0x1 are not supported (DEBUG)"),
        "{e}"
    );
    let e = failed_with(&dry_run(&["--guest-policy", "0x30000"]).unwrap(), 1);
    assert!(e.contains("--guest-policy"), "{e}");
    let e = failed_with(&dry_run(&["--mrowner", "ab"]).unwrap(), 1);
    assert!(e.contains("48 bytes"), "{e}");
}

#[test]
fn measure_reports_the_owner_registers_the_launch_passes() {
    let Some(dir) = shared("reference/inputs") else {
        return;
    };
    let fw = dir.join("sid/OVMF.inteltdx.ms.fd").display().to_string();
    let owner = "ab".repeat(48);
    let out = cvm(&[
        "--format",
        "json",
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &fw,
        "--mrowner",
        &owner,
    ]);
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["mr_owner"], owner.as_str());
    assert_eq!(json["mr_config_id"], "00".repeat(48).as_str());
    let e = failed_with(
        &cvm(&[
            "measure",
            "--tee",
            "snp",
            "--firmware",
            &fw,
            "--mrowner",
            &owner,
        ]),
        1,
    );
    assert!(e.contains("--mrowner"), "{e}");
    let dry = dry_run(&["--mrowner", &owner]).unwrap();
    common::succeeded(&dry);
    assert_eq!(stdout_json(&dry)["mrtd"], json["mrtd"]);
}

/// The TDX backend on this machine's real KVM, which offers no TDX VM type: refused as
/// platform-unavailable before anything is created; `cvm launch --tee tdx` says why.
#[test]
fn the_real_backend_refuses_a_host_without_tdx_before_creating_anything() {
    use cvm_launcher::vmm::backend::PlatformOptions;
    use cvm_launcher::vmm::kvm::KvmHardware;
    use cvm_launcher::vmm::tdx::{ATTR_SEPT_VE_DISABLE, TdxBackend, TdxLaunch};
    use cvm_launcher::vmm::{IrqChip, LaunchError, setup};
    if !common::have_kvm() {
        return;
    }
    let Some(dir) = shared("reference/inputs") else {
        return;
    };
    let fw = std::fs::read(dir.join("sid/OVMF.inteltdx.ms.fd")).unwrap();
    let inputs = cvm_firmware::launch::Inputs::Tdx(cvm_firmware::launch::TdxInputs {
        firmware: &fw,
        memory: 2 << 30,
        vcpus: 1,
        order: cvm_firmware::tdx::AddOrder::SinglePass,
        direct_boot: None,
        acpi_tables: None,
        recipe: None,
    });
    let images = inputs.parse().unwrap();
    let plan = inputs.plan(&images).unwrap();
    let launch = TdxLaunch {
        attributes: ATTR_SEPT_VE_DISABLE,
        mrconfigid: [0; 48],
        mrowner: [0; 48],
        mrownerconfig: [0; 48],
        qgs: None,
    };
    let mut backend = TdxBackend::new(&plan, launch).unwrap();
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    if kvm.check_extension_raw(235) & (1 << 5) != 0 {
        eprintln!("SKIPPED: this host's KVM offers TDX; the hardware tests cover it");
        return;
    }
    let mut hw = KvmHardware::new(kvm);
    let opts = PlatformOptions {
        irqchip: IrqChip::Split,
        pit: false,
    };
    let err = setup(&mut hw, &mut backend, &plan, &opts).unwrap_err();
    assert!(matches!(err, LaunchError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("tdx VM type 5"), "{err}");
    assert!(!hw.has_vm());
    let out = cvm(&[
        "launch",
        "--tee",
        "tdx",
        "--firmware",
        &dir.join("sid/OVMF.inteltdx.ms.fd").display().to_string(),
    ]);
    let e = failed_with(&out, 6);
    assert!(e.contains("tdx is not available on this host"), "{e}");
}
