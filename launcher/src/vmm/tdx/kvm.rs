//! The TDX hardware side on KVM itself: [`KvmHardware`] issuing the real ioctls (the
//! `unsafe` ones through [`super::sys`]). A source range handed to the kernel is checked
//! to lie in the VMM's mapping of guest memory first.

use super::{MemRegion, TdxCaps, TdxHardware, TdxInitVm, sys};
use crate::vmm::cc::CommandError;
use crate::vmm::kvm::KvmHardware;

impl KvmHardware {
    fn td(&self, command: &'static str) -> Result<std::sync::Arc<kvm_ioctls::VmFd>, CommandError> {
        self.vm.clone().ok_or_else(|| {
            CommandError::kernel(command, libc::EBADF).because("no VM has been created")
        })
    }
}

impl TdxHardware for KvmHardware {
    fn tdx_capabilities(&mut self) -> Result<TdxCaps, CommandError> {
        let vm = self.td("KVM_TDX_CAPABILITIES")?;
        tracing::debug!("KVM_TDX_CAPABILITIES");
        sys::capabilities(vm.as_ref())
    }

    fn tdx_init_vm(&mut self, init: &TdxInitVm) -> Result<(), CommandError> {
        let vm = self.td("KVM_TDX_INIT_VM")?;
        tracing::debug!(
            "KVM_TDX_INIT_VM attributes {:#x}, xfam {:#x}, {} CPUID entries",
            init.attributes,
            init.xfam,
            init.cpuid.len()
        );
        sys::init_vm(vm.as_ref(), init)
    }

    fn tdx_init_vcpu(&mut self, id: u32, rcx: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_TDX_INIT_VCPU";
        let vcpu = self.vcpu_fd(id).ok_or_else(|| {
            CommandError::kernel(C, libc::EBADF).because(format!("vCPU {id} does not exist"))
        })?;
        tracing::debug!("{C} vCPU {id}, rcx {rcx:#x}");
        sys::init_vcpu(vcpu, rcx)
    }

    fn tdx_init_mem_region(
        &mut self,
        id: u32,
        region: &mut MemRegion,
        measure: bool,
    ) -> Result<(), CommandError> {
        const C: &str = "KVM_TDX_INIT_MEM_REGION";
        let len = region
            .nr_pages
            .checked_mul(4096)
            .ok_or_else(|| CommandError::kernel(C, libc::EINVAL))?;
        if !self
            .ram
            .as_ref()
            .is_some_and(|ram| ram.holds_host_range(region.source_addr, len))
        {
            return Err(CommandError::kernel(C, libc::EFAULT).because(format!(
                "{len:#x} bytes at host address {:#x} are not guest memory",
                region.source_addr
            )));
        }
        let vcpu = self.vcpu_fd(id).ok_or_else(|| {
            CommandError::kernel(C, libc::EBADF).because(format!("vCPU {id} does not exist"))
        })?;
        tracing::debug!(
            "{C} gpa {:#x}, {} pages{}",
            region.gpa,
            region.nr_pages,
            if measure { ", measured" } else { "" }
        );
        // SAFETY: the source lies in the VMM's mapping of guest memory (checked above),
        // which holds guest RAM only.
        unsafe { sys::init_mem_region(vcpu, region, measure) }
    }

    fn tdx_finalize_vm(&mut self) -> Result<(), CommandError> {
        let vm = self.td("KVM_TDX_FINALIZE_VM")?;
        tracing::debug!("KVM_TDX_FINALIZE_VM");
        sys::finalize_vm(vm.as_ref())
    }
}
