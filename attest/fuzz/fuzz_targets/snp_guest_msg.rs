//! SNP guest messages from arbitrary bytes: open (header rules, tag) with a fixed key,
//! and the report request and response payloads; errors, never a panic. What opens
//! re-seals to the same bytes.
#![no_main]

use cvm_attest::snp::guest_msg::{ReportRequest, open, parse_report_response, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [0x5au8; 32];
    if let Ok(m) = open(&key, data) {
        let again = seal(&key, &m).expect("an opened message re-seals");
        assert_eq!(open(&key, &again).as_ref(), Ok(&m));
    }
    let _ = ReportRequest::decode(data);
    let _ = parse_report_response(data);
    // Messages sealed from fuzzed payloads always open.
    if let Some((&seq, payload)) = data.split_first() {
        let m = cvm_attest::snp::guest_msg::Message {
            seqno: u64::from(seq),
            msg_type: 5,
            msg_version: 1,
            vmpck: seq & 3,
            payload: payload.to_vec(),
        };
        if let Ok(sealed) = seal(&key, &m) {
            if payload.len() % 16 == 0 {
                assert_eq!(open(&key, &sealed).as_ref(), Ok(&m));
            }
        }
    }
});
