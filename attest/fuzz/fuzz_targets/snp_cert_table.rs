//! The SNP certificate table on arbitrary bytes: parse, and rebuild what parsed.
#![no_main]

use cvm_attest::snp::cert_table::{build, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse(data) {
        let pairs: Vec<_> = entries.iter().map(|e| (e.kind, e.data)).collect();
        let rebuilt = build(&pairs).expect("a parsed table rebuilds");
        let again = parse(&rebuilt).expect("a built table parses");
        assert_eq!(again, entries);
    }
});
