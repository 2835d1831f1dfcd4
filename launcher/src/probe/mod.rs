//! `cvm probe`: what this host can launch.
//!
//! Probing is split in two so that the decision logic is testable on any machine:
//!
//! 1. [`gather`] reads facts from the system: sysfs/procfs files below a root directory
//!    (`/` on a real host, a fixture tree in tests) and the answers of the KVM device to
//!    real ioctls (through [`KvmQuery`], implemented for `/dev/kvm` by
//!    [`kvm::SystemKvm`]).
//! 2. [`assess`] turns those [`HostFacts`] into a [`ProbeReport`]: for each [`Tee`],
//!    available or not, and every unmet requirement in one line.

mod facts;
pub mod kvm;
mod report;
mod tee;

pub use facts::{
    AmdParams, Arch, CpuFacts, HostFacts, IntelParams, KvmFacts, SnpStatus, Tcb, gather,
};
pub use kvm::{HostDevices, KvmQuery, SystemDevices, VmTypes};
pub use report::{PROBE_SCHEMA, ProbeReport, TeeStatus, assess};
pub use tee::Tee;
