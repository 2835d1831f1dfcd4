//! What the attesting guest (launcher/guest/attest) parses from its host, from arbitrary
//! bytes: the SNP guest request's response (`snp_msg::open_report_response`, header and
//! tag checks before decryption), the TD's completed GetQuote buffer
//! (`td_quote::quote`) and the extended request's certificate table
//! (`snp_msg::cert_table_len`); errors, never a panic. A response the verifier's code seals
//! around a fuzzed report opens to that report.
#![no_main]

#[path = "../../../launcher/guest/attest/src/snp_msg.rs"]
mod snp_msg;
#[path = "../../../launcher/guest/attest/src/td_quote.rs"]
mod td_quote;

use cvm_attest::snp::guest_msg::{MSG_REPORT_RSP, Message, report_response, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [0x5au8; 32];
    let seqno = u64::from(data.first().copied().unwrap_or(0));
    let _ = snp_msg::open_report_response(&key, seqno, &mut data.to_vec());
    if let Ok(q) = td_quote::quote(data) {
        assert!(!q.is_empty() && q.len() + td_quote::HEADER_LEN <= data.len());
    }
    let _ = td_quote::status(data);
    assert!(snp_msg::cert_table_len(data) <= data.len());
    if data.len() >= snp_msg::REPORT_LEN {
        let report = &data[..snp_msg::REPORT_LEN];
        let m = Message {
            seqno: seqno + 1,
            msg_type: MSG_REPORT_RSP,
            msg_version: 1,
            vmpck: 0,
            payload: report_response(0, report),
        };
        let mut sealed = seal(&key, &m).expect("a report response seals");
        let opened = snp_msg::open_report_response(&key, seqno, &mut sealed);
        assert_eq!(opened.as_ref().map(|r| &r[..]), Ok(report));
    }
});
