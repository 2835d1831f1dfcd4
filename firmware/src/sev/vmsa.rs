//! The SEV-ES save area (VMSA) and the reset state each VMM gives a vCPU.
//!
//! Layout: AMD64 APM vol. 2, table B-4 ("VMSA layout, state save area for SEV-ES"),
//! as Linux's `struct sev_es_save_area`. Only the fields a launch sets are written;
//! everything else is zero.

use crate::bytes::put_at;
use crate::vcpu::{Segment, X86Vcpu};
use serde::Serialize;

/// The size of a VMSA page.
pub const VMSA_SIZE: usize = 4096;
/// The GPA at which SNP measures VMSA pages (SEV-SNP ABI, SNP_LAUNCH_UPDATE).
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;
/// The BSP's reset address.
pub const BSP_EIP: u32 = 0xffff_fff0;

/// Offsets of the fields cvm sets (APM vol. 2, table B-4).
mod off {
    pub const SEGMENTS: usize = 0x000; // es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr
    pub const EFER: usize = 0x0d0;
    pub const CR4: usize = 0x148;
    pub const CR3: usize = 0x150;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const RSP: usize = 0x1d8;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const RSI: usize = 0x330;
    pub const SEV_FEATURES: usize = 0x3b0;
    pub const XCR0: usize = 0x3e8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

/// Encodes `s` as a VMSA page with `sev_features`.
pub fn page(s: &X86Vcpu, sev_features: u64) -> Box<[u8; VMSA_SIZE]> {
    let mut p = Box::new([0u8; VMSA_SIZE]);
    // Every offset is a constant: put_at checks each write at compile time.
    let seg = |s: &Segment| {
        let mut r = [0u8; 16];
        put_at::<0, _, _>(&mut r, &s.selector.to_le_bytes());
        put_at::<2, _, _>(&mut r, &s.attrib.to_le_bytes());
        put_at::<4, _, _>(&mut r, &s.limit.to_le_bytes());
        put_at::<8, _, _>(&mut r, &s.base.to_le_bytes());
        r
    };
    let b = &mut *p;
    put_at::<{ off::SEGMENTS }, _, _>(b, &seg(&s.es));
    put_at::<{ off::SEGMENTS + 0x10 }, _, _>(b, &seg(&s.cs));
    put_at::<{ off::SEGMENTS + 0x20 }, _, _>(b, &seg(&s.ss));
    put_at::<{ off::SEGMENTS + 0x30 }, _, _>(b, &seg(&s.ds));
    put_at::<{ off::SEGMENTS + 0x40 }, _, _>(b, &seg(&s.fs));
    put_at::<{ off::SEGMENTS + 0x50 }, _, _>(b, &seg(&s.gs));
    put_at::<{ off::SEGMENTS + 0x60 }, _, _>(b, &seg(&s.gdtr));
    put_at::<{ off::SEGMENTS + 0x70 }, _, _>(b, &seg(&s.ldtr));
    put_at::<{ off::SEGMENTS + 0x80 }, _, _>(b, &seg(&s.idtr));
    put_at::<{ off::SEGMENTS + 0x90 }, _, _>(b, &seg(&s.tr));
    put_at::<{ off::EFER }, _, _>(b, &s.efer.to_le_bytes());
    put_at::<{ off::CR4 }, _, _>(b, &s.cr4.to_le_bytes());
    put_at::<{ off::CR3 }, _, _>(b, &s.cr3.to_le_bytes());
    put_at::<{ off::CR0 }, _, _>(b, &s.cr0.to_le_bytes());
    put_at::<{ off::DR7 }, _, _>(b, &s.dr7.to_le_bytes());
    put_at::<{ off::DR6 }, _, _>(b, &s.dr6.to_le_bytes());
    put_at::<{ off::RFLAGS }, _, _>(b, &s.rflags.to_le_bytes());
    put_at::<{ off::RIP }, _, _>(b, &s.rip.to_le_bytes());
    put_at::<{ off::RSP }, _, _>(b, &s.rsp.to_le_bytes());
    put_at::<{ off::G_PAT }, _, _>(b, &s.g_pat.to_le_bytes());
    put_at::<{ off::RDX }, _, _>(b, &s.rdx.to_le_bytes());
    put_at::<{ off::RSI }, _, _>(b, &s.rsi.to_le_bytes());
    put_at::<{ off::SEV_FEATURES }, _, _>(b, &sev_features.to_le_bytes());
    put_at::<{ off::XCR0 }, _, _>(b, &s.xcr0.to_le_bytes());
    put_at::<{ off::MXCSR }, _, _>(b, &s.mxcsr.to_le_bytes());
    put_at::<{ off::X87_FCW }, _, _>(b, &s.x87_fcw.to_le_bytes());
    p
}

/// Whose conventions for the initial vCPU state a launch follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmmType {
    /// QEMU/KVM (and cvm's own launcher, which reproduces it register for register).
    #[default]
    Qemu,
    /// Amazon EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

/// The architectural reset state the VMM gives a vCPU that starts at `eip`
/// (`BSP_EIP` for the BSP, the firmware's AP reset address for the others).
pub fn reset_state(vmm: VmmType, eip: u32, vcpu_sig: u32) -> X86Vcpu {
    let mut s = X86Vcpu {
        efer: 0x1000, // KVM sets EFER.SVME
        cr0: 0x10,    // as KVM syncs it into the VMSA (CD and NW clear)
        cr4: 0x40,    // KVM sets CR4.MCE
        rdx: u64::from(vcpu_sig),
        ..X86Vcpu::reset(eip)
    };
    match vmm {
        VmmType::Qemu => {}
        VmmType::Ec2 => {
            // EC2's VMM: CS not yet accessed on the BSP, SS and TR types differ, the
            // FPU state is left at zero, and RDX carries 0x600 (sev-snp-measure 0.0.13
            // follows Amazon's 2026 correction; the sev crate 8.0.0 still uses 0).
            if eip == BSP_EIP {
                s.cs.attrib = 0x9a;
            }
            s.ss.attrib = 0x92;
            s.tr.attrib = 0x83;
            s.rdx = 0x600;
            s.mxcsr = 0;
            s.x87_fcw = 0;
        }
        VmmType::Gce => {
            s.rdx = 0x600;
            s.g_pat = 0x0007_0106;
            s.mxcsr = 0;
            s.x87_fcw = 0;
        }
    }
    s
}

/// The state every vCPU starts in when an SVSM is launched below the firmware: 32-bit
/// protected mode with flat segments, at the SVSM's entry point (sev-snp-measure's
/// `VMSA_SVSM`). `x87_fcw` is the x87 control word the VMM loads: 0x37f is the FPU
/// reset value that KVM syncs into the VMSA (with KVM_SEV_INIT2); sev-snp-measure 0.0.13
/// leaves it at 0 (its `fcw=` keyword never reaches the `x87_fcw` field).
pub fn svsm_state(eip: u32, vcpu_sig: u32, x87_fcw: u16) -> X86Vcpu {
    let flat = |selector, attrib| Segment::new(selector, attrib, 0xffff_ffff, 0);
    X86Vcpu {
        es: flat(16, 0xc93),
        cs: flat(8, 0xc9b),
        ss: flat(16, 0xc93),
        ds: flat(16, 0xc93),
        fs: flat(16, 0xc93),
        gs: Segment::new(0, 0x93, 0xffff, 0),
        gdtr: Segment::new(0, 0, 0xffff, 0),
        ldtr: Segment::new(0, 0x82, 0xffff, 0),
        idtr: Segment::new(0, 0, 0xffff, 0),
        tr: Segment::new(0, 0x8b, 0xffff, 0),
        efer: 0x1000,
        cr0: 0x11,
        cr4: 0x40,
        dr6: 0xffff_0ff0,
        dr7: 0x400,
        rflags: 0x2,
        rip: u64::from(eip),
        rdx: u64::from(vcpu_sig),
        g_pat: 0x0007_0406_0007_0406,
        xcr0: 0x1,
        mxcsr: 0x1f80,
        x87_fcw,
        ..X86Vcpu::default()
    }
}

/// The x87 control word after reset (FNINIT), which KVM syncs into VMSAs.
pub const X87_FCW_RESET: u16 = 0x37f;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_bsp_fields_land_at_spec_offsets() {
        let p = page(&reset_state(VmmType::Qemu, BSP_EIP, 0x00a0_0f11), 0x1);
        let u64_at = |o: usize| u64::from_le_bytes(p[o..o + 8].try_into().unwrap());
        // CS: selector f000, attrib 9b, limit ffff, base ffff0000.
        assert_eq!(
            &p[0x10..0x20],
            &[
                0x00, 0xf0, 0x9b, 0, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0
            ]
        );
        assert_eq!(u64_at(0x178), 0xfff0);
        assert_eq!(u64_at(0x310), 0x00a0_0f11);
        assert_eq!(u64_at(0x3b0), 1);
        assert_eq!(u64_at(0x3e8), 1);
        assert_eq!(&p[0x408..0x40c], &0x1f80u32.to_le_bytes());
        assert_eq!(&p[0x410..0x412], &0x37fu16.to_le_bytes());
        assert!(p[0x420..].iter().all(|&b| b == 0));
    }
}
