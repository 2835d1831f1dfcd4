//! The errors of firmware parsing and launch-plan building.

/// Why a firmware or boot image was rejected, or a plan could not be built.
///
/// Offsets are byte offsets into the file named by the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirmwareError {
    /// A structure extends past the end of the image.
    #[error(
        "{image}: {field} at offset {offset:#x} needs {needed} bytes, but the image is {len} bytes"
    )]
    Truncated {
        /// Which image ("firmware", "kernel", ...).
        image: &'static str,
        /// The structure or field.
        field: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// The image's length.
        len: u64,
    },
    /// A field has a value the format does not allow.
    #[error("{image}: {field} at offset {offset:#x}: {reason}")]
    Invalid {
        /// Which image.
        image: &'static str,
        /// The structure or field.
        field: &'static str,
        /// Where it is.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested launch cannot be built from these inputs.
    #[error("{0}")]
    Unsupported(String),
    /// A structure cvm builds (a VMSA, a table, a header) was written out of its own
    /// bounds: a bug in cvm, reported instead of producing a structure with a field
    /// missing.
    #[error(
        "internal error: a {len}-byte write at offset {offset:#x} of a {size}-byte structure (a bug in cvm)"
    )]
    Layout {
        /// Where the write was.
        offset: u64,
        /// How long it was.
        len: u64,
        /// The structure's size.
        size: u64,
    },
}

impl FirmwareError {
    /// The image the error is about ("firmware", "kernel", ...), when it is about one.
    pub fn image(&self) -> Option<&'static str> {
        match self {
            FirmwareError::Truncated { image, .. } | FirmwareError::Invalid { image, .. } => {
                Some(image)
            }
            FirmwareError::Unsupported(_) | FirmwareError::Layout { .. } => None,
        }
    }
}

/// A shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, FirmwareError>;
