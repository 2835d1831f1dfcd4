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

/// `type_of_loader` QEMU writes (0xb0: QEMU, version 0).
const QEMU_LOADER_TYPE: u8 = 0xb0;
/// `loadflags` CAN_USE_HEAP.
const CAN_USE_HEAP: u8 = 0x80;
/// `xloadflags` XLF_CAN_BE_LOADED_ABOVE_4G.
const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// Where QEMU puts the real-mode setup and the command line of a bzImage.
const QEMU_REAL_ADDR: u32 = 0x1_0000;
const QEMU_CMDLINE_ADDR: u32 = 0x2_0000;

/// Where QEMU loads an initrd of `initrd_len` bytes for the bzImage `data`
/// (`x86_load_linux`): the highest page-aligned address below `initrd_addr_max` (or 4 GiB
/// with XLF_CAN_BE_LOADED_ABOVE_4G) and below `below_4g - acpi_data_size`; `None` without
/// an initrd.
pub fn qemu_initrd_addr(
    data: &[u8],
    initrd_len: usize,
    below_4g: u64,
    acpi_data_size: u32,
) -> Result<Option<u32>> {
    if initrd_len == 0 {
        return Ok(None);
    }
    let hdr = BzImage::parse(data)?;
    let img = Image::new(IMAGE, data);
    let size = u32::try_from(initrd_len).map_err(|_| {
        crate::error::FirmwareError::Unsupported(format!(
            "a {initrd_len}-byte initrd does not fit below 4 GiB"
        ))
    })?;
    let mut max = if hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
        u32::MAX
    } else {
        match img.u32(0x22c, "initrd_addr_max")? {
            0 => 0x37ff_ffff,
            m => m,
        }
    };
    let below = u32::try_from(below_4g).unwrap_or(u32::MAX);
    let avail = below.checked_sub(acpi_data_size).ok_or_else(|| {
        crate::error::FirmwareError::Unsupported(format!(
            "{below:#x} bytes below 4 GiB cannot hold {acpi_data_size:#x} bytes of ACPI data"
        ))
    })?;
    if max >= avail {
        max = avail.saturating_sub(1);
    }
    // QEMU refuses `initrd_size >= initrd_max`, an initrd exactly as large included.
    let addr = max
        .checked_sub(size)
        .filter(|room| *room > 0)
        .ok_or_else(|| {
            crate::error::FirmwareError::Unsupported(format!(
                "the {size}-byte initrd does not fit below {max:#x}"
            ))
        })?
        & !0xfff;
    Ok(Some(addr))
}

/// The kernel as QEMU serves it to the firmware after patching the setup header for
/// direct boot (`x86_load_linux`): loader type, CAN_USE_HEAP with `heap_end_ptr`,
/// `cmd_line_ptr`, and, with an initrd of `initrd_len` bytes, `ramdisk_image` and
/// `ramdisk_size` for the highest page-aligned address below
/// `below_4g - acpi_data_size` (and `initrd_addr_max`).
pub fn qemu_patch(
    data: &[u8],
    initrd_len: usize,
    below_4g: u64,
    acpi_data_size: u32,
) -> Result<Vec<u8>> {
    let hdr = BzImage::parse(data)?;
    let mut out = data.to_vec();
    let mut set = |offset: usize, value: &[u8]| crate::bytes::put(&mut out, offset, value);
    set(0x210, &[QEMU_LOADER_TYPE])?;
    set(0x211, &[hdr.loadflags | CAN_USE_HEAP])?;
    let heap_end = QEMU_CMDLINE_ADDR
        .saturating_sub(QEMU_REAL_ADDR)
        .saturating_sub(0x200);
    set(
        0x224,
        &u16::try_from(heap_end).unwrap_or(u16::MAX).to_le_bytes(),
    )?;
    set(0x228, &QEMU_CMDLINE_ADDR.to_le_bytes())?;
    if let Some(addr) = qemu_initrd_addr(data, initrd_len, below_4g, acpi_data_size)? {
        let size = u32::try_from(initrd_len).unwrap_or(u32::MAX);
        set(0x218, &addr.to_le_bytes())?;
        set(0x21c, &size.to_le_bytes())?;
    }
    Ok(out)
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
    fn qemu_refuses_an_initrd_as_large_as_its_room() {
        // initrd_addr_max 0 means 0x37ffffff; 2 GiB of low RAM leaves it the limit.
        let k = fake_bzimage(4096);
        assert!(qemu_patch(&k, 0x37ff_ffff, 0x8000_0000, 0x2_0000).is_err());
        let out = qemu_patch(&k, 0x37ff_e000, 0x8000_0000, 0x2_0000).unwrap();
        assert_eq!(out[0x218..0x21c], 0x1000u32.to_le_bytes());
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
