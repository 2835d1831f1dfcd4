//! Rendering results: text for people, one JSON object for pipelines.

use serde::Serialize;
use std::io::{self, Write};

/// The output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object on stdout, with stable field names.
    Json,
}

/// The version of every JSON document cvm prints, as its `"schema"` field. It changes
/// only when a field changes meaning or disappears (new fields do not change it).
pub const SCHEMA: u32 = 1;

/// `n` with the noun in the number it takes: "1 vCPU", "2 vCPUs".
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A result that can be shown in either format.
pub trait Render: Serialize {
    /// Writes the human-readable form.
    fn render_text(&self, out: &mut dyn Write) -> io::Result<()>;
}

/// A rendered result, ready to be written in the chosen format.
#[derive(Debug)]
pub struct Output {
    text: Vec<u8>,
    json: serde_json::Value,
}

impl Output {
    /// Renders `r` both ways.
    pub fn new<R: Render>(r: &R) -> Result<Self, crate::error::CliError> {
        let mut text = Vec::new();
        r.render_text(&mut text)
            .map_err(crate::error::CliError::Output)?;
        let mut json = serde_json::to_value(r).map_err(crate::error::CliError::Serialize)?;
        if let serde_json::Value::Object(map) = &mut json {
            map.entry("schema").or_insert(SCHEMA.into());
        }
        Ok(Output { text, json })
    }

    /// The JSON form.
    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    /// Writes the result in `format`.
    pub fn write(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Text => out.write_all(&self.text),
            Format::Json => write_json(&self.json, out),
        }
    }
}

/// Writes one JSON value, pretty-printed, followed by a newline.
pub fn write_json(value: &serde_json::Value, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}
