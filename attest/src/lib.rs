//! Attestation evidence verification for SEV-SNP reports, TDX quotes and CCA tokens.
//!
//! The pipeline is parse -> verify (signatures, certificate chains, collateral) ->
//! appraise (claims against reference values and a policy) -> a `Verdict` that
//! serialises to JSON. The time of verification is always an input; this crate never
//! reads the clock. It has no KVM dependency and builds anywhere.
//!
//! Parsers take untrusted bytes: no slice indexing, no `as` casts, no unchecked
//! arithmetic and no `unwrap` outside tests (enforced by the lints below).
#![forbid(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

pub mod bundle;
pub mod cache;
pub mod cca;
pub mod config;
pub mod eventlog;
pub mod exchange;
pub mod snp;
pub mod tdx;
pub mod time;
pub mod verdict;
pub mod x509;

pub use cache::Cache;
pub use time::Time;
pub use verdict::{Category, Check, CheckId, Outcome, Status, Verdict};
