//! Shared helpers of the cross-crate integration tests in `tests/tests/`.

#![allow(clippy::panic, clippy::print_stderr, reason = "test support code")]

use std::path::{Path, PathBuf};

/// The directory of this crate (`tests/`).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A host fixture tree below `tests/fixtures/hosts/`.
pub fn host_fixture(name: &str) -> PathBuf {
    crate_dir().join("fixtures/hosts").join(name)
}

/// The shared directory with real vectors and reference tables: `$CVM_SHARED`, or
/// `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CVM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../../shared"))
}

/// The vectors directory: `$CVM_VECTORS`, or `shared/vectors`.
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("CVM_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir().join("vectors"))
}

/// The reference measurements directory (`shared/reference`), or `None` with a message
/// on stderr when it is absent.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = shared_dir().join("reference");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (set CVM_SHARED to the directory holding reference/ and vectors/)",
            dir.display()
        );
        None
    }
}

/// A tab-separated table with a header row, as rows of (column name -> value).
pub fn read_tsv(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}
