//! Lower-case hex formatting and parsing.

use std::fmt;

/// Formats bytes as lower-case hex.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(self.0))
    }
}

/// Lower-case hex of `bytes` (digit by digit: verdicts format every claim, and the
/// formatting machinery per byte cost more than some of the checks).
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}

/// Parses hex (upper or lower case, optional `0x` prefix) into exactly `N` bytes.
pub fn decode_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    let v = decode(s)?;
    v.try_into().ok()
}

/// Parses hex (upper or lower case, optional `0x` prefix).
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let (pairs, rest) = s.as_bytes().as_chunks::<2>();
    if !rest.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(pairs.len());
    for &[hi, lo] in pairs {
        // A nibble is below 16: the product stays below 256.
        out.push(nibble(hi)?.wrapping_mul(16) | nibble(lo)?);
    }
    Some(out)
}

/// The value of one hex digit.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c.wrapping_sub(b'0')),
        b'a'..=b'f' => Some(c.wrapping_sub(b'a' - 10)),
        b'A'..=b'F' => Some(c.wrapping_sub(b'A' - 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(encode(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(decode("00AB10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(decode("0x0a"), Some(vec![10]));
        assert_eq!(decode("abc"), None);
        assert_eq!(decode("zz"), None);
        assert_eq!(decode_exact::<2>("0102"), Some([1, 2]));
        assert_eq!(decode_exact::<2>("01"), None);
        assert_eq!(
            decode("0123456789abcdefABCDEF"),
            Some(vec![
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef
            ])
        );
        // The characters next to each digit range.
        for bad in ["0/", "0:", "0@", "0G", "0`", "0g", "0 "] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
