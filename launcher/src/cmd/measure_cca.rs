//! `cvm measure --tee cca`: the Realm Initial Measurement of a realm, from the realm plan
//! of the VMM whose layout is predicted (`--vmm`), and the host's capabilities.

use super::measure::{InputFile, MeasureArgs};
use super::plan_args::{CCA, Given, PlanArgs, Vmm, given};
use super::{InputKind, read_file, read_input};
use crate::error::CliError;
use crate::input::Input;
use crate::output::Render;
use clap::Args;
use cvm_firmware::cca::layout::{HostCaps, Inputs, Vmm as RealmVmm, plan};
use cvm_firmware::cca::{Hash, RealmParams, Step};
use cvm_firmware::reference::{CcaValues, Digest, MEASUREMENT_FORMAT, MeasuredValues};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::io::{self, Write};
use std::path::PathBuf;

/// The realm's own options.
#[derive(Debug, Args)]
pub struct RealmArgs {
    /// CCA: the measurement hash.
    #[arg(long, value_enum, value_name = "ALG")]
    pub hash: Option<HashArg>,
    /// CCA: the host's capabilities, `key = value` lines (`ipa_bits`, `num_bps`,
    /// `num_wps`, `sve_vl`, `pmu_num_ctrs`, `pmu`, `lpa2`). Repeatable: each later file
    /// can only lower what the earlier ones allow (hardware, KVM and the RMM each cap).
    #[arg(long, value_name = "FILE")]
    pub host_config: Vec<PathBuf>,
    /// CCA: the host's IPA bits (overrides the files).
    #[arg(long, value_name = "N")]
    pub ipa_bits: Option<u8>,
    /// CCA: the host's breakpoints (overrides the files).
    #[arg(long, value_name = "N")]
    pub num_bps: Option<u8>,
    /// CCA: the host's watchpoints (overrides the files).
    #[arg(long, value_name = "N")]
    pub num_wps: Option<u8>,
    /// CCA: the host offers a PMU (overrides the files).
    #[arg(long)]
    pub pmu: bool,
    /// CCA: the host's PMU counters (overrides the files).
    #[arg(long, value_name = "N")]
    pub pmu_counters: Option<u8>,
    /// CCA: the host's SVE vector length in bits, 0 for none (overrides the files).
    #[arg(long, value_name = "BITS")]
    pub sve_vl: Option<u16>,
    /// CCA: the Realm Personalization Value, up to 64 bytes of hex (reported, not
    /// measured: the token carries it beside the RIM).
    #[arg(long, value_name = "HEX")]
    pub rpv: Option<String>,
}

/// `--hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashArg {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl RealmArgs {
    /// The options given, for [`super::plan_args::refuse_inapplicable`] (CCA only).
    pub fn given(&self) -> Vec<Given> {
        given(&[
            ("--hash", self.hash.is_some(), CCA),
            ("--host-config", !self.host_config.is_empty(), CCA),
            ("--ipa-bits", self.ipa_bits.is_some(), CCA),
            ("--num-bps", self.num_bps.is_some(), CCA),
            ("--num-wps", self.num_wps.is_some(), CCA),
            ("--pmu", self.pmu, CCA),
            ("--pmu-counters", self.pmu_counters.is_some(), CCA),
            ("--sve-vl", self.sve_vl.is_some(), CCA),
            ("--rpv", self.rpv.is_some(), CCA),
        ])
    }

    /// The host's capabilities: the files, lowered in turn, then the options.
    pub fn caps(&self) -> Result<HostCaps, CliError> {
        let mut caps = HostCaps::default();
        for p in &self.host_config {
            let bytes = read_file(p, InputKind::Config)?;
            let config = |reason: String| CliError::Config {
                path: p.clone(),
                source: crate::error::InputError::Other(reason),
            };
            let text = String::from_utf8(bytes).map_err(|_| config("not UTF-8 text".into()))?;
            let c = HostCaps::parse(&text).map_err(|e| CliError::Config {
                path: p.clone(),
                source: crate::error::InputError::Other(e.0),
            })?;
            caps.restrict(&c);
        }
        let usage = |e: cvm_firmware::cca::PlanError| CliError::Usage(e.0);
        // The options go through the file syntax, so that they are range-checked alike.
        let mut text = String::new();
        for (k, v) in [
            ("ipa_bits", self.ipa_bits.map(|v| v.to_string())),
            ("num_bps", self.num_bps.map(|v| v.to_string())),
            ("num_wps", self.num_wps.map(|v| v.to_string())),
            ("pmu_num_ctrs", self.pmu_counters.map(|v| v.to_string())),
            ("sve_vl", self.sve_vl.map(|v| v.to_string())),
            ("pmu", self.pmu.then(|| "true".to_owned())),
        ] {
            if let Some(v) = v {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        caps.set(&HostCaps::parse(&text).map_err(usage)?);
        Ok(caps)
    }

    /// The personalization value, right-padded with zeros to 64 bytes.
    pub fn rpv(&self) -> Result<Option<String>, CliError> {
        let Some(text) = &self.rpv else {
            return Ok(None);
        };
        let t = text.strip_prefix("0x").unwrap_or(text);
        let mut b = hex::decode(t)
            .ok()
            .filter(|b| b.len() <= 64)
            .ok_or_else(|| {
                CliError::Usage(format!("--rpv {text:?} is not up to 64 bytes of hex"))
            })?;
        b.resize(64, 0);
        Ok(Some(hex::encode(b)))
    }
}

/// What `cvm measure --tee cca` reports. The JSON form is a stable interface: `cvm
/// verify` takes it as reference values.
#[derive(Debug, Serialize)]
pub struct CcaReport {
    /// `cvm-measurement/1`.
    pub format: &'static str,
    /// `tee` ("cca") and `rim` (as long as the hash).
    #[serde(flatten)]
    pub values: MeasuredValues,
    /// The VMM whose layout was predicted.
    pub vmm: RealmVmm,
    /// The realm parameters RMI_REALM_CREATE measures.
    pub params: RealmParams,
    /// The personalization value (reported, not measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpv: Option<String>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest memory in bytes.
    pub memory: u64,
    /// The firmware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<InputFile>,
    /// The kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<InputFile>,
    /// The initrd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd: Option<InputFile>,
    /// The command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The DTB the VMM generates: where, how long, its SHA-256.
    pub dtb: DtbReport,
    /// Images the VMM hands to the firmware (QEMU's fw_cfg with `--firmware`): not in
    /// the RIM; the firmware measures them into a REM.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to_firmware: Vec<&'static str>,
    /// Every RMI step with its running RIM (with `--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// The generated DTB.
#[derive(Debug, Serialize)]
pub struct DtbReport {
    /// Its length before padding.
    pub size: usize,
    /// SHA-256 of those bytes.
    pub sha256: String,
}

impl Render for CcaReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let MeasuredValues::Cca(v) = &self.values {
            writeln!(out, "tee: cca")?;
            writeln!(out, "rim: {}", v.rim)?;
        }
        if let Some(r) = &self.rpv {
            writeln!(out, "rpv: {r}")?;
        }
        for s in &self.steps {
            writeln!(out, "  {:<18} {}", s.command, s.what)?;
            writeln!(out, "      rim {}", s.rim)?;
        }
        Ok(())
    }
}

/// Refuses the realm options KVM's v14 interface offers no way to set (the cover letter
/// of "arm64: Support for Arm CCA in KVM" v14: PMU, hash and RPV selection are dropped;
/// cvm does not enable SVE on a realm's vCPUs).
fn refuse_on_v14(r: &RealmArgs) -> Result<(), CliError> {
    for (flag, given) in [
        ("--hash sha512", r.hash == Some(HashArg::Sha512)),
        ("--pmu", r.pmu),
        ("--pmu-counters", r.pmu_counters.is_some_and(|n| n != 0)),
        ("--sve-vl", r.sve_vl.is_some_and(|v| v != 0)),
        ("--rpv", r.rpv.is_some()),
    ] {
        if given {
            return Err(CliError::Usage(format!(
                "{flag}: a realm of cvm's own launcher is created through KVM's v14 \
                 interface, which has no way to set it (SHA-256, no PMU, no SVE, a zero RPV)"
            )));
        }
    }
    Ok(())
}

/// Computes the report for `args`.
pub fn report(args: &MeasureArgs) -> Result<CcaReport, CliError> {
    let p = &args.plan;
    let vmm = match p.vmm {
        Vmm::Kvmtool => RealmVmm::Kvmtool,
        Vmm::Qemu => RealmVmm::Qemu,
        Vmm::CloudHv => RealmVmm::CloudHv,
        Vmm::Cvm => RealmVmm::Cvm,
        Vmm::Ec2 | Vmm::Gce => {
            return Err(CliError::Usage(
                "--tee cca: --vmm is kvmtool, qemu, cloud-hv or cvm".into(),
            ));
        }
    };
    report_for(args, vmm)
}

/// A realm's plan and what it was made of.
pub struct Loaded {
    /// The firmware, kernel and initrd as read.
    pub firmware: Option<Input>,
    /// The kernel.
    pub kernel: Option<Input>,
    /// The initrd.
    pub initrd: Option<Input>,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// The plan.
    pub plan: cvm_firmware::cca::RealmPlan,
    /// The DTB the layout generates.
    pub dtb: Vec<u8>,
    /// The host's capabilities the plan was made for.
    pub caps: HostCaps,
}

/// The plan of a realm of `vmm`'s layout from the plan and realm options, the one `cvm
/// measure --tee cca` measures and `cvm launch --tee cca` launches.
pub fn load(p: &PlanArgs, realm: &RealmArgs, vmm: RealmVmm) -> Result<Loaded, CliError> {
    if vmm == RealmVmm::Cvm {
        refuse_on_v14(realm)?;
    }
    let memory = p.memory.ok_or_else(|| {
        CliError::Usage(
            "--tee cca needs --memory: the realm's RAM is measured, and VMMs' defaults differ"
                .into(),
        )
    })?;
    let caps = realm.caps()?;
    let read =
        |path: &Option<PathBuf>, kind| path.as_deref().map(|f| read_input(f, kind)).transpose();
    let firmware = read(&p.firmware, InputKind::Firmware)?;
    let kernel = read(&p.kernel, InputKind::Kernel)?;
    let initrd = read(&p.initrd, InputKind::Initrd)?;
    let inputs = Inputs {
        vmm,
        caps: caps.clone(),
        // Each VMM's default: kvmtool's SHA-256, QEMU's and cloud-hypervisor's SHA-512.
        hash: match (realm.hash, vmm) {
            (_, RealmVmm::Cvm) => Hash::Sha256,
            (Some(HashArg::Sha512), _) | (None, RealmVmm::Qemu | RealmVmm::CloudHv) => Hash::Sha512,
            _ => Hash::Sha256,
        },
        vcpus: p.vcpus,
        memory,
        kernel: kernel.as_deref(),
        initrd: initrd.as_deref(),
        firmware: firmware.as_deref(),
        cmdline: p.cmdline.as_deref(),
        its: true,
    };
    let (plan, dtb) = plan(&inputs).map_err(|e| CliError::Usage(e.0))?;
    Ok(Loaded {
        firmware,
        kernel,
        initrd,
        memory,
        plan,
        dtb,
        caps,
    })
}

/// The report for a realm of `vmm`'s layout.
pub fn report_for(args: &MeasureArgs, vmm: RealmVmm) -> Result<CcaReport, CliError> {
    let p = &args.plan;
    let rpv = args.realm.rpv()?;
    let Loaded {
        firmware,
        kernel,
        initrd,
        memory,
        plan,
        dtb,
        ..
    } = load(p, &args.realm, vmm)?;
    let (rim, steps) = plan.measure().map_err(|e| CliError::Usage(e.0))?;
    let len = plan.params.hash.len();
    let file = |path: &Option<PathBuf>, data: Option<&[u8]>| {
        path.as_deref().zip(data).map(|(p, d)| InputFile::new(p, d))
    };
    Ok(CcaReport {
        format: MEASUREMENT_FORMAT,
        values: MeasuredValues::Cca(CcaValues {
            rim: Digest(rim.get(..len).unwrap_or(&rim).to_vec()),
        }),
        vmm,
        params: plan.params.clone(),
        rpv,
        vcpus: p.vcpus,
        memory,
        firmware: file(&p.firmware, firmware.as_deref()),
        kernel: file(&p.kernel, kernel.as_deref()),
        initrd: file(&p.initrd, initrd.as_deref()),
        cmdline: p.cmdline.clone(),
        dtb: DtbReport {
            size: dtb.len(),
            sha256: hex::encode(Sha256::digest(&dtb)),
        },
        to_firmware: if vmm == RealmVmm::Qemu && firmware.is_some() {
            [("kernel", kernel.is_some()), ("initrd", initrd.is_some())]
                .into_iter()
                .filter_map(|(n, given)| given.then_some(n))
                .collect()
        } else {
            Vec::new()
        },
        steps: if args.explain { steps } else { Vec::new() },
    })
}
