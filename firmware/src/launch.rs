//! Inputs to plan to measurement, for every TEE, in one place: `cvm measure`, `cvm
//! launch` and the reference values a verifier derives from a launch all call these
//! functions, so that the same inputs give the same plan and the same measurement.
//!
//! ```
//! use cvm_firmware::launch::{Inputs, SevInputs, measure};
//! use cvm_firmware::{Tee, sev::VmmType};
//! # let image = vec![0u8; 4096];
//! let inputs = Inputs::Sev(SevInputs {
//!     tee: Tee::Snp,
//!     firmware: &image,
//!     direct_boot: None,
//!     vcpus: 1,
//!     vcpu_sig: 0x00a0_0f11,
//!     vmm: VmmType::Qemu,
//!     guest_features: 0x1,
//!     svsm: None,
//!     memory: None,
//! });
//! let images = inputs.parse()?;
//! let plan = inputs.plan(&images)?;
//! let m = measure(&plan, &Default::default())?;
//! assert_eq!(m.tee(), Tee::Snp);
//! # Ok::<(), cvm_firmware::FirmwareError>(())
//! ```

use crate::error::{FirmwareError, Result};
use crate::measure::sev::{self as sev_measure, Options};
use crate::measure::tdx::{self as tdx_measure, TdxMeasurement};
use crate::ovmf::OvmfImage;
use crate::plan::LaunchPlan;
use crate::sev::{self, DirectBoot, SevConfig, Svsm, VmmType, vmsa};
use crate::tdx::{self, AddOrder, TdxConfig};
use crate::tee::Tee;
use crate::x86::{self, PlainConfig};

/// An SNP, SEV-ES or SEV launch's inputs.
#[derive(Debug, Clone, Copy)]
pub struct SevInputs<'a> {
    /// SNP, SEV-ES or SEV.
    pub tee: Tee,
    /// The OVMF image.
    pub firmware: &'a [u8],
    /// Measured direct boot (the kernel hashes table).
    pub direct_boot: Option<DirectBoot<'a>>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// The CPUID signature in RDX at reset (SNP and SEV-ES).
    pub vcpu_sig: u32,
    /// Whose reset conventions and page layout.
    pub vmm: VmmType,
    /// SNP: the VMSA `SEV_FEATURES`.
    pub guest_features: u64,
    /// SNP: an SVSM image, and the size of the variable store between it and the
    /// firmware.
    pub svsm: Option<(&'a [u8], u64)>,
    /// Guest RAM for a launch, laid out as QEMU's q35 machine does
    /// ([`crate::tdx::ram_ranges`]); `None` leaves the plan's RAM empty. Not measured.
    pub memory: Option<u64>,
}

/// A TDX launch's inputs.
#[derive(Debug, Clone, Copy)]
pub struct TdxInputs<'a> {
    /// The TDVF image.
    pub firmware: &'a [u8],
    /// Guest memory in bytes.
    pub memory: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// How pages are added and extended.
    pub order: AddOrder,
    /// Direct boot through TDVF (measured into RTMRs 1 and 2).
    pub direct_boot: Option<tdx::DirectBoot<'a>>,
    /// QEMU's `etc/acpi/tables` blob (measured into RTMR 0).
    pub acpi_tables: Option<&'a [u8]>,
    /// The edk2 recipe the firmware measures with (`None`: read from the image).
    pub recipe: Option<crate::edk2::Recipe>,
}

/// The inputs of a launch, per TEE: each holds only what its TEE uses, so an input of
/// another TEE cannot be given by mistake.
#[derive(Debug, Clone, Copy)]
pub enum Inputs<'a> {
    /// AMD SEV-SNP, SEV-ES, SEV.
    Sev(SevInputs<'a>),
    /// Intel TDX.
    Tdx(TdxInputs<'a>),
    /// A plain, unprotected guest.
    Plain(PlainConfig<'a>),
}

/// The images of [`Inputs`], parsed (a plan borrows them).
#[derive(Debug)]
pub struct Images<'a> {
    firmware: Option<OvmfImage<'a>>,
    svsm: Option<OvmfImage<'a>>,
}

impl<'a> Inputs<'a> {
    /// The TEE.
    pub fn tee(&self) -> Tee {
        match self {
            Inputs::Sev(s) => s.tee,
            Inputs::Tdx(_) => Tee::Tdx,
            Inputs::Plain(_) => Tee::None,
        }
    }

    /// Parses the firmware (and SVSM) images.
    pub fn parse(&self) -> Result<Images<'a>> {
        Ok(match self {
            Inputs::Sev(s) => Images {
                firmware: Some(OvmfImage::parse(s.firmware)?),
                svsm: s
                    .svsm
                    .map(|(image, _)| OvmfImage::parse_as(image, "SVSM image"))
                    .transpose()?,
            },
            Inputs::Tdx(t) => Images {
                firmware: Some(OvmfImage::parse(t.firmware)?),
                svsm: None,
            },
            Inputs::Plain(_) => Images {
                firmware: None,
                svsm: None,
            },
        })
    }

    /// The launch plan, built from these inputs and their parsed `images`.
    pub fn plan<'p>(&'p self, images: &'p Images<'a>) -> Result<LaunchPlan<'p>> {
        let parsed = |i: &'p Option<OvmfImage<'a>>| {
            i.as_ref().ok_or_else(|| {
                FirmwareError::Unsupported("the images were parsed from other inputs".into())
            })
        };
        match self {
            Inputs::Sev(s) => sev::plan(&SevConfig {
                tee: s.tee,
                memory: s.memory,
                firmware: parsed(&images.firmware)?,
                direct_boot: s.direct_boot,
                vcpus: s.vcpus,
                vcpu_sig: s.vcpu_sig,
                vmm: s.vmm,
                guest_features: s.guest_features,
                svsm: match (&s.svsm, &images.svsm) {
                    (Some((_, vars_size)), Some(image)) => Some(Svsm {
                        image,
                        vars_size: *vars_size,
                        x87_fcw: vmsa::X87_FCW_RESET,
                    }),
                    (None, _) => None,
                    (Some(_), None) => parsed(&images.svsm).map(|_| None)?,
                },
            }),
            Inputs::Tdx(t) => tdx::plan(&TdxConfig {
                firmware: parsed(&images.firmware)?,
                memory: t.memory,
                vcpus: t.vcpus,
                order: t.order,
                direct_boot: t.direct_boot,
                acpi_tables: t.acpi_tables,
                recipe: t.recipe,
            }),
            Inputs::Plain(cfg) => x86::plan(cfg),
        }
    }
}

/// A plan's launch measurement: what the hardware reports for it.
#[derive(Debug, Clone)]
pub enum LaunchMeasurement {
    /// SNP's launch digest, or SEV-ES's and SEV's LAUNCH_MEASURE digest.
    Sev(sev_measure::Measurement),
    /// TDX's MRTD, and the RTMRs where the plan determines them.
    Tdx(Box<TdxMeasurement>),
}

impl LaunchMeasurement {
    /// The TEE.
    pub fn tee(&self) -> Tee {
        match self {
            LaunchMeasurement::Sev(m) => m.tee,
            LaunchMeasurement::Tdx(_) => Tee::Tdx,
        }
    }
}

/// Measures `plan` as its TEE's hardware does (`opts` applies to SEV plans). A plain
/// plan has no measurement.
pub fn measure(plan: &LaunchPlan<'_>, opts: &Options<'_>) -> Result<LaunchMeasurement> {
    match plan.tee() {
        Tee::Tdx => tdx_measure::measure(plan).map(|m| LaunchMeasurement::Tdx(Box::new(m))),
        _ => sev_measure::measure(plan, opts).map(LaunchMeasurement::Sev),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_plain_plan_has_no_measurement_and_images_must_match_their_inputs() {
        let image = vec![0xf4u8; 4096];
        let inputs = Inputs::Plain(PlainConfig {
            boot: x86::Boot::Firmware(&image),
            memory: 8 << 20,
            vcpus: 1,
        });
        let images = inputs.parse().unwrap();
        let plan = inputs.plan(&images).unwrap();
        assert_eq!(plan.tee(), Tee::None);
        assert!(measure(&plan, &Options::default()).is_err());
        // SEV inputs with the (empty) images of plain inputs are refused.
        let fw = vec![0u8; 4096];
        let sev = Inputs::Sev(SevInputs {
            tee: Tee::Snp,
            firmware: &fw,
            direct_boot: None,
            vcpus: 1,
            vcpu_sig: 0,
            vmm: VmmType::Qemu,
            guest_features: 1,
            svsm: None,
            memory: Some(64 << 20),
        });
        assert!(sev.plan(&images).is_err());
        let own = sev.parse().unwrap();
        assert_eq!(sev.plan(&own).unwrap().tee(), Tee::Snp);
    }
}
