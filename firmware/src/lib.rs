//! Firmware and boot images, the launch plan, and launch measurement.
//!
//! Everything here works on `&[u8]`: no I/O, no KVM, no `unsafe`. Images are parsed into
//! a `LaunchPlan` (the exact pages, page types, addresses and vCPU state a launch
//! loads); a measurement is a fold over that plan, and the launcher executes the same
//! plan, so the measured plan is the launched plan.
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
