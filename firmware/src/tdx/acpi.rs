//! QEMU's ACPI fw_cfg files, derived from its tables blob.
//!
//! QEMU hands the guest firmware three fw_cfg files: `etc/acpi/tables` (every table, one
//! after the other, padded), `etc/acpi/rsdp` (the RSDP, its RSDT address an offset into
//! the tables blob) and `etc/table-loader` (the commands that tell the firmware how to
//! allocate, link and checksum them). TDVF measures all three, as served, before it runs
//! the commands. Given the tables blob, the other two follow from QEMU's `acpi_build`:
//! the RSDP (revision 0, OEM ID "BOCHS ", checksum left to the loader) and the loader
//! commands in QEMU's order: allocate RSDP and tables; checksum the DSDT; link the FADT to
//! the FACS and the DSDT (32- and 64-bit); checksum the FADT; checksum every other table
//! but the FACS, in blob order; link each RSDT entry; checksum the RSDT; link the RSDP to
//! the RSDT and checksum it. The script is zero-padded to 4 KiB.

use crate::bytes::{Image, to_u64};
use crate::error::{FirmwareError, Result};

const IMAGE: &str = "ACPI tables";
const TABLES_FILE: &str = "etc/acpi/tables";
const RSDP_FILE: &str = "etc/acpi/rsdp";
/// The size of QEMU's loader script blob.
pub const LOADER_LEN: usize = 4096;
/// Bytes per loader command.
const COMMAND_LEN: usize = 128;
/// Bytes of a loader command's file name field.
const FILE_NAME_LEN: usize = 56;
/// The ACPI system description table header.
const HEADER_LEN: u32 = 36;
/// The RSDP (ACPI 1.0 form).
pub const RSDP_LEN: usize = 20;

/// One system description table in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Its signature.
    pub signature: [u8; 4],
    /// Offset in the blob.
    pub offset: u32,
    /// Length.
    pub len: u32,
}

/// The three ACPI files TDVF measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The tables found in the blob, in blob order.
    pub tables: Vec<Table>,
    /// `etc/acpi/rsdp`.
    pub rsdp: [u8; RSDP_LEN],
    /// `etc/table-loader`.
    pub loader: Vec<u8>,
}

impl Tables {
    /// Walks `blob` (QEMU's `etc/acpi/tables`) and derives the RSDP and loader script.
    pub fn derive(blob: &[u8]) -> Result<Self> {
        let tables = list(blob)?;
        let find = |sig: &[u8; 4]| {
            tables
                .iter()
                .find(|t| &t.signature == sig)
                .copied()
                .ok_or_else(|| FirmwareError::Invalid {
                    image: IMAGE,
                    field: "tables",
                    offset: 0,
                    reason: format!("no {} table", String::from_utf8_lossy(sig)),
                })
        };
        let dsdt = find(b"DSDT")?;
        let facp = find(b"FACP")?;
        let rsdt = find(b"RSDT")?;
        let entries = rsdt
            .len
            .checked_sub(HEADER_LEN)
            .filter(|n| n.is_multiple_of(4))
            .ok_or_else(|| FirmwareError::Invalid {
                image: IMAGE,
                field: "RSDT length",
                offset: u64::from(rsdt.offset).saturating_add(4),
                reason: format!("{} is not a header plus 4-byte entries", rsdt.len),
            })?
            / 4;
        if facp.len < 148 {
            return Err(FirmwareError::Invalid {
                image: IMAGE,
                field: "FACP length",
                offset: u64::from(facp.offset).saturating_add(4),
                reason: format!("{} bytes cannot hold X_DSDT", facp.len),
            });
        }
        let mut l = Loader(Vec::with_capacity(LOADER_LEN));
        l.allocate(RSDP_FILE, 16, 2)?;
        l.allocate(TABLES_FILE, 64, 1)?;
        l.checksum(TABLES_FILE, dsdt)?;
        // FADT FIRMWARE_CTRL (FACS) and DSDT, then X_DSDT.
        l.pointer(TABLES_FILE, TABLES_FILE, facp.offset.saturating_add(36), 4)?;
        l.pointer(TABLES_FILE, TABLES_FILE, facp.offset.saturating_add(40), 4)?;
        l.pointer(TABLES_FILE, TABLES_FILE, facp.offset.saturating_add(140), 8)?;
        l.checksum(TABLES_FILE, facp)?;
        for t in &tables {
            if !matches!(&t.signature, b"FACS" | b"DSDT" | b"FACP" | b"RSDT") {
                l.checksum(TABLES_FILE, *t)?;
            }
        }
        for i in 0..entries {
            let at = rsdt
                .offset
                .saturating_add(HEADER_LEN)
                .saturating_add(i.saturating_mul(4));
            l.pointer(TABLES_FILE, TABLES_FILE, at, 4)?;
        }
        l.checksum(TABLES_FILE, rsdt)?;
        l.pointer(RSDP_FILE, TABLES_FILE, 16, 4)?;
        // The RSDP's checksum is its byte 8, over its 20 bytes.
        l.command(
            3,
            &[
                &Loader::name(RSDP_FILE)?,
                &8u32.to_le_bytes(),
                &[0; 4],
                &20u32.to_le_bytes(),
            ],
        );
        let mut loader = l.0;
        if loader.len() > LOADER_LEN {
            return Err(FirmwareError::Invalid {
                image: IMAGE,
                field: "tables",
                offset: 0,
                reason: format!(
                    "{} tables need more loader commands than QEMU's 4 KiB script holds",
                    tables.len()
                ),
            });
        }
        loader.resize(LOADER_LEN, 0);

        let mut rsdp = [0u8; RSDP_LEN];
        crate::bytes::put_at::<0, _, _>(&mut rsdp, b"RSD PTR ");
        crate::bytes::put_at::<9, _, _>(&mut rsdp, b"BOCHS ");
        crate::bytes::put_at::<16, _, _>(&mut rsdp, &rsdt.offset.to_le_bytes());
        Ok(Tables {
            tables,
            rsdp,
            loader,
        })
    }
}

/// The tables of `blob`, up to the first position that does not start with a printable
/// signature (QEMU pads the blob with zeros).
pub fn list(blob: &[u8]) -> Result<Vec<Table>> {
    let img = Image::new(IMAGE, blob);
    let mut out = Vec::new();
    let mut off = 0u64;
    while off.saturating_add(8) <= img.len() {
        let signature = img.array::<4>(off, "table signature")?;
        if !signature.iter().all(|b| (0x20..0x7f).contains(b)) {
            break;
        }
        let len = img.u32(off.saturating_add(4), "table length")?;
        if len < HEADER_LEN {
            return Err(img.invalid(
                "table length",
                off.saturating_add(4),
                format!(
                    "{} table of {len} bytes is shorter than its header",
                    String::from_utf8_lossy(&signature)
                ),
            ));
        }
        img.bytes(off, u64::from(len), "table")?;
        let offset = u32::try_from(off)
            .map_err(|_| img.invalid("table", off, "offset above 4 GiB".to_owned()))?;
        out.push(Table {
            signature,
            offset,
            len,
        });
        off = off.saturating_add(u64::from(len));
    }
    if out.is_empty() {
        return Err(img.invalid(
            "tables",
            0,
            format!("no ACPI table in {} bytes", to_u64(blob.len())),
        ));
    }
    Ok(out)
}

/// QEMU's BIOS linker-loader commands (hw/acpi/bios-linker-loader.c).
struct Loader(Vec<u8>);

impl Loader {
    fn command(&mut self, tag: u32, fields: &[&[u8]]) {
        let start = self.0.len();
        self.0.extend_from_slice(&tag.to_le_bytes());
        for f in fields {
            self.0.extend_from_slice(f);
        }
        self.0.resize(start.saturating_add(COMMAND_LEN), 0);
    }

    fn name(file: &str) -> Result<[u8; FILE_NAME_LEN]> {
        let mut n = [0u8; FILE_NAME_LEN];
        crate::bytes::put(&mut n, 0, file.as_bytes())?;
        Ok(n)
    }

    fn allocate(&mut self, file: &str, align: u32, zone: u8) -> Result<()> {
        self.command(1, &[&Self::name(file)?, &align.to_le_bytes(), &[zone]]);
        Ok(())
    }

    fn pointer(&mut self, dst: &str, src: &str, offset: u32, size: u8) -> Result<()> {
        self.command(
            2,
            &[
                &Self::name(dst)?,
                &Self::name(src)?,
                &offset.to_le_bytes(),
                &[size],
            ],
        );
        Ok(())
    }

    fn checksum(&mut self, file: &str, t: Table) -> Result<()> {
        self.command(
            3,
            &[
                &Self::name(file)?,
                &t.offset.saturating_add(9).to_le_bytes(),
                &t.offset.to_le_bytes(),
                &t.len.to_le_bytes(),
            ],
        );
        Ok(())
    }
}
