//! Console output to the evidence-line scanner and parser, in arbitrary chunks: errors or
//! lines, never a panic; whatever parses re-encodes to a line that parses the same.
#![no_main]

use base64::Engine;
use cvm_attest::exchange::{LineScanner, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (a, b) = rest.split_at(at);
    let mut scanner = LineScanner::default();
    let mut lines = Vec::new();
    scanner.feed(a, &mut |r| lines.push(r));
    scanner.feed(b, &mut |r| lines.push(r));
    if let Ok(l) = parse_line(rest) {
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let mut again = format!("CVM-EVIDENCE 1 {} {}", l.kind.name(), b64(&l.evidence));
        if let Some(aux) = &l.aux {
            again.push(' ');
            again.push_str(&b64(aux));
        }
        assert_eq!(parse_line(again.as_bytes()).as_ref(), Ok(&l));
    }
});
