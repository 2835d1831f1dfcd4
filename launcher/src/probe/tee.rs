//! The TEEs the probe reports: the one TEE type of the firmware crate (see
//! [`cvm_firmware::Tee`]), of which the launchable ones ([`Tee::LAUNCHABLE`]).

pub use cvm_firmware::Tee;
