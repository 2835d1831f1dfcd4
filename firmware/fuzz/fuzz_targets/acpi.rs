//! QEMU ACPI table blobs: the table walk and the derived RSDP and loader script.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cvm_firmware::tdx::acpi::Tables::derive(data);
});
