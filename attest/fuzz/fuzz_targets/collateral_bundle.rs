//! Offline collateral bundles (tar with a manifest) on arbitrary bytes: read, and when
//! they read, written back and read again to the same manifest and files.
#![no_main]

use cvm_attest::bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::is_tar(data);
    if let Ok((manifest, files)) = bundle::read(data) {
        let mut files: Vec<(String, Vec<u8>)> = files.into_iter().collect();
        files.sort();
        if let Ok(bytes) = bundle::write(&manifest, &files) {
            let (again, back) = bundle::read(&bytes).expect("a written bundle reads");
            assert_eq!(again, manifest);
            assert_eq!(back.len(), files.len());
        }
    }
});
