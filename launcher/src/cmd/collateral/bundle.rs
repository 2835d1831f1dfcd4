//! Offline collateral bundles ([`cvm_attest::bundle`], a tar file) as a [`Source`]: every
//! service response a set of evidence needs, verified when the bundle is made and again,
//! as if just fetched, each time it is used (`cvm verify --collateral FILE.tar`).
//!
//! Each response is `responses/<entry>` with its kept headers in
//! `responses/<entry>.headers`, named as in a `--cache` directory
//! ([`crate::fetch::entry_name`]); the manifest lists every response's URL.

use crate::error::{CliError, InputError};
use crate::fetch::{
    FetchError, HEADERS_SUFFIX, Response, Source, decode_response, encode_headers, entry_name,
};
pub use cvm_attest::bundle::{BundledEvidence, FORMAT, Manifest};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A bundle read into memory: a [`Source`] answering only what it holds.
pub struct Bundle {
    /// Where it was read from.
    pub path: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    responses: HashMap<String, Response>,
}

/// Whether `path` is a tar file.
pub fn is_bundle(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 262];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && cvm_attest::bundle::is_tar(&head)
}

fn name(url: &str) -> String {
    format!("responses/{}", entry_name(url))
}

/// The bytes of a bundle holding `responses` (in order) with `manifest`.
pub fn write(manifest: &Manifest, responses: &[(String, Response)]) -> std::io::Result<Vec<u8>> {
    let mut files = Vec::new();
    for (url, r) in responses {
        files.push((name(url), r.body.clone()));
        if !r.headers.is_empty() {
            files.push((format!("{}{HEADERS_SUFFIX}", name(url)), encode_headers(r)));
        }
    }
    cvm_attest::bundle::write(manifest, &files)
}

impl Bundle {
    /// Reads the bundle at `path`.
    pub fn read(path: &Path) -> Result<Self, CliError> {
        let bad = |reason: String| CliError::Config {
            path: path.to_owned(),
            source: InputError::Other(reason),
        };
        let bytes = super::super::read_file(path, super::super::InputKind::Collateral)?;
        let (manifest, mut files) =
            cvm_attest::bundle::read(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut responses = HashMap::new();
        for url in &manifest.responses {
            let body = files.remove(&name(url)).ok_or_else(|| {
                bad(format!(
                    "the manifest lists {url}, but {} is missing",
                    name(url)
                ))
            })?;
            let headers = files.remove(&format!("{}{HEADERS_SUFFIX}", name(url)));
            responses.insert(url.clone(), decode_response(body, headers.as_deref()));
        }
        Ok(Bundle {
            path: path.to_owned(),
            manifest,
            responses,
        })
    }
}

impl Source for Bundle {
    fn get(&mut self, url: &str) -> Result<Response, FetchError> {
        self.responses.get(url).cloned().ok_or_else(|| FetchError {
            url: url.to_owned(),
            reason: format!(
                "not in the bundle {} (made for other evidence?)",
                self.path.display()
            ),
        })
    }

    fn requests(&self) -> usize {
        0
    }
}
