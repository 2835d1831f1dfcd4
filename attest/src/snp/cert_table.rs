//! The SNP certificate table: the blob a hypervisor returns with an extended guest
//! request (GHCB specification 2.0, SNP Extended Guest Request) and Linux's configfs-tsm
//! `auxblob` holds. A sequence of 24-byte entries {GUID (16 bytes, RFC 4122 order, as
//! AMD's tools and go-sev-guest write and read it), offset u32 LE, length u32 LE},
//! terminated by an all-zero entry; each offset counts from the start of the table and
//! each certificate is DER.

use cvm_firmware::guid::Guid;

/// The size of one entry.
pub const ENTRY_LEN: usize = 24;
/// The most entries cvm reads or writes (the known kinds, with room for others).
pub const MAX_ENTRIES: usize = 32;

/// What an entry holds, by its GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The VCEK certificate.
    Vcek,
    /// The VLEK certificate.
    Vlek,
    /// The ASK certificate.
    Ask,
    /// The ARK certificate.
    Ark,
    /// AMD's CRL.
    Crl,
    /// A GUID cvm does not know.
    Other(Guid),
}

/// The GUIDs of the known kinds (GHCB specification 2.0, table "Certificate GUIDs").
const KNOWN: [(Kind, Guid); 5] = [
    (
        Kind::Vcek,
        cvm_firmware::guid!("63da758d-e664-4564-adc5-f4b93be8accd"),
    ),
    (
        Kind::Vlek,
        cvm_firmware::guid!("a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
    ),
    (
        Kind::Ask,
        cvm_firmware::guid!("4ab7b379-bbac-4fe4-a02f-05aef327c782"),
    ),
    (
        Kind::Ark,
        cvm_firmware::guid!("c0b406a4-a803-4952-9743-3fb6014cd0ae"),
    ),
    (
        Kind::Crl,
        cvm_firmware::guid!("92f81bc3-5811-4d3d-97ff-d19f88dc67ea"),
    ),
];

impl Kind {
    /// The kind of `guid`.
    pub fn of(guid: Guid) -> Kind {
        KNOWN
            .iter()
            .find(|(_, g)| *g == guid)
            .map_or(Kind::Other(guid), |(k, _)| *k)
    }

    /// Its GUID.
    pub fn guid(self) -> Guid {
        match self {
            Kind::Other(g) => g,
            known => KNOWN
                .iter()
                .find(|(k, _)| *k == known)
                .map_or(Guid::from_rfc_bytes([0; 16]), |(_, g)| *g),
        }
    }
}

/// One entry of a parsed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// What it holds.
    pub kind: Kind,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Why a table is malformed, or cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertTableError {
    /// The table ends inside an entry, or before its terminator.
    #[error("certificate table: truncated at byte {offset} (entry {index} has no room)")]
    Truncated {
        /// The entry's offset.
        offset: usize,
        /// Its index.
        index: usize,
    },
    /// More entries than cvm reads.
    #[error("certificate table: more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// An entry with a zero GUID that is not all zero.
    #[error(
        "certificate table: entry {index} has a zero GUID but offset {offset}, length {length}"
    )]
    ZeroGuid {
        /// The entry.
        index: usize,
        /// Its offset field.
        offset: u32,
        /// Its length field.
        length: u32,
    },
    /// An entry's data lies outside the blob, or inside the table itself.
    #[error(
        "certificate table: entry {index} ({kind:?}) at offset {offset}, length {length} lies \
         outside the {size}-byte blob after the table"
    )]
    OutOfBounds {
        /// The entry.
        index: usize,
        /// Its kind.
        kind: Kind,
        /// Its offset field.
        offset: u32,
        /// Its length field.
        length: u32,
        /// The blob's size.
        size: usize,
    },
    /// An empty entry.
    #[error("certificate table: entry {index} ({kind:?}) is empty")]
    Empty {
        /// The entry.
        index: usize,
        /// Its kind.
        kind: Kind,
    },
    /// Two entries of one kind.
    #[error("certificate table: two {kind:?} entries")]
    Duplicate {
        /// The kind.
        kind: Kind,
    },
    /// The table or a certificate does not fit the 32-bit fields.
    #[error("certificate table: larger than 4 GiB")]
    TooLarge,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    b.get(at..end)?.try_into().ok().map(u32::from_le_bytes)
}

/// Parses a table: every entry before the terminator, each within the blob and after
/// the table, no kind twice. Bytes after the last certificate are allowed (the
/// hypervisor fills whole pages).
pub fn parse(blob: &[u8]) -> Result<Vec<Entry<'_>>, CertTableError> {
    let mut entries = Vec::new();
    let mut index = 0usize;
    let table_end = loop {
        let offset = index
            .checked_mul(ENTRY_LEN)
            .ok_or(CertTableError::TooLarge)?;
        let end = offset
            .checked_add(ENTRY_LEN)
            .ok_or(CertTableError::TooLarge)?;
        let raw = blob
            .get(offset..end)
            .ok_or(CertTableError::Truncated { offset, index })?;
        let mut guid = [0u8; 16];
        guid.copy_from_slice(raw.get(..16).unwrap_or(&[0; 16]));
        let (off, len) = (u32_at(raw, 16).unwrap_or(0), u32_at(raw, 20).unwrap_or(0));
        if guid == [0; 16] {
            if off != 0 || len != 0 {
                return Err(CertTableError::ZeroGuid {
                    index,
                    offset: off,
                    length: len,
                });
            }
            break end;
        }
        if index >= MAX_ENTRIES {
            return Err(CertTableError::TooManyEntries);
        }
        entries.push((index, Kind::of(Guid::from_rfc_bytes(guid)), off, len));
        index = index.checked_add(1).ok_or(CertTableError::TooLarge)?;
    };
    let mut out: Vec<Entry<'_>> = Vec::with_capacity(entries.len());
    for (index, kind, off, len) in entries {
        let bounds = CertTableError::OutOfBounds {
            index,
            kind,
            offset: off,
            length: len,
            size: blob.len(),
        };
        let start = usize::try_from(off).map_err(|_| bounds.clone())?;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| bounds.clone())?)
            .ok_or_else(|| bounds.clone())?;
        if start < table_end {
            return Err(bounds);
        }
        let data = blob.get(start..end).ok_or(bounds)?;
        if data.is_empty() {
            return Err(CertTableError::Empty { index, kind });
        }
        if out.iter().any(|e| e.kind == kind) {
            return Err(CertTableError::Duplicate { kind });
        }
        out.push(Entry { kind, data });
    }
    Ok(out)
}

/// Builds a table holding `entries` in order, their data after the terminator.
pub fn build(entries: &[(Kind, &[u8])]) -> Result<Vec<u8>, CertTableError> {
    if entries.len() > MAX_ENTRIES {
        return Err(CertTableError::TooManyEntries);
    }
    for (i, (kind, data)) in entries.iter().enumerate() {
        if data.is_empty() {
            return Err(CertTableError::Empty {
                index: i,
                kind: *kind,
            });
        }
        if entries.iter().take(i).any(|(k, _)| k == kind) {
            return Err(CertTableError::Duplicate { kind: *kind });
        }
    }
    let header = entries
        .len()
        .checked_add(1)
        .and_then(|n| n.checked_mul(ENTRY_LEN))
        .ok_or(CertTableError::TooLarge)?;
    let mut table = Vec::with_capacity(header);
    let mut data = Vec::new();
    let mut at = header;
    for (kind, bytes) in entries {
        let off = u32::try_from(at).map_err(|_| CertTableError::TooLarge)?;
        let len = u32::try_from(bytes.len()).map_err(|_| CertTableError::TooLarge)?;
        table.extend_from_slice(&kind.guid().to_rfc_bytes());
        table.extend_from_slice(&off.to_le_bytes());
        table.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(bytes);
        at = at
            .checked_add(bytes.len())
            .ok_or(CertTableError::TooLarge)?;
    }
    u32::try_from(at).map_err(|_| CertTableError::TooLarge)?;
    table.extend_from_slice(&[0u8; ENTRY_LEN]);
    table.extend_from_slice(&data);
    Ok(table)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn the_vcek_guid_is_stored_in_text_order() {
        let t = build(&[(Kind::Vcek, b"vcek"), (Kind::Ark, b"ark!!")]).unwrap();
        // 63da758d-e664-4564-adc5-f4b93be8accd, byte for byte as it reads.
        assert_eq!(&t[..4], &[0x63, 0xda, 0x75, 0x8d]);
        assert_eq!(&t[16..24], &[72, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&t[48..72], &[0u8; 24]);
        assert_eq!(&t[72..], b"vcekark!!");
        let parsed = parse(&t).unwrap();
        assert_eq!(
            parsed,
            [
                Entry {
                    kind: Kind::Vcek,
                    data: b"vcek"
                },
                Entry {
                    kind: Kind::Ark,
                    data: b"ark!!"
                }
            ]
        );
        // Trailing bytes (a whole page) are allowed.
        let mut page = t.clone();
        page.resize(4096, 0);
        assert_eq!(parse(&page).unwrap().len(), 2);
        assert_eq!(parse(&[0u8; 24]).unwrap(), []);
    }

    #[test]
    fn malformed_tables_are_refused_by_name() {
        let t = build(&[(Kind::Vcek, b"vcek")]).unwrap();
        assert!(matches!(
            parse(&t[..30]),
            Err(CertTableError::Truncated { index: 1, .. })
        ));
        let mut past = t.clone();
        past[20] = 9; // length 9 > 4 bytes of data
        assert!(matches!(
            parse(&past),
            Err(CertTableError::OutOfBounds { index: 0, .. })
        ));
        let mut inside = t.clone();
        inside[16] = 8; // data inside the table
        assert!(matches!(
            parse(&inside),
            Err(CertTableError::OutOfBounds { .. })
        ));
        let mut zero = t.clone();
        zero[24 + 16] = 1; // terminator with an offset
        assert!(matches!(
            parse(&zero),
            Err(CertTableError::ZeroGuid { index: 1, .. })
        ));
        let mut twice = build(&[(Kind::Vcek, b"a"), (Kind::Ask, b"b")]).unwrap();
        twice.copy_within(0..16, 24);
        assert!(matches!(
            parse(&twice),
            Err(CertTableError::Duplicate { kind: Kind::Vcek })
        ));
        let mut empty = t;
        empty[20] = 0;
        assert!(matches!(parse(&empty), Err(CertTableError::Empty { .. })));
        assert!(build(&[(Kind::Ask, b"x"), (Kind::Ask, b"y")]).is_err());
        let many: Vec<(Kind, &[u8])> = (0..40u8)
            .map(|i| {
                (
                    Kind::Other(Guid::from_rfc_bytes([i.wrapping_add(1); 16])),
                    &b"x"[..],
                )
            })
            .collect();
        assert_eq!(build(&many), Err(CertTableError::TooManyEntries));
        assert_eq!(Kind::of(Kind::Crl.guid()), Kind::Crl);
    }
}
