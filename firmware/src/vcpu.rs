//! Initial vCPU register state, as a launch plan carries it.

use serde::Serialize;

/// A segment register in the VMCB/VMSA layout (`struct vmcb_seg`): the attribute field is
/// the packed form, bits 0-7 = type, S, DPL, P and bits 8-11 = AVL, L, D/B, G.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Packed attributes.
    pub attrib: u16,
    /// Limit.
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

impl Segment {
    /// A segment from its four fields.
    pub const fn new(selector: u16, attrib: u16, limit: u32, base: u64) -> Self {
        Segment {
            selector,
            attrib,
            limit,
            base,
        }
    }
}

/// The architectural state a vCPU starts in: everything a launch sets and a measurement
/// depends on. Registers not listed start at zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct X86Vcpu {
    /// ES.
    pub es: Segment,
    /// CS.
    pub cs: Segment,
    /// SS.
    pub ss: Segment,
    /// DS.
    pub ds: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// GDTR (base and limit only).
    pub gdtr: Segment,
    /// LDTR.
    pub ldtr: Segment,
    /// IDTR (base and limit only).
    pub idtr: Segment,
    /// TR.
    pub tr: Segment,
    /// EFER.
    pub efer: u64,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RDX (the CPUID signature after reset).
    pub rdx: u64,
    /// RSI (the boot_params pointer on a Linux 64-bit entry).
    pub rsi: u64,
    /// The PAT MSR.
    pub g_pat: u64,
    /// XCR0.
    pub xcr0: u64,
    /// MXCSR.
    pub mxcsr: u32,
    /// The x87 control word.
    pub x87_fcw: u16,
}

impl X86Vcpu {
    /// The architectural state after RESET or INIT (Intel SDM vol. 3 table 10-1, AMD APM
    /// vol. 2 table 14-1): real mode, executing at `eip` through CS base `eip & !0xffff`
    /// and IP `eip & 0xffff` (`0xfffffff0`: the reset vector).
    pub fn reset(eip: u32) -> Self {
        let eip = u64::from(eip);
        let data = Segment::new(0, 0x93, 0xffff, 0);
        X86Vcpu {
            es: data,
            cs: Segment::new(0xf000, 0x9b, 0xffff, eip & 0xffff_0000),
            ss: data,
            ds: data,
            fs: data,
            gs: data,
            gdtr: Segment::new(0, 0, 0xffff, 0),
            ldtr: Segment::new(0, 0x82, 0xffff, 0),
            idtr: Segment::new(0, 0, 0xffff, 0),
            tr: Segment::new(0, 0x8b, 0xffff, 0),
            cr0: 0x6000_0010,
            dr6: 0xffff_0ff0,
            dr7: 0x400,
            rflags: 0x2,
            rip: eip & 0xffff,
            g_pat: 0x0007_0406_0007_0406,
            xcr0: 0x1,
            mxcsr: 0x1f80,
            x87_fcw: 0x37f,
            ..X86Vcpu::default()
        }
    }
}

/// The registers an AArch64 realm's vCPU (a REC) starts with: what RMI_REC_CREATE takes
/// (RMM specification 1.0, `RmiRecParams`: flags, MPIDR, PC, GPRS\[0-7\]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Aarch64Vcpu {
    /// Whether the REC is runnable at creation (the first; the others wait for PSCI
    /// CPU_ON).
    pub runnable: bool,
    /// MPIDR.
    pub mpidr: u64,
    /// The entry point.
    pub pc: u64,
    /// X0 to X7 (X0: the DTB's address, for a Linux entry).
    pub gprs: [u64; 8],
}

/// The state a vCPU starts in, by architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
pub enum VcpuState {
    /// x86-64: registers in the VMCB/VMSA layout.
    X86(X86Vcpu),
    /// AArch64: a realm's REC parameters.
    Aarch64(Aarch64Vcpu),
}

impl VcpuState {
    /// The x86 registers, for an x86 vCPU.
    pub fn x86(&self) -> Option<&X86Vcpu> {
        match self {
            VcpuState::X86(s) => Some(s),
            VcpuState::Aarch64(_) => None,
        }
    }
}

impl From<X86Vcpu> for VcpuState {
    fn from(s: X86Vcpu) -> Self {
        VcpuState::X86(s)
    }
}
