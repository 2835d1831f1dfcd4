//! The `cvm` command and its virtual machine monitor.
//!
//! `cvm` launches confidential guests on KVM (AMD SEV-SNP, Intel TDX, Arm CCA, or a plain
//! unprotected guest for development), computes their launch measurements before launch
//! (through `cvm-firmware`), and verifies attestation evidence (through `cvm-attest`).
//!
//! This crate holds the binary's logic so that it can be tested in-process:
//!
//! ```
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let code = cvm_launcher::cli::run(["cvm", "--version"], &mut out, &mut err);
//! assert_eq!(code, cvm_launcher::exit::ExitCode::Success);
//! ```

pub mod cli;
pub mod cmd;
pub mod error;
pub mod exit;
pub mod fetch;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod guest;
pub mod input;
pub mod keys;
pub mod output;
pub mod probe;
pub mod realm;
pub mod tee_arg;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod vmm;
