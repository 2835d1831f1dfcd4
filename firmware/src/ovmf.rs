//! OVMF-style firmware images: the footer GUID table, SEV metadata, TDVF descriptor.
//!
//! The footer table sits just before the last 32 bytes of the image (the reset vector
//! area). It ends with an 18-byte header `{u16 size, GUID 96b582de-..}` whose size covers
//! the whole table; each entry in front of it ends in the same kind of header, with its
//! data in front, and the table is walked backwards from its end (OvmfPkg ResetVector).

use crate::bytes::{Image, to_u64};
use crate::error::Result;
use crate::guid::{Guid, known};
use serde::Serialize;

const IMAGE: &str = "firmware";
/// Bytes after the footer table: the reset vector and its padding.
const RESET_AREA: u64 = 32;
/// `u16 size` + GUID.
const ENTRY_HEADER: u64 = 18;
/// The top of the 32-bit address space, where the firmware image ends.
pub const FOUR_GIB: u64 = 1 << 32;

/// One entry of the footer GUID table (unknown GUIDs are kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FooterEntry {
    /// The entry's GUID.
    pub guid: Guid,
    /// Its name, for the GUIDs cvm knows.
    pub name: Option<&'static str>,
    /// File offset of the entry's data.
    pub offset: u64,
    /// The entry's data (without the size/GUID header).
    #[serde(serialize_with = "hex")]
    pub data: Vec<u8>,
}

fn hex<S: serde::Serializer>(b: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// The type of an SEV metadata section (OvmfPkg `SEV_SECTION_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SevSectionType {
    /// Memory the guest will accept and validate itself (`OVMF_SECTION_TYPE_SNP_SEC_MEM` = 1).
    SnpSecMem,
    /// The SNP secrets page (2).
    SnpSecrets,
    /// The CPUID page (3).
    Cpuid,
    /// The SVSM calling-area page (4).
    SvsmCaa,
    /// Where the kernel hashes table lives (0x10).
    SnpKernelHashes,
    /// A type this version of cvm does not know.
    Unknown(u32),
}

impl SevSectionType {
    fn from_raw(v: u32) -> Self {
        match v {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            other => Self::Unknown(other),
        }
    }
}

/// One section of the SEV metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevSection {
    /// Guest physical address.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// What it is.
    pub kind: SevSectionType,
}

/// The "ASEV" SEV metadata block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SevMetadata {
    /// File offset of the "ASEV" signature.
    pub offset: u64,
    /// The metadata version (1).
    pub version: u32,
    /// The sections, in table order.
    pub sections: Vec<SevSection>,
}

/// A TDVF section type (TDVF spec, table "TDVF_SECTION").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TdvfSectionType {
    /// Boot firmware volume (0).
    Bfv,
    /// Configuration firmware volume (1).
    Cfv,
    /// TD HOB (2).
    TdHob,
    /// Temporary memory (3).
    TempMem,
    /// Permanent memory (4).
    PermMem,
    /// Payload (5).
    Payload,
    /// Payload parameters (6).
    PayloadParam,
    /// A type this version of cvm does not know.
    Unknown(u32),
}

impl TdvfSectionType {
    fn from_raw(v: u32) -> Self {
        match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            other => Self::Unknown(other),
        }
    }
}

/// One section of the TDVF descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TdvfSection {
    /// Offset of the section's data in the image.
    pub data_offset: u32,
    /// Bytes of data in the image.
    pub raw_size: u32,
    /// Guest physical address.
    pub mem_address: u64,
    /// Bytes of guest memory.
    pub mem_size: u64,
    /// What it is.
    pub kind: TdvfSectionType,
    /// Attributes: bit 0 MR_EXTEND, bit 1 PAGE_AUG.
    pub attributes: u32,
}

impl TdvfSection {
    /// Whether the section's data (`DataOffset`, `RawSize`) lies inside an image of
    /// `image_len` bytes. Parsing does not require it (a truncated image can still be
    /// measured for SEV); a TDX launch does.
    pub fn data_in_bounds(&self, image_len: u64) -> bool {
        u64::from(self.data_offset)
            .checked_add(u64::from(self.raw_size))
            .is_some_and(|end| end <= image_len)
    }
}

/// The "TDVF" descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdvfDescriptor {
    /// File offset of the "TDVF" signature.
    pub offset: u64,
    /// The descriptor version (1).
    pub version: u32,
    /// The sections, in table order.
    pub sections: Vec<TdvfSection>,
}

/// A parsed OVMF-style firmware image.
#[derive(Debug, Clone)]
pub struct OvmfImage<'a> {
    data: &'a [u8],
    entries: Vec<FooterEntry>,
    sev_metadata: Option<SevMetadata>,
    tdvf: Option<TdvfDescriptor>,
}

impl<'a> OvmfImage<'a> {
    /// Parses `data`. An image without a footer table is accepted (it has no entries);
    /// a footer table or metadata that is present but malformed is an error.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        Self::parse_as(data, IMAGE)
    }

    /// Parses `data` as [`OvmfImage::parse`] does, naming it `name` in errors (an SVSM
    /// image is an OVMF-style image too).
    pub fn parse_as(data: &'a [u8], name: &'static str) -> Result<Self> {
        let img = Image::new(name, data);
        if img.len() == 0 || !img.len().is_multiple_of(4096) {
            return Err(img.invalid(
                "image size",
                0,
                format!("{} bytes is not a positive multiple of 4096", img.len()),
            ));
        }
        if img.len() > FOUR_GIB {
            return Err(img.invalid("image size", 0, "larger than 4 GiB"));
        }
        let entries = footer_entries(&img)?;
        let mut image = OvmfImage {
            data,
            entries,
            sev_metadata: None,
            tdvf: None,
        };
        if let Some(e) = image.entry(&known::OVMF_SEV_METADATA) {
            image.sev_metadata = Some(sev_metadata(&img, e)?);
        }
        if let Some(e) = image.entry(&known::TDX_METADATA_OFFSET) {
            image.tdvf = Some(tdvf_descriptor(&img, e)?);
        }
        Ok(image)
    }

    /// The image bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The guest physical address of the image's first byte: it ends at 4 GiB.
    pub fn gpa(&self) -> u64 {
        FOUR_GIB.saturating_sub(to_u64(self.data.len()))
    }

    /// Every footer table entry, in file order.
    pub fn entries(&self) -> &[FooterEntry] {
        &self.entries
    }

    /// The entry with `guid`, if any.
    pub fn entry(&self, guid: &Guid) -> Option<&FooterEntry> {
        self.entries.iter().find(|e| e.guid == *guid)
    }

    /// The SEV metadata, if the image has it.
    pub fn sev_metadata(&self) -> Option<&SevMetadata> {
        self.sev_metadata.as_ref()
    }

    /// The TDVF descriptor, if the image has it.
    pub fn tdvf(&self) -> Option<&TdvfDescriptor> {
        self.tdvf.as_ref()
    }

    /// The AP reset address from the SEV-ES reset block.
    pub fn sev_es_reset_eip(&self) -> Result<Option<u32>> {
        self.u32_pair(&known::SEV_ES_RESET_BLOCK, 4)
            .map(|p| p.map(|(eip, _)| eip))
    }

    /// The flags of cvm's own footer entry (`CVM_GUEST`); `None` when absent. A flag cvm
    /// does not know is an error: what it would promise cannot be planned.
    pub fn cvm_guest_flags(&self) -> Result<Option<CvmGuestFlags>> {
        let Some((bits, _)) = self.u32_pair(&known::CVM_GUEST, 4)? else {
            return Ok(None);
        };
        if bits & !CvmGuestFlags::KNOWN != 0 {
            let e = self.entry(&known::CVM_GUEST);
            return Err(Image::new(IMAGE, &[]).invalid(
                "CVM_GUEST",
                e.map_or(0, |e| e.offset),
                format!("unknown flags {:#x}", bits & !CvmGuestFlags::KNOWN),
            ));
        }
        Ok(Some(CvmGuestFlags(bits)))
    }

    /// `(gpa, size)` of the kernel hashes table; `None` when the entry is absent or zero.
    pub fn sev_hashes_table(&self) -> Result<Option<(u32, u32)>> {
        Ok(self
            .u32_pair(&known::SEV_HASH_TABLE_RV, 8)?
            .filter(|&(gpa, len)| gpa != 0 && len != 0))
    }

    /// `(gpa, size)` of the SEV secret block; `None` when absent or zero.
    pub fn sev_secret_block(&self) -> Result<Option<(u32, u32)>> {
        Ok(self
            .u32_pair(&known::SEV_SECRET_BLOCK, 8)?
            .filter(|&(gpa, len)| gpa != 0 && len != 0))
    }

    /// The first one or two u32s of an entry (`need` is 4 or 8 bytes).
    fn u32_pair(&self, guid: &Guid, need: u64) -> Result<Option<(u32, u32)>> {
        let Some(e) = self.entry(guid) else {
            return Ok(None);
        };
        let field = known::name(guid).unwrap_or("footer entry");
        let data = Image::new(IMAGE, &e.data);
        let first = data
            .u32(0, field)
            .map_err(|_| short_entry(e, need, field))?;
        let second = if need >= 8 {
            data.u32(4, field)
                .map_err(|_| short_entry(e, need, field))?
        } else {
            0
        };
        Ok(Some((first, second)))
    }
}

/// What an image says, in cvm's footer entry, that it does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CvmGuestFlags(pub u32);

impl CvmGuestFlags {
    /// The image extends no TDX RTMR: a TD that runs it has RTMR 0-3 at their initial
    /// value, zero, when it reports. (The promise is the image's, and the image is in
    /// MRTD: a prediction made from a false one only fails to match the quote.)
    pub const NO_RTMR_EXTENDS: u32 = 1;
    /// Every flag cvm knows.
    const KNOWN: u32 = Self::NO_RTMR_EXTENDS;

    /// Whether the image extends no RTMR.
    pub fn no_rtmr_extends(self) -> bool {
        self.0 & Self::NO_RTMR_EXTENDS != 0
    }
}

fn short_entry(e: &FooterEntry, need: u64, field: &'static str) -> crate::FirmwareError {
    Image::new(IMAGE, &[]).invalid(
        field,
        e.offset,
        format!("entry has {} data bytes, needs {need}", e.data.len()),
    )
}

fn footer_entries(img: &Image<'_>) -> Result<Vec<FooterEntry>> {
    let Some(footer_off) = img
        .len()
        .checked_sub(RESET_AREA.saturating_add(ENTRY_HEADER))
    else {
        return Ok(Vec::new());
    };
    let guid = Guid::from_disk(img.array(footer_off.saturating_add(2), "footer table GUID")?);
    if guid != known::FOOTER_TABLE {
        return Ok(Vec::new());
    }
    let table_size = u64::from(img.u16(footer_off, "footer table size")?);
    let body = table_size.checked_sub(ENTRY_HEADER).ok_or_else(|| {
        img.invalid(
            "footer table size",
            footer_off,
            format!("{table_size} is smaller than its own header"),
        )
    })?;
    let start = footer_off.checked_sub(body).ok_or_else(|| {
        img.invalid(
            "footer table size",
            footer_off,
            "table extends before the image",
        )
    })?;
    let mut end = footer_off; // exclusive end of the unparsed part of the table
    let mut entries = Vec::new();
    while end.saturating_sub(start) >= ENTRY_HEADER {
        let hdr = end.saturating_sub(ENTRY_HEADER);
        let size = u64::from(img.u16(hdr, "footer entry size")?);
        let data_len = size.checked_sub(ENTRY_HEADER).ok_or_else(|| {
            img.invalid(
                "footer entry size",
                hdr,
                format!("{size} is smaller than 18"),
            )
        })?;
        let data_off = hdr
            .checked_sub(data_len)
            .filter(|&o| o >= start)
            .ok_or_else(|| {
                img.invalid(
                    "footer entry size",
                    hdr,
                    format!("entry of {size} bytes extends before the table start {start:#x}"),
                )
            })?;
        let guid = Guid::from_disk(img.array(hdr.saturating_add(2), "footer entry GUID")?);
        entries.push(FooterEntry {
            guid,
            name: known::name(&guid),
            offset: data_off,
            data: img.bytes(data_off, data_len, "footer entry data")?.to_vec(),
        });
        end = data_off;
    }
    if end != start {
        return Err(img.invalid(
            "footer table",
            start,
            format!(
                "{} trailing bytes do not form an entry",
                end.saturating_sub(start)
            ),
        ));
    }
    entries.reverse();
    Ok(entries)
}

/// Resolves an entry holding a u32 offset counted back from the end of the image.
fn offset_from_end(img: &Image<'_>, e: &FooterEntry, field: &'static str) -> Result<u64> {
    let data = Image::new(IMAGE, &e.data);
    let back = u64::from(data.u32(0, field).map_err(|_| short_entry(e, 4, field))?);
    img.len().checked_sub(back).ok_or_else(|| {
        img.invalid(
            field,
            e.offset,
            format!("offset {back:#x} is before the image start"),
        )
    })
}

/// A signed table that a footer entry points at: 4-byte signature, u32 length, u32
/// version (1), u32 entry count, then fixed-size entries.
struct TableSpec {
    entry: &'static str,
    signature: [u8; 4],
    names: [&'static str; 5], // signature, length, version, count, whole table
    entry_size: u64,
}

const ASEV: TableSpec = TableSpec {
    entry: "OVMF_SEV_METADATA",
    signature: *b"ASEV",
    names: [
        "SEV metadata signature",
        "SEV metadata size",
        "SEV metadata version",
        "SEV metadata section count",
        "SEV metadata",
    ],
    entry_size: 12,
};

const TDVF: TableSpec = TableSpec {
    entry: "TDX_METADATA_OFFSET",
    signature: *b"TDVF",
    names: [
        "TDVF descriptor signature",
        "TDVF descriptor length",
        "TDVF descriptor version",
        "TDVF section count",
        "TDVF descriptor",
    ],
    entry_size: 32,
};

/// Checks a table's header; returns its offset, version and the offsets of its entries.
fn table(img: &Image<'_>, e: &FooterEntry, spec: &TableSpec) -> Result<(u64, u32, Vec<u64>)> {
    let [sig_name, len_name, version_name, count_name, whole] = spec.names;
    let off = offset_from_end(img, e, spec.entry)?;
    let sig = img.array::<4>(off, sig_name)?;
    if sig != spec.signature {
        return Err(img.invalid(
            sig_name,
            off,
            format!(
                "{sig:02x?} is not {:?}",
                String::from_utf8_lossy(&spec.signature)
            ),
        ));
    }
    let len = u64::from(img.u32(off.saturating_add(4), len_name)?);
    let version = img.u32(off.saturating_add(8), version_name)?;
    if version != 1 {
        return Err(img.invalid(
            version_name,
            off.saturating_add(8),
            format!("{version}, expected 1"),
        ));
    }
    let n = u64::from(img.u32(off.saturating_add(12), count_name)?);
    let needed = n
        .checked_mul(spec.entry_size)
        .and_then(|b| b.checked_add(16));
    if needed.is_none_or(|needed| needed > len) {
        return Err(img.invalid(
            len_name,
            off.saturating_add(4),
            format!("{len} bytes cannot hold {n} entries"),
        ));
    }
    img.bytes(off, len, whole)?;
    let entries = (0..n)
        .map(|i| {
            off.saturating_add(16)
                .saturating_add(i.saturating_mul(spec.entry_size))
        })
        .collect();
    Ok((off, version, entries))
}

fn sev_metadata(img: &Image<'_>, e: &FooterEntry) -> Result<SevMetadata> {
    let (off, version, entries) = table(img, e, &ASEV)?;
    let mut sections = Vec::new();
    for s in entries {
        let gpa = img.u32(s, "SEV metadata section gpa")?;
        let size = img.u32(s.saturating_add(4), "SEV metadata section size")?;
        let kind =
            SevSectionType::from_raw(img.u32(s.saturating_add(8), "SEV metadata section type")?);
        if gpa.checked_add(size).is_none() {
            return Err(img.invalid(
                "SEV metadata section",
                s,
                format!("gpa {gpa:#x} + size {size:#x} overflows 32 bits"),
            ));
        }
        sections.push(SevSection { gpa, size, kind });
    }
    Ok(SevMetadata {
        offset: off,
        version,
        sections,
    })
}

fn tdvf_descriptor(img: &Image<'_>, e: &FooterEntry) -> Result<TdvfDescriptor> {
    let (off, version, entries) = table(img, e, &TDVF)?;
    let mut sections = Vec::new();
    for s in entries {
        let section = TdvfSection {
            data_offset: img.u32(s, "TDVF section DataOffset")?,
            raw_size: img.u32(s.saturating_add(4), "TDVF section RawSize")?,
            mem_address: img.u64(s.saturating_add(8), "TDVF section MemoryAddress")?,
            mem_size: img.u64(s.saturating_add(16), "TDVF section MemoryDataSize")?,
            kind: TdvfSectionType::from_raw(img.u32(s.saturating_add(24), "TDVF section Type")?),
            attributes: img.u32(s.saturating_add(28), "TDVF section Attributes")?,
        };
        if section.mem_address.checked_add(section.mem_size).is_none() {
            return Err(img.invalid(
                "TDVF section MemoryAddress",
                s.saturating_add(8),
                "address + size overflows",
            ));
        }
        sections.push(section);
    }
    Ok(TdvfDescriptor {
        offset: off,
        version,
        sections,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a 4 KiB-multiple image whose footer table holds `entries` (GUID, data).
    pub fn image_with_table(
        size: usize,
        entries: &[(Guid, Vec<u8>)],
        extra: &[(usize, &[u8])],
    ) -> Vec<u8> {
        let mut img = vec![0u8; size];
        for (off, bytes) in extra {
            img[*off..*off + bytes.len()].copy_from_slice(bytes);
        }
        let mut table = Vec::new();
        for (g, d) in entries {
            table.extend_from_slice(d);
            table.extend_from_slice(&u16::try_from(d.len() + 18).unwrap().to_le_bytes());
            table.extend_from_slice(&g.to_disk());
        }
        table.extend_from_slice(&u16::try_from(table.len() + 18).unwrap().to_le_bytes());
        table.extend_from_slice(&known::FOOTER_TABLE.to_disk());
        let end = size - 32;
        img[end - table.len()..end].copy_from_slice(&table);
        img
    }

    #[test]
    fn cvm_guest_flags_known_unknown_and_short() {
        let flags = |data: Vec<u8>| {
            let img = image_with_table(8192, &[(known::CVM_GUEST, data)], &[]);
            OvmfImage::parse(&img).unwrap().cvm_guest_flags()
        };
        let f = flags(1u32.to_le_bytes().to_vec()).unwrap().unwrap();
        assert!(f.no_rtmr_extends());
        assert!(!flags(vec![0; 4]).unwrap().unwrap().no_rtmr_extends());
        let e = flags(3u32.to_le_bytes().to_vec()).unwrap_err().to_string();
        assert!(
            e.contains("CVM_GUEST") && e.contains("unknown flags 0x2"),
            "{e}"
        );
        let e = flags(vec![1, 0]).unwrap_err().to_string();
        assert!(e.contains("needs 4"), "{e}");
        let img = image_with_table(8192, &[], &[]);
        assert_eq!(
            OvmfImage::parse(&img).unwrap().cvm_guest_flags().unwrap(),
            None
        );
    }

    #[test]
    fn walks_entries_and_keeps_unknown_guids() {
        let odd = crate::guid!("784fa70e-3176-4677-8a20-04b68699e374");
        let img = image_with_table(
            8192,
            &[
                (
                    known::SEV_ES_RESET_BLOCK,
                    0x0080_b004u32.to_le_bytes().to_vec(),
                ),
                (odd, vec![1, 2, 3]),
                (
                    known::SEV_HASH_TABLE_RV,
                    [0x0081_0c00u32.to_le_bytes(), 0x400u32.to_le_bytes()].concat(),
                ),
            ],
            &[],
        );
        let fw = OvmfImage::parse(&img).unwrap();
        assert_eq!(fw.entries().len(), 3);
        assert_eq!(fw.entries()[1].guid, odd);
        assert_eq!(fw.entries()[1].name, None);
        assert_eq!(fw.sev_es_reset_eip().unwrap(), Some(0x0080_b004));
        assert_eq!(fw.sev_hashes_table().unwrap(), Some((0x0081_0c00, 0x400)));
        assert_eq!(fw.gpa(), FOUR_GIB - 8192);
    }

    #[test]
    fn no_footer_means_no_entries() {
        let fw = OvmfImage::parse(&[0u8; 4096]).unwrap();
        assert!(fw.entries().is_empty());
        assert_eq!(fw.sev_es_reset_eip().unwrap(), None);
    }

    #[test]
    fn rejects_entry_running_before_table() {
        let mut img = image_with_table(8192, &[(known::SEV_ES_RESET_BLOCK, vec![0; 4])], &[]);
        // Inflate the entry's size past the table start.
        let hdr = 8192 - 32 - 18 - 18;
        img[hdr..hdr + 2].copy_from_slice(&200u16.to_le_bytes());
        let err = OvmfImage::parse(&img).unwrap_err().to_string();
        assert!(err.contains("footer entry size"), "{err}");
    }

    #[test]
    fn rejects_bad_metadata_signature_with_offset() {
        let img = image_with_table(
            8192,
            &[(known::OVMF_SEV_METADATA, 100u32.to_le_bytes().to_vec())],
            &[],
        );
        let err = OvmfImage::parse(&img).unwrap_err().to_string();
        assert!(
            err.starts_with("firmware: SEV metadata signature at offset 0x1f9c:"),
            "{err}"
        );
    }

    #[test]
    fn rejects_sizes_that_are_not_page_multiples() {
        assert!(OvmfImage::parse(&[0u8; 100]).is_err());
        assert!(OvmfImage::parse(&[]).is_err());
    }
}
