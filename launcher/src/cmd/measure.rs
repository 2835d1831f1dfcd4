//! `cvm measure`: the launch measurement of a guest, computed from the same launch plan
//! that `cvm launch` executes.

use super::{CmdResult, InputKind, read_input, simple};
use crate::error::CliError;
use crate::keys;
use crate::output::{Output, Render};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, ValueEnum};
use cvm_firmware::Tee;
use cvm_firmware::hex;
use cvm_firmware::measure::Component;
use cvm_firmware::measure::sev::{Options, PageDigests, measure};
use cvm_firmware::ovmf::OvmfImage;
use cvm_firmware::sev::id_block::{self, DEFAULT_POLICY, IdBlock, SigningKey};
use cvm_firmware::sev::vmsa::X87_FCW_RESET;
use cvm_firmware::sev::{self, DirectBoot, SevConfig, Svsm, VmmType, cpu};
use ring::rand::SystemRandom;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// The order in which a TD's measured pages are added and extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MrtdOrder {
    /// Page by page (Linux 6.16+ KVM, QEMU 9+).
    SinglePass,
    /// All pages of a section, then all extends (QEMU 8.x).
    TwoPass,
}

/// Arguments of `cvm measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The TEE.
    #[arg(long, value_name = "TEE", value_parser = crate::tee_arg::one_of(&crate::tee_arg::MEASURED))]
    pub tee: Tee,
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
    /// Number of vCPUs: 1 to 4096, the most KVM on x86 allows (CONFIG_KVM_MAX_NR_VCPUS).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub vcpus: u32,
    /// TDX: guest memory (the TD HOB and the kernel patch depend on it) [default: 2G].
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size)]
    pub memory: Option<u64>,
    /// TDX: QEMU's ACPI tables blob (fw_cfg `etc/acpi/tables`), needed for RTMR 0.
    #[arg(long, value_name = "FILE")]
    pub acpi_tables: Option<PathBuf>,
    /// TDX: serve the kernel with QEMU's setup-header patch (what OVMF before 2025.05
    /// measures).
    #[arg(long, requires = "kernel")]
    pub patch_kernel: bool,
    /// TDX: the order pages are added and extended in.
    #[arg(long, value_enum, default_value_t = MrtdOrder::SinglePass)]
    pub mrtd_order: MrtdOrder,
    /// TDX: write the RTMR event log (JSON, see the README) to FILE (`cvm verify
    /// --event-log` replays it). `--event-log` is an older spelling.
    #[arg(long = "event-log-out", alias = "event-log", value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// The QEMU CPU model (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...).
    #[arg(long, value_name = "NAME", group = "cpu")]
    pub vcpu_type: Option<String>,
    /// The CPUID signature (CPUID Fn0000_0001_EAX), decimal or 0x-hex.
    #[arg(long, value_name = "N", value_parser = parse_u32, group = "cpu")]
    pub vcpu_sig: Option<u32>,
    /// CPU family (with --vcpu-model and --vcpu-stepping): 0 to 270, what CPUID's family
    /// and extended family fields can say (0xf + 0xff).
    #[arg(long, value_name = "N", requires_all = ["vcpu_model", "vcpu_stepping"], group = "cpu",
          value_parser = clap::value_parser!(u32).range(0..=270))]
    pub vcpu_family: Option<u32>,
    /// CPU model: 0 to 255 (model and extended model).
    #[arg(long, value_name = "N", requires = "vcpu_family",
          value_parser = clap::value_parser!(u32).range(0..=255))]
    pub vcpu_model: Option<u32>,
    /// CPU stepping: 0 to 15.
    #[arg(long, value_name = "N", requires = "vcpu_family",
          value_parser = clap::value_parser!(u32).range(0..=15))]
    pub vcpu_stepping: Option<u32>,
    /// Whose vCPU reset conventions and page layout to follow.
    #[arg(long, value_enum, default_value_t = Vmm::Qemu)]
    pub vmm: Vmm,
    /// SNP: the VMSA SEV_FEATURES, hex (default 0x1). KVM on Linux 6.6+ uses 0x21 when
    /// DebugSwap is available; give the host's real value.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_u64)]
    pub guest_features: Option<u64>,
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
    /// SNP: sign an ID block for this measurement with this ECDSA P-384 key (PEM,
    /// PKCS#8 or SEC1), for QEMU's `id-block`/`id-auth`.
    #[arg(long, value_name = "FILE")]
    pub id_key: Option<PathBuf>,
    /// With --id-key: an author key (PEM) that signs the ID key.
    #[arg(long, value_name = "FILE", requires = "id_key")]
    pub author_key: Option<PathBuf>,
    /// With --id-key: FAMILY_ID, 16 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", requires = "id_key", value_parser = parse_id16)]
    pub family_id: Option<[u8; 16]>,
    /// With --id-key: IMAGE_ID, 16 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", requires = "id_key", value_parser = parse_id16)]
    pub image_id: Option<[u8; 16]>,
    /// With --id-key: GUEST_SVN.
    #[arg(long, value_name = "N", requires = "id_key", default_value_t = 0)]
    pub guest_svn: u32,
    /// With --id-key: the guest policy the launch will use, hex (QEMU's default
    /// 0x30000). `--policy` is an older spelling.
    #[arg(
        long = "guest-policy",
        alias = "policy",
        value_name = "HEX",
        requires = "id_key",
        value_parser = parse_hex_u64
    )]
    pub policy: Option<u64>,
}

fn parse_id16(s: &str) -> Result<[u8; 16], String> {
    hex::decode_exact(s).ok_or_else(|| format!("{s:?} is not 16 bytes of hex"))
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

/// Guest policy bit 17: reserved, must be one.
const POLICY_RESERVED_ONE: u64 = 1 << 17;

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
    pub(super) fn new(path: &Path, data: &[u8]) -> Self {
        Self::with_digest(path, data, None)
    }

    /// For a file whose SHA-256 may already be known (the plan's kernel hashes).
    fn with_digest(path: &Path, data: &[u8], sha256: Option<&[u8; 32]>) -> Self {
        InputFile {
            path: path.to_owned(),
            sha256: match sha256 {
                Some(h) => hex::encode(h),
                None => hex::encode(&Sha256::digest(data)),
            },
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
    /// The signed ID block (with `--id-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_block: Option<IdBlockReport>,
    /// Every contributing component (with `--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

/// A signed ID block, in the forms QEMU's `sev-snp-guest` object and a verifier take.
#[derive(Debug, Serialize)]
pub struct IdBlockReport {
    /// The ID block, base64 (QEMU `id-block=`).
    pub id_block: String,
    /// The ID authentication structure, base64 (QEMU `id-auth=`).
    pub id_auth: String,
    /// Whether the launch must set AUTHOR_KEY_EN (QEMU `author-key-enabled=on`).
    pub author_key_enabled: bool,
    /// The report's ID_KEY_DIGEST, hex.
    pub id_key_digest: String,
    /// The report's AUTHOR_KEY_DIGEST, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_key_digest: Option<String>,
    /// FAMILY_ID, hex.
    pub family_id: String,
    /// IMAGE_ID, hex.
    pub image_id: String,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// The guest policy the launch must use, hex.
    pub policy: String,
}

impl Render for MeasureReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "tee:         {}", self.tee)?;
        writeln!(out, "measurement: {}", self.measurement)?;
        if let Some(fd) = &self.firmware_digest {
            writeln!(out, "firmware digest: {fd}")?;
        }
        if let Some(b) = &self.id_block {
            writeln!(out, "id key digest:     {}", b.id_key_digest)?;
            if let Some(a) = &b.author_key_digest {
                writeln!(out, "author key digest: {a}")?;
            }
            let author = if b.author_key_enabled { "on" } else { "off" };
            writeln!(
                out,
                "qemu: policy={},id-block={},id-auth={},author-key-enabled={author}",
                b.policy, b.id_block, b.id_auth
            )?;
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
    simple(|| match args.tee {
        Tee::Tdx => Output::new(&super::measure_tdx::report(args)?),
        _ => Output::new(&report(args)?),
    })
}

/// Computes the report for `args`.
pub fn report(args: &MeasureArgs) -> Result<MeasureReport, CliError> {
    let platform = match args.tee {
        t @ (Tee::Snp | Tee::SevEs | Tee::Sev) => t,
        other => {
            return Err(CliError::Usage(format!(
                "--tee {other} is not measured by the SEV report"
            )));
        }
    };
    if platform != Tee::Snp {
        reject_other_tee_options(
            args,
            "snp",
            &[("--guest-features", args.guest_features.is_some())],
        )?;
    }
    reject_other_tee_options(
        args,
        "tdx",
        &[
            ("--memory", args.memory.is_some()),
            ("--acpi-tables", args.acpi_tables.is_some()),
            ("--patch-kernel", args.patch_kernel),
            ("--mrtd-order", args.mrtd_order != MrtdOrder::SinglePass),
            ("--event-log-out", args.event_log.is_some()),
        ],
    )?;
    let vmm = match args.vmm {
        Vmm::Qemu => VmmType::Qemu,
        Vmm::Ec2 => VmmType::Ec2,
        Vmm::Gce => VmmType::Gce,
    };
    if args.firmware_digest.is_some() && platform != Tee::Snp {
        return Err(CliError::Usage(
            "--firmware-digest applies to --tee snp only".into(),
        ));
    }
    // Check the ID block's inputs and load its keys before any hashing.
    let id_signer = args
        .id_key
        .as_deref()
        .map(|path| IdSigner::new(args, path, platform))
        .transpose()?;
    let fw_bytes = read_input(&args.firmware, InputKind::Firmware)?;
    // Two cores' worth of work: while the firmware's pages are hashed for the launch
    // digest (SNP: SHA-384 per page) and the file for the report (SHA-256), the other
    // inputs are read and the plan is built (its kernel hashes table: SHA-256 of the
    // kernel). The plan is then measured with the page digests taken ahead of time from
    // the very buffer the plan's firmware pages borrow.
    let prehash = platform == Tee::Snp && args.firmware_digest.is_none();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            (
                prehash.then(|| PageDigests::new(&fw_bytes)),
                InputFile::new(&args.firmware, &fw_bytes),
            )
        });
        let kernel = args
            .kernel
            .as_deref()
            .map(|p| read_input(p, InputKind::Kernel))
            .transpose()?;
        let svsm_bytes = args
            .svsm
            .as_deref()
            .map(|p| read_input(p, InputKind::Firmware))
            .transpose()?;
        let initrd = args
            .initrd
            .as_deref()
            .map(|p| read_input(p, InputKind::Initrd))
            .transpose()?;
        let firmware_err = |path: &Path| {
            let path = path.to_owned();
            move |source| CliError::Firmware { path, source }
        };
        let fw = OvmfImage::parse(&fw_bytes).map_err(firmware_err(&args.firmware))?;
        let svsm_image = match (&args.svsm, &svsm_bytes) {
            (Some(path), Some(bytes)) => {
                Some(OvmfImage::parse_as(bytes, "SVSM image").map_err(firmware_err(path))?)
            }
            _ => None,
        };
        let vcpu_sig = vcpu_signature(args, platform, vmm)?;
        let cfg = SevConfig {
            tee: platform,
            firmware: &fw,
            direct_boot: kernel.as_deref().map(|k| DirectBoot {
                kernel: k,
                initrd: initrd.as_deref(),
                cmdline: args.cmdline.as_deref(),
            }),
            vcpus: args.vcpus,
            vcpu_sig: vcpu_sig.unwrap_or(0),
            vmm,
            guest_features: args.guest_features.unwrap_or(DEFAULT_GUEST_FEATURES),
            svsm: svsm_image.as_ref().map(|image| Svsm {
                image,
                vars_size: args.vars_size.unwrap_or(0),
                x87_fcw: X87_FCW_RESET,
            }),
        };
        let plan = sev::plan(&cfg).map_err(|source| {
            let path = match (source.image(), &args.kernel) {
                (Some("kernel"), Some(k)) => k.clone(),
                (Some("SVSM image"), _) => args.svsm.clone().unwrap_or_default(),
                (Some(_), _) => args.firmware.clone(),
                (None, _) => PathBuf::from(format!(
                    "{} ({} launch plan)",
                    args.firmware.display(),
                    platform.name()
                )),
            };
            CliError::Firmware { path, source }
        })?;
        super::log_plan(&plan);
        // A hashing thread cannot panic short of allocation failure; if it did, the
        // pages are hashed by `measure` and the file here.
        let (prehashed, firmware_file) = hashing
            .join()
            .unwrap_or_else(|_| (None, InputFile::new(&args.firmware, &fw_bytes)));
        // Pages not hashed ahead (SVSM, SEV-ES and SEV, `--firmware-digest`) are spread
        // over the cores.
        let threads = match (&prehashed, &args.svsm) {
            (Some(_), None) => 1,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let m = measure(
            &plan,
            &Options {
                firmware_digest: args.firmware_digest,
                explain: args.explain,
                threads,
                prehashed: prehashed.as_ref(),
            },
        )
        .map_err(|source| CliError::Firmware {
            path: args.firmware.clone(),
            source,
        })?;
        tracing::info!("measurement {}", hex::encode(&m.digest));
        let id_block = id_signer.map(|s| s.sign(&m.digest)).transpose()?;
        let hashes = plan.kernel_hashes();
        Ok(MeasureReport {
            tee: platform.name(),
            measurement: hex::encode(&m.digest),
            firmware_digest: m.firmware_digest.map(|d| hex::encode(&d)),
            vcpus: args.vcpus,
            vcpu_sig: (platform != Tee::Sev)
                .then_some(vcpu_sig)
                .flatten()
                .map(|s| format!("{s:#x}")),
            vmm,
            guest_features: (platform == Tee::Snp).then(|| format!("{:#x}", plan.sev_features())),
            firmware: firmware_file,
            // The plan's kernel hashes are the files' SHA-256: reuse them.
            kernel: args
                .kernel
                .as_deref()
                .zip(kernel.as_deref())
                .map(|(p, d)| InputFile::with_digest(p, d, hashes.map(|h| &h.kernel))),
            initrd: args
                .initrd
                .as_deref()
                .zip(initrd.as_deref())
                .map(|(p, d)| InputFile::with_digest(p, d, hashes.map(|h| &h.initrd))),
            cmdline: args.cmdline.clone(),
            svsm: args
                .svsm
                .as_deref()
                .zip(svsm_bytes.as_deref())
                .map(|(p, d)| InputFile::new(p, d)),
            id_block,
            components: m.components,
        })
    })
}

/// Refuses options that belong to another TEE than `args.tee` (`owner`): a pipeline that
/// passes them expects them to change the result.
/// SEV_FEATURES when `--guest-features` is not given: SNPActive alone (bit 0).
const DEFAULT_GUEST_FEATURES: u64 = 0x1;

pub(super) fn reject_other_tee_options(
    args: &MeasureArgs,
    owner: &str,
    given: &[(&str, bool)],
) -> Result<(), CliError> {
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(CliError::Usage(format!(
            "{flag} applies to --tee {owner} only, not --tee {}",
            args.tee
        ))),
        None => Ok(()),
    }
}

/// An ID block's fields and keys, checked and loaded before the measurement is computed.
struct IdSigner {
    block: IdBlock,
    id: SigningKey,
    id_path: PathBuf,
    author: Option<SigningKey>,
    rng: SystemRandom,
}

impl IdSigner {
    fn new(args: &MeasureArgs, id_key: &Path, platform: Tee) -> Result<Self, CliError> {
        if platform != Tee::Snp {
            return Err(CliError::Usage("ID blocks are for --tee snp only".into()));
        }
        let block = IdBlock {
            launch_digest: [0; 48],
            family_id: args.family_id.unwrap_or_default(),
            image_id: args.image_id.unwrap_or_default(),
            guest_svn: args.guest_svn,
            policy: args.policy.unwrap_or(DEFAULT_POLICY),
        };
        if block.policy & POLICY_RESERVED_ONE == 0 {
            return Err(CliError::Usage(format!(
                "--policy {:#x}: bit 17 is reserved and must be set, or SNP_LAUNCH_START fails",
                block.policy
            )));
        }
        let rng = SystemRandom::new();
        let id = keys::load_p384(id_key, "ID", &rng)?;
        let author = args
            .author_key
            .as_deref()
            .map(|p| keys::load_p384(p, "author", &rng))
            .transpose()?;
        Ok(IdSigner {
            block,
            id,
            id_path: id_key.to_owned(),
            author,
            rng,
        })
    }

    /// Signs the ID block for the SNP launch digest `digest`.
    fn sign(mut self, digest: &[u8]) -> Result<IdBlockReport, CliError> {
        let key_error = |reason: String| CliError::Key {
            path: self.id_path.clone(),
            reason,
        };
        self.block.launch_digest = digest.try_into().map_err(|_| {
            key_error(format!(
                "a {}-byte digest is not an SNP digest",
                digest.len()
            ))
        })?;
        let block = &self.block;
        let signed = id_block::sign(block, &self.id, self.author.as_ref(), &self.rng)
            .map_err(|e| key_error(e.to_string()))?;
        Ok(IdBlockReport {
            id_block: BASE64.encode(signed.id_block),
            id_auth: BASE64.encode(&signed.id_auth[..]),
            author_key_enabled: signed.author_key_digest.is_some(),
            id_key_digest: hex::encode(&signed.id_key_digest),
            author_key_digest: signed.author_key_digest.map(|d| hex::encode(&d)),
            family_id: hex::encode(&block.family_id),
            image_id: hex::encode(&block.image_id),
            guest_svn: block.guest_svn,
            policy: format!("{:#x}", block.policy),
        })
    }
}

/// The CPUID signature QEMU puts in RDX. EC2 and GCE use a fixed value, and plain SEV
/// does not measure register state, so none is needed there.
fn vcpu_signature(
    args: &MeasureArgs,
    platform: Tee,
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
    if given.is_none() && platform != Tee::Sev && vmm == VmmType::Qemu {
        return Err(CliError::Usage(
            "QEMU puts the vCPU's CPUID signature in the measured register state: give \
             --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping"
                .into(),
        ));
    }
    Ok(given)
}
