//! The guest-physical pages the attesting guest uses (attest.s's and the image's SEV
//! metadata and TDVF descriptor agree with these). RAM below 16 MiB, inside every guest
//! cvm launches.

/// attest.s's page tables.
pub const PDPT: usize = 0x80_1000;
pub const PD_LOW: usize = 0x80_2000;
/// SNP: the 4 KiB page table of the 2 MiB holding the shared pages.
pub const SNP_PT: usize = 0x80_4000;
/// TDX: TDG.MR.REPORT's output (1024 bytes) and its REPORTDATA (at +1024).
pub const TD_REPORT: usize = 0x80_5000;
/// TDX: the page directory of the shared alias window.
pub const TD_ALIAS_PD: usize = 0x80_6000;
/// SNP: the secrets page (SEV metadata section type 2).
pub const SNP_SECRETS: usize = 0x80_9000;
/// The 2 MiB holding the shared pages.
pub const SHARED_2M: usize = 0x80_0000;
/// SNP: the GHCB and the guest request's request and response pages.
pub const GHCB: usize = 0x90_0000;
pub const SNP_REQUEST: usize = 0x90_1000;
pub const SNP_RESPONSE: usize = 0x90_2000;
/// SNP: the extended request's certificate buffer (shared), 4 pages.
pub const SNP_CERTS: usize = 0x90_3000;
pub const SNP_CERTS_PAGES: usize = 4;
pub const SNP_SHARED: [usize; 7] = [
    GHCB,
    SNP_REQUEST,
    SNP_RESPONSE,
    SNP_CERTS,
    SNP_CERTS + 0x1000,
    SNP_CERTS + 0x2000,
    SNP_CERTS + 0x3000,
];
/// TDX: the GetQuote buffer (shared) and the virtual address of its alias window.
pub const TD_QUOTE: usize = 0x90_0000;
pub const TD_QUOTE_LEN: usize = 0x4000;
pub const TD_ALIAS_VA: usize = 0x4000_0000;
