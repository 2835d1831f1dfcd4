//! `cvm launch --tee cca`: a realm of cvm's own layout (`--vmm cvm`: kvmtool's memory
//! map and DTB) through KVM's v14 realm interface ([`crate::realm`]). With `--dry-run`
//! the whole creation runs against the model of KVM and the RMM
//! ([`crate::realm::model`]), which reports the RIM the RMM would take; the launch
//! succeeds only when the model accepted every call and its RIM is the plan's, the one
//! `cvm measure --tee cca --vmm cvm` predicts from the same options.

use super::attest_launch::{AttestReport, Session};
use super::launch::{LaunchArgs, check_options};
use super::measure_cca::{Loaded, load};
use super::plan_args::Vmm;
use crate::error::CliError;
use crate::output::{Format, Render};
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
    /// The exchange and its verdict (with --attest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attest: Option<AttestReport>,
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
        if let Some(a) = &self.attest {
            writeln!(out, "nonce: {}", a.nonce)?;
            match &a.verdict {
                Some(v) => v.render_text(out)?,
                None => writeln!(out, "verdict: none (no evidence)")?,
            }
        }
        Ok(())
    }
}

/// Runs `cvm launch --tee cca`.
pub fn run(args: &LaunchArgs, format: Format) -> super::CmdResult {
    super::reported(launch(args, format))
}

fn refuse(flag: &str, why: &str) -> CliError {
    CliError::Usage(format!("{flag}: {why}"))
}

fn launch(
    args: &LaunchArgs,
    format: Format,
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
    if args.attest.attest && !args.dry_run {
        return Err(refuse(
            "--attest",
            "a realm launched on KVM has no guest side for the exchange yet: --attest runs \
             with --dry-run, against the model's RMM",
        ));
    }
    let Loaded {
        memory, plan, caps, ..
    } = load(&args.plan, &args.realm, RealmVmm::Cvm)?;
    let (rim, _) = plan.measure().map_err(|e| CliError::Usage(e.0))?;
    // KVM's v14 interface measures with SHA-256: the RIM is the field's first 32 bytes.
    let predicted_rim = rim.get(..32).unwrap_or(&rim).to_vec();
    let predicted = hex::encode(&predicted_rim);
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
        attest: None,
    };
    if args.dry_run {
        let rmm = Rmm::from_caps(&caps).map_err(CliError::Usage)?;
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
        if args.attest.attest && result.is_ok() {
            let (attest, verdict) = dry_attest(args, &model, predicted_rim)?;
            report.attest = Some(attest);
            return Ok((report, verdict));
        }
        return Ok((report, result));
    }
    real(args, format, &plan, gic, report)
}

#[cfg(all(target_os = "linux", feature = "cca"))]
fn real(
    args: &LaunchArgs,
    format: Format,
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
    let mut console = super::launch::serial_out(&args.serial, format)?;
    let outcome = hw
        .run(UART, deadline, &mut console)
        .map_err(CliError::Realm)?;
    report.outcome = Some(outcome);
    Ok((report, Ok(())))
}

#[cfg(not(all(target_os = "linux", feature = "cca")))]
fn real(
    _args: &LaunchArgs,
    _format: Format,
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

/// `--dry-run --attest`: what a realm's guest does, against the model's RMM. The guest
/// asks for a token whose challenge is the nonce binding (RSI_ATTESTATION_TOKEN_INIT),
/// writes it as its evidence line, and the host reads the line back through the
/// exchange's parser and verifies the token with the trust anchors given (`--cpak`,
/// `--tastore`: the model signs with the CCA test keys, which only
/// `--cpak tests/fixtures/cca-test-pki/test-cpak.pem` trusts), against the plan's RIM,
/// the binding and the policy. This proves the plumbing, not a platform.
fn dry_attest(
    args: &LaunchArgs,
    model: &RealmModel,
    rim: Vec<u8>,
) -> Result<(AttestReport, Result<(), CliError>), CliError> {
    use base64::Engine;
    use cvm_attest::config::{Bytes, Expected};
    use cvm_attest::exchange::{self, EvidenceKind};
    use cvm_attest::{Category, CheckId};
    let session = Session::new(&args.attest)?;
    let binding = exchange::report_data(&session.nonce);
    let token = model.attestation_token(&binding).map_err(CliError::Realm)?;
    let text = format!(
        "CVM-EVIDENCE 1 cca {}",
        base64::engine::general_purpose::STANDARD.encode(&token)
    );
    let line = exchange::parse_line(text.as_bytes())
        .map_err(|e| CliError::Usage(format!("the guest's evidence line: {e}")))?;
    super::attest_launch::save_evidence(&args.attest, &line.evidence)?;
    let mut reference = cvm_attest::cca::appraise::Reference::skip();
    reference.rim = Expected::value(cvm_firmware::reference::Digest(rim));
    reference.report_data = Expected::value(Bytes(binding));
    let inputs = super::verify::cca_inputs(
        &args.attest.cpak,
        &args.attest.tastore,
        Some(reference),
        args.attest.verify_policy.as_deref(),
    )?;
    let at = super::verify::at_or_now(args.attest.at.as_deref())?;
    let mut v = super::verify::verify_cca(&inputs, &line.evidence, at);
    v.add_check(
        CheckId::LaunchReference,
        Category::Policy,
        if line.kind == EvidenceKind::Cca {
            Ok("the reference values of the --tee cca plan launched".into())
        } else {
            Err(format!("the realm sent {} evidence", line.kind.name()))
        },
    );
    let result = v.result();
    Ok((
        AttestReport {
            nonce: hex::encode(session.nonce),
            report_data: hex::encode(binding),
            evidence: Some(line.kind.name()),
            malformed_lines: Vec::new(),
            repeated_lines: 0,
            event_log: None,
            verdict: Some(v),
        },
        result,
    ))
}
