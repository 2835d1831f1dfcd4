//! Reference-value, policy and event-log files (SNP and TDX) on arbitrary text.
#![no_main]

use cvm_attest::snp::appraise::{Policy, Reference};
use cvm_attest::tdx::appraise as tdx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Reference::parse(text);
        let _ = Policy::parse(text);
        let _ = tdx::Reference::parse(text);
        let _ = tdx::Policy::parse(text);
        if let Ok(log) = tdx::parse_event_log(text) {
            let _ = log.replay(0);
        }
    }
});
