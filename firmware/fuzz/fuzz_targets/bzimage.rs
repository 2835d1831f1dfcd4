//! The bzImage setup-header parser on arbitrary bytes.
#![no_main]

use cvm_firmware::bzimage::BzImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = BzImage::parse(data);
});
