//! The SEV-SNP path: the GHCB MSR protocol and the GHCB (GHCB spec v2; Linux
//! `arch/x86/include/asm/sev-common.h` and `svm.h`, ../shared/MODELS.md 5.1), with no
//! #VC handler: every intercepted operation (port I/O, the guest request) is a GHCB
//! call made directly. Steps: negotiate the protocol (SEV_INFO), make the GHCB and
//! the message and certificate pages shared (page state change to shared: RAM the
//! launch never validated, so no PVALIDATE is needed, and the page tables map them
//! without the C-bit), register the GHCB, read the nonce through fw_cfg, send
//! MSG_REPORT_REQ sealed with VMPCK0 from the secrets page as an extended guest request
//! (exit 0x8000_0012, the host's certificate table into a shared buffer; a plain request,
//! exit 0x8000_0011, with the same message when the host has none for that buffer), open
//! the answer and print the evidence line, with the certificate table when there is one.

use crate::hw::{self, Page};
use crate::io::Io;
use crate::layout;

const MSR_GHCB: u32 = 0xc001_0130;
/// GHCB MSR protocol requests and responses (bits 11:0).
const SEV_INFO_REQ: u64 = 0x002;
const SEV_INFO_RESP: u64 = 0x001;
const REGISTER_REQ: u64 = 0x012;
const REGISTER_RESP: u64 = 0x013;
const PSC_REQ: u64 = 0x014;
const PSC_RESP: u64 = 0x015;
const PSC_SHARED: u64 = 2;
const TERM_REQ: u64 = 0x100;
/// The GHCB protocol version this guest speaks (page state changes, guest requests).
const GHCB_VERSION: u64 = 2;
/// cvm's termination reason set (the GHCB spec leaves sets other than 0 and 1 to the
/// guest).
const TERM_SET_CVM: u64 = 0xc;

/// GHCB save-area offsets, and the valid bitmap (bit = offset / 8).
const RAX: usize = 0x1f8;
const RBX: usize = 0x318;
const SW_EXIT_CODE: usize = 0x390;
const SW_EXIT_INFO_1: usize = 0x398;
const SW_EXIT_INFO_2: usize = 0x3a0;
const VALID_BITMAP: usize = 0x3f0;
const PROTOCOL_VERSION: usize = 0xffa;
const GHCB_USAGE: usize = 0xffc;
/// SVM_EXIT_IOIO and its exit_info_1 bits (Linux `vc_ioio_exitinfo`): IN is bit 0, the
/// data size bits 4-6, 64-bit addressing bit 9, the port in 31:16.
const SVM_EXIT_IOIO: u64 = 0x7b;
const IOIO_TYPE_IN: u64 = 1;
const IOIO_DATA_8: u64 = 1 << 4;
const IOIO_DATA_16: u64 = 1 << 5;
const IOIO_ADDR_64: u64 = 1 << 9;
/// SVM_VMGEXIT_GUEST_REQUEST and SVM_VMGEXIT_EXT_GUEST_REQUEST.
const GUEST_REQUEST: u64 = 0x8000_0011;
const EXT_GUEST_REQUEST: u64 = 0x8000_0012;
/// The extended request's VMM errors (exit_info_2 bits 63:32, GHCB spec): the buffer is
/// too small (RBX then holds the pages needed), or the VMM is busy. Either way the
/// firmware was not called and the sequence number is still unused.
const VMM_ERR_INVALID_LEN: u64 = 1;
const VMM_ERR_BUSY: u64 = 2;

/// Why the SNP path stopped (the termination code, GHCB reason set 0xc).
#[derive(Clone, Copy)]
#[repr(u8)]
pub enum Fail {
    Protocol = 2,
    PageState = 3,
    Register = 4,
    Nonce = 5,
    Request = 6,
    Response = 7,
}

fn msr_call(v: u64) -> u64 {
    hw::wrmsr(MSR_GHCB, v);
    hw::vmgexit();
    hw::rdmsr(MSR_GHCB)
}

/// The GHCB MSR protocol's termination request: KVM stops the VM with
/// `KVM_EXIT_SYSTEM_EVENT` SEV_TERM carrying this value.
pub fn terminate(why: Fail) -> ! {
    loop {
        msr_call(TERM_REQ | (TERM_SET_CVM << 12) | (u64::from(why as u8) << 16));
    }
}

/// The GHCB, registered and shared: port I/O and guest requests.
pub struct Ghcb {
    page: Page,
}

impl Ghcb {
    fn call(&mut self, exit_code: u64, info1: u64, info2: u64, rax: Option<u64>) -> u64 {
        self.call_regs(exit_code, info1, info2, rax, None)
    }

    fn call_regs(
        &mut self,
        exit_code: u64,
        info1: u64,
        info2: u64,
        rax: Option<u64>,
        rbx: Option<u64>,
    ) -> u64 {
        let g = self.page;
        for i in 0..16 {
            g.write(VALID_BITMAP + i, 0);
        }
        let valid = |off: usize| {
            let bit = off / 8;
            let byte = VALID_BITMAP + bit / 8;
            g.write(byte, g.read(byte) | (1 << (bit % 8)));
        };
        g.write_u64(SW_EXIT_CODE, exit_code);
        valid(SW_EXIT_CODE);
        g.write_u64(SW_EXIT_INFO_1, info1);
        valid(SW_EXIT_INFO_1);
        g.write_u64(SW_EXIT_INFO_2, info2);
        valid(SW_EXIT_INFO_2);
        for (off, v) in [(RAX, rax), (RBX, rbx)] {
            if let Some(v) = v {
                g.write_u64(off, v);
                valid(off);
            }
        }
        g.write_from(PROTOCOL_VERSION, &2u16.to_le_bytes());
        g.write_from(GHCB_USAGE, &0u32.to_le_bytes());
        hw::wrmsr(MSR_GHCB, g.0 as u64);
        hw::vmgexit();
        g.read_u64(SW_EXIT_INFO_1)
    }

    fn ioio(&mut self, port: u16, size: u64, input: bool, v: u64) -> u64 {
        let info =
            (u64::from(port) << 16) | size | IOIO_ADDR_64 | (u64::from(input) * IOIO_TYPE_IN);
        let rax = (!input).then_some(v);
        if self.call(SVM_EXIT_IOIO, info, 0, rax) & 0xffff_ffff != 0 {
            terminate(Fail::Protocol);
        }
        self.page.read_u64(RAX)
    }
}

impl Io for Ghcb {
    fn out8(&mut self, port: u16, v: u8) {
        self.ioio(port, IOIO_DATA_8, false, u64::from(v));
    }
    fn out16(&mut self, port: u16, v: u16) {
        self.ioio(port, IOIO_DATA_16, false, u64::from(v));
    }
    fn in8(&mut self, port: u16) -> u8 {
        self.ioio(port, IOIO_DATA_8, true, 0).to_le_bytes()[0]
    }
}

/// Maps the 2 MiB around the shared pages with 4 KiB pages: every page with the C-bit
/// but the shared ones.
fn map_shared(c_bit: u64) {
    let pt = Page(layout::SNP_PT);
    let base = layout::SHARED_2M;
    for i in 0..512usize {
        let pa = (base + i * 4096) as u64;
        let shared = layout::SNP_SHARED.contains(&(base + i * 4096));
        let entry = pa | 3 | if shared { 0 } else { c_bit };
        pt.write_u64(i * 8, entry);
    }
    let pd = Page(layout::PD_LOW);
    pd.write_u64((base >> 21) * 8, layout::SNP_PT as u64 | 3 | c_bit);
    hw::write_cr3(hw::read_cr3());
}

pub fn attest(c_bit: u64) -> ! {
    let info = msr_call(SEV_INFO_REQ);
    let (max, min) = (info >> 48, (info >> 32) & 0xffff);
    if info & 0xfff != SEV_INFO_RESP || !(min..=max).contains(&GHCB_VERSION) {
        terminate(Fail::Protocol);
    }
    for &page in layout::SNP_SHARED.iter() {
        let gfn = (page as u64) >> 12;
        let r = msr_call(PSC_REQ | (gfn << 12) | (PSC_SHARED << 52));
        if r & 0xfff != PSC_RESP || r >> 32 != 0 {
            terminate(Fail::PageState);
        }
    }
    map_shared(c_bit);
    let gfn = (layout::GHCB as u64) >> 12;
    if msr_call(REGISTER_REQ | (gfn << 12)) != REGISTER_RESP | (gfn << 12) {
        terminate(Fail::Register);
    }
    let mut ghcb = Ghcb {
        page: Page(layout::GHCB),
    };
    ghcb.page.zero();
    let Some(report_data) = crate::nonce::binding(&mut ghcb) else {
        terminate(Fail::Nonce)
    };
    let mut key = [0u8; 32];
    Page(layout::SNP_SECRETS).read_into(0x20, &mut key);
    // The first message of VMPCK0 since launch: the firmware's counter is 0.
    let seqno = 1;
    let request = crate::snp_msg::report_request(&key, seqno, &report_data);
    let (req, resp) = (Page(layout::SNP_REQUEST), Page(layout::SNP_RESPONSE));
    req.zero();
    req.write_from(0, &request);
    resp.zero();
    for i in 0..layout::SNP_CERTS_PAGES {
        Page(layout::SNP_CERTS + i * 4096).zero();
    }
    // The extended request: the host's certificate table comes back in the buffer at RAX
    // (RBX pages). exit_info_2 after the call: VMM error << 32 | firmware error.
    let (req_gpa, resp_gpa) = (layout::SNP_REQUEST as u64, layout::SNP_RESPONSE as u64);
    ghcb.call_regs(
        EXT_GUEST_REQUEST,
        req_gpa,
        resp_gpa,
        Some(layout::SNP_CERTS as u64),
        Some(layout::SNP_CERTS_PAGES as u64),
    );
    let mut with_certs = true;
    let result = ghcb.page.read_u64(SW_EXIT_INFO_2);
    if matches!(result >> 32, VMM_ERR_INVALID_LEN | VMM_ERR_BUSY) && result & 0xffff_ffff == 0 {
        // No certificates from this host; the same message as a plain request (Linux's
        // sev-guest does the same, to keep the sequence numbers in step).
        with_certs = false;
        ghcb.call(GUEST_REQUEST, req_gpa, resp_gpa, None);
        if ghcb.page.read_u64(SW_EXIT_INFO_2) != 0 {
            terminate(Fail::Request);
        }
    } else if result != 0 {
        terminate(Fail::Request);
    }
    let mut answer = [0u8; crate::snp_msg::HEADER_LEN + crate::snp_msg::REPORT_RSP_LEN];
    resp.read_into(0, &mut answer);
    key.fill(0);
    Page(layout::SNP_SECRETS).read_into(0x20, &mut key);
    let Ok(report) = crate::snp_msg::open_report_response(&key, seqno, &mut answer) else {
        terminate(Fail::Response)
    };
    key.fill(0);
    // The certificate table, read into private memory before it is measured out; sent
    // as the auxiliary data when there is one (the verifier checks every certificate).
    let mut certs = [0u8; layout::SNP_CERTS_PAGES * 4096];
    if with_certs {
        for (i, chunk) in certs.chunks_mut(4096).enumerate() {
            Page(layout::SNP_CERTS + i * 4096).read_into(0, chunk);
        }
    }
    let table_len = crate::snp_msg::cert_table_len(&certs);
    ghcb.write(b"CVM-EVIDENCE 1 snp ");
    ghcb.write_base64(&report);
    if let Some(table) = certs.get(..table_len).filter(|t| !t.is_empty()) {
        ghcb.write(b" ");
        ghcb.write_base64(table);
    }
    ghcb.write(b"\n");
    ghcb.exit(0)
}
