//! A model of KVM's v14 realm interface and of the RMM behind it: it answers every call
//! of [`super::RealmHardware`] as they would, refuses what they refuse with the same
//! errno, and keeps the Realm Initial Measurement as the RMM does. It powers `cvm launch
//! --tee cca --dry-run` and proves, in tests, that the plan measured is the plan launched.
//!
//! Sources, cited beside each rule:
//! - [K14] "arm64: Support for Arm CCA in KVM" v14 (Steven Price, 2026-05-13, patch n/44:
//!   arch/arm64/kvm/{arm.c,rmi.c,guest.c,sys_regs.c}); [K14+] the same file a revision
//!   later (gwshan/linux arch/arm64/kvm/rmi.c) where v14 returned an RMI status as if
//!   it were a count.
//! - [KVM] mainline arm64 KVM: arch/arm64/kvm/mmu.c (kvm_init_ipa_range,
//!   kvm_arch_prepare_memory_region), arm.c (kvm_arch_vcpu_precreate); [G]
//!   virt/kvm/guest_memfd.c (kvm_gmem_populate).
//! - [RMM] TF-RMM: runtime/rmi/realm.c (validate_realm_params), runtime/rmi/rtt_map.c
//!   (smc_rtt_data_map_init, RMM 2.0), runtime/rmi/rec.c (smc_rec_create: a REC is
//!   measured only when runnable), lib/measurement/src/rim.c and measurement_descs.h
//!   (the descriptors).
//!
//! What it does not model: RMM 2.0-bet1's RMI_RTT_INIT_RIPAS is taken as unmeasured (the
//! v14 thread, 2026-05-19: "It is not (at least for now)"), TF-RMM's v2.0 branch that v14
//! was tested on (topics/rmm-v2.0-poc_2) not being available to check; the stage-2 tables
//! (RMI_RTT_CREATE) are KVM's business and never fail here; SRO memory donation.

use super::{GicLayout, RealmError, RealmHardware, sys};
use cvm_firmware::cca::layout::HostCaps;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

const PAGE: u64 = 4096;
/// Where the model's VMM mappings start.
const HVA_BASE: u64 = 0x7e00_0000_0000;
/// `ARM64_MIN_PARANGE_BITS`, and the RMM's smallest s2sz (PARANGE_0000_WIDTH) alike.
const MIN_IPA_BITS: u8 = 32;
/// KVM's default IPA size when the VM type gives none ([KVM] KVM_PHYS_SHIFT).
const DEFAULT_IPA_BITS: u8 = 40;

/// The realm's state in KVM ([K14] 14/44 enum realm_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    None,
    New,
    Active,
    Dead,
}

#[derive(Debug)]
struct Vcpu {
    features: u32,
    gprs: [u64; 8],
    pc: u64,
    /// ID_AA64DFR0_EL1's BRPs and WRPs.
    brps: u8,
    wrps: u8,
}

#[derive(Debug)]
struct Slot {
    gpa: u64,
    len: u64,
}

/// The RMM's capabilities (RMI feature register 0) and the host kernel's LPA2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rmm {
    /// S2SZ: the largest IPA width.
    pub ipa_bits: u8,
    /// NUM_BPS and NUM_WPS: breakpoints and watchpoints, minus one.
    pub brps: u8,
    /// Watchpoints minus one.
    pub wrps: u8,
    /// The host kernel runs with LPA2 (`kvm_lpa2_is_enabled()`), which the RMM supports.
    pub lpa2: bool,
}

impl Rmm {
    /// From the host's capabilities (`--host-config`, the options); the counts are
    /// required.
    pub fn from_caps(caps: &HostCaps) -> Result<Self, String> {
        let need = |v: Option<u8>, what: &str| {
            v.ok_or_else(|| {
                format!(
                    "the model needs the host's {what}: give a host configuration \
                     (--host-config) or --{}",
                    what.replace('_', "-")
                )
            })
        };
        Ok(Rmm {
            ipa_bits: need(caps.ipa_bits, "ipa_bits")?,
            brps: need(caps.num_bps, "num_bps")?.saturating_sub(1),
            wrps: need(caps.num_wps, "num_wps")?.saturating_sub(1),
            lpa2: caps.lpa2.unwrap_or(false),
        })
    }
}

/// The model.
#[derive(Debug)]
pub struct RealmModel {
    rmm: Rmm,
    vm: Option<u8>,
    state: State,
    vcpus: Vec<Vcpu>,
    gic: Option<GicLayout>,
    slots: Vec<Slot>,
    /// The VMM's copy of guest memory: written pages by guest frame.
    source: BTreeMap<u64, Box<[u8; 4096]>>,
    /// Populated (assigned) frames.
    populated: BTreeSet<u64>,
    rim: [u8; 32],
}

fn err(call: &'static str, errno: i32, why: impl Into<String>) -> RealmError {
    RealmError::new(call, errno, why)
}

/// A 256-byte measurement descriptor ([RMM] measurement_descs.h): type at 0, length
/// 0x100 at 8, the RIM (a 64-byte field) at 0x10.
fn descriptor(kind: u8, rim: &[u8; 32]) -> [u8; 0x100] {
    let mut d = [0u8; 0x100];
    d[0] = kind;
    d[8..16].copy_from_slice(&0x100u64.to_le_bytes());
    d[0x10..0x30].copy_from_slice(rim);
    d
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl RealmModel {
    /// A host whose RMM offers `rmm`.
    pub fn new(rmm: Rmm) -> Self {
        RealmModel {
            rmm,
            vm: None,
            state: State::None,
            vcpus: Vec::new(),
            gic: None,
            slots: Vec::new(),
            source: BTreeMap::new(),
            populated: BTreeSet::new(),
            rim: [0; 32],
        }
    }

    /// The RIM once the realm is active (SHA-256: KVM's v14 interface sets hash_algo 0).
    pub fn rim(&self) -> Option<[u8; 32]> {
        (self.state == State::Active).then_some(self.rim)
    }

    /// RSI_ATTESTATION_TOKEN_INIT/CONTINUE of the running realm: the token of the
    /// model's RMM ([`super::token::model_token`]) with the realm's RIM and `challenge`.
    /// A realm that is not running has nothing to ask with.
    pub fn attestation_token(&self, challenge: &[u8; 64]) -> Result<Vec<u8>, RealmError> {
        const C: &str = "RSI_ATTESTATION_TOKEN_INIT";
        if self.state != State::Active {
            return Err(err(C, libc::EPERM, "the realm is not running"));
        }
        super::token::model_token(&self.rim, challenge).map_err(|e| err(C, libc::EIO, e))
    }

    /// Granules populated.
    pub fn granules(&self) -> u64 {
        u64::try_from(self.populated.len()).unwrap_or(u64::MAX)
    }

    fn ipa_bits(&self, call: &'static str) -> Result<u8, RealmError> {
        self.vm
            .ok_or_else(|| err(call, libc::EBADF, "no VM has been created"))
    }

    fn vcpu(&mut self, call: &'static str, id: u32) -> Result<&mut Vcpu, RealmError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.vcpus.get_mut(i))
            .ok_or_else(|| err(call, libc::EBADF, format!("no vCPU {id}")))
    }

    /// [K14] 28/44 realm_create_rd, then [RMM] smc_realm_create.
    fn ensure_created(&mut self, call: &'static str) -> Result<(), RealmError> {
        match self.state {
            State::None => {}
            State::New => return Ok(()),
            State::Dead => return Err(err(call, libc::ENXIO, "the realm is dead")),
            // [K14] 28/44: "default: return -EBUSY" (the realm is active).
            State::Active => {
                return Err(err(call, libc::EBUSY, "the realm has already run"));
            }
        }
        let ipa_bits = self.ipa_bits(call)?;
        let v0 = self
            .vcpus
            .first()
            .map_or((self.rmm.brps, self.rmm.wrps), |v| (v.brps, v.wrps));
        // [K14] 28, 39, 41/44: s2sz the VM's IPA bits; LPA2 when the host kernel uses
        // it; num_bps/num_wps the BRPs/WRPs of ID_AA64DFR0_EL1; no SVE (cvm's vCPUs have
        // none), no PMU, hash_algo 0 (RMI_HASH_SHA_256).
        let flags: u64 = u64::from(self.rmm.lpa2);
        // [RMM] validate_realm_params refuses an s2sz outside [PARANGE_0000_WIDTH, S2SZ]
        // and counts above the feature register's (RMI_ERROR_INPUT, which KVM turns into
        // -ENXIO, [K14] 28/44). KVM checks both first, with the RMM's limits: the IPA
        // bits at KVM_CREATE_VM (kvm_init_ipa_range), the counts at KVM_SET_ONE_REG of
        // ID_AA64DFR0_EL1; so no parameters KVM passes reach that refusal, and the model
        // keeps the checks where KVM makes them.
        // [RMM] rim.c measurement_realm_params_measure: a zeroed 4096-byte
        // RmiRealmParams with flags, s2sz, sve_vl, num_bps, num_wps, pmu_num_ctrs and
        // hash_algo copied in (offsets 0, 8, 0x10, 0x18, 0x20, 0x28, 0x30).
        let mut p = [0u8; 4096];
        p[0..8].copy_from_slice(&flags.to_le_bytes());
        p[8] = ipa_bits;
        p[0x18] = v0.0;
        p[0x20] = v0.1;
        self.rim = sha256(&p);
        self.state = State::New;
        Ok(())
    }

    fn slot_of(&self, gpa: u64) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| gpa >= s.gpa && gpa - s.gpa < s.len)
    }
}

impl RealmHardware for RealmModel {
    fn check_rmi(&mut self) -> Result<(), RealmError> {
        Ok(())
    }

    fn create_vm(&mut self, vm_type: u64) -> Result<(), RealmError> {
        const C: &str = "KVM_CREATE_VM";
        if self.vm.is_some() {
            return Err(err(C, libc::EEXIST, "the model holds one VM"));
        }
        // [KVM] kvm_init_stage2_mmu: unknown type bits are -EINVAL.
        if vm_type & !sys::KVM_VM_TYPE_ARM_MASK != 0 {
            return Err(err(
                C,
                libc::EINVAL,
                format!("type {vm_type:#x} has unknown bits"),
            ));
        }
        // [K14] 16/44: realm and protected together are -EINVAL.
        if vm_type & sys::KVM_VM_TYPE_ARM_PROTECTED != 0 {
            return Err(err(C, libc::EINVAL, "a protected (pKVM) VM is not a realm"));
        }
        if vm_type & sys::KVM_VM_TYPE_ARM_REALM == 0 {
            return Err(err(C, libc::EINVAL, "the model only creates realms"));
        }
        // [KVM] kvm_init_ipa_range, with the RMM's S2SZ as the limit for realms ([K14]
        // 14/44).
        let bits = u8::try_from(vm_type & sys::KVM_VM_TYPE_ARM_IPA_SIZE_MASK).unwrap_or(0);
        let bits = if bits == 0 { DEFAULT_IPA_BITS } else { bits };
        if bits < MIN_IPA_BITS || bits > self.rmm.ipa_bits {
            return Err(err(
                C,
                libc::EINVAL,
                format!(
                    "{bits} IPA bits outside {MIN_IPA_BITS}-{} (the RMM's S2SZ)",
                    self.rmm.ipa_bits
                ),
            ));
        }
        self.vm = Some(bits);
        Ok(())
    }

    fn create_vcpu(&mut self, id: u32, features: u32) -> Result<(), RealmError> {
        const C: &str = "KVM_CREATE_VCPU";
        self.ipa_bits(C)?;
        // [KVM] kvm_arch_vcpu_precreate: no vCPU after the VGIC is initialized.
        if self.gic.is_some() {
            return Err(err(C, libc::EBUSY, "the GIC is already initialized"));
        }
        // [KVM] kvm_vm_ioctl_create_vcpu: ids below max_vcpus (GICv3: VGIC_V3_MAX_CPUS,
        // 512); the backend creates them in order, which the model holds it to.
        if id >= 512 {
            return Err(err(C, libc::EINVAL, format!("vCPU {id}: at most 512")));
        }
        if usize::try_from(id).ok() != Some(self.vcpus.len()) {
            return Err(err(C, libc::EEXIST, format!("vCPU {id} out of order")));
        }
        // [K14] 19/44 kvm_vcpu_init_check_features: realms are incompatible with AArch32
        // (and nested virtualization is refused for every VM).
        if features & (1 << sys::KVM_ARM_VCPU_EL1_32BIT) != 0
            || features & (1 << sys::KVM_ARM_VCPU_HAS_EL2) != 0
        {
            return Err(err(
                "KVM_ARM_VCPU_INIT",
                libc::EINVAL,
                "a REC is AArch64 at EL1",
            ));
        }
        self.vcpus.push(Vcpu {
            features,
            gprs: [0; 8],
            pc: 0,
            brps: self.rmm.brps,
            wrps: self.rmm.wrps,
        });
        Ok(())
    }

    fn set_core_reg(&mut self, vcpu: u32, reg: u64, value: u64) -> Result<(), RealmError> {
        const C: &str = "KVM_SET_ONE_REG";
        let v = self.vcpu(C, vcpu)?;
        // [K14] 31/44 kvm_realm_validate_core_reg: only x0-x30 and pc.
        if reg == sys::REG_PC {
            v.pc = value;
            return Ok(());
        }
        for n in 0u8..31 {
            if sys::reg_x(n) == Some(reg) {
                // Only x0-x7 reach the REC (REC_CREATE_NR_GPRS); the rest are kept by KVM.
                if let Some(g) = v.gprs.get_mut(usize::from(n)) {
                    *g = value;
                }
                return Ok(());
            }
        }
        Err(err(
            C,
            libc::EINVAL,
            format!("register {reg:#x}: a realm's host may set only x0-x30 and pc"),
        ))
    }

    fn set_debug_counts(&mut self, vcpu: u32, brps: u8, wrps: u8) -> Result<(), RealmError> {
        const C: &str = "KVM_SET_ONE_REG";
        let created = self.state != State::None;
        let rmm = self.rmm;
        let v = self.vcpu(C, vcpu)?;
        if (brps, wrps) == (v.brps, v.wrps) {
            return Ok(());
        }
        // [K14] 39/44 set_id_reg: immutable once the realm descriptor exists (-EBUSY on a
        // different value); set_id_aa64dfr0_el1: BRPs and WRPs above zero; the writable
        // limit is the RMM's (arm64_check_features against the sanitised reset value).
        if created {
            return Err(err(
                C,
                libc::EBUSY,
                "ID_AA64DFR0_EL1 after the realm was created",
            ));
        }
        if brps == 0 || wrps == 0 || brps > rmm.brps || wrps > rmm.wrps {
            return Err(err(
                C,
                libc::EINVAL,
                format!(
                    "ID_AA64DFR0_EL1 BRPs {brps}, WRPs {wrps}: each must be 1-{}/1-{}",
                    rmm.brps, rmm.wrps
                ),
            ));
        }
        v.brps = brps;
        v.wrps = wrps;
        Ok(())
    }

    fn create_gic(&mut self, gic: GicLayout) -> Result<(), RealmError> {
        const C: &str = "KVM_CREATE_DEVICE";
        const A: &str = "KVM_SET_DEVICE_ATTR";
        let bits = self.ipa_bits(C)?;
        // [KVM] kvm_vgic_create: one VGIC per VM (-EEXIST).
        if self.gic.is_some() {
            return Err(err(C, libc::EEXIST, "a GIC exists"));
        }
        // [KVM] vgic-kvm-device.c vgic_check_iorange: GICv3 frames 64 KiB-aligned
        // (-EINVAL) and inside the IPA space (-E2BIG); vgic-v3.c vgic_v3_check_base: the
        // distributor and the redistributors (128 KiB per vCPU) must not overlap.
        let frames = u64::try_from(self.vcpus.len()).unwrap_or(u64::MAX);
        let redist_top = frames
            .checked_mul(0x2_0000)
            .and_then(|l| gic.redist.checked_add(l));
        let dist_top = gic.dist.checked_add(0x1_0000);
        if !gic.dist.is_multiple_of(0x1_0000) || !gic.redist.is_multiple_of(0x1_0000) {
            return Err(err(
                A,
                libc::EINVAL,
                "the GIC's frames are not 64 KiB-aligned",
            ));
        }
        let space = 1u64 << bits;
        if dist_top.is_none_or(|t| t > space) || redist_top.is_none_or(|t| t > space) {
            return Err(err(
                A,
                libc::E2BIG,
                format!("the GIC's frames are past {bits} IPA bits"),
            ));
        }
        if redist_top > Some(gic.dist) && dist_top > Some(gic.redist) {
            return Err(err(A, libc::EINVAL, "the GIC's frames overlap"));
        }
        self.gic = Some(gic);
        Ok(())
    }

    fn add_private_memory(&mut self, slot: u32, gpa: u64, len: u64) -> Result<(), RealmError> {
        const C: &str = "KVM_SET_USER_MEMORY_REGION2";
        let bits = self.ipa_bits(C)?;
        if len == 0 || !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(err(C, libc::EINVAL, "memory slots are whole pages"));
        }
        let end = gpa
            .checked_add(len)
            .ok_or_else(|| err(C, libc::EINVAL, "the slot wraps"))?;
        // [KVM] kvm_arch_prepare_memory_region: beyond the IPA space is -EFAULT.
        if end > 1u64 << bits {
            return Err(err(
                C,
                libc::EFAULT,
                format!("{end:#x} is past {bits} IPA bits"),
            ));
        }
        if usize::try_from(slot).ok() != Some(self.slots.len())
            || self
                .slots
                .iter()
                .any(|s| gpa < s.gpa.saturating_add(s.len) && s.gpa < end)
        {
            return Err(err(C, libc::EEXIST, "the slot overlaps another"));
        }
        self.slots.push(Slot { gpa, len });
        Ok(())
    }

    fn write_source(&mut self, gpa: u64, data: &[u8]) -> Result<(), RealmError> {
        let in_ram = u64::try_from(data.len())
            .ok()
            .and_then(|l| gpa.checked_add(l))
            .is_some_and(|end| {
                self.slot_of(gpa)
                    .is_some_and(|s| end <= s.gpa.saturating_add(s.len))
            });
        if !in_ram || !gpa.is_multiple_of(PAGE) {
            return Err(err(
                "write",
                libc::EFAULT,
                format!("{} bytes at {gpa:#x} are not guest memory", data.len()),
            ));
        }
        for (page, chunk) in (gpa / PAGE..).zip(data.chunks(4096)) {
            let mut b = Box::new([0u8; 4096]);
            if let Some(d) = b.get_mut(..chunk.len()) {
                d.copy_from_slice(chunk);
            }
            self.source.insert(page, b);
        }
        Ok(())
    }

    fn source_address(&self, gpa: u64) -> Result<u64, RealmError> {
        self.slot_of(gpa)
            .map(|_| HVA_BASE.saturating_add(gpa))
            .ok_or_else(|| {
                err(
                    "source",
                    libc::EFAULT,
                    format!("{gpa:#x} is not guest memory"),
                )
            })
    }

    fn populate(&mut self, args: &mut sys::KvmArmRmiPopulate) -> Result<(), RealmError> {
        const C: &str = "KVM_ARM_RMI_POPULATE";
        self.ipa_bits(C)?;
        let end = args.base.checked_add(args.size);
        // [K14] 26/44 kvm_arm_rmi_populate (and [K14+]'s wrap and NULL-source checks).
        if args.reserved != 0
            || args.flags & !sys::KVM_ARM_RMI_POPULATE_FLAGS_MEASURE != 0
            || end.is_none()
            || !args.base.is_multiple_of(PAGE)
            || !args.size.is_multiple_of(PAGE)
            || !args.source_uaddr.is_multiple_of(PAGE)
            || args.source_uaddr == 0
        {
            return Err(err(C, libc::EINVAL, format!("bad arguments {args:x?}")));
        }
        self.ensure_created(C)?;
        if args.size == 0 {
            return Ok(());
        }
        let bits = self.ipa_bits(C)?;
        // [K14+] range_overflows(base, size, BIT(ia_bits - 1)): protected IPAs only.
        let par = 1u64 << bits.saturating_sub(1);
        if end.is_none_or(|e| e > par) {
            return Err(err(
                C,
                libc::EINVAL,
                format!(
                    "{:#x}+{:#x} is not in the protected half",
                    args.base, args.size
                ),
            ));
        }
        // [G] kvm_gmem_populate: the slot of the first page, which must be backed by a
        // guest_memfd (-EINVAL otherwise); at most to the slot's end per call.
        let slot_end = self
            .slot_of(args.base)
            .map(|s| s.gpa.saturating_add(s.len))
            .ok_or_else(|| {
                err(
                    C,
                    libc::EINVAL,
                    format!("{:#x} is in no memory slot", args.base),
                )
            })?;
        let stop = slot_end.min(args.base.saturating_add(args.size));
        let mut done = 0u64;
        let mut gpa = args.base;
        while gpa < stop {
            let frame = gpa / PAGE;
            // [G]: a page already prepared (populated) is -EEXIST.
            if self.populated.contains(&frame) {
                if done == 0 {
                    return Err(err(
                        C,
                        libc::EEXIST,
                        format!("{gpa:#x} is already populated"),
                    ));
                }
                break;
            }
            // The source must be the VMM's memory (get_user_pages: -EFAULT).
            let src = args
                .source_uaddr
                .saturating_add(done.saturating_mul(PAGE))
                .checked_sub(HVA_BASE)
                .filter(|g| self.slot_of(*g).is_some())
                .ok_or_else(|| err(C, libc::EFAULT, "the source is not mapped"))?;
            let zero = [0u8; 4096];
            let content: &[u8; 4096] = self.source.get(&(src / PAGE)).map_or(&zero, |b| b);
            // [RMM] smc_rtt_data_map_init: the realm NEW, the address in the PAR and
            // unassigned (both checked above); measurement_data_granule_measure:
            // {type 0, len, rim, ipa at 0x50, flags at 0x58, content H(granule) at 0x60
            // only with RMI_MEASURE_CONTENT}.
            let mut d = descriptor(0, &self.rim);
            d[0x50..0x58].copy_from_slice(&gpa.to_le_bytes());
            let measured = args.flags & sys::KVM_ARM_RMI_POPULATE_FLAGS_MEASURE != 0;
            d[0x58..0x60].copy_from_slice(&u64::from(measured).to_le_bytes());
            if measured {
                d[0x60..0x80].copy_from_slice(&sha256(content));
            }
            self.rim = sha256(&d);
            self.populated.insert(frame);
            done = done.saturating_add(1);
            gpa = gpa.saturating_add(PAGE);
        }
        let bytes = done.saturating_mul(PAGE);
        args.size = args.size.saturating_sub(bytes);
        args.base = args.base.saturating_add(bytes);
        args.source_uaddr = args.source_uaddr.saturating_add(bytes);
        Ok(())
    }

    fn first_run(&mut self) -> Result<(), RealmError> {
        const C: &str = "KVM_RUN";
        self.ipa_bits(C)?;
        if self.state == State::Active {
            return Ok(());
        }
        // [K14] 18/44 kvm_activate_realm: a userspace irqchip is -EOPNOTSUPP; [K14+]: an
        // uninitialized VGIC is -ENODEV.
        if self.gic.is_none() {
            return Err(err(C, libc::EOPNOTSUPP, "realms need the in-kernel GIC"));
        }
        self.ensure_created(C)?;
        self.state = State::Dead;
        // [K14] 19/44 kvm_create_rec, for every vCPU in order: PSCI 0.2 required
        // (-EINVAL); gprs[0..8] and pc from the vCPU; vCPU 0 RUNNABLE. [RMM] rec.c
        // measures only a runnable REC: {type 1, len, rim, content = H(RmiRecParams with
        // flags at 0, pc at 0x200, gprs at 0x300)}.
        for (i, v) in self.vcpus.iter().enumerate() {
            if v.features & (1 << sys::KVM_ARM_VCPU_PSCI_0_2) == 0 {
                return Err(err(C, libc::EINVAL, format!("vCPU {i} has no PSCI 0.2")));
            }
            if i == 0 {
                let mut p = [0u8; 4096];
                p[0..8].copy_from_slice(&1u64.to_le_bytes());
                p[0x200..0x208].copy_from_slice(&v.pc.to_le_bytes());
                for (k, g) in v.gprs.iter().enumerate() {
                    let at = 0x300usize.saturating_add(k.saturating_mul(8));
                    if let Some(t) = p.get_mut(at..at.saturating_add(8)) {
                        t.copy_from_slice(&g.to_le_bytes());
                    }
                }
                let mut d = descriptor(1, &self.rim);
                d[0x50..0x70].copy_from_slice(&sha256(&p));
                self.rim = sha256(&d);
            }
        }
        // [K14] 27/44 set_ripas_of_protected_regions: RMI_RTT_INIT_RIPAS over every
        // guest_memfd slot, not measured by RMM 2.0-bet1 (module documentation).
        self.state = State::Active;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realm::{GicLayout, launch, sys::KvmArmRmiPopulate};
    use cvm_firmware::cca::layout::{self, Inputs, Vmm};
    use cvm_firmware::cca::{Hash, RealmPlan};

    const RAM: u64 = 0x8000_0000;
    const PSCI: u32 = 1 << sys::KVM_ARM_VCPU_PSCI_0_2;
    const GIC: GicLayout = GicLayout {
        dist: 0x3fff_0000,
        redist: 0x3ffd_0000,
    };

    fn rmm() -> Rmm {
        Rmm {
            ipa_bits: 48,
            brps: 5,
            wrps: 3,
            lpa2: false,
        }
    }

    /// A VM with one vCPU, the GIC and 2 MiB of private RAM at 2 GiB.
    fn ready() -> RealmModel {
        let mut m = RealmModel::new(rmm());
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 40).unwrap();
        m.create_vcpu(0, PSCI).unwrap();
        m.create_gic(GIC).unwrap();
        m.add_private_memory(0, RAM, 0x20_0000).unwrap();
        m
    }

    fn populate(m: &mut RealmModel, base: u64, size: u64) -> Result<KvmArmRmiPopulate, RealmError> {
        let mut a = KvmArmRmiPopulate {
            base,
            size,
            source_uaddr: m.source_address(base)?,
            flags: sys::KVM_ARM_RMI_POPULATE_FLAGS_MEASURE,
            reserved: 0,
        };
        m.populate(&mut a).map(|()| a)
    }

    fn errno<T: std::fmt::Debug>(r: Result<T, RealmError>) -> i32 {
        r.expect_err("the model accepted it").errno
    }

    /// An arm64 Image header (booting.rst): text_offset 0, image_size, the magic.
    fn image(len: usize) -> Vec<u8> {
        let mut k = vec![0xa5u8; len];
        k[8..16].copy_from_slice(&0u64.to_le_bytes());
        k[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        k[56..60].copy_from_slice(b"ARM\x64");
        k
    }

    fn cvm_plan(
        vcpus: u32,
        memory: u64,
        kernel: Option<&[u8]>,
        initrd: Option<&[u8]>,
    ) -> RealmPlan {
        let caps = layout::HostCaps {
            ipa_bits: Some(48),
            num_bps: Some(6),
            num_wps: Some(4),
            ..Default::default()
        };
        let inputs = Inputs {
            vmm: Vmm::Cvm,
            caps,
            hash: Hash::Sha256,
            vcpus,
            memory,
            kernel,
            initrd,
            firmware: None,
            cmdline: Some("quiet"),
            its: true,
        };
        layout::plan(&inputs).unwrap().0
    }

    /// The plan measured (the firmware crate's fold) is the realm launched (the
    /// backend's calls, measured by this model's own RMM).
    #[test]
    fn the_plan_measured_is_the_realm_launched() {
        let kernel = image(3 * 4096 + 17);
        let initrd = vec![7u8; 10_000];
        for (vcpus, memory, k, rd) in [
            (1, 256 << 20, None, None),
            (1, 512 << 20, Some(&kernel[..]), None),
            (2, 512 << 20, Some(&kernel[..]), Some(&initrd[..])),
            (4, 1 << 30, Some(&kernel[..]), Some(&initrd[..])),
        ] {
            let plan = cvm_plan(vcpus, memory, k, rd);
            let (want, _) = plan.measure().unwrap();
            let mut m = RealmModel::new(Rmm {
                ipa_bits: 48,
                brps: 5,
                wrps: 3,
                lpa2: false,
            });
            launch(&plan, vcpus, crate::realm::kvmtool_gic(vcpus), &mut m).unwrap();
            assert_eq!(
                m.rim().map(|r| r.to_vec()),
                Some(want[..32].to_vec()),
                "{vcpus} {memory}"
            );
            assert!(want[32..].iter().all(|b| *b == 0));
        }
    }

    /// RMI_REALM_CREATE alone, against veraison/cca-realm-measurements' own value
    /// (src/realm_config.rs test_rim: 48 IPA bits, 2 breakpoints and watchpoints).
    #[test]
    fn realm_create_matches_the_reference_tool() {
        let mut m = RealmModel::new(Rmm {
            ipa_bits: 48,
            brps: 1,
            wrps: 1,
            lpa2: false,
        });
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 48).unwrap();
        m.create_vcpu(0, PSCI).unwrap();
        m.add_private_memory(0, RAM, 0x1000).unwrap();
        // A populate of nothing creates the realm descriptor ([K14] 28/44).
        populate(&mut m, RAM, 0).unwrap();
        assert_eq!(
            hex::encode(m.rim),
            "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973"
        );
    }

    #[test]
    fn vm_types() {
        let mut m = RealmModel::new(rmm());
        assert_eq!(
            errno(m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | sys::KVM_VM_TYPE_ARM_PROTECTED | 40)),
            libc::EINVAL
        );
        assert_eq!(
            errno(m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | (1 << 12))),
            libc::EINVAL
        );
        assert_eq!(
            errno(m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 49)),
            libc::EINVAL
        );
        assert_eq!(
            errno(m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 31)),
            libc::EINVAL
        );
        assert_eq!(errno(m.create_vm(40)), libc::EINVAL);
        // 0 IPA bits is KVM's default, 40.
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM).unwrap();
        assert_eq!(m.vm, Some(40));
        assert_eq!(errno(m.create_vm(sys::KVM_VM_TYPE_ARM_REALM)), libc::EEXIST);
    }

    #[test]
    fn vcpus_and_registers() {
        let mut m = RealmModel::new(rmm());
        assert_eq!(errno(m.create_vcpu(0, PSCI)), libc::EBADF);
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 40).unwrap();
        assert_eq!(
            errno(m.create_vcpu(0, PSCI | (1 << sys::KVM_ARM_VCPU_EL1_32BIT))),
            libc::EINVAL
        );
        assert_eq!(
            errno(m.create_vcpu(0, PSCI | (1 << sys::KVM_ARM_VCPU_HAS_EL2))),
            libc::EINVAL
        );
        m.create_vcpu(0, PSCI).unwrap();
        assert_eq!(errno(m.create_vcpu(2, PSCI)), libc::EEXIST);
        m.set_core_reg(0, sys::REG_PC, 0x8000_0000).unwrap();
        m.set_core_reg(0, sys::reg_x(30).unwrap(), 1).unwrap();
        assert_eq!(
            errno(m.set_core_reg(0, sys::REG_ID_AA64DFR0_EL1, 0)),
            libc::EINVAL
        );
        assert_eq!(errno(m.set_core_reg(1, sys::REG_PC, 0)), libc::EBADF);
        // Debug counts: 1 up to the RMM's, before the realm exists.
        assert_eq!(errno(m.set_debug_counts(0, 0, 1)), libc::EINVAL);
        assert_eq!(errno(m.set_debug_counts(0, 6, 1)), libc::EINVAL);
        assert_eq!(errno(m.set_debug_counts(0, 1, 4)), libc::EINVAL);
        m.set_debug_counts(0, 2, 2).unwrap();
        m.create_gic(GIC).unwrap();
        // No vCPU after the GIC is initialized.
        assert_eq!(errno(m.create_vcpu(1, PSCI)), libc::EBUSY);
        assert_eq!(errno(m.create_gic(GIC)), libc::EEXIST);
        let mut g = RealmModel::new(rmm());
        g.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 32).unwrap();
        g.create_vcpu(0, PSCI).unwrap();
        let gic = |dist, redist| GicLayout { dist, redist };
        assert_eq!(
            errno(g.create_gic(gic(0x3fff_1000, 0x3ffd_0000))),
            libc::EINVAL
        );
        assert_eq!(
            errno(g.create_gic(gic(0x3fff_0000, 0x3fff_0000))),
            libc::EINVAL
        );
        assert_eq!(
            errno(g.create_gic(gic(0x1_0000_0000, 0x3ffd_0000))),
            libc::E2BIG
        );
        assert_eq!(errno(g.create_vcpu(512, PSCI)), libc::EINVAL);
        m.add_private_memory(0, RAM, 0x1000).unwrap();
        populate(&mut m, RAM, 0).unwrap();
        assert_eq!(errno(m.set_debug_counts(0, 3, 2)), libc::EBUSY);
        m.set_debug_counts(0, 2, 2).unwrap();
    }

    #[test]
    fn memory_slots() {
        let mut m = RealmModel::new(rmm());
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 33).unwrap();
        assert_eq!(
            errno(m.add_private_memory(0, RAM + 1, 0x1000)),
            libc::EINVAL
        );
        assert_eq!(errno(m.add_private_memory(0, RAM, 0)), libc::EINVAL);
        assert_eq!(
            errno(m.add_private_memory(0, u64::MAX - 0xfff, 0x2000)),
            libc::EINVAL
        );
        assert_eq!(errno(m.source_address(RAM)), libc::EFAULT);
        // Past 2^33.
        assert_eq!(
            errno(m.add_private_memory(0, 0x1_f000_0000, 0x2000_0000)),
            libc::EFAULT
        );
        m.add_private_memory(0, RAM, 0x1000).unwrap();
        assert_eq!(errno(m.add_private_memory(1, RAM, 0x1000)), libc::EEXIST);
        assert_eq!(errno(m.write_source(RAM, &[0; 0x1001])), libc::EFAULT);
    }

    #[test]
    fn populate_rules() {
        let mut m = ready();
        let ok = |m: &RealmModel| KvmArmRmiPopulate {
            base: RAM,
            size: 0x1000,
            source_uaddr: m.source_address(RAM).unwrap(),
            flags: 0,
            reserved: 0,
        };
        for bad in [
            KvmArmRmiPopulate {
                reserved: 1,
                ..ok(&m)
            },
            KvmArmRmiPopulate { flags: 2, ..ok(&m) },
            KvmArmRmiPopulate {
                base: RAM + 8,
                ..ok(&m)
            },
            KvmArmRmiPopulate {
                size: 0x800,
                ..ok(&m)
            },
            KvmArmRmiPopulate {
                source_uaddr: 0,
                ..ok(&m)
            },
            KvmArmRmiPopulate {
                size: u64::MAX - 0xfff,
                ..ok(&m)
            },
        ] {
            let mut a = bad;
            assert_eq!(errno(m.populate(&mut a)), libc::EINVAL, "{bad:x?}");
        }
        // Outside the protected half (2^39 of 40 bits), outside every slot.
        assert_eq!(
            errno(populate(&mut m, RAM, 0x1000).map(|_| ()).and_then(|()| {
                let mut a = KvmArmRmiPopulate {
                    base: 1 << 39,
                    ..ok(&m)
                };
                m.populate(&mut a)
            })),
            libc::EINVAL
        );
        let mut a = KvmArmRmiPopulate {
            base: 0x4000_0000,
            ..ok(&m)
        };
        assert_eq!(errno(m.populate(&mut a)), libc::EINVAL);
        // Twice: -EEXIST; a source that is not the VMM's memory: -EFAULT.
        assert_eq!(errno(populate(&mut m, RAM, 0x1000)), libc::EEXIST);
        let mut a = KvmArmRmiPopulate {
            base: RAM + 0x1000,
            source_uaddr: 0x1000,
            ..ok(&m)
        };
        assert_eq!(errno(m.populate(&mut a)), libc::EFAULT);
        // Progress stops at the slot's end; the rest is for the next call.
        let mut m = ready();
        m.add_private_memory(1, RAM + 0x20_0000, 0x20_0000).unwrap();
        let a = populate(&mut m, RAM + 0x1f_f000, 0x2000).unwrap();
        assert_eq!((a.base, a.size), (RAM + 0x20_0000, 0x1000));
        assert_eq!(m.granules(), 1);
        // After the first run, nothing more is populated.
        m.first_run().unwrap();
        assert!(m.rim().is_some());
        assert_eq!(
            errno(populate(&mut m, RAM + 0x10_0000, 0x1000)),
            libc::EBUSY
        );
    }

    #[test]
    fn activation_rules() {
        let mut m = RealmModel::new(rmm());
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 40).unwrap();
        m.create_vcpu(0, PSCI).unwrap();
        assert_eq!(errno(m.first_run()), libc::EOPNOTSUPP);
        let mut m = RealmModel::new(rmm());
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 40).unwrap();
        m.create_vcpu(0, 0).unwrap();
        m.create_gic(GIC).unwrap();
        assert_eq!(errno(m.first_run()), libc::EINVAL);
        assert_eq!(m.rim(), None);
        // A realm whose activation failed is dead: nothing more is populated (-ENXIO),
        // and it has no token to give.
        let mut m = RealmModel::new(rmm());
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 40).unwrap();
        m.create_vcpu(0, 0).unwrap();
        m.create_gic(GIC).unwrap();
        m.add_private_memory(0, RAM, 0x1000).unwrap();
        assert_eq!(errno(m.first_run()), libc::EINVAL);
        assert_eq!(errno(populate(&mut m, RAM, 0x1000)), libc::ENXIO);
        assert_eq!(errno(m.attestation_token(&[0; 64])), libc::EPERM);
        // Activation without a populate creates the realm descriptor then, and runs once.
        let mut m = RealmModel::new(Rmm {
            ipa_bits: 40,
            ..rmm()
        });
        m.create_vm(sys::KVM_VM_TYPE_ARM_REALM | 40).unwrap();
        m.create_vcpu(0, PSCI).unwrap();
        m.create_gic(GIC).unwrap();
        m.first_run().unwrap();
        m.first_run().unwrap();
        assert!(m.rim().is_some());
    }

    /// The backend refuses a plan of another interface, and a kernel that makes no
    /// progress.
    #[test]
    fn backend_guards() {
        let mut plan = cvm_plan(1, 256 << 20, None, None);
        plan.interface = cvm_firmware::cca::Interface::Rmm1;
        assert_eq!(
            errno(launch(&plan, 1, GIC, &mut RealmModel::new(rmm()))),
            libc::EINVAL
        );
        struct Stuck(RealmModel);
        impl RealmHardware for Stuck {
            fn check_rmi(&mut self) -> Result<(), RealmError> {
                self.0.check_rmi()
            }
            fn create_vm(&mut self, t: u64) -> Result<(), RealmError> {
                self.0.create_vm(t)
            }
            fn create_vcpu(&mut self, id: u32, f: u32) -> Result<(), RealmError> {
                self.0.create_vcpu(id, f)
            }
            fn set_core_reg(&mut self, v: u32, r: u64, x: u64) -> Result<(), RealmError> {
                self.0.set_core_reg(v, r, x)
            }
            fn set_debug_counts(&mut self, v: u32, b: u8, w: u8) -> Result<(), RealmError> {
                self.0.set_debug_counts(v, b, w)
            }
            fn create_gic(&mut self, g: GicLayout) -> Result<(), RealmError> {
                self.0.create_gic(g)
            }
            fn add_private_memory(&mut self, s: u32, g: u64, l: u64) -> Result<(), RealmError> {
                self.0.add_private_memory(s, g, l)
            }
            fn write_source(&mut self, g: u64, d: &[u8]) -> Result<(), RealmError> {
                self.0.write_source(g, d)
            }
            fn source_address(&self, g: u64) -> Result<u64, RealmError> {
                self.0.source_address(g)
            }
            fn populate(&mut self, _: &mut KvmArmRmiPopulate) -> Result<(), RealmError> {
                Ok(())
            }
            fn first_run(&mut self) -> Result<(), RealmError> {
                self.0.first_run()
            }
        }
        plan.interface = cvm_firmware::cca::Interface::KvmRmiV14;
        let e = launch(&plan, 1, GIC, &mut Stuck(RealmModel::new(rmm()))).unwrap_err();
        assert_eq!((e.call, e.errno), ("KVM_ARM_RMI_POPULATE", libc::EIO));
    }
}
