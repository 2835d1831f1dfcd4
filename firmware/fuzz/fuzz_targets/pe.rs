//! PE/COFF Authenticode digests and QEMU's setup-header patch of arbitrary kernels: an
//! error or a digest, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cvm_firmware::pe::authenticode_sha384(data, "kernel");
    let _ = cvm_firmware::bzimage::qemu_patch(data, data.len() / 3, 2 << 30, 0x28000);
});
