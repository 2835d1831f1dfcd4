//! `cvm measure`: the launch measurement of a guest, computed from the same launch plan
//! that `cvm launch` executes.

use super::plan_args::{self, Given, PlanArgs, SNP, TDX};
use super::{CmdResult, simple};
use crate::error::CliError;
use crate::keys;
use crate::output::{Output, Render};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use cvm_firmware::Tee;
use cvm_firmware::launch::LaunchMeasurement;
use cvm_firmware::measure::Component;
use cvm_firmware::measure::sev::{Options, PageDigests};
use cvm_firmware::reference::{Hex, IdBlockValues, MEASUREMENT_FORMAT, MeasuredValues};
use cvm_firmware::sev::VmmType;
use cvm_firmware::sev::id_block::{self, DEFAULT_POLICY, IdBlock, SigningKey};
use ring::rand::SystemRandom;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use super::plan_args::{MrtdOrder, Vmm};

/// Arguments of `cvm measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The TEE.
    #[arg(long, value_name = "TEE", value_parser = crate::tee_arg::one_of(&crate::tee_arg::MEASURED))]
    pub tee: Tee,
    /// The options that build the plan (the same as `cvm launch`'s).
    #[command(flatten)]
    pub plan: PlanArgs,
    /// TDX: write the RTMR event log (JSON, see the README) to FILE (`cvm verify
    /// --event-log` replays it). `--event-log` is an older spelling.
    #[arg(long = "event-log-out", alias = "event-log", value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// SNP: the launch digest after the firmware pages (a previous run's
    /// `firmware_digest`), to skip hashing the firmware.
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<48>)]
    pub firmware_digest: Option<[u8; 48]>,
    /// List every contributing component with its own digest.
    #[arg(long)]
    pub explain: bool,
    /// SNP: the ID block options.
    #[command(flatten)]
    pub id: IdBlockArgs,
    /// TDX: the TD owner's measurement registers, reported for the verifier.
    #[command(flatten)]
    pub td_owner: TdOwnerArgs,
    /// CCA: the realm's parameters and the host's capabilities.
    #[command(flatten)]
    pub realm: super::measure_cca::RealmArgs,
    /// With --id-key: the guest policy the launch will use, hex (QEMU's default
    /// 0x30000). `--policy` is an older spelling.
    #[arg(
        long = "guest-policy",
        alias = "policy",
        value_name = "HEX",
        requires = "id_key",
        value_parser = plan_args::parse_hex_u64
    )]
    pub policy: Option<u64>,
}

/// The options that sign an SNP ID block (`cvm measure` reports it; `cvm launch` passes
/// it to SNP_LAUNCH_FINISH).
#[derive(Debug, Args)]
pub struct IdBlockArgs {
    /// SNP: sign an ID block for this measurement with this ECDSA P-384 key (PEM,
    /// PKCS#8 or SEC1), for QEMU's `id-block`/`id-auth`.
    #[arg(long, value_name = "FILE")]
    pub id_key: Option<PathBuf>,
    /// With --id-key: an author key (PEM) that signs the ID key.
    #[arg(long, value_name = "FILE", requires = "id_key")]
    pub author_key: Option<PathBuf>,
    /// With --id-key: FAMILY_ID, 16 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", requires = "id_key", value_parser = parse_hex::<16>)]
    pub family_id: Option<[u8; 16]>,
    /// With --id-key: IMAGE_ID, 16 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", requires = "id_key", value_parser = parse_hex::<16>)]
    pub image_id: Option<[u8; 16]>,
    /// With --id-key: GUEST_SVN.
    #[arg(long, value_name = "N", requires = "id_key", default_value_t = 0)]
    pub guest_svn: u32,
}

/// The TD owner's registers (`KVM_TDX_INIT_VM`; the quote reports them as given): `cvm
/// launch --tee tdx` passes them, `cvm measure --tee tdx` reports them as reference values.
#[derive(Debug, Args)]
pub struct TdOwnerArgs {
    /// TDX: MRCONFIGID, 48 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<48>)]
    pub mrconfigid: Option<[u8; 48]>,
    /// TDX: MROWNER, 48 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<48>)]
    pub mrowner: Option<[u8; 48]>,
    /// TDX: MROWNERCONFIG, 48 bytes of hex (default zero).
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<48>)]
    pub mrownerconfig: Option<[u8; 48]>,
}

impl TdOwnerArgs {
    /// The options given, for [`plan_args::refuse_inapplicable`] (TDX only).
    pub fn given(&self) -> Vec<Given> {
        plan_args::given(&[
            ("--mrconfigid", self.mrconfigid.is_some(), TDX),
            ("--mrowner", self.mrowner.is_some(), TDX),
            ("--mrownerconfig", self.mrownerconfig.is_some(), TDX),
        ])
    }

    /// MRCONFIGID, MROWNER, MROWNERCONFIG (zero where not given).
    pub fn values(&self) -> [[u8; 48]; 3] {
        [
            self.mrconfigid.unwrap_or([0; 48]),
            self.mrowner.unwrap_or([0; 48]),
            self.mrownerconfig.unwrap_or([0; 48]),
        ]
    }
}

/// Exactly `N` bytes of hex (an optional `0x` prefix).
pub(super) fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    Hex::parse(s)
        .map(|h| h.0)
        .ok_or_else(|| format!("{s:?} is not {N} bytes of hex"))
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
                None => hex::encode(Sha256::digest(data)),
            },
            size: u64::try_from(data.len()).unwrap_or(u64::MAX),
        }
    }
}

/// What `cvm measure` reports. The JSON form is a stable interface: `cvm verify` takes
/// it as reference values.
#[derive(Debug, Serialize)]
pub struct MeasureReport {
    /// `cvm-measurement/1`: what `cvm verify` takes as reference values.
    pub format: &'static str,
    /// `tee` ("snp", "sev-es" or "sev") and `measurement`, the launch digest.
    #[serde(flatten)]
    pub values: MeasuredValues,
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
    /// The report's ID_KEY_DIGEST, AUTHOR_KEY_DIGEST, FAMILY_ID and IMAGE_ID.
    #[serde(flatten)]
    pub values: IdBlockValues,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// The guest policy the launch must use, hex.
    pub policy: String,
}

impl Render for MeasureReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let measurement = match &self.values {
            MeasuredValues::Snp(v) => v.measurement.to_string(),
            MeasuredValues::SevEs(v) | MeasuredValues::Sev(v) => v.measurement.to_string(),
            MeasuredValues::Tdx(v) => v.mrtd.to_string(),
            MeasuredValues::Cca(v) => v.rim.to_string(),
        };
        writeln!(out, "tee:         {}", self.values.tee())?;
        writeln!(out, "measurement: {measurement}")?;
        if let Some(fd) = &self.firmware_digest {
            writeln!(out, "firmware digest: {fd}")?;
        }
        if let Some(b) = &self.id_block {
            writeln!(out, "id key digest:     {}", b.values.id_key_digest)?;
            if let Some(a) = &b.values.author_key_digest {
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
    simple(|| {
        refuse_inapplicable(args)?;
        match args.tee {
            Tee::Tdx => Output::new(&super::measure_tdx::report(args)?),
            Tee::Cca => Output::new(&super::measure_cca::report(args)?),
            _ => Output::new(&report(args)?),
        }
    })
}

/// Refuses every option that does not apply to `args.tee`: the plan's, and measure's
/// own, through the one mechanism [`plan_args::refuse_inapplicable`].
pub(super) fn refuse_inapplicable(args: &MeasureArgs) -> Result<(), CliError> {
    let mut given: Vec<Given> = args.plan.given();
    given.extend(args.td_owner.given());
    given.extend(args.realm.given());
    given.extend(plan_args::given(&[
        (
            "--memory",
            args.plan.memory.is_some(),
            super::plan_args::TDX_CCA,
        ),
        ("--firmware-digest", args.firmware_digest.is_some(), SNP),
        ("--event-log-out", args.event_log.is_some(), TDX),
        ("--id-key", args.id.id_key.is_some(), SNP),
        ("--explain", args.explain, super::plan_args::MEASURED_ALL),
    ]));
    plan_args::refuse_inapplicable(args.tee, &crate::tee_arg::MEASURED, &given)?;
    args.plan.check_boot(args.tee)
}

/// Computes the report for `args` (SNP, SEV-ES or SEV).
pub fn report(args: &MeasureArgs) -> Result<MeasureReport, CliError> {
    let tee = args.tee;
    let plan_args = &args.plan;
    // Check the ID block's inputs and load its keys before any hashing.
    let id_signer = IdSigner::from_args(&args.id, args.policy.unwrap_or(DEFAULT_POLICY))?;
    let firmware = plan_args.read_firmware()?;
    let fw_path = plan_args.firmware_path(tee);
    // Two cores' worth of work: while the firmware's pages are hashed for the launch
    // digest (SNP: SHA-384 per page) and the file for the report (SHA-256), the other
    // inputs are read and the plan is built (its kernel hashes table: SHA-256 of the
    // kernel). The plan is then measured with the page digests taken ahead of time from
    // the very buffer the plan's firmware pages borrow.
    let prehash = tee == Tee::Snp && args.firmware_digest.is_none();
    let fw_bytes: &[u8] = plan_args
        .firmware_bytes(tee, firmware.as_deref())
        .unwrap_or_default();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            (
                prehash.then(|| PageDigests::new(fw_bytes)),
                InputFile::new(&fw_path, fw_bytes),
            )
        });
        let files = plan_args.read_others()?;
        let inputs = plan_args.inputs(tee, firmware.as_deref(), &files, 0)?;
        let images = inputs.parse().map_err(|e| plan_args.blame(tee, e))?;
        let plan = inputs.plan(&images).map_err(|e| plan_args.blame(tee, e))?;
        super::log_plan(&plan);
        // A hashing thread cannot panic short of allocation failure; if it did, the
        // pages are hashed by `measure` and the file here.
        let (prehashed, firmware_file) = hashing
            .join()
            .unwrap_or_else(|_| (None, InputFile::new(&fw_path, fw_bytes)));
        // Pages not hashed ahead (SVSM, SEV-ES and SEV, `--firmware-digest`) are spread
        // over the cores.
        let threads = match (&prehashed, &plan_args.svsm) {
            (Some(_), None) => 1,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let measured = cvm_firmware::launch::measure(
            &plan,
            &Options {
                firmware_digest: args.firmware_digest,
                explain: args.explain,
                threads,
                prehashed: prehashed.as_ref(),
            },
        )
        .map_err(|e| plan_args.blame(tee, e))?;
        let values = measured.values();
        let (LaunchMeasurement::Sev(m), Some(values)) = (measured, values) else {
            return Err(CliError::Usage(format!(
                "--tee {tee} has no SEV measurement"
            )));
        };
        tracing::info!("measurement {}", hex::encode(&m.digest));
        let id_block = id_signer.map(|s| s.report(&m.digest)).transpose()?;
        let hashes = plan.kernel_hashes();
        // Plain SEV measures no register state, so no signature.
        let vcpu_sig = match tee {
            Tee::Sev => None,
            _ => plan_args.vcpu_signature(tee)?,
        };
        Ok(MeasureReport {
            format: MEASUREMENT_FORMAT,
            values,
            firmware_digest: m.firmware_digest.map(hex::encode),
            vcpus: plan_args.vcpus,
            vcpu_sig: vcpu_sig.map(|s| format!("{s:#x}")),
            vmm: plan_args.vmm.vmm_type(),
            guest_features: (tee == Tee::Snp).then(|| format!("{:#x}", plan.sev_features())),
            firmware: firmware_file,
            // The plan's kernel hashes are the files' SHA-256: reuse them.
            kernel: plan_args
                .kernel
                .as_deref()
                .zip(files.kernel.as_deref())
                .map(|(p, d)| InputFile::with_digest(p, d, hashes.map(|h| &h.kernel))),
            initrd: plan_args
                .initrd
                .as_deref()
                .zip(files.initrd.as_deref())
                .map(|(p, d)| InputFile::with_digest(p, d, hashes.map(|h| &h.initrd))),
            cmdline: plan_args.cmdline.clone(),
            svsm: plan_args
                .svsm
                .as_deref()
                .zip(files.svsm.as_deref())
                .map(|(p, d)| InputFile::new(p, d)),
            id_block,
            components: m.components,
        })
    })
}

/// An ID block's fields and keys, checked and loaded before the measurement is computed.
pub(super) struct IdSigner {
    block: IdBlock,
    id: SigningKey,
    id_path: PathBuf,
    author: Option<SigningKey>,
    rng: SystemRandom,
}

impl IdSigner {
    /// The signer `args` ask for (none without --id-key), for a launch with `policy`.
    pub(super) fn from_args(args: &IdBlockArgs, policy: u64) -> Result<Option<Self>, CliError> {
        let Some(id_key) = args.id_key.as_deref() else {
            return Ok(None);
        };
        let block = IdBlock {
            launch_digest: [0; 48],
            family_id: args.family_id.unwrap_or_default(),
            image_id: args.image_id.unwrap_or_default(),
            guest_svn: args.guest_svn,
            policy,
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
        Ok(Some(IdSigner {
            block,
            id,
            id_path: id_key.to_owned(),
            author,
            rng,
        }))
    }

    /// The ID block signed for the SNP launch digest `digest`.
    pub(super) fn sign(&mut self, digest: &[u8]) -> Result<id_block::SignedIdBlock, CliError> {
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
        id_block::sign(&self.block, &self.id, self.author.as_ref(), &self.rng)
            .map_err(|e| key_error(e.to_string()))
    }

    /// Signs the ID block for the SNP launch digest `digest`, for the report.
    fn report(mut self, digest: &[u8]) -> Result<IdBlockReport, CliError> {
        let signed = self.sign(digest)?;
        let block = &self.block;
        Ok(IdBlockReport {
            id_block: BASE64.encode(signed.id_block),
            id_auth: BASE64.encode(&signed.id_auth[..]),
            author_key_enabled: signed.author_key_digest.is_some(),
            values: IdBlockValues {
                id_key_digest: Hex(signed.id_key_digest),
                author_key_digest: signed.author_key_digest.map(Hex),
                family_id: Hex(block.family_id),
                image_id: Hex(block.image_id),
            },
            guest_svn: block.guest_svn,
            policy: format!("{:#x}", block.policy),
        })
    }
}
