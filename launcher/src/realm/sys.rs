//! KVM's realm interface as the v14 series defines it ("arm64: Support for Arm CCA in
//! KVM" v14, 2026-05-13, Steven Price, on Linux 7.1-rc1 and RMM 2.0-bet1; patches 13 and
//! 16/44 for include/uapi/linux/kvm.h), and the mainline arm64 KVM ABI a realm's vCPUs
//! and GIC use (include/uapi/linux/kvm.h, arch/arm64/include/uapi/asm/kvm.h). The realm
//! part is not in mainline: every number here is that revision's, and the capability's
//! number, which moved with every revision, is read at run time where KVM exports it.
//! The structures are checked against the kernel's sizes at compile time.

/// `KVM_CAP_ARM_RMI` in v14 (v12: 247, v13: 248).
pub const KVM_CAP_ARM_RMI_V14: u32 = 249;
/// Where a kernel of the series exports the capability's number (downstream QEMU reads
/// it there; older revisions: `kvm_cap_arm_rme`).
pub const CAP_PARAMETERS: [&str; 2] = [
    "/sys/module/kvm/parameters/kvm_cap_arm_rmi",
    "/sys/module/kvm/parameters/kvm_cap_arm_rme",
];

/// `KVM_VM_TYPE_ARM_IPA_SIZE_MASK`: bits 7-0 of the VM type are the IPA bits (0: 40).
pub const KVM_VM_TYPE_ARM_IPA_SIZE_MASK: u64 = 0xff;
/// `KVM_VM_TYPE_ARM_REALM` (v14, patch 16/44).
pub const KVM_VM_TYPE_ARM_REALM: u64 = 1 << 30;
/// `KVM_VM_TYPE_ARM_PROTECTED` (pKVM, mainline).
pub const KVM_VM_TYPE_ARM_PROTECTED: u64 = 1 << 31;
/// `KVM_VM_TYPE_ARM_MASK`.
pub const KVM_VM_TYPE_ARM_MASK: u64 =
    KVM_VM_TYPE_ARM_IPA_SIZE_MASK | KVM_VM_TYPE_ARM_PROTECTED | KVM_VM_TYPE_ARM_REALM;

/// `KVM_ARM_RMI_POPULATE_FLAGS_MEASURE`: hash the populated data into the RIM.
pub const KVM_ARM_RMI_POPULATE_FLAGS_MEASURE: u32 = 1;

/// `struct kvm_arm_rmi_populate` (in/out: the kernel advances `base`, `size` and
/// `source_uaddr` by what it populated).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmArmRmiPopulate {
    /// The first IPA.
    pub base: u64,
    /// Bytes left.
    pub size: u64,
    /// The VMM's copy of the data.
    pub source_uaddr: u64,
    /// `KVM_ARM_RMI_POPULATE_FLAGS_MEASURE` or 0.
    pub flags: u32,
    /// Must be zero.
    pub reserved: u32,
}
const _: () = assert!(std::mem::size_of::<KvmArmRmiPopulate>() == 32);

const KVMIO: u64 = 0xae;
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `KVM_ARM_RMI_POPULATE`: `_IOWR(KVMIO, 0xd7, struct kvm_arm_rmi_populate)`.
pub const KVM_ARM_RMI_POPULATE: u64 = ioc(
    IOC_READ | IOC_WRITE,
    0xd7,
    std::mem::size_of::<KvmArmRmiPopulate>(),
);

/// `struct kvm_vcpu_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmVcpuInit {
    /// The CPU target (`KVM_ARM_PREFERRED_TARGET`'s).
    pub target: u32,
    /// Feature bits.
    pub features: [u32; 7],
}
const _: () = assert!(std::mem::size_of::<KvmVcpuInit>() == 32);

/// `KVM_ARM_VCPU_INIT`: `_IOW(KVMIO, 0xae, struct kvm_vcpu_init)`.
pub const KVM_ARM_VCPU_INIT: u64 = ioc(IOC_WRITE, 0xae, std::mem::size_of::<KvmVcpuInit>());
/// `KVM_ARM_PREFERRED_TARGET`: `_IOR(KVMIO, 0xaf, struct kvm_vcpu_init)`.
pub const KVM_ARM_PREFERRED_TARGET: u64 = ioc(IOC_READ, 0xaf, std::mem::size_of::<KvmVcpuInit>());
/// `KVM_ARM_VCPU_EL1_32BIT`, `KVM_ARM_VCPU_PSCI_0_2` and `KVM_ARM_VCPU_HAS_EL2`: feature
/// bit numbers.
pub const KVM_ARM_VCPU_EL1_32BIT: u32 = 1;
/// PSCI 0.2+ for the vCPU (a REC needs it: the RMM reports PSCI 1.0, patch 19/44).
pub const KVM_ARM_VCPU_PSCI_0_2: u32 = 2;
/// Nested virtualization.
pub const KVM_ARM_VCPU_HAS_EL2: u32 = 7;

/// `struct kvm_one_reg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmOneReg {
    /// The register's id.
    pub id: u64,
    /// Where its value is.
    pub addr: u64,
}
const _: () = assert!(std::mem::size_of::<KvmOneReg>() == 16);

/// `KVM_GET_ONE_REG`: `_IOW(KVMIO, 0xab, struct kvm_one_reg)`.
pub const KVM_GET_ONE_REG: u64 = ioc(IOC_WRITE, 0xab, std::mem::size_of::<KvmOneReg>());
/// `KVM_SET_ONE_REG`: `_IOW(KVMIO, 0xac, struct kvm_one_reg)`.
pub const KVM_SET_ONE_REG: u64 = ioc(IOC_WRITE, 0xac, std::mem::size_of::<KvmOneReg>());

const KVM_REG_ARM64: u64 = 0x6000_0000_0000_0000;
const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
const KVM_REG_ARM_CORE: u64 = 0x0010 << 16;
const KVM_REG_ARM64_SYSREG: u64 = 0x0013 << 16;

/// A core register's id: its offset in `struct kvm_regs` in 32-bit words.
const fn core_reg(offset: u64) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset / 4)
}
/// `x<n>` (`regs.regs[n]`, n < 31), or None.
pub const fn reg_x(n: u8) -> Option<u64> {
    if n < 31 {
        Some(core_reg(n as u64 * 8))
    } else {
        None
    }
}
/// `pc` (`regs.pc`, after regs[31] and sp).
pub const REG_PC: u64 = core_reg(32 * 8);
/// `ID_AA64DFR0_EL1`: `ARM64_SYS_REG(3, 0, 0, 5, 0)`.
pub const REG_ID_AA64DFR0_EL1: u64 =
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | (3 << 14) | (5 << 3);
/// ID_AA64DFR0_EL1's BRPs (breakpoints minus one), WRPs and CTX_CMPs fields: (shift,
/// width).
pub const DFR0_BRPS: (u32, u32) = (12, 4);
/// WRPs (watchpoints minus one).
pub const DFR0_WRPS: (u32, u32) = (20, 4);
/// CTX_CMPs (context-aware breakpoints minus one, never more than BRPs).
pub const DFR0_CTX_CMPS: (u32, u32) = (28, 4);

/// `struct kvm_create_device`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmCreateDevice {
    /// `KVM_DEV_TYPE_*`.
    pub kind: u32,
    /// Out: the device's descriptor.
    pub fd: u32,
    /// `KVM_CREATE_DEVICE_TEST` or 0.
    pub flags: u32,
}
const _: () = assert!(std::mem::size_of::<KvmCreateDevice>() == 12);
/// `KVM_CREATE_DEVICE`: `_IOWR(KVMIO, 0xe0, struct kvm_create_device)`.
pub const KVM_CREATE_DEVICE: u64 = ioc(
    IOC_READ | IOC_WRITE,
    0xe0,
    std::mem::size_of::<KvmCreateDevice>(),
);
/// `KVM_DEV_TYPE_ARM_VGIC_V3` (realms have no GICv2, patch 20/44).
pub const KVM_DEV_TYPE_ARM_VGIC_V3: u32 = 7;

/// `struct kvm_device_attr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmDeviceAttr {
    /// 0.
    pub flags: u32,
    /// The attribute group.
    pub group: u32,
    /// The attribute.
    pub attr: u64,
    /// Where its value is.
    pub addr: u64,
}
const _: () = assert!(std::mem::size_of::<KvmDeviceAttr>() == 24);
/// `KVM_SET_DEVICE_ATTR`: `_IOW(KVMIO, 0xe1, struct kvm_device_attr)`.
pub const KVM_SET_DEVICE_ATTR: u64 = ioc(IOC_WRITE, 0xe1, std::mem::size_of::<KvmDeviceAttr>());
/// `KVM_DEV_ARM_VGIC_GRP_ADDR`, with `KVM_VGIC_V3_ADDR_TYPE_DIST` and `_REDIST`.
pub const KVM_DEV_ARM_VGIC_GRP_ADDR: u32 = 0;
/// The distributor's base.
pub const KVM_VGIC_V3_ADDR_TYPE_DIST: u64 = 2;
/// The redistributors' base.
pub const KVM_VGIC_V3_ADDR_TYPE_REDIST: u64 = 3;
/// `KVM_DEV_ARM_VGIC_GRP_CTRL` with `KVM_DEV_ARM_VGIC_CTRL_INIT`.
pub const KVM_DEV_ARM_VGIC_GRP_CTRL: u32 = 4;
/// Initializes the VGIC (after the vCPUs exist).
pub const KVM_DEV_ARM_VGIC_CTRL_INIT: u64 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    /// The ioctl numbers against the encodings the kernel's _IOW/_IOWR produce.
    #[test]
    fn ioctl_numbers() {
        assert_eq!(KVM_ARM_RMI_POPULATE, 0xc020_aed7);
        assert_eq!(KVM_ARM_VCPU_INIT, 0x4020_aeae);
        assert_eq!(KVM_ARM_PREFERRED_TARGET, 0x8020_aeaf);
        assert_eq!(KVM_SET_ONE_REG, 0x4010_aeac);
        assert_eq!(KVM_GET_ONE_REG, 0x4010_aeab);
        assert_eq!(KVM_CREATE_DEVICE, 0xc00c_aee0);
        assert_eq!(KVM_SET_DEVICE_ATTR, 0x4018_aee1);
        // arch/arm64/include/uapi/asm/kvm.h: x0 is 0x6030000000100000, pc ...100040.
        assert_eq!(reg_x(0), Some(0x6030_0000_0010_0000));
        assert_eq!(reg_x(1), Some(0x6030_0000_0010_0002));
        assert_eq!(REG_PC, 0x6030_0000_0010_0040);
        assert_eq!(REG_ID_AA64DFR0_EL1, 0x6030_0000_0013_c028);
        assert_eq!(reg_x(31), None);
    }
}
