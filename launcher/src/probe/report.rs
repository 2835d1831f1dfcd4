//! From facts to a verdict per TEE.

use super::facts::{Arch, HostFacts, KvmFacts};
use super::kvm::{HC_MAP_GPA_RANGE, VmTypes};
use super::tee::Tee;
use crate::output::Render;
use serde::Serialize;
use std::io::{self, Write};

/// The version of the JSON layout of [`ProbeReport`]; bumped on any incompatible change.
pub const PROBE_SCHEMA: u32 = 1;

/// Whether one TEE can be launched, and if not, every reason why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeeStatus {
    /// The TEE.
    pub tee: Tee,
    /// True when every requirement is met.
    pub available: bool,
    /// The unmet requirements, joined into one line; `null` when available.
    pub reason: Option<String>,
    /// The unmet requirements, one entry each.
    pub missing: Vec<String>,
}

/// What `cvm probe` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// [`PROBE_SCHEMA`].
    pub schema: u32,
    /// The facts the verdicts were drawn from.
    pub host: HostFacts,
    /// One entry per launchable TEE, in [`Tee::LAUNCHABLE`] order.
    pub tees: Vec<TeeStatus>,
}

impl ProbeReport {
    /// The status of `tee`.
    pub fn status(&self, tee: Tee) -> Option<&TeeStatus> {
        self.tees.iter().find(|s| s.tee == tee)
    }

    /// The strongest confidential TEE that is available, as `--tee auto` chooses.
    pub fn best_confidential(&self) -> Option<Tee> {
        self.tees
            .iter()
            .find(|s| s.available && s.tee.is_confidential())
            .map(|s| s.tee)
    }

    fn kvm_summary(&self) -> String {
        match &self.host.kvm {
            KvmFacts::Absent { reason, .. } => format!("absent ({reason})"),
            KvmFacts::Present {
                path,
                api_version,
                vm_types,
                guest_memfd,
                exit_hypercall,
                split_irqchip,
                max_vcpus,
                ..
            } => format!(
                "{} API {api_version}, VM types: {}, guest_memfd: {}, split irqchip: {}, \
                 hypercall exits: {exit_hypercall:#x}, max vCPUs: {max_vcpus}",
                path.display(),
                vm_types.map_or_else(
                    || "default (no KVM_CAP_VM_TYPES)".to_owned(),
                    |t| t.names().join(", ")
                ),
                yes_no(*guest_memfd),
                yes_no(*split_irqchip),
            ),
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl Render for ProbeReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let cpu = &self.host.cpu;
        let modules = if self.host.kvm_modules.is_empty() {
            "none".to_owned()
        } else {
            self.host.kvm_modules.join(", ")
        };
        writeln!(
            out,
            "host: {}, CPU {}{}, KVM modules: {modules}",
            self.host.arch,
            cpu.vendor.as_deref().unwrap_or("unknown"),
            cpu.model_name
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
        )?;
        writeln!(out, "kvm:  {}", self.kvm_summary())?;
        if let Some(Ok(st)) = &self.host.snp_platform {
            writeln!(
                out,
                "snp firmware: API {}.{} build {}, RMP initialised: {}, guests: {}",
                st.api_major,
                st.api_minor,
                st.build_id,
                yes_no(st.rmp_initialized),
                st.guest_count
            )?;
        }
        for s in &self.tees {
            match &s.reason {
                None if s.tee == Tee::None => writeln!(
                    out,
                    "{:<7} available (unprotected: development only)",
                    s.tee
                )?,
                None => writeln!(out, "{:<7} available", s.tee)?,
                Some(reason) => writeln!(out, "{:<7} unavailable: {reason}", s.tee)?,
            }
        }
        Ok(())
    }
}

/// Decides, for every TEE, whether the host can launch it.
pub fn assess(facts: &HostFacts) -> ProbeReport {
    let tees = Tee::LAUNCHABLE
        .iter()
        .map(|&tee| {
            let missing = unmet(tee, facts);
            TeeStatus {
                tee,
                available: missing.is_empty(),
                reason: (!missing.is_empty()).then(|| missing.join("; ")),
                missing,
            }
        })
        .collect();
    ProbeReport {
        schema: PROBE_SCHEMA,
        host: facts.clone(),
        tees,
    }
}

/// The KVM answers a TEE's requirements are checked against.
struct Kvm {
    vm_types: Option<VmTypes>,
    guest_memfd: bool,
    exit_hypercall: u64,
    split_irqchip: bool,
    arm_rmi: Option<i32>,
}

fn unmet(tee: Tee, facts: &HostFacts) -> Vec<String> {
    let mut missing = Vec::new();
    let kvm = match &facts.kvm {
        KvmFacts::Absent { reason, .. } => {
            missing.push(format!("no KVM: {reason}"));
            None
        }
        KvmFacts::Present {
            vm_types,
            guest_memfd,
            exit_hypercall,
            split_irqchip,
            arm_rmi,
            ..
        } => Some(Kvm {
            vm_types: *vm_types,
            guest_memfd: *guest_memfd,
            exit_hypercall: *exit_hypercall,
            split_irqchip: *split_irqchip,
            arm_rmi: *arm_rmi,
        }),
    };
    let mut need = |ok: bool, why: String| {
        if !ok {
            missing.push(why);
        }
    };
    let vm_type = |ty: u32| {
        kvm.as_ref().is_none_or(|k| match k.vm_types {
            Some(t) => t.has(ty),
            None => ty == VmTypes::DEFAULT,
        })
    };
    let vm_type_why = |name: &str| {
        let offered = kvm.as_ref().and_then(|k| k.vm_types).map_or_else(
            || "no KVM_CAP_VM_TYPES: Linux before 6.10".to_owned(),
            |t| format!("KVM_CAP_VM_TYPES offers {}", t.names().join(", ")),
        );
        format!("KVM does not offer the {name} VM type ({offered})")
    };
    let guest_memfd = kvm.as_ref().is_none_or(|k| k.guest_memfd);
    let map_gpa = kvm
        .as_ref()
        .is_none_or(|k| k.exit_hypercall & (1 << HC_MAP_GPA_RANGE) != 0);
    const NO_GUEST_MEMFD: &str = "KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD; Linux 6.8+)";
    const NO_MAP_GPA: &str =
        "KVM cannot forward KVM_HC_MAP_GPA_RANGE to userspace (KVM_CAP_EXIT_HYPERCALL)";

    match tee {
        Tee::None => need(vm_type(VmTypes::DEFAULT), vm_type_why("default")),
        Tee::Sev | Tee::SevEs | Tee::Snp => {
            let (param, ty, name) = match tee {
                Tee::Sev => ("sev", VmTypes::SEV, "sev"),
                Tee::SevEs => ("sev_es", VmTypes::SEV_ES, "sev-es"),
                _ => ("sev_snp", VmTypes::SNP, "snp"),
            };
            vendor_checks(facts, ("AuthenticAMD", "AMD"), "AMD SEV", &mut need);
            match &facts.kvm_amd {
                None => need(false, module_missing("kvm_amd", facts)),
                Some(p) => {
                    let value = match tee {
                        Tee::Sev => p.sev,
                        Tee::SevEs => p.sev_es,
                        _ => p.sev_snp,
                    };
                    need(value == Some(true), param_why("kvm_amd", param, value));
                }
            }
            need(
                facts.sev_device,
                format!(
                    "no {} (the ccp driver found no AMD secure processor)",
                    facts.sev_path.display()
                ),
            );
            need(vm_type(ty), vm_type_why(name));
            if tee == Tee::Snp {
                need(guest_memfd, NO_GUEST_MEMFD.to_owned());
                need(map_gpa, NO_MAP_GPA.to_owned());
                match &facts.snp_platform {
                    Some(Err(e)) => need(false, e.clone()),
                    Some(Ok(st)) => need(
                        st.rmp_initialized,
                        "the SNP firmware is not initialised (RMP not set up)".to_owned(),
                    ),
                    None => {}
                }
            }
        }
        Tee::Tdx => {
            vendor_checks(facts, ("GenuineIntel", "Intel"), "Intel TDX", &mut need);
            match &facts.kvm_intel {
                None => need(false, module_missing("kvm_intel", facts)),
                Some(p) => need(p.tdx == Some(true), param_why("kvm_intel", "tdx", p.tdx)),
            }
            need(vm_type(VmTypes::TDX), vm_type_why("tdx"));
            need(guest_memfd, NO_GUEST_MEMFD.to_owned());
            need(map_gpa, NO_MAP_GPA.to_owned());
            need(
                kvm.as_ref().is_none_or(|k| k.split_irqchip),
                "KVM has no split irqchip (KVM_CAP_SPLIT_IRQCHIP)".to_owned(),
            );
        }
        Tee::Cca => {
            need(
                facts.arch == Arch::Aarch64,
                format!("Arm CCA needs an AArch64 host (this is {})", facts.arch),
            );
            match &facts.kvm_cap_arm_rmi {
                None => need(
                    false,
                    "the kernel has no realm support \
                     (no /sys/module/kvm/parameters/kvm_cap_arm_rmi)"
                        .to_owned(),
                ),
                Some(Err(e)) => need(false, e.clone()),
                Some(Ok(cap)) => {
                    let answer = kvm.as_ref().and_then(|k| k.arm_rmi);
                    need(
                        kvm.is_none() || answer.is_some_and(|v| v > 0),
                        format!(
                            "KVM does not offer realms (KVM_CHECK_EXTENSION({cap}) = {}: \
                             no RMM, or it is not initialised)",
                            answer.unwrap_or(0)
                        ),
                    );
                }
            }
            need(guest_memfd, NO_GUEST_MEMFD.to_owned());
        }
        Tee::Sgx => need(false, "cvm launches no SGX enclaves".to_owned()),
    }
    missing
}

/// `vendor` is the CPUID vendor string and the vendor's name.
fn vendor_checks(
    facts: &HostFacts,
    (vendor_id, vendor): (&str, &str),
    what: &str,
    need: &mut impl FnMut(bool, String),
) {
    need(
        facts.arch == Arch::X86_64,
        format!("{what} needs an x86-64 host (this is {})", facts.arch),
    );
    if facts.arch == Arch::X86_64
        && let Some(v) = &facts.cpu.vendor
    {
        need(
            v == vendor_id,
            format!("{what} needs an {vendor} CPU (this one is {v})"),
        );
    }
}

fn module_missing(module: &str, facts: &HostFacts) -> String {
    let others: Vec<&str> = facts
        .kvm_modules
        .iter()
        .map(String::as_str)
        .filter(|m| *m != "kvm")
        .collect();
    if others.is_empty() {
        format!("{module} is not loaded")
    } else {
        format!("{module} is not loaded (KVM here is {})", others.join(", "))
    }
}

fn param_why(module: &str, param: &str, value: Option<bool>) -> String {
    match value {
        Some(true) => String::new(),
        Some(false) => format!(
            "{module} parameter {param} is off (enable it in the firmware setup, \
             then load {module} with {param}=1)"
        ),
        None => format!("{module} parameter {param} is missing or unreadable"),
    }
}
