//! `cvm launch --tee snp|sev-es|sev --dry-run`: the whole launch through the real SEV
//! backend against cvm's model of KVM and the AMD-SP. The expected digests are rows of
//! ../shared/reference/sev_ref.tsv (sev-snp-measure and snpguest), never cvm's output;
//! the refusals are checked for their exit code and the error they name.
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

/// The table's digest for `id`.
fn table_digest(id: &str) -> Option<String> {
    let table = std::fs::read_to_string(shared("reference/sev_ref.tsv")?).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = header.iter().position(|h| *h == "expected_digest").unwrap();
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f[0] == id)
        .map(|f| f[col].to_owned())
}

fn inputs() -> Option<impl Fn(&str) -> String> {
    let dir = shared("reference/inputs")?;
    Some(move |rel: &str| dir.join(rel).display().to_string())
}

/// `cvm --format json launch --dry-run ARGS` with the Debian OVMF.
fn dry_run(args: &[&str]) -> Option<std::process::Output> {
    let p = inputs()?;
    let fw = p("sid/OVMF.amdsev.fd");
    let mut all = vec!["--format", "json", "launch", "--dry-run", "--firmware", &fw];
    all.extend_from_slice(args);
    Some(cvm(&all))
}

#[test]
fn snp_direct_boot_dry_run_measures_the_reference_digest() {
    let (Some(p), Some(want)) = (inputs(), table_digest("sev-003")) else {
        return;
    };
    let (kernel, initrd) = (
        p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        p("initrd-small.img"),
    );
    let out = dry_run(&[
        "--tee",
        "snp",
        "--kernel",
        &kernel,
        "--initrd",
        &initrd,
        "--cmdline",
        "console=ttyS0 root=/dev/vda1 ro",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--explain",
    ])
    .unwrap();
    common::succeeded(&out);
    let json = stdout_json(&out);
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["tee"], "snp");
    assert_eq!(json["measurement"], want.as_str());
    let issued = json["issued"].as_array().unwrap();
    let names: Vec<&str> = issued
        .iter()
        .map(|i| i["ioctl"].as_str().unwrap())
        .collect();
    // The order of the upstream interface: INIT2 before memory, LAUNCH_START after the
    // memory is private, the updates, the vCPUs, FINISH last.
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("KVM_CREATE_VM") < at("KVM_SEV_INIT2"));
    assert!(at("KVM_SET_MEMORY_ATTRIBUTES") < at("KVM_SEV_SNP_LAUNCH_START"));
    assert!(at("KVM_SEV_SNP_LAUNCH_START") < at("KVM_SEV_SNP_LAUNCH_UPDATE"));
    assert_eq!(names.last(), Some(&"KVM_SEV_SNP_LAUNCH_FINISH"));
    let types: Vec<&str> = issued
        .iter()
        .filter_map(|i| i["page_type"].as_str())
        .collect();
    assert_eq!(types.first(), Some(&"normal"), "the firmware first");
    for t in ["zero", "secrets", "cpuid"] {
        assert!(types.contains(&t), "{types:?}");
    }
    assert!(issued.iter().all(|i| i.get("error").is_none()));
}

#[test]
fn sev_es_and_sev_dry_runs_measure_the_reference_digests() {
    // sev-036: SEV-ES, 4 EPYC-v4 vCPUs; sev-049: SEV with a kernel (no vCPU state).
    let (Some(p), Some(es), Some(sev)) =
        (inputs(), table_digest("sev-036"), table_digest("sev-049"))
    else {
        return;
    };
    let out = dry_run(&["--tee", "sev-es", "--vcpus", "4", "--vcpu-type", "EPYC-v4"]).unwrap();
    common::succeeded(&out);
    assert_eq!(stdout_json(&out)["measurement"], es.as_str());
    let kernel = p("amd64/vmlinuz-6.1.0-56-cloud-amd64");
    let out = dry_run(&["--tee", "sev", "--kernel", &kernel]).unwrap();
    common::succeeded(&out);
    assert_eq!(stdout_json(&out)["measurement"], sev.as_str());
}

#[test]
fn refusals_name_what_is_refused() {
    let snp = |args: &[&str]| {
        let mut all = vec!["--tee", "snp", "--vcpu-type", "EPYC-v4"];
        all.extend_from_slice(args);
        dry_run(&all)
    };
    // Features the model host's KVM does not offer: platform unavailable, before any VM.
    let Some(run) = snp(&["--guest-features", "0x3"]) else {
        return;
    };
    let e = failed_with(&run, 6);
    assert!(e.contains("bits 0x2 are not offered"), "{e}");
    let e = failed_with(&snp(&["--guest-features", "0x0"]).unwrap(), 7);
    assert!(e.contains("SNP_ACTIVE"), "{e}");
    // Debugging needs to be asked for by name.
    let e = failed_with(&snp(&["--guest-policy", "0xb0000"]).unwrap(), 1);
    assert!(e.contains("--insecure-allow-debug"), "{e}");
    let ok = snp(&["--guest-policy", "0xb0000", "--insecure-allow-debug"]).unwrap();
    common::succeeded(&ok);
    let e = failed_with(
        &dry_run(&["--tee", "sev", "--guest-policy", "0x0"]).unwrap(),
        1,
    );
    assert!(e.contains("NODBG"), "{e}");
    // The firmware's policy rules: SMT forbidden on an SMT host.
    let e = failed_with(&snp(&["--guest-policy", "0x20000"]).unwrap(), 7);
    assert!(e.contains("POLICY_FAILURE (0x7)"), "{e}");
    // Options of another TEE or command.
    let zeros = "00".repeat(32);
    let e = failed_with(
        &dry_run(&["--tee", "sev-es", "--host-data", &zeros]).unwrap(),
        1,
    );
    assert!(e.contains("--host-data"), "{e}");
    let e = failed_with(&snp(&["--vmm", "ec2"]).unwrap(), 1);
    assert!(e.contains("--vmm ec2"), "{e}");
    let e = failed_with(&dry_run(&["--tee", "none"]).unwrap(), 1);
    assert!(e.contains("--dry-run"), "{e}");
    let e = failed_with(&dry_run(&[]).unwrap(), 1);
    assert!(e.contains("--dry-run needs"), "{e}");
}

/// The backend on this machine's real KVM, which offers no SEV VM type: the launch is
/// refused as platform-unavailable before anything is created, naming what KVM offers.
#[test]
fn the_real_backend_refuses_a_host_without_snp_before_creating_anything() {
    use cvm_firmware::launch::{Inputs, SevInputs};
    use cvm_firmware::sev::VmmType;
    use cvm_launcher::vmm::backend::PlatformOptions;
    use cvm_launcher::vmm::kvm::KvmHardware;
    use cvm_launcher::vmm::sev::{SevBackend, SevLaunch};
    use cvm_launcher::vmm::{IrqChip, LaunchError, setup};
    if !common::have_kvm() {
        return;
    }
    let Some(p) = inputs() else { return };
    let fw = std::fs::read(p("sid/OVMF.amdsev.fd")).unwrap();
    let inputs = Inputs::Sev(SevInputs {
        tee: cvm_firmware::Tee::Snp,
        firmware: &fw,
        direct_boot: None,
        vcpus: 1,
        vcpu_sig: 0x00a0_0f11,
        vmm: VmmType::Qemu,
        guest_features: 1,
        svsm: None,
        memory: Some(256 << 20),
    });
    let images = inputs.parse().unwrap();
    let plan = inputs.plan(&images).unwrap();
    let mut backend = SevBackend::new(
        &plan,
        SevLaunch {
            policy: 0x3_0000,
            host_data: [0; 32],
            id_block: None,
            certs: None,
        },
    )
    .unwrap();
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let types = kvm.check_extension_raw(235); // KVM_CAP_VM_TYPES
    if types & (1 << 4) != 0 {
        eprintln!("SKIPPED: this host's KVM offers SNP; the hardware tests cover it");
        return;
    }
    let mut hw = KvmHardware::new(kvm);
    let opts = PlatformOptions {
        irqchip: IrqChip::InKernel,
        pit: false,
    };
    let err = setup(&mut hw, &mut backend, &plan, &opts).unwrap_err();
    assert!(matches!(err, LaunchError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("VM type 4 (KVM_CAP_VM_TYPES"),
        "{err}"
    );
    assert!(
        !hw.has_vm(),
        "nothing is created before the host is checked"
    );
}

/// Private guest memory on this machine's KVM: one guest_memfd slot per range, the shared
/// side written and read back through the VMM's mapping; memory attributes, which this
/// KVM lacks for default VMs, fail with KVM's errno, named.
#[test]
fn guest_memfd_slots_on_the_real_kvm() {
    use cvm_launcher::vmm::backend::PrivateMemory;
    use cvm_launcher::vmm::backend::{Hardware, VmType};
    use cvm_launcher::vmm::kvm::KvmHardware;
    if !common::have_kvm() {
        return;
    }
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    // KVM_CAP_GUEST_MEMFD (234)
    if !common::available(
        kvm.check_extension_raw(234) > 0,
        "guest_memfd on this KVM (KVM_CAP_GUEST_MEMFD)",
    ) {
        return;
    }
    let mut hw = KvmHardware::new(kvm);
    hw.create_vm(VmType::DEFAULT).unwrap();
    hw.add_private_memory(&[(0, 2 << 20), (4 << 30, 1 << 20)])
        .unwrap();
    hw.write_memory(0x1ff000, &[0xa5; 4096]).unwrap();
    let mut back = [0u8; 4096];
    hw.read_memory(0x1ff000, &mut back).unwrap();
    assert_eq!(back, [0xa5; 4096]);
    let a = hw.host_address(4 << 30).unwrap();
    assert_eq!(hw.host_address((4 << 30) + 0x1000).unwrap(), a + 0x1000);
    assert!(hw.host_address(3 << 30).is_err());
    match hw.set_memory_attributes(0, 4096, true) {
        Ok(()) => {}
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.starts_with("set 0x0+0x1000 private: KVM_SET_MEMORY_ATTRIBUTES failed: "),
                "{e}"
            );
        }
    }
}

/// ID blocks end to end: the block `cvm measure --id-key` signs is accepted by the
/// model's firmware for the same plan and policy, and refused, with the firmware's status,
/// for another plan or another policy; `cvm launch --id-key` signs the plan it launches.
#[test]
fn id_blocks_from_measure_are_checked_by_the_models_firmware() {
    let Some(p) = inputs() else { return };
    let key = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/keys/test-only-id-key-sec1.pem")
        .display()
        .to_string();
    let fw = p("sid/OVMF.amdsev.fd");
    let measured = cvm(&[
        "--format",
        "json",
        "measure",
        "--tee",
        "snp",
        "--firmware",
        &fw,
        "--vcpu-type",
        "EPYC-v4",
        "--id-key",
        &key,
        "--guest-policy",
        "0x130000",
    ]);
    common::succeeded(&measured);
    let m = stdout_json(&measured);
    let (block, auth) = (
        m["id_block"]["id_block"].as_str().unwrap().to_owned(),
        m["id_block"]["id_auth"].as_str().unwrap().to_owned(),
    );
    let launch = |extra: &[&str]| {
        let mut args = vec![
            "--tee",
            "snp",
            "--vcpu-type",
            "EPYC-v4",
            "--id-block",
            &block,
            "--id-auth",
            &auth,
        ];
        args.extend_from_slice(extra);
        dry_run(&args).unwrap()
    };
    let ok = launch(&["--guest-policy", "0x130000"]);
    common::succeeded(&ok);
    assert_eq!(stdout_json(&ok)["measurement"], m["measurement"]);
    let e = failed_with(&launch(&["--guest-policy", "0x130000", "--vcpus", "2"]), 7);
    assert!(e.contains("BAD_MEASUREMENT (0xb)"), "{e}");
    let e = failed_with(&launch(&[]), 7);
    assert!(e.contains("POLICY_FAILURE (0x7)"), "{e}");
    let e = failed_with(
        &dry_run(&[
            "--tee",
            "snp",
            "--vcpu-type",
            "EPYC-v4",
            "--id-block",
            "AAAA",
            "--id-auth",
            &auth,
        ])
        .unwrap(),
        1,
    );
    assert!(e.contains("--id-block: 3 bytes"), "{e}");
    let signed = dry_run(&[
        "--tee",
        "snp",
        "--vcpu-type",
        "EPYC-v4",
        "--vcpus",
        "2",
        "--id-key",
        &key,
    ])
    .unwrap();
    common::succeeded(&signed);
}

/// `--certs DIR`: read as `cvm verify --certs` reads it, served only where the kernel can
/// hand certificate requests to the VMM (the model host's Linux 6.17/6.18 cannot).
#[test]
fn certificate_serving_is_refused_where_the_kernel_lacks_it() {
    let pki =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/snp-test-pki");
    let dir = common::temp_file("launch-certs", b"");
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    for role in ["vcek", "ask", "ark"] {
        std::fs::copy(
            pki.join(format!("test-{role}.der")),
            dir.join(format!("{role}.der")),
        )
        .unwrap();
    }
    let d = dir.display().to_string();
    let Some(out) = dry_run(&["--tee", "snp", "--vcpu-type", "EPYC-v4", "--certs", &d]) else {
        return;
    };
    let e = failed_with(&out, 6);
    assert!(e.contains("KVM_X86_SEV_SNP_REQ_CERTS, Linux 7.0+"), "{e}");
    for role in ["vcek", "ask", "ark"] {
        std::fs::remove_file(dir.join(format!("{role}.der"))).unwrap();
    }
    let e = failed_with(
        &dry_run(&["--tee", "snp", "--vcpu-type", "EPYC-v4", "--certs", &d]).unwrap(),
        1,
    );
    assert!(e.contains("no vcek or vlek"), "{e}");
    let e = failed_with(&dry_run(&["--tee", "sev-es", "--certs", &d]).unwrap(), 1);
    assert!(e.contains("--certs"), "{e}");
}
