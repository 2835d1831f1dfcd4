//! The options that build a launch plan, one clap struct flattened into both `cvm
//! measure` and `cvm launch`: the same flags build the same plan
//! ([`cvm_firmware::launch::Inputs`]) in both. Each option says which TEEs' plans it
//! belongs to, and an option given for another TEE is refused by one mechanism
//! ([`refuse_inapplicable`]), which `cvm verify` uses for its options too.

use super::{InputKind, read_input};
use crate::error::CliError;
use crate::input::Input;
use clap::{Args, ValueEnum};
use cvm_firmware::launch::{Inputs, SevInputs, TdxInputs};
use cvm_firmware::sev::{self, VmmType, cpu};
use cvm_firmware::tdx::{self, AddOrder};
use cvm_firmware::x86::{Boot, PlainConfig};
use cvm_firmware::{FirmwareError, Tee};
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
    /// kvmtool (CCA realms).
    Kvmtool,
    /// cloud-hypervisor (CCA realms).
    CloudHv,
    /// cvm's own launcher (CCA realms: kvmtool's layout on KVM's v14 realm interface).
    Cvm,
}

impl Vmm {
    /// The firmware crate's name for it.
    pub fn vmm_type(self) -> VmmType {
        match self {
            // kvmtool and cloud-hypervisor are refused for SEV before a plan is built.
            Vmm::Qemu | Vmm::Kvmtool | Vmm::CloudHv | Vmm::Cvm => VmmType::Qemu,
            Vmm::Ec2 => VmmType::Ec2,
            Vmm::Gce => VmmType::Gce,
        }
    }
}

/// The order in which a TD's measured pages are added and extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MrtdOrder {
    /// Page by page (Linux 6.16+ KVM, QEMU 9+).
    SinglePass,
    /// All pages of a section, then all extends (QEMU 8.x).
    TwoPass,
}

impl MrtdOrder {
    /// The firmware crate's name for it.
    pub fn add_order(self) -> AddOrder {
        match self {
            MrtdOrder::SinglePass => AddOrder::SinglePass,
            MrtdOrder::TwoPass => AddOrder::TwoPass,
        }
    }
}

/// The edk2 recipe a TDVF image measures with (`--tdvf-recipe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TdvfRecipe {
    /// Before edk2-stable202505: no fw_cfg cache events, " initrd=initrd" after the
    /// command line (what the reference tools model).
    #[value(name = "before-202505")]
    Before202505,
    /// edk2-stable202505: fw_cfg cache events and SMBIOS in RTMR 0.
    #[value(name = "202505")]
    Stable202505,
    /// edk2-stable202508 and later: also "initrd=initrd " before the command line.
    #[value(name = "202508")]
    Stable202508,
}

impl TdvfRecipe {
    /// The firmware crate's recipe.
    pub fn recipe(self) -> cvm_firmware::edk2::Recipe {
        use cvm_firmware::edk2::Recipe;
        match self {
            TdvfRecipe::Before202505 => Recipe::BEFORE_202505,
            TdvfRecipe::Stable202505 => Recipe::STABLE_202505,
            TdvfRecipe::Stable202508 => Recipe::STABLE_202508,
        }
    }
}

/// The options that build a launch plan.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The firmware image (OVMF or TDVF; for a plain guest any image that ends at 4 GiB).
    #[arg(long, value_name = "FILE")]
    pub firmware: Option<PathBuf>,
    /// A kernel for direct boot (bzImage; measured for SNP, SEV-ES and SEV through the
    /// kernel hashes table, for TDX into RTMR 1).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// The initrd for --kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line (also read by the built-in guest).
    #[arg(long, value_name = "STR")]
    pub cmdline: Option<String>,
    /// Number of vCPUs: 1 to 4096, the most KVM on x86 allows (CONFIG_KVM_MAX_NR_VCPUS);
    /// a plain guest takes at most 255.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub vcpus: u32,
    /// Guest memory, in bytes or with a K, M or G suffix (powers of 1024). Measured for
    /// TDX only (the TD HOB and the kernel patch depend on it; default 2G); a plain
    /// launch defaults to 128M.
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size)]
    pub memory: Option<u64>,
    /// SNP, SEV-ES: the QEMU CPU model (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan,
    /// EPYC-Genoa, EPYC-Turin, ...).
    #[arg(long, value_name = "NAME", group = "cpu")]
    pub vcpu_type: Option<String>,
    /// SNP, SEV-ES: the CPUID signature (CPUID Fn0000_0001_EAX), decimal or 0x-hex.
    #[arg(long, value_name = "N", value_parser = parse_u32, group = "cpu")]
    pub vcpu_sig: Option<u32>,
    /// SNP, SEV-ES: CPU family (with --vcpu-model and --vcpu-stepping): 0 to 270, what
    /// CPUID's family and extended family fields can say (0xf + 0xff).
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
    /// SNP, SEV-ES, SEV: whose vCPU reset conventions and page layout to follow.
    #[arg(long, value_enum, default_value_t = Vmm::Qemu)]
    pub vmm: Vmm,
    /// SNP: the VMSA SEV_FEATURES, hex (default 0x1). KVM on Linux 6.6+ uses 0x21 when
    /// DebugSwap is available; give the host's real value.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_u64)]
    pub guest_features: Option<u64>,
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
    /// TDX: the edk2 release whose recipe the firmware measures with (default: read from
    /// the image, and reported).
    #[arg(long, value_enum, value_name = "RELEASE")]
    pub tdvf_recipe: Option<TdvfRecipe>,
}

/// The SEV family.
pub const SEV: &[Tee] = &[Tee::Snp, Tee::SevEs, Tee::Sev];
/// SNP alone.
pub const SNP: &[Tee] = &[Tee::Snp];
/// TDX alone.
pub const TDX: &[Tee] = &[Tee::Tdx];
/// Arm CCA alone.
pub const CCA: &[Tee] = &[Tee::Cca];
/// The TEEs whose evidence has vendor collateral (certificates, CRLs, TCB Info).
pub const SNP_TDX: &[Tee] = &[Tee::Snp, Tee::Tdx];
/// TDX and CCA (whose measurements depend on the guest's memory).
pub const TDX_CCA: &[Tee] = &[Tee::Tdx, Tee::Cca];
/// Every TEE `cvm measure` measures.
pub const MEASURED_ALL: &[Tee] = &[Tee::Snp, Tee::SevEs, Tee::Sev, Tee::Tdx, Tee::Cca];
/// Every TEE a plan is built for.
pub const PLANNED: &[Tee] = &[Tee::Snp, Tee::SevEs, Tee::Sev, Tee::Tdx, Tee::None];

/// An option that was given, and the TEEs it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Given {
    /// Its flag.
    pub flag: &'static str,
    /// The TEEs it means something for.
    pub applies_to: &'static [Tee],
}

/// The options of `given` that are set, as [`Given`]s.
pub fn given(options: &[(&'static str, bool, &'static [Tee])]) -> Vec<Given> {
    options
        .iter()
        .filter(|(_, set, _)| *set)
        .map(|&(flag, _, applies_to)| Given { flag, applies_to })
        .collect()
}

/// Refuses the first of `given` that does not apply to `tee`: a pipeline that passes an
/// option expects it to change the result, so it is never ignored. The message names the
/// TEEs the option applies to among `command_tees`, those the command takes.
pub fn refuse_inapplicable(
    tee: Tee,
    command_tees: &[Tee],
    given: &[Given],
) -> Result<(), CliError> {
    match given.iter().find(|g| !g.applies_to.contains(&tee)) {
        Some(g) => {
            let names: Vec<_> = g
                .applies_to
                .iter()
                .filter(|t| command_tees.contains(t))
                .map(|t| t.name())
                .collect();
            Err(CliError::Usage(if names.is_empty() {
                format!("{} does not apply to this command", g.flag)
            } else {
                format!(
                    "{} applies to --tee {} only, not --tee {tee}",
                    g.flag,
                    names.join(", ")
                )
            }))
        }
        None => Ok(()),
    }
}

/// The files a plan is built from, read, but the firmware (which is read first, so that
/// its pages can be hashed while these are read).
#[derive(Debug, Default)]
pub struct PlanFiles {
    /// `--kernel`, or the built-in guest.
    pub kernel: Option<Input>,
    /// `--initrd`.
    pub initrd: Option<Input>,
    /// `--svsm`.
    pub svsm: Option<Input>,
    /// `--acpi-tables`.
    pub acpi_tables: Option<Input>,
}

fn read(path: Option<&Path>, kind: InputKind) -> Result<Option<Input>, CliError> {
    path.map(|p| read_input(p, kind)).transpose()
}

impl PlanArgs {
    /// The plan options that were given, with the TEEs each applies to. `--memory` is
    /// the command's to add: a launch of any TEE needs memory, but only a TD's
    /// measurement depends on it.
    pub fn given(&self) -> Vec<Given> {
        given(&[
            (
                "--vcpu-type/--vcpu-sig/--vcpu-family",
                self.vcpu_type.is_some() || self.vcpu_sig.is_some() || self.vcpu_family.is_some(),
                SEV,
            ),
            (
                "--vmm ec2|gce",
                matches!(self.vmm, Vmm::Ec2 | Vmm::Gce),
                SEV,
            ),
            (
                "--vmm kvmtool|cloud-hv|cvm",
                matches!(self.vmm, Vmm::Kvmtool | Vmm::CloudHv | Vmm::Cvm),
                CCA,
            ),
            ("--guest-features", self.guest_features.is_some(), SNP),
            ("--svsm", self.svsm.is_some(), SNP),
            ("--acpi-tables", self.acpi_tables.is_some(), TDX),
            ("--patch-kernel", self.patch_kernel, TDX),
            ("--tdvf-recipe", self.tdvf_recipe.is_some(), TDX),
            (
                "--mrtd-order",
                self.mrtd_order != MrtdOrder::SinglePass,
                TDX,
            ),
        ])
    }

    /// Reads `--firmware` (alone, so that hashing it can start while the rest is read).
    pub fn read_firmware(&self) -> Result<Option<Input>, CliError> {
        read(self.firmware.as_deref(), InputKind::Firmware)
    }

    /// Reads every file but the firmware.
    pub fn read_others(&self) -> Result<PlanFiles, CliError> {
        Ok(PlanFiles {
            kernel: read(self.kernel.as_deref(), InputKind::Kernel)?,
            initrd: read(self.initrd.as_deref(), InputKind::Initrd)?,
            svsm: read(self.svsm.as_deref(), InputKind::Firmware)?,
            acpi_tables: read(self.acpi_tables.as_deref(), InputKind::AcpiTables)?,
        })
    }

    /// The CPUID signature QEMU puts in RDX. EC2 and GCE use a fixed value, and plain SEV
    /// does not measure register state, so none is needed there.
    pub fn vcpu_signature(&self, tee: Tee) -> Result<Option<u32>, CliError> {
        let given = match (&self.vcpu_type, self.vcpu_sig, self.vcpu_family) {
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
                self.vcpu_model.unwrap_or(0),
                self.vcpu_stepping.unwrap_or(0),
            )),
            (None, None, None) => None,
        };
        if given.is_none() && tee != Tee::Sev && self.vmm == Vmm::Qemu {
            return Err(CliError::Usage(
                "QEMU puts the vCPU's CPUID signature in the measured register state: give \
                 --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping"
                    .into(),
            ));
        }
        Ok(given)
    }

    /// Refuses boot options that do not go together for `tee`, before any file is read.
    pub fn check_boot(&self, tee: Tee) -> Result<(), CliError> {
        let kernel_given = self.kernel.is_some();
        // The built-in guest reads a command line too; firmware does not.
        if self.cmdline.is_some() && !kernel_given && (tee != Tee::None || self.firmware.is_some())
        {
            return Err(CliError::Usage(
                "--cmdline is the kernel's: give --kernel too".into(),
            ));
        }
        Ok(())
    }

    /// The image an SNP or TDX plan without `--firmware`, `--kernel` or `--svsm` is
    /// built from, for `cvm measure` and `cvm launch` alike: the built-in attesting guest.
    pub fn builtin_firmware(&self, tee: Tee) -> Option<&'static [u8]> {
        let none_given = self.firmware.is_none() && self.kernel.is_none() && self.svsm.is_none();
        (none_given && matches!(tee, Tee::Snp | Tee::Tdx)).then_some(crate::guest::ATTEST_GUEST)
    }

    /// The firmware bytes of a `tee` plan: `read` (`--firmware`'s), else the built-in
    /// attesting guest's where that is the plan's.
    pub fn firmware_bytes<'a>(&self, tee: Tee, read: Option<&'a [u8]>) -> Option<&'a [u8]> {
        read.or_else(|| self.builtin_firmware(tee))
    }

    /// The path reports give for the firmware of a `tee` plan (empty when there is none).
    pub fn firmware_path(&self, tee: Tee) -> PathBuf {
        match (&self.firmware, self.builtin_firmware(tee)) {
            (Some(path), _) => path.clone(),
            (None, Some(_)) => PathBuf::from(crate::guest::ATTEST_GUEST_NAME),
            (None, None) => PathBuf::new(),
        }
    }

    /// The firmware crate's inputs for a `tee` plan from `firmware` and `files` (memory
    /// defaulting to `default_memory`; for SEV plans 0 lays out no RAM, which only a
    /// launch needs). Options of another TEE must have been refused
    /// ([`refuse_inapplicable`]).
    pub fn inputs<'a>(
        &'a self,
        tee: Tee,
        firmware_image: Option<&'a [u8]>,
        files: &'a PlanFiles,
        default_memory: u64,
    ) -> Result<Inputs<'a>, CliError> {
        let firmware = || match self.firmware_bytes(tee, firmware_image) {
            // It starts no APs (and every TDX vCPU would run it from the reset vector).
            Some(_) if firmware_image.is_none() && self.vcpus > 1 => Err(CliError::Usage(
                "the built-in attesting guest runs on one vCPU: give --firmware for --vcpus".into(),
            )),
            Some(image) => Ok(image),
            None => Err(CliError::Usage(format!(
                "--tee {tee} needs --firmware (the OVMF image){}",
                if self.kernel.is_some() || self.svsm.is_some() {
                    " with --kernel or --svsm"
                } else {
                    ""
                }
            ))),
        };
        let memory = self.memory.unwrap_or(default_memory);
        let cmdline = self.cmdline.as_deref();
        self.check_boot(tee)?;
        match tee {
            Tee::Snp | Tee::SevEs | Tee::Sev => Ok(Inputs::Sev(SevInputs {
                tee,
                firmware: firmware()?,
                direct_boot: files.kernel.as_deref().map(|kernel| sev::DirectBoot {
                    kernel,
                    initrd: files.initrd.as_deref(),
                    cmdline,
                }),
                vcpus: self.vcpus,
                vcpu_sig: self.vcpu_signature(tee)?.unwrap_or(0),
                vmm: self.vmm.vmm_type(),
                guest_features: self.guest_features.unwrap_or(DEFAULT_GUEST_FEATURES),
                svsm: files
                    .svsm
                    .as_deref()
                    .map(|image| (image, self.vars_size.unwrap_or(0))),
                memory: Some(memory).filter(|&m| m > 0),
            })),
            Tee::Tdx => Ok(Inputs::Tdx(TdxInputs {
                firmware: firmware()?,
                memory,
                vcpus: self.vcpus,
                order: self.mrtd_order.add_order(),
                direct_boot: files.kernel.as_deref().map(|kernel| tdx::DirectBoot {
                    kernel,
                    initrd: files.initrd.as_deref(),
                    cmdline,
                    patch_kernel: self.patch_kernel,
                }),
                acpi_tables: files.acpi_tables.as_deref(),
                recipe: self.tdvf_recipe.map(TdvfRecipe::recipe),
            })),
            Tee::None => {
                let boot = match (firmware_image, files.kernel.as_deref()) {
                    (Some(image), None) => Boot::Firmware(image),
                    (Some(firmware), Some(kernel)) => Boot::FirmwareKernel {
                        firmware,
                        kernel,
                        initrd: files.initrd.as_deref(),
                        cmdline: cmdline.unwrap_or(""),
                    },
                    (None, Some(kernel)) => Boot::Linux {
                        kernel,
                        initrd: files.initrd.as_deref(),
                        cmdline: cmdline.unwrap_or(""),
                    },
                    (None, None) => {
                        return Err(CliError::Usage(
                            "a plain guest needs --firmware or --kernel".into(),
                        ));
                    }
                };
                Ok(Inputs::Plain(PlainConfig {
                    boot,
                    memory,
                    vcpus: self.vcpus,
                }))
            }
            Tee::Cca | Tee::Sgx => Err(CliError::Usage(format!(
                "cvm builds no --tee {tee} plan yet"
            ))),
        }
    }

    /// The error of building or measuring a plan, naming the file it is about.
    pub fn blame(&self, tee: Tee, source: FirmwareError) -> CliError {
        let path = match source.image() {
            Some("kernel") => self.kernel.clone(),
            Some("ACPI tables") => self.acpi_tables.clone(),
            Some("SVSM image") => self.svsm.clone(),
            Some(_) => self.firmware.clone(),
            None => None,
        };
        let path = path.unwrap_or_else(|| {
            PathBuf::from(format!(
                "{} ({tee} launch plan)",
                self.firmware
                    .as_deref()
                    .or(self.kernel.as_deref())
                    .map_or_else(|| "the built-in guest".into(), |p| p.display().to_string())
            ))
        });
        CliError::Firmware { path, source }
    }
}

/// SEV_FEATURES when `--guest-features` is not given: SNPActive alone (bit 0).
pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;

/// A 32-bit number, decimal or 0x-hex.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

/// A 64-bit number in hex, with or without 0x.
pub fn parse_hex_u64(s: &str) -> Result<u64, String> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(h, 16).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn an_option_of_another_tee_is_refused_naming_its_tees() {
        let g = given(&[("--acpi-tables", true, TDX), ("--vmm", false, SEV)]);
        assert!(refuse_inapplicable(Tee::Tdx, PLANNED, &g).is_ok());
        let e = refuse_inapplicable(Tee::Snp, PLANNED, &g)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--acpi-tables applies to --tee tdx only, not --tee snp");
        let e = refuse_inapplicable(Tee::None, PLANNED, &given(&[("--vmm", true, SEV)]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--vmm applies to --tee snp, sev-es, sev only, not --tee none"
        );
    }

    #[test]
    fn the_message_names_only_the_commands_tees() {
        let g = given(&[("--memory", true, &[Tee::Tdx, Tee::None])]);
        let e = refuse_inapplicable(Tee::Snp, &[Tee::Snp, Tee::Tdx], &g)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--memory applies to --tee tdx only, not --tee snp");
        let e = refuse_inapplicable(Tee::Snp, &[Tee::Snp], &g)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--memory does not apply to this command");
    }
}
