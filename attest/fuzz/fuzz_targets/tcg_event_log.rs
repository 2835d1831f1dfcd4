//! Bytes to the TCG crypto-agile log reader and the TD log reader: an error naming a
//! byte inside the input, or a log no longer than the input whose events all lie in it;
//! and the departure finder on what was read, never a panic.
#![no_main]

use cvm_attest::eventlog::{GuestLog, departures, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(log) => {
            assert!(log.len <= data.len());
            assert!(log.events.iter().all(|e| e.offset < log.len));
        }
        Err(e) => assert!(e.offset <= data.len()),
    }
    if let Ok(g) = GuestLog::parse(data) {
        let half = g.events.len() / 2;
        let (a, b) = g.events.split_at(half);
        for r in 0..4 {
            let _ = departures(r, a, b);
            let _ = g.replay(r);
        }
    }
});
