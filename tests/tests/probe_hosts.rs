//! `cvm probe` decoding on fixture trees of SNP, TDX, CCA and KVM-less hosts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_launcher::probe::{
    self, Arch, HostDevices, KvmQuery, ProbeReport, SnpStatus, Tcb, Tee, VmTypes,
};
use cvm_tests::host_fixture;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// What a modelled kernel answers to KVM_CHECK_EXTENSION and SNP_PLATFORM_STATUS.
#[derive(Clone, Default)]
struct Answers {
    caps: BTreeMap<u32, i32>,
    snp: Option<Result<SnpStatus, String>>,
}

struct FixedKvm(BTreeMap<u32, i32>);

impl KvmQuery for FixedKvm {
    fn api_version(&self) -> i32 {
        12
    }
    fn check_extension(&self, cap: u32) -> i32 {
        self.0.get(&cap).copied().unwrap_or(0)
    }
}

impl HostDevices for Answers {
    fn open_kvm(&self, path: &Path) -> io::Result<Box<dyn KvmQuery>> {
        assert!(path.ends_with("dev/kvm"), "{}", path.display());
        Ok(Box::new(FixedKvm(self.caps.clone())))
    }
    fn snp_platform_status(&self, path: &Path) -> Result<SnpStatus, String> {
        assert!(path.ends_with("dev/sev"), "{}", path.display());
        self.snp
            .clone()
            .expect("the SEV device was not expected to be queried")
    }
}

const VM_TYPES: u32 = 235;
const GUEST_MEMFD: u32 = 234;
const MEMORY_ATTRIBUTES: u32 = 233;
const EXIT_HYPERCALL: u32 = 201;
const SPLIT_IRQCHIP: u32 = 121;
const MAX_VCPUS: u32 = 66;

fn bit(n: u32) -> i32 {
    1 << n
}

/// A 6.12 kernel on an SNP-capable EPYC; `vm_types` varies with the BIOS setting.
fn amd_kernel(vm_types: i32, rmp_initialized: bool) -> Answers {
    Answers {
        caps: BTreeMap::from([
            (VM_TYPES, vm_types),
            (GUEST_MEMFD, 1),
            (MEMORY_ATTRIBUTES, 8),
            (EXIT_HYPERCALL, bit(12)),
            (SPLIT_IRQCHIP, 1),
            (MAX_VCPUS, 4096),
        ]),
        snp: Some(Ok(SnpStatus {
            api_major: 1,
            api_minor: 55,
            build_id: 21,
            state: u8::from(rmp_initialized),
            rmp_initialized,
            guest_count: 0,
            platform_tcb: Tcb {
                fmc: None,
                bootloader: 9,
                tee: 0,
                snp: 23,
                microcode: 0x48,
            },
            reported_tcb: Tcb {
                fmc: None,
                bootloader: 9,
                tee: 0,
                snp: 23,
                microcode: 0x48,
            },
        })),
    }
}

fn probe(tree: &str, arch: Arch, answers: &Answers) -> ProbeReport {
    let root = host_fixture(tree);
    assert!(root.is_dir(), "fixture tree {} is missing", root.display());
    probe::assess(&probe::gather(&root, arch, answers))
}

fn available(report: &ProbeReport) -> Vec<Tee> {
    report
        .tees
        .iter()
        .filter(|s| s.available)
        .map(|s| s.tee)
        .collect()
}

fn reason(report: &ProbeReport, tee: Tee) -> String {
    let st = report.status(tee).unwrap();
    assert!(!st.available, "{tee} unexpectedly available");
    let reason = st.reason.clone().unwrap();
    assert_eq!(reason, st.missing.join("; "));
    assert!(!reason.contains('\n'));
    reason
}

#[test]
fn snp_host_offers_snp_sev_es_sev_and_none() {
    let sev_types = bit(0) | bit(2) | bit(3) | bit(4);
    let r = probe("snp-genoa", Arch::X86_64, &amd_kernel(sev_types, true));
    assert_eq!(available(&r), [Tee::Snp, Tee::SevEs, Tee::Sev, Tee::None]);
    assert_eq!(r.best_confidential(), Some(Tee::Snp));
    let tdx = reason(&r, Tee::Tdx);
    assert!(
        tdx.contains("needs an Intel CPU (this one is AuthenticAMD)"),
        "{tdx}"
    );
    assert!(
        tdx.contains("kvm_intel is not loaded (KVM here is kvm_amd)"),
        "{tdx}"
    );
    assert!(tdx.contains("tdx VM type"), "{tdx}");
    assert!(reason(&r, Tee::Cca).contains("needs an AArch64 host (this is x86_64)"));
    let host = &r.host;
    assert_eq!(host.kvm_modules, ["kvm", "kvm_amd"]);
    assert_eq!(host.cpu.vendor.as_deref(), Some("AuthenticAMD"));
    assert!(host.cpu.tee_flags.contains("sev_snp"));
}

#[test]
fn snp_host_without_initialised_firmware_is_not_snp_capable() {
    let sev_types = bit(0) | bit(2) | bit(3) | bit(4);
    let r = probe("snp-genoa", Arch::X86_64, &amd_kernel(sev_types, false));
    assert_eq!(available(&r), [Tee::SevEs, Tee::Sev, Tee::None]);
    assert_eq!(
        reason(&r, Tee::Snp),
        "the SNP firmware is not initialised (RMP not set up)"
    );
}

#[test]
fn snp_disabled_in_bios_leaves_sev_and_sev_es() {
    // With sev_snp=N the kernel does not offer the SNP VM type either.
    let r = probe(
        "snp-bios-off",
        Arch::X86_64,
        &amd_kernel(bit(0) | bit(2) | bit(3), true),
    );
    assert_eq!(available(&r), [Tee::SevEs, Tee::Sev, Tee::None]);
    assert_eq!(r.best_confidential(), Some(Tee::SevEs));
    let snp = reason(&r, Tee::Snp);
    assert!(snp.starts_with("kvm_amd parameter sev_snp is off"), "{snp}");
    assert!(
        snp.contains(
            "KVM does not offer the snp VM type (KVM_CAP_VM_TYPES offers default, sev, sev-es)"
        ),
        "{snp}"
    );
}

#[test]
fn snp_status_error_is_reported_as_the_reason() {
    let mut answers = amd_kernel(bit(0) | bit(2) | bit(3) | bit(4), true);
    answers.snp = Some(Err(
        "SNP_PLATFORM_STATUS failed: Operation not permitted".into()
    ));
    let r = probe("snp-genoa", Arch::X86_64, &answers);
    assert_eq!(
        reason(&r, Tee::Snp),
        "SNP_PLATFORM_STATUS failed: Operation not permitted"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["host"]["snp_platform"]["error"],
        "SNP_PLATFORM_STATUS failed: Operation not permitted"
    );
}

fn tdx_kernel() -> Answers {
    Answers {
        caps: BTreeMap::from([
            (VM_TYPES, bit(0) | bit(5)),
            (GUEST_MEMFD, 1),
            (MEMORY_ATTRIBUTES, 8),
            (EXIT_HYPERCALL, bit(12)),
            (SPLIT_IRQCHIP, 1),
            (MAX_VCPUS, 4096),
        ]),
        snp: None,
    }
}

#[test]
fn tdx_host_offers_tdx_and_none() {
    let r = probe("tdx-emr", Arch::X86_64, &tdx_kernel());
    assert_eq!(available(&r), [Tee::Tdx, Tee::None]);
    assert_eq!(r.best_confidential(), Some(Tee::Tdx));
    let snp = reason(&r, Tee::Snp);
    assert!(
        snp.contains("needs an AMD CPU (this one is GenuineIntel)"),
        "{snp}"
    );
    assert!(
        snp.contains("no ") && snp.contains("tdx-emr/dev/sev (the ccp"),
        "{snp}"
    );
    assert!(r.host.cpu.tee_flags.contains("tdx_host_platform"));
}

#[test]
fn tdx_needs_split_irqchip_and_map_gpa_exits() {
    let mut answers = tdx_kernel();
    answers.caps.insert(SPLIT_IRQCHIP, 0);
    answers.caps.insert(EXIT_HYPERCALL, 0);
    let r = probe("tdx-emr", Arch::X86_64, &answers);
    assert_eq!(
        reason(&r, Tee::Tdx),
        "KVM cannot forward KVM_HC_MAP_GPA_RANGE to userspace (KVM_CAP_EXIT_HYPERCALL); \
         KVM has no split irqchip (KVM_CAP_SPLIT_IRQCHIP)"
    );
}

fn cca_kernel(realm_answer: i32) -> Answers {
    Answers {
        // arm64 has no KVM_CAP_VM_TYPES: only the default type is reported.
        caps: BTreeMap::from([(249, realm_answer), (GUEST_MEMFD, 1), (MAX_VCPUS, 512)]),
        snp: None,
    }
}

#[test]
fn cca_host_offers_cca_and_none() {
    let r = probe("cca-fvp", Arch::Aarch64, &cca_kernel(1));
    assert_eq!(available(&r), [Tee::Cca, Tee::None]);
    assert_eq!(r.best_confidential(), Some(Tee::Cca));
    assert_eq!(r.host.kvm_cap_arm_rmi, Some(Ok(249)));
    assert!(reason(&r, Tee::Snp).contains("needs an x86-64 host (this is aarch64)"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["host"]["kvm_cap_arm_rmi"], 249);
    assert_eq!(json["host"]["kvm"]["arm_rmi"], 1);
}

#[test]
fn cca_host_without_rmm_says_so() {
    let r = probe("cca-fvp", Arch::Aarch64, &cca_kernel(0));
    assert_eq!(available(&r), [Tee::None]);
    assert_eq!(
        reason(&r, Tee::Cca),
        "KVM does not offer realms (KVM_CHECK_EXTENSION(249) = 0: no RMM, or it is not initialised)"
    );
}

#[test]
fn host_without_kvm_offers_nothing() {
    let r = probe("no-kvm", Arch::X86_64, &Answers::default());
    assert!(available(&r).is_empty());
    assert_eq!(r.best_confidential(), None);
    for st in &r.tees {
        assert!(
            st.missing
                .iter()
                .any(|m| m.starts_with("no KVM:") && m.contains("dev/kvm does not exist")),
            "{}: {:?}",
            st.tee,
            st.missing
        );
    }
    assert_eq!(
        reason(&r, Tee::Snp)
            .matches("kvm_amd is not loaded")
            .count(),
        1
    );
    assert!(r.host.kvm_modules.is_empty());
}

#[test]
fn vm_types_bitmap_round_trips_through_json() {
    let r = probe(
        "snp-genoa",
        Arch::X86_64,
        &amd_kernel(bit(0) | bit(2) | bit(3) | bit(4), true),
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["host"]["kvm"]["vm_types"],
        serde_json::json!(["default", "sev", "sev-es", "snp"])
    );
    assert_eq!(VmTypes(0x1d).names(), ["default", "sev", "sev-es", "snp"]);
}

/// The JSON layout documented in README.md ("cvm probe" section).
#[test]
fn json_matches_documented_schema() {
    let r = probe(
        "snp-genoa",
        Arch::X86_64,
        &amd_kernel(bit(0) | bit(4), true),
    );
    let json = serde_json::to_value(&r).unwrap();
    let obj = json.as_object().unwrap();
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["host", "schema", "tees"]);
    assert_eq!(json["schema"], 1);
    let host_keys: Vec<_> = json["host"].as_object().unwrap().keys().cloned().collect();
    for k in [
        "arch",
        "cpu",
        "kvm",
        "kvm_amd",
        "kvm_cap_arm_rmi",
        "kvm_intel",
        "kvm_modules",
        "sev_device",
        "snp_platform",
    ] {
        assert!(host_keys.iter().any(|h| h == k), "host.{k} missing");
    }
    for k in [
        "state",
        "path",
        "api_version",
        "vm_types",
        "guest_memfd",
        "user_memory2",
        "memory_attributes",
        "exit_hypercall",
        "split_irqchip",
        "max_vcpus",
        "arm_rmi",
    ] {
        assert!(json["host"]["kvm"].get(k).is_some(), "host.kvm.{k} missing");
    }
    let tees = json["tees"].as_array().unwrap();
    let names: Vec<_> = tees.iter().map(|t| t["tee"].as_str().unwrap()).collect();
    assert_eq!(names, ["snp", "tdx", "cca", "sev-es", "sev", "none"]);
    for t in tees {
        assert!(t["available"].is_boolean());
        assert!(t["missing"].is_array());
        assert_eq!(t["reason"].is_null(), t["available"] == true);
    }
    assert_eq!(json["host"]["snp_platform"]["api_minor"], 55);
    assert_eq!(json["host"]["kvm"]["state"], "present");
}
