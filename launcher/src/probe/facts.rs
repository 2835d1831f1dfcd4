//! Facts about the host, read from files below a root directory and from devices.

use super::kvm::{HostDevices, KVM_API_VERSION, KvmQuery, VmTypes, cap};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The host's CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Arch {
    /// x86-64 (AMD SEV, Intel TDX).
    #[serde(rename = "x86_64")]
    X86_64,
    /// AArch64 (Arm CCA).
    #[serde(rename = "aarch64")]
    Aarch64,
    /// Anything else: no TEE cvm knows of.
    #[serde(rename = "other")]
    Other,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Other => "other",
        })
    }
}

impl Arch {
    /// The architecture this binary runs on.
    pub fn current() -> Self {
        match std::env::consts::ARCH {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            _ => Arch::Other,
        }
    }

    /// The architecture of the host whose files are below `root`: this one for `/`, else
    /// what the copy's `proc/cpuinfo` says (x86 lists `vendor_id` and `flags`, Arm `CPU
    /// architecture` and `Features`), or [`Arch::Other`] when it says neither.
    pub fn of_root(root: &Path) -> Self {
        if root == Path::new("/") {
            return Arch::current();
        }
        let text = fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
        let has = |key: &str| {
            text.lines()
                .any(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        };
        if has("vendor_id") || has("flags") {
            Arch::X86_64
        } else if has("CPU architecture") || has("Features") {
            Arch::Aarch64
        } else {
            Arch::Other
        }
    }
}

/// What `/proc/cpuinfo` says about the CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuFacts {
    /// `vendor_id` (x86: `AuthenticAMD`, `GenuineIntel`), or `CPU implementer` (Arm).
    pub vendor: Option<String>,
    /// `model name`, when the kernel reports one.
    pub model_name: Option<String>,
    /// The feature flags of the first CPU that are relevant to TEEs (`sev`, `sev_es`,
    /// `sev_snp`, `tdx_host_platform`, `svm`, `vmx`, `hypervisor`).
    pub tee_flags: BTreeSet<String>,
}

/// The CPU flags worth reporting.
const TEE_FLAGS: [&str; 7] = [
    "sev",
    "sev_es",
    "sev_snp",
    "tdx_host_platform",
    "svm",
    "vmx",
    "hypervisor",
];

/// `kvm_amd` module parameters (`/sys/module/kvm_amd/parameters`). `None`: not readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AmdParams {
    /// `sev`.
    pub sev: Option<bool>,
    /// `sev_es`.
    pub sev_es: Option<bool>,
    /// `sev_snp`.
    pub sev_snp: Option<bool>,
}

/// `kvm_intel` module parameters (`/sys/module/kvm_intel/parameters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntelParams {
    /// `tdx`.
    pub tdx: Option<bool>,
}

/// A TCB version as the SNP firmware reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tcb {
    /// FMC SVN (Turin and later).
    pub fmc: Option<u8>,
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Lowest microcode patch level of all cores.
    pub microcode: u8,
}

/// SNP_PLATFORM_STATUS, as far as the probe reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnpStatus {
    /// Firmware API major version.
    pub api_major: u8,
    /// Firmware API minor version.
    pub api_minor: u8,
    /// Firmware build.
    pub build_id: u32,
    /// Platform state (0 UNINIT, 1 INIT).
    pub state: u8,
    /// Whether the RMP is initialised (SNP_INIT has run).
    pub rmp_initialized: bool,
    /// Number of guests the firmware is tracking.
    pub guest_count: u32,
    /// The installed TCB.
    pub platform_tcb: Tcb,
    /// The TCB the platform reports (and VCEKs are issued for).
    pub reported_tcb: Tcb,
}

/// What the KVM device answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum KvmFacts {
    /// No usable KVM device.
    Absent {
        /// The device path that was tried.
        path: PathBuf,
        /// Why it is not usable.
        reason: String,
    },
    /// The device answered.
    Present {
        /// The device path.
        path: PathBuf,
        /// `KVM_GET_API_VERSION`.
        api_version: i32,
        /// `KVM_CAP_VM_TYPES`; `None` when the kernel does not have the capability
        /// (only the default VM type exists then).
        vm_types: Option<VmTypes>,
        /// `KVM_CAP_GUEST_MEMFD`.
        guest_memfd: bool,
        /// `KVM_CAP_USER_MEMORY2`.
        user_memory2: bool,
        /// `KVM_CAP_MEMORY_ATTRIBUTES` on the system fd (for default VMs; confidential VM
        /// types support private memory by construction).
        memory_attributes: u64,
        /// `KVM_CAP_EXIT_HYPERCALL`: hypercalls that can exit to userspace.
        exit_hypercall: u64,
        /// `KVM_CAP_SPLIT_IRQCHIP`.
        split_irqchip: bool,
        /// `KVM_CAP_MAX_VCPUS`.
        max_vcpus: i32,
        /// `KVM_CHECK_EXTENSION(kvm_cap_arm_rmi)`, when the kernel names that capability.
        arm_rmi: Option<i32>,
    },
}

/// Everything the probe learned about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// The CPU architecture.
    pub arch: Arch,
    /// The CPU.
    pub cpu: CpuFacts,
    /// Loaded KVM modules (`/sys/module/kvm*`).
    pub kvm_modules: Vec<String>,
    /// The KVM device.
    pub kvm: KvmFacts,
    /// `kvm_amd` parameters, `None` when the module is not loaded.
    pub kvm_amd: Option<AmdParams>,
    /// `kvm_intel` parameters, `None` when the module is not loaded.
    pub kvm_intel: Option<IntelParams>,
    /// Whether the SEV device (`/dev/sev`) exists.
    pub sev_device: bool,
    /// Where the SEV device was looked for (`/dev/sev`, or below `--sysroot`).
    #[serde(skip)]
    pub sev_path: PathBuf,
    /// SNP_PLATFORM_STATUS, or why it could not be read; `None` without a SEV device.
    /// JSON: the status object, or `{"error": "..."}`.
    #[serde(serialize_with = "result_or_error")]
    pub snp_platform: Option<Result<SnpStatus, String>>,
    /// The realm capability number from `/sys/module/kvm/parameters/kvm_cap_arm_rmi`
    /// (or the older `kvm_cap_arm_rme`), or why it is unusable; `None` when absent.
    /// JSON: the number, or `{"error": "..."}`.
    #[serde(serialize_with = "result_or_error")]
    pub kvm_cap_arm_rmi: Option<Result<u32, String>>,
}

/// Serialises `Some(Ok(v))` as `v`, `Some(Err(e))` as `{"error": e}`, `None` as null.
fn result_or_error<T: Serialize, S: serde::Serializer>(
    value: &Option<Result<T, String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct ErrorObject<'a> {
        error: &'a str,
    }
    match value {
        None => s.serialize_none(),
        Some(Ok(v)) => v.serialize(s),
        Some(Err(e)) => ErrorObject { error: e }.serialize(s),
    }
}

/// Reads the host's facts. `root` is `/` on a real host; everything below it is read
/// as the kernel would lay it out (`sys/module`, `proc/cpuinfo`, `dev/kvm`, `dev/sev`).
pub fn gather(root: &Path, arch: Arch, devices: &dyn HostDevices) -> HostFacts {
    let module = |name: &str| root.join("sys/module").join(name);
    let param = |m: &str, p: &str| read_bool(&module(m).join("parameters").join(p));

    let kvm_amd = module("kvm_amd").is_dir().then(|| AmdParams {
        sev: param("kvm_amd", "sev"),
        sev_es: param("kvm_amd", "sev_es"),
        sev_snp: param("kvm_amd", "sev_snp"),
    });
    let kvm_intel = module("kvm_intel").is_dir().then(|| IntelParams {
        tdx: param("kvm_intel", "tdx"),
    });
    let kvm_cap_arm_rmi = ["kvm_cap_arm_rmi", "kvm_cap_arm_rme"]
        .iter()
        .map(|p| module("kvm").join("parameters").join(p))
        .find(|p| p.exists())
        .map(|p| read_u32(&p));

    let sev_path = root.join("dev/sev");
    let sev_device = sev_path.exists();
    let snp_platform = sev_device.then(|| devices.snp_platform_status(&sev_path));

    let rmi_cap = kvm_cap_arm_rmi
        .as_ref()
        .and_then(|r| r.as_ref().ok().copied());
    let kvm = kvm_facts(&root.join("dev/kvm"), devices, rmi_cap);

    HostFacts {
        arch,
        cpu: cpu_facts(&root.join("proc/cpuinfo")),
        kvm_modules: kvm_modules(&root.join("sys/module")),
        kvm,
        kvm_amd,
        kvm_intel,
        sev_device,
        sev_path,
        snp_platform,
        kvm_cap_arm_rmi,
    }
}

fn kvm_facts(path: &Path, devices: &dyn HostDevices, rmi_cap: Option<u32>) -> KvmFacts {
    let absent = |reason: String| KvmFacts::Absent {
        path: path.to_owned(),
        reason,
    };
    if !path.exists() {
        return absent(format!("{} does not exist", path.display()));
    }
    let kvm: Box<dyn KvmQuery> = match devices.open_kvm(path) {
        Ok(kvm) => kvm,
        Err(e) => return absent(format!("cannot open {}: {e}", path.display())),
    };
    let api_version = kvm.api_version();
    if api_version != KVM_API_VERSION {
        return absent(format!(
            "{} answered KVM_GET_API_VERSION with {api_version}, expected {KVM_API_VERSION}",
            path.display()
        ));
    }
    // KVM_CHECK_EXTENSION returns 0 for an unknown capability and a negative value on
    // error; both mean "not available" here.
    let value = |c: u32| u64::try_from(kvm.check_extension(c)).unwrap_or(0);
    let vm_types = match value(cap::VM_TYPES) {
        0 => None,
        bits => Some(VmTypes(u32::try_from(bits).unwrap_or(u32::MAX))),
    };
    KvmFacts::Present {
        path: path.to_owned(),
        api_version,
        vm_types,
        guest_memfd: value(cap::GUEST_MEMFD) != 0,
        user_memory2: value(cap::USER_MEMORY2) != 0,
        memory_attributes: value(cap::MEMORY_ATTRIBUTES),
        exit_hypercall: value(cap::EXIT_HYPERCALL),
        split_irqchip: value(cap::SPLIT_IRQCHIP) != 0,
        max_vcpus: kvm.check_extension(cap::MAX_VCPUS),
        arm_rmi: rmi_cap.map(|c| kvm.check_extension(c)),
    }
}

/// Reads a module parameter: `Y`/`1` is true, `N`/`0` false, anything else unknown.
fn read_bool(path: &Path) -> Option<bool> {
    match fs::read_to_string(path).ok()?.trim() {
        "Y" | "y" | "1" => Some(true),
        "N" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn read_u32(path: &Path) -> Result<u32, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a number: {:?}", path.display(), text.trim()))
}

fn kvm_modules(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n == "kvm" || n.starts_with("kvm_"))
        .collect();
    names.sort();
    names
}

/// Parses the first processor block of `/proc/cpuinfo`.
fn cpu_facts(path: &Path) -> CpuFacts {
    let Ok(text) = fs::read_to_string(path) else {
        return CpuFacts::default();
    };
    let mut facts = CpuFacts::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // end of the first processor
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "vendor_id" | "CPU implementer" => facts.vendor = Some(value.to_owned()),
            "model name" => facts.model_name = Some(value.to_owned()),
            "flags" | "Features" => {
                facts.tee_flags = value
                    .split_whitespace()
                    .filter(|f| TEE_FLAGS.contains(f))
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_first_block_only() {
        let dir = std::env::temp_dir().join(format!("cvm-cpuinfo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cpuinfo");
        fs::write(
            &path,
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654\n\
             flags\t\t: fpu svm sev sev_es sev_snp avx\n\nprocessor\t: 1\nvendor_id\t: Other\n",
        )
        .unwrap();
        let f = cpu_facts(&path);
        assert_eq!(f.vendor.as_deref(), Some("AuthenticAMD"));
        assert_eq!(f.model_name.as_deref(), Some("AMD EPYC 9654"));
        let flags: Vec<_> = f.tee_flags.iter().map(String::as_str).collect();
        assert_eq!(flags, ["sev", "sev_es", "sev_snp", "svm"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bool_params() {
        let dir = std::env::temp_dir().join(format!("cvm-params-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for (text, want) in [("Y\n", Some(true)), ("0\n", Some(false)), ("maybe", None)] {
            fs::write(dir.join("p"), text).unwrap();
            assert_eq!(read_bool(&dir.join("p")), want, "{text:?}");
        }
        assert_eq!(read_bool(&dir.join("missing")), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
