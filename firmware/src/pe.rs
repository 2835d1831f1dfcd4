//! PE/COFF images: the Authenticode digest that UEFI firmware measures when it starts an
//! EFI application (here: a Linux kernel with an EFI stub).
//!
//! The digest covers, as OVMF's `HashPeImage` (SecurityPkg DxeTpm2MeasureBootLib) does:
//! the headers up to `SizeOfHeaders` without the checksum field and the certificate-table
//! directory entry; every section's raw data, in `PointerToRawData` order; and whatever
//! follows the sections, except the attribute certificates (`Size` of the certificate
//! directory) at the end.

use crate::bytes::Image;
use crate::error::{FirmwareError, Result};
use sha2::{Digest, Sha384};

const DOS_MAGIC: [u8; 2] = *b"MZ";
const PE_SIGNATURE: [u8; 4] = *b"PE\0\0";
const PE32_MAGIC: u16 = 0x10b;
const PE32_PLUS_MAGIC: u16 = 0x20b;
/// IMAGE_DIRECTORY_ENTRY_SECURITY.
const SECURITY_DIRECTORY: u32 = 4;
const SECTION_HEADER_LEN: u64 = 40;

/// The byte ranges Authenticode hashes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `(start, end)` file offsets.
    pub ranges: Vec<(u64, u64)>,
}

/// Parses the headers of `data` (named `image` in errors) and returns what Authenticode
/// hashes.
pub fn authenticode_layout(data: &[u8], image: &'static str) -> Result<Layout> {
    let img = Image::new(image, data);
    let not_pe = |field: &'static str, offset: u64, reason: String| FirmwareError::Invalid {
        image,
        field,
        offset,
        reason: format!("{reason}: not a PE image (a kernel needs an EFI stub)"),
    };
    let mz = img.array::<2>(0, "DOS header")?;
    if mz != DOS_MAGIC {
        return Err(not_pe("DOS magic", 0, format!("{mz:02x?} is not \"MZ\"")));
    }
    let pe = u64::from(img.u32(0x3c, "e_lfanew")?);
    let sig = img.array::<4>(pe, "PE signature")?;
    if sig != PE_SIGNATURE {
        return Err(not_pe(
            "PE signature",
            pe,
            format!("{sig:02x?} is not \"PE\\0\\0\""),
        ));
    }
    let coff = pe.saturating_add(4);
    let sections = img.u16(coff.saturating_add(2), "NumberOfSections")?;
    let opt_size = img.u16(coff.saturating_add(16), "SizeOfOptionalHeader")?;
    let opt = coff.saturating_add(20);
    let magic = img.u16(opt, "optional header magic")?;
    let (rva_count_at, dirs_at) = match magic {
        PE32_MAGIC => (92u64, 96u64),
        PE32_PLUS_MAGIC => (108, 112),
        other => {
            return Err(not_pe(
                "optional header magic",
                opt,
                format!("{other:#x} is neither PE32 nor PE32+"),
            ));
        }
    };
    let checksum = opt.saturating_add(64);
    let headers_end = u64::from(img.u32(opt.saturating_add(60), "SizeOfHeaders")?);
    let rva_count = img.u32(opt.saturating_add(rva_count_at), "NumberOfRvaAndSizes")?;
    let section_table = opt.saturating_add(u64::from(opt_size));
    let table_end =
        section_table.saturating_add(u64::from(sections).saturating_mul(SECTION_HEADER_LEN));
    img.bytes(0, headers_end, "headers (SizeOfHeaders)")?;
    if headers_end < table_end {
        return Err(img.invalid(
            "SizeOfHeaders",
            opt.saturating_add(60),
            format!("{headers_end:#x} does not cover the section table ending at {table_end:#x}"),
        ));
    }
    let mut ranges = vec![(0, checksum)];
    let mut cert_size = 0u64;
    if rva_count > SECURITY_DIRECTORY {
        let dir = opt
            .saturating_add(dirs_at)
            .saturating_add(u64::from(SECURITY_DIRECTORY).saturating_mul(8));
        cert_size = u64::from(img.u32(dir.saturating_add(4), "certificate table size")?);
        ranges.push((checksum.saturating_add(4), dir));
        ranges.push((dir.saturating_add(8), headers_end));
    } else {
        ranges.push((checksum.saturating_add(4), headers_end));
    }
    if ranges.iter().any(|(a, b)| a > b) {
        return Err(img.invalid(
            "SizeOfHeaders",
            opt.saturating_add(60),
            format!("{headers_end:#x} ends inside the optional header"),
        ));
    }
    let mut raw = Vec::new();
    for i in 0..u64::from(sections) {
        let h = section_table.saturating_add(i.saturating_mul(SECTION_HEADER_LEN));
        let size = u64::from(img.u32(h.saturating_add(16), "SizeOfRawData")?);
        let ptr = u64::from(img.u32(h.saturating_add(20), "PointerToRawData")?);
        if size > 0 {
            img.bytes(ptr, size, "section raw data")?;
            raw.push((ptr, ptr.saturating_add(size)));
        }
    }
    raw.sort_unstable();
    let hashed = raw.iter().fold(headers_end, |sum, (a, b)| {
        sum.saturating_add(b.saturating_sub(*a))
    });
    ranges.extend(raw);
    let len = img.len();
    if len > hashed {
        let trailing_end = len.checked_sub(cert_size).filter(|end| *end >= hashed);
        match trailing_end {
            Some(end) if end > hashed => ranges.push((hashed, end)),
            Some(_) => {}
            None => {
                return Err(img.invalid(
                    "certificate table size",
                    0,
                    format!(
                        "{cert_size:#x} bytes of certificates do not fit after the {hashed:#x} \
                         hashed bytes of a {len:#x}-byte image"
                    ),
                ));
            }
        }
    }
    Ok(Layout { ranges })
}

/// The Authenticode SHA-384 of `data`.
pub fn authenticode_sha384(data: &[u8], image: &'static str) -> Result<[u8; 48]> {
    let layout = authenticode_layout(data, image)?;
    let img = Image::new(image, data);
    let mut h = Sha384::new();
    for (a, b) in layout.ranges {
        h.update(img.bytes(a, b.saturating_sub(a), "hashed range")?);
    }
    Ok(h.finalize().into())
}
