//! The seam between the VMM core and the TEEs.
//!
//! The VMM core ([`super::setup`]) drives a [`Backend`] through a launch's phases, in
//! order: create the VM of the backend's type, prepare guest memory, load every step of
//! the plan, set up every vCPU, finalize. The backend turns each phase into operations on
//! the [`Hardware`]: KVM itself ([`super::kvm::KvmHardware`]), or a [`super::record::Recorder`]
//! that keeps the operations for tests (and the confidential backends' models, which also
//! check each operation as the firmware would). A backend that cannot do something returns
//! a typed [`LaunchError::Unsupported`], never a panic.
//!
//! Only the `none` backend exists so far ([`super::none::NoneBackend`]).

use super::{IrqChip, LaunchError};
use cvm_firmware::Tee;
use cvm_firmware::plan::{LaunchPlan, Step};
use cvm_firmware::vcpu::VcpuState;
use kvm_ioctls::VcpuExit;

/// A KVM VM type (`KVM_CREATE_VM`'s argument; include/uapi/linux/kvm.h and
/// arch/x86/include/uapi/asm/kvm.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmType(pub u64);

impl VmType {
    /// `KVM_X86_DEFAULT_VM`: a plain VM.
    pub const DEFAULT: VmType = VmType(0);
}

/// Where the guest's platform devices are: what the VM needs before memory and vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformOptions {
    /// The interrupt controllers.
    pub irqchip: IrqChip,
    /// Whether KVM emulates the PIT (in-kernel irqchip only).
    pub pit: bool,
}

/// The operations a backend performs on the hardware side of a launch: KVM's VM and vCPU
/// ioctls, and the guest memory the VMM maps. Each returns a typed error naming the step.
pub trait Hardware {
    /// `KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES)`: a bit per VM type KVM offers.
    fn vm_types(&mut self) -> Result<u64, LaunchError>;
    /// `KVM_GET_SUPPORTED_CPUID`.
    fn supported_cpuid(&mut self) -> Result<Vec<kvm_bindings::kvm_cpuid_entry2>, LaunchError>;
    /// `KVM_CREATE_VM` of `vm_type`.
    fn create_vm(&mut self, vm_type: VmType) -> Result<(), LaunchError>;
    /// `KVM_SET_TSS_ADDR` and `KVM_SET_IDENTITY_MAP_ADDR` (x86: the pages KVM needs for
    /// real mode).
    fn set_system_addresses(&mut self, tss: u64, identity_map: u64) -> Result<(), LaunchError>;
    /// The interrupt controllers: `KVM_CREATE_IRQCHIP` (and `KVM_CREATE_PIT2`), or
    /// `KVM_CAP_SPLIT_IRQCHIP`.
    fn create_irqchip(&mut self, irqchip: IrqChip, pit: bool) -> Result<(), LaunchError>;
    /// Maps guest memory at `ranges` (`(gpa, len)`, page-aligned) and registers each
    /// range as a memory slot.
    fn add_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError>;
    /// Copies `data` into guest memory at `gpa`.
    fn write_memory(&mut self, gpa: u64, data: &[u8]) -> Result<(), LaunchError>;
    /// Sets `len` bytes of guest memory at `gpa` to zero.
    fn zero_memory(&mut self, gpa: u64, len: u64) -> Result<(), LaunchError>;
    /// `KVM_CREATE_VCPU` `id`, with the guest's CPUID.
    fn create_vcpu(&mut self, id: u32) -> Result<(), LaunchError>;
    /// Loads `state` into vCPU `id`'s registers.
    fn set_vcpu_state(&mut self, id: u32, state: &VcpuState) -> Result<(), LaunchError>;
    /// KVM's SEV interface, where this hardware has one.
    fn sev(&mut self) -> Option<&mut dyn super::sev::SevHardware> {
        None
    }
    /// KVM's TDX interface, where this hardware has one.
    fn tdx(&mut self) -> Option<&mut dyn super::tdx::TdxHardware> {
        None
    }
}

/// Guest memory with a private side: guest_memfd slots, their memory attributes, and the
/// VMM's view of the shared side (SNP and TDX).
pub trait PrivateMemory: Hardware {
    /// Guest memory at `ranges`, each range a memory slot backed by a guest_memfd
    /// (private) and by anonymous memory (shared): `KVM_CREATE_GUEST_MEMFD` and
    /// `KVM_SET_USER_MEMORY_REGION2` with `KVM_MEM_GUEST_MEMFD`.
    fn add_private_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError>;
    /// `KVM_SET_MEMORY_ATTRIBUTES`: `[gpa, gpa + len)` private or shared.
    fn set_memory_attributes(
        &mut self,
        gpa: u64,
        len: u64,
        private: bool,
    ) -> Result<(), LaunchError>;
    /// The host address through which the VMM sees guest memory (the shared backing)
    /// at `gpa`.
    fn host_address(&self, gpa: u64) -> Result<u64, LaunchError>;
    /// Reads guest memory (the shared backing) at `gpa`.
    fn read_memory(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), LaunchError>;
    /// `KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE)`: the guest's
    /// page conversions (SNP page-state changes, TDX MapGPA) come to the VMM.
    fn enable_map_gpa_exit(&mut self) -> Result<(), LaunchError>;
}

/// What became of an exit offered to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitHandled {
    /// Not this backend's exit: the VMM core's devices, or its stop rules, decide.
    NotMine,
    /// Handled; the vCPU runs on.
    Resume,
    /// The VM must stop, for this reason.
    Stop(String),
}

/// What a backend may do to the running VM while it handles an exit. Every range comes
/// from the guest: implementations check it again.
pub trait Runtime: Send + Sync {
    /// Whether `[gpa, gpa + len)` is guest RAM, in one memory slot.
    fn is_ram(&self, gpa: u64, len: u64) -> bool;
    /// `KVM_SET_MEMORY_ATTRIBUTES`: the range private or shared; the errno on failure.
    fn set_private(&self, gpa: u64, len: u64, private: bool) -> Result<(), i32>;
    /// Releases the backing of the range the guest no longer uses (the shared pages, or
    /// with `private_side` the guest_memfd's); the errno on failure.
    fn discard(&self, gpa: u64, len: u64, private_side: bool) -> Result<(), i32>;
    /// Writes `data` into guest RAM at `gpa` through the VMM's (shared) mapping.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), i32>;
    /// Reads guest RAM at `gpa` through the VMM's (shared) mapping.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), i32>;
    /// `KVM_SIGNAL_MSI`: interrupt `vector` to the local APIC `apic_id` (fixed delivery).
    fn interrupt(&self, apic_id: u32, vector: u8) -> Result<(), i32>;
}

/// A `TDG.VP.VMCALL` that KVM hands to the VMM (`KVM_EXIT_TDX`): the sub-function and the
/// exit union's words after it (`ret` first, then the sub-function's fields), which the
/// VMM updates for the TD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdxVmcall {
    /// The sub-function (`nr`).
    pub nr: u64,
    /// `ret`, then the sub-function's fields (GetQuote: gpa, size; GetTdVmCallInfo: leaf,
    /// r11, r12, r13, r14; SetupEventNotifyInterrupt: vector).
    pub words: [u64; 6],
}

/// The answer to an SNP certificate request (`struct kvm_exit_snp_req_certs`'s `ret` and
/// `npages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertsReply {
    /// 0, ENOSPC (with `npages` the pages needed), EAGAIN or EIO.
    pub ret: u64,
    /// The pages.
    pub npages: u64,
}

impl CertsReply {
    /// The guest's buffer is too small.
    pub const ENOSPC: u64 = 28;
    /// A generic failure.
    pub const EIO: u64 = 5;
}

/// A TEE's launch, as the VMM core drives it.
pub trait Backend: Send + Sync {
    /// The TEE this backend launches; the core refuses a plan of another.
    fn tee(&self) -> Tee;
    /// Creates the VM of this backend's type and the platform it needs.
    fn create_vm(
        &mut self,
        hw: &mut dyn Hardware,
        opts: &PlatformOptions,
    ) -> Result<(), LaunchError>;
    /// Prepares guest memory for `plan`.
    fn prepare_memory(
        &mut self,
        hw: &mut dyn Hardware,
        plan: &LaunchPlan<'_>,
    ) -> Result<(), LaunchError>;
    /// Loads one step of the plan (the core calls it for every step, in plan order).
    fn load(&mut self, hw: &mut dyn Hardware, step: &Step<'_>) -> Result<(), LaunchError>;
    /// Sets up vCPU `id`, in the plan's register state when the plan gives one.
    fn setup_vcpu(
        &mut self,
        hw: &mut dyn Hardware,
        id: u32,
        state: Option<&VcpuState>,
    ) -> Result<(), LaunchError>;
    /// Ends the launch (after which the hardware's measurement is final).
    fn finalize(&mut self, hw: &mut dyn Hardware) -> Result<(), LaunchError>;
    /// What the hardware reported of the launch measurement once finalized, where the
    /// host can see it (SEV, SEV-ES: LAUNCH_MEASURE's MEASURE and MNONCE).
    fn launch_measure(&self) -> Option<Vec<u8>> {
        None
    }
    /// `KVM_EXIT_SNP_REQ_CERTS`: the certificates for an extended guest request of vCPU
    /// `vcpu` into the guest's buffer at `gpa` (`npages` pages); `None` when this backend
    /// serves none.
    fn snp_certs(&self, vcpu: u32, gpa: u64, npages: u64, vm: &dyn Runtime) -> Option<CertsReply> {
        let _ = (vcpu, gpa, npages, vm);
        None
    }
    /// `KVM_EXIT_TDX`: a TDVMCALL of vCPU `vcpu` for the VMM; `false` when this backend
    /// handles none.
    fn tdx_vmcall(&self, vcpu: u32, call: &mut TdxVmcall, vm: &dyn Runtime) -> bool {
        let _ = (vcpu, call, vm);
        false
    }
    /// An exit of vCPU `vcpu` the core's devices did not take: the backend's own
    /// (page-state changes, TEE hypercalls), or not.
    fn handle_exit(&self, vcpu: u32, exit: &mut VcpuExit<'_>, vm: &dyn Runtime) -> ExitHandled;
}
