//! The attesting guest (issue 22): cvm's firmware-style guest image that needs no OS. The
//! boot code (../attest.s) enters long mode and calls [`cvm_attest_main`] with the TEE
//! it found. In every case it reads the launch nonce from `fw_cfg` file `opt/cvm/nonce`
//! (port interface) and computes the report data the evidence must carry: SHA-512 of
//! `cvm-evidence-nonce/1` and the nonce, as `cvm_attest::exchange` defines it.
//! - SEV-SNP (`snp.rs`): an SNP guest request, MSG_REPORT_REQ sealed with VMPCK0,
//!   through the GHCB; prints `CVM-EVIDENCE 1 snp <report>`.
//! - TDX (`tdx.rs`): `TDG.MR.REPORT`, then `GetQuote` through the VMM's quote service;
//!   prints `CVM-EVIDENCE 1 tdx <quote>`.
//! - A plain VM: prints the report data and that there is no TEE (exit status 2).
//!
//! Failures under a TEE stop the guest through the TEE's own termination request (SNP:
//! GHCB reason set 0xc, `snp::Fail` codes; TDX: `ReportFatalError` with `tdx::Fail`
//! codes). Everything lives on the stack or in the fixed pages of [`layout`]: the image
//! is read-only at run time (attest.ld checks that there are no writable statics).
#![no_std]
// The memory functions below must not be turned back into calls to themselves.
#![no_builtins]

mod fwcfg;
mod hw;
mod io;
mod layout;
mod nonce;
mod snp;
mod snp_msg;
mod td_quote;
mod td_regs;
mod tdx;

use io::Io;

/// Exit statuses of a plain VM through the debug-exit port.
mod status {
    /// The guest ran in a VM without a TEE: there is no evidence to give.
    pub const NO_TEE: u8 = 2;
    /// `fw_cfg` has no `opt/cvm/nonce` of 32 bytes.
    pub const NO_NONCE: u8 = 3;
    /// The Rust code panicked.
    pub const PANIC: u8 = 4;
}

/// Called by attest.s in long mode: `tee` is 0 (none), 1 (SNP) or 2 (TDX), `c_bit` the
/// SEV encryption mask of the page tables (0 when there is none).
#[unsafe(no_mangle)]
pub extern "C" fn cvm_attest_main(tee: u64, c_bit: u64) -> ! {
    match tee {
        1 => snp::attest(c_bit),
        2 => tdx::attest(),
        _ => plain(),
    }
}

/// A plain VM: the binding is computed and shown, and the guest exits with NO_TEE.
fn plain() -> ! {
    let mut io = io::Plain;
    let Some(report_data) = nonce::binding(&mut io) else {
        io.write(b"cvm attest guest: no 32-byte fw_cfg file opt/cvm/nonce\n");
        io.exit(status::NO_NONCE)
    };
    io.write(b"cvm attest guest: report data ");
    io.write_hex(&report_data);
    io.write(b"\ncvm attest guest: no TEE (a plain VM has no evidence to give)\n");
    io.exit(status::NO_TEE)
}

/// Nothing here panics by design (no indexing, no unwrap); should the compiled code
/// still reach a panic, a plain VM says so and exits with `status::PANIC`. Under a TEE
/// the port I/O below would fault (#VC, #VE) and stop the guest.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    let mut io = io::Plain;
    io.write(b"cvm attest guest: panic\n");
    io.exit(status::PANIC)
}

/// The memory functions the compiled code calls (a freestanding build has no libc).
/// Byte loops: this crate is `no_builtins`, so they are not recognised as calls to
/// themselves.
mod mem {
    /// # Safety
    /// `d` and `s` valid for `n` bytes, not overlapping.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
        let mut i = 0;
        while i < n {
            // SAFETY: the caller's contract.
            unsafe { *d.add(i) = *s.add(i) };
            i += 1;
        }
        d
    }

    /// # Safety
    /// `d` and `s` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
        if (d as usize) <= (s as usize) {
            // SAFETY: forward copying is right when the destination is below.
            return unsafe { memcpy(d, s, n) };
        }
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: the caller's contract.
            unsafe { *d.add(i) = *s.add(i) };
        }
        d
    }

    /// # Safety
    /// `d` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
        let [byte, ..] = c.to_le_bytes(); // memset stores the low byte of `c`
        let mut i = 0;
        while i < n {
            // SAFETY: the caller's contract.
            unsafe { *d.add(i) = byte };
            i += 1;
        }
        d
    }

    /// # Safety
    /// `a` and `b` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        let mut i = 0;
        while i < n {
            // SAFETY: the caller's contract.
            let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
            if x != y {
                return i32::from(x) - i32::from(y);
            }
            i += 1;
        }
        0
    }

    /// # Safety
    /// `a` and `b` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the caller's contract.
        unsafe { memcmp(a, b, n) }
    }
}
