//! The README's tables of stable names agree with the code they document: the verdict's
//! check names (`CheckId`), the input limits (`InputKind`) and the exit codes
//! (`ExitCode`). A name cannot change in the JSON without the README changing with it.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::tests_outside_test_module,
    reason = "an integration test crate: every function is test code"
)]

use cvm_attest::CheckId;
use cvm_tests::crate_dir;

fn readme() -> String {
    std::fs::read_to_string(crate_dir().join("../README.md")).unwrap()
}

/// The first cell of each row of the table whose header row is `header`.
fn first_column(text: &str, header: &str) -> Vec<String> {
    let start = text
        .find(header)
        .unwrap_or_else(|| panic!("README has no table {header:?}"));
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_owned()
        })
        .collect()
}

#[test]
fn the_check_table_is_the_check_enum() {
    let documented = first_column(&readme(), "| check | what it decides |");
    let names: Vec<String> = CheckId::ALL.iter().map(|c| c.name().to_owned()).collect();
    assert_eq!(documented, names);
}

#[test]
fn the_exit_code_table_is_the_exit_code_enum() {
    let documented = first_column(&readme(), "| code | kind | meaning |");
    let codes: Vec<String> = cvm_launcher::exit::ExitCode::ALL
        .iter()
        .map(|c| c.code().to_string())
        .collect();
    assert_eq!(documented, codes);
}

#[test]
fn every_input_kind_has_its_limit_documented() {
    let text = readme();
    let limits = first_column(&text, "| input | limit |");
    let start = text.find("| input | limit |").unwrap();
    let table: Vec<&str> = text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(limits.len(), table.len());
    for kind in cvm_launcher::cmd::InputKind::ALL {
        let mib = kind.limit() >> 20;
        let want = if mib >= 1024 {
            format!("{} GiB", mib >> 10)
        } else {
            format!("{mib} MiB")
        };
        assert!(
            table
                .iter()
                .any(|row| row.trim_end_matches('|').trim().ends_with(&want)),
            "{kind:?}: no row with limit {want}"
        );
    }
}
