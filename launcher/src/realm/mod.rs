//! Arm CCA realms on KVM's v14 realm interface: the backend that creates a realm from
//! its [`RealmPlan`] ([`launch`]), the hardware side it drives ([`RealmHardware`]),
//! KVM's ioctls ([`sys`], and with the cargo feature `cca` the real thing in `kvm`),
//! and a model of KVM and the RMM ([`model`]) that checks every call as they would and
//! keeps the RIM as the RMM does: `cvm launch --tee cca --dry-run`.
//!
//! The flow (the v14 series' patches 13-28/44): create the VM with
//! `KVM_VM_TYPE_ARM_REALM | IPA bits`; the vCPUs with PSCI 0.2 and the registers of the
//! first REC; the breakpoint and watchpoint counts (ID_AA64DFR0_EL1, patch 39); the GICv3
//! (an in-kernel irqchip is required, patch 18); guest_memfd-backed private memory; then
//! `KVM_ARM_RMI_POPULATE` of every data granule of the plan, looping until the kernel
//! says none is left (the first one creates the realm descriptor, patch 28); the first
//! `KVM_RUN` creates the RECs, sets the RIPAS of RAM and activates the realm.
//!
//! The plan that is measured ([`RealmPlan::measure`] with [`Interface::KvmRmiV14`]) is
//! the plan that is launched: [`launch`] takes nothing else.

pub mod model;
pub mod sys;
pub mod token;

#[cfg(all(target_os = "linux", feature = "cca"))]
pub mod kvm;

use cvm_firmware::cca::{Interface, RealmPlan};
use serde::Serialize;

/// A call of the realm's host side that failed: which, with the errno KVM returns (or
/// the model would), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {} ({why})", std::io::Error::from_raw_os_error(*errno))]
pub struct RealmError {
    /// The ioctl (and its step).
    pub call: &'static str,
    /// The errno.
    pub errno: i32,
    /// Why, as the kernel or the RMM sees it.
    pub why: String,
}

impl RealmError {
    /// An error of `call`.
    pub fn new(call: &'static str, errno: i32, why: impl Into<String>) -> Self {
        RealmError {
            call,
            errno,
            why: why.into(),
        }
    }
}

/// Where the GICv3's distributor and redistributors are (the layout's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GicLayout {
    /// The distributor's base.
    pub dist: u64,
    /// The redistributors' base (one 128 KiB frame per vCPU below the distributor).
    pub redist: u64,
}

/// kvmtool's GICv3, the one its DTB describes ([`cvm_firmware::cca::layout::kvmtool_gic`]).
pub fn kvmtool_gic(vcpus: u32) -> GicLayout {
    let (dist, redist) = cvm_firmware::cca::layout::kvmtool_gic(vcpus);
    GicLayout { dist, redist }
}

/// The host side of a realm's creation: KVM's ioctls, or the model's answers to them.
pub trait RealmHardware {
    /// `KVM_CHECK_EXTENSION(KVM_CAP_ARM_RMI)` on /dev/kvm: whether realms are offered.
    fn check_rmi(&mut self) -> Result<(), RealmError>;
    /// `KVM_CREATE_VM` of `vm_type`.
    fn create_vm(&mut self, vm_type: u64) -> Result<(), RealmError>;
    /// `KVM_CREATE_VCPU` `id`, then `KVM_ARM_VCPU_INIT` with the preferred target and
    /// the feature bits `features`.
    fn create_vcpu(&mut self, id: u32, features: u32) -> Result<(), RealmError>;
    /// `KVM_SET_ONE_REG` of a core register (`sys::reg_x`, `sys::REG_PC`).
    fn set_core_reg(&mut self, vcpu: u32, reg: u64, value: u64) -> Result<(), RealmError>;
    /// The vCPU's ID_AA64DFR0_EL1 with its BRPs and WRPs fields set to `brps` and
    /// `wrps` (counts minus one; CTX_CMPs kept no larger than BRPs): `KVM_GET_ONE_REG`,
    /// then `KVM_SET_ONE_REG`.
    fn set_debug_counts(&mut self, vcpu: u32, brps: u8, wrps: u8) -> Result<(), RealmError>;
    /// The GICv3: `KVM_CREATE_DEVICE`, its two base addresses, then
    /// `KVM_DEV_ARM_VGIC_CTRL_INIT`.
    fn create_gic(&mut self, gic: GicLayout) -> Result<(), RealmError>;
    /// Private guest memory at `[gpa, gpa + len)`: `KVM_CREATE_GUEST_MEMFD`,
    /// `KVM_SET_USER_MEMORY_REGION2` with `KVM_MEM_GUEST_MEMFD` as memory slot `slot`,
    /// and `KVM_SET_MEMORY_ATTRIBUTES` private.
    fn add_private_memory(&mut self, slot: u32, gpa: u64, len: u64) -> Result<(), RealmError>;
    /// Writes `data` into the VMM's (shared) copy of guest memory at `gpa`, the source
    /// of a later populate.
    fn write_source(&mut self, gpa: u64, data: &[u8]) -> Result<(), RealmError>;
    /// The host address of the VMM's copy of `gpa`.
    fn source_address(&self, gpa: u64) -> Result<u64, RealmError>;
    /// `KVM_ARM_RMI_POPULATE`; the kernel advances `args` by what it populated.
    fn populate(&mut self, args: &mut sys::KvmArmRmiPopulate) -> Result<(), RealmError>;
    /// The first `KVM_RUN` of vCPU 0, which activates the realm; returns once KVM has
    /// entered it (the model: once activated).
    fn first_run(&mut self) -> Result<(), RealmError>;
}

/// One call the backend made, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// The ioctl.
    pub call: &'static str,
    /// Its arguments.
    pub what: String,
}

/// What a realm's creation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Created {
    /// Every call, in order.
    pub calls: Vec<Call>,
}

/// The most populate calls one range may take (each one makes progress or fails; a
/// kernel that reports neither is refused rather than looped on).
const MAX_POPULATE_CALLS: usize = 1 << 16;

/// Creates the realm of `plan` with `vcpus` vCPUs and the GIC at `gic` on `hw`: every
/// step of the plan, in the plan's order, and nothing else.
pub fn launch(
    plan: &RealmPlan,
    vcpus: u32,
    gic: GicLayout,
    hw: &mut dyn RealmHardware,
) -> Result<Created, RealmError> {
    let mut out = Created::default();
    let mut note = |call: &'static str, what: String| out.calls.push(Call { call, what });
    if plan.interface != Interface::KvmRmiV14 {
        return Err(RealmError::new(
            "plan",
            libc::EINVAL,
            "the plan is not for KVM's v14 realm interface (--vmm cvm)",
        ));
    }
    if vcpus == 0 {
        return Err(RealmError::new(
            "plan",
            libc::EINVAL,
            "a realm needs a vCPU",
        ));
    }
    let p = &plan.params;
    hw.check_rmi()?;
    note("KVM_CHECK_EXTENSION", "KVM_CAP_ARM_RMI".into());
    let vm_type = sys::KVM_VM_TYPE_ARM_REALM | u64::from(p.ipa_bits);
    hw.create_vm(vm_type)?;
    note(
        "KVM_CREATE_VM",
        format!("type {vm_type:#x} (realm, {} IPA bits)", p.ipa_bits),
    );
    let (brps, wrps) = (p.num_bps.saturating_sub(1), p.num_wps.saturating_sub(1));
    for id in 0..vcpus {
        hw.create_vcpu(id, 1 << sys::KVM_ARM_VCPU_PSCI_0_2)?;
        note("KVM_ARM_VCPU_INIT", format!("vCPU {id}, PSCI 0.2"));
        hw.set_debug_counts(id, brps, wrps)?;
        note(
            "KVM_SET_ONE_REG",
            format!("vCPU {id} ID_AA64DFR0_EL1: BRPs {brps}, WRPs {wrps}"),
        );
    }
    if let Some(rec) = &plan.rec {
        for (n, v) in (0u8..).zip(rec.gprs) {
            let reg = sys::reg_x(n)
                .ok_or_else(|| RealmError::new("plan", libc::EINVAL, "no such register"))?;
            hw.set_core_reg(0, reg, v)?;
        }
        hw.set_core_reg(0, sys::REG_PC, rec.pc)?;
        note(
            "KVM_SET_ONE_REG",
            format!("vCPU 0 pc {:#x}, x0-x7 {:x?}", rec.pc, rec.gprs),
        );
    }
    hw.create_gic(gic)?;
    note(
        "KVM_CREATE_DEVICE",
        format!(
            "GICv3, distributor {:#x}, redistributors {:#x}",
            gic.dist, gic.redist
        ),
    );
    for (slot, &(gpa, len)) in (0u32..).zip(&plan.ram) {
        hw.add_private_memory(slot, gpa, len)?;
        note(
            "KVM_SET_USER_MEMORY_REGION2",
            format!("slot {slot}: {gpa:#x}+{len:#x}, guest_memfd, private"),
        );
    }
    for d in plan.data_in_order() {
        let (start, content) = d.granules();
        hw.write_source(start, &content)?;
        let size = u64::try_from(content.len()).unwrap_or(u64::MAX);
        let mut args = sys::KvmArmRmiPopulate {
            base: start,
            size,
            source_uaddr: hw.source_address(start)?,
            flags: if d.measured {
                sys::KVM_ARM_RMI_POPULATE_FLAGS_MEASURE
            } else {
                0
            },
            reserved: 0,
        };
        let mut calls = 0usize;
        while args.size != 0 {
            let before = args.size;
            hw.populate(&mut args)?;
            calls = calls.saturating_add(1);
            if args.size >= before || calls > MAX_POPULATE_CALLS {
                return Err(RealmError::new(
                    "KVM_ARM_RMI_POPULATE",
                    libc::EIO,
                    format!(
                        "no progress at {:#x} ({:#x} bytes left)",
                        args.base, args.size
                    ),
                ));
            }
        }
        note(
            "KVM_ARM_RMI_POPULATE",
            format!(
                "{} {start:#x}+{size:#x}{} in {calls} call{}",
                d.name,
                if d.measured { ", measured" } else { "" },
                if calls == 1 { "" } else { "s" }
            ),
        );
    }
    hw.first_run()?;
    note(
        "KVM_RUN",
        "vCPU 0: RECs created, RIPAS of RAM set, realm activated".into(),
    );
    Ok(out)
}
