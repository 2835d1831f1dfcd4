//! Offline collateral bundles: one tar file (ustar, GNU long names) holding the service
//! responses a set of evidence needs, with a manifest. This module reads and writes the
//! container from and to bytes; what it holds is untrusted and verified where it is used
//! (as if just fetched), never here.
//!
//! Layout: `cvm-collateral.json` (the [`Manifest`]), then one regular file per entry.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;

/// The manifest's name inside a bundle.
pub const MANIFEST: &str = "cvm-collateral.json";

/// The manifest's `format`.
pub const FORMAT: &str = "cvm-collateral-bundle";

/// The largest bundle read, and the most entries.
pub const MAX_BUNDLE: usize = 64 << 20;
/// The most entries a bundle may hold.
pub const MAX_ENTRIES: usize = 4096;
/// The largest single entry (a service answer is at most 1 MiB).
pub const MAX_ENTRY: u64 = 1 << 20;

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collateral bundle: {0}")]
pub struct BundleError(pub String);

/// One piece of evidence a bundle was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledEvidence {
    /// The file's name when the bundle was made.
    pub file: String,
    /// `snp` or `tdx` (SGX quotes too).
    pub tee: String,
    /// SHA-256 of the evidence, hex.
    pub sha256: String,
}

/// A bundle's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The KDS's base URL the SNP responses came from.
    pub kds_url: String,
    /// The PCS's (or PCCS's) base URL the Intel responses came from.
    pub pcs_url: String,
    /// The root CA CRL's URL.
    pub intel_root_crl_url: String,
    /// Which TCB evaluation the Intel responses are for (`early`, or a TCB evaluation
    /// data number); empty (and left out) for the standard one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pcs_tcb_update: String,
    /// The time everything verified at when the bundle was made.
    pub verified_at: String,
    /// The evidence it was made for.
    pub evidence: Vec<BundledEvidence>,
    /// The URL of every response it holds.
    pub responses: Vec<String>,
}

/// Appends a regular file (names longer than ustar's go in GNU long-name entries).
fn append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(u64::try_from(data.len()).unwrap_or(u64::MAX));
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
}

/// The bytes of a bundle: `manifest`, then `files` in order.
pub fn write(manifest: &Manifest, files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let m = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    append(&mut b, MANIFEST, &m)?;
    for (name, data) in files {
        append(&mut b, name, data)?;
    }
    b.into_inner()
}

/// Whether `bytes` start like a tar file (the ustar magic at byte 257).
pub fn is_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar".as_slice())
}

/// Reads a bundle: its manifest and its other files by name. Sizes are bounded, only
/// regular files are accepted, a name may appear once, and the manifest must be one
/// this version writes; nothing else about the contents is judged here.
pub fn read(bytes: &[u8]) -> Result<(Manifest, HashMap<String, Vec<u8>>), BundleError> {
    let bad = |s: String| BundleError(s);
    if bytes.len() > MAX_BUNDLE {
        return Err(bad(format!(
            "{} bytes, more than the {MAX_BUNDLE} read",
            bytes.len()
        )));
    }
    let mut archive = tar::Archive::new(bytes);
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar file: {e}")))?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let entry = entry.map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| bad(format!("entry {i}: its name: {e}")))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!("entry {i} ({name}) is not a regular file")));
        }
        if entry.size() > MAX_ENTRY {
            return Err(bad(format!(
                "entry {i} ({name}) is {} bytes, more than the {MAX_ENTRY} allowed",
                entry.size()
            )));
        }
        let mut data = Vec::new();
        entry
            .take(MAX_ENTRY)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("entry {i} ({name}): {e}")))?;
        if files.insert(name.clone(), data).is_some() {
            return Err(bad(format!("entry {i}: {name} appears twice")));
        }
    }
    let manifest: Manifest = files
        .remove(MANIFEST)
        .ok_or_else(|| bad(format!("no {MANIFEST}: not a cvm collateral bundle")))
        .and_then(|m| serde_json::from_slice(&m).map_err(|e| bad(format!("{MANIFEST}: {e}"))))?;
    if manifest.format != FORMAT || manifest.version != 1 {
        return Err(bad(format!(
            "{MANIFEST}: format {:?} version {}, expected {FORMAT:?} version 1",
            manifest.format, manifest.version
        )));
    }
    Ok((manifest, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: 1,
            kds_url: "k".into(),
            pcs_url: "p".into(),
            intel_root_crl_url: "r".into(),
            pcs_tcb_update: String::new(),
            verified_at: "2026-01-01T00:00:00Z".into(),
            evidence: Vec::new(),
            responses: vec!["u".into()],
        }
    }

    #[test]
    fn round_trip_with_a_long_name() {
        let long = format!("responses/{}", "a".repeat(300));
        let bytes = write(&manifest(), &[(long.clone(), b"body".to_vec())]).unwrap();
        assert!(is_tar(&bytes));
        let (m, files) = read(&bytes).unwrap();
        assert_eq!(m, manifest());
        assert_eq!(
            files.get(&long).map(Vec::as_slice),
            Some(b"body".as_slice())
        );
    }

    #[test]
    fn refuses_what_it_does_not_write() {
        assert!(read(b"").unwrap_err().0.contains(MANIFEST));
        let mut other = manifest();
        other.version = 2;
        let bytes = write(&other, &[]).unwrap();
        assert!(read(&bytes).unwrap_err().0.contains("version 2"));
        let twice = write(
            &manifest(),
            &[("x".into(), Vec::new()), ("x".into(), Vec::new())],
        )
        .unwrap();
        assert!(read(&twice).unwrap_err().0.contains("twice"));
    }
}
