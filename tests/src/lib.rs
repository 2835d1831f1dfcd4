//! Shared helpers of the cross-crate integration tests in `tests/tests/`.

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
