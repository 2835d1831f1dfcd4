//! Certificate files (PEM or DER), the AMD extensions, and CRLs on arbitrary bytes.
#![no_main]

use cvm_attest::snp::certs::AmdExtensions;
use cvm_attest::x509::{Cert, Crl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = Cert::parse_file(data, "fuzz") {
        for c in &certs {
            let _ = AmdExtensions::read(c);
            let _ = c.valid_at(cvm_attest::Time(0));
            let _ = c.verify_signed_by(c);
            let _ = c.p384_public_key();
        }
    }
    if let Ok(crl) = Crl::parse(data, "fuzz") {
        let _ = crl.window();
    }
});
