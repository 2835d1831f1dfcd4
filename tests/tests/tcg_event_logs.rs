//! The TCG crypto-agile log reader on a real firmware log (tests/fixtures/tcg/README.md
//! gives its provenance): every event read, digests that reproduce from their data where
//! the format says they must, and the PCRs the events replay to equal to what an
//! independent tool (tpm2_eventlog 5.4) computed from the same file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::eventlog::{self, ALG_SHA1, ALG_SHA256};
use sha2::{Digest, Sha256};

fn bootlog() -> Vec<u8> {
    let path = cvm_tests::crate_dir().join("fixtures/tcg/fedora35-tpm2-bootlog.bin");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `tpm2_eventlog fedora35-tpm2-bootlog.bin` (tpm2-tools 5.4), its `pcrs: sha256:`.
const PCRS_SHA256: [(u32, &str); 10] = [
    (
        0,
        "de5bae1801b1055914582f526fea0aa68e7dfacb4a5ad6ce55f8b2b6287c475c",
    ),
    (
        1,
        "3d086aee80eff0b9d930ce43ec0d3ecbe73ea2f188e545fecc8d97e9acf9f61f",
    ),
    (
        2,
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
    ),
    (
        3,
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
    ),
    (
        4,
        "e79ebf94d2013d91808b2b250fcfb08260f73e6fd636704c0783edb641baecdd",
    ),
    (
        5,
        "405f63fb377a6992ce75213c5d4e847bdfdbf2523df3774573de4e07c656a143",
    ),
    (
        6,
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
    ),
    (
        7,
        "730777cfa2b4c2cf67a54ce7c80d7d15cebd0a443d1bc320e43fe338812ea67b",
    ),
    (
        8,
        "4788238034043585fd5254cd186d90eca91d9911e2d7b1bdde9eee81704306db",
    ),
    (
        9,
        "6e22c7993f14c2313665a86edc9998ead5361d95c841dacccef6a52bdb4bf935",
    ),
];

#[test]
fn a_real_tpm_log_replays_to_the_pcrs_tpm2_eventlog_computes() {
    let bytes = bootlog();
    let log = eventlog::parse(&bytes).expect("the log reads");
    assert_eq!(log.len, bytes.len());
    assert_eq!(log.events.len(), 100);
    assert_eq!(log.spec.algorithms, [(ALG_SHA1, 20), (ALG_SHA256, 32)]);
    for (pcr, want) in PCRS_SHA256 {
        let mut value = [0u8; 32];
        for e in log
            .events
            .iter()
            .filter(|e| e.index == pcr && e.event_type != 3)
        {
            let mut h = Sha256::new();
            h.update(value);
            h.update(e.digest(ALG_SHA256).expect("a SHA-256 digest"));
            value = h.finalize().into();
        }
        assert_eq!(hex::encode(value), want, "PCR {pcr}");
    }
}

#[test]
fn digests_of_separators_and_actions_reproduce_from_their_data() {
    // EV_SEPARATOR (4) and EV_EFI_ACTION (0x80000007) events are measured as the hash of
    // their own data: the reader must have split digests and data at the right bytes.
    let log = eventlog::parse(&bootlog()).expect("the log reads");
    let mut checked = 0;
    for e in log
        .events
        .iter()
        .filter(|e| matches!(e.event_type, 4 | 0x8000_0007))
    {
        let got = e.digest(ALG_SHA256).expect("a SHA-256 digest");
        assert_eq!(
            got,
            Sha256::digest(&e.data).as_slice(),
            "event at {:#x}",
            e.offset
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} separators and actions");
}

#[test]
fn a_tpm_log_is_not_taken_for_a_td_log_and_no_cut_panics() {
    let bytes = bootlog();
    let e = eventlog::GuestLog::parse(&bytes).unwrap_err().to_string();
    assert!(e.contains("no SHA-384 (SHA-1, SHA-256)"), "{e}");
    for cut in (0..bytes.len()).step_by(7) {
        let _ = eventlog::parse(&bytes[..cut]);
    }
}
