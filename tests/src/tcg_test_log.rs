//! Builds TD event logs in the TCG crypto-agile format, as TDVF writes them in the CCEL
//! log area (SHA-384 only, MR index = RTMR + 1), for tests that need a guest's log with
//! chosen events. The reader is checked against real logs separately
//! (tests/tcg_event_logs.rs); this only makes inputs.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    reason = "test support code"
)]

use sha2::{Digest, Sha384};

/// One event: RTMR, TCG type, SHA-384 digest, event data.
pub struct TdEvent {
    /// RTMR 0-3.
    pub rtmr: u8,
    /// The TCG event type.
    pub event_type: u32,
    /// The digest extended.
    pub digest: [u8; 48],
    /// The event data.
    pub data: Vec<u8>,
}

/// The log's bytes: the Spec ID header (SHA-384), an EV_NO_ACTION event, the events,
/// then `padding` bytes of 0xFF as in a CCEL log area.
pub fn encode(events: &[TdEvent], padding: usize) -> Vec<u8> {
    let mut spec = b"Spec ID Event03\0".to_vec();
    spec.extend(0u32.to_le_bytes());
    spec.extend([0, 2, 0, 2]);
    spec.extend(1u32.to_le_bytes());
    spec.extend(0x000cu16.to_le_bytes());
    spec.extend(48u16.to_le_bytes());
    spec.push(0);
    let mut b = 0u32.to_le_bytes().to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend([0u8; 20]);
    b.extend(u32::try_from(spec.len()).unwrap().to_le_bytes());
    b.extend(spec);
    let mut event = |index: u32, ty: u32, digest: &[u8; 48], data: &[u8]| {
        b.extend(index.to_le_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend(0x000cu16.to_le_bytes());
        b.extend(digest);
        b.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
        b.extend(data);
    };
    // TDVF logs the startup locality / TCG_Sp800_155_PlatformId as EV_NO_ACTION: never
    // extended.
    event(1, 3, &[0; 48], b"StartupLocality\0\0");
    for e in events {
        event(u32::from(e.rtmr) + 1, e.event_type, &e.digest, &e.data);
    }
    b.resize(b.len() + padding, 0xff);
    b
}

/// The RTMRs `events` extend, from zero.
pub fn replay(events: &[TdEvent]) -> [[u8; 48]; 4] {
    let mut r = [[0u8; 48]; 4];
    for e in events {
        let v = &mut r[usize::from(e.rtmr)];
        let mut h = Sha384::new();
        h.update(*v);
        h.update(e.digest);
        *v = h.finalize().into();
    }
    r
}
