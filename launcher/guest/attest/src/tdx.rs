//! The TDX path (TDX module ABI; GHCI spec; Linux `arch/x86/coco/tdx` and
//! `drivers/virt/coco/tdx-guest`, ../shared/MODELS.md 4.6 and 5.2), with no #VE handler:
//! port I/O is TDG.VP.VMCALL<Instruction.IO>. Steps: TDG.VP.INFO for the shared bit,
//! the nonce through fw_cfg, TDG.MR.REPORT with the binding as REPORTDATA, MapGPA of
//! the quote buffer to shared (RAM the launch never added, mapped through an alias
//! window of the page tables with the shared bit set), TDG.VP.VMCALL<GetQuote>, polling
//! the buffer's status, then the evidence line.

use crate::hw::{self, Page, TdRegs};
use crate::io::Io;
use crate::layout;
use crate::td_quote;

/// TDCALL leaves.
const TDG_VP_VMCALL: u64 = 0;
const TDG_VP_INFO: u64 = 1;
const TDG_MR_REPORT: u64 = 4;
/// TDG.VP.VMCALL: the registers passed to the VMM (R10-R15) and the subfunctions.
const VMCALL_EXPOSE: u64 = 0xfc00;
const INSTRUCTION_IO: u64 = 30;
const MAP_GPA: u64 = 0x10001;
const GET_QUOTE: u64 = 0x10002;
const REPORT_FATAL_ERROR: u64 = 0x10003;
/// TDVMCALL status RETRY (MapGPA: R11 holds the GPA to resume from).
const TDVMCALL_RETRY: u64 = 1;
const TDREPORT_LEN: usize = td_quote::TDREPORT_LEN;
/// Polls of the quote buffer before giving up (the VMM answers asynchronously; QEMU
/// gives its quote service 30 s).
const QUOTE_POLLS: u64 = 1 << 36;

/// Why the TDX path stopped (ReportFatalError's code).
#[derive(Clone, Copy)]
#[repr(u8)]
pub enum Fail {
    Info = 2,
    Nonce = 3,
    Report = 4,
    MapGpa = 5,
    GetQuote = 6,
    Quote = 7,
}

fn vmcall(subfunction: u64, r12: u64, r13: u64, r14: u64, r15: u64) -> TdRegs {
    hw::tdcall(TdRegs {
        rax: TDG_VP_VMCALL,
        rcx: VMCALL_EXPOSE,
        r10: 0,
        r11: subfunction,
        r12,
        r13,
        r14,
        r15,
        ..TdRegs::default()
    })
}

/// TDG.VP.VMCALL<ReportFatalError>: KVM stops the TD with `KVM_EXIT_SYSTEM_EVENT`
/// TDX_FATAL, the code in R12.
pub fn terminate(why: Fail) -> ! {
    loop {
        vmcall(REPORT_FATAL_ERROR, u64::from(why as u8), 0, 0, 0);
    }
}

/// A TD's port I/O: TDG.VP.VMCALL<Instruction.IO> (R12 size, R13 direction 1 = out,
/// R14 port, R15 value; R11 the value read).
pub struct Td;

impl Td {
    fn io(&mut self, port: u16, size: u64, out: bool, v: u64) -> u64 {
        let r = vmcall(INSTRUCTION_IO, size, u64::from(out), u64::from(port), v);
        if r.r10 != 0 {
            terminate(Fail::Info);
        }
        r.r11
    }
}

impl Io for Td {
    fn out8(&mut self, port: u16, v: u8) {
        self.io(port, 1, true, u64::from(v));
    }
    fn out16(&mut self, port: u16, v: u16) {
        self.io(port, 2, true, u64::from(v));
    }
    fn in8(&mut self, port: u16) -> u8 {
        self.io(port, 1, false, 0).to_le_bytes()[0]
    }
}

pub fn attest() -> ! {
    let info = hw::tdcall(TdRegs {
        rax: TDG_VP_INFO,
        ..TdRegs::default()
    });
    let gpaw = info.rcx & 0x3f;
    if info.rax != 0 || !(48..=52).contains(&gpaw) {
        terminate(Fail::Info);
    }
    let shared = 1u64 << (gpaw - 1);
    let mut td = Td;
    let Some(report_data) = crate::nonce::binding(&mut td) else {
        terminate(Fail::Nonce)
    };
    // TDG.MR.REPORT: RCX the 1024-aligned TDREPORT, RDX the 64-aligned REPORTDATA, R8
    // sub-type 0.
    let (report, data) = (Page(layout::TD_REPORT), layout::TD_REPORT + TDREPORT_LEN);
    report.zero();
    report.write_from(TDREPORT_LEN, &report_data);
    let r = hw::tdcall(TdRegs {
        rax: TDG_MR_REPORT,
        rcx: layout::TD_REPORT as u64,
        rdx: data as u64,
        ..TdRegs::default()
    });
    if r.rax != 0 {
        terminate(Fail::Report);
    }
    // MapGPA the quote buffer to shared, resuming where the VMM says on RETRY.
    let (start, len) = (layout::TD_QUOTE as u64, layout::TD_QUOTE_LEN as u64);
    let mut at = start;
    while at < start + len {
        let r = vmcall(MAP_GPA, at | shared, start + len - at, 0, 0);
        match r.r10 {
            0 => break,
            TDVMCALL_RETRY if (r.r11 & !shared) > at => at = r.r11 & !shared,
            _ => terminate(Fail::MapGpa),
        }
    }
    // The alias window: 2 MiB at TD_ALIAS_VA onto the shared side of the 2 MiB holding
    // the buffer.
    Page(layout::PDPT).write_u64(8, layout::TD_ALIAS_PD as u64 | 3);
    let pd = Page(layout::TD_ALIAS_PD);
    pd.zero();
    pd.write_u64(0, layout::SHARED_2M as u64 | shared | 0x83);
    hw::write_cr3(hw::read_cr3());
    // The buffer is built and read in private memory (td_quote.rs) and copied to and
    // from the shared pages, so the host cannot change it under the parser.
    let shared_page = |off: usize| {
        let va = layout::TD_ALIAS_VA + (layout::TD_QUOTE - layout::SHARED_2M) + off;
        (Page(va & !0xfff), va & 0xfff)
    };
    let mut buf = [0u8; layout::TD_QUOTE_LEN];
    let mut tdreport = [0u8; TDREPORT_LEN];
    report.read_into(0, &mut tdreport);
    if !td_quote::request(&mut buf, &tdreport) {
        terminate(Fail::Quote);
    }
    for (off, &b) in buf.iter().enumerate() {
        let (p, o) = shared_page(off);
        p.write(o, b);
    }
    let r = vmcall(GET_QUOTE, start | shared, len, 0, 0);
    if r.r10 != 0 {
        terminate(Fail::GetQuote);
    }
    let status = || {
        let (p, o) = shared_page(8);
        p.read_u64(o)
    };
    let mut polls = 0u64;
    while status() == td_quote::IN_FLIGHT {
        polls += 1;
        if polls > QUOTE_POLLS {
            terminate(Fail::Quote);
        }
        core::hint::spin_loop();
    }
    for (off, b) in buf.iter_mut().enumerate() {
        let (p, o) = shared_page(off);
        *b = p.read(o);
    }
    let Ok(quote) = td_quote::quote(&buf) else {
        terminate(Fail::Quote)
    };
    td.write(b"CVM-EVIDENCE 1 tdx ");
    td.write_base64(quote);
    td.write(b"\n");
    td.exit(0)
}
