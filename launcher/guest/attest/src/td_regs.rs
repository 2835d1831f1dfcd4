//! The registers of a TDCALL, apart from the instruction (`hw::tdcall`), so that a
//! simulated TDCALL (launcher/tests/attest_guest_sim.rs) takes the same type.

/// The registers of a TDCALL (TDX module ABI: RAX leaf in, status out; RCX, RDX, R8-R15
/// as the leaf defines them).
#[derive(Default, Clone, Copy)]
pub struct TdRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}
