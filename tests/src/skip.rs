//! The rule for a test whose input or platform is missing. One file, included by
//! `#[path]` both here and in the launcher's tests (`launcher/tests/common/mod.rs`),
//! which cannot depend on this crate.

use std::io::Write as _;

/// Whether a test's input or platform is `ok`. An absent one never lets a test pass:
/// under `CI=true` it fails the test; elsewhere the test stops early and says on the
/// terminal that it was skipped, and why (written to the process's standard error
/// directly, which the test harness does not capture, so it shows for a passing test).
pub fn available(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} (CI=true: a test without its inputs fails)"
    );
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {what}");
    false
}
