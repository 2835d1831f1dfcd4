//! `cvm launch --tee cca`: a realm of cvm's own layout (`--vmm cvm`: kvmtool's memory
//! map and DTB) through KVM's v14 realm interface ([`crate::realm`]). With `--dry-run`
//! the whole creation runs against the model of KVM and the RMM
//! ([`crate::realm::model`]), which reports the RIM the RMM would take; the launch
//! succeeds only when the model accepted every call and its RIM is the plan's, the one
//! `cvm measure --tee cca --vmm cvm` predicts from the same options.

use super::launch::{LaunchArgs, check_options};
use super::measure_cca::{Loaded, load};
use super::plan_args::Vmm;
use crate::error::CliError;
use crate::output::{Format, Output, Render};
use crate::realm::model::{RealmModel, Rmm};
use crate::realm::{self, Call};
use cvm_firmware::Tee;
use cvm_firmware::cca::layout::Vmm as RealmVmm;
use serde::Serialize;
use std::io::{self, Write};

/// What a realm launch reports.
#[derive(Debug, Serialize)]
pub struct RealmLaunchReport {
    /// `cca`.
    pub tee: &'static str,
    /// Against the model.
    pub dry_run: bool,
    /// The layout (`cvm`).
    pub vmm: RealmVmm,
    /// The host interface (`kvm-rmi-v14`).
    pub interface: cvm_firmware::cca::Interface,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// The RIM the plan predicts (`cvm measure --tee cca --vmm cvm`).
    pub predicted_rim: String,
    /// The RIM the model's RMM took (with --dry-run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rim: Option<String>,
    /// Granules populated (with --dry-run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granules: Option<u64>,
    /// How the realm ended (a real launch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Every call, in order (with --explain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Call>,
}

impl Render for RealmLaunchReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "tee: cca ({}, {} vCPU{}, {} MiB){}",
            if self.dry_run { "model" } else { "KVM" },
            self.vcpus,
            if self.vcpus == 1 { "" } else { "s" },
            self.memory >> 20,
            if self.dry_run { ", dry run" } else { "" }
        )?;
        if let Some(rim) = &self.rim {
            writeln!(out, "rim: {rim}")?;
        }
        writeln!(out, "predicted rim: {}", self.predicted_rim)?;
        if let Some(o) = &self.outcome {
            writeln!(out, "outcome: {o}")?;
        }
        for c in &self.calls {
            writeln!(out, "  {:<28} {}", c.call, c.what)?;
        }
        Ok(())
    }
}

/// Runs `cvm launch --tee cca`.
pub fn run(args: &LaunchArgs, format: Format) -> super::CmdResult {
    match launch(args, format) {
        Ok((report, result)) => match Output::new(&report) {
            Ok(out) => (Some(out), result),
            Err(e) => (None, Err(e)),
        },
        Err(e) => (None, Err(e)),
    }
}

fn refuse(flag: &str, why: &str) -> CliError {
    CliError::Usage(format!("{flag}: {why}"))
}

fn launch(
    args: &LaunchArgs,
    _format: Format,
) -> Result<(RealmLaunchReport, Result<(), CliError>), CliError> {
    check_options(args, Tee::Cca)?;
    // The default --vmm (qemu) is taken as not given: a realm launch is cvm's layout.
    if !matches!(args.plan.vmm, Vmm::Qemu | Vmm::Cvm) {
        return Err(refuse(
            "--vmm",
            "cvm launches realms of its own layout (--vmm cvm); the other VMMs' layouts are \
             for 'cvm measure'",
        ));
    }
    for (flag, given) in [
        ("--attest", args.attest.attest),
        ("--irqchip", args.irqchip.is_some()),
        ("--firmware-log", args.firmware_log.is_some()),
    ] {
        if given {
            return Err(refuse(
                flag,
                "does not apply to a realm launch (KVM's GICv3 is required; there is no \
                 attestation exchange for realms yet)",
            ));
        }
    }
    let Loaded { memory, plan, .. } = load(&args.plan, &args.realm, RealmVmm::Cvm)?;
    let (predicted, _) = plan.measure().map_err(|e| CliError::Usage(e.0))?;
    let predicted = hex::encode(predicted.get(..32).unwrap_or(&predicted));
    let vcpus = args.plan.vcpus;
    let gic = realm::kvmtool_gic(vcpus);
    let mut report = RealmLaunchReport {
        tee: "cca",
        dry_run: args.dry_run,
        vmm: RealmVmm::Cvm,
        interface: plan.interface,
        vcpus,
        memory,
        predicted_rim: predicted.clone(),
        rim: None,
        granules: None,
        outcome: None,
        calls: Vec::new(),
    };
    if args.dry_run {
        let rmm = Rmm::from_caps(&args.realm.caps()?).map_err(CliError::Usage)?;
        let mut model = RealmModel::new(rmm);
        let created = realm::launch(&plan, vcpus, gic, &mut model).map_err(CliError::Realm)?;
        let rim = model.rim().map(hex::encode);
        report.granules = Some(model.granules());
        let result = if rim.as_deref() == Some(predicted.as_str()) {
            Ok(())
        } else {
            Err(CliError::Realm(realm::RealmError::new(
                "RIM",
                libc::EIO,
                format!(
                    "the model's RIM {} is not the plan's {predicted}",
                    rim.as_deref().unwrap_or("(none: the realm is not active)")
                ),
            )))
        };
        report.rim = rim;
        if args.explain {
            report.calls = created.calls;
        }
        return Ok((report, result));
    }
    real(args, &plan, gic, report)
}

#[cfg(all(target_os = "linux", feature = "cca"))]
fn real(
    args: &LaunchArgs,
    plan: &cvm_firmware::cca::RealmPlan,
    gic: realm::GicLayout,
    mut report: RealmLaunchReport,
) -> Result<(RealmLaunchReport, Result<(), CliError>), CliError> {
    use crate::realm::kvm::KvmRealm;
    /// kvmtool's first 8250 (arm/include/arm-common/kvm-arch.h), the DTB's serial0.
    const UART: u64 = 0x0100_0000;
    if args.plan.vcpus != 1 {
        return Err(refuse(
            "--vcpus",
            "cvm runs a realm's boot vCPU only so far: give --vcpus 1",
        ));
    }
    let mut hw = KvmRealm::open(UART).map_err(CliError::Realm)?;
    realm::launch(plan, args.plan.vcpus, gic, &mut hw).map_err(CliError::Realm)?;
    let deadline = std::time::Instant::now()
        .checked_add(args.timeout.unwrap_or(std::time::Duration::from_secs(3600)))
        .unwrap_or_else(std::time::Instant::now);
    let outcome = hw
        .run(UART, deadline, &mut io::stderr())
        .map_err(CliError::Realm)?;
    report.outcome = Some(outcome);
    Ok((report, Ok(())))
}

#[cfg(not(all(target_os = "linux", feature = "cca")))]
fn real(
    _args: &LaunchArgs,
    _plan: &cvm_firmware::cca::RealmPlan,
    _gic: realm::GicLayout,
    _report: RealmLaunchReport,
) -> Result<(RealmLaunchReport, Result<(), CliError>), CliError> {
    Err(CliError::PlatformUnavailable(
        "this cvm is built without the realm backend (cargo feature `cca`): only \
         'cvm launch --tee cca --dry-run' runs"
            .into(),
    ))
}
