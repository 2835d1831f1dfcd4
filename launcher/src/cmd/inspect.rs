//! `cvm inspect`: the parsed structure of an image.

use super::{CmdResult, InputKind, read_input, simple};
use crate::error::CliError;
use crate::output::{Output, Render};
use clap::{Args, Subcommand};
use cvm_firmware::ovmf::{FooterEntry, OvmfImage, SevMetadata, TdvfDescriptor, TdvfSectionType};
use cvm_firmware::tdx::varstore;
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;

/// What to inspect.
#[derive(Debug, Subcommand)]
pub enum InspectArgs {
    /// An OVMF-style firmware image: footer table, SEV metadata, TDVF descriptor.
    Firmware(FirmwareArgs),
}

/// Arguments of `cvm inspect firmware`.
#[derive(Debug, Args)]
pub struct FirmwareArgs {
    /// The image.
    pub file: PathBuf,
}

/// What `cvm inspect firmware` reports.
#[derive(Debug, Serialize)]
pub struct FirmwareReport {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// The guest physical address it is mapped at (it ends at 4 GiB).
    pub gpa: u64,
    /// Footer table entries, in file order.
    pub footer_table: Vec<FooterEntry>,
    /// The AP reset address (SEV-ES reset block).
    pub sev_es_reset_eip: Option<u32>,
    /// The kernel hashes table location `[gpa, size]`.
    pub sev_hashes_table: Option<(u32, u32)>,
    /// The SEV secret block `[gpa, size]`.
    pub sev_secret_block: Option<(u32, u32)>,
    /// The SEV metadata.
    pub sev_metadata: Option<SevMetadata>,
    /// The TDVF descriptor.
    pub tdvf: Option<TdvfDescriptor>,
    /// The UEFI variables in the TDVF configuration volume (what RTMR 0 measures of it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cfv_variables: Vec<VariableInfo>,
}

/// One variable of the configuration volume's store.
#[derive(Debug, Serialize)]
pub struct VariableInfo {
    /// Its name.
    pub name: String,
    /// Its vendor GUID.
    pub guid: String,
    /// Offset of its header in the CFV.
    pub offset: u64,
    /// Bytes of data.
    pub size: usize,
}

impl Render for FirmwareReport {
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{}: {} bytes at gpa {:#x}",
            self.path.display(),
            self.size,
            self.gpa
        )?;
        if self.footer_table.is_empty() {
            writeln!(out, "no OVMF footer table")?;
        }
        for e in &self.footer_table {
            writeln!(
                out,
                "  entry {} {:<20} @{:#x} data={}",
                e.guid,
                e.name.unwrap_or("?"),
                e.offset,
                hex::encode(&e.data)
            )?;
        }
        if let Some(eip) = self.sev_es_reset_eip {
            writeln!(out, "SEV-ES AP reset address: {eip:#x}")?;
        }
        if let Some((gpa, len)) = self.sev_hashes_table {
            writeln!(out, "SEV hashes table: gpa {gpa:#x} size {len:#x}")?;
        }
        if let Some((gpa, len)) = self.sev_secret_block {
            writeln!(out, "SEV secret block: gpa {gpa:#x} size {len:#x}")?;
        }
        if let Some(m) = &self.sev_metadata {
            writeln!(
                out,
                "SEV metadata @{:#x} version {}: {} sections",
                m.offset,
                m.version,
                m.sections.len()
            )?;
            for s in &m.sections {
                writeln!(
                    out,
                    "  gpa {:#010x} size {:#08x} {:?}",
                    s.gpa, s.size, s.kind
                )?;
            }
        }
        if let Some(t) = &self.tdvf {
            writeln!(
                out,
                "TDVF descriptor @{:#x} version {}: {} sections",
                t.offset,
                t.version,
                t.sections.len()
            )?;
            for s in &t.sections {
                writeln!(
                    out,
                    "  {:?} data {:#x}+{:#x} mem {:#x}+{:#x} attributes {:#x}",
                    s.kind, s.data_offset, s.raw_size, s.mem_address, s.mem_size, s.attributes
                )?;
            }
        }
        if !self.cfv_variables.is_empty() {
            writeln!(
                out,
                "CFV variable store: {} variables",
                self.cfv_variables.len()
            )?;
            for v in &self.cfv_variables {
                writeln!(
                    out,
                    "  {} {:<12} @{:#x} {} bytes",
                    v.guid, v.name, v.offset, v.size
                )?;
            }
        }
        Ok(())
    }
}

/// Runs `cvm inspect`.
pub fn run(args: &InspectArgs) -> CmdResult {
    match args {
        InspectArgs::Firmware(a) => simple(|| Output::new(&firmware(a)?)),
    }
}

fn firmware(args: &FirmwareArgs) -> Result<FirmwareReport, CliError> {
    let bytes = read_input(&args.file, InputKind::Firmware)?;
    let err = |source| CliError::Firmware {
        path: args.file.clone(),
        source,
    };
    let fw = OvmfImage::parse(&bytes).map_err(err)?;
    let cfv = fw
        .tdvf()
        .and_then(|t| t.sections.iter().find(|s| s.kind == TdvfSectionType::Cfv))
        .and_then(|s| {
            let start = usize::try_from(s.data_offset).ok()?;
            bytes.get(start..start.checked_add(usize::try_from(s.raw_size).ok()?)?)
        });
    let cfv_variables = match cfv {
        Some(cfv) => varstore::variables(cfv).map_err(err)?,
        None => Vec::new(),
    };
    Ok(FirmwareReport {
        path: args.file.clone(),
        size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        gpa: fw.gpa(),
        footer_table: fw.entries().to_vec(),
        sev_es_reset_eip: fw.sev_es_reset_eip().map_err(err)?,
        sev_hashes_table: fw.sev_hashes_table().map_err(err)?,
        sev_secret_block: fw.sev_secret_block().map_err(err)?,
        sev_metadata: fw.sev_metadata().cloned(),
        tdvf: fw.tdvf().cloned(),
        cfv_variables: cfv_variables
            .into_iter()
            .map(|v| VariableInfo {
                guid: v.guid.to_string(),
                offset: v.offset,
                size: v.data.len(),
                name: v.name,
            })
            .collect(),
    })
}
