//! `cvm measure`: the launch measurement of a guest, computed from the same launch plan
//! that `cvm launch` executes.

use super::{CmdResult, read_file, simple};
use crate::error::CliError;
use crate::output::{Output, Render};
use clap::{Args, ValueEnum};
use cvm_firmware::hex;
use cvm_firmware::measure::Component;
use cvm_firmware::measure::sev::{Options, measure};
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::plan::Platform;
use cvm_firmware::sev::vmsa::X87_FCW_RESET;
use cvm_firmware::sev::{self, DirectBoot, SevConfig, Svsm, VmmType, cpu};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The TEEs `cvm measure` computes measurements for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MeasureTee {
    /// AMD SEV-SNP: SHA-384 launch digest (MEASUREMENT in the attestation report).
    Snp,
    /// AMD SEV-ES: SHA-256 launch digest.
    SevEs,
    /// AMD SEV: SHA-256 launch digest.
    Sev,
}

/// Whose conventions the launch follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Vmm {
    /// QEMU/KVM, and cvm's own launcher.
    Qemu,
    /// Amazon EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

/// Arguments of `cvm measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The TEE.
    #[arg(long, value_enum)]
    pub tee: MeasureTee,
    /// The firmware image (OVMF).
    #[arg(long, value_name = "FILE")]
    pub firmware: PathBuf,
    /// A kernel for measured direct boot (bzImage).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// The initrd for direct boot.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    #[arg(long, value_name = "STR", requires = "kernel")]
    pub cmdline: Option<String>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub vcpus: u32,
    /// The QEMU CPU model (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...).
    #[arg(long, value_name = "NAME", group = "cpu")]
    pub vcpu_type: Option<String>,
    /// The CPUID signature (CPUID Fn0000_0001_EAX), decimal or 0x-hex.
    #[arg(long, value_name = "N", value_parser = parse_u32, group = "cpu")]
    pub vcpu_sig: Option<u32>,
    /// CPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "N", requires_all = ["vcpu_model", "vcpu_stepping"], group = "cpu")]
    pub vcpu_family: Option<u32>,
    /// CPU model.
    #[arg(long, value_name = "N", requires = "vcpu_family")]
    pub vcpu_model: Option<u32>,
    /// CPU stepping.
    #[arg(long, value_name = "N", requires = "vcpu_family")]
    pub vcpu_stepping: Option<u32>,
    /// Whose vCPU reset conventions and page layout to follow.
    #[arg(long, value_enum, default_value_t = Vmm::Qemu)]
    pub vmm: Vmm,
    /// SNP: the VMSA SEV_FEATURES, hex. KVM on Linux 6.6+ uses 0x21 when DebugSwap is
    /// available; give the host's real value.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_u64, default_value = "0x1")]
    pub guest_features: u64,
    /// SNP: the launch digest after the firmware pages (a previous run's
    /// `firmware_digest`), to skip hashing the firmware.
    #[arg(long, value_name = "HEX", value_parser = parse_digest48)]
    pub firmware_digest: Option<[u8; 48]>,
    /// SNP: an SVSM image launched below the firmware (every vCPU starts in the SVSM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "vars_size",
        conflicts_with = "kernel"
    )]
    pub svsm: Option<PathBuf>,
    /// With --svsm: bytes of firmware variable store between the SVSM and the firmware.
    #[arg(long, value_name = "N", requires = "svsm")]
    pub vars_size: Option<u64>,
    /// List every contributing component with its own digest.
    #[arg(long)]
    pub explain: bool,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn parse_hex_u64(s: &str) -> Result<u64, String> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(h, 16).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_digest48(s: &str) -> Result<[u8; 48], String> {
    hex::decode_exact(s).ok_or_else(|| format!("{s:?} is not 48 bytes of hex"))
}

/// A measured input file.
#[derive(Debug, Serialize)]
pub struct InputFile {
    /// The path given.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl InputFile {
    fn new(path: &Path, data: &[u8]) -> Self {
        Self::with_digest(path, data, &Sha256::digest(data).into())
    }

    /// For a file whose SHA-256 is already known (the plan's kernel hashes).
    fn with_digest(path: &Path, data: &[u8], sha256: &[u8; 32]) -> Self {
        InputFile {
            path: path.to_owned(),
            sha256: hex::encode(sha256),
            size: u64::try_from(data.len()).unwrap_or(u64::MAX),
        }
    }
}

/// What `cvm measure` reports. The JSON form is a stable interface: `cvm verify` takes
/// it as reference values.
#[derive(Debug, Serialize)]
pub struct MeasureReport {
    /// "snp", "sev-es" or "sev".
    pub tee: &'static str,
    /// The launch digest, hex.
    pub measurement: String,
    /// SNP: the launch digest after the firmware pages, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_digest: Option<String>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// The CPUID signature in RDX at reset (SNP and SEV-ES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu_sig: Option<String>,
    /// The VMM conventions followed.
    pub vmm: VmmType,
    /// The VMSA SEV_FEATURES (SNP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_features: Option<String>,
    /// The firmware.
    pub firmware: InputFile,
    /// The kernel, initrd and command line, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<InputFile>,
    /// The initrd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd: Option<InputFile>,
    /// The command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The SVSM image, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svsm: Option<InputFile>,
    /// Every contributing component (with `--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

impl Render for MeasureReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "tee:         {}", self.tee)?;
        writeln!(out, "measurement: {}", self.measurement)?;
        if let Some(fd) = &self.firmware_digest {
            writeln!(out, "firmware digest: {fd}")?;
        }
        if self.components.is_empty() {
            return Ok(());
        }
        writeln!(out, "components:")?;
        for c in &self.components {
            let gpa = c
                .gpa
                .map(|g| format!("{g:#014x}"))
                .unwrap_or_else(|| "-".into());
            writeln!(out, "  {gpa} {:>9} {:<10} {}", c.len, c.page_type, c.name)?;
            if let Some(h) = &c.sha256 {
                writeln!(out, "      sha256 {h}")?;
            }
            if let Some(ld) = &c.launch_digest {
                writeln!(out, "      launch digest after: {ld}")?;
            }
        }
        Ok(())
    }
}

/// Runs `cvm measure`.
pub fn run(args: &MeasureArgs) -> CmdResult {
    simple(|| Output::new(&report(args)?))
}

/// Computes the report for `args`.
pub fn report(args: &MeasureArgs) -> Result<MeasureReport, CliError> {
    let platform = match args.tee {
        MeasureTee::Snp => Platform::Snp,
        MeasureTee::SevEs => Platform::SevEs,
        MeasureTee::Sev => Platform::Sev,
    };
    let vmm = match args.vmm {
        Vmm::Qemu => VmmType::Qemu,
        Vmm::Ec2 => VmmType::Ec2,
        Vmm::Gce => VmmType::Gce,
    };
    if args.firmware_digest.is_some() && platform != Platform::Snp {
        return Err(CliError::Usage(
            "--firmware-digest applies to --tee snp only".into(),
        ));
    }
    let fw_bytes = read_file(&args.firmware)?;
    let kernel = args.kernel.as_deref().map(read_file).transpose()?;
    let svsm_bytes = args.svsm.as_deref().map(read_file).transpose()?;
    let initrd = args.initrd.as_deref().map(read_file).transpose()?;
    let firmware_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CliError::Firmware { path, source }
    };
    let fw = OvmfImage::parse(&fw_bytes).map_err(firmware_err(&args.firmware))?;
    let svsm_image = match (&args.svsm, &svsm_bytes) {
        (Some(path), Some(bytes)) => Some(OvmfImage::parse(bytes).map_err(firmware_err(path))?),
        _ => None,
    };
    let vcpu_sig = vcpu_signature(args, platform, vmm)?;
    let cfg = SevConfig {
        platform,
        firmware: &fw,
        direct_boot: kernel.as_deref().map(|k| DirectBoot {
            kernel: k,
            initrd: initrd.as_deref(),
            cmdline: args.cmdline.as_deref(),
        }),
        vcpus: args.vcpus,
        vcpu_sig: vcpu_sig.unwrap_or(0),
        vmm,
        guest_features: args.guest_features,
        svsm: svsm_image.as_ref().map(|image| Svsm {
            image,
            vars_size: args.vars_size.unwrap_or(0),
            x87_fcw: X87_FCW_RESET,
        }),
    };
    let plan = sev::plan(&cfg).map_err(|source| {
        let path = match (source.image(), &args.kernel) {
            (Some("kernel"), Some(k)) => k.clone(),
            (Some(_), _) if args.svsm.is_some() => PathBuf::from("--svsm/--firmware"),
            (Some(_), _) => args.firmware.clone(),
            (None, _) => PathBuf::from(format!("{} launch plan", platform.name())),
        };
        CliError::Firmware { path, source }
    })?;
    let m = measure(
        &plan,
        &Options {
            firmware_digest: args.firmware_digest,
            explain: args.explain,
        },
    );
    Ok(MeasureReport {
        tee: platform.name(),
        measurement: hex::encode(&m.digest),
        firmware_digest: m.firmware_digest.map(|d| hex::encode(&d)),
        vcpus: args.vcpus,
        vcpu_sig: (platform != Platform::Sev)
            .then_some(vcpu_sig)
            .flatten()
            .map(|s| format!("{s:#x}")),
        vmm,
        guest_features: (platform == Platform::Snp).then(|| format!("{:#x}", plan.sev_features)),
        firmware: InputFile::new(&args.firmware, &fw_bytes),
        kernel: args
            .kernel
            .as_deref()
            .zip(kernel.as_deref())
            .map(|(p, d)| InputFile::new(p, d)),
        initrd: args
            .initrd
            .as_deref()
            .zip(initrd.as_deref())
            .map(|(p, d)| InputFile::new(p, d)),
        cmdline: args.cmdline.clone(),
        svsm: args
            .svsm
            .as_deref()
            .zip(svsm_bytes.as_deref())
            .map(|(p, d)| InputFile::new(p, d)),
        components: m.components,
    })
}

/// The CPUID signature QEMU puts in RDX. EC2 and GCE use a fixed value, and plain SEV
/// does not measure register state, so none is needed there.
fn vcpu_signature(
    args: &MeasureArgs,
    platform: Platform,
    vmm: VmmType,
) -> Result<Option<u32>, CliError> {
    let given = match (&args.vcpu_type, args.vcpu_sig, args.vcpu_family) {
        (Some(name), _, _) => {
            Some(
                cpu::signature_of(name).map_err(|source| CliError::Firmware {
                    path: PathBuf::from("--vcpu-type"),
                    source,
                })?,
            )
        }
        (None, Some(sig), _) => Some(sig),
        (None, None, Some(family)) => Some(cpu::signature(
            family,
            args.vcpu_model.unwrap_or(0),
            args.vcpu_stepping.unwrap_or(0),
        )),
        (None, None, None) => None,
    };
    if given.is_none() && platform != Platform::Sev && vmm == VmmType::Qemu {
        return Err(CliError::Usage(
            "QEMU puts the vCPU's CPUID signature in the measured register state: give \
             --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping"
                .into(),
        ));
    }
    Ok(given)
}
