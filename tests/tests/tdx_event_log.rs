//! A guest's firmware event log against the plan's, event by event: `cvm measure --tee
//! tdx --event-log-out` predicts the events of a direct boot through trixie's OVMF; a
//! guest log built from those events, with one changed, one removed and one added, goes
//! with a quote (on the Intel test PKI, trusted through `--root`) whose RTMRs that log
//! replays to; `cvm verify --event-log --plan-log` must name exactly those three
//! departures. And `cvm guest attest` sends a TD's CCEL log, without its padding.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::exchange::{EvidenceKind, parse_line};
use cvm_firmware::measure::tdx::EventType;
use cvm_tests::tcg_test_log::{self, TdEvent};
use cvm_tests::tdx_test_pki::{collateral_json, default_td_body, good_chain, pki, quote};
use cvm_tests::{crate_dir, reference_dir};
use std::path::{Path, PathBuf};

fn run(args: &[&str]) -> (u8, Vec<u8>, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cvm_launcher::cli::run(args.to_vec(), &mut out, &mut err).code();
    (code, out, String::from_utf8_lossy(&err).into_owned())
}

fn json(out: &[u8], err: &str) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {err}"))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cvm-evlog-{}-{name}", std::process::id()))
}

/// The plan's log of the direct boot of row tdx-024 (shared/reference/tdx_ref.tsv).
fn plan_log(inputs: &Path) -> (PathBuf, serde_json::Value) {
    let p = |rel: &str| inputs.join(rel).display().to_string();
    let log = temp("plan.json");
    let (code, out, err) = run(&[
        "cvm",
        "--format",
        "json",
        "measure",
        "--tee",
        "tdx",
        "--firmware",
        &p("trixie/OVMF.fd"),
        "--kernel",
        &p("amd64/vmlinuz-6.1.0-56-cloud-amd64"),
        "--initrd",
        &p("initrd-small.img"),
        "--cmdline",
        "console=ttyS0 root=/dev/vda1 ro",
        "--memory",
        "2048M",
        "--acpi-tables",
        &p("tdx-acpi/canonical-defaults/acpi_tables.bin"),
        "--event-log-out",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let measured = json(&out, &err);
    assert!(
        measured["rtmr"][0].is_string(),
        "the plan determines RTMR 0: {measured}"
    );
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    (log, plan)
}

/// The plan's events as a guest's firmware would log them (the description as data).
fn guest_events(plan: &serde_json::Value) -> Vec<TdEvent> {
    plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| TdEvent {
            rtmr: u8::try_from(e["rtmr"].as_u64().unwrap()).unwrap(),
            event_type: serde_json::from_value::<EventType>(e["type"].clone())
                .unwrap()
                .value(),
            digest: hex::decode(e["digest"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
            data: e["description"].as_str().unwrap().as_bytes().to_vec(),
        })
        .collect()
}

/// A quote with the plan's MRTD and the RTMRs `events` replay to.
fn quote_for(plan: &serde_json::Value, events: &[TdEvent]) -> PathBuf {
    let mut td = default_td_body();
    td[136..184].copy_from_slice(&hex::decode(plan["mrtd"].as_str().unwrap()).unwrap());
    for (i, r) in tcg_test_log::replay(events).iter().enumerate() {
        td[328 + 48 * i..376 + 48 * i].copy_from_slice(r);
    }
    let path = temp(&format!("quote-{}.bin", events.len()));
    std::fs::write(&path, quote(&good_chain(), &td)).unwrap();
    path
}

fn verify(q: &Path, guest_log: &Path, plan: &Path) -> (u8, serde_json::Value) {
    let collateral = temp("collateral.json");
    std::fs::write(
        &collateral,
        collateral_json(&pki("test-tcb.der"), "test-pck-crl.der"),
    )
    .unwrap();
    let root = crate_dir().join("fixtures/tdx-test-pki/test-root.der");
    let (code, out, err) = run(&[
        "cvm",
        "--format",
        "json",
        "verify",
        "--tee",
        "tdx",
        "--evidence",
        q.to_str().unwrap(),
        "--event-log",
        guest_log.to_str().unwrap(),
        "--plan-log",
        plan.to_str().unwrap(),
        "--collateral",
        collateral.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--at",
        "2026-03-01T00:00:00Z",
    ]);
    let full = json(&out, &err);
    // One piece of evidence: its verdict; an error: the error report.
    match full.get("verdicts") {
        Some(v) => (code, v[0].clone()),
        None => (code, full),
    }
}

fn check<'v>(v: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {v}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
}

/// UEFI_IMAGE_LOAD_EVENT (TCG PC Client PFP 10.2.3) for an image of `len` bytes loaded
/// from the file `path`: a media file path device path node, then the end node.
fn image_load_event(path: &str, len: u64) -> Vec<u8> {
    let name: Vec<u8> = path
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut dp = vec![4, 4];
    dp.extend(u16::try_from(name.len() + 4).unwrap().to_le_bytes());
    dp.extend(name);
    dp.extend([0x7f, 0xff, 4, 0]);
    let mut e = 0x1000_0000u64.to_le_bytes().to_vec();
    e.extend(len.to_le_bytes());
    e.extend(0u64.to_le_bytes());
    e.extend(u64::try_from(dp.len()).unwrap().to_le_bytes());
    e.extend(dp);
    e
}

fn index_of(events: &[TdEvent], rtmr: u8, what: &str) -> (usize, usize) {
    let all = events
        .iter()
        .position(|e| e.rtmr == rtmr && e.data.starts_with(what.as_bytes()))
        .unwrap_or_else(|| panic!("no RTMR{rtmr} event {what:?}"));
    let within = events[..all].iter().filter(|e| e.rtmr == rtmr).count();
    (all, within)
}

#[test]
fn the_guests_log_matching_the_plan_passes_with_no_departures() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let (plan_path, plan) = plan_log(&reference.join("inputs"));
    let events = guest_events(&plan);
    let log = temp("same.bin");
    std::fs::write(&log, tcg_test_log::encode(&events, 4096)).unwrap();
    let (code, v) = verify(&quote_for(&plan, &events), &log, &plan_path);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verdict"], "pass");
    for c in [
        "reference.mrtd",
        "reference.rtmr0",
        "reference.rtmr1",
        "reference.rtmr2",
    ] {
        assert_eq!(check(&v, c)["outcome"], "pass", "{c}: {v}");
    }
    for c in ["event_log.rtmr0", "event_log.rtmr1", "event_log.rtmr2"] {
        assert_eq!(check(&v, c)["outcome"], "pass", "{c}: {v}");
    }
    assert!(v.get("departures").is_none(), "{v}");
}

#[test]
fn a_changed_a_removed_and_an_added_event_are_each_named() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let (plan_path, plan) = plan_log(&reference.join("inputs"));
    let mut events = guest_events(&plan);
    // RTMR 0: other ACPI tables than the plan's.
    let (acpi, acpi_at) = index_of(&events, 0, "fw_cfg etc/acpi/tables");
    events[acpi].digest = [0xac; 48];
    events[acpi].data = b"ACPI DATA".to_vec();
    // RTMR 1: an extra boot application after the kernel.
    let (kernel, kernel_at) = index_of(&events, 1, "kernel");
    events.insert(
        kernel + 1,
        TdEvent {
            rtmr: 1,
            event_type: 0x8000_0003,
            digest: [0xee; 48],
            data: image_load_event("\\EFI\\extra.efi", 4096),
        },
    );
    // RTMR 2: no initrd.
    let (initrd, initrd_at) = index_of(&events, 2, "initrd");
    events.remove(initrd);
    let log = temp("changed.bin");
    std::fs::write(&log, tcg_test_log::encode(&events, 0)).unwrap();
    let (code, v) = verify(&quote_for(&plan, &events), &log, &plan_path);
    assert_eq!(code, 5, "policy-rejected: {v}");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(check(&v, "reference.mrtd")["outcome"], "pass");
    // The guest's log is the TD's (it replays to the quote), so it explains the quote.
    for i in 0..3 {
        assert_eq!(
            check(&v, &format!("event_log.rtmr{i}"))["outcome"],
            "pass",
            "{v}"
        );
        assert_eq!(
            check(&v, &format!("reference.rtmr{i}"))["outcome"],
            "fail",
            "{v}"
        );
    }
    let d = v["departures"].as_array().unwrap();
    assert_eq!(d.len(), 3, "{v}");
    assert_eq!(
        (&d[0]["rtmr"], &d[0]["kind"], &d[0]["event"], &d[0]["type"]),
        (
            &0.into(),
            &"digest".into(),
            &acpi_at.into(),
            &"EV_PLATFORM_CONFIG_FLAGS".into()
        )
    );
    assert_eq!(d[0]["guest"]["description"], "ACPI DATA");
    assert_eq!(d[0]["guest"]["digest"], hex::encode([0xac; 48]));
    assert!(
        d[0]["plan"]["description"]
            .as_str()
            .unwrap()
            .starts_with("fw_cfg etc/acpi/tables")
    );
    assert_eq!(
        (&d[1]["rtmr"], &d[1]["kind"], &d[1]["event"]),
        (&1.into(), &"extra".into(), &(kernel_at + 1).into())
    );
    assert_eq!(
        d[1]["guest"]["description"],
        "image \\EFI\\extra.efi, 4096 bytes"
    );
    assert_eq!(
        (&d[2]["rtmr"], &d[2]["kind"], &d[2]["event"]),
        (&2.into(), &"missing".into(), &initrd_at.into())
    );
    assert!(
        d[2]["plan"]["description"]
            .as_str()
            .unwrap()
            .starts_with("initrd")
    );
    assert!(d[2].get("guest").is_none());
    let reason = check(&v, "reference.rtmr0")["reason"].as_str().unwrap();
    assert!(
        reason.contains("departs from the plan: RTMR0 event")
            && reason.contains("(EV_PLATFORM_CONFIG_FLAGS): a different digest"),
        "{reason}"
    );
}

#[test]
fn a_log_that_does_not_replay_to_the_quote_explains_nothing() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let (plan_path, plan) = plan_log(&reference.join("inputs"));
    let events = guest_events(&plan);
    let q = quote_for(&plan, &events);
    let mut forged = guest_events(&plan);
    forged[0].digest = [1; 48];
    let log = temp("forged.bin");
    std::fs::write(&log, tcg_test_log::encode(&forged, 0)).unwrap();
    let (code, v) = verify(&q, &log, &plan_path);
    assert_eq!(code, 5, "{v}");
    assert_eq!(check(&v, "event_log.rtmr0")["outcome"], "fail");
    assert!(v.get("departures").is_none(), "{v}");
    // A damaged log is refused as the input it is.
    let mut damaged = tcg_test_log::encode(&events, 0);
    damaged.truncate(damaged.len() - 3);
    std::fs::write(&log, damaged).unwrap();
    let (code, v) = verify(&q, &log, &plan_path);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event: data at byte"),
        "{v}"
    );
}

#[test]
fn guest_attest_sends_the_ccel_log_without_its_padding() {
    let dir = temp("tsm");
    std::fs::create_dir_all(dir.join("entry")).unwrap();
    let e = dir.join("entry");
    std::fs::write(e.join("provider"), "tdx_guest\n").unwrap();
    std::fs::write(e.join("generation"), "1\n").unwrap();
    std::fs::write(e.join("inblob"), []).unwrap();
    std::fs::write(e.join("outblob"), b"a quote").unwrap();
    std::fs::write(dir.join("nonce"), [7u8; 32]).unwrap();
    let events = vec![TdEvent {
        rtmr: 0,
        event_type: 4,
        digest: [3; 48],
        data: vec![0; 4],
    }];
    let log = tcg_test_log::encode(&events, 0);
    let ccel = dir.join("CCEL");
    std::fs::write(&ccel, tcg_test_log::encode(&events, 65536)).unwrap();
    let attest = |extra: &[&str]| {
        let mut a = vec![
            "cvm",
            "guest",
            "attest",
            "--tsm-entry",
            e.to_str().unwrap(),
            "--nonce-file",
            dir.join("nonce").to_str().unwrap(),
            "--to",
            dir.join("line").to_str().unwrap(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        std::fs::write(dir.join("line"), "").unwrap();
        let code = cvm_launcher::cli::run(a, &mut out, &mut err).code();
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        let text = String::from_utf8(std::fs::read(dir.join("line")).unwrap()).unwrap();
        parse_line(text.trim_end().as_bytes()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
    };
    let line = attest(&["--event-log", ccel.to_str().unwrap()]);
    assert_eq!(line.kind, EvidenceKind::Tdx);
    assert_eq!(line.evidence, b"a quote");
    assert_eq!(line.aux.as_deref(), Some(log.as_slice()));
    // Missing or damaged: the evidence goes alone.
    let line = attest(&["--event-log", dir.join("none").to_str().unwrap()]);
    assert_eq!(line.aux, None);
    std::fs::write(&ccel, &log[..log.len() - 1]).unwrap();
    let line = attest(&["--event-log", ccel.to_str().unwrap()]);
    assert_eq!(line.aux, None);
    let line = attest(&["--no-event-log"]);
    assert_eq!(line.aux, None);
    std::fs::remove_dir_all(&dir).ok();
}
