//! Reference-value and policy files on arbitrary text.
#![no_main]

use cvm_attest::snp::appraise::{Policy, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Reference::parse(text);
        let _ = Policy::parse(text);
    }
});
