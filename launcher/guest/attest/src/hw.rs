//! Every instruction that touches the machine (port I/O, MSRs, VMGEXIT, TDCALL, control
//! registers, guest-physical memory): the attesting guest's only `unsafe`. Memory is
//! identity-mapped by attest.s (the first GiB and the image), and every address given
//! here is one of the fixed pages of lib.rs's layout.

use core::arch::asm;

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O has no memory effects in this guest.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn outw(port: u16, v: u16) {
    // SAFETY: as `outb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Halts for good (interrupts are off).
pub fn halt() -> ! {
    loop {
        // SAFETY: cli/hlt stop this vCPU; nothing is touched.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

pub fn wrmsr(msr: u32, v: u64) {
    let [l0, l1, l2, l3, h0, h1, h2, h3] = v.to_le_bytes();
    // SAFETY: only the GHCB MSR is written (attest.s wrote EFER); it has no memory
    // effects of its own.
    unsafe {
        asm!("wrmsr", in("ecx") msr,
            in("eax") u32::from_le_bytes([l0, l1, l2, l3]),
            in("edx") u32::from_le_bytes([h0, h1, h2, h3]),
            options(nomem, nostack))
    }
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the GHCB MSR, which SEV-ES/SNP guests read without a #VC.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// VMGEXIT (`rep vmmcall`): hands the GHCB (or the GHCB MSR's request) to the
/// hypervisor, which may write the shared GHCB page and the shared response page.
pub fn vmgexit() {
    // SAFETY: the hypervisor writes only shared pages the guest reads back through
    // volatile reads; no Rust object lives there.
    unsafe { asm!("rep vmmcall", options(nostack)) }
}

pub use crate::td_regs::TdRegs;

/// TDCALL (66 0f 01 cc) with `r`, returning the registers after it.
pub fn tdcall(mut r: TdRegs) -> TdRegs {
    // SAFETY: the leaves used (TDG.VP.INFO, TDG.MR.REPORT, TDG.VP.VMCALL) read and write
    // only the registers named here and the fixed private/shared pages whose addresses
    // are passed in them, which no Rust object occupies.
    unsafe {
        asm!(".byte 0x66, 0x0f, 0x01, 0xcc",
            inout("rax") r.rax, inout("rcx") r.rcx, inout("rdx") r.rdx, inout("r8") r.r8,
            inout("r10") r.r10, inout("r11") r.r11, inout("r12") r.r12, inout("r13") r.r13,
            inout("r14") r.r14, inout("r15") r.r15, options(nostack))
    }
    r
}

pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// Reloads CR3 (flushes the TLB after a page table change).
pub fn write_cr3(v: u64) {
    // SAFETY: `v` is the current root (attest.s's PML4), whose tables map the image, the
    // stack and the fixed pages as before; only the C-bit or alias of the pages lib.rs
    // shares changes.
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack)) }
}

/// A page of guest memory at a fixed, identity-mapped address of the layout.
#[derive(Clone, Copy)]
pub struct Page(pub usize);

impl Page {
    fn at(self, off: usize, len: usize) -> Option<usize> {
        (off.checked_add(len)? <= 4096).then(|| self.0.wrapping_add(off))
    }

    pub fn read(self, off: usize) -> u8 {
        match self.at(off, 1) {
            // SAFETY: inside this mapped page (checked); volatile, as the host or the
            // TDX module may write it.
            Some(a) => unsafe { core::ptr::read_volatile(a as *const u8) },
            None => 0,
        }
    }

    pub fn write(self, off: usize, v: u8) {
        if let Some(a) = self.at(off, 1) {
            // SAFETY: inside this mapped page (checked); no Rust object lives there.
            unsafe { core::ptr::write_volatile(a as *mut u8, v) }
        }
    }

    pub fn read_into(self, off: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.read(off.saturating_add(i));
        }
    }

    pub fn write_from(self, off: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.write(off.saturating_add(i), b);
        }
    }

    pub fn read_u64(self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read_into(off, &mut b);
        u64::from_le_bytes(b)
    }

    pub fn write_u64(self, off: usize, v: u64) {
        self.write_from(off, &v.to_le_bytes());
    }

    pub fn zero(self) {
        for i in 0..4096 {
            self.write(i, 0);
        }
    }
}
