//! DCAP quotes on arbitrary bytes: the parser, then the whole verification without
//! collateral (PCK chain PEM, SGX extensions, signatures, appraisal).
#![no_main]

use cvm_attest::Time;
use cvm_attest::tdx::Verifier;
use cvm_attest::tdx::appraise::Policy;
use cvm_attest::tdx::pck::IntelRoot;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn root() -> &'static IntelRoot {
    static ROOT: OnceLock<IntelRoot> = OnceLock::new();
    ROOT.get_or_init(|| IntelRoot::builtin().expect("the built-in root parses"))
}

fuzz_target!(|data: &[u8]| {
    if cvm_attest::tdx::quote::Quote::parse(data).is_ok() {
        let policy = Policy::default();
        let _ = Verifier {
            root: root(),
            collateral: None,
            reference: None,
            policy: &policy,
            event_log: None,
            plan_log: None,
 cache: &cvm_attest::Cache::default(),
            at: Time(1_750_000_000),
        }
        .verify(data);
    }
});
