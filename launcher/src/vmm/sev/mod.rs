//! AMD SEV, SEV-ES and SEV-SNP: the launch backend ([`SevBackend`]), the hardware side it
//! drives ([`SevHardware`]: one method per KVM ioctl, as Linux's uAPI defines it), and
//! the model of KVM and the AMD Secure Processor ([`model::SevModel`]) that implements
//! that side on any host, for `cvm launch --dry-run` and for the tests.
//!
//! Sources: `arch/x86/kvm/svm/sev.c` and `Documentation/virt/kvm/x86/
//! amd-memory-encryption.rst` (Linux 6.11+), QEMU's `target/i386/sev.c`, AMD's SEV
//! firmware (`amd/AMD-ASPFW`, `sev_mcmd.c`), as collected in ../shared/MODELS.md.

mod backend;
pub mod cpuid;
mod kvm;
pub mod model;
mod sys;

pub use backend::{SevBackend, SevLaunch};

use super::LaunchError;
use super::backend::PrivateMemory;

/// VMSA `SEV_FEATURES` bit 0, SNP_ACTIVE: KVM sets it for every SNP vCPU (sev.c,
/// `sev_vm_init`/INIT2), whatever the VMM asks.
pub const SNP_ACTIVE: u64 = 1;

/// The SNP guest policy bit that must be one (SEV-SNP ABI, GUEST_POLICY bit 17).
pub const SNP_POLICY_RESERVED_ONE: u64 = 1 << 17;
/// SNP guest policy bit 19, DEBUG: the host may decrypt the guest's memory.
pub const SNP_POLICY_DEBUG: u64 = 1 << 19;
/// SEV guest policy bit 0, NODBG: debugging is forbidden (SEV API, guest policy).
pub const SEV_POLICY_NODBG: u32 = 1 << 0;
/// SEV guest policy bit 2, ES: the guest is an SEV-ES guest.
pub const SEV_POLICY_ES: u32 = 1 << 2;

/// A KVM VM type of the SEV family (arch/x86/include/uapi/asm/kvm.h).
pub fn vm_type(tee: cvm_firmware::Tee) -> Option<u64> {
    use crate::probe::kvm::VmTypes;
    match tee {
        cvm_firmware::Tee::Sev => Some(VmTypes::SEV),
        cvm_firmware::Tee::SevEs => Some(VmTypes::SEV_ES),
        cvm_firmware::Tee::Snp => Some(VmTypes::SNP),
        _ => None,
    }
    .map(u64::from)
}

pub use crate::vmm::cc::CommandError;

/// A failed `KVM_SET_MEMORY_ATTRIBUTES` on `[gpa, gpa + len)`, as a launch error.
pub(crate) fn attributes_error(gpa: u64, len: u64, private: bool, e: CommandError) -> LaunchError {
    LaunchError::Command {
        step: format!(
            "set {gpa:#x}+{len:#x} {}",
            if private { "private" } else { "shared" }
        ),
        source: e,
    }
}

/// The name of an AMD-SP status (`enum sev_ret_code`, include/uapi/linux/psp-sev.h,
/// with the renumbering of INVALID_PAGE_SIZE..RMP_INIT_REQUIRED to 0x19..0x20; older
/// headers numbered them 0x28..0x2D, which no firmware returns).
pub fn fw_error_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0x01 => "INVALID_PLATFORM_STATE",
        0x02 => "INVALID_GUEST_STATE",
        0x03 => "INVALID_CONFIG",
        0x04 => "INVALID_LEN",
        0x05 => "ALREADY_OWNED",
        0x06 => "INVALID_CERTIFICATE",
        0x07 => "POLICY_FAILURE",
        0x08 => "INACTIVE",
        0x09 => "INVALID_ADDRESS",
        0x0a => "BAD_SIGNATURE",
        0x0b => "BAD_MEASUREMENT",
        0x0c => "ASID_OWNED",
        0x0d => "INVALID_ASID",
        0x0e => "WBINVD_REQUIRED",
        0x0f => "DFFLUSH_REQUIRED",
        0x10 => "INVALID_GUEST",
        0x11 => "INVALID_COMMAND",
        0x12 => "ACTIVE",
        0x13 => "HWERROR_PLATFORM",
        0x14 => "HWERROR_UNSAFE",
        0x15 => "UNSUPPORTED",
        0x16 => "INVALID_PARAM",
        0x17 => "RESOURCE_LIMIT",
        0x18 => "SECURE_DATA_INVALID",
        0x19 => "INVALID_PAGE_SIZE",
        0x1a => "INVALID_PAGE_STATE",
        0x1b => "INVALID_MDATA_ENTRY",
        0x1c => "INVALID_PAGE_OWNER",
        0x1d => "AEAD_OFLOW",
        0x1f => "EXIT_RING_BUFFER",
        0x20 => "RMP_INIT_REQUIRED",
        0x21 => "BAD_SVN",
        0x22 => "BAD_VERSION",
        0x23 => "SHUTDOWN_REQUIRED",
        0x24 => "UPDATE_FAILED",
        0x25 => "RESTORE_REQUIRED",
        0x26 => "RMP_INITIALIZATION_FAILED",
        0x27 => "INVALID_KEY",
        _ => return None,
    })
}

/// AMD-SP statuses the backend and model name.
pub mod fw {
    /// The guest is not in the state the command needs.
    pub const INVALID_GUEST_STATE: u32 = 0x02;
    /// A length is wrong.
    pub const INVALID_LEN: u32 = 0x04;
    /// The policy is not allowed.
    pub const POLICY_FAILURE: u32 = 0x07;
    /// An address is not aligned.
    pub const INVALID_ADDRESS: u32 = 0x09;
    /// A signature does not verify.
    pub const BAD_SIGNATURE: u32 = 0x0a;
    /// The ID block's digest is not the launch digest.
    pub const BAD_MEASUREMENT: u32 = 0x0b;
    /// The platform cannot do this.
    pub const UNSUPPORTED: u32 = 0x15;
    /// A parameter is invalid (also: a CPUID page the firmware corrected).
    pub const INVALID_PARAM: u32 = 0x16;
    /// The guest message's sequence number or authentication failed.
    pub const AEAD_OFLOW: u32 = 0x1d;
}

/// `struct kvm_sev_snp_launch_update`'s fields, which KVM rewrites after partial
/// progress (sev.c `snp_launch_update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpUpdate {
    /// The first guest frame.
    pub gfn_start: u64,
    /// The source's host address (ignored for ZERO pages).
    pub uaddr: u64,
    /// Bytes left.
    pub len: u64,
    /// The page type (`KVM_SEV_SNP_PAGE_TYPE_*`).
    pub page_type: u8,
}

/// An ID block and its authentication information, for SNP_LAUNCH_FINISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBlockInput {
    /// The 96-byte ID block.
    pub block: [u8; 96],
    /// The 4096-byte ID authentication information.
    pub auth: Box<[u8; 4096]>,
    /// AUTH_KEY_EN: the author key in `auth` signed the ID key.
    pub author_key: bool,
}

/// What SNP_LAUNCH_FINISH takes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnpFinish {
    /// The ID block, if any.
    pub id_block: Option<IdBlockInput>,
    /// HOST_DATA, reported in the guest's attestation reports.
    pub host_data: [u8; 32],
}

/// The hardware side of an SEV launch: KVM's SEV interface on the VM file descriptor
/// (`KVM_MEMORY_ENCRYPT_OP`), its memory attributes and guest_memfd, and the host's
/// capabilities. [`super::kvm::KvmHardware`] issues the real ioctls; [`model::SevModel`]
/// models them. Each method is one ioctl (or, for a capability, one query).
pub trait SevHardware: PrivateMemory {
    /// `KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES)` on /dev/kvm.
    fn vmsa_features(&mut self) -> Result<u64, CommandError>;
    /// `KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, KVM_X86_SNP_POLICY_BITS)` (Linux 6.19+;
    /// `None` when the kernel does not have it, ENXIO).
    fn snp_policy_bits(&mut self) -> Result<Option<u64>, CommandError>;
    /// `KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, KVM_X86_SEV_SNP_REQ_CERTS)`: whether KVM can
    /// hand extended guest requests' certificate fetches to the VMM (Linux 7.0+; `false`
    /// when the attribute is unknown, ENXIO).
    fn snp_req_certs_supported(&mut self) -> Result<bool, CommandError>;
    /// `KVM_SEV_SNP_ENABLE_REQ_CERTS`: exit with `KVM_EXIT_SNP_REQ_CERTS` on extended
    /// report requests (before any vCPU runs).
    fn snp_enable_req_certs(&mut self) -> Result<(), CommandError>;
    /// `KVM_SEV_INIT2`.
    fn sev_init2(&mut self, vmsa_features: u64, ghcb_version: u16) -> Result<(), CommandError>;
    /// `KVM_MEMORY_ENCRYPT_REG_REGION` (SEV, SEV-ES): pins the guest RAM at `[gpa, gpa +
    /// len)`.
    fn register_encrypted_region(&mut self, gpa: u64, len: u64) -> Result<(), CommandError>;
    /// `KVM_SEV_SNP_LAUNCH_START` with `policy` (GOSVW zero, flags zero).
    fn snp_launch_start(&mut self, policy: u64) -> Result<(), CommandError>;
    /// `KVM_SEV_SNP_LAUNCH_UPDATE`: on success `update` holds what KVM wrote back, which
    /// may be partial progress.
    fn snp_launch_update(&mut self, update: &mut SnpUpdate) -> Result<(), CommandError>;
    /// `KVM_SEV_SNP_LAUNCH_FINISH`: KVM encrypts and measures every vCPU's VMSA, then the
    /// firmware checks the ID block.
    fn snp_launch_finish(&mut self, finish: &SnpFinish) -> Result<(), CommandError>;
    /// `KVM_SEV_LAUNCH_START` (SEV, SEV-ES) with `policy`, no session.
    fn launch_start(&mut self, policy: u32) -> Result<(), CommandError>;
    /// `KVM_SEV_LAUNCH_UPDATE_DATA`.
    fn launch_update_data(&mut self, uaddr: u64, len: u64) -> Result<(), CommandError>;
    /// `KVM_SEV_LAUNCH_UPDATE_VMSA` (SEV-ES): every vCPU's VMSA.
    fn launch_update_vmsa(&mut self) -> Result<(), CommandError>;
    /// `KVM_SEV_LAUNCH_MEASURE`: the 32-byte MEASURE and 16-byte MNONCE.
    fn launch_measure(&mut self) -> Result<[u8; 48], CommandError>;
    /// `KVM_SEV_LAUNCH_FINISH`.
    fn launch_finish(&mut self) -> Result<(), CommandError>;
}
