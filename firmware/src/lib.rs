//! Firmware and boot images, the launch plan, and launch measurement.
//!
//! Everything here works on `&[u8]`: no I/O, no KVM, no `unsafe`. Images are parsed into
//! a [`plan::LaunchPlan`] (the exact pages, page types, addresses and vCPU state a launch
//! loads); a measurement is a fold over that plan, and the launcher executes the same
//! plan, so the measured plan is the launched plan.
//!
//! ```
//! use cvm_firmware::{ovmf::OvmfImage, Tee, sev, measure};
//! # let image = vec![0u8; 4096];
//! let fw = OvmfImage::parse(&image)?;
//! let plan = sev::plan(&sev::SevConfig {
//!     tee: Tee::Snp,
//!     firmware: &fw,
//!     direct_boot: None,
//!     vcpus: 1,
//!     vcpu_sig: sev::cpu::signature_of("EPYC-Milan")?,
//!     vmm: sev::VmmType::Qemu,
//!     guest_features: 0x1,
//!     svsm: None,
//!     memory: None,
//! })?;
//! let m = measure::sev::measure(&plan, &Default::default())?;
//! assert_eq!(m.digest.len(), 48);
//! # Ok::<(), cvm_firmware::FirmwareError>(())
//! ```
//!
//! Specifications: SEV-SNP Firmware ABI 1.55 (SNP_LAUNCH_UPDATE, PAGE_INFO), SEV API
//! 0.24 (LAUNCH_MEASURE), AMD64 APM vol. 2 table B-4 (VMSA), OvmfPkg's reset-vector
//! footer table and SEV metadata, the Linux x86 boot protocol 2.12+.
//!
//! Parsers take untrusted bytes: no slice indexing, no `as` casts, no unchecked
//! arithmetic and no `unwrap` outside tests (enforced by the lints below).
#![forbid(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::arithmetic_side_effects))]

mod bytes;
pub mod bzimage;
pub mod cca;
pub mod edk2;
pub mod error;
pub mod fwcfg;
pub mod guid;
pub mod launch;
pub mod measure;
pub mod ovmf;
pub mod pe;
pub mod plan;
pub mod reference;
pub mod sev;
pub mod tdx;
pub mod tee;
pub mod vcpu;
pub mod x86;

pub use error::FirmwareError;
pub use tee::Tee;
