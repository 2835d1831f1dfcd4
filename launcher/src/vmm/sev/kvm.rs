//! The SEV hardware side on KVM itself: [`KvmHardware`] issuing the real ioctls (the
//! `unsafe` ones through [`super::sys`]). Host addresses a command hands the kernel are
//! checked to lie in the VMM's mapping of guest memory first.

use super::{CommandError, SevHardware, SnpFinish, SnpUpdate, attributes_error, sys};
use crate::vmm::LaunchError;
use crate::vmm::backend::PrivateMemory;
use crate::vmm::kvm::KvmHardware;
use kvm_bindings::{
    KVM_CAP_EXIT_HYPERCALL, KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_enable_cap, kvm_enc_region,
    kvm_memory_attributes,
};
use std::os::fd::{AsRawFd, RawFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// The SEV device node, whose descriptor every SEV command carries.
const SEV_DEVICE: &str = "/dev/sev";
/// `KVM_X86_SEV_VMSA_FEATURES`, `KVM_X86_SNP_POLICY_BITS` and `KVM_X86_SEV_SNP_REQ_CERTS`,
/// attributes of the SEV group.
const ATTR_VMSA_FEATURES: u64 = 0;
const ATTR_SNP_POLICY_BITS: u64 = 1;
const ATTR_SNP_REQ_CERTS: u64 = 2;
/// `KVM_SEV_SNP_PAGE_TYPE_ZERO`: the one page type whose source KVM does not read.
const PAGE_TYPE_ZERO: u8 = 3;

impl KvmHardware {
    /// /dev/sev, opened by the first SEV command.
    fn sev_device(&mut self, command: &'static str) -> Result<RawFd, CommandError> {
        if self.sev_fd.is_none() {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(SEV_DEVICE)
                .map_err(|e| {
                    CommandError::kernel(command, e.raw_os_error().unwrap_or(libc::EIO))
                        .because(format!("cannot open {SEV_DEVICE}: {e}"))
                })?;
            self.sev_fd = Some(f);
        }
        Ok(self.sev_fd.as_ref().map_or(-1, AsRawFd::as_raw_fd))
    }

    /// The VM and /dev/sev for `command`.
    fn sev_vm(
        &mut self,
        command: &'static str,
    ) -> Result<(std::sync::Arc<kvm_ioctls::VmFd>, RawFd), CommandError> {
        let fd = self.sev_device(command)?;
        let vm = self.vm.clone().ok_or_else(|| {
            CommandError::kernel(command, libc::EBADF).because("no VM has been created")
        })?;
        Ok((vm, fd))
    }

    /// Refuses a host range outside the VMM's mapping of guest memory.
    fn check_source(
        &self,
        command: &'static str,
        uaddr: u64,
        len: u64,
    ) -> Result<(), CommandError> {
        match &self.ram {
            Some(ram) if ram.holds_host_range(uaddr, len) => Ok(()),
            _ => Err(CommandError::kernel(command, libc::EFAULT).because(format!(
                "{len:#x} bytes at host address {uaddr:#x} are not guest memory"
            ))),
        }
    }
}

impl PrivateMemory for KvmHardware {
    fn enable_map_gpa_exit(&mut self) -> Result<(), LaunchError> {
        let step = "enable the page-state-change exit (KVM_CAP_EXIT_HYPERCALL)";
        let mut cap = kvm_enable_cap {
            cap: KVM_CAP_EXIT_HYPERCALL,
            ..Default::default()
        };
        if let Some(a) = cap.args.first_mut() {
            *a = 1 << crate::vmm::convert::KVM_HC_MAP_GPA_RANGE;
        }
        self.vm(step)?
            .enable_cap(&cap)
            .map_err(|source| LaunchError::Kvm { step, source })
    }

    fn add_private_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        self.map_memory(ranges, true)
    }

    fn set_memory_attributes(
        &mut self,
        gpa: u64,
        len: u64,
        private: bool,
    ) -> Result<(), LaunchError> {
        const C: &str = "KVM_SET_MEMORY_ATTRIBUTES";
        let vm = self.vm.as_ref().ok_or_else(|| {
            attributes_error(gpa, len, private, CommandError::kernel(C, libc::EBADF))
        })?;
        tracing::debug!(
            "{C} {gpa:#x}+{len:#x} {}",
            if private { "private" } else { "shared" }
        );
        vm.set_memory_attributes(kvm_memory_attributes {
            address: gpa,
            size: len,
            attributes: if private {
                u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE)
            } else {
                0
            },
            flags: 0,
        })
        .map_err(|e| attributes_error(gpa, len, private, CommandError::kernel(C, e.errno())))
    }

    fn host_address(&self, gpa: u64) -> Result<u64, LaunchError> {
        let step = "find guest memory";
        let ram = self.ram(step)?;
        ram.get_host_address(GuestAddress(gpa))
            .ok()
            .and_then(|p| u64::try_from(p.addr()).ok())
            .ok_or_else(|| LaunchError::Step(step, format!("{gpa:#x} is not guest memory")))
    }

    fn read_memory(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), LaunchError> {
        let step = "read guest memory";
        self.ram(step)?
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|e| LaunchError::Step(step, format!("{gpa:#x}: {e}")))
    }
}

impl SevHardware for KvmHardware {
    fn vmsa_features(&mut self) -> Result<u64, CommandError> {
        sys::sev_attr(&self.kvm, ATTR_VMSA_FEATURES)
            .map_err(|e| CommandError::kernel("KVM_GET_DEVICE_ATTR(KVM_X86_SEV_VMSA_FEATURES)", e))
    }

    fn snp_policy_bits(&mut self) -> Result<Option<u64>, CommandError> {
        match sys::sev_attr(&self.kvm, ATTR_SNP_POLICY_BITS) {
            Ok(bits) => Ok(Some(bits)),
            // Kernels before 6.19 do not have the attribute.
            Err(libc::ENXIO) => Ok(None),
            Err(e) => Err(CommandError::kernel(
                "KVM_GET_DEVICE_ATTR(KVM_X86_SNP_POLICY_BITS)",
                e,
            )),
        }
    }

    fn snp_req_certs_supported(&mut self) -> Result<bool, CommandError> {
        match sys::sev_attr(&self.kvm, ATTR_SNP_REQ_CERTS) {
            Ok(v) => Ok(v != 0),
            Err(libc::ENXIO) => Ok(false),
            Err(e) => Err(CommandError::kernel(
                "KVM_GET_DEVICE_ATTR(KVM_X86_SEV_SNP_REQ_CERTS)",
                e,
            )),
        }
    }

    fn snp_enable_req_certs(&mut self) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_SNP_ENABLE_REQ_CERTS")?;
        sys::snp_enable_req_certs(&vm, fd)
    }

    fn sev_init2(&mut self, vmsa_features: u64, ghcb_version: u16) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_INIT2")?;
        tracing::debug!("KVM_SEV_INIT2 vmsa_features {vmsa_features:#x}");
        sys::init2(&vm, fd, vmsa_features, ghcb_version)
    }

    fn register_encrypted_region(&mut self, gpa: u64, len: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_MEMORY_ENCRYPT_REG_REGION";
        let addr = self
            .host_address(gpa)
            .map_err(|e| CommandError::kernel(C, libc::EFAULT).because(e.to_string()))?;
        self.check_source(C, addr, len)?;
        let vm = self
            .vm
            .as_ref()
            .ok_or_else(|| CommandError::kernel(C, libc::EBADF))?;
        vm.register_enc_memory_region(&kvm_enc_region { addr, size: len })
            .map_err(|e| CommandError::kernel(C, e.errno()))
    }

    fn snp_launch_start(&mut self, policy: u64) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_SNP_LAUNCH_START")?;
        tracing::debug!("KVM_SEV_SNP_LAUNCH_START policy {policy:#x}");
        sys::snp_launch_start(&vm, fd, policy)
    }

    fn snp_launch_update(&mut self, u: &mut SnpUpdate) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_SNP_LAUNCH_UPDATE";
        if u.page_type != PAGE_TYPE_ZERO {
            self.check_source(C, u.uaddr, u.len)?;
        }
        let (vm, fd) = self.sev_vm(C)?;
        tracing::debug!(
            "{C} gfn {:#x}, {:#x} bytes, type {}",
            u.gfn_start,
            u.len,
            u.page_type
        );
        // SAFETY: for every type KVM reads, the source lies in the VMM's mapping of guest
        // memory (checked above), which holds guest RAM only.
        unsafe { sys::snp_launch_update(&vm, fd, u) }
    }

    fn snp_launch_finish(&mut self, finish: &SnpFinish) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_SNP_LAUNCH_FINISH")?;
        tracing::debug!(
            "KVM_SEV_SNP_LAUNCH_FINISH id block {}",
            finish.id_block.is_some()
        );
        sys::snp_launch_finish(&vm, fd, finish)
    }

    fn launch_start(&mut self, policy: u32) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_LAUNCH_START")?;
        tracing::debug!("KVM_SEV_LAUNCH_START policy {policy:#x}");
        sys::launch_start(&vm, fd, policy)
    }

    fn launch_update_data(&mut self, uaddr: u64, len: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_SEV_LAUNCH_UPDATE_DATA";
        let len32 = u32::try_from(len)
            .map_err(|_| CommandError::kernel(C, libc::EINVAL).because("longer than 4 GiB"))?;
        self.check_source(C, uaddr, len)?;
        let (vm, fd) = self.sev_vm(C)?;
        tracing::debug!("{C} {len:#x} bytes");
        // SAFETY: the range lies in the VMM's mapping of guest memory (checked above).
        unsafe { sys::launch_update_data(&vm, fd, uaddr, len32) }
    }

    fn launch_update_vmsa(&mut self) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_LAUNCH_UPDATE_VMSA")?;
        sys::launch_update_vmsa(&vm, fd)
    }

    fn launch_measure(&mut self) -> Result<[u8; 48], CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_LAUNCH_MEASURE")?;
        sys::launch_measure(&vm, fd)
    }

    fn launch_finish(&mut self) -> Result<(), CommandError> {
        let (vm, fd) = self.sev_vm("KVM_SEV_LAUNCH_FINISH")?;
        sys::launch_finish(&vm, fd)
    }
}
