//! `cvm launch`: boot a guest from the same `LaunchPlan` that `cvm measure` hashes.
//!
//! The command exists on every Linux host; where cvm has no backend for the host's
//! architecture it says so (platform unavailable) rather than vanishing from `--help`.
#![cfg_attr(
    not(target_arch = "x86_64"),
    allow(
        dead_code,
        unused_imports,
        reason = "the x86-64 launch path is compiled out"
    )
)]

use super::CmdResult;
use super::attest_launch::{LaunchReference, Session};
use super::plan_args::{self, PlanArgs};
use crate::error::CliError;
use crate::output::{Format, Render};
use crate::probe::{self, Arch, SystemDevices, Tee};
use crate::tee_arg::TeeChoice;
#[cfg(target_arch = "x86_64")]
use crate::vmm::{self, IrqChip, RunOptions};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `cvm launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The TEE: `auto` picks the strongest one `cvm probe` finds and fails when there is
    /// none (an unprotected VM is never chosen silently); `none` is a plain, unprotected
    /// KVM guest for development.
    #[arg(long, value_name = "TEE", default_value_t = TeeChoice::Auto,
          value_parser = crate::tee_arg::auto_or(&Tee::LAUNCHABLE))]
    pub tee: TeeChoice,
    /// The plan: the same options, meaning the same, as `cvm measure`'s. With neither
    /// --firmware nor --kernel, a plain guest boots cvm's built-in guest.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Where the guest's serial port (COM1) writes: `stdio`, `file:PATH` or `none`. With
    /// --format json, `stdio` means stderr, so that stdout carries only the result.
    #[arg(long, value_name = "DEST", default_value = "stdio", value_parser = parse_serial)]
    pub serial: SerialDest,
    /// Stop the guest after this long (`500ms`, `10s`, `2m`; a bare number is seconds;
    /// more than zero).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// The interrupt controllers: all in KVM (the default), or only the local APICs
    /// (split, what TDX needs and gets by default; cvm emulates the I/O APIC, and there
    /// is no PIC and no PIT).
    #[arg(long, value_enum)]
    pub irqchip: Option<IrqChipArg>,
    /// Emulate the 8254 PIT in KVM (`on`, the default, with the in-kernel irqchip) or not
    /// (`off`: for guests that need no PIT, such as the built-in guest and the test
    /// firmware).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off,
          action = clap::ArgAction::Set)]
    pub pit: bool,
    /// The chipset the firmware finds: QEMU's `q35` (ICH9, the default) or `pc`
    /// (i440FX): the PCI host bridge OVMF picks its platform by.
    #[arg(long, value_enum, default_value_t = MachineArg::Q35)]
    pub machine: MachineArg,
    /// Where the firmware's debug port (0x402, QEMU's isa-debugcon) writes.
    #[arg(long, value_name = "FILE")]
    pub firmware_log: Option<PathBuf>,
    /// Run the whole launch against cvm's model of KVM and the AMD Secure Processor
    /// instead of the hardware, on any host: report the measurement the hardware would
    /// take, and exit 0 only when the model accepted every step (SNP, SEV-ES, SEV).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: list every call the backend issued, in order (ioctl, GPA, length,
    /// page type).
    #[arg(long, requires = "dry_run")]
    pub explain: bool,
    /// SNP, SEV-ES, SEV: the guest policy, hex (default: SNP 0x30000, SEV-ES 0x5, SEV
    /// 0x1, QEMU's). A policy that lets the host debug the guest needs
    /// --insecure-allow-debug.
    #[arg(long = "guest-policy", value_name = "HEX", value_parser = plan_args::parse_hex_u64)]
    pub policy: Option<u64>,
    /// Accept a guest policy that lets the host decrypt the guest (SNP: DEBUG, bit 19;
    /// SEV, SEV-ES: NODBG, bit 0, clear). Never for production guests.
    #[arg(long)]
    pub insecure_allow_debug: bool,
    /// SNP: HOST_DATA, 32 bytes of hex, which the guest's attestation reports carry.
    #[arg(long, value_name = "HEX", value_parser = super::measure::parse_hex::<32>)]
    pub host_data: Option<[u8; 32]>,
    /// SNP: serve the certificates in DIR (the layout `cvm verify --certs` reads: `vcek`
    /// or `vlek`, `ask`, `ark`) to the guest's extended report requests (Linux 7.0+).
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// TDX: the quote generation service for the TD's GetQuote calls, `unix:PATH` or
    /// `vsock:CID:PORT` (Intel's QGS is usually at vsock:2:4050); without it the TD gets
    /// the QGS_UNAVAILABLE status.
    #[arg(long, value_name = "ADDR")]
    pub qgs: Option<vmm::tdx::qgs::QgsAddr>,
    /// TDX: the TD owner's registers, as `cvm measure --tee tdx` reports them.
    #[command(flatten)]
    pub td_owner: super::measure::TdOwnerArgs,
    /// SNP: sign an ID block for the plan's measurement at launch (the options of `cvm
    /// measure`; the block carries --guest-policy).
    #[command(flatten)]
    pub id: super::measure::IdBlockArgs,
    /// SNP: a signed ID block, base64 (QEMU's `id-block`, as `cvm measure --id-key`
    /// prints it), with --id-auth.
    #[arg(
        long,
        value_name = "BASE64",
        requires = "id_auth",
        conflicts_with = "id_key"
    )]
    pub id_block: Option<String>,
    /// With --id-block: its ID authentication information, base64 (QEMU's `id-auth`).
    #[arg(long, value_name = "BASE64", requires = "id_block")]
    pub id_auth: Option<String>,
    /// With --id-block: the author key in --id-auth signed the ID key (QEMU's
    /// `author-key-enabled`).
    #[arg(long, requires = "id_block")]
    pub author_key_enabled: bool,
    /// `--attest` and its verification options.
    #[command(flatten)]
    pub attest: super::attest_launch::AttestArgs,
    /// CCA: the host's capabilities (what the model's RMM offers with --dry-run).
    #[command(flatten)]
    pub realm: super::measure_cca::RealmArgs,
}

/// Every launchable TEE but CCA: the options of the x86 VMM and of x86 evidence.
const NOT_CCA: &[Tee] = &[Tee::Snp, Tee::Tdx, Tee::SevEs, Tee::Sev, Tee::None];

/// The TEEs cvm models for `--dry-run`.
const MODELLED: &[Tee] = &[Tee::Snp, Tee::SevEs, Tee::Sev, Tee::Tdx, Tee::Cca];

/// Guest RAM of a plain guest when `--memory` is not given.
const DEFAULT_PLAIN_MEMORY: u64 = 128 << 20;

/// Guest RAM of an SNP, SEV-ES or SEV guest when `--memory` is not given (OVMF and a
/// distribution kernel boot in it).
const DEFAULT_SEV_MEMORY: u64 = 512 << 20;

/// The most vCPUs of a plain guest: the local APIC IDs xAPIC mode can address.
const MAX_PLAIN_VCPUS: u32 = 255;

/// The most guest RAM: one memory slot of KVM_MEM_MAX_NR_PAGES ((1 << 31) - 1) 4 KiB
/// pages (include/linux/kvm_host.h), rounded down to a GiB.
const MAX_MEMORY: u64 = 8 << 40;

/// `--memory` within what cvm maps in its one memory slot.
fn check_memory(memory: u64) -> Result<(), CliError> {
    if memory > MAX_MEMORY - (1 << 30) {
        return Err(CliError::Usage(format!(
            "--memory {memory} is more than KVM maps in one memory slot (at most {} GiB)",
            (MAX_MEMORY >> 30) - 1
        )));
    }
    Ok(())
}

pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("a timeout of zero would stop the guest before it starts".into());
    }
    Ok(d)
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

/// `--machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MachineArg {
    /// QEMU's q35.
    Q35,
    /// QEMU's pc (i440FX).
    Pc,
}

/// `--irqchip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IrqChipArg {
    /// PIC, I/O APIC, local APICs and PIT in KVM.
    InKernel,
    /// Local APICs in KVM, the I/O APIC in cvm.
    Split,
}

/// `--serial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialDest {
    /// stdout (stderr in JSON mode).
    Stdio,
    /// A file, created or truncated.
    File(PathBuf),
    /// Discarded.
    None,
}

fn parse_serial(s: &str) -> Result<SerialDest, String> {
    match s {
        "stdio" => Ok(SerialDest::Stdio),
        "none" => Ok(SerialDest::None),
        _ => match s.strip_prefix("file:") {
            Some(p) if !p.is_empty() => Ok(SerialDest::File(PathBuf::from(p))),
            _ => Err("expected stdio, file:PATH or none".into()),
        },
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is longer than cvm can wait"))
}

/// What `cvm launch` reports.
#[derive(Debug, Serialize)]
pub struct LaunchReport {
    /// The TEE.
    pub tee: &'static str,
    /// Whether the launch ran against cvm's model instead of the hardware.
    pub dry_run: bool,
    /// Whether the guest was protected from the host.
    pub protected: bool,
    /// `built-in`, `firmware` or `kernel`.
    pub boot: &'static str,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Whether KVM emulated the PIT.
    pub pit: bool,
    /// The launch measurement the hardware takes (SNP: SHA-384; SEV-ES, SEV: SHA-256),
    /// lower-case hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    /// SEV, SEV-ES on the hardware: LAUNCH_MEASURE's answer, MEASURE (HMAC-SHA-256 under
    /// the launch's TIK) and MNONCE, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_measure: Option<String>,
    /// Why the VM stopped (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopReport>,
    /// Time from the first vCPU start to the stop, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// Port and MMIO accesses that reached no device (ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_accesses: Option<u64>,
    /// TDX dry run: MRTD as the TDX module computes it, lower-case hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mrtd: Option<String>,
    /// TDX dry run: the RTMRs `cvm measure` expects for the plan. The firmware extends
    /// them at boot, not the host: a model of the launch cannot confirm them (but for
    /// a firmware that extends none, whose RTMRs stay zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmr_expected_from_plan: Option<[Option<String>; 4]>,
    /// `--attest`: the nonce, the evidence and the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attest: Option<super::attest_launch::AttestReport>,
    /// TDX: the edk2 recipe the RTMRs follow, and how it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdvf_recipe: Option<cvm_firmware::edk2::Detected>,
    /// A dry run: what the model does not check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmodelled: Option<&'static [&'static str]>,
    /// A dry run with --explain: every call the backend issued, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<Vec<crate::vmm::sev::model::Issued>>,
}

/// Why the VM stopped.
#[derive(Debug, Serialize)]
pub struct StopReport {
    /// `debug-exit`, `reset`, `triple-fault`, `timeout`, `signal`, `internal-error`, ...
    pub reason: &'static str,
    /// The guest's exit status, when it stopped by itself.
    pub guest_status: Option<u8>,
    /// One line for people.
    pub message: String,
}

impl Render for LaunchReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.dry_run {
            for i in self.issued.iter().flatten() {
                writeln!(
                    out,
                    "{:<44} {:>14} {:>12} {:<10}{}",
                    i.ioctl,
                    i.gpa.as_deref().unwrap_or(""),
                    i.len.as_deref().unwrap_or(""),
                    i.page_type.unwrap_or(""),
                    i.error
                        .as_deref()
                        .map(|e| format!(" refused: {e}"))
                        .unwrap_or_default()
                )?;
            }
            if let Some(rtmr) = &self.rtmr_expected_from_plan {
                for (i, r) in rtmr.iter().enumerate() {
                    if let Some(r) = r {
                        writeln!(out, "rtmr{i} (the plan's, extended by the firmware): {r}")?;
                    }
                }
            }
            self.render_attest(out)?;
            let digest = match (&self.measurement, &self.mrtd) {
                (Some(m), _) => Some(("measurement", m)),
                (None, Some(m)) => Some(("mrtd", m)),
                _ => None,
            };
            return match digest {
                Some((what, m)) => writeln!(
                    out,
                    "cvm: dry run: the model accepted every step of the {} launch; {what} {m}",
                    self.tee
                ),
                None => writeln!(
                    out,
                    "cvm: dry run: the model refused the {} launch",
                    self.tee
                ),
            };
        }
        let Some(stop) = &self.stop else {
            return Ok(());
        };
        self.render_attest(out)?;
        writeln!(
            out,
            "cvm: {} after {:.1} ms ({}, {} MiB{}{})",
            stop.message,
            self.elapsed_ms.unwrap_or_default(),
            crate::output::count(u64::from(self.vcpus), "vCPU", "vCPUs"),
            self.memory >> 20,
            if self.protected { "" } else { ", unprotected" },
            if let Some(n) = self.unknown_accesses.filter(|&n| n > 0) {
                format!(
                    ", {} to no device ignored",
                    crate::output::count(n, "access", "accesses")
                )
            } else {
                String::new()
            }
        )
    }
}

impl LaunchReport {
    /// `--attest`'s nonce and verdict, as text.
    fn render_attest(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(a) = &self.attest {
            writeln!(out, "nonce:   {}", a.nonce)?;
            match &a.verdict {
                Some(v) => v.render_text(out)?,
                None => writeln!(out, "verdict: none (no evidence)")?,
            }
        }
        Ok(())
    }
}

/// Runs `cvm launch`.
pub fn run(args: &LaunchArgs, format: Format) -> CmdResult {
    if args.tee == TeeChoice::Tee(Tee::Cca) {
        return super::launch_cca::run(args, format);
    }
    super::reported(launch(args, format))
}

fn probe_host() -> probe::ProbeReport {
    probe::assess(&probe::gather(
        Path::new("/"),
        Arch::current(),
        &SystemDevices,
    ))
}

/// Refuses the options that do not apply to a `tee` launch, and checks the plain
/// guest's limits.
pub(super) fn check_options(args: &LaunchArgs, tee: Tee) -> Result<(), CliError> {
    let mut given = args.plan.given();
    given.extend(plan_args::given(&[
        ("--memory", args.plan.memory.is_some(), &Tee::LAUNCHABLE),
        ("--dry-run", args.dry_run, MODELLED),
        ("--guest-policy", args.policy.is_some(), plan_args::SEV),
        (
            "--insecure-allow-debug",
            args.insecure_allow_debug,
            &[Tee::Snp, Tee::SevEs, Tee::Sev, Tee::Tdx],
        ),
        ("--host-data", args.host_data.is_some(), plan_args::SNP),
        ("--id-key", args.id.id_key.is_some(), plan_args::SNP),
        ("--qgs", args.qgs.is_some(), plan_args::TDX),
        // With --attest, --certs also verifies the evidence, of any launch.
        (
            "--certs",
            args.certs.is_some() && !args.attest.attest,
            plan_args::SNP,
        ),
        ("--certs", args.certs.is_some(), NOT_CCA),
        ("--id-block", args.id_block.is_some(), plan_args::SNP),
        ("--cpak", !args.attest.cpak.is_empty(), plan_args::CCA),
        ("--tastore", !args.attest.tastore.is_empty(), plan_args::CCA),
        // A realm needs KVM's GICv3, writes no firmware log, and its token is verified
        // with --cpak or --tastore.
        ("--irqchip", args.irqchip.is_some(), NOT_CCA),
        ("--firmware-log", args.firmware_log.is_some(), NOT_CCA),
        ("--crl", args.attest.crl.is_some(), NOT_CCA),
        ("--no-crl", args.attest.no_crl, NOT_CCA),
        ("--root", !args.attest.root.is_empty(), NOT_CCA),
        ("--collateral", args.attest.collateral.is_some(), NOT_CCA),
    ]));
    given.extend(args.td_owner.given());
    given.extend(args.realm.given());
    plan_args::refuse_inapplicable(tee, &Tee::LAUNCHABLE, &given)?;
    if tee == Tee::Tdx && args.irqchip == Some(IrqChipArg::InKernel) {
        return Err(CliError::Usage(
            "--irqchip in-kernel: a TD needs the split irqchip (KVM emulates no I/O APIC or \
             PIC for TDs)"
                .into(),
        ));
    }
    if args.plan.vmm != plan_args::Vmm::Qemu {
        return Err(CliError::Usage(format!(
            "--vmm {}: cvm launches QEMU's layout, register for register; the other VMMs' \
             layouts are for 'cvm measure'",
            clap::ValueEnum::to_possible_value(&args.plan.vmm)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default()
        )));
    }
    args.plan.check_boot(tee)?;
    if let Some(memory) = args.plan.memory {
        check_memory(memory)?;
    }
    if tee == Tee::None && args.plan.vcpus > MAX_PLAIN_VCPUS {
        return Err(CliError::Usage(format!(
            "--vcpus {}: a plain guest has at most {MAX_PLAIN_VCPUS} (the local APIC IDs \
             xAPIC mode can address)",
            args.plan.vcpus
        )));
    }
    let builtin = args.plan.firmware.is_none() && args.plan.kernel.is_none();
    if tee == Tee::None && builtin && args.plan.vcpus > cvm_firmware::x86::MPTABLE_MAX_VCPUS {
        return Err(CliError::Usage(format!(
            "the built-in guest finds its vCPUs in the MP table, which lists at most {}; \
             --vcpus {} needs a kernel (--kernel), which reads ACPI's MADT",
            cvm_firmware::x86::MPTABLE_MAX_VCPUS,
            args.plan.vcpus
        )));
    }
    Ok(())
}

/// The TEE to launch: `--tee` as given, or for `auto` what `cvm probe` finds; once its
/// options are checked, and only if cvm has a launch backend for it on this host. The
/// host is probed at most once.
fn choose(args: &LaunchArgs) -> Result<Tee, CliError> {
    let probed = std::cell::OnceCell::new();
    let host = || probed.get_or_init(probe_host);
    let tee = match args.tee {
        TeeChoice::Tee(t) => t,
        TeeChoice::Auto if args.dry_run => {
            return Err(CliError::Usage(
                "--dry-run needs the TEE to model: --tee snp, sev-es, sev, tdx or cca".into(),
            ));
        }
        TeeChoice::Auto => host().best_confidential().ok_or_else(|| {
            CliError::PlatformUnavailable(
                "--tee auto: this host has no TEE cvm can launch ('cvm probe' says why); \
                 use --tee none for an unprotected development VM"
                    .into(),
            )
        })?,
    };
    check_options(args, tee)?;
    if tee == Tee::None || args.dry_run {
        // A dry run launches against the model, not this host.
        return Ok(tee);
    }
    match host().status(tee) {
        Some(st) if !st.available => Err(CliError::PlatformUnavailable(format!(
            "{tee} is not available on this host: {}",
            st.reason.as_deref().unwrap_or("see 'cvm probe'")
        ))),
        Some(_) if MODELLED.contains(&tee) => Ok(tee),
        _ => Err(CliError::PlatformUnavailable(format!(
            "cvm's {tee} launch backend is not built yet"
        ))),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn launch(
    args: &LaunchArgs,
    _format: Format,
) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    if choose(args)? == Tee::Cca {
        return Err(CliError::Usage(
            "--tee auto found Arm CCA: launch realms with --tee cca (their options differ)".into(),
        ));
    }
    Err(CliError::PlatformUnavailable(format!(
        "cvm's VMM launches x86-64 guests, and Arm CCA realms with --tee cca; this host is {}",
        std::env::consts::ARCH
    )))
}

#[cfg(target_arch = "x86_64")]
fn launch(
    args: &LaunchArgs,
    format: Format,
) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    // Refused before the host is asked whether it has the TEE at all.
    if let TeeChoice::Tee(tee @ (Tee::Sev | Tee::SevEs)) = args.tee
        && args.attest.attest
    {
        return Err(CliError::Usage(format!(
            "--attest needs evidence a guest can send: --tee {tee} guests have no attestation \
             reports (SNP and TDX do)"
        )));
    }
    let tee = choose(args)?;
    if args.dry_run && args.attest.attest && tee == Tee::Tdx && args.qgs.is_none() {
        return Err(CliError::Usage(
            "--tee tdx --dry-run --attest needs --qgs: the quote generation service that \
             turns the model's TDREPORT into a quote"
                .into(),
        ));
    }
    if args.dry_run && args.attest.attest && !matches!(tee, Tee::Snp | Tee::Tdx) {
        return Err(CliError::Usage(format!(
            "--dry-run --attest: the models attest SNP and TDX launches, not --tee {tee}"
        )));
    }
    if args.dry_run && tee == Tee::Tdx {
        return tdx_dry_run(args);
    }
    if args.dry_run {
        return dry_run(args, tee);
    }
    if tee == Tee::Tdx {
        return with_tdx_plan(args, |plan, backend, memory| {
            let platform = platform(args);
            let (outcome, session) = run_on_kvm(args, format, tee, plan, Box::new(backend))?;
            let ran = run_report(args, tee, boot_name(args), memory, &platform, outcome);
            attested(args, tee, plan, ran, session)
        });
    }
    if tee != Tee::None {
        return confidential(args, tee, format);
    }
    tracing::warn!("--tee none: the guest is NOT protected from the host (a plain KVM VM)");

    let plan_args = &args.plan;
    let firmware = plan_args.read_firmware()?;
    let mut files = plan_args.read_others()?;
    let boot_name = boot_name(args);
    if firmware.is_none() && files.kernel.is_none() {
        files.kernel = Some(crate::guest::BUILTIN_GUEST.to_vec().into());
    }
    let inputs = plan_args.inputs(Tee::None, firmware.as_deref(), &files, DEFAULT_PLAIN_MEMORY)?;
    let images = inputs.parse().map_err(|e| plan_args.blame(tee, e))?;
    let plan = inputs.plan(&images).map_err(|e| plan_args.blame(tee, e))?;
    super::log_plan(&plan);

    let platform = platform(args);
    let (outcome, session) = run_on_kvm(
        args,
        format,
        Tee::None,
        &plan,
        Box::new(vmm::none::NoneBackend),
    )?;
    let memory = plan_args.memory.unwrap_or(DEFAULT_PLAIN_MEMORY);
    let ran = run_report(args, Tee::None, boot_name, memory, &platform, outcome);
    attested(args, Tee::None, &plan, ran, session)
}

/// The report's `boot`: `firmware`, `firmware+kernel` (the firmware boots the kernel it
/// reads through fw_cfg), `kernel` (cvm loads it) or `built-in`.
fn boot_name(args: &LaunchArgs) -> &'static str {
    match (&args.plan.firmware, &args.plan.kernel) {
        (Some(_), None) => "firmware",
        (Some(_), Some(_)) => "firmware+kernel",
        (None, Some(_)) => "kernel",
        (None, None) => "built-in",
    }
}

/// Runs `plan` with `backend` on KVM, with the serial port, timeout and platform of
/// `args`, until the guest stops; with `--attest`, serving the nonce and watching the
/// console for the evidence.
#[cfg(target_arch = "x86_64")]
fn run_on_kvm(
    args: &LaunchArgs,
    format: Format,
    tee: Tee,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    backend: Box<dyn vmm::backend::Backend>,
) -> Result<(vmm::Outcome, Option<Session>), CliError> {
    use super::attest_launch::AfterAttest;
    let platform = platform(args);
    let session = args
        .attest
        .attest
        .then(|| Session::new(&args.attest))
        .transpose()?;
    let served = session.as_ref().map(|s| s.serve(plan));
    let options = |arrived| -> Result<RunOptions, CliError> {
        Ok(RunOptions {
            serial: serial_out(&args.serial, format)?,
            timeout: args.timeout,
            irqchip: platform.irqchip,
            pit: platform.pit,
            machine: match args.machine {
                MachineArg::Q35 => vmm::platform::Machine::Q35,
                MachineArg::Pc => vmm::platform::Machine::Pc,
            },
            firmware_log: match &args.firmware_log {
                Some(p) => Some(Box::new(std::fs::File::create(p).map_err(|e| {
                    CliError::Usage(format!(
                        "cannot create the firmware log {}: {e}",
                        p.display()
                    ))
                })?)),
                None => None,
            },
            attest: session.as_ref().map(|s| s.watch(&args.attest, arrived)),
        })
    };
    let launched = served.as_ref().unwrap_or(plan);
    let run = |opts| vmm::run(launched, backend, opts).map_err(CliError::Launch);
    let outcome = match &session {
        // --after-attest run: the verdict as soon as the evidence is in, while the guest
        // runs on (said on stderr; the report at the end carries it).
        Some(s) if args.attest.after_attest == AfterAttest::Run => {
            let (tx, rx) = std::sync::mpsc::channel();
            let opts = options(Some(tx))?;
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    if rx.recv().is_ok() {
                        let v = super::attest_launch::verdict(
                            &args.attest,
                            args.certs.as_deref(),
                            tee,
                            s,
                            &launch_reference(args, tee, plan),
                        );
                        if let Ok((_, result)) = &v {
                            use std::io::Write as _;
                            let said = match result {
                                Ok(()) => "pass".to_owned(),
                                Err(e) => format!("fail: {e}"),
                            };
                            let _ = writeln!(
                                std::io::stderr(),
                                "cvm: attestation verdict: {said} (the guest runs on)"
                            );
                        }
                        s.set_early(v);
                    }
                });
                run(opts)
            })?
        }
        _ => run(options(None)?)?,
    };
    Ok((outcome, session))
}

/// The reference values a launch of `plan` determines, for `--attest`.
#[cfg(target_arch = "x86_64")]
fn launch_reference(
    args: &LaunchArgs,
    tee: Tee,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
) -> LaunchReference {
    let measured = cvm_firmware::launch::measure(plan, &Default::default()).ok();
    match (tee, measured) {
        (Tee::Snp, Some(cvm_firmware::launch::LaunchMeasurement::Sev(m))) => LaunchReference {
            snp_measurement: m.digest.try_into().ok(),
            host_data: Some(args.host_data.unwrap_or_default()),
            tdx: None,
        },
        (Tee::Tdx, Some(cvm_firmware::launch::LaunchMeasurement::Tdx(m))) => {
            let mut log = cvm_firmware::measure::tdx::EventLog::of(&m);
            let [config_id, owner, owner_config] = args.td_owner.values();
            log.values.mr_config_id = Some(cvm_firmware::reference::Hex(config_id));
            log.values.mr_owner = Some(cvm_firmware::reference::Hex(owner));
            log.values.mr_owner_config = Some(cvm_firmware::reference::Hex(owner_config));
            LaunchReference {
                snp_measurement: None,
                host_data: None,
                tdx: Some(log),
            }
        }
        _ => LaunchReference {
            snp_measurement: None,
            host_data: None,
            tdx: None,
        },
    }
}

/// The report of a launch that ran, with `--attest`'s verdict: the exit code is the
/// verdict's when it fails, and the launch's otherwise.
#[cfg(target_arch = "x86_64")]
fn attested(
    args: &LaunchArgs,
    tee: Tee,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    (mut report, result): (LaunchReport, Result<(), CliError>),
    session: Option<Session>,
) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    let Some(session) = session else {
        return Ok((report, result));
    };
    let reference = launch_reference(args, tee, plan);
    let (attest, verdict) = match session.take_early() {
        Some(early) => early?,
        None => super::attest_launch::verdict(
            &args.attest,
            args.certs.as_deref(),
            tee,
            &session,
            &reference,
        )?,
    };
    report.attest = Some(attest);
    Ok((report, verdict.and(result)))
}

/// An SNP, SEV-ES or SEV guest on the hardware.
#[cfg(target_arch = "x86_64")]
fn confidential(
    args: &LaunchArgs,
    tee: Tee,
    format: Format,
) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    with_sev_plan(args, tee, |plan, backend, memory| {
        let platform = platform(args);
        let (outcome, session) = run_on_kvm(args, format, tee, plan, Box::new(backend))?;
        let ran = run_report(args, tee, boot_name(args), memory, &platform, outcome);
        attested(args, tee, plan, ran, session)
    })
}

/// The report of a launch that ran, and its result: success only when the guest
/// stopped itself with status 0.
#[cfg(target_arch = "x86_64")]
fn run_report(
    args: &LaunchArgs,
    tee: Tee,
    boot: &'static str,
    memory: u64,
    platform: &vmm::backend::PlatformOptions,
    outcome: vmm::Outcome,
) -> (LaunchReport, Result<(), CliError>) {
    let status = outcome.reason.guest_status();
    let result = if status == Some(0) || outcome.reason == vmm::StopReason::Attested {
        Ok(())
    } else {
        Err(CliError::GuestExit(outcome.reason.to_string()))
    };
    let report = LaunchReport {
        tee: tee.name(),
        dry_run: false,
        protected: tee != Tee::None,
        boot,
        memory,
        vcpus: args.plan.vcpus,
        pit: platform.pit,
        measurement: None,
        mrtd: None,
        rtmr_expected_from_plan: None,
        tdvf_recipe: None,
        attest: None,
        launch_measure: outcome.launch_measure.as_deref().map(hex::encode),
        stop: Some(StopReport {
            reason: outcome.reason.kind(),
            guest_status: status,
            message: outcome.reason.to_string(),
        }),
        elapsed_ms: Some(outcome.elapsed.as_secs_f64() * 1000.0),
        unknown_accesses: Some(outcome.unknown_accesses),
        unmodelled: None,
        issued: None,
    };
    (report, result)
}

/// The SEV-family launch options: the policy (QEMU's default per TEE), refusing one that
/// lets the host debug the guest unless asked for by name, and HOST_DATA.
#[cfg(target_arch = "x86_64")]
fn sev_launch(args: &LaunchArgs, tee: Tee) -> Result<vmm::sev::SevLaunch, CliError> {
    use vmm::sev::{SEV_POLICY_NODBG, SNP_POLICY_DEBUG};
    let policy = args.policy.unwrap_or(match tee {
        Tee::Snp => cvm_firmware::sev::id_block::DEFAULT_POLICY,
        Tee::SevEs => 0x5,
        _ => 0x1,
    });
    let debug = match tee {
        Tee::Snp => (policy & SNP_POLICY_DEBUG != 0).then_some("DEBUG, bit 19, is set"),
        _ => (policy & u64::from(SEV_POLICY_NODBG) == 0).then_some("NODBG, bit 0, is clear"),
    };
    if let Some(why) = debug {
        if !args.insecure_allow_debug {
            return Err(CliError::Usage(format!(
                "--guest-policy {policy:#x} lets the host debug (decrypt) the guest ({why}); \
                 add --insecure-allow-debug if that is really wanted"
            )));
        }
        tracing::warn!("guest policy {policy:#x}: the host can decrypt this guest ({why})");
    }
    Ok(vmm::sev::SevLaunch {
        policy,
        host_data: args.host_data.unwrap_or_default(),
        id_block: None,
        certs: args.certs.as_deref().map(cert_table).transpose()?,
    })
}

/// `--tee tdx --dry-run`: the whole TD launch through the real TDX backend, against the
/// model of KVM and the TDX module; the model's MRTD must be the plan's.
#[cfg(target_arch = "x86_64")]
fn tdx_dry_run(args: &LaunchArgs) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    with_tdx_plan(args, |plan, backend, memory| {
        tdx_dry_run_plan(args, plan, backend, memory)
    })
}

/// Builds the TDX plan and its backend from the command line, and hands them (with the
/// guest RAM size) to `f`.
#[cfg(target_arch = "x86_64")]
fn with_tdx_plan<T>(
    args: &LaunchArgs,
    f: impl FnOnce(
        &cvm_firmware::plan::LaunchPlan<'_>,
        vmm::tdx::TdxBackend,
        u64,
    ) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let plan_args = &args.plan;
    let firmware = plan_args.read_firmware()?;
    let files = plan_args.read_others()?;
    let memory = plan_args
        .memory
        .unwrap_or(super::measure_tdx::DEFAULT_MEMORY);
    let inputs = plan_args.inputs(Tee::Tdx, firmware.as_deref(), &files, memory)?;
    let images = inputs.parse().map_err(|e| plan_args.blame(Tee::Tdx, e))?;
    let plan = inputs
        .plan(&images)
        .map_err(|e| plan_args.blame(Tee::Tdx, e))?;
    super::log_plan(&plan);
    let [mrconfigid, mrowner, mrownerconfig] = args.td_owner.values();
    let mut attributes = vmm::tdx::ATTR_SEPT_VE_DISABLE;
    if args.insecure_allow_debug {
        tracing::warn!("--insecure-allow-debug: the TD's DEBUG attribute lets the host read it");
        attributes |= vmm::tdx::ATTR_DEBUG;
    }
    let launch = vmm::tdx::TdxLaunch {
        attributes,
        mrconfigid,
        mrowner,
        mrownerconfig,
        qgs: args.qgs.clone(),
    };
    let backend = vmm::tdx::TdxBackend::new(&plan, launch).map_err(CliError::Launch)?;
    f(&plan, backend, memory)
}

#[cfg(target_arch = "x86_64")]
fn tdx_dry_run_plan(
    args: &LaunchArgs,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    mut backend: vmm::tdx::TdxBackend,
    memory: u64,
) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    use vmm::tdx::model::{TdxModel, UNMODELLED};
    let mut model = TdxModel::default();
    let platform = platform(args);
    let launched = vmm::setup(&mut model, &mut backend, plan, &platform);
    let planned = match cvm_firmware::launch::measure(plan, &Default::default()) {
        Ok(cvm_firmware::launch::LaunchMeasurement::Tdx(m)) => Some(m),
        _ => None,
    };
    let measured = model.mrtd();
    let result = dry_result(
        launched,
        measured.as_ref().map(|m| &m[..]),
        planned.as_ref().map(|p| &p.mrtd[..]),
        "MRTD",
    );
    let launched_ok = result.is_ok();
    let (attest, result) = match (args.attest.attest, result) {
        (true, Ok(())) => {
            let (a, verdict) = tdx_dry_attest(args, plan, &model)?;
            (Some(a), verdict)
        }
        (_, r) => (None, r),
    };
    let report = LaunchReport {
        mrtd: launched_ok.then(|| measured.map(hex::encode)).flatten(),
        tdvf_recipe: plan.tdx().map(|t| t.tdvf.clone()),
        rtmr_expected_from_plan: planned
            .filter(|_| launched_ok)
            .map(|p| p.rtmr.map(|r| r.map(hex::encode))),
        attest,
        ..dry_report(
            args,
            Tee::Tdx,
            memory,
            &platform,
            UNMODELLED,
            model.issued(),
        )
    };
    Ok((report, result))
}

/// `--tee tdx --dry-run --attest`: what the TD does, against the model's TDX module and
/// the QGS at `--qgs`: TDG.MR.REPORT with REPORTDATA bound to the nonce, the TDREPORT sent
/// in a GetQuote request (the QGS message code the backend forwards a TD's GetQuote
/// with), and the quote verified as for a real launch. The model runs no firmware, so its
/// report's RTMRs are zero: the verdict compares them only for a firmware that extends
/// none (the attesting guest), whose plan predicts zero.
#[cfg(target_arch = "x86_64")]
fn tdx_dry_attest(
    args: &LaunchArgs,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    model: &vmm::tdx::model::TdxModel,
) -> Result<(super::attest_launch::AttestReport, Result<(), CliError>), CliError> {
    use base64::Engine as _;
    let step =
        |what: &'static str| move |e: String| CliError::Launch(vmm::LaunchError::Step(what, e));
    let qgs = args.qgs.as_ref().ok_or_else(|| {
        CliError::Usage(
            "--tee tdx --dry-run --attest needs --qgs: the quote generation service that \
             turns the model's TDREPORT into a quote"
                .into(),
        )
    })?;
    let session = Session::new(&args.attest)?;
    let report = model
        .tdg_mr_report(&cvm_attest::exchange::report_data(&session.nonce))
        .ok_or_else(|| step("TDG.MR.REPORT")("the TD is not finalized".into()))?;
    let quote = vmm::tdx::qgs::get_quote(qgs, &report[..], Duration::from_secs(30))
        .map_err(|e| step("get a quote from the QGS")(e.to_string()))?;
    let line = format!(
        "CVM-EVIDENCE 1 tdx {}",
        base64::engine::general_purpose::STANDARD.encode(&quote)
    );
    let mut watch = session.watch(&args.attest, None);
    (watch.on_line)(cvm_attest::exchange::parse_line(line.as_bytes()));
    let mut reference = launch_reference(args, Tee::Tdx, plan);
    if let Some(t) = reference.tdx.as_mut()
        && plan.tdx().is_none_or(|p| p.extends_rtmrs)
    {
        t.values.rtmr = [None; 4];
    }
    super::attest_launch::verdict(&args.attest, None, Tee::Tdx, &session, &reference)
}

/// `--certs DIR` as the GHCB certificate table: the leaf (VCEK or VLEK), ASK and ARK, in
/// DER. The table has no entry for an ASVK, which is left out with a warning.
#[cfg(target_arch = "x86_64")]
fn cert_table(dir: &Path) -> Result<Vec<u8>, CliError> {
    use cvm_attest::snp::cert_table::{Kind, build};
    let certs = super::verify::read_certs(dir)?;
    if certs.asvk.is_some() {
        tracing::warn!(
            "{}: the SNP certificate table has no ASVK entry; serving the others",
            dir.display()
        );
    }
    let mut entries = Vec::new();
    for (kind, cert) in [
        (Kind::Vcek, &certs.vcek),
        (Kind::Vlek, &certs.vlek),
        (Kind::Ask, &certs.ask),
        (Kind::Ark, &certs.ark),
    ] {
        if let Some(c) = cert {
            entries.push((kind, c.der()));
        }
    }
    if certs.vcek.is_none() && certs.vlek.is_none() {
        return Err(CliError::Usage(format!(
            "--certs {}: no vcek or vlek certificate to serve",
            dir.display()
        )));
    }
    build(&entries).map_err(|e| CliError::Usage(format!("--certs {}: {e}", dir.display())))
}

/// `--dry-run`: the whole launch of the plan through the real backend, against the model
/// of KVM and the AMD-SP; the model's digest must be the plan's measurement.
#[cfg(target_arch = "x86_64")]
fn dry_run(args: &LaunchArgs, tee: Tee) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    with_sev_plan(args, tee, |plan, backend, memory| {
        dry_run_plan(args, tee, plan, backend, memory)
    })
}

/// Builds the SNP, SEV-ES or SEV plan and its backend from the command line, and hands
/// them (with the guest RAM size) to `f`.
#[cfg(target_arch = "x86_64")]
fn with_sev_plan<T>(
    args: &LaunchArgs,
    tee: Tee,
    f: impl FnOnce(
        &cvm_firmware::plan::LaunchPlan<'_>,
        vmm::sev::SevBackend,
        u64,
    ) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let plan_args = &args.plan;
    let launch = sev_launch(args, tee)?;
    let firmware = plan_args.read_firmware()?;
    let files = plan_args.read_others()?;
    let memory = plan_args.memory.unwrap_or(DEFAULT_SEV_MEMORY);
    let inputs = plan_args.inputs(tee, firmware.as_deref(), &files, memory)?;
    let images = inputs.parse().map_err(|e| plan_args.blame(tee, e))?;
    let plan = inputs.plan(&images).map_err(|e| plan_args.blame(tee, e))?;
    super::log_plan(&plan);
    let mut launch = launch;
    launch.id_block = id_block(args, &plan, launch.policy)?;
    let backend = vmm::sev::SevBackend::new(&plan, launch).map_err(CliError::Launch)?;
    f(&plan, backend, memory)
}

/// The ID block for SNP_LAUNCH_FINISH: signed now for the plan's measurement
/// (--id-key), or given signed (--id-block, --id-auth).
#[cfg(target_arch = "x86_64")]
fn id_block(
    args: &LaunchArgs,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    policy: u64,
) -> Result<Option<vmm::sev::IdBlockInput>, CliError> {
    use base64::Engine as _;
    if let Some(mut signer) = super::measure::IdSigner::from_args(&args.id, policy)? {
        let digest = match cvm_firmware::launch::measure(plan, &Default::default()) {
            Ok(cvm_firmware::launch::LaunchMeasurement::Sev(m)) => m.digest,
            Ok(_) => return Err(CliError::Usage("--id-key: not an SNP plan".into())),
            Err(e) => return Err(args.plan.blame(Tee::Snp, e)),
        };
        let signed = signer.sign(&digest)?;
        return Ok(Some(vmm::sev::IdBlockInput {
            block: signed.id_block,
            auth: signed.id_auth,
            author_key: signed.author_key_digest.is_some(),
        }));
    }
    let (Some(block), Some(auth)) = (&args.id_block, &args.id_auth) else {
        return Ok(None);
    };
    let decode = |flag: &str, b64: &str, len: usize| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| CliError::Usage(format!("{flag}: not base64: {e}")))?;
        if bytes.len() != len {
            return Err(CliError::Usage(format!(
                "{flag}: {} bytes; an SNP {} is {len}",
                bytes.len(),
                if len == 96 {
                    "ID block"
                } else {
                    "ID authentication structure"
                }
            )));
        }
        Ok(bytes)
    };
    let block = decode("--id-block", block, 96)?;
    let auth = decode("--id-auth", auth, 4096)?;
    let mut b = [0u8; 96];
    b.copy_from_slice(&block);
    let mut a = Box::new([0u8; 4096]);
    a.copy_from_slice(&auth);
    Ok(Some(vmm::sev::IdBlockInput {
        block: b,
        auth: a,
        author_key: args.author_key_enabled,
    }))
}

#[cfg(target_arch = "x86_64")]
fn platform(args: &LaunchArgs) -> vmm::backend::PlatformOptions {
    let irqchip = irqchip(args);
    vmm::backend::PlatformOptions {
        irqchip,
        // KVM's PIT needs the in-kernel irqchip.
        pit: args.pit && irqchip == IrqChip::InKernel,
    }
}

/// `--irqchip`, defaulting to split for TDX (which needs it) and in-kernel otherwise.
#[cfg(target_arch = "x86_64")]
fn irqchip(args: &LaunchArgs) -> IrqChip {
    match (args.irqchip, args.tee) {
        (Some(IrqChipArg::Split), _) | (None, TeeChoice::Tee(Tee::Tdx)) => IrqChip::Split,
        _ => IrqChip::InKernel,
    }
}

#[cfg(target_arch = "x86_64")]
fn dry_run_plan(
    args: &LaunchArgs,
    tee: Tee,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    mut backend: vmm::sev::SevBackend,
    memory: u64,
) -> Result<(LaunchReport, Result<(), CliError>), CliError> {
    use vmm::sev::model::{ModelHost, SevModel, UNMODELLED};
    let mut model = SevModel::new(ModelHost::default());
    let platform = platform(args);
    let launched = vmm::setup(&mut model, &mut backend, plan, &platform);
    let measured = model.launch_digest();
    let planned = match cvm_firmware::launch::measure(plan, &Default::default()) {
        Ok(cvm_firmware::launch::LaunchMeasurement::Sev(m)) => Some(m.digest),
        _ => None,
    };
    let result = dry_result(
        launched,
        measured.as_deref(),
        planned.as_deref(),
        "measurement",
    );
    // --attest: play the guest against the model's firmware, with the guest-message code
    // a guest uses, and verify what it answers.
    let (attest, result) = match (args.attest.attest, result) {
        (true, Ok(())) => {
            let (a, verdict) = dry_attest(args, tee, plan, &mut model)?;
            (Some(a), verdict)
        }
        (_, r) => (None, r),
    };
    let report = LaunchReport {
        measurement: measured
            .as_deref()
            .map(hex::encode)
            .filter(|_| launched_ok(&attest, &result)),
        attest,
        ..dry_report(args, tee, memory, &platform, UNMODELLED, model.issued())
    };
    Ok((report, result))
}

/// Whether a dry run's launch went through (its verdict may still have failed).
#[cfg(target_arch = "x86_64")]
fn launched_ok(
    attest: &Option<super::attest_launch::AttestReport>,
    result: &Result<(), CliError>,
) -> bool {
    attest.is_some() || result.is_ok()
}

/// `--dry-run --attest` for SNP: what the attesting guest does, against the model's
/// firmware. The guest reads VMPCK0 from its secrets page, sends MSG_REPORT_REQ with
/// REPORT_DATA bound to the nonce and opens the response with the payload's own message
/// code (`crate::guest::snp_msg`, the file the attesting guest is built from), and writes
/// the evidence line with the host's certificate table; the model opens and answers the
/// request with the verifier's implementation (`cvm_attest::snp::guest_msg`), and the host
/// verifies the evidence as for a real launch. This proves the plumbing (messages, binding,
/// measurement, verdict), not the hardware.
#[cfg(target_arch = "x86_64")]
fn dry_attest(
    args: &LaunchArgs,
    tee: Tee,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
    model: &mut vmm::sev::model::SevModel,
) -> Result<(super::attest_launch::AttestReport, Result<(), CliError>), CliError> {
    use crate::guest::snp_msg;
    use base64::Engine as _;
    let step =
        |what: &'static str| move |e: String| CliError::Launch(vmm::LaunchError::Step(what, e));
    let session = Session::new(&args.attest)?;
    let secrets = model
        .secrets_page()
        .ok_or_else(|| step("read the secrets page")("the launch has none".into()))?;
    let mut vmpck0 = [0u8; 32];
    vmpck0.copy_from_slice(secrets.get(0x20..0x40).unwrap_or(&[0; 32]));
    let report_data = cvm_attest::exchange::report_data(&session.nonce);
    // The first message under VMPCK0 since the launch.
    let seqno = 1;
    let sealed = snp_msg::report_request(&vmpck0, seqno, &report_data);
    let mut answer = model
        .guest_request(&sealed)
        .map_err(|e| step("the guest's report request")(e.to_string()))?;
    let report = snp_msg::open_report_response(&vmpck0, seqno, &mut answer)
        .map_err(|e| step("open the firmware's response")(e.to_string()))?;
    let report = &report[..];
    // The extended request's buffer as the model host fills it (4 pages, the guest's),
    // and the table the guest then sends, as its code measures it.
    let mut buffer = vmm::sev::model::test_vcek::cert_table()
        .map_err(step("build the model host's certificate table"))?;
    buffer.resize(4 * 4096, 0);
    let table = buffer
        .get(..snp_msg::cert_table_len(&buffer))
        .unwrap_or_default();
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let line = format!("CVM-EVIDENCE 1 snp {} {}", b64(report), b64(table));
    let mut watch = session.watch(&args.attest, None);
    (watch.on_line)(cvm_attest::exchange::parse_line(line.as_bytes()));
    super::attest_launch::verdict(
        &args.attest,
        args.certs.as_deref(),
        tee,
        &session,
        &launch_reference(args, tee, plan),
    )
}

/// A dry run's result: the model accepted every step, and the digest its firmware kept
/// is the one `cvm measure` computes from the same plan (the invariant, checked on every
/// dry run).
#[cfg(target_arch = "x86_64")]
fn dry_result(
    launched: Result<(), vmm::LaunchError>,
    measured: Option<&[u8]>,
    planned: Option<&[u8]>,
    what: &str,
) -> Result<(), CliError> {
    launched.map_err(CliError::Launch)?;
    if planned.is_some() && planned == measured {
        return Ok(());
    }
    Err(CliError::Launch(vmm::LaunchError::Step(
        "compare the model's measurement with the plan's",
        format!(
            "the model's {what} is {}, the plan's {}",
            measured.map(hex::encode).unwrap_or_default(),
            planned.map(hex::encode).unwrap_or_default()
        ),
    )))
}

/// A dry run's report, without its measurement.
#[cfg(target_arch = "x86_64")]
fn dry_report(
    args: &LaunchArgs,
    tee: Tee,
    memory: u64,
    platform: &vmm::backend::PlatformOptions,
    unmodelled: &'static [&'static str],
    issued: &[vmm::sev::model::Issued],
) -> LaunchReport {
    LaunchReport {
        tee: tee.name(),
        dry_run: true,
        protected: true,
        boot: boot_name(args),
        memory,
        vcpus: args.plan.vcpus,
        pit: platform.pit,
        measurement: None,
        mrtd: None,
        rtmr_expected_from_plan: None,
        tdvf_recipe: None,
        attest: None,
        launch_measure: None,
        stop: None,
        elapsed_ms: None,
        unknown_accesses: None,
        unmodelled: Some(unmodelled),
        issued: args.explain.then(|| issued.to_vec()),
    }
}

/// Where `--serial` sends the guest's console: stdout (stderr with `--format json`, which
/// keeps stdout for the result), a file, or nowhere.
#[cfg(any(target_arch = "x86_64", feature = "cca"))]
pub(super) fn serial_out(
    dest: &SerialDest,
    format: Format,
) -> Result<Box<dyn Write + Send>, CliError> {
    Ok(match (dest, format) {
        (SerialDest::Stdio, Format::Text) => Box::new(io::stdout()),
        (SerialDest::Stdio, Format::Json) => Box::new(io::stderr()),
        (SerialDest::None, _) => Box::new(io::sink()),
        (SerialDest::File(p), _) => Box::new(std::fs::File::create(p).map_err(|e| {
            CliError::Usage(format!(
                "cannot create the serial output file {}: {e}",
                p.display()
            ))
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_size;
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("128M"), Ok(128 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("0ms").is_err());
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
        let huge = parse_duration("99999999999999999999999h").unwrap_err();
        assert!(huge.contains("longer than cvm can wait"), "{huge}");
        assert!(check_memory(8191 << 30).is_ok());
        assert!(check_memory(8192 << 30).is_err());
        assert_eq!(
            parse_serial("file:/tmp/x"),
            Ok(SerialDest::File("/tmp/x".into()))
        );
        assert!(parse_serial("file:").is_err());
        assert!(parse_serial("tcp:1").is_err());
    }
}
