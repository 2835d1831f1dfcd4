//! Intel TDX: the launch backend ([`TdxBackend`]), the hardware side it drives
//! ([`TdxHardware`]: one method per KVM ioctl of Linux 6.16's TDX interface), and the
//! model of KVM and the TDX module ([`model::TdxModel`]) that implements that side on any
//! host, for `cvm launch --dry-run` and for the tests.
//!
//! Sources: `arch/x86/kvm/vmx/tdx.c` and `Documentation/virt/kvm/x86/intel-tdx.rst`
//! (Linux 6.16), QEMU's `target/i386/kvm/tdx.c`, the TDX module 1.5 source
//! (`intel/tdx-module`), as collected in ../shared/MODELS.md section 4.

mod backend;
mod kvm;
pub mod model;
pub mod qgs;
mod sys;

pub use backend::{TdxBackend, TdxLaunch, get_quote};

use super::backend::PrivateMemory;
use super::cc::CommandError;
use kvm_bindings::kvm_cpuid_entry2;

/// `KVM_X86_TDX_VM`.
pub const VM_TYPE: u64 = 5;
/// TD attribute bit 0, DEBUG: the host may read and write the TD's state and memory.
pub const ATTR_DEBUG: u64 = 1 << 0;
/// TD attribute bit 28, SEPT_VE_DISABLE: EPT violations on pending pages are not
/// reflected to the TD as #VE (QEMU's default, `sept-ve-disable=on`).
pub const ATTR_SEPT_VE_DISABLE: u64 = 1 << 28;
/// `KVM_TDX_MEASURE_MEMORY_REGION`.
pub const MEASURE_MEMORY_REGION: u32 = 1 << 0;

/// What `KVM_TDX_CAPABILITIES` reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TdxCaps {
    /// TD attributes KVM and the module support.
    pub supported_attrs: u64,
    /// XFAM bits supported.
    pub supported_xfam: u64,
    /// TDVMCALL leaves KVM handles itself (GetTdVmCallInfo leaf 1, R11).
    pub kernel_tdvmcallinfo_1_r11: u64,
    /// TDVMCALL leaves KVM forwards to the VMM (R11).
    pub user_tdvmcallinfo_1_r11: u64,
    /// `KVM_TDX_CAP_*`.
    pub supported_caps: u64,
    /// The CPUID leaves the VMM may configure, each register a mask of the configurable
    /// bits.
    pub cpuid: Vec<kvm_cpuid_entry2>,
}

/// What `KVM_TDX_INIT_VM` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct TdxInitVm {
    /// TD attributes.
    pub attributes: u64,
    /// XFAM.
    pub xfam: u64,
    /// MRCONFIGID.
    pub mrconfigid: [u8; 48],
    /// MROWNER.
    pub mrowner: [u8; 48],
    /// MROWNERCONFIG.
    pub mrownerconfig: [u8; 48],
    /// The CPUID configuration.
    pub cpuid: Vec<kvm_cpuid_entry2>,
}

/// `struct kvm_tdx_init_mem_region`, which KVM updates in place as it makes progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    /// The source's host address.
    pub source_addr: u64,
    /// The first guest physical address.
    pub gpa: u64,
    /// Pages left.
    pub nr_pages: u64,
}

/// The hardware side of a TDX launch: KVM's TDX interface (`KVM_MEMORY_ENCRYPT_OP` with a
/// `struct kvm_tdx_cmd`, on the VM or a vCPU). [`super::kvm::KvmHardware`] issues the real
/// ioctls; [`model::TdxModel`] models them.
pub trait TdxHardware: PrivateMemory {
    /// `KVM_TDX_CAPABILITIES` (vm).
    fn tdx_capabilities(&mut self) -> Result<TdxCaps, CommandError>;
    /// `KVM_TDX_INIT_VM` (vm), before any vCPU.
    fn tdx_init_vm(&mut self, init: &TdxInitVm) -> Result<(), CommandError>;
    /// `KVM_TDX_INIT_VCPU` (vcpu `id`), RCX = `rcx` at the TD's first entry.
    fn tdx_init_vcpu(&mut self, id: u32, rcx: u64) -> Result<(), CommandError>;
    /// `KVM_TDX_INIT_MEM_REGION` (vcpu `id`), measured (TDH.MR.EXTEND) when `measure`.
    fn tdx_init_mem_region(
        &mut self,
        id: u32,
        region: &mut MemRegion,
        measure: bool,
    ) -> Result<(), CommandError>;
    /// `KVM_TDX_FINALIZE_VM` (vm): TDH.MR.FINALIZE, after which MRTD is final.
    fn tdx_finalize_vm(&mut self) -> Result<(), CommandError>;
}
