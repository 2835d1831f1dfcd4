//! Bounds-checked little-endian reads from untrusted images.

use crate::error::{FirmwareError, Result};

/// A view of an image that names itself in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Image<'a> {
    pub name: &'static str,
    pub data: &'a [u8],
}

impl<'a> Image<'a> {
    pub fn new(name: &'static str, data: &'a [u8]) -> Self {
        Image { name, data }
    }

    pub fn len(&self) -> u64 {
        to_u64(self.data.len())
    }

    /// `len` bytes at `offset`.
    pub fn bytes(&self, offset: u64, len: u64, field: &'static str) -> Result<&'a [u8]> {
        let truncated = || FirmwareError::Truncated {
            image: self.name,
            field,
            offset,
            needed: len,
            len: self.len(),
        };
        let start = usize::try_from(offset).map_err(|_| truncated())?;
        let n = usize::try_from(len).map_err(|_| truncated())?;
        let end = start.checked_add(n).ok_or_else(truncated)?;
        self.data.get(start..end).ok_or_else(truncated)
    }

    pub fn array<const N: usize>(&self, offset: u64, field: &'static str) -> Result<[u8; N]> {
        let b = self.bytes(offset, to_u64(N), field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn u8(&self, offset: u64, field: &'static str) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array(offset, field)?))
    }

    pub fn u16(&self, offset: u64, field: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(offset, field)?))
    }

    pub fn u32(&self, offset: u64, field: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(offset, field)?))
    }

    pub fn u64(&self, offset: u64, field: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(offset, field)?))
    }

    pub fn invalid(
        &self,
        field: &'static str,
        offset: u64,
        reason: impl Into<String>,
    ) -> FirmwareError {
        FirmwareError::Invalid {
            image: self.name,
            field,
            offset,
            reason: reason.into(),
        }
    }
}

/// `usize` to `u64`: lossless on every target Rust supports (pointer width <= 64).
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Writes `value` at the constant offset `OFF` of a fixed-size buffer: a write that does
/// not fit is a compile-time error (the assertion is evaluated when the function is
/// instantiated), so structures with a fixed layout need no run-time check.
pub(crate) fn put_at<const OFF: usize, const N: usize, const LEN: usize>(
    buf: &mut [u8; LEN],
    value: &[u8; N],
) {
    const { assert!(OFF <= LEN && N <= LEN - OFF) };
    if let Some(dst) = OFF.checked_add(N).and_then(|end| buf.get_mut(OFF..end)) {
        dst.copy_from_slice(value);
    }
}

/// Writes `value` at `offset` of `buf` (used to build structures whose layout is
/// defined by the code, never by input). A write out of range is a bug in the builder,
/// and an error rather than a silently dropped field: a structure with a field missing
/// would be measured and launched without complaint.
pub(crate) fn put(buf: &mut [u8], offset: usize, value: &[u8]) -> Result<()> {
    let size = buf.len();
    let dst = offset
        .checked_add(value.len())
        .and_then(|end| buf.get_mut(offset..end))
        .ok_or(FirmwareError::Layout {
            offset: to_u64(offset),
            len: to_u64(value.len()),
            size: to_u64(size),
        })?;
    dst.copy_from_slice(value);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The little-endian `u32` at `off` (test code: panics when out of range).
    pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// The little-endian `u64` at `off` (test code: panics when out of range).
    pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn reads_are_bounds_checked() {
        let img = Image::new("firmware", &[1, 2, 3, 4, 5]);
        assert_eq!(img.u32(1, "x").unwrap(), 0x0504_0302);
        let err = img.u32(2, "entry size").unwrap_err();
        assert_eq!(
            err.to_string(),
            "firmware: entry size at offset 0x2 needs 4 bytes, but the image is 5 bytes"
        );
        assert!(img.bytes(u64::MAX, 2, "x").is_err());
        assert!(img.bytes(4, u64::MAX, "x").is_err());
    }

    #[test]
    fn writes_out_of_range_are_errors() {
        let mut b = [0u8; 8];
        put(&mut b, 4, &[1, 2, 3, 4]).unwrap();
        assert_eq!(b, [0, 0, 0, 0, 1, 2, 3, 4]);
        for (off, len) in [(5, 4), (8, 1), (usize::MAX, 2)] {
            let e = put(&mut b, off, &vec![9; len]).unwrap_err();
            assert!(matches!(e, FirmwareError::Layout { .. }), "{e}");
        }
        assert_eq!(b, [0, 0, 0, 0, 1, 2, 3, 4]);
    }
}
