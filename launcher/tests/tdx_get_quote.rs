//! A TD's GetQuote, for real on this machine: a QGS-protocol server on a Unix socket
//! (started here) answers with a real quote from ../shared/vectors; the TDX backend's
//! handler, fed the guest's buffer as KVM delivers it, writes back a buffer whose quote
//! `cvm verify` accepts with that case's collateral. Malformed or missing replies give
//! the TD an error status and leave the VMM running.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

mod common;
/// The attesting guest's GetQuote buffer code (launcher/guest/attest), as the TD runs it.
#[path = "../guest/attest/src/td_quote.rs"]
mod td_quote;

use common::{cvm, qgs, qgs_response as response, vectors};
use cvm_launcher::vmm::backend::Runtime;
use cvm_launcher::vmm::tdx::get_quote;
use cvm_launcher::vmm::tdx::qgs::QgsAddr;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Guest RAM at [0, 16 MiB), as the VMM's shared mapping shows it.
#[derive(Default)]
struct Ram(Mutex<BTreeMap<u64, u8>>);

impl Runtime for Ram {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|e| e <= 16 << 20)
    }
    fn set_private(&self, _: u64, _: u64, _: bool) -> Result<(), i32> {
        Ok(())
    }
    fn discard(&self, _: u64, _: u64, _: bool) -> Result<(), i32> {
        Ok(())
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), i32> {
        let mut m = self.0.lock().unwrap();
        for (a, b) in (gpa..).zip(data) {
            m.insert(a, *b);
        }
        Ok(())
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), i32> {
        let m = self.0.lock().unwrap();
        for (a, b) in (gpa..).zip(buf.iter_mut()) {
            *b = m.get(&a).copied().unwrap_or(0);
        }
        Ok(())
    }
    fn interrupt(&self, _: u32, _: u8) -> Result<(), i32> {
        Ok(())
    }
}

const BUF: u64 = 0x10_0000;
const SIZE: u64 = 0x4000;
const SUCCESS: u64 = 0;
const INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
const ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;
const STATUS_ERROR: u64 = 0x8000_0000_0000_0000;
const QGS_UNAVAILABLE: u64 = 0x8000_0000_0000_0001;

/// The guest's buffer: version 1, status 0, in_len 1024, a TDREPORT.
fn guest_buffer(ram: &Ram, version: u64) -> Vec<u8> {
    let report: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let mut h = Vec::new();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    h.extend_from_slice(&1024u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    ram.write(BUF, &h).unwrap();
    ram.write(BUF + 24, &report).unwrap();
    report
}

fn u64_at(ram: &Ram, gpa: u64) -> u64 {
    let mut b = [0u8; 8];
    ram.read(gpa, &mut b).unwrap();
    u64::from_le_bytes(b)
}

#[test]
fn a_real_quote_comes_back_and_verifies() {
    let Some(v) = vectors() else { return };
    let case = v.join("tdx/tdx-v4-phala-b0c06f-uptodate");
    let quote = std::fs::read(case.join("quote.bin")).unwrap();
    let ram = Ram::default();
    let report = guest_buffer(&ram, 1);
    let q = quote.clone();
    let addr = qgs("real", move |req| {
        // GET_QUOTE_REQ: version 1.1, type 0, the whole size, report_size 1024, no IDs,
        // and exactly the guest's TDREPORT.
        assert_eq!(&req[..8], &[1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(
            u32::from_le_bytes(req[8..12].try_into().unwrap()) as usize,
            req.len()
        );
        assert_eq!(u32::from_le_bytes(req[16..20].try_into().unwrap()), 1024);
        assert_eq!(&req[24..], &report[..]);
        response(1, 0, &q)
    });
    let (ret, problem) = get_quote(&ram, BUF, SIZE, Some(&addr));
    assert_eq!((ret, problem), (SUCCESS, None));
    assert_eq!(u64_at(&ram, BUF + 8), 0, "status SUCCESS");
    let mut len = [0u8; 4];
    ram.read(BUF + 20, &mut len).unwrap();
    let out_len = u32::from_le_bytes(len) as usize;
    assert_eq!(out_len, quote.len());
    let mut back = vec![0u8; out_len];
    ram.read(BUF + 24, &mut back).unwrap();
    assert_eq!(back, quote);
    // What the TD got is a quote that verifies.
    let file = common::temp_file("get-quote.bin", &back);
    let out = cvm(&[
        "verify",
        "--evidence",
        file.to_str().unwrap(),
        "--collateral",
        case.join("collateral.json").to_str().unwrap(),
        "--at",
        "2025-07-01T00:00:00Z",
        "--no-reference",
    ]);
    common::succeeded(&out);
}

#[test]
fn bad_replies_and_bad_buffers_give_the_td_an_error_status() {
    let quote = vec![0x5a; 100];
    for (name, reply) in [
        ("wrong-type", response(0, 0, &quote)),
        ("qgs-error", response(1, 0x12, &quote)),
        ("short", response(1, 0, &quote)[..20].to_vec()),
        ("oversized", {
            let mut r = response(1, 0, &quote);
            r[..4].copy_from_slice(&(1u32 << 24).to_be_bytes());
            r
        }),
        ("too-big-for-the-buffer", response(1, 0, &vec![1; 0x4000])),
        ("no-reply", Vec::new()),
    ] {
        let ram = Ram::default();
        guest_buffer(&ram, 1);
        let addr = qgs(name, move |_| reply);
        let (ret, problem) = get_quote(&ram, BUF, SIZE, Some(&addr));
        assert_eq!(ret, SUCCESS, "{name}");
        assert!(problem.is_some(), "{name}");
        assert_eq!(u64_at(&ram, BUF + 8), STATUS_ERROR, "{name}: {problem:?}");
    }
    // No QGS: the documented status, at once.
    let ram = Ram::default();
    guest_buffer(&ram, 1);
    assert_eq!(get_quote(&ram, BUF, SIZE, None).0, SUCCESS);
    assert_eq!(u64_at(&ram, BUF + 8), QGS_UNAVAILABLE);
    // A QGS that is not there.
    let gone = QgsAddr::Unix(std::env::temp_dir().join("cvm-no-such-qgs.sock"));
    assert_eq!(get_quote(&ram, BUF, SIZE, Some(&gone)).0, SUCCESS);
    assert_eq!(u64_at(&ram, BUF + 8), STATUS_ERROR);
    // vsock: no QGS listens at CID 1 (the local CID) port 9 here, or the host has no
    // vsock at all; either way the TD gets the ERROR status.
    let vsock = QgsAddr::Vsock { cid: 1, port: 9 };
    assert_eq!(get_quote(&ram, BUF, SIZE, Some(&vsock)).0, SUCCESS);
    assert_eq!(u64_at(&ram, BUF + 8), STATUS_ERROR);
    // The guest's own values.
    assert_eq!(get_quote(&ram, BUF, 0, None).0, INVALID_OPERAND);
    assert_eq!(get_quote(&ram, BUF + 8, SIZE, None).0, ALIGN_ERROR);
    assert_eq!(get_quote(&ram, BUF, SIZE + 8, None).0, ALIGN_ERROR);
    assert_eq!(
        get_quote(&ram, 16 << 20, SIZE, None).0,
        INVALID_OPERAND,
        "outside RAM"
    );
    assert_eq!(
        get_quote(&ram, BUF, 1 << 20, None).0,
        INVALID_OPERAND,
        "over 128 KiB"
    );
    let ram = Ram::default();
    guest_buffer(&ram, 2);
    assert_eq!(
        get_quote(&ram, BUF, SIZE, None).0,
        INVALID_OPERAND,
        "version 2"
    );
}

#[test]
fn the_attesting_guests_buffer_gets_its_quote_through_the_vmm() {
    let Some(v) = vectors() else { return };
    let quote = std::fs::read(v.join("tdx/tdx-v4-phala-b0c06f-uptodate/quote.bin")).unwrap();
    let tdreport: [u8; 1024] = std::array::from_fn(|i| (i % 253) as u8);
    // The TD's buffer, built by the guest's code (the size the guest uses, 16 KiB), as
    // the VMM sees it in shared memory.
    let run = |qgs: Option<&QgsAddr>| {
        let ram = Ram::default();
        let mut buf = vec![0xee; SIZE as usize];
        assert!(td_quote::request(&mut buf, &tdreport));
        ram.write(BUF, &buf).unwrap();
        let (ret, _) = get_quote(&ram, BUF, SIZE, qgs);
        assert_eq!(ret, SUCCESS);
        ram.read(BUF, &mut buf).unwrap();
        // cvm's VMM answers before the TD resumes: never left in flight.
        assert_ne!(td_quote::status(&buf), td_quote::IN_FLIGHT);
        buf
    };
    let q = quote.clone();
    let addr = qgs("attesting-guest", move |req| {
        assert_eq!(
            &req[24..],
            &tdreport[..],
            "the QGS gets the guest's TDREPORT"
        );
        response(1, 0, &q)
    });
    let buf = run(Some(&addr));
    assert_eq!(td_quote::quote(&buf), Ok(&quote[..]));
    // The VMM's failures reach the guest as its status.
    assert_eq!(
        td_quote::quote(&run(None)),
        Err(td_quote::QuoteError::Status(QGS_UNAVAILABLE))
    );
    let big = qgs("attesting-guest-big", |_| response(1, 0, &vec![1; 0x4000]));
    assert_eq!(
        td_quote::quote(&run(Some(&big))),
        Err(td_quote::QuoteError::Status(STATUS_ERROR))
    );
    // A buffer too small for the request is refused by the guest itself.
    assert!(!td_quote::request(&mut [0u8; 1000], &tdreport));
}
