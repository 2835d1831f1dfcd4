//! The realm's hardware side on KVM itself (cargo feature `cca`): the ioctls of
//! [`super::sys`] on /dev/kvm. Every `unsafe` of the realm backend is in this file.
//! Compiled on every Linux target; a host without KVM's v14 realm interface refuses at
//! the capability check.
//!
//! Guest memory is one anonymous shared mapping per memory slot (the VMM's copy, the
//! source of every populate), and one guest_memfd per slot (the realm's private memory).
//! The mappings and descriptors live as long as the VM: the slots are never deleted
//! while the VM exists, and the VM is closed before they are dropped.

use super::{GicLayout, RealmError, RealmHardware, sys};
use kvm_bindings::{
    KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_create_guest_memfd,
    kvm_memory_attributes, kvm_userspace_memory_region2,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use vmm_sys_util::ioctl::{ioctl_with_mut_ref, ioctl_with_ref};

struct Slot {
    gpa: u64,
    map: memmap2::MmapMut,
    _gmem: OwnedFd,
}

/// A realm on KVM.
pub struct KvmRealm {
    kvm: Kvm,
    vcpus: Vec<VcpuFd>,
    // Dropped before `slots` (field order): the VM goes first, then the memory it used.
    vm: Option<VmFd>,
    gic: Option<kvm_ioctls::DeviceFd>,
    slots: Vec<Slot>,
    /// The 8250's data register.
    uart: u64,
    /// What the first entry wrote to the console, and whether it already stopped.
    early: Vec<u8>,
    stopped: Option<String>,
}

fn kernel(call: &'static str, e: &kvm_ioctls::Error, why: impl Into<String>) -> RealmError {
    RealmError::new(call, e.errno(), why)
}

fn last(call: &'static str, ret: i32, why: &str) -> Result<(), RealmError> {
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        Err(RealmError::new(
            call,
            e.raw_os_error().unwrap_or(libc::EIO),
            why,
        ))
    } else {
        Ok(())
    }
}

/// The capability's number: what the kernel exports, else v14's.
fn cap_number() -> u32 {
    sys::CAP_PARAMETERS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
        .unwrap_or(sys::KVM_CAP_ARM_RMI_V14)
}

impl KvmRealm {
    /// Opens /dev/kvm, for a realm whose 8250 data register is at `uart`.
    pub fn open(uart: u64) -> Result<Self, RealmError> {
        let kvm = Kvm::new().map_err(|e| kernel("open /dev/kvm", &e, "KVM is not available"))?;
        Ok(KvmRealm {
            kvm,
            vcpus: Vec::new(),
            vm: None,
            gic: None,
            slots: Vec::new(),
            uart,
            early: Vec::new(),
            stopped: None,
        })
    }

    fn vm(&self, call: &'static str) -> Result<&VmFd, RealmError> {
        self.vm
            .as_ref()
            .ok_or_else(|| RealmError::new(call, libc::EBADF, "no VM has been created"))
    }

    fn vcpu(&self, call: &'static str, id: u32) -> Result<&VcpuFd, RealmError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.vcpus.get(i))
            .ok_or_else(|| RealmError::new(call, libc::EBADF, format!("no vCPU {id}")))
    }

    /// The memory slot holding `gpa` (its index) and the offset of `gpa` in it.
    fn slot_of(&self, gpa: u64, call: &'static str) -> Result<(usize, usize), RealmError> {
        self.slots
            .iter()
            .position(|s| gpa >= s.gpa && gpa - s.gpa < s.map.len() as u64)
            .and_then(|i| {
                let at = usize::try_from(gpa - self.slots.get(i)?.gpa).ok()?;
                Some((i, at))
            })
            .ok_or_else(|| RealmError::new(call, libc::EFAULT, "not guest memory"))
    }

    fn one_reg(&self, vcpu: u32, id: u64, value: u64) -> Result<(), RealmError> {
        let fd = self.vcpu("KVM_SET_ONE_REG", vcpu)?;
        let reg = sys::KvmOneReg {
            id,
            addr: std::ptr::addr_of!(value) as u64,
        };
        // SAFETY: KVM_SET_ONE_REG reads `reg` and the 8 bytes at `reg.addr` (`value`,
        // alive for the call); the register ids name 64-bit registers only.
        let ret = unsafe { ioctl_with_ref(fd, sys::KVM_SET_ONE_REG as _, &reg) };
        last("KVM_SET_ONE_REG", ret, "the register was refused")
    }

    fn get_reg(&self, vcpu: u32, id: u64) -> Result<u64, RealmError> {
        let fd = self.vcpu("KVM_GET_ONE_REG", vcpu)?;
        let mut value = 0u64;
        let reg = sys::KvmOneReg {
            id,
            addr: std::ptr::addr_of_mut!(value) as u64,
        };
        // SAFETY: KVM_GET_ONE_REG writes 8 bytes at `reg.addr`, `value`, alive for the
        // call; the id names a 64-bit register.
        let ret = unsafe { ioctl_with_ref(fd, sys::KVM_GET_ONE_REG as _, &reg) };
        last("KVM_GET_ONE_REG", ret, "the register cannot be read")?;
        Ok(value)
    }

    /// Runs vCPU 0 on after the first entry, until the guest stops it (a PSCI
    /// SYSTEM_OFF or RESET: `KVM_EXIT_SYSTEM_EVENT`), KVM fails it, or `deadline`
    /// passes. Bytes the guest writes to the 8250's data register at `uart` go to
    /// `console`; other MMIO reads as zero, and writes are dropped.
    pub fn run(
        &mut self,
        uart: u64,
        deadline: std::time::Instant,
        console: &mut dyn Write,
    ) -> Result<String, RealmError> {
        let _ = console.write_all(&std::mem::take(&mut self.early));
        if let Some(done) = self.stopped.take() {
            return Ok(done);
        }
        while std::time::Instant::now() < deadline {
            let mut out = Vec::new();
            if let Some(done) = self.enter(uart, &mut out)? {
                let _ = console.write_all(&out);
                return Ok(done);
            }
            let _ = console.write_all(&out);
        }
        Ok("the timeout passed".into())
    }

    /// One `KVM_RUN` of vCPU 0 and its exit: console bytes into `out`; `Some` when the
    /// realm stopped.
    fn enter(&mut self, uart: u64, out: &mut Vec<u8>) -> Result<Option<String>, RealmError> {
        let vcpu = self
            .vcpus
            .first_mut()
            .ok_or_else(|| RealmError::new("KVM_RUN", libc::EBADF, "no vCPU"))?;
        match vcpu.run() {
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if addr == uart {
                    out.extend_from_slice(data.get(..1).unwrap_or(&[]));
                }
                Ok(None)
            }
            Ok(VcpuExit::MmioRead(_, data)) => {
                data.fill(0);
                Ok(None)
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                Ok(Some(format!("the realm stopped (system event {kind})")))
            }
            Ok(VcpuExit::Shutdown) => Ok(Some("the realm shut down".into())),
            Ok(other) => Err(RealmError::new(
                "KVM_RUN",
                libc::EIO,
                format!("unexpected exit {other:?}"),
            )),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Ok(None),
            Err(e) => Err(kernel("KVM_RUN", &e, "the realm failed")),
        }
    }
}

impl RealmHardware for KvmRealm {
    fn check_rmi(&mut self) -> Result<(), RealmError> {
        let cap = cap_number();
        if self.kvm.check_extension_raw(u64::from(cap) as _) <= 0 {
            return Err(RealmError::new(
                "KVM_CHECK_EXTENSION",
                libc::ENODEV,
                format!(
                    "KVM offers no realms (KVM_CAP_ARM_RMI, number {cap}): the host needs the \
                     v14 CCA series and an RMM"
                ),
            ));
        }
        Ok(())
    }

    fn create_vm(&mut self, vm_type: u64) -> Result<(), RealmError> {
        let vm = self
            .kvm
            .create_vm_with_type(vm_type)
            .map_err(|e| kernel("KVM_CREATE_VM", &e, format!("type {vm_type:#x}")))?;
        self.vm = Some(vm);
        Ok(())
    }

    fn create_vcpu(&mut self, id: u32, features: u32) -> Result<(), RealmError> {
        let vm = self.vm("KVM_CREATE_VCPU")?;
        let mut init = sys::KvmVcpuInit::default();
        // SAFETY: KVM_ARM_PREFERRED_TARGET writes one struct kvm_vcpu_init into `init`.
        let ret = unsafe { ioctl_with_mut_ref(vm, sys::KVM_ARM_PREFERRED_TARGET as _, &mut init) };
        last("KVM_ARM_PREFERRED_TARGET", ret, "no preferred vCPU target")?;
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(|e| kernel("KVM_CREATE_VCPU", &e, format!("vCPU {id}")))?;
        init.features = [features, 0, 0, 0, 0, 0, 0];
        // SAFETY: KVM_ARM_VCPU_INIT reads one struct kvm_vcpu_init.
        let ret = unsafe { ioctl_with_ref(&fd, sys::KVM_ARM_VCPU_INIT as _, &init) };
        last("KVM_ARM_VCPU_INIT", ret, "the vCPU's features were refused")?;
        self.vcpus.push(fd);
        Ok(())
    }

    fn set_core_reg(&mut self, vcpu: u32, reg: u64, value: u64) -> Result<(), RealmError> {
        self.one_reg(vcpu, reg, value)
    }

    fn set_debug_counts(&mut self, vcpu: u32, brps: u8, wrps: u8) -> Result<(), RealmError> {
        let old = self.get_reg(vcpu, sys::REG_ID_AA64DFR0_EL1)?;
        let field = |v: u64, (shift, width): (u32, u32)| (v >> shift) & ((1 << width) - 1);
        let put = |v: u64, (shift, width): (u32, u32), x: u64| {
            (v & !(((1u64 << width) - 1) << shift)) | (x << shift)
        };
        let ctx = field(old, sys::DFR0_CTX_CMPS).min(u64::from(brps));
        let mut new = put(old, sys::DFR0_BRPS, u64::from(brps));
        new = put(new, sys::DFR0_WRPS, u64::from(wrps));
        new = put(new, sys::DFR0_CTX_CMPS, ctx);
        if new == old {
            return Ok(());
        }
        self.one_reg(vcpu, sys::REG_ID_AA64DFR0_EL1, new)
    }

    fn create_gic(&mut self, gic: GicLayout) -> Result<(), RealmError> {
        let vm = self.vm("KVM_CREATE_DEVICE")?;
        let mut dev = kvm_bindings::kvm_create_device {
            type_: sys::KVM_DEV_TYPE_ARM_VGIC_V3,
            fd: 0,
            flags: 0,
        };
        let fd = vm
            .create_device(&mut dev)
            .map_err(|e| kernel("KVM_CREATE_DEVICE", &e, "no GICv3"))?;
        for (attr, base) in [
            (sys::KVM_VGIC_V3_ADDR_TYPE_DIST, gic.dist),
            (sys::KVM_VGIC_V3_ADDR_TYPE_REDIST, gic.redist),
        ] {
            let a = kvm_bindings::kvm_device_attr {
                flags: 0,
                group: sys::KVM_DEV_ARM_VGIC_GRP_ADDR,
                attr,
                addr: std::ptr::addr_of!(base) as u64,
            };
            fd.set_device_attr(&a)
                .map_err(|e| kernel("KVM_SET_DEVICE_ATTR", &e, "the GIC's frames"))?;
        }
        let init = kvm_bindings::kvm_device_attr {
            flags: 0,
            group: sys::KVM_DEV_ARM_VGIC_GRP_CTRL,
            attr: sys::KVM_DEV_ARM_VGIC_CTRL_INIT,
            addr: 0,
        };
        fd.set_device_attr(&init)
            .map_err(|e| kernel("KVM_SET_DEVICE_ATTR", &e, "VGIC init"))?;
        self.gic = Some(fd);
        Ok(())
    }

    fn add_private_memory(&mut self, slot: u32, gpa: u64, len: u64) -> Result<(), RealmError> {
        const C: &str = "KVM_SET_USER_MEMORY_REGION2";
        let size = usize::try_from(len)
            .map_err(|_| RealmError::new(C, libc::EINVAL, "the slot is too large"))?;
        let map = memmap2::MmapMut::map_anon(size)
            .map_err(|e| RealmError::new(C, e.raw_os_error().unwrap_or(libc::ENOMEM), "mmap"))?;
        let vm = self.vm(C)?;
        let gmem = vm
            .create_guest_memfd(kvm_create_guest_memfd {
                size: len,
                flags: 0,
                reserved: [0; 6],
            })
            .map_err(|e| kernel("KVM_CREATE_GUEST_MEMFD", &e, format!("{len:#x} bytes")))?;
        // SAFETY: KVM_CREATE_GUEST_MEMFD returned a new descriptor that nothing else owns.
        let gmem = unsafe { OwnedFd::from_raw_fd(gmem) };
        let region = kvm_userspace_memory_region2 {
            slot,
            flags: KVM_MEM_GUEST_MEMFD,
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: map.as_ptr() as u64,
            guest_memfd_offset: 0,
            guest_memfd: u32::try_from(gmem.as_raw_fd()).unwrap_or(u32::MAX),
            pad1: 0,
            pad2: [0; 14],
        };
        // SAFETY: the mapping and the guest_memfd are kept in `self.slots` for as long as
        // the VM exists (the VM is dropped first); the mapping holds guest data only.
        unsafe { vm.set_user_memory_region2(region) }
            .map_err(|e| kernel(C, &e, format!("slot {slot} at {gpa:#x}")))?;
        vm.set_memory_attributes(kvm_memory_attributes {
            address: gpa,
            size: len,
            attributes: u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE),
            flags: 0,
        })
        .map_err(|e| kernel("KVM_SET_MEMORY_ATTRIBUTES", &e, "private"))?;
        self.slots.push(Slot {
            gpa,
            map,
            _gmem: gmem,
        });
        Ok(())
    }

    fn write_source(&mut self, gpa: u64, data: &[u8]) -> Result<(), RealmError> {
        let (i, at) = self.slot_of(gpa, "write")?;
        let slot = self
            .slots
            .get_mut(i)
            .ok_or_else(|| RealmError::new("write", libc::EFAULT, "not guest memory"))?;
        let dst = at
            .checked_add(data.len())
            .and_then(|end| slot.map.get_mut(at..end))
            .ok_or_else(|| RealmError::new("write", libc::EFAULT, "past the slot's end"))?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn source_address(&self, gpa: u64) -> Result<u64, RealmError> {
        let (i, at) = self.slot_of(gpa, "source")?;
        self.slots
            .get(i)
            .map(|s| (s.map.as_ptr() as u64).saturating_add(at as u64))
            .ok_or_else(|| RealmError::new("source", libc::EFAULT, "not guest memory"))
    }

    fn populate(&mut self, args: &mut sys::KvmArmRmiPopulate) -> Result<(), RealmError> {
        let vm = self.vm("KVM_ARM_RMI_POPULATE")?;
        // SAFETY: KVM_ARM_RMI_POPULATE reads and writes one struct kvm_arm_rmi_populate;
        // the source it reads is the VMM's mapping of a memory slot ([`Self::source_address`]).
        let ret = unsafe { ioctl_with_mut_ref(vm, sys::KVM_ARM_RMI_POPULATE as _, args) };
        last("KVM_ARM_RMI_POPULATE", ret, "the populate was refused")
    }

    fn first_run(&mut self) -> Result<(), RealmError> {
        let mut out = Vec::new();
        let stopped = self.enter(self.uart, &mut out)?;
        self.early = out;
        self.stopped = stopped;
        Ok(())
    }
}
