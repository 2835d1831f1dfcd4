//! A [`Hardware`] that performs nothing and records every operation a backend asks of
//! it, in order: the proof, on any machine, that the VMM core hands the hardware exactly
//! the plan it was given (see `launcher/tests/backend.rs`). The confidential backends'
//! models build on it.

use super::backend::{Hardware, VmType};
use super::{IrqChip, LaunchError};
use cvm_firmware::vcpu::VcpuState;

/// One operation on the hardware side of a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `KVM_CREATE_VM`.
    CreateVm(VmType),
    /// `KVM_SET_TSS_ADDR`, `KVM_SET_IDENTITY_MAP_ADDR`.
    SystemAddresses {
        /// The TSS's address.
        tss: u64,
        /// The identity map's address.
        identity_map: u64,
    },
    /// The interrupt controllers.
    Irqchip {
        /// Which.
        irqchip: IrqChip,
        /// With KVM's PIT.
        pit: bool,
    },
    /// Guest memory mapped and registered.
    AddMemory(Vec<(u64, u64)>),
    /// Bytes copied into guest memory.
    Write {
        /// Where.
        gpa: u64,
        /// What.
        data: Vec<u8>,
    },
    /// Guest memory zeroed.
    Zero {
        /// Where.
        gpa: u64,
        /// How much.
        len: u64,
    },
    /// `KVM_CREATE_VCPU`.
    CreateVcpu(u32),
    /// A vCPU's registers loaded.
    VcpuState(u32, Box<VcpuState>),
}

/// Records operations; fails none (a model that checks them wraps or replaces it).
#[derive(Debug, Default)]
pub struct Recorder {
    /// The operations, in the order they were asked for.
    pub ops: Vec<Op>,
}

impl Hardware for Recorder {
    /// The default VM type only: the recorder stands for a plain KVM.
    fn vm_types(&mut self) -> Result<u64, LaunchError> {
        Ok(1)
    }

    /// No CPUID: the recorder's vCPUs run nothing.
    fn supported_cpuid(&mut self) -> Result<Vec<kvm_bindings::kvm_cpuid_entry2>, LaunchError> {
        Ok(Vec::new())
    }

    fn create_vm(&mut self, vm_type: VmType) -> Result<(), LaunchError> {
        self.ops.push(Op::CreateVm(vm_type));
        Ok(())
    }

    fn set_system_addresses(&mut self, tss: u64, identity_map: u64) -> Result<(), LaunchError> {
        self.ops.push(Op::SystemAddresses { tss, identity_map });
        Ok(())
    }

    fn create_irqchip(&mut self, irqchip: IrqChip, pit: bool) -> Result<(), LaunchError> {
        self.ops.push(Op::Irqchip { irqchip, pit });
        Ok(())
    }

    fn add_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        self.ops.push(Op::AddMemory(ranges.to_vec()));
        Ok(())
    }

    fn write_memory(&mut self, gpa: u64, data: &[u8]) -> Result<(), LaunchError> {
        self.ops.push(Op::Write {
            gpa,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn zero_memory(&mut self, gpa: u64, len: u64) -> Result<(), LaunchError> {
        self.ops.push(Op::Zero { gpa, len });
        Ok(())
    }

    fn create_vcpu(&mut self, id: u32) -> Result<(), LaunchError> {
        self.ops.push(Op::CreateVcpu(id));
        Ok(())
    }

    fn set_vcpu_state(&mut self, id: u32, state: &VcpuState) -> Result<(), LaunchError> {
        self.ops.push(Op::VcpuState(id, Box::new(*state)));
        Ok(())
    }
}
