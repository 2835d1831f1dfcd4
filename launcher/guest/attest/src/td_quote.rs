//! The GetQuote buffer as the TD builds and reads it (GHCI 1.5, TDG.VP.VMCALL<GetQuote>;
//! Linux `drivers/virt/coco/tdx-guest` `struct tdx_quote_buf`; ../shared/MODELS.md 4.6):
//! version u64 @0 (1), status u64 @8, in_len u32 @16, out_len u32 @20, then the TDREPORT
//! in and the quote out at @24. No I/O and no `unsafe`: cvm's tests build the guest's
//! buffer with this file and hand it to the VMM's GetQuote handler
//! (launcher/tests/tdx_get_quote.rs).

/// The header's size.
pub const HEADER_LEN: usize = 24;
/// A TDREPORT's size.
pub const TDREPORT_LEN: usize = 1024;
const TDREPORT_LEN_U32: u32 = 1024;
/// The status while the VMM works on the request.
pub const IN_FLIGHT: u64 = u64::MAX;

/// Why a completed buffer holds no quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteError {
    /// The status the VMM left (ERROR, QGS_UNAVAILABLE, still IN_FLIGHT, or another).
    Status(u64),
    /// `out_len` is zero or runs past the buffer.
    Length(u32),
}

fn word(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = buf.get(off..off + 8) {
        b.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// Fills `buf` (the whole buffer) with a request for a quote of `tdreport`; `false` when
/// the buffer cannot hold it.
pub fn request(buf: &mut [u8], tdreport: &[u8; TDREPORT_LEN]) -> bool {
    let Some(data) = buf.get_mut(HEADER_LEN..HEADER_LEN + TDREPORT_LEN) else {
        return false;
    };
    data.copy_from_slice(tdreport);
    if let Some(h) = buf.get_mut(..HEADER_LEN) {
        h.fill(0);
        h[..8].copy_from_slice(&1u64.to_le_bytes());
        h[16..20].copy_from_slice(&TDREPORT_LEN_U32.to_le_bytes());
    }
    if let Some(rest) = buf.get_mut(HEADER_LEN + TDREPORT_LEN..) {
        rest.fill(0);
    }
    true
}

/// The buffer's status.
pub fn status(buf: &[u8]) -> u64 {
    word(buf, 8)
}

/// The quote of a completed buffer (status SUCCESS, `out_len` inside the buffer).
pub fn quote(buf: &[u8]) -> Result<&[u8], QuoteError> {
    match status(buf) {
        0 => {}
        s => return Err(QuoteError::Status(s)),
    }
    let [a, b, c, d, ..] = word(buf, 16 + 4).to_le_bytes();
    let out_len = u32::from_le_bytes([a, b, c, d]);
    let end = usize::try_from(out_len)
        .ok()
        .filter(|&n| n > 0)
        .and_then(|n| n.checked_add(HEADER_LEN));
    end.and_then(|end| buf.get(HEADER_LEN..end))
        .ok_or(QuoteError::Length(out_len))
}
