//! `cvm measure --tee tdx`: MRTD and RTMR 0-3 of a TD booted from TDVF firmware, from
//! the TDX launch plan.

use super::measure::{InputFile, MeasureArgs};
use crate::error::CliError;
use crate::input::Input;
use crate::output::Render;
use cvm_firmware::Tee;
use cvm_firmware::launch::{Inputs, LaunchMeasurement};
use cvm_firmware::measure::tdx::{Event, EventLog};
use cvm_firmware::reference::{Hex, MEASUREMENT_FORMAT, MeasuredValues};
use cvm_firmware::tdx::AddOrder;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Guest memory when `--memory` is not given.
pub(super) const DEFAULT_MEMORY: u64 = 2 << 30;

/// What `cvm measure --tee tdx` reports. The JSON form is a stable interface: `cvm
/// verify` takes it as reference values.
#[derive(Debug, Serialize)]
pub struct TdxReport {
    /// `cvm-measurement/1`: what `cvm verify` takes as reference values.
    pub format: &'static str,
    /// `tee` ("tdx"), MRTD and RTMR 0-3 (`null` where the inputs do not determine it:
    /// RTMR 0 without `--acpi-tables`, RTMR 1 and 2 without `--kernel`).
    #[serde(flatten)]
    pub values: MeasuredValues,
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
    /// The edk2 recipe the RTMRs follow (read from the image unless `--tdvf-recipe`
    /// chose it), and what decided it.
    pub tdvf_recipe: cvm_firmware::edk2::Detected,
    /// For each RTMR that is `null`, why.
    pub unpredicted: [Option<&'static str>; 4],
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

impl Render for TdxReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let MeasuredValues::Tdx(values) = &self.values else {
            return Ok(());
        };
        writeln!(out, "tee:   tdx")?;
        writeln!(out, "mrtd:  {}", values.mrtd)?;
        for (i, (r, why)) in values.rtmr.iter().zip(&self.unpredicted).enumerate() {
            match r {
                Some(r) => writeln!(out, "rtmr{i}: {r}")?,
                None => writeln!(
                    out,
                    "rtmr{i}: not determined: {}",
                    why.unwrap_or("the inputs do not determine it")
                )?,
            }
        }
        if self.events.is_empty() {
            return Ok(());
        }
        let assumed = if self.tdvf_recipe.assumed {
            " (assumed)"
        } else {
            ""
        };
        writeln!(
            out,
            "tdvf recipe: {}{assumed}: {}",
            self.tdvf_recipe.name, self.tdvf_recipe.why
        )?;
        writeln!(out, "events:")?;
        for e in &self.events {
            writeln!(
                out,
                "  rtmr{} {:#010x} {}  {}",
                e.rtmr,
                e.event_type.value(),
                hex::encode(e.digest),
                e.description
            )?;
        }
        Ok(())
    }
}

/// Computes the TDX report for `args`, and writes the event log if asked.
pub fn report(args: &MeasureArgs) -> Result<TdxReport, CliError> {
    let plan_args = &args.plan;
    let firmware = plan_args.read_firmware()?;
    let files = plan_args.read_others()?;
    let inputs = plan_args.inputs(Tee::Tdx, firmware.as_deref(), &files, DEFAULT_MEMORY)?;
    let (memory, order) = match &inputs {
        Inputs::Tdx(t) => (t.memory, t.order),
        _ => return Err(CliError::Usage("--tee tdx builds a TDX plan".into())),
    };
    let images = inputs.parse().map_err(|e| plan_args.blame(Tee::Tdx, e))?;
    let plan = inputs
        .plan(&images)
        .map_err(|e| plan_args.blame(Tee::Tdx, e))?;
    super::log_plan(&plan);
    let file = |p: &Option<PathBuf>, d: &Option<Input>| {
        p.as_deref()
            .zip(d.as_deref())
            .map(|(p, d)| InputFile::new(p, d))
    };
    // The input files' own SHA-256s (for the report) while the plan is measured.
    let (m, hashed) = std::thread::scope(|scope| {
        let hashed = scope.spawn(|| {
            (
                // `--firmware`, or the built-in attesting guest the plan was built from.
                plan_args
                    .firmware_bytes(Tee::Tdx, firmware.as_deref())
                    .map(|d| InputFile::new(&plan_args.firmware_path(Tee::Tdx), d)),
                file(&plan_args.kernel, &files.kernel),
                file(&plan_args.initrd, &files.initrd),
                file(&plan_args.acpi_tables, &files.acpi_tables),
            )
        });
        let m = cvm_firmware::launch::measure(&plan, &Default::default());
        (m, hashed.join())
    });
    let LaunchMeasurement::Tdx(m) = m.map_err(|e| plan_args.blame(Tee::Tdx, e))? else {
        return Err(CliError::Usage("--tee tdx builds a TDX plan".into()));
    };
    let (firmware, kernel_file, initrd_file, acpi_file) =
        hashed.map_err(|_| CliError::Usage("hashing the input files failed".into()))?;
    let firmware = firmware.ok_or_else(|| CliError::Usage("--tee tdx needs --firmware".into()))?;
    let log = EventLog::of(&m);
    if let Some(path) = &args.event_log {
        write_event_log(path, &log)?;
    }
    let mut values = log.values;
    let [config_id, owner, owner_config] = args.td_owner.values();
    values.mr_config_id = Some(Hex(config_id));
    values.mr_owner = Some(Hex(owner));
    values.mr_owner_config = Some(Hex(owner_config));
    Ok(TdxReport {
        format: MEASUREMENT_FORMAT,
        values: MeasuredValues::Tdx(values),
        mrtd_order: match order {
            AddOrder::SinglePass => "single-pass",
            AddOrder::TwoPass => "two-pass",
        },
        vcpus: plan_args.vcpus,
        memory,
        firmware,
        kernel: kernel_file,
        patch_kernel: plan_args.patch_kernel,
        initrd: initrd_file,
        cmdline: plan_args
            .kernel
            .as_ref()
            .map(|_| plan_args.cmdline.clone().unwrap_or_default()),
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
                    .map(|d| hex::encode(<sha2::Sha384 as sha2::Digest>::digest(d))),
                source: v.source.clone(),
            })
            .collect(),
        tdvf_recipe: m.tdvf.clone(),
        unpredicted: m.unpredicted,
        events: if args.explain { m.events } else { Vec::new() },
    })
}

fn write_event_log(path: &Path, log: &EventLog) -> Result<(), CliError> {
    let write_err = |source| CliError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(log).map_err(CliError::Serialize)?;
    text.push(b'\n');
    std::fs::write(path, text).map_err(write_err)
}
