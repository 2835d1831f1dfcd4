//! `cvm measure --tee tdx`: MRTD and RTMR 0-3 of a TD booted from TDVF firmware, from
//! the TDX launch plan.

use super::measure::{InputFile, MeasureArgs, MrtdOrder, reject_other_tee_options};
use super::{InputKind, read_input};
use crate::error::CliError;
use crate::input::Input;
use crate::output::Render;
use cvm_firmware::hex;
use cvm_firmware::measure::tdx::{self, Event};
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::tdx::{AddOrder, DirectBoot, TdxConfig};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The format name of `--event-log` files.
pub const EVENT_LOG_FORMAT: &str = "cvm-tdx-event-log/1";

/// What `cvm measure --tee tdx` reports. The JSON form is a stable interface: `cvm
/// verify` takes it as reference values.
#[derive(Debug, Serialize)]
pub struct TdxReport {
    /// "tdx".
    pub tee: &'static str,
    /// MRTD, hex.
    pub mrtd: String,
    /// RTMR 0-3, hex; `null` where the inputs do not determine it (RTMR 0 without
    /// `--acpi-tables`, RTMR 1 and 2 without `--kernel`).
    pub rtmr: [Option<String>; 4],
    /// "single-pass" or "two-pass".
    pub mrtd_order: &'static str,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest memory in bytes.
    pub memory: u64,
    /// The firmware.
    pub firmware: InputFile,
    /// The kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<InputFile>,
    /// Whether the kernel was measured with QEMU's setup-header patch.
    pub patch_kernel: bool,
    /// The initrd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd: Option<InputFile>,
    /// The command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The ACPI tables blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acpi_tables: Option<InputFile>,
    /// The Secure Boot variables measured into RTMR 0 and where they came from.
    pub secure_boot_variables: Vec<SecureBootVar>,
    /// Every RTMR event (with `--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// One Secure Boot variable as measured.
#[derive(Debug, Serialize)]
pub struct SecureBootVar {
    /// Its name.
    pub name: &'static str,
    /// Its vendor GUID.
    pub guid: String,
    /// Bytes of data measured (0 when absent).
    pub size: usize,
    /// SHA-384 of the data, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha384: Option<String>,
    /// Where the data came from.
    pub source: String,
}

/// The `--event-log` file.
#[derive(Debug, Serialize)]
struct EventLog<'a> {
    format: &'static str,
    mrtd: &'a str,
    rtmr: &'a [Option<String>; 4],
    events: &'a [Event],
}

impl Render for TdxReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "tee:   {}", self.tee)?;
        writeln!(out, "mrtd:  {}", self.mrtd)?;
        for (i, r) in self.rtmr.iter().enumerate() {
            let why = match i {
                0 => "not determined: give --acpi-tables",
                _ => "not determined: give --kernel",
            };
            writeln!(out, "rtmr{i}: {}", r.as_deref().unwrap_or(why))?;
        }
        if self.events.is_empty() {
            return Ok(());
        }
        writeln!(out, "events:")?;
        for e in &self.events {
            writeln!(
                out,
                "  rtmr{} {:#010x} {}  {}",
                e.rtmr,
                e.event_type.value(),
                hex::encode(&e.digest),
                e.description
            )?;
        }
        Ok(())
    }
}

/// Computes the TDX report for `args`, and writes the event log if asked.
pub fn report(args: &MeasureArgs) -> Result<TdxReport, CliError> {
    reject_other_tee_options(
        args,
        "snp, sev-es or sev",
        &[
            (
                "--vcpu-type/--vcpu-sig/--vcpu-family",
                args.vcpu_type.is_some() || args.vcpu_sig.is_some() || args.vcpu_family.is_some(),
            ),
            ("--guest-features", args.guest_features.is_some()),
            ("--firmware-digest", args.firmware_digest.is_some()),
            ("--svsm", args.svsm.is_some()),
            ("--id-key", args.id_key.is_some()),
            ("--vmm", args.vmm != super::measure::Vmm::Qemu),
        ],
    )?;
    let memory = args.memory.unwrap_or(2 << 30);
    let fw_bytes = read_input(&args.firmware, InputKind::Firmware)?;
    let kernel = args
        .kernel
        .as_deref()
        .map(|p| read_input(p, InputKind::Kernel))
        .transpose()?;
    let initrd = args
        .initrd
        .as_deref()
        .map(|p| read_input(p, InputKind::Initrd))
        .transpose()?;
    let acpi = args
        .acpi_tables
        .as_deref()
        .map(|p| read_input(p, InputKind::AcpiTables))
        .transpose()?;
    let fw = OvmfImage::parse(&fw_bytes).map_err(|source| CliError::Firmware {
        path: args.firmware.clone(),
        source,
    })?;
    let order = match args.mrtd_order {
        MrtdOrder::SinglePass => AddOrder::SinglePass,
        MrtdOrder::TwoPass => AddOrder::TwoPass,
    };
    let cfg = TdxConfig {
        firmware: &fw,
        memory,
        vcpus: args.vcpus,
        order,
        direct_boot: kernel.as_deref().map(|k| DirectBoot {
            kernel: k,
            initrd: initrd.as_deref(),
            cmdline: args.cmdline.as_deref(),
            patch_kernel: args.patch_kernel,
        }),
        acpi_tables: acpi.as_deref(),
    };
    let blame = |source: cvm_firmware::FirmwareError| {
        let path = match source.image() {
            Some("kernel") => args.kernel.clone(),
            Some("ACPI tables") => args.acpi_tables.clone(),
            Some(_) => Some(args.firmware.clone()),
            None => None,
        };
        CliError::Firmware {
            path: path.unwrap_or_else(|| {
                PathBuf::from(format!("{} (tdx launch plan)", args.firmware.display()))
            }),
            source,
        }
    };
    let plan = cvm_firmware::tdx::plan(&cfg).map_err(blame)?;
    super::log_plan(&plan);
    let file = |p: &Option<PathBuf>, d: &Option<Input>| {
        p.as_deref()
            .zip(d.as_deref())
            .map(|(p, d)| InputFile::new(p, d))
    };
    // The input files' own SHA-256s (for the report) while the plan is measured.
    let (m, files) = std::thread::scope(|scope| {
        let files = scope.spawn(|| {
            (
                InputFile::new(&args.firmware, &fw_bytes),
                file(&args.kernel, &kernel),
                file(&args.initrd, &initrd),
                file(&args.acpi_tables, &acpi),
            )
        });
        let m = tdx::measure(&plan);
        (m, files.join())
    });
    let m = m.map_err(blame)?;
    let (firmware, kernel_file, initrd_file, acpi_file) =
        files.map_err(|_| CliError::Usage("hashing the input files failed".into()))?;
    let mrtd = hex::encode(&m.mrtd);
    let rtmr = m.rtmr.map(|r| r.map(|d| hex::encode(&d)));
    if let Some(path) = &args.event_log {
        write_event_log(path, &mrtd, &rtmr, &m.events)?;
    }
    Ok(TdxReport {
        tee: "tdx",
        mrtd,
        rtmr,
        mrtd_order: match order {
            AddOrder::SinglePass => "single-pass",
            AddOrder::TwoPass => "two-pass",
        },
        vcpus: args.vcpus,
        memory,
        firmware,
        kernel: kernel_file,
        patch_kernel: args.patch_kernel,
        initrd: initrd_file,
        cmdline: args
            .kernel
            .as_ref()
            .map(|_| args.cmdline.clone().unwrap_or_default()),
        acpi_tables: acpi_file,
        secure_boot_variables: m
            .secure_boot
            .iter()
            .map(|v| SecureBootVar {
                name: v.name,
                guid: v.guid.to_string(),
                size: v.data.as_ref().map_or(0, Vec::len),
                sha384: v
                    .data
                    .as_ref()
                    .map(|d| hex::encode(&<sha2::Sha384 as sha2::Digest>::digest(d))),
                source: v.source.clone(),
            })
            .collect(),
        events: if args.explain { m.events } else { Vec::new() },
    })
}

fn write_event_log(
    path: &Path,
    mrtd: &str,
    rtmr: &[Option<String>; 4],
    events: &[Event],
) -> Result<(), CliError> {
    let log = EventLog {
        format: EVENT_LOG_FORMAT,
        mrtd,
        rtmr,
        events,
    };
    let write_err = |source| CliError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(&log).map_err(CliError::Serialize)?;
    text.push(b'\n');
    std::fs::write(path, text).map_err(write_err)
}
