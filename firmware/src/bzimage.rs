//! The Linux x86 boot protocol's setup header (Documentation/arch/x86/boot.rst).

use crate::bytes::Image;
use crate::error::Result;
use serde::Serialize;

const IMAGE: &str = "kernel";
/// "HdrS".
const HDRS: u32 = 0x5372_6448;
/// The oldest protocol cvm accepts: 2.12 (64-bit entry, `xloadflags`).
const MIN_VERSION: u16 = 0x020c;

/// The parts of a bzImage's setup header that cvm uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BzImage {
    /// Boot protocol version (`0x020f` is 2.15).
    pub version: u16,
    /// Number of 512-byte setup sectors after the boot sector.
    pub setup_sects: u8,
    /// `loadflags`.
    pub loadflags: u8,
    /// `xloadflags` (bit 0: 64-bit entry point at `0x200` past the protected-mode code).
    pub xloadflags: u16,
    /// `cmdline_size`: the longest command line the kernel accepts, without the NUL.
    pub cmdline_size: u32,
    /// `kernel_alignment`.
    pub kernel_alignment: u32,
    /// `relocatable_kernel`.
    pub relocatable: bool,
    /// `pref_address`.
    pub pref_address: u64,
    /// `init_size`: the memory the kernel needs from its load address during boot.
    pub init_size: u32,
    /// File offset of the protected-mode kernel (`(setup_sects + 1) * 512`).
    pub kernel_offset: u64,
}

impl BzImage {
    /// Parses and checks the setup header of `data`.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let img = Image::new(IMAGE, data);
        let boot_flag = img.u16(0x1fe, "boot_flag")?;
        if boot_flag != 0xaa55 {
            return Err(img.invalid(
                "boot_flag",
                0x1fe,
                format!("{boot_flag:#06x}, expected 0xaa55: not a bzImage"),
            ));
        }
        let header = img.u32(0x202, "header")?;
        if header != HDRS {
            return Err(img.invalid("header", 0x202, "no \"HdrS\" signature: not a bzImage"));
        }
        let version = img.u16(0x206, "version")?;
        if version < MIN_VERSION {
            return Err(img.invalid(
                "version",
                0x206,
                format!(
                    "boot protocol {}.{} is older than 2.12",
                    version >> 8,
                    version & 0xff
                ),
            ));
        }
        let mut setup_sects = img.u8(0x1f1, "setup_sects")?;
        if setup_sects == 0 {
            setup_sects = 4;
        }
        let kernel_offset = (u64::from(setup_sects).saturating_add(1)).saturating_mul(512);
        if kernel_offset >= img.len() {
            return Err(img.invalid(
                "setup_sects",
                0x1f1,
                format!(
                    "{setup_sects} setup sectors leave no kernel in a {}-byte file",
                    img.len()
                ),
            ));
        }
        let loadflags = img.u8(0x211, "loadflags")?;
        if loadflags & 1 == 0 {
            return Err(img.invalid("loadflags", 0x211, "LOADED_HIGH is clear: not a bzImage"));
        }
        Ok(BzImage {
            version,
            setup_sects,
            loadflags,
            xloadflags: img.u16(0x236, "xloadflags")?,
            cmdline_size: img.u32(0x238, "cmdline_size")?,
            kernel_alignment: img.u32(0x230, "kernel_alignment")?,
            relocatable: img.u8(0x234, "relocatable_kernel")? != 0,
            pref_address: img.u64(0x258, "pref_address")?,
            init_size: img.u32(0x260, "init_size")?,
            kernel_offset,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal header that passes [`BzImage::parse`].
    pub fn fake_bzimage(len: usize) -> Vec<u8> {
        let mut k = vec![0u8; len];
        k[0x1f1] = 1;
        k[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        k[0x211] = 1;
        k[0x238..0x23c].copy_from_slice(&2048u32.to_le_bytes());
        k
    }

    #[test]
    fn parses_a_minimal_header() {
        let b = BzImage::parse(&fake_bzimage(4096)).unwrap();
        assert_eq!(b.version, 0x020f);
        assert_eq!(b.kernel_offset, 1024);
        assert_eq!(b.cmdline_size, 2048);
    }

    #[test]
    fn rejects_non_bzimages() {
        let err = BzImage::parse(b"\x7fELF").unwrap_err().to_string();
        assert!(
            err.starts_with("kernel: boot_flag at offset 0x1fe needs 2 bytes"),
            "{err}"
        );
        let mut k = fake_bzimage(4096);
        k[0x202] = b'X';
        assert!(
            BzImage::parse(&k)
                .unwrap_err()
                .to_string()
                .contains("not a bzImage")
        );
        let mut k = fake_bzimage(4096);
        k[0x1f1] = 200;
        assert!(
            BzImage::parse(&k)
                .unwrap_err()
                .to_string()
                .contains("setup_sects")
        );
        let mut k = fake_bzimage(4096);
        k[0x206..0x208].copy_from_slice(&0x0200u16.to_le_bytes());
        assert!(
            BzImage::parse(&k)
                .unwrap_err()
                .to_string()
                .contains("older than 2.12")
        );
    }
}
