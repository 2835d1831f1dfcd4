//! The TCG crypto-agile log reader on a real firmware log (tests/fixtures/tcg/README.md
//! gives its provenance): every event read, digests that reproduce from their data where
//! the format says they must, and the PCRs the events replay to equal to what an
//! independent tool (tpm2_eventlog 5.4) computed from the same file. And a real TD's
//! events (dstack's CCEL sample): read back with their descriptions, and against cvm's
//! TDVF recipe, event for event.
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

/// The events of a real TD's CCEL log (tests/fixtures/tcg/dstack-td-ccel-events.tsv):
/// RTMR, type, digest, data.
fn dstack_td_events() -> Vec<cvm_tests::tcg_test_log::TdEvent> {
    let path = cvm_tests::crate_dir().join("fixtures/tcg/dstack-td-ccel-events.tsv");
    cvm_tests::read_tsv(&path)
        .iter()
        .map(|r| cvm_tests::tcg_test_log::TdEvent {
            rtmr: r["mr_index"].parse::<u8>().unwrap() - 1,
            event_type: r["type"].parse().unwrap(),
            digest: hex::decode(&r["sha384"]).unwrap().try_into().unwrap(),
            data: hex::decode(&r["data"]).unwrap(),
        })
        .collect()
}

/// A TD's log in the CCEL format, written from the real events, reads back event for
/// event, each described from its own data.
#[test]
fn a_real_tds_events_read_back_with_their_descriptions() {
    let events = dstack_td_events();
    assert_eq!(events.len(), 18);
    let bytes = cvm_tests::tcg_test_log::encode(&events, 4096);
    let log = eventlog::GuestLog::parse(&bytes).unwrap();
    assert_eq!(log.len, bytes.len() - 4096, "the 0xFF padding ends the log");
    assert_eq!(log.no_action, 1);
    assert_eq!(log.events.len(), events.len());
    for (got, want) in log.events.iter().zip(&events) {
        assert_eq!(got.rtmr, want.rtmr);
        assert_eq!(got.event_type.value(), want.event_type);
        assert_eq!(got.digest, want.digest);
    }
    let described = |i: usize| log.events[i].description.as_str();
    for (i, what) in [
        (0, "TdxTable"),
        (2, "SecureBoot"),
        (3, "PK"),
        (4, "KEK"),
        (5, "db"),
        (6, "dbx"),
        (8, "ACPI DATA"),
        (11, "kernel"),
        (12, "BootOrder"),
        (13, "Boot0000"),
        (14, "Calling EFI Application from Boot Option"),
        (17, "Exit Boot Services Returned with Success"),
    ] {
        assert!(described(i).contains(what), "event {i}: {:?}", described(i));
    }
}

/// cvm's TDVF recipe (before edk2-stable202505, what this TD's firmware predates: it has
/// no fw_cfg cache events) against the real TD: per RTMR the plan has the same events in
/// the same order, the events of fixed content (separators, actions, BootOrder, Boot0000)
/// have the real TD's digests, empty Secure Boot variables digest as the TD's did, and the
/// plan's departures from the real log are only in what the two launches measured
/// differently (TD HOB, CFV, the enrolled keys of the .ms image, ACPI tables, kernel).
#[test]
fn cvms_tdvf_recipe_has_a_real_tds_events() {
    use cvm_firmware::guid;
    use cvm_firmware::guid::Guid;
    use cvm_firmware::measure::tdx::{Event, variable_event_digest};
    let Some(reference) = cvm_tests::reference_dir() else {
        return;
    };
    let inputs = reference.join("inputs");
    let path = |p: &str| inputs.join(p).display().to_string();
    let (code, plan, err) = cvm_tests::cvm_json(&[
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &path("sid/OVMF.inteltdx.ms.fd"),
        "--kernel",
        &path("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        "--acpi-tables",
        &path("tdx-acpi/canonical-defaults/acpi_tables.bin"),
        "--tdvf-recipe",
        "before-202505",
        "--explain",
    ]);
    assert_eq!(code, 0, "{err}");
    let plan: Vec<Event> = serde_json::from_value(plan["events"].clone()).unwrap();
    let real = eventlog::GuestLog::parse(&cvm_tests::tcg_test_log::encode(&dstack_td_events(), 0))
        .unwrap()
        .events;
    for rtmr in [0, 1] {
        let types = |events: &[Event]| -> Vec<u32> {
            events
                .iter()
                .filter(|e| e.rtmr == rtmr)
                .map(|e| e.event_type.value())
                .collect()
        };
        assert_eq!(types(&plan), types(&real), "RTMR {rtmr}");
    }
    for what in [
        "separator",
        "Calling EFI Application from Boot Option",
        "Exit Boot Services Invocation",
        "Exit Boot Services Returned with Success",
        "BootOrder",
        "Boot0000",
    ] {
        for rtmr in [0, 1] {
            let find = |events: &[Event]| {
                events
                    .iter()
                    .find(|e| e.rtmr == rtmr && e.description.contains(what))
                    .map(|e| e.digest)
            };
            assert_eq!(find(&plan), find(&real), "{what} in RTMR {rtmr}");
        }
    }
    // The TD's Secure Boot variables were empty: their events digest the UEFI variable
    // data structure with no data, which cvm computes from the GUID and name alone.
    const GLOBAL: Guid = guid!("8be4df61-93ca-11d2-aa0d-00e098032b8c");
    const IMAGE_SECURITY: Guid = guid!("d719b2cb-3d3a-4596-a3bc-dad00e67656f");
    for (i, guid, name) in [
        (2, GLOBAL, "SecureBoot"),
        (3, GLOBAL, "PK"),
        (4, GLOBAL, "KEK"),
        (5, IMAGE_SECURITY, "db"),
        (6, IMAGE_SECURITY, "dbx"),
    ] {
        assert_eq!(
            variable_event_digest(&guid, name, &[]),
            real[i].digest,
            "{name}"
        );
    }
    let departed: Vec<String> = [0, 1]
        .iter()
        .flat_map(|&r| eventlog::departures(r, &plan, &real))
        .map(|d| {
            assert_eq!(d.kind, eventlog::DepartureKind::Digest, "{d:?}");
            d.plan.unwrap().description
        })
        .collect();
    let expected = [
        "TD HOB",
        "CFV",
        "SecureBoot",
        "PK",
        "KEK",
        "db",
        "dbx",
        "etc/table-loader",
        "etc/acpi/rsdp",
        "etc/acpi/tables",
        "kernel",
    ];
    assert_eq!(departed.len(), expected.len(), "{departed:?}");
    for (d, e) in departed.iter().zip(expected) {
        assert!(d.contains(e), "{d} is not {e}");
    }
}
