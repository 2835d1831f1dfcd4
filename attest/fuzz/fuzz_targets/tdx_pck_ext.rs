//! The PCK certificate's SGX extensions (DER) on arbitrary bytes.
#![no_main]

use cvm_attest::tdx::pck::SgxExtensions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SgxExtensions::parse(data);
});
