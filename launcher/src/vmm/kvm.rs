//! The real [`Hardware`]: KVM, through kvm-ioctls (and [`super::sys`] for the calls that
//! need `unsafe`).

use super::backend::{Hardware, VmType};
use super::sys::GuestRam;
use super::vcpu;
use super::{IrqChip, LaunchError, SPLIT_IOAPIC_PINS};
use cvm_firmware::vcpu::VcpuState;
use kvm_bindings::{
    CpuId, KVM_CAP_SPLIT_IRQCHIP, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_enable_cap,
    kvm_pit_config,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// A VM being set up on KVM: what the backend has created so far.
pub struct KvmHardware {
    pub(in crate::vmm) kvm: Kvm,
    pub(in crate::vmm) vm: Option<Arc<VmFd>>,
    pub(in crate::vmm) ram: Option<GuestRam>,
    vcpus: Vec<(u32, VcpuFd)>,
    cpuid: Option<CpuId>,
    /// /dev/sev, for the SEV commands (opened by the first).
    pub(in crate::vmm) sev_fd: Option<std::fs::File>,
}

/// What a finished setup hands the VMM core to run.
pub(super) struct Launched {
    pub vm: Arc<VmFd>,
    pub ram: GuestRam,
    pub vcpus: Vec<(u32, VcpuFd)>,
}

impl KvmHardware {
    /// A setup on the opened KVM device.
    pub fn new(kvm: Kvm) -> Self {
        KvmHardware {
            kvm,
            vm: None,
            ram: None,
            vcpus: Vec::new(),
            cpuid: None,
            sev_fd: None,
        }
    }

    pub(in crate::vmm) fn vm(&self, step: &'static str) -> Result<&Arc<VmFd>, LaunchError> {
        self.vm
            .as_ref()
            .ok_or_else(|| LaunchError::Step(step, "no VM has been created".into()))
    }

    pub(in crate::vmm) fn ram(
        &self,
        step: &'static str,
    ) -> Result<&GuestMemoryMmap<()>, LaunchError> {
        self.ram
            .as_ref()
            .map(GuestRam::memory)
            .ok_or_else(|| LaunchError::Step(step, "no guest memory has been added".into()))
    }

    fn vcpu(&self, id: u32, step: &'static str) -> Result<&VcpuFd, LaunchError> {
        self.vcpus
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, fd)| fd)
            .ok_or_else(|| LaunchError::Step(step, format!("vCPU {id} has not been created")))
    }

    /// vCPU `id`'s descriptor.
    pub(in crate::vmm) fn vcpu_fd(&self, id: u32) -> Option<&VcpuFd> {
        self.vcpus.iter().find(|(i, _)| *i == id).map(|(_, fd)| fd)
    }

    /// Whether a VM has been created (and not yet handed on).
    pub fn has_vm(&self) -> bool {
        self.vm.is_some()
    }

    /// The VM, its memory and its vCPUs, once every phase has run.
    pub(super) fn into_launched(self) -> Result<Launched, LaunchError> {
        let step = "start the VM";
        match (self.vm, self.ram) {
            (Some(vm), Some(ram)) => Ok(Launched {
                vm,
                ram,
                vcpus: self.vcpus,
            }),
            _ => Err(LaunchError::Step(
                step,
                "the VM or its memory is missing".into(),
            )),
        }
    }
    /// Maps guest memory at `ranges` and registers each range as a memory slot (with
    /// `private`, a guest_memfd slot).
    pub(in crate::vmm) fn map_memory(
        &mut self,
        ranges: &[(u64, u64)],
        private: bool,
    ) -> Result<(), LaunchError> {
        let step = "map guest memory";
        let vm = Arc::clone(self.vm(step)?);
        let total: u64 = ranges.iter().map(|(_, l)| *l).sum();
        let ranges = ranges
            .iter()
            .map(|&(g, l)| {
                Ok((
                    GuestAddress(g),
                    usize::try_from(l).map_err(|e| LaunchError::Step(step, e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<_>, LaunchError>>()?;
        let memory = GuestMemoryMmap::from_ranges(&ranges)
            .map_err(|e| LaunchError::Step(step, format!("{} MiB (--memory): {e}", total >> 20)))?;
        for (slot, (gpa, len)) in ranges.iter().enumerate() {
            tracing::debug!(
                "KVM_SET_USER_MEMORY_REGION{} slot {slot}: gpa {:#x}, {len:#x} bytes",
                if private { "2 (guest_memfd)" } else { "" },
                gpa.0
            );
        }
        let ram = GuestRam::register(vm, memory, private)
            .map_err(|e| LaunchError::Step("register guest memory", e.to_string()))?;
        self.ram = Some(ram);
        Ok(())
    }
}

impl Hardware for KvmHardware {
    fn supported_cpuid(&mut self) -> Result<Vec<kvm_bindings::kvm_cpuid_entry2>, LaunchError> {
        let cpuid = self
            .kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(|source| LaunchError::Kvm {
                step: "read the supported CPUID",
                source,
            })?;
        Ok(cpuid.as_slice().to_vec())
    }

    fn vm_types(&mut self) -> Result<u64, LaunchError> {
        // KVM_CHECK_EXTENSION answers the bitmap (0 on kernels before 6.10, which have
        // the default type only).
        let types = self
            .kvm
            .check_extension_raw(libc::c_ulong::from(kvm_bindings::KVM_CAP_VM_TYPES));
        Ok(u64::try_from(types).unwrap_or(0) | 1)
    }

    fn create_vm(&mut self, vm_type: VmType) -> Result<(), LaunchError> {
        tracing::debug!("KVM_CREATE_VM type {}", vm_type.0);
        let vm = self
            .kvm
            .create_vm_with_type(vm_type.0)
            .map_err(LaunchError::kvm("create the VM"))?;
        self.vm = Some(Arc::new(vm));
        Ok(())
    }

    fn set_system_addresses(&mut self, tss: u64, identity_map: u64) -> Result<(), LaunchError> {
        let step = "set the TSS address";
        tracing::debug!("KVM_SET_TSS_ADDR {tss:#x}, KVM_SET_IDENTITY_MAP_ADDR {identity_map:#x}");
        let vm = self.vm(step)?;
        let tss = usize::try_from(tss).map_err(|e| LaunchError::Step(step, e.to_string()))?;
        vm.set_tss_address(tss).map_err(LaunchError::kvm(step))?;
        vm.set_identity_map_address(identity_map)
            .map_err(LaunchError::kvm("set the identity map address"))
    }

    fn create_irqchip(&mut self, irqchip: IrqChip, pit: bool) -> Result<(), LaunchError> {
        let vm = self.vm("create the irqchip")?;
        match irqchip {
            IrqChip::InKernel => {
                tracing::debug!(
                    "KVM_CREATE_IRQCHIP{}",
                    if pit { ", KVM_CREATE_PIT2" } else { "" }
                );
                vm.create_irq_chip()
                    .map_err(LaunchError::kvm("create the in-kernel irqchip"))?;
                if pit {
                    let config = kvm_pit_config {
                        flags: KVM_PIT_SPEAKER_DUMMY,
                        ..Default::default()
                    };
                    vm.create_pit2(config)
                        .map_err(LaunchError::kvm("create the PIT"))?;
                }
                Ok(())
            }
            IrqChip::Split => {
                tracing::debug!("KVM_ENABLE_CAP KVM_CAP_SPLIT_IRQCHIP, {SPLIT_IOAPIC_PINS} pins");
                let mut cap = kvm_enable_cap {
                    cap: KVM_CAP_SPLIT_IRQCHIP,
                    ..Default::default()
                };
                if let Some(a) = cap.args.first_mut() {
                    *a = SPLIT_IOAPIC_PINS;
                }
                vm.enable_cap(&cap)
                    .map_err(LaunchError::kvm("enable the split irqchip"))
            }
        }
    }

    fn add_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        self.map_memory(ranges, false)
    }

    fn write_memory(&mut self, gpa: u64, data: &[u8]) -> Result<(), LaunchError> {
        let step = "load the plan into guest memory";
        self.ram(step)?
            .write_slice(data, GuestAddress(gpa))
            .map_err(|e| LaunchError::Step(step, format!("{} bytes at {gpa:#x}: {e}", data.len())))
    }

    fn zero_memory(&mut self, gpa: u64, len: u64) -> Result<(), LaunchError> {
        const CHUNK: u64 = 64 << 10;
        let zeros = [0u8; 64 << 10];
        let mut at = gpa;
        let end = gpa.saturating_add(len);
        while at < end {
            let n = (end - at).min(CHUNK);
            let chunk = zeros
                .get(..usize::try_from(n).unwrap_or(0))
                .unwrap_or_default();
            self.write_memory(at, chunk)?;
            at = at.saturating_add(n);
        }
        Ok(())
    }

    fn create_vcpu(&mut self, id: u32) -> Result<(), LaunchError> {
        tracing::debug!("KVM_CREATE_VCPU {id}, KVM_SET_CPUID2");
        if self.cpuid.is_none() {
            self.cpuid = Some(
                self.kvm
                    .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                    .map_err(LaunchError::kvm("read the supported CPUID"))?,
            );
        }
        let fd = self
            .vm("create a vCPU")?
            .create_vcpu(u64::from(id))
            .map_err(LaunchError::kvm("create a vCPU"))?;
        if let Some(supported) = &self.cpuid {
            fd.set_cpuid2(&vcpu::cpuid_for(supported, id)?)
                .map_err(LaunchError::kvm("set a vCPU's CPUID"))?;
        }
        self.vcpus.push((id, fd));
        Ok(())
    }

    fn set_vcpu_state(&mut self, id: u32, state: &VcpuState) -> Result<(), LaunchError> {
        let regs = state.x86().ok_or_else(|| {
            LaunchError::Step(
                "set the vCPU's registers",
                "an AArch64 vCPU on an x86 VM".into(),
            )
        })?;
        vcpu::set_state(self.vcpu(id, "set the vCPU's registers")?, regs)
    }

    fn sev(&mut self) -> Option<&mut dyn super::sev::SevHardware> {
        Some(self)
    }

    fn tdx(&mut self) -> Option<&mut dyn super::tdx::TdxHardware> {
        Some(self)
    }
}
