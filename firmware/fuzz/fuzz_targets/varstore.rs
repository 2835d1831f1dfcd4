//! UEFI variable stores in a configuration firmware volume: the variables and the Secure
//! Boot variables TDVF measures.
#![no_main]

use cvm_firmware::tdx::varstore::{secure_boot_variables, variables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(vars) = variables(data) {
        let _ = secure_boot_variables(&vars);
    }
});
