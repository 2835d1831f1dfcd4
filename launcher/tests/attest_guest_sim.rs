//! The attesting guest's SNP and TDX paths run on this machine: `launcher/guest/attest/
//! src/snp.rs`, `tdx.rs` and the modules they use, compiled for the host with the guest's
//! `hw` module (its every machine access) replaced by a simulated vCPU. Behind it are
//! cvm's own parts where a real launch has them: the launch of the attesting guest's plan
//! through the real backend against the model of the AMD-SP or the TDX module
//! (`cvm launch --dry-run`'s), which then answers the guest request or TDG.MR.REPORT; the
//! backend's handlers of what KVM forwards (page-state changes and MapGPA as
//! KVM_HC_MAP_GPA_RANGE, GetQuote to a QGS the test starts); cvm's fw_cfg device. Between
//! them this file models what KVM and the TDX module do with a VMGEXIT or a TDCALL (Linux
//! `arch/x86/kvm/svm/sev.c` and `arch/x86/kvm/vmx/tdx.c`, the GHCB and GHCI specs,
//! ../shared/MODELS.md sections 3, 4.6 and 5), strictly: a call they would refuse, memory
//! the guest touches in a state the hardware would fault on (unvalidated or unaccepted
//! private pages, an unmapped alias), or a port cvm's VMM has no device on fails the test.
//!
//! What it proves: the guest's protocol steps (SNP: SEV_INFO, page-state changes, GHCB
//! registration, GHCB port I/O, the guest request and its sequence number, the response
//! check; TDX: TDG.VP.INFO, Instruction.IO, TDG.MR.REPORT, MapGPA with its RETRY, the
//! alias window, GetQuote and its buffer) against those rules as modelled here and
//! against cvm's models, that the line it prints verifies (SNP) or carries the quote of
//! the TDREPORT bound to the nonce (TDX), and each failure path's termination code. What
//! it does not: attest.s (the boot code, which this machine runs only as a plain VM) and
//! the hardware itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]
#![cfg(target_arch = "x86_64")]

mod common;

#[path = "../guest/attest/src/fwcfg.rs"]
mod fwcfg;
#[allow(
    dead_code,
    reason = "the guest's plain-VM port I/O is compiled, not used"
)]
#[path = "../guest/attest/src/io.rs"]
mod io;
#[allow(dead_code, reason = "the TDX pages of the layout are not used here")]
#[path = "../guest/attest/src/layout.rs"]
mod layout;
#[path = "../guest/attest/src/nonce.rs"]
mod nonce;
#[path = "../guest/attest/src/snp.rs"]
mod snp;
#[path = "../guest/attest/src/snp_msg.rs"]
mod snp_msg;
#[path = "../guest/attest/src/td_quote.rs"]
mod td_quote;
#[path = "../guest/attest/src/td_regs.rs"]
mod td_regs;
#[path = "../guest/attest/src/tdx.rs"]
mod tdx;

use cvm_launcher::vmm::backend::{Backend, ExitHandled, Runtime};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How the simulated vCPU stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stopped {
    /// The debug-exit port, with the guest's status.
    DebugExit(u8),
    /// The GHCB MSR protocol's termination request (KVM_EXIT_SYSTEM_EVENT SEV_TERM):
    /// reason set and code.
    Terminated(u64, u64),
    /// TDG.VP.VMCALL<ReportFatalError> (KVM_EXIT_SYSTEM_EVENT TDX_FATAL): the code.
    Fatal(u64),
}

/// What the simulated host does differently from a faithful one (the guest's failure
/// paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    Faithful,
    /// SEV_INFO offers GHCB protocol version 1 only.
    OldProtocol,
    /// The VMM refuses every page-state change.
    RefusesPsc,
    /// The firmware's message counter is one request ahead (another request was made
    /// under VMPCK0 before the guest's).
    CounterAhead,
    /// The host flips a byte of the response page.
    TampersResponse,
    /// TDX: TDG.VP.INFO reports a GPAW no TD has.
    OddGpaw,
    /// TDX: the VMM refuses the MapGPA conversion.
    RefusesMapGpa,
    /// TDX: KVM converts half of the MapGPA range and asks the guest to retry the rest
    /// (tdx.c `__tdx_map_gpa` with a pending interrupt).
    MapGpaRetries,
    /// TDX: the VMM has no quote service.
    NoQgs,
}

/// The TD's GPAW: cvm's TDX backend configures 48 (launcher/src/vmm/tdx/backend.rs).
const GPAW: u64 = 48;
const SHARED_BIT: u64 = 1 << (GPAW - 1);
/// The C-bit the simulated CPU reports (bit 51, as on Milan and Genoa).
const C_BIT_POS: u64 = 51;
const C_BIT: u64 = 1 << C_BIT_POS;
const PAGE: u64 = 4096;
/// `KVM_HC_MAP_GPA_RANGE` (include/uapi/linux/kvm_para.h) and its ENCRYPTED attribute.
const KVM_HC_MAP_GPA_RANGE: u64 = 12;
const MAP_GPA_RANGE_ENCRYPTED: u64 = 1 << 4;
/// The guest RAM of the simulated launch.
const MEMORY: u64 = 64 << 20;

/// One 4 KiB page of guest RAM: the private (guest_memfd) and shared copies, the
/// memory attribute, and whether the guest's RMP entry is validated.
struct PageState {
    private: Box<[u8; 4096]>,
    shared: Box<[u8; 4096]>,
    attr_private: bool,
    /// SNP: the RMP entry is validated; TDX: the page is accepted.
    validated: bool,
}

impl Default for PageState {
    fn default() -> Self {
        PageState {
            private: Box::new([0; 4096]),
            shared: Box::new([0; 4096]),
            // cvm's SNP backend makes all RAM private before the launch (QEMU does too).
            attr_private: true,
            validated: false,
        }
    }
}

/// Guest RAM as KVM and the VMM see it: what the backend's handlers change through
/// [`Runtime`] and the guest reads and writes through its mappings.
#[derive(Default)]
struct Memory {
    pages: Mutex<HashMap<u64, PageState>>,
}

impl Memory {
    fn with<T>(&self, gpa: u64, f: impl FnOnce(&mut PageState) -> T) -> T {
        let mut pages = self.pages.lock().unwrap();
        f(pages.entry(gpa & !(PAGE - 1)).or_default())
    }

    fn each_page(&self, gpa: u64, len: u64, mut f: impl FnMut(&mut PageState)) {
        let mut p = gpa & !(PAGE - 1);
        while p < gpa + len {
            self.with(p, &mut f);
            p += PAGE;
        }
    }
}

impl Runtime for Memory {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|end| end <= MEMORY)
    }
    fn set_private(&self, gpa: u64, len: u64, private: bool) -> Result<(), i32> {
        self.each_page(gpa, len, |p| p.attr_private = private);
        Ok(())
    }
    fn discard(&self, gpa: u64, len: u64, private_side: bool) -> Result<(), i32> {
        self.each_page(gpa, len, |p| {
            if private_side {
                // The guest_memfd page is freed: its RMP entry with it.
                p.private.fill(0);
                p.validated = false;
            } else {
                p.shared.fill(0);
            }
        });
        Ok(())
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), i32> {
        for (i, b) in data.iter().enumerate() {
            let a = gpa + i as u64;
            self.with(a, |p| p.shared[(a % PAGE) as usize] = *b);
        }
        Ok(())
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), i32> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = gpa + i as u64;
            *b = self.with(a, |p| p.shared[(a % PAGE) as usize]);
        }
        Ok(())
    }
    fn interrupt(&self, _: u32, _: u8) -> Result<(), i32> {
        Ok(())
    }
}

/// The simulated machine: the vCPU's state (SNP: GHCB MSR and page tables; TDX: the
/// alias window), KVM's and the firmware's, and the VMM's side.
struct Sim {
    host: Host,
    memory: Arc<Memory>,
    backend: Box<dyn Backend>,
    fw_cfg: cvm_launcher::vmm::fwcfg::FwCfgDevice,
    serial: Vec<u8>,
    /// GHCB calls or TDG.VP.VMCALLs made.
    calls: usize,
    firmware: Firmware,
    msr: u64,
    /// KVM's `ghcb_registered_gpa`.
    registered: Option<u64>,
    /// SNP: the guest's 4 KiB mapping of the 2 MiB at `layout::SHARED_2M`, C-bit per
    /// page, read from its page table when it reloads CR3.
    split: Option<Vec<bool>>,
    /// TDX: the GPA (shared bit included) the alias window at `layout::TD_ALIAS_VA`
    /// maps, read from the page tables when the guest reloads CR3.
    alias: Option<u64>,
    /// TDX: a MapGPA was already split (Host::MapGpaRetries).
    map_gpa_split: bool,
}

/// The firmware model behind the simulated vCPU.
enum Firmware {
    Snp(cvm_launcher::vmm::sev::model::SevModel),
    Tdx(cvm_launcher::vmm::tdx::model::TdxModel),
}

thread_local! {
    static SIM: RefCell<Option<Sim>> = const { RefCell::new(None) };
}

fn sim<T>(f: impl FnOnce(&mut Sim) -> T) -> T {
    SIM.with(|s| f(s.borrow_mut().as_mut().expect("a simulation is set up")))
}

fn stop(why: Stopped) -> ! {
    std::panic::panic_any(why)
}

impl Sim {
    /// Whether the guest maps `gpa` with the C-bit (private). attest.s maps the first
    /// GiB encrypted with 2 MiB pages; snp.rs splits the 2 MiB of its shared pages.
    fn private_mapping(&self, gpa: u64) -> bool {
        let base = layout::SHARED_2M as u64;
        match &self.split {
            Some(c) if (base..base + (2 << 20)).contains(&gpa) => c[((gpa - base) / PAGE) as usize],
            _ => true,
        }
    }

    /// The guest touches `gpa`: the copy its mapping reaches, after what KVM and the VMM
    /// do about a mismatch. A shared access to a private page exits to the VMM
    /// (KVM_EXIT_MEMORY_FAULT), which converts it (the backend's handler, as QEMU's
    /// kvm_convert_memory); a private access needs a validated RMP entry (else #VC, which
    /// this guest has no handler for).
    fn guest_access(&mut self, addr: u64) -> (u64, bool) {
        let (gpa, private) = match self.firmware {
            Firmware::Snp(_) => (addr, self.private_mapping(addr)),
            Firmware::Tdx(_) => self.translate(addr),
        };
        let attr_private = self.memory.with(gpa, |p| p.attr_private);
        if private != attr_private {
            let mut exit = kvm_ioctls::VcpuExit::MemoryFault {
                flags: if private { 1 << 3 } else { 0 },
                gpa: gpa & !(PAGE - 1),
                size: PAGE,
            };
            let handled = self.backend.handle_exit(0, &mut exit, &*self.memory);
            assert!(
                matches!(handled, ExitHandled::Resume),
                "the VMM did not convert {gpa:#x}: {handled:?}"
            );
        }
        if private {
            assert!(
                self.memory.with(gpa, |p| p.validated),
                "#VC/#VE: the guest accessed {gpa:#x} privately without validating or \
                 accepting it"
            );
        }
        (gpa, private)
    }

    /// TDX: the guest's virtual address to the GPA and whether it is private (the shared
    /// bit clear). attest.s identity-maps the first GiB; tdx.rs maps the alias window.
    fn translate(&self, va: u64) -> (u64, bool) {
        let alias = layout::TD_ALIAS_VA as u64;
        if (alias..alias + (2 << 20)).contains(&va) {
            let base = self
                .alias
                .unwrap_or_else(|| panic!("#PF: {va:#x} is not mapped (no alias window yet)"));
            let gpa = base + (va - alias);
            return (gpa & !SHARED_BIT, gpa & SHARED_BIT == 0);
        }
        assert!(va < 1 << 30, "#PF: {va:#x} is not mapped");
        (va, true)
    }

    fn read(&mut self, addr: u64) -> u8 {
        let (gpa, private) = self.guest_access(addr);
        let off = (gpa % PAGE) as usize;
        self.memory.with(gpa, |p| {
            if private {
                p.private[off]
            } else {
                p.shared[off]
            }
        })
    }

    fn write(&mut self, addr: u64, v: u8) {
        let (gpa, private) = self.guest_access(addr);
        let off = (gpa % PAGE) as usize;
        self.memory.with(gpa, |p| {
            if private {
                p.private[off] = v;
            } else {
                p.shared[off] = v;
            }
        });
    }

    fn write_cr3(&mut self) {
        if matches!(self.firmware, Firmware::Tdx(_)) {
            // PDPT entry 1 -> the alias page directory, whose entry 0 is a 2 MiB page.
            let pdpte = self.read_u64_private(layout::PDPT as u64 + 8);
            if pdpte & !0xfff == layout::TD_ALIAS_PD as u64 && pdpte & 1 != 0 {
                let pde = self.read_u64_private(layout::TD_ALIAS_PD as u64);
                assert_eq!(pde & 0x81, 0x81, "the alias is a present 2 MiB page");
                self.alias = Some(pde & 0x000f_ffff_ffe0_0000);
            }
            return;
        }
        let pd = layout::PD_LOW as u64 + (layout::SHARED_2M as u64 >> 21) * 8;
        let pde = self.read_u64_private(pd);
        if pde & !C_BIT & !0xfff == layout::SNP_PT as u64 {
            let pt = layout::SNP_PT as u64;
            self.split = Some(
                (0..512)
                    .map(|i| self.read_u64_private(pt + i * 8) & C_BIT != 0)
                    .collect(),
            );
        }
    }

    fn read_u64_private(&self, gpa: u64) -> u64 {
        let off = (gpa % PAGE) as usize;
        self.memory.with(gpa, |p| {
            u64::from_le_bytes(p.private[off..off + 8].try_into().unwrap())
        })
    }

    fn snp_model(&mut self) -> &mut cvm_launcher::vmm::sev::model::SevModel {
        match &mut self.firmware {
            Firmware::Snp(m) => m,
            Firmware::Tdx(_) => panic!("a VMGEXIT in a TD"),
        }
    }

    /// TDCALL: the TDX module's leaves the guest uses, and TDG.VP.VMCALL as KVM's tdx.c
    /// handles it (`tdx_handle_vmcall`).
    fn tdcall(&mut self, r: hw::TdRegs) -> hw::TdRegs {
        /// TDX_OPERAND_INVALID (TDX module ABI), with the operand's id in the low bits.
        const OPERAND_INVALID: u64 = 0xc000_0100_0000_0000;
        /// TDVMCALL statuses (GHCI).
        const VMCALL_SUCCESS: u64 = 0;
        const VMCALL_RETRY: u64 = 1;
        const VMCALL_INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
        const VMCALL_ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;
        const VMCALL_SUBFUNC_UNSUPPORTED: u64 = 0x8000_0000_0000_0003;
        let mut out = r;
        match r.rax {
            // TDG.VP.INFO: RCX[5:0] GPAW.
            1 => {
                out.rax = 0;
                out.rcx = if self.host == Host::OddGpaw { 40 } else { GPAW };
            }
            // TDG.MR.REPORT: RCX a 1024-aligned private GPA, RDX a 64-aligned one, R8
            // sub-type 0; the TDREPORT of this TD with the 64 bytes at RDX.
            4 => {
                let private = |a: u64| a & SHARED_BIT == 0;
                if !r.rcx.is_multiple_of(1024) || !private(r.rcx) {
                    out.rax = OPERAND_INVALID | 1;
                } else if !r.rdx.is_multiple_of(64) || !private(r.rdx) {
                    out.rax = OPERAND_INVALID | 2;
                } else if r.r8 != 0 {
                    out.rax = OPERAND_INVALID | 8;
                } else {
                    let mut data = [0u8; 64];
                    for (i, b) in data.iter_mut().enumerate() {
                        *b = self.read(r.rdx + i as u64);
                    }
                    let Firmware::Tdx(model) = &self.firmware else {
                        panic!("a TDCALL in an SNP guest")
                    };
                    let report = model.tdg_mr_report(&data).expect("the TD is finalized");
                    for (i, b) in report.iter().enumerate() {
                        self.write(r.rcx + i as u64, *b);
                    }
                    out.rax = 0;
                }
            }
            // TDG.VP.VMCALL: RCX exposes R10-R15 to the VMM (bits 0, 1 and 4, RAX, RCX and
            // RSP, must be clear: TDX_OPERAND_INVALID); R10 0 is a GHCI call, R11 the
            // sub-function.
            0 => {
                assert_eq!(r.rcx & 0b1_0011, 0, "TDX_OPERAND_INVALID: RCX {:#x}", r.rcx);
                assert_eq!(r.rcx & 0xfc00, 0xfc00, "R10-R15 exposed");
                assert_eq!(r.r10, 0, "a GHCI TDG.VP.VMCALL");
                self.calls += 1;
                out.rax = 0;
                (out.r10, out.r11) = match r.r11 {
                    // Instruction.IO: R12 size 1, 2 or 4 (else INVALID_OPERAND), R13 1 =
                    // write, R14 port, R15 the value; R11 the value read.
                    30 => match r.r12 {
                        1 | 2 | 4 => {
                            let read = self.port(r.r14 as u16, r.r12 as usize, r.r13 == 0, r.r15);
                            (VMCALL_SUCCESS, read.unwrap_or(0))
                        }
                        _ => (VMCALL_INVALID_OPERAND, r.r11),
                    },
                    // MapGPA (tdx_map_gpa): R12 the GPA (its shared bit the direction), R13
                    // the size: no wrap, one side of the shared bit, 4 KiB aligned; then
                    // KVM_HC_MAP_GPA_RANGE without the shared bit; a VMM failure gives
                    // INVALID_OPERAND with R11 where it stopped.
                    0x1_0001 => {
                        let (gpa, size) = (r.r12, r.r13);
                        if gpa.checked_add(size).is_none()
                            || size == 0
                            || (gpa & SHARED_BIT) != ((gpa + size - 1) & SHARED_BIT)
                        {
                            (VMCALL_INVALID_OPERAND, r.r11)
                        } else if gpa % PAGE != 0 || size % PAGE != 0 {
                            (VMCALL_ALIGN_ERROR, r.r11)
                        } else {
                            let attrs = if gpa & SHARED_BIT == 0 {
                                MAP_GPA_RANGE_ENCRYPTED
                            } else {
                                0
                            };
                            let half = (size / 2) & !(PAGE - 1);
                            let now = if self.host == Host::MapGpaRetries
                                && half > 0
                                && self.first_map_gpa()
                            {
                                half
                            } else {
                                size
                            };
                            if self.hypercall(gpa & !SHARED_BIT, now / PAGE, attrs) != 0 {
                                (VMCALL_INVALID_OPERAND, gpa)
                            } else if now < size {
                                (VMCALL_RETRY, gpa + now)
                            } else {
                                (VMCALL_SUCCESS, r.r11)
                            }
                        }
                    }
                    // GetQuote (tdx_get_quote): the buffer's GPA must be shared; the VMM
                    // gets it without the shared bit (KVM_EXIT_TDX).
                    0x1_0002 => {
                        if r.r12 & SHARED_BIT == 0 {
                            (VMCALL_INVALID_OPERAND, r.r11)
                        } else {
                            let mut call = cvm_launcher::vmm::backend::TdxVmcall {
                                nr: 0x1_0002,
                                words: [
                                    VMCALL_SUBFUNC_UNSUPPORTED,
                                    r.r12 & !SHARED_BIT,
                                    r.r13,
                                    0,
                                    0,
                                    0,
                                ],
                            };
                            assert!(self.backend.tdx_vmcall(0, &mut call, &*self.memory));
                            (call.words[0], r.r11)
                        }
                    }
                    // ReportFatalError: KVM_EXIT_SYSTEM_EVENT TDX_FATAL, the code in R12.
                    0x1_0003 => stop(Stopped::Fatal(r.r12)),
                    _ => (VMCALL_SUBFUNC_UNSUPPORTED, r.r11),
                };
            }
            leaf => panic!("TDCALL leaf {leaf} is not one the guest should use"),
        }
        out
    }

    /// Whether this is the first MapGPA (the one Host::MapGpaRetries splits).
    fn first_map_gpa(&mut self) -> bool {
        let first = !self.map_gpa_split;
        self.map_gpa_split = true;
        first
    }

    /// VMGEXIT: the GHCB MSR protocol when the MSR's low 12 bits are a request, else a
    /// call through the GHCB at the MSR's address (sev.c `sev_handle_vmgexit`).
    fn vmgexit(&mut self) {
        let msr = self.msr;
        if msr & 0xfff != 0 {
            self.msr = self.msr_protocol(msr);
        } else {
            self.ghcb_call(msr);
        }
    }

    /// sev.c `sev_handle_vmgexit_msr_protocol`.
    fn msr_protocol(&mut self, msr: u64) -> u64 {
        match msr & 0xfff {
            // GHCB_MSR_SEV_INFO_REQ: KVM's GHCB_VERSION_MAX (2) and MIN (1), the C-bit.
            0x002 => {
                let max = if self.host == Host::OldProtocol { 1 } else { 2 };
                (max << 48) | (1 << 32) | (C_BIT_POS << 24) | 0x001
            }
            // GHCB_MSR_REG_GPA_REQ (SNP): the GFN is registered and echoed.
            0x012 => {
                let gfn = msr >> 12;
                self.registered = Some(gfn << 12);
                0x013 | (gfn << 12)
            }
            // GHCB_MSR_PSC_REQ: GFN 51:12, operation 55:52 (1 private, 2 shared);
            // snp_begin_psc_msr forwards one 4 KiB page as KVM_HC_MAP_GPA_RANGE, and the
            // response carries the VMM's error in 63:32.
            0x014 => {
                let gfn = (msr >> 12) & ((1 << 40) - 1);
                let op = (msr >> 52) & 0xf;
                assert!(op == 1 || op == 2, "PSC operation {op}");
                let attrs = if op == 1 { MAP_GPA_RANGE_ENCRYPTED } else { 0 };
                let ret = self.hypercall(gfn << 12, 1, attrs);
                0x015 | (u64::from(ret != 0) << 32)
            }
            // GHCB_MSR_TERM_REQ: reason set 15:12, code 23:16.
            0x100 => stop(Stopped::Terminated((msr >> 12) & 0xf, (msr >> 16) & 0xff)),
            other => panic!("KVM: unsupported GHCB MSR protocol request {other:#x}"),
        }
    }

    /// A KVM_HC_MAP_GPA_RANGE exit, handled by the backend as in a real launch.
    fn hypercall(&mut self, gpa: u64, npages: u64, attrs: u64) -> u64 {
        if matches!(self.host, Host::RefusesPsc | Host::RefusesMapGpa) {
            return 1;
        }
        let mut ret = 0u64;
        let mut exit = kvm_ioctls::VcpuExit::Hypercall(kvm_ioctls::HypercallExit {
            nr: KVM_HC_MAP_GPA_RANGE,
            args: [gpa, npages, attrs, 0, 0, 0],
            ret: &mut ret,
            longmode: 1,
        });
        let handled = self.backend.handle_exit(0, &mut exit, &*self.memory);
        assert!(matches!(handled, ExitHandled::Resume), "{handled:?}");
        ret
    }

    fn ghcb_u64(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.memory.read(self.msr + off as u64, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    fn set_ghcb_u64(&self, off: usize, v: u64) {
        self.memory
            .write(self.msr + off as u64, &v.to_le_bytes())
            .unwrap();
    }

    fn ghcb_valid(&self, off: usize) -> bool {
        let bit = off / 8;
        let mut b = [0u8];
        self.memory
            .read(self.msr + 0x3f0 + (bit / 8) as u64, &mut b)
            .unwrap();
        b[0] & (1 << (bit % 8)) != 0
    }

    /// A call through the GHCB at `gpa`: sev.c `sev_handle_vmgexit` ->
    /// `sev_es_validate_vmgexit` -> the exit's handler; the results go back into the
    /// GHCB (`sw_exit_info_1` 0 on success, 2 with a reason in `sw_exit_info_2` for
    /// malformed input).
    fn ghcb_call(&mut self, gpa: u64) {
        self.calls += 1;
        // An SNP guest's GHCB must be the registered one, or KVM_RUN fails (-EINVAL).
        assert_eq!(
            self.registered,
            Some(gpa),
            "KVM_RUN -EINVAL: GHCB {gpa:#x} is not the registered GHCB"
        );
        // KVM maps the GHCB through the VMM's (shared) mapping.
        assert!(
            !self.memory.with(gpa, |p| p.attr_private),
            "the GHCB {gpa:#x} is private: KVM cannot map it"
        );
        const RAX: usize = 0x1f8;
        const RBX: usize = 0x318;
        const EXIT_CODE: usize = 0x390;
        const INFO_1: usize = 0x398;
        const INFO_2: usize = 0x3a0;
        let mut usage = [0u8; 4];
        self.memory.read(gpa + 0xffc, &mut usage).unwrap();
        let mut version = [0u8; 2];
        self.memory.read(gpa + 0xffa, &mut version).unwrap();
        let (code, info1, info2) = (
            self.ghcb_u64(EXIT_CODE),
            self.ghcb_u64(INFO_1),
            self.ghcb_u64(INFO_2),
        );
        // GHCB_ERR_MISSING_INPUT (1) unless exit code and both infos are marked valid;
        // usage must be 0 (GHCB_ERR_INVALID_USAGE, 4); the version the one negotiated.
        let mut malformed = None;
        if u32::from_le_bytes(usage) != 0 {
            malformed = Some(4);
        } else if !(self.ghcb_valid(EXIT_CODE)
            && self.ghcb_valid(INFO_1)
            && self.ghcb_valid(INFO_2))
        {
            malformed = Some(1);
        }
        assert_eq!(u16::from_le_bytes(version), 2, "GHCB protocol_version");
        let (rax_valid, rbx_valid) = (self.ghcb_valid(RAX), self.ghcb_valid(RBX));
        let (rax, rbx) = (self.ghcb_u64(RAX), self.ghcb_u64(RBX));
        // sev_es_sync_from_ghcb clears the valid bitmap once it has read the GHCB.
        self.memory.write(gpa + 0x3f0, &[0; 16]).unwrap();
        let (mut out1, mut out2) = (0u64, 0u64);
        match (malformed, code) {
            (Some(reason), _) => (out1, out2) = (2, reason),
            // SVM_EXIT_IOIO: no string I/O here; an OUT needs RAX valid (else
            // GHCB_ERR_MISSING_INPUT).
            (None, 0x7b) => {
                assert_eq!(info1 & 0b100, 0, "string port I/O");
                let input = info1 & 1 != 0;
                if !input && !rax_valid {
                    (out1, out2) = (2, 1);
                } else {
                    let port = (info1 >> 16) as u16;
                    let size = match (info1 >> 4) & 0b111 {
                        0b001 => 1,
                        0b010 => 2,
                        0b100 => 4,
                        s => panic!("port I/O size bits {s:#b}"),
                    };
                    if let Some(v) = self.port(port, size, input, rax) {
                        // sev_es_sync_to_ghcb: RAX back into the GHCB, marked valid.
                        self.set_ghcb_u64(RAX, v);
                        let mut b = [0u8];
                        self.memory.read(gpa + 0x3f0 + 7, &mut b).unwrap();
                        self.memory
                            .write(gpa + 0x3f0 + 7, &[b[0] | 1 << 7])
                            .unwrap();
                    }
                }
            }
            // SVM_VMGEXIT_GUEST_REQUEST: both pages aligned and different (else
            // malformed); snp_handle_guest_req reads the request page and writes the
            // response page through the shared mapping, exit_info_2 = the firmware's
            // error (VMM error 0).
            (None, 0x8000_0011) => {
                if info1 % PAGE != 0 || info2 % PAGE != 0 || info1 == info2 {
                    (out1, out2) = (2, 2);
                } else {
                    out2 = self.guest_request(info1, info2);
                }
            }
            // SVM_VMGEXIT_EXT_GUEST_REQUEST (snp_handle_ext_guest_req): RAX the
            // certificate buffer (4 KiB aligned, else GHCB_ERR_INVALID_INPUT), RBX its
            // pages; KVM reads them only if marked valid, else as 0 (a buffer at GPA 0:
            // a guest bug this model refuses). For MSG_REPORT_REQ, with certificates
            // enabled (KVM_SEV_SNP_ENABLE_REQ_CERTS: the backend serves a table) the VMM
            // fills the buffer (KVM_EXIT_SNP_REQ_CERTS, snp_complete_req_certs: ENOSPC
            // -> RBX = pages needed and VMM error 1, EAGAIN -> 2, other -> 0xffffffff,
            // the firmware not called); without, KVM writes an empty table (24 zero
            // bytes). Then the request goes to the firmware as a plain one.
            (None, 0x8000_0012) => {
                assert!(rax_valid && rbx_valid, "RAX and RBX marked valid");
                let (buf, npages) = (rax, rbx);
                if info1 % PAGE != 0 || info2 % PAGE != 0 || info1 == info2 || buf % PAGE != 0 {
                    (out1, out2) = (2, 2);
                } else {
                    let mut msg_type = [0u8];
                    self.memory.read(info1 + 0x34, &mut msg_type).unwrap();
                    let reply = if msg_type[0] == 5 {
                        match self.backend.snp_certs(0, buf, npages, &*self.memory) {
                            Some(r) => Some(r),
                            None => {
                                self.memory.write(buf, &[0; 24]).unwrap();
                                None
                            }
                        }
                    } else {
                        None
                    };
                    match reply.map(|r| (r.ret, r.npages)) {
                        None | Some((0, _)) => out2 = self.guest_request(info1, info2),
                        Some((28, needed)) => {
                            self.set_ghcb_u64(RBX, needed);
                            out2 = 1 << 32;
                        }
                        Some((11, _)) => out2 = 2 << 32,
                        Some(_) => out2 = 0xffff_ffff << 32,
                    }
                }
            }
            (None, other) => {
                panic!("KVM: GHCB exit code {other:#x} is not one the guest should use")
            }
        }
        self.set_ghcb_u64(INFO_1, out1);
        self.set_ghcb_u64(INFO_2, out2);
    }

    fn guest_request(&mut self, req: u64, resp: u64) -> u64 {
        for gpa in [req, resp] {
            assert!(
                !self.memory.with(gpa, |p| p.attr_private),
                "guest request page {gpa:#x} is private: KVM would read and write the shared \
                 copy, not the guest's"
            );
        }
        let mut request = vec![0u8; PAGE as usize];
        self.memory.read(req, &mut request).unwrap();
        if self.host == Host::CounterAhead {
            // Another request under VMPCK0 advanced the firmware's counter: the guest's
            // sequence number is then stale.
            let mut key = [0u8; 32];
            key.copy_from_slice(&self.snp_model().secrets_page().unwrap()[0x20..0x40]);
            let other = snp_msg::report_request(&key, 1, &[0; 64]);
            self.snp_model().guest_request(&other).unwrap();
        }
        match self.snp_model().guest_request(&request) {
            Ok(mut answer) => {
                if self.host == Host::TampersResponse {
                    answer[0x70] ^= 1;
                }
                answer.resize(PAGE as usize, 0);
                self.memory.write(resp, &answer).unwrap();
                0
            }
            Err(e) => u64::from(e.fw_error),
        }
    }

    /// A port access: cvm's devices at the ports the attesting guest uses (COM1's
    /// transmitter, fw_cfg's selector and data, the debug exit); the value read, if any.
    fn port(&mut self, port: u16, size: usize, input: bool, rax: u64) -> Option<u64> {
        let bytes = rax.to_le_bytes();
        match (port, input) {
            (0x3f8, false) => self.serial.push(bytes[0]),
            (0x501, false) => stop(Stopped::DebugExit(bytes[0])),
            (0x510, false) => {
                assert!(self.fw_cfg.pio_out(port, &bytes[..size]).is_none());
            }
            (0x511, true) => {
                let mut b = [0u8; 8];
                self.fw_cfg.pio_in(port, &mut b[..size]);
                return Some(u64::from_le_bytes(b));
            }
            _ => panic!(
                "port {port:#x} ({} bytes, in: {input}): no device of cvm's",
                size
            ),
        }
        None
    }
}

/// The guest's `hw` module, simulated: every access goes to [`SIM`].
mod hw {
    use super::{Sim, sim};

    pub fn outb(_: u16, _: u8) {
        unreachable!("a TEE guest's port I/O goes through the GHCB or TDG.VP.VMCALL")
    }
    pub fn outw(_: u16, _: u16) {
        unreachable!("a TEE guest's port I/O goes through the GHCB or TDG.VP.VMCALL")
    }
    pub fn inb(_: u16) -> u8 {
        unreachable!("a TEE guest's port I/O goes through the GHCB or TDG.VP.VMCALL")
    }
    pub fn halt() -> ! {
        panic!("the guest halted without stopping the VM")
    }
    pub fn wrmsr(msr: u32, v: u64) {
        assert_eq!(msr, 0xc001_0130, "only the GHCB MSR");
        sim(|s| s.msr = v);
    }
    pub fn rdmsr(msr: u32) -> u64 {
        assert_eq!(msr, 0xc001_0130, "only the GHCB MSR");
        sim(|s| s.msr)
    }
    pub fn vmgexit() {
        sim(Sim::vmgexit);
    }

    pub use super::td_regs::TdRegs;

    pub fn tdcall(r: TdRegs) -> TdRegs {
        sim(|s| s.tdcall(r))
    }
    pub fn read_cr3() -> u64 {
        super::layout::PDPT as u64 - 0x1000
    }
    pub fn write_cr3(_: u64) {
        sim(Sim::write_cr3);
    }

    #[derive(Clone, Copy)]
    pub struct Page(pub usize);

    impl Page {
        fn gpa(self, off: usize) -> Option<u64> {
            (off < 4096).then(|| (self.0 + off) as u64)
        }
        pub fn read(self, off: usize) -> u8 {
            self.gpa(off).map_or(0, |a| sim(|s| s.read(a)))
        }
        pub fn write(self, off: usize, v: u8) {
            if let Some(a) = self.gpa(off) {
                sim(|s| s.write(a, v));
            }
        }
        pub fn read_into(self, off: usize, out: &mut [u8]) {
            for (i, b) in out.iter_mut().enumerate() {
                *b = self.read(off + i);
            }
        }
        pub fn write_from(self, off: usize, data: &[u8]) {
            for (i, &b) in data.iter().enumerate() {
                self.write(off + i, b);
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
}

/// What a run of the guest left: how it stopped, its console, the nonce served, and (SNP)
/// the launch digest or (TDX) the TDREPORT the model gives for the nonce's binding.
struct Run {
    stopped: Stopped,
    serial: String,
    nonce: [u8; 32],
    /// SNP: the model's launch digest; TDX: the model's TDREPORT for the binding.
    expected: Vec<u8>,
    calls: usize,
}

/// A stop of the simulated vCPU unwinds as a panic carrying [`Stopped`]; only other
/// panics are reported.
fn quiet_stops() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Stopped>().is_none() {
                report(info);
            }
        }));
    });
}

const NONCE: [u8; 32] = {
    let mut n = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        n[i] = (i as u8).wrapping_mul(29) ^ 0x3c;
        i += 1;
    }
    n
};

/// The attesting guest's plan for `inputs`, with the nonce served.
fn served<'a>(plan: &cvm_firmware::plan::LaunchPlan<'a>) -> cvm_firmware::plan::LaunchPlan<'a> {
    let mut plan = plan.clone();
    plan.fw_cfg.files.push(cvm_firmware::plan::FwCfgFile {
        name: "opt/cvm/nonce",
        data: NONCE.to_vec().into(),
    });
    plan
}

/// Guest RAM after the launch of `plan`: its pages private and validated (accepted).
fn launched_memory(plan: &cvm_firmware::plan::LaunchPlan<'_>) -> Arc<Memory> {
    let memory = Arc::new(Memory::default());
    for step in &plan.steps {
        memory.each_page(step.gpa, step.len, |p| p.validated = true);
    }
    memory
}

/// Runs `guest` (the guest's entry) on the simulated vCPU of `sim`.
fn simulate(sim: Sim, guest: fn() -> !, expected: Vec<u8>) -> Run {
    SIM.with(|s| *s.borrow_mut() = Some(sim));
    quiet_stops();
    let stopped = std::panic::catch_unwind(guest).unwrap_err();
    let stopped = stopped
        .downcast::<Stopped>()
        .map(|s| *s)
        .unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("the simulation failed: {why}")
        });
    let sim = SIM.with(|s| s.borrow_mut().take().unwrap());
    Run {
        stopped,
        serial: String::from_utf8(sim.serial).unwrap(),
        nonce: NONCE,
        expected,
        calls: sim.calls,
    }
}

fn new_sim(
    host: Host,
    memory: Arc<Memory>,
    backend: Box<dyn Backend>,
    firmware: Firmware,
    plan: &cvm_firmware::plan::LaunchPlan<'_>,
) -> Sim {
    let fw_cfg = cvm_launcher::vmm::fwcfg::FwCfgDevice::new(
        &plan.fw_cfg,
        memory.clone() as Arc<dyn Runtime>,
    )
    .unwrap();
    Sim {
        host,
        memory,
        backend,
        fw_cfg,
        serial: Vec::new(),
        calls: 0,
        firmware,
        msr: 0,
        registered: None,
        split: None,
        alias: None,
        map_gpa_split: false,
    }
}

/// Launches the attesting guest's SNP plan through cvm's backend on the AMD-SP model,
/// then runs the guest's SNP path on the simulated vCPU.
fn run_snp(host: Host, certs: Option<Vec<u8>>) -> Run {
    use cvm_firmware::launch::{Inputs, SevInputs};
    let inputs = Inputs::Sev(SevInputs {
        tee: cvm_firmware::Tee::Snp,
        firmware: cvm_launcher::guest::ATTEST_GUEST,
        direct_boot: None,
        vcpus: 1,
        vcpu_sig: cvm_firmware::sev::cpu::signature_of("EPYC-Milan").unwrap(),
        vmm: cvm_firmware::sev::VmmType::Qemu,
        guest_features: 1,
        svsm: None,
        memory: Some(MEMORY),
    });
    let images = inputs.parse().unwrap();
    let plan = served(&inputs.plan(&images).unwrap());
    let launch = cvm_launcher::vmm::sev::SevLaunch {
        policy: cvm_firmware::sev::id_block::DEFAULT_POLICY,
        host_data: [0; 32],
        id_block: None,
        certs,
    };
    let mut backend = cvm_launcher::vmm::sev::SevBackend::new(&plan, launch).unwrap();
    // A Linux 7.0+ host, which can hand certificate requests to the VMM.
    let mut model =
        cvm_launcher::vmm::sev::model::SevModel::new(cvm_launcher::vmm::sev::model::ModelHost {
            req_certs: true,
            ..Default::default()
        });
    let platform = cvm_launcher::vmm::backend::PlatformOptions {
        irqchip: cvm_launcher::vmm::IrqChip::InKernel,
        pit: false,
    };
    cvm_launcher::vmm::setup(&mut model, &mut backend, &plan, &platform).unwrap();
    let measurement = model.launch_digest().unwrap();
    // The secrets page holds what the model's firmware wrote there.
    let memory = launched_memory(&plan);
    let secrets = model.secrets_page().unwrap();
    memory.with(layout::SNP_SECRETS as u64, |p| {
        p.private.copy_from_slice(&secrets[..]);
    });
    let sim = new_sim(host, memory, Box::new(backend), Firmware::Snp(model), &plan);
    simulate(sim, || snp::attest(C_BIT), measurement)
}

/// A QGS that answers one GetQuote with `quote` and hands back the TDREPORT it was asked
/// to quote.
fn qgs(
    quote: Vec<u8>,
) -> (
    cvm_launcher::vmm::tdx::qgs::QgsAddr,
    std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = common::qgs("sim", move |request| {
        tx.send(request[24..].to_vec()).unwrap();
        common::qgs_response(1, 0, &quote)
    });
    (addr, rx)
}

/// Launches the attesting guest's TDX plan through cvm's backend on the TDX module
/// model, then runs the guest's TDX path on the simulated vCPU; `qgs` is the VMM's
/// quote service. `measurement` is the TDREPORT the model gives for the nonce's binding.
fn run_tdx(host: Host, qgs: Option<cvm_launcher::vmm::tdx::qgs::QgsAddr>) -> Run {
    use cvm_firmware::launch::{Inputs, TdxInputs};
    let inputs = Inputs::Tdx(TdxInputs {
        firmware: cvm_launcher::guest::ATTEST_GUEST,
        memory: MEMORY,
        vcpus: 1,
        order: Default::default(),
        direct_boot: None,
        acpi_tables: None,
        recipe: None,
    });
    let images = inputs.parse().unwrap();
    let plan = served(&inputs.plan(&images).unwrap());
    let launch = cvm_launcher::vmm::tdx::TdxLaunch {
        attributes: cvm_launcher::vmm::tdx::ATTR_SEPT_VE_DISABLE,
        mrconfigid: [0; 48],
        mrowner: [0; 48],
        mrownerconfig: [0; 48],
        qgs,
    };
    let mut backend = cvm_launcher::vmm::tdx::TdxBackend::new(&plan, launch).unwrap();
    let mut model = cvm_launcher::vmm::tdx::model::TdxModel::default();
    let platform = cvm_launcher::vmm::backend::PlatformOptions {
        irqchip: cvm_launcher::vmm::IrqChip::Split,
        pit: false,
    };
    cvm_launcher::vmm::setup(&mut model, &mut backend, &plan, &platform).unwrap();
    let binding: [u8; 64] = hex::decode(common::binding(&NONCE))
        .unwrap()
        .try_into()
        .unwrap();
    let tdreport = model.tdg_mr_report(&binding).unwrap().to_vec();
    let memory = launched_memory(&plan);
    let sim = new_sim(host, memory, Box::new(backend), Firmware::Tdx(model), &plan);
    simulate(sim, || tdx::attest(), tdreport)
}

/// The guest's SNP path end to end, with each kind of host: no certificates (KVM's empty
/// table), the model host's table (sent as the auxiliary data), and a table too large for
/// the guest's buffer (VMM error INVALID_LEN: the same message again as a plain request,
/// no auxiliary data). Each report verifies, so the sequence numbers stayed in step.
#[test]
fn the_guests_snp_path_gets_a_report_that_verifies() {
    let table = cvm_launcher::vmm::sev::model::test_vcek::cert_table().unwrap();
    let too_large = vec![0x5a; 5 * 4096];
    for (name, certs, aux) in [
        ("no-certs", None, None),
        ("certs", Some(table.clone()), Some(table.clone())),
        ("too-large", Some(too_large), None),
    ] {
        let r = run_snp(Host::Faithful, certs);
        assert_eq!(r.stopped, Stopped::DebugExit(0), "{name}: {}", r.serial);
        let line = r.serial.strip_suffix('\n').unwrap();
        assert!(!line.contains('\n'), "one line: {}", r.serial);
        let evidence = cvm_attest::exchange::parse_line(line.as_bytes()).unwrap();
        assert_eq!(evidence.kind, cvm_attest::exchange::EvidenceKind::Snp);
        assert_eq!(evidence.aux, aux, "{name}");
        // Every console byte and fw_cfg access was a GHCB call.
        assert!(r.calls > line.len(), "{}", r.calls);
        verify_snp(&r, &evidence.evidence, name);
    }
}

/// `cvm verify` of an SNP report with the SNP test PKI (the model's VCEK), the plan's
/// measurement as the reference and the binding of the nonce as the report data.
fn verify_snp(r: &Run, report_bytes: &[u8], name: &str) {
    let dir = common::temp_file("snp-sim-marker", b"")
        .parent()
        .unwrap()
        .join(format!("snp-sim-{name}"));
    let pki =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/snp-test-pki");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for role in ["vcek", "ask", "ark"] {
        std::fs::copy(
            pki.join(format!("test-{role}.der")),
            certs.join(format!("{role}.der")),
        )
        .unwrap();
    }
    let report = dir.join("report.bin");
    std::fs::write(&report, report_bytes).unwrap();
    let reference = dir.join("reference.json");
    std::fs::write(
        &reference,
        format!(
            r#"{{"format":"cvm-measurement/1","tee":"snp","measurement":"{}"}}"#,
            hex::encode(&r.expected)
        ),
    )
    .unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let out = common::cvm(&[
        "--format",
        "json",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &path(&report),
        "--certs",
        &path(&certs),
        "--root",
        &path(&pki.join("test-ark.der")),
        "--crl",
        &path(&pki.join("test-crl-empty.der")),
        "--reference",
        &path(&reference),
        "--report-data",
        &common::binding(&r.nonce),
    ]);
    let v = common::stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{name}: {v}");
    assert_eq!(v["verdict"], "pass", "{name}: {v}");
}

/// The guest's failure paths: each misbehaving host stops it through the GHCB
/// termination request, reason set 0xc, with the step's code (`snp::Fail`), before it
/// prints any evidence.
#[test]
fn a_misbehaving_host_stops_the_guest_with_the_step_that_failed() {
    for (host, code) in [
        (Host::OldProtocol, 2),
        (Host::RefusesPsc, 3),
        (Host::CounterAhead, 6),
        (Host::TampersResponse, 7),
    ] {
        let r = run_snp(host, None);
        assert_eq!(
            r.stopped,
            Stopped::Terminated(0xc, code),
            "{host:?}: {}",
            r.serial
        );
        assert!(!r.serial.contains("CVM-EVIDENCE"), "{host:?}: {}", r.serial);
    }
}

#[test]
fn the_guests_tdx_path_gets_the_quote_of_its_bound_tdreport() {
    let Some(vectors) = common::vectors() else {
        return;
    };
    let quote = std::fs::read(vectors.join("tdx/tdx-v4-phala-b0c06f-uptodate/quote.bin")).unwrap();
    for host in [Host::Faithful, Host::MapGpaRetries] {
        let (addr, asked) = qgs(quote.clone());
        let r = run_tdx(host, Some(addr));
        assert_eq!(r.stopped, Stopped::DebugExit(0), "{host:?}: {}", r.serial);
        let line = r.serial.strip_suffix('\n').unwrap();
        let evidence = cvm_attest::exchange::parse_line(line.as_bytes()).unwrap();
        assert_eq!(evidence.kind, cvm_attest::exchange::EvidenceKind::Tdx);
        // The QGS was asked to quote the model's TDREPORT of the nonce's binding, and
        // the guest printed the quote it answered.
        assert_eq!(asked.recv().unwrap(), r.expected, "{host:?}");
        assert_eq!(
            &r.expected[0x80..0xc0],
            &hex::decode(common::binding(&r.nonce)).unwrap()[..]
        );
        assert_eq!(evidence.evidence, quote, "{host:?}");
        assert!(r.calls > line.len());
    }
}

/// The TDX failure paths: ReportFatalError with the step's code (`tdx::Fail`).
#[test]
fn a_misbehaving_vmm_stops_the_td_with_the_step_that_failed() {
    for (host, code) in [
        (Host::OddGpaw, 2),
        (Host::RefusesMapGpa, 5),
        (Host::NoQgs, 7),
    ] {
        let r = run_tdx(host, None);
        assert_eq!(r.stopped, Stopped::Fatal(code), "{host:?}: {}", r.serial);
        assert!(!r.serial.contains("CVM-EVIDENCE"), "{host:?}: {}", r.serial);
    }
}
