//! A client of Intel's quote generation service (QGS), which turns a TD's TDREPORT into
//! a quote: its message protocol (Intel `qgs_msg_lib`, as QEMU's
//! `tdx-quote-generator.c` speaks it) over a Unix or vsock stream socket.
//!
//! Framing: a 4-byte big-endian length, then the message, little-endian: a header {u16
//! major = 1, u16 minor = 1, u32 type, u32 size (of the whole message), u32 error_code},
//! then for GET_QUOTE_REQ (type 0) {u32 report_size, u32 id_list_size = 0, TDREPORT} and
//! for GET_QUOTE_RESP (type 1) {u32 selected_id_size, u32 quote_size, id, quote}. Every
//! field of the reply is checked before it is used: the QGS is another process.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Where the QGS listens (`--qgs unix:PATH` or `vsock:CID:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QgsAddr {
    /// A Unix stream socket.
    Unix(PathBuf),
    /// A vsock stream socket (QGS on the host is usually CID 2, port 4050).
    Vsock {
        /// The context ID.
        cid: u32,
        /// The port.
        port: u32,
    },
}

impl std::str::FromStr for QgsAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            return Ok(QgsAddr::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("vsock:")
            && let Some((cid, port)) = rest.split_once(':')
            && let (Ok(cid), Ok(port)) = (cid.parse(), port.parse())
        {
            return Ok(QgsAddr::Vsock { cid, port });
        }
        Err("expected unix:PATH or vsock:CID:PORT".into())
    }
}

impl std::fmt::Display for QgsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QgsAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            QgsAddr::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

/// Why no quote came back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QgsError {
    /// The socket could not be used.
    #[error("QGS at {addr}: {source}")]
    Io {
        /// The QGS.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The reply is not a well-formed GET_QUOTE_RESP.
    #[error("QGS at {addr}: malformed reply: {why}")]
    Malformed {
        /// The QGS.
        addr: String,
        /// What is wrong.
        why: String,
    },
    /// The QGS answered with an error code.
    #[error("QGS at {addr}: error code {code:#x}")]
    Refused {
        /// The QGS.
        addr: String,
        /// Its error code.
        code: u32,
    },
}

const HEADER: usize = 16;
const GET_QUOTE_REQ: u32 = 0;
const GET_QUOTE_RESP: u32 = 1;
/// The reply cvm reads at most (the guest's buffer is at most this large).
pub const MAX_REPLY: usize = 128 << 10;

/// The GET_QUOTE_REQ message for `report` (framed).
pub fn request(report: &[u8]) -> Vec<u8> {
    let size = HEADER + 8 + report.len();
    let mut m = Vec::with_capacity(4 + size);
    m.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&GET_QUOTE_REQ.to_le_bytes());
    m.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(
        &u32::try_from(report.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(report);
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)?.try_into().ok().map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

/// The quote in a GET_QUOTE_RESP message (unframed); `Err` names what is wrong.
pub fn parse_reply(m: &[u8]) -> Result<&[u8], Result<String, u32>> {
    let bad = |why: String| Err(Ok(why));
    let (Some(major), Some(kind), Some(size), Some(code)) =
        (u16_at(m, 0), u32_at(m, 4), u32_at(m, 8), u32_at(m, 12))
    else {
        return bad(format!("{} bytes, shorter than its header", m.len()));
    };
    if major != 1 {
        return bad(format!("message version {major}, not 1"));
    }
    if kind != GET_QUOTE_RESP {
        return bad(format!("message type {kind}, not GET_QUOTE_RESP (1)"));
    }
    if usize::try_from(size).ok() != Some(m.len()) {
        return bad(format!(
            "the header says {size} bytes, the message has {}",
            m.len()
        ));
    }
    if code != 0 {
        return Err(Err(code));
    }
    let (Some(id_size), Some(quote_size)) = (u32_at(m, HEADER), u32_at(m, HEADER + 4)) else {
        return bad("no quote sizes".into());
    };
    let start = usize::try_from(id_size)
        .ok()
        .and_then(|i| (HEADER + 8).checked_add(i));
    let end = start.and_then(|s| s.checked_add(usize::try_from(quote_size).ok()?));
    match (start, end) {
        (Some(s), Some(e)) if e == m.len() && quote_size > 0 => m
            .get(s..e)
            .map_or_else(|| bad("the quote lies outside the message".into()), Ok),
        _ => bad(format!(
            "an ID of {id_size} and a quote of {quote_size} bytes do not fill the {}-byte message",
            m.len()
        )),
    }
}

/// Asks the QGS at `addr` for the quote of `report`, waiting at most `timeout` for each
/// read and write (QEMU gives up after 30 s).
pub fn get_quote(addr: &QgsAddr, report: &[u8], timeout: Duration) -> Result<Vec<u8>, QgsError> {
    let name = addr.to_string();
    let io = |source: std::io::Error| QgsError::Io {
        addr: name.clone(),
        source,
    };
    let mut stream: Box<dyn ReadWrite> = match addr {
        QgsAddr::Unix(path) => {
            let s = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
            s.set_read_timeout(Some(timeout)).map_err(io)?;
            s.set_write_timeout(Some(timeout)).map_err(io)?;
            Box::new(s)
        }
        QgsAddr::Vsock { cid, port } => {
            Box::new(super::sys::vsock_connect(*cid, *port, timeout).map_err(io)?)
        }
    };
    stream.write_all(&request(report)).map_err(io)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(io)?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if !(HEADER..=MAX_REPLY).contains(&len) {
        return Err(QgsError::Malformed {
            addr: name,
            why: format!("a {len}-byte reply (at most {MAX_REPLY})"),
        });
    }
    let mut m = vec![0u8; len];
    stream.read_exact(&mut m).map_err(io)?;
    match parse_reply(&m) {
        Ok(quote) => Ok(quote.to_vec()),
        Err(Ok(why)) => Err(QgsError::Malformed { addr: name, why }),
        Err(Err(code)) => Err(QgsError::Refused { addr: name, code }),
    }
}

/// A stream the client reads and writes.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn reply(kind: u32, code: u32, id: &[u8], quote: &[u8]) -> Vec<u8> {
        let size = HEADER + 8 + id.len() + quote.len();
        let mut m = Vec::new();
        m.extend_from_slice(&1u16.to_le_bytes());
        m.extend_from_slice(&1u16.to_le_bytes());
        m.extend_from_slice(&kind.to_le_bytes());
        m.extend_from_slice(&u32::try_from(size).unwrap().to_le_bytes());
        m.extend_from_slice(&code.to_le_bytes());
        m.extend_from_slice(&u32::try_from(id.len()).unwrap().to_le_bytes());
        m.extend_from_slice(&u32::try_from(quote.len()).unwrap().to_le_bytes());
        m.extend_from_slice(id);
        m.extend_from_slice(quote);
        m
    }

    #[test]
    fn requests_and_replies_as_qgs_frames_them() {
        let r = request(&[7; 1024]);
        assert_eq!(&r[..4], &(16u32 + 8 + 1024).to_be_bytes());
        assert_eq!(&r[4..8], &[1, 0, 1, 0]);
        assert_eq!(u32_at(&r, 12), Some(1048), "size, after the 4-byte frame");
        assert_eq!(u32_at(&r, 20), Some(1024), "report_size");
        assert_eq!(u32_at(&r, 24), Some(0), "id_list_size");
        assert_eq!(
            parse_reply(&reply(1, 0, b"id", b"quote")).unwrap(),
            b"quote"
        );
        assert!(matches!(parse_reply(&reply(0, 0, b"", b"q")), Err(Ok(w)) if w.contains("type 0")));
        assert!(matches!(
            parse_reply(&reply(1, 0x12, b"", b"q")),
            Err(Err(0x12))
        ));
        assert!(matches!(parse_reply(&reply(1, 0, b"", b"")), Err(Ok(_))));
        let mut short = reply(1, 0, b"", b"quote");
        short.truncate(20);
        assert!(parse_reply(&short).is_err());
        let mut lying = reply(1, 0, b"", b"quote");
        lying[20] = 0xff; // quote_size
        assert!(parse_reply(&lying).is_err());
        assert_eq!(
            "vsock:2:4050".parse::<QgsAddr>(),
            Ok(QgsAddr::Vsock { cid: 2, port: 4050 })
        );
        assert!("tcp:1".parse::<QgsAddr>().is_err());
        assert!("unix:".parse::<QgsAddr>().is_err());
    }
}
