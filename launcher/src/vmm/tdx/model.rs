//! A model of KVM's TDX interface (Linux 6.16) and of the TDX module: the hardware side
//! of a TDX launch on any host. It keeps MRTD as the module does (TDH.MEM.PAGE.ADD and
//! TDH.MR.EXTEND records, in call order, then TDH.MR.FINALIZE) and refuses what KVM or the
//! module refuse, with their errno and module status.
//!
//! Every rule cites its source (tags of ../shared/MODELS.md): [T] `arch/x86/kvm/vmx/tdx.c`,
//! [G] `virt/kvm/guest_memfd.c`, [TM] the TDX module 1.5 (`intel/tdx-module`
//! `tdh_mem_page_add.c`, `tdh_mr_extend.c`, `tdh_mr_finalize.c`, `tdh_mng_init.c`), [Q]
//! QEMU `target/i386/kvm/tdx.c`. What the model does not check is in [`UNMODELLED`].
//!
//! The host it stands for is [`TdxHost::default`]: Linux 6.16 (VM types 0 and 5; TD
//! attributes: SEPT_VE_DISABLE only, as 6.16's KVM supports), 4-level EPT (GPAW 48), and a
//! module whose configurable CPUID bits are the host's supported values of leaves 0x1,
//! 0x7, 0xD and 0x80000008.

use super::{MemRegion, TdxCaps, TdxHardware, TdxInitVm};
use crate::vmm::backend::{Hardware, PrivateMemory, VmType};
use crate::vmm::cc::{CommandError, TDX_OPERAND_INVALID};
use crate::vmm::modelmem::ModelMemory;
use crate::vmm::sev::model::Issued;
use crate::vmm::{IrqChip, LaunchError};
use cvm_firmware::vcpu::VcpuState;
use kvm_bindings::{KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2};
use sha2::{Digest, Sha384};
use std::collections::BTreeSet;

const PAGE: u64 = 4096;

/// What the model does not check: a dry run that passes says nothing about these.
pub const UNMODELLED: &[&str] = &[
    "the TDX module's fixed CPUID bits and its rules for values that are neither \
     configurable nor allowed: the model checks that every CPUID entry is a configurable \
     leaf and sets no bit outside the configurable mask",
    "TSC frequency, resource limits (HKIDs, memory), and TDH.MNG.CREATE's entropy retries",
    "TDG.MR.REPORT's REPORTMACSTRUCT MAC (the model keys it with its own HMAC key, which no \
     quoting enclave checks), its TEE_TCB_INFO (the model's TDX module has zero SVNs and \
     MRSEAM), and the RTMRs, which the model leaves zero because it runs no firmware",
];

/// TDX_NO_VCPUS: TDH.MR.FINALIZE with no vCPU created ([TM]).
pub const TDX_NO_VCPUS: u64 = 0xC000_0609_0000_0000;
/// TD_PARAMS operand id of the CPUID configuration, in TDX_OPERAND_INVALID ([TM]).
const OPERAND_CPUID_CONFIG: u64 = 69;

/// The host the model stands for.
#[derive(Debug, Clone)]
pub struct TdxHost {
    /// `KVM_CAP_VM_TYPES`.
    pub vm_types: u64,
    /// `KVM_TDX_CAPABILITIES`.
    pub caps: TdxCaps,
    /// `KVM_GET_SUPPORTED_CPUID`.
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// Whether the host has 5-level EPT (GPAW 52 allowed).
    pub five_level_ept: bool,
}

fn entry(function: u32, index: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        index,
        flags: if matches!(function, 7 | 0xd) {
            KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        } else {
            0
        },
        eax,
        ebx,
        ecx,
        edx,
        ..Default::default()
    }
}

impl Default for TdxHost {
    fn default() -> Self {
        // "GenuineIntel"; leaf 1 with x2APIC (ECX bit 21); leaf 7 with HLE and RTM and
        // WAITPKG (which KVM refuses in a TD's configuration); XSAVE for x87, SSE, AVX,
        // AVX-512 and PKRU; 52 physical and 48 linear address bits.
        let cpuid = vec![
            entry(0, 0, 0x1f, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
            entry(1, 0, 0x0008_06f8, 0x0000_0800, 0x7ffa_fbff, 0xbfeb_fbff),
            entry(7, 0, 2, 0xf3bf_bfff, 0x1b41_5f6e, 0xbc3c_4d30),
            entry(0xd, 0, 0x2e7, 0xa88, 0xa88, 0),
            entry(0xd, 1, 0xf, 0, 0x1800, 0),
            entry(0x8000_0000, 0, 0x8000_0008, 0, 0, 0),
            entry(0x8000_0001, 0, 0, 0, 0x121, 0x2c10_0800),
            entry(0x8000_0008, 0, 0x0000_3034, 0, 0, 0),
        ];
        // The configurable bits: leaves 1, 7, 0xD and 0x80000008 (with GuestPhysAddrSize).
        let mut configurable: Vec<kvm_cpuid_entry2> = cpuid
            .iter()
            .filter(|e| matches!(e.function, 1 | 7 | 0xd))
            .copied()
            .collect();
        configurable.push(entry(0x8000_0008, 0, 0x00ff_0000, 0, 0, 0));
        TdxHost {
            vm_types: 1 | (1 << super::VM_TYPE),
            caps: TdxCaps {
                supported_attrs: super::ATTR_SEPT_VE_DISABLE,
                supported_xfam: 0x2e7 | 0x1800,
                kernel_tdvmcallinfo_1_r11: 0,
                user_tdvmcallinfo_1_r11: 1 << 1,
                supported_caps: 0,
                cpuid: configurable,
            },
            cpuid,
            five_level_ept: false,
        }
    }
}

#[derive(Debug)]
struct Vcpu {
    id: u32,
    initialized: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TdState {
    /// Created; TDH.MNG.INIT not yet.
    Uninitialized,
    /// After KVM_TDX_INIT_VM (module op_state INITIALIZED).
    Initialized,
    /// After KVM_TDX_FINALIZE_VM (RUNNABLE).
    Runnable,
    /// A fatal error marked the VM bugged ([T] FINALIZE failure).
    Dead,
}

#[derive(Debug)]
struct Vm {
    vm_type: u64,
    split_irqchip: bool,
    state: TdState,
    /// The shared bit (GPAW - 1).
    shared_bit: u64,
    vcpus: Vec<Vcpu>,
    mem: ModelMemory,
    /// Frames added (TDH.MEM.PAGE.ADD).
    added: BTreeSet<u64>,
    mrtd: Sha384,
    finalized_mrtd: Option<[u8; 48]>,
    /// KVM_TDX_INIT_VM's attributes, XFAM and the owner's registers (MRCONFIGID,
    /// MROWNER, MROWNERCONFIG), which TDG.MR.REPORT reports.
    identity: Option<(u64, u64, [[u8; 48]; 3])>,
}

/// The model: KVM and the TDX module, for one launch.
#[derive(Debug)]
pub struct TdxModel {
    host: TdxHost,
    vm: Option<Vm>,
    issued: Vec<Issued>,
}

impl Default for TdxModel {
    fn default() -> Self {
        TdxModel::new(TdxHost::default())
    }
}

fn einval(command: &'static str, why: impl Into<String>) -> CommandError {
    CommandError::kernel(command, libc::EINVAL).because(why)
}

fn kvm_error(step: &'static str, errno: i32) -> LaunchError {
    LaunchError::Kvm {
        step,
        source: kvm_ioctls::Error::new(errno),
    }
}

/// The module's 128-byte MRTD record ([TM] tdh_mem_page_add.c, tdh_mr_extend.c): the
/// operation's name zero-padded to 16 bytes, the GPA at byte 16, zeros to 128.
fn record(h: &mut Sha384, name: &[u8], gpa: u64) {
    let mut block = [0u8; 128];
    block[..name.len()].copy_from_slice(name);
    block[16..24].copy_from_slice(&gpa.to_le_bytes());
    h.update(block);
}

impl TdxModel {
    /// A model of `host`.
    pub fn new(host: TdxHost) -> Self {
        TdxModel {
            host,
            vm: None,
            issued: Vec::new(),
        }
    }

    /// Every call the backend made, in order.
    pub fn issued(&self) -> &[Issued] {
        &self.issued
    }

    /// MRTD, once KVM_TDX_FINALIZE_VM succeeded.
    pub fn mrtd(&self) -> Option<[u8; 48]> {
        self.vm.as_ref()?.finalized_mrtd
    }

    /// TDG.MR.REPORT as the module answers a finalized TD (TDX module ABI, TDREPORT_STRUCT;
    /// ../shared/MODELS.md 5.2): REPORTMACSTRUCT (type 0x81, sub-type 0, version 1, the
    /// hashes of TEE_TCB_INFO and TDINFO, REPORTDATA, a MAC under the model's key),
    /// TEE_TCB_INFO (the model's TDX module: SVNs and MRSEAM zero), TDINFO (attributes,
    /// XFAM, MRTD, the owner's registers, RTMR 0-3). The RTMRs are zero: a TD's firmware
    /// extends them as it boots, and the model runs no firmware.
    pub fn tdg_mr_report(&self, report_data: &[u8; 64]) -> Option<Box<[u8; 1024]>> {
        use sha2::Digest as _;
        let vm = self.vm.as_ref()?;
        let mrtd = vm.finalized_mrtd?;
        let (attributes, xfam, owner) = vm.identity?;
        let mut r = Box::new([0u8; 1024]);
        let put = |r: &mut [u8; 1024], at: usize, b: &[u8]| {
            if let Some(d) = r.get_mut(at..at + b.len()) {
                d.copy_from_slice(b);
            }
        };
        // TEE_TCB_INFO: VALID bits for the fields set (tee_tcb_svn, mrseam, mrsignerseam,
        // attributes), all zero in the model.
        put(&mut r, 0x100, &[0xff, 0x01, 0, 0, 0, 0, 0, 0]);
        // TDINFO.
        put(&mut r, 0x200, &attributes.to_le_bytes());
        put(&mut r, 0x208, &xfam.to_le_bytes());
        put(&mut r, 0x210, &mrtd);
        for (i, reg) in owner.iter().enumerate() {
            put(&mut r, 0x240 + 0x30 * i, reg);
        }
        let tcb_hash = Sha384::digest(&r[0x100..0x100 + 239]);
        let info_hash = Sha384::digest(&r[0x200..0x400]);
        put(&mut r, 0, &[0x81, 0, 1]);
        put(&mut r, 0x20, &tcb_hash);
        put(&mut r, 0x50, &info_hash);
        put(&mut r, 0x80, report_data);
        // The MAC: the real module's key never leaves the CPU; the model's is its own.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"cvm TDX model report key");
        let mac = ring::hmac::sign(&key, &r[..0xe0]);
        put(&mut r, 0xe0, mac.as_ref());
        Some(r)
    }

    fn log<T, E: std::fmt::Display>(
        &mut self,
        ioctl: &'static str,
        range: Option<(u64, u64)>,
        r: Result<T, E>,
    ) -> Result<T, E> {
        self.issued.push(Issued {
            ioctl,
            gpa: range.map(|(g, _)| format!("{g:#x}")),
            len: range.map(|(_, l)| format!("{l:#x}")),
            page_type: None,
            error: r.as_ref().err().map(ToString::to_string),
        });
        r
    }

    fn vm_mut(&mut self, step: &'static str) -> Result<&mut Vm, LaunchError> {
        self.vm
            .as_mut()
            .ok_or_else(|| LaunchError::Step(step, "no VM has been created".into()))
    }

    fn td(&mut self, command: &'static str) -> Result<&mut Vm, CommandError> {
        match self.vm.as_mut() {
            Some(vm) if vm.vm_type == super::VM_TYPE => Ok(vm),
            // [T] tdx_vm_ioctl/tdx_vcpu_ioctl: not a TD.
            _ => Err(einval(command, "not a TD")),
        }
    }
}

impl Hardware for TdxModel {
    fn supported_cpuid(&mut self) -> Result<Vec<kvm_cpuid_entry2>, LaunchError> {
        Ok(self.host.cpuid.clone())
    }

    fn vm_types(&mut self) -> Result<u64, LaunchError> {
        let t = self.host.vm_types;
        self.log(
            "KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES)",
            None,
            Ok::<_, LaunchError>(t),
        )
    }

    fn create_vm(&mut self, vm_type: VmType) -> Result<(), LaunchError> {
        let r = if self.vm.is_some() {
            Err(LaunchError::Step("KVM_CREATE_VM", "a VM exists".into()))
        } else if vm_type.0 >= 64 || self.host.vm_types & (1 << vm_type.0) == 0 {
            Err(kvm_error("KVM_CREATE_VM", libc::EINVAL))
        } else {
            self.vm = Some(Vm {
                vm_type: vm_type.0,
                split_irqchip: false,
                state: TdState::Uninitialized,
                shared_bit: 1 << 47,
                vcpus: Vec::new(),
                mem: ModelMemory::default(),
                added: BTreeSet::new(),
                mrtd: Sha384::new(),
                finalized_mrtd: None,
                identity: None,
            });
            Ok(())
        };
        self.log("KVM_CREATE_VM", None, r)
    }

    fn set_system_addresses(&mut self, _: u64, _: u64) -> Result<(), LaunchError> {
        let r = self.vm_mut("KVM_SET_TSS_ADDR").map(drop);
        self.log("KVM_SET_TSS_ADDR", None, r)
    }

    fn create_irqchip(&mut self, irqchip: IrqChip, _: bool) -> Result<(), LaunchError> {
        let name = match irqchip {
            IrqChip::InKernel => "KVM_CREATE_IRQCHIP",
            IrqChip::Split => "KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)",
        };
        let r = self.vm_mut(name).and_then(|vm| {
            // [T] tdx_vm_init: a TD has no in-kernel I/O APIC or PIC.
            if irqchip == IrqChip::InKernel && vm.vm_type == super::VM_TYPE {
                return Err(kvm_error("KVM_CREATE_IRQCHIP", libc::EINVAL));
            }
            vm.split_irqchip = irqchip == IrqChip::Split;
            Ok(())
        });
        self.log(name, None, r)
    }

    fn add_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        for &range in ranges {
            let r = self
                .vm_mut("KVM_SET_USER_MEMORY_REGION")
                .and_then(|vm| vm.mem.add_slots(&[range], false));
            self.log("KVM_SET_USER_MEMORY_REGION", Some(range), r)?;
        }
        Ok(())
    }

    fn write_memory(&mut self, gpa: u64, data: &[u8]) -> Result<(), LaunchError> {
        self.vm_mut("write guest memory")?.mem.write(gpa, data)
    }

    fn zero_memory(&mut self, gpa: u64, len: u64) -> Result<(), LaunchError> {
        self.vm_mut("zero guest memory")?.mem.zero(gpa, len)
    }

    fn create_vcpu(&mut self, id: u32) -> Result<(), LaunchError> {
        const C: &str = "KVM_CREATE_VCPU";
        let r = self.vm_mut(C).and_then(|vm| {
            if vm.vm_type == super::VM_TYPE {
                // [T] tdx_vcpu_create: the TD must be initialized and not finalized (-EIO);
                // a TD vCPU needs the split irqchip's local APIC (-EINVAL).
                if vm.state != TdState::Initialized {
                    return Err(kvm_error(C, libc::EIO));
                }
                if !vm.split_irqchip {
                    return Err(kvm_error(C, libc::EINVAL));
                }
            }
            if vm.vcpus.iter().any(|v| v.id == id) {
                return Err(kvm_error(C, libc::EEXIST));
            }
            vm.vcpus.push(Vcpu {
                id,
                initialized: false,
            });
            Ok(())
        });
        self.log(C, None, r)
    }

    fn set_vcpu_state(&mut self, id: u32, _: &VcpuState) -> Result<(), LaunchError> {
        // [T] a TD vCPU's state is protected: KVM_SET_REGS/SREGS are refused.
        let r = match self.vm.as_ref() {
            Some(vm) if vm.vm_type == super::VM_TYPE => {
                Err(kvm_error("KVM_SET_REGS", libc::EINVAL))
            }
            Some(vm) if vm.vcpus.iter().any(|v| v.id == id) => Ok(()),
            _ => Err(kvm_error("KVM_SET_REGS", libc::ENOENT)),
        };
        self.log("KVM_SET_REGS", None, r)
    }

    fn tdx(&mut self) -> Option<&mut dyn TdxHardware> {
        Some(self)
    }
}

impl PrivateMemory for TdxModel {
    fn add_private_memory(&mut self, ranges: &[(u64, u64)]) -> Result<(), LaunchError> {
        for &range in ranges {
            let r = self
                .vm_mut("KVM_SET_USER_MEMORY_REGION2")
                .and_then(|vm| vm.mem.add_slots(&[range], true));
            self.log("KVM_SET_USER_MEMORY_REGION2", Some(range), r)?;
        }
        Ok(())
    }

    fn set_memory_attributes(
        &mut self,
        gpa: u64,
        len: u64,
        private: bool,
    ) -> Result<(), LaunchError> {
        const C: &str = "KVM_SET_MEMORY_ATTRIBUTES";
        let r = match self.vm.as_mut() {
            None => Err(CommandError::kernel(C, libc::ENOTTY)),
            Some(vm) => vm
                .mem
                .set_attributes(vm.vm_type == super::VM_TYPE, gpa, len, private),
        };
        let r = r.map_err(|e| crate::vmm::sev::attributes_error(gpa, len, private, e));
        self.log(C, Some((gpa, len)), r)
    }

    fn host_address(&self, gpa: u64) -> Result<u64, LaunchError> {
        self.vm
            .as_ref()
            .and_then(|vm| vm.mem.hva(gpa))
            .ok_or_else(|| {
                LaunchError::Step("find guest memory", format!("{gpa:#x} is not guest memory"))
            })
    }

    fn read_memory(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), LaunchError> {
        self.vm_mut("read guest memory")?.mem.read(gpa, buf)
    }

    fn enable_map_gpa_exit(&mut self) -> Result<(), LaunchError> {
        let r = self
            .vm_mut("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL)")
            .map(drop);
        self.log("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL)", None, r)
    }
}

/// [T] tdx_td_init / [TM] TDH.MNG.INIT: the CPUID configuration's rules; `Err` is the
/// ioctl's answer.
fn check_cpuid(host: &TdxHost, init: &TdxInitVm) -> Result<u64, CommandError> {
    const C: &str = "KVM_TDX_INIT_VM";
    if init.cpuid.len() > 256 {
        return Err(CommandError::kernel(C, libc::E2BIG).because("more than 256 CPUID entries"));
    }
    let gpaw = init
        .cpuid
        .iter()
        .find(|e| e.function == 0x8000_0008)
        .map(|e| (e.eax >> 16) & 0xff)
        .ok_or_else(|| einval(C, "no CPUID leaf 0x80000008 (GuestPhysAddrSize)"))?;
    if !(gpaw == 48 || (gpaw == 52 && host.five_level_ept)) {
        return Err(einval(
            C,
            format!("GuestPhysAddrSize {gpaw}: a TD has GPAW 48 or, with 5-level EPT, 52"),
        ));
    }
    for e in &init.cpuid {
        let at = format!("leaf {:#x} subleaf {:#x}", e.function, e.index);
        let mask = host
            .caps
            .cpuid
            .iter()
            .find(|c| {
                c.function == e.function
                    && (c.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0 || c.index == e.index)
            })
            .ok_or_else(|| einval(C, format!("{at} is not configurable")))?;
        if e.function == 7
            && e.index == 0
            && (e.ebx & ((1 << 4) | (1 << 11)) != 0 || e.ecx & (1 << 5) != 0)
        {
            return Err(einval(C, format!("{at} enumerates TSX or WAITPKG")));
        }
        for (reg, v, m) in [
            ("eax", e.eax, mask.eax),
            ("ebx", e.ebx, mask.ebx),
            ("ecx", e.ecx, mask.ecx),
            ("edx", e.edx, mask.edx),
        ] {
            if v & !m != 0 {
                // [TM] TDH.MNG.INIT: TDX_OPERAND_INVALID, operand CPUID_CONFIG; KVM -EINVAL.
                return Err(CommandError::module(
                    C,
                    libc::EINVAL,
                    TDX_OPERAND_INVALID | OPERAND_CPUID_CONFIG,
                )
                .because(format!(
                    "{at} {reg} {v:#x} sets bits {:#x} that are not configurable",
                    v & !m
                )));
            }
        }
    }
    Ok(u64::from(gpaw))
}

impl TdxHardware for TdxModel {
    fn tdx_capabilities(&mut self) -> Result<TdxCaps, CommandError> {
        const C: &str = "KVM_TDX_CAPABILITIES";
        let caps = self.host.caps.clone();
        let r = self.td(C).map(|_| caps);
        self.log(C, None, r)
    }

    fn tdx_init_vm(&mut self, init: &TdxInitVm) -> Result<(), CommandError> {
        const C: &str = "KVM_TDX_INIT_VM";
        let host = self.host.clone();
        let r = self.td(C).and_then(|vm| {
            // [T] tdx_td_init, in order.
            if vm.state != TdState::Uninitialized {
                return Err(einval(C, "the TD is already initialized"));
            }
            if !vm.vcpus.is_empty() {
                return Err(CommandError::kernel(C, libc::EBUSY).because("vCPUs exist"));
            }
            if init.attributes & !host.caps.supported_attrs != 0 {
                return Err(einval(
                    C,
                    format!(
                        "attributes {:#x} are not supported",
                        init.attributes & !host.caps.supported_attrs
                    ),
                ));
            }
            if init.xfam & !host.caps.supported_xfam != 0 {
                return Err(einval(
                    C,
                    format!(
                        "XFAM bits {:#x} are not supported",
                        init.xfam & !host.caps.supported_xfam
                    ),
                ));
            }
            let gpaw = check_cpuid(&host, init)?;
            vm.shared_bit = 1 << (gpaw - 1);
            // [TM] TDH.MNG.INIT: a fresh MRTD; the owner's registers are kept as given.
            vm.mrtd = Sha384::new();
            vm.identity = Some((
                init.attributes,
                init.xfam,
                [init.mrconfigid, init.mrowner, init.mrownerconfig],
            ));
            vm.state = TdState::Initialized;
            Ok(())
        });
        self.log(C, None, r)
    }

    fn tdx_init_vcpu(&mut self, id: u32, _rcx: u64) -> Result<(), CommandError> {
        const C: &str = "KVM_TDX_INIT_VCPU";
        let x2apic = self
            .host
            .cpuid
            .iter()
            .any(|e| e.function == 1 && e.ecx & (1 << 21) != 0);
        let r = self.td(C).and_then(|vm| {
            // [T] tdx_vcpu_init: after FINALIZE -EINVAL; twice -EINVAL; the vCPU's CPUID
            // must enumerate x2APIC (its APIC is put in x2APIC mode) or -EINVAL.
            if vm.state == TdState::Runnable {
                return Err(einval(C, "the TD is finalized"));
            }
            let v = vm
                .vcpus
                .iter_mut()
                .find(|v| v.id == id)
                .ok_or_else(|| einval(C, format!("vCPU {id} does not exist")))?;
            if v.initialized {
                return Err(einval(C, format!("vCPU {id} is already initialized")));
            }
            if !x2apic {
                return Err(einval(C, "the vCPU's CPUID lacks x2APIC"));
            }
            v.initialized = true;
            Ok(())
        });
        self.log(C, None, r)
    }

    fn tdx_init_mem_region(
        &mut self,
        id: u32,
        region: &mut MemRegion,
        measure: bool,
    ) -> Result<(), CommandError> {
        const C: &str = "KVM_TDX_INIT_MEM_REGION";
        let range = (region.gpa, region.nr_pages.saturating_mul(PAGE));
        let r = self
            .td(C)
            .and_then(|vm| init_mem_region(vm, id, region, measure));
        let r = self.log(C, Some(range), r);
        if let Some(last) = self.issued.last_mut() {
            last.page_type = Some(if measure { "measured" } else { "added" });
        }
        r
    }

    fn tdx_finalize_vm(&mut self) -> Result<(), CommandError> {
        const C: &str = "KVM_TDX_FINALIZE_VM";
        let r = self.td(C).and_then(|vm| {
            // [T] tdx_td_finalize: not initialized or already runnable -EINVAL.
            match vm.state {
                TdState::Initialized => {}
                TdState::Runnable => return Err(einval(C, "the TD is finalized")),
                _ => return Err(einval(C, "the TD is not initialized")),
            }
            // [TM] TDH.MR.FINALIZE: no vCPU → TDX_NO_VCPUS; KVM -EIO and the VM is dead.
            if !vm.vcpus.iter().any(|v| v.initialized) {
                vm.state = TdState::Dead;
                return Err(CommandError::module(C, libc::EIO, TDX_NO_VCPUS));
            }
            vm.finalized_mrtd = Some(vm.mrtd.clone().finalize().into());
            vm.state = TdState::Runnable;
            Ok(())
        });
        self.log(C, None, r)
    }
}

/// [T] tdx_vcpu_init_mem_region and [TM] TDH.MEM.PAGE.ADD / TDH.MR.EXTEND, page by page.
fn init_mem_region(
    vm: &mut Vm,
    id: u32,
    region: &mut MemRegion,
    measure: bool,
) -> Result<(), CommandError> {
    const C: &str = "KVM_TDX_INIT_MEM_REGION";
    if vm.state == TdState::Runnable {
        return Err(einval(C, "the TD is finalized"));
    }
    if !vm.vcpus.iter().any(|v| v.id == id && v.initialized) {
        return Err(einval(
            C,
            format!("vCPU {id} is not initialized (KVM_TDX_INIT_VCPU)"),
        ));
    }
    let len = region.nr_pages.checked_mul(PAGE);
    let end = len.and_then(|l| region.gpa.checked_add(l));
    if !region.source_addr.is_multiple_of(PAGE) || !region.gpa.is_multiple_of(PAGE) {
        return Err(einval(C, "the source or GPA is not page-aligned"));
    }
    let Some(end) = end.filter(|_| region.nr_pages > 0) else {
        return Err(einval(C, "no pages, or the range wraps"));
    };
    if region.gpa & vm.shared_bit != 0 || (end - 1) & vm.shared_bit != 0 {
        return Err(einval(C, "the GPA has the shared bit"));
    }
    while region.nr_pages > 0 {
        let gpa = region.gpa;
        let gfn = gpa / PAGE;
        // [G] the page must be in a guest_memfd slot and private.
        if !vm.mem.slot_of(gpa).is_some_and(|s| s.gmem) {
            return Err(einval(
                C,
                format!("{gpa:#x} is not in a guest_memfd memory slot"),
            ));
        }
        if !vm.mem.is_private(gfn) {
            return Err(einval(C, format!("{gpa:#x} is not private")));
        }
        // [T] 6.16: a page added twice -EEXIST (the gmem folio is already up to date).
        if vm.added.contains(&gfn) {
            return Err(CommandError::kernel(C, libc::EEXIST)
                .because(format!("{gpa:#x} was already added")));
        }
        let Some(source) = vm.mem.source_page(region.source_addr) else {
            return Err(CommandError::kernel(C, libc::EFAULT).because("the source is not mapped"));
        };
        record(&mut vm.mrtd, b"MEM.PAGE.ADD", gpa);
        vm.added.insert(gfn);
        if measure {
            for (i, chunk) in (0u64..).zip(source.chunks(256)) {
                record(&mut vm.mrtd, b"MR.EXTEND", gpa + i * 256);
                vm.mrtd.update(chunk);
            }
        }
        region.gpa += PAGE;
        region.source_addr += PAGE;
        region.nr_pages -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! One test per rejection the model implements (../shared/MODELS.md section 6.2),
    //! each asserting the errno and module status KVM and the TDX module give.
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use crate::vmm::tdx::backend::cpuid_config;
    use libc::{E2BIG, EEXIST, EINVAL, EIO};

    const MIB: u64 = 1 << 20;

    fn code<T: std::fmt::Debug>(r: Result<T, CommandError>) -> (i32, u64) {
        let e = r.expect_err("the model must refuse");
        (e.errno, e.tdx_status)
    }

    fn init(m: &mut TdxModel) -> TdxInitVm {
        let caps = m.tdx_capabilities().unwrap();
        TdxInitVm {
            attributes: crate::vmm::tdx::ATTR_SEPT_VE_DISABLE,
            xfam: 0x2e7,
            mrconfigid: [0; 48],
            mrowner: [0; 48],
            mrownerconfig: [0; 48],
            cpuid: cpuid_config(&m.host.cpuid, &caps),
        }
    }

    /// A TD, initialized, with 1 MiB of private memory at 0 and vCPU 0 ready.
    fn td() -> TdxModel {
        let mut m = TdxModel::default();
        m.create_vm(VmType(5)).unwrap();
        m.create_irqchip(IrqChip::Split, false).unwrap();
        let i = init(&mut m);
        m.tdx_init_vm(&i).unwrap();
        m.add_private_memory(&[(0, MIB)]).unwrap();
        m.set_memory_attributes(0, MIB, true).unwrap();
        m.create_vcpu(0).unwrap();
        m.tdx_init_vcpu(0, 0x80_0000).unwrap();
        m
    }

    fn region(m: &TdxModel, gpa: u64, pages: u64) -> MemRegion {
        MemRegion {
            source_addr: m.host_address(gpa).unwrap_or(0),
            gpa,
            nr_pages: pages,
        }
    }

    #[test]
    fn init_vm_rules() {
        let mut m = TdxModel::default();
        m.create_vm(VmType(5)).unwrap();
        m.create_irqchip(IrqChip::Split, false).unwrap();
        let good = init(&mut m);
        let with = |f: &dyn Fn(&mut TdxInitVm)| {
            let mut i = good.clone();
            f(&mut i);
            i
        };
        assert_eq!(
            code(m.tdx_init_vm(&with(&|i| i.attributes |= 1))),
            (EINVAL, 0),
            "DEBUG"
        );
        assert_eq!(
            code(m.tdx_init_vm(&with(&|i| i.xfam |= 1 << 17))),
            (EINVAL, 0),
            "AMX"
        );
        assert_eq!(
            code(m.tdx_init_vm(&with(&|i| i.cpuid.retain(|e| e.function != 0x8000_0008)))),
            (EINVAL, 0),
            "no GPAW"
        );
        let gpaw52 = with(&|i| {
            for e in i.cpuid.iter_mut().filter(|e| e.function == 0x8000_0008) {
                e.eax = (e.eax & !0xff_0000) | (52 << 16);
            }
        });
        assert_eq!(
            code(m.tdx_init_vm(&gpaw52)),
            (EINVAL, 0),
            "GPAW 52 without 5-level EPT"
        );
        let tsx = with(&|i| {
            for e in i.cpuid.iter_mut().filter(|e| e.function == 7) {
                e.ebx |= 1 << 4;
            }
        });
        assert_eq!(code(m.tdx_init_vm(&tsx)), (EINVAL, 0), "HLE");
        let extra = with(&|i| {
            i.cpuid.push(kvm_cpuid_entry2 {
                function: 0x4000_0000,
                ..Default::default()
            })
        });
        assert_eq!(
            code(m.tdx_init_vm(&extra)),
            (EINVAL, 0),
            "a leaf that is not configurable"
        );
        let fixed = with(&|i| {
            for e in i.cpuid.iter_mut().filter(|e| e.function == 0x8000_0008) {
                e.eax |= 0x3034; // PhysAddrSize, which the module fixes
            }
        });
        assert_eq!(
            code(m.tdx_init_vm(&fixed)),
            (EINVAL, TDX_OPERAND_INVALID | OPERAND_CPUID_CONFIG),
            "bits the module does not let the VMM configure"
        );
        let many = with(&|i| i.cpuid = vec![i.cpuid[0]; 257]);
        assert_eq!(code(m.tdx_init_vm(&many)), (E2BIG, 0));
        m.tdx_init_vm(&good).unwrap();
        assert_eq!(code(m.tdx_init_vm(&good)), (EINVAL, 0), "twice");

        let mut m = TdxModel::default();
        m.create_vm(VmType(5)).unwrap();
        m.create_irqchip(IrqChip::Split, false).unwrap();
        let e = m.create_vcpu(0).unwrap_err();
        assert!(
            matches!(&e, LaunchError::Kvm { source, .. } if source.errno() == EIO),
            "{e}"
        );
        // A VM created by an SEV model's test is not a TD.
        let mut plain = TdxModel::default();
        plain.create_vm(VmType(0)).unwrap();
        assert_eq!(code(plain.tdx_capabilities()), (EINVAL, 0));
    }

    #[test]
    fn vcpu_rules() {
        let mut m = TdxModel::default();
        m.create_vm(VmType(5)).unwrap();
        assert!(
            m.create_irqchip(IrqChip::InKernel, true).is_err(),
            "no in-kernel irqchip"
        );
        let i = init(&mut m);
        m.tdx_init_vm(&i).unwrap();
        let e = m.create_vcpu(0).unwrap_err();
        assert!(
            matches!(&e, LaunchError::Kvm { source, .. } if source.errno() == EINVAL),
            "no split irqchip: {e}"
        );
        let mut m = td();
        assert_eq!(code(m.tdx_init_vcpu(0, 0)), (EINVAL, 0), "INIT_VCPU twice");
        assert!(
            m.set_vcpu_state(0, &VcpuState::X86(Default::default()))
                .is_err(),
            "protected"
        );
        let mut host = TdxHost::default();
        host.cpuid[1].ecx &= !(1 << 21);
        let mut m = TdxModel::new(host);
        m.create_vm(VmType(5)).unwrap();
        m.create_irqchip(IrqChip::Split, false).unwrap();
        let i = init(&mut m);
        m.tdx_init_vm(&i).unwrap();
        assert_eq!(code(m.tdx_init_vm(&i)), (EINVAL, 0));
        m.create_vcpu(0).unwrap();
        assert_eq!(code(m.tdx_init_vcpu(0, 0)), (EINVAL, 0), "no x2APIC");
    }

    #[test]
    fn mem_region_rules() {
        let mut m = td();
        m.create_vcpu(1).unwrap();
        let mut r = region(&m, 0x1000, 1);
        assert_eq!(
            code(m.tdx_init_mem_region(1, &mut r, true)),
            (EINVAL, 0),
            "vCPU 1 not initialized"
        );
        let mut r = region(&m, 0x1000, 0);
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, true)),
            (EINVAL, 0),
            "no pages"
        );
        let mut r = MemRegion {
            source_addr: m.host_address(0x1000).unwrap() + 8,
            gpa: 0x1000,
            nr_pages: 1,
        };
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, true)),
            (EINVAL, 0),
            "unaligned source"
        );
        let mut r = MemRegion {
            source_addr: m.host_address(0).unwrap(),
            gpa: 1 << 47,
            nr_pages: 1,
        };
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, true)),
            (EINVAL, 0),
            "shared bit"
        );
        m.set_memory_attributes(0x5000, PAGE, false).unwrap();
        let mut r = region(&m, 0x5000, 1);
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, true)),
            (EINVAL, 0),
            "not private"
        );
        m.add_memory(&[(2 * MIB, MIB)]).unwrap();
        let mut r = region(&m, 2 * MIB, 1);
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, false)),
            (EINVAL, 0),
            "not guest_memfd"
        );
        let mut r = region(&m, 0x2000, 2);
        m.tdx_init_mem_region(0, &mut r, true).unwrap();
        assert_eq!(
            (r.nr_pages, r.gpa),
            (0, 0x4000),
            "the struct is updated in place"
        );
        let mut r = region(&m, 0x3000, 1);
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, false)),
            (EEXIST, 0),
            "added twice"
        );
        m.tdx_finalize_vm().unwrap();
        let mut r = region(&m, 0x8000, 1);
        assert_eq!(
            code(m.tdx_init_mem_region(0, &mut r, true)),
            (EINVAL, 0),
            "after FINALIZE"
        );
        assert_eq!(code(m.tdx_finalize_vm()), (EINVAL, 0), "FINALIZE twice");
        assert_eq!(
            code(m.tdx_init_vcpu(1, 0)),
            (EINVAL, 0),
            "INIT_VCPU after FINALIZE"
        );
        let e = m.create_vcpu(2).unwrap_err();
        assert!(
            matches!(&e, LaunchError::Kvm { source, .. } if source.errno() == EIO),
            "{e}"
        );
    }

    #[test]
    fn finalize_without_vcpus_kills_the_td() {
        let mut m = TdxModel::default();
        m.create_vm(VmType(5)).unwrap();
        m.create_irqchip(IrqChip::Split, false).unwrap();
        let i = init(&mut m);
        m.tdx_init_vm(&i).unwrap();
        assert_eq!(code(m.tdx_finalize_vm()), (EIO, TDX_NO_VCPUS));
        assert_eq!(code(m.tdx_finalize_vm()), (EINVAL, 0), "the VM is dead");
        assert!(m.create_vcpu(0).is_err(), "nothing more on a dead TD");
    }

    #[test]
    fn mrtd_records_are_the_modules() {
        // One measured page of 0xa5 at 0x2000 and one added page at 0x3000: computed
        // here from the module's record layout, not by cvm's measure.
        let mut m = td();
        m.write_memory(0x2000, &[0xa5; 4096]).unwrap();
        let mut r = region(&m, 0x2000, 1);
        m.tdx_init_mem_region(0, &mut r, true).unwrap();
        let mut r = region(&m, 0x3000, 1);
        m.tdx_init_mem_region(0, &mut r, false).unwrap();
        m.tdx_finalize_vm().unwrap();
        let mut h = Sha384::new();
        let block = |name: &[u8], gpa: u64| {
            let mut b = [0u8; 128];
            b[..name.len()].copy_from_slice(name);
            b[16..24].copy_from_slice(&gpa.to_le_bytes());
            b
        };
        h.update(block(b"MEM.PAGE.ADD", 0x2000));
        for i in 0..16 {
            h.update(block(b"MR.EXTEND", 0x2000 + i * 256));
            h.update([0xa5u8; 256]);
        }
        h.update(block(b"MEM.PAGE.ADD", 0x3000));
        let want: [u8; 48] = h.finalize().into();
        assert_eq!(m.mrtd(), Some(want));
    }

    #[test]
    fn td_reports_carry_the_tds_identity() {
        let mut m = td();
        assert!(m.tdg_mr_report(&[0; 64]).is_none(), "before FINALIZE");
        m.tdx_finalize_vm().unwrap();
        let r = m.tdg_mr_report(&[0x77; 64]).unwrap();
        // REPORTMACSTRUCT: type 0x81, REPORTDATA at 0x80, the hashes of TEE_TCB_INFO and
        // TDINFO (TDX module ABI TDREPORT_STRUCT).
        assert_eq!(&r[..3], &[0x81, 0, 1]);
        assert_eq!(&r[0x80..0xc0], &[0x77; 64]);
        assert_eq!(r[0x50..0x80], Sha384::digest(&r[0x200..0x400])[..]);
        assert_eq!(r[0x20..0x50], Sha384::digest(&r[0x100..0x1ef])[..]);
        // TDINFO: the attributes and XFAM INIT_VM took, the MRTD FINALIZE closed, RTMRs zero.
        let attributes = u64::from_le_bytes(r[0x200..0x208].try_into().unwrap());
        assert_eq!(attributes, crate::vmm::tdx::ATTR_SEPT_VE_DISABLE);
        assert_eq!(
            u64::from_le_bytes(r[0x208..0x210].try_into().unwrap()),
            0x2e7
        );
        assert_eq!(&r[0x210..0x240], &m.mrtd().unwrap());
        assert!(r[0x2d0..0x390].iter().all(|b| *b == 0));
    }
}
