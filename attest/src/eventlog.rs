//! Firmware event logs in the TCG crypto-agile format, as a TPM's firmware or a
//! confidential guest's firmware writes them.
//!
//! The format (TCG PC Client Platform Firmware Profile, sections 10.2 and 10.4): a first
//! event in the SHA-1 layout (`TCG_PCR_EVENT`: PCR index, event type EV_NO_ACTION, a
//! 20-byte digest, the event's size and data) whose data is the `Spec ID Event03`
//! structure naming every digest algorithm and its size; then `TCG_PCR_EVENT2` events:
//! index, type, a digest count and that many (algorithm, digest) pairs, the event's size
//! and data. All integers are little-endian.
//!
//! A confidential guest's log (UEFI 2.10 section 38.4, the ACPI CCEL table's log area)
//! has the same format with the CC measurement-register index in the PCR index field:
//! for TDX, 0 is MRTD and 1-4 are RTMR 0-3 (edk2 `TdxMeasurementLib` stores the RTMR
//! index plus one). Its log area is larger than the log; the rest is left as the
//! firmware cleared it, all 0xFF (or zero): a header of 0xFFFFFFFF or an all-zero or
//! all-0xFF remainder ends the log.
//!
//! Every length is checked against what is left; an error names the byte offset and the
//! field.

use crate::config::ConfigError;
use cvm_firmware::guid::Guid;
use cvm_firmware::measure::tdx::{self, EVENT_LOG_FORMAT, Event, EventLog, EventType};

/// The TCG algorithm ID of SHA-1.
pub const ALG_SHA1: u16 = 0x0004;
/// SHA-256.
pub const ALG_SHA256: u16 = 0x000b;
/// SHA-384.
pub const ALG_SHA384: u16 = 0x000c;
/// SHA-512.
pub const ALG_SHA512: u16 = 0x000d;
/// SM3-256.
pub const ALG_SM3_256: u16 = 0x0012;

/// The signature of the first event's data.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// More algorithms than any TPM has banks: a header naming more is damaged.
const MAX_ALGORITHMS: u32 = 16;
/// EV_NO_ACTION.
const EV_NO_ACTION: u32 = 0x3;

/// Why an event log could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event log, {field} at byte {offset:#x}: {reason}")]
pub struct LogError {
    /// Where.
    pub offset: usize,
    /// Which field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The first event's Spec ID structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecId {
    /// The platform class (0: client, 1: server).
    pub platform_class: u32,
    /// The specification version (major, minor, errata).
    pub version: (u8, u8, u8),
    /// The size of UINTN in the firmware (1: 32-bit, 2: 64-bit).
    pub uintn_size: u8,
    /// Every algorithm the events carry a digest of, with the digest's size.
    pub algorithms: Vec<(u16, u16)>,
}

/// One event after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcgEvent {
    /// Where the event starts in the log.
    pub offset: usize,
    /// The PCR index (a CC log: the measurement-register index).
    pub index: u32,
    /// The event type.
    pub event_type: u32,
    /// Every (algorithm, digest) pair, in the log's order.
    pub digests: Vec<(u16, Vec<u8>)>,
    /// The event data.
    pub data: Vec<u8>,
}

impl TcgEvent {
    /// The digest of `alg`, if the event has one.
    pub fn digest(&self, alg: u16) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }
}

/// A parsed crypto-agile log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcgLog {
    /// The header.
    pub spec: SpecId,
    /// The events after the header, in order.
    pub events: Vec<TcgEvent>,
    /// How many bytes the log takes (the rest of the input was padding).
    pub len: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], LogError> {
        let end = self.at.checked_add(n);
        match end.and_then(|e| self.bytes.get(self.at..e)) {
            Some(s) => {
                self.at = end.unwrap_or(self.at);
                Ok(s)
            }
            None => Err(LogError {
                offset: self.at,
                field,
                reason: format!(
                    "needs {n} bytes, {} left",
                    self.bytes.len().saturating_sub(self.at)
                ),
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], LogError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, LogError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, LogError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, LogError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn len32(&mut self, field: &'static str) -> Result<usize, LogError> {
        let at = self.at;
        let n = self.u32(field)?;
        usize::try_from(n).map_err(|_| LogError {
            offset: at,
            field,
            reason: format!("{n} does not fit in memory"),
        })
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    fn err(&self, offset: usize, field: &'static str, reason: String) -> LogError {
        LogError {
            offset,
            field,
            reason,
        }
    }
}

/// Parses a crypto-agile log; trailing padding (all 0xFF or all zero, or an event header
/// of 0xFFFFFFFF) ends it.
pub fn parse(bytes: &[u8]) -> Result<TcgLog, LogError> {
    let mut r = Reader { bytes, at: 0 };
    // The first event, in the SHA-1 layout.
    let index = r.u32("first event: PCR index")?;
    let ty = r.u32("first event: type")?;
    if ty != EV_NO_ACTION {
        return Err(r.err(
            4,
            "first event: type",
            format!(
                "{ty:#x}, not EV_NO_ACTION: not a crypto-agile log (a TCG 1.2 SHA-1 log \
                 is not read)"
            ),
        ));
    }
    if index != 0 {
        return Err(r.err(0, "first event: PCR index", format!("{index}, not 0")));
    }
    r.take(20, "first event: digest")?;
    let size = r.len32("first event: size")?;
    let data_at = r.at;
    let data = r.take(size, "first event: data")?;
    let spec = spec_id(data, data_at)?;

    let mut events = Vec::new();
    loop {
        let rest = r.rest();
        if rest.iter().all(|&b| b == 0xff) || rest.iter().all(|&b| b == 0) {
            break;
        }
        if rest.get(..8).is_some_and(|h| h.iter().all(|&b| b == 0xff)) {
            break;
        }
        events.push(event(&mut r, &spec)?);
    }
    Ok(TcgLog {
        spec,
        events,
        len: r.at,
    })
}

fn spec_id(data: &[u8], base: usize) -> Result<SpecId, LogError> {
    let mut r = Reader { bytes: data, at: 0 };
    let off = |r: &Reader<'_>| base.saturating_add(r.at);
    let at = off(&r);
    let signature: [u8; 16] = r.array("Spec ID: signature")?;
    if &signature != SPEC_ID_SIGNATURE {
        return Err(LogError {
            offset: at,
            field: "Spec ID: signature",
            reason: format!(
                "{:?}, not \"Spec ID Event03\": not a crypto-agile log",
                String::from_utf8_lossy(&signature)
            ),
        });
    }
    let platform_class = r.u32("Spec ID: platform class")?;
    let minor = r.u8("Spec ID: version minor")?;
    let major = r.u8("Spec ID: version major")?;
    let errata = r.u8("Spec ID: errata")?;
    let uintn_size = r.u8("Spec ID: UINTN size")?;
    let at = off(&r);
    let n = r.u32("Spec ID: number of algorithms")?;
    if n == 0 || n > MAX_ALGORITHMS {
        return Err(LogError {
            offset: at,
            field: "Spec ID: number of algorithms",
            reason: format!("{n}, expected 1 to {MAX_ALGORITHMS}"),
        });
    }
    let mut algorithms: Vec<(u16, u16)> = Vec::new();
    for _ in 0..n {
        let at = off(&r);
        let alg = r.u16("Spec ID: algorithm")?;
        let size = r.u16("Spec ID: digest size")?;
        if algorithms.iter().any(|(a, _)| *a == alg) {
            return Err(LogError {
                offset: at,
                field: "Spec ID: algorithm",
                reason: format!("{alg:#06x} is listed twice"),
            });
        }
        if let Some(want) = known_size(alg)
            && want != size
        {
            return Err(LogError {
                offset: at,
                field: "Spec ID: digest size",
                reason: format!("{size} for algorithm {alg:#06x}, whose digests are {want} bytes"),
            });
        }
        if size == 0 {
            return Err(LogError {
                offset: at,
                field: "Spec ID: digest size",
                reason: "0".into(),
            });
        }
        algorithms.push((alg, size));
    }
    let vendor = usize::from(r.u8("Spec ID: vendor info size")?);
    r.take(vendor, "Spec ID: vendor info")?;
    Ok(SpecId {
        platform_class,
        version: (major, minor, errata),
        uintn_size,
        algorithms,
    })
}

fn known_size(alg: u16) -> Option<u16> {
    match alg {
        ALG_SHA1 => Some(20),
        ALG_SHA256 | ALG_SM3_256 => Some(32),
        ALG_SHA384 => Some(48),
        ALG_SHA512 => Some(64),
        _ => None,
    }
}

fn event(r: &mut Reader<'_>, spec: &SpecId) -> Result<TcgEvent, LogError> {
    let offset = r.at;
    let index = r.u32("event: PCR index")?;
    let event_type = r.u32("event: type")?;
    let at = r.at;
    let count = r.u32("event: digest count")?;
    let most = spec.algorithms.len();
    if usize::try_from(count).map_or(true, |c| c > most) {
        return Err(r.err(
            at,
            "event: digest count",
            format!("{count}, but the header names {most} algorithms"),
        ));
    }
    let mut digests: Vec<(u16, Vec<u8>)> = Vec::new();
    for _ in 0..count {
        let at = r.at;
        let alg = r.u16("event: digest algorithm")?;
        let Some(&(_, size)) = spec.algorithms.iter().find(|(a, _)| *a == alg) else {
            return Err(r.err(
                at,
                "event: digest algorithm",
                format!("{alg:#06x}, which the header does not name"),
            ));
        };
        if digests.iter().any(|(a, _)| *a == alg) {
            return Err(r.err(
                at,
                "event: digest algorithm",
                format!("{alg:#06x} twice in one event"),
            ));
        }
        let d = r.take(usize::from(size), "event: digest")?;
        digests.push((alg, d.to_vec()));
    }
    let size = r.len32("event: size")?;
    let data = r.take(size, "event: data")?.to_vec();
    Ok(TcgEvent {
        offset,
        index,
        event_type,
        digests,
        data,
    })
}

/// A TDX guest's firmware log (CCEL), read as RTMR events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLog {
    /// Every event that extends an RTMR, in order, with a description decoded from its
    /// data.
    pub events: Vec<Event>,
    /// How many EV_NO_ACTION events the log has (logged, never extended).
    pub no_action: usize,
    /// How many bytes the log takes.
    pub len: usize,
}

impl GuestLog {
    /// Reads a TDX guest's log: SHA-384 events with MR index 1-4 (RTMR 0-3).
    pub fn parse(bytes: &[u8]) -> Result<Self, LogError> {
        let log = parse(bytes)?;
        if !log.spec.algorithms.iter().any(|(a, _)| *a == ALG_SHA384) {
            return Err(LogError {
                offset: 0,
                field: "Spec ID: algorithms",
                reason: format!(
                    "no SHA-384 ({}): not a TDX guest's log (a TPM's log is replayed against \
                     PCRs, which a quote does not carry)",
                    algorithm_names(&log.spec.algorithms)
                ),
            });
        }
        let mut events = Vec::new();
        let mut no_action = 0usize;
        for e in &log.events {
            if e.event_type == EV_NO_ACTION {
                no_action = no_action.saturating_add(1);
                continue;
            }
            let rtmr = match e.index {
                1..=4 => u8::try_from(e.index.saturating_sub(1)).unwrap_or(0),
                i => {
                    return Err(LogError {
                        offset: e.offset,
                        field: "event: MR index",
                        reason: format!(
                            "{i}: a TDX guest's events extend MR index 1-4 (RTMR 0-3); 0 is \
                             MRTD, which no event extends"
                        ),
                    });
                }
            };
            let Some(d) = e.digest(ALG_SHA384) else {
                return Err(LogError {
                    offset: e.offset,
                    field: "event: digests",
                    reason: "no SHA-384 digest".into(),
                });
            };
            let mut digest = [0u8; 48];
            digest.copy_from_slice(d.get(..48).unwrap_or(&[0; 48]));
            let event_type = EventType::from_value(e.event_type);
            events.push(Event {
                rtmr,
                event_type,
                digest,
                description: describe(event_type, &e.data),
            });
        }
        Ok(GuestLog {
            events,
            no_action,
            len: log.len,
        })
    }

    /// The value the events of RTMR `index` extend it to, and how many there are;
    /// `None` when the log has none for it.
    pub fn replay(&self, index: u8) -> Option<([u8; 48], usize)> {
        tdx::replay(&self.events, index)
    }
}

fn algorithm_names(algs: &[(u16, u16)]) -> String {
    let names: Vec<String> = algs
        .iter()
        .map(|(a, _)| match *a {
            ALG_SHA1 => "SHA-1".to_owned(),
            ALG_SHA256 => "SHA-256".to_owned(),
            ALG_SHA384 => "SHA-384".to_owned(),
            ALG_SHA512 => "SHA-512".to_owned(),
            ALG_SM3_256 => "SM3-256".to_owned(),
            a => format!("{a:#06x}"),
        })
        .collect();
    names.join(", ")
}

/// A log to replay against a quote: cvm's own (`cvm measure --event-log-out`), or a
/// guest's firmware log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyLog {
    /// `cvm-tdx-event-log/1`, checked.
    Cvm(Box<EventLog>),
    /// A guest's CCEL log.
    Guest(GuestLog),
}

impl AnyLog {
    /// Reads either format: JSON (`{` after white space) is cvm's, anything else the
    /// TCG crypto-agile format.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let json = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if json {
            let text = std::str::from_utf8(bytes).map_err(|e| {
                ConfigError::Invalid(format!("a {EVENT_LOG_FORMAT} log that is not UTF-8: {e}"))
            })?;
            crate::tdx::appraise::parse_event_log(text).map(|l| AnyLog::Cvm(Box::new(l)))
        } else {
            GuestLog::parse(bytes)
                .map(AnyLog::Guest)
                .map_err(|e| ConfigError::Invalid(e.to_string()))
        }
    }

    /// The events.
    pub fn events(&self) -> &[Event] {
        match self {
            AnyLog::Cvm(l) => &l.events,
            AnyLog::Guest(l) => &l.events,
        }
    }

    /// The value the events of RTMR `index` extend it to, and how many there are.
    pub fn replay(&self, index: u8) -> Option<([u8; 48], usize)> {
        tdx::replay(self.events(), index)
    }
}

/// A short, printable description of an event from its data (UEFI and TCG layouts), for
/// an operator reading a departure; never trusted for anything else.
pub fn describe(ty: EventType, data: &[u8]) -> String {
    let described = match ty {
        EventType::VariableDriverConfig
        | EventType::VariableBoot
        | EventType::VariableBoot2
        | EventType::VariableAuthority => variable(data),
        EventType::EventTag => tagged(data),
        EventType::HandoffTables2 => {
            // UINT8 size, description, UINT64 number of tables, the tables.
            prefixed(data).map(|(d, _)| format!("{d} (handoff tables)"))
        }
        EventType::FirmwareBlob2 => prefixed(data).map(|(d, rest)| {
            let base = le64(rest.get(..8));
            let len = le64(rest.get(8..16));
            match (base, len) {
                (Some(b), Some(l)) => format!("{d}, {l} bytes at {b:#x}"),
                _ => d,
            }
        }),
        EventType::FirmwareBlob => {
            let (b, l) = (le64(data.get(..8)), le64(data.get(8..16)));
            b.zip(l)
                .map(|(b, l)| format!("firmware blob, {l} bytes at {b:#x}"))
        }
        EventType::BootServicesApplication
        | EventType::BootServicesDriver
        | EventType::RuntimeServicesDriver => image_load(data),
        EventType::Separator => Some(match data {
            [0, 0, 0, 0] => "separator".to_owned(),
            [0xff, 0xff, 0xff, 0xff] => "separator (error)".to_owned(),
            _ => format!("separator, {}", hex::encode(data.get(..16).unwrap_or(data))),
        }),
        _ => text(data),
    };
    described.unwrap_or_else(|| format!("{} bytes of event data", data.len()))
}

fn le64(b: Option<&[u8]>) -> Option<u64> {
    b.and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

/// Printable ASCII (or UTF-16LE) text, NULs trimmed, at most 120 characters.
fn text(data: &[u8]) -> Option<String> {
    let trimmed = {
        let end = data
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p.saturating_add(1));
        data.get(..end).unwrap_or_default()
    };
    if trimmed.is_empty() {
        return None;
    }
    let printable = |c: char| c == ' ' || c.is_ascii_graphic();
    let ascii: String = trimmed
        .iter()
        .map(|&b| if b == 0 { ' ' } else { char::from(b) })
        .collect();
    if ascii.chars().all(printable) && !trimmed.contains(&0) {
        return Some(clip(&ascii));
    }
    // "QEMU FW CFG\0" and a name, or other NUL-separated ASCII.
    if trimmed
        .iter()
        .all(|&b| b == 0 || char::from(b).is_ascii_graphic() || b == b' ')
    {
        let parts: Vec<String> = trimmed
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        return Some(clip(&parts.join(": ")));
    }
    utf16(trimmed).filter(|s| !s.is_empty()).map(|s| clip(&s))
}

fn utf16(b: &[u8]) -> Option<String> {
    let units: Vec<u16> = b
        .chunks(2)
        .map(|c| match c {
            [lo, hi] => u16::from_le_bytes([*lo, *hi]),
            [lo] => u16::from(*lo),
            _ => 0,
        })
        .collect();
    let s = String::from_utf16(&units).ok()?;
    let s = s.trim_end_matches('\0').to_owned();
    s.chars()
        .all(|c| c == ' ' || c.is_ascii_graphic())
        .then_some(s)
}

fn clip(s: &str) -> String {
    const MOST: usize = 120;
    if s.chars().count() <= MOST {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MOST).collect();
        t.push_str("...");
        t
    }
}

/// UINT8 size, then that many bytes of ASCII description; the rest.
fn prefixed(data: &[u8]) -> Option<(String, &[u8])> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n);
    let d = rest.get(..n)?;
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    let d = String::from_utf8_lossy(d.get(..end).unwrap_or_default()).into_owned();
    Some((clip(&d), rest.get(n..).unwrap_or_default()))
}

/// UEFI_VARIABLE_DATA: GUID, UINT64 name length (characters), UINT64 data length, the
/// UTF-16 name, the data.
fn variable(data: &[u8]) -> Option<String> {
    let vendor = Guid::from_disk(data.get(..16)?.try_into().ok()?);
    let chars = usize::try_from(le64(data.get(16..24))?).ok()?;
    let len = le64(data.get(24..32))?;
    let name_end = chars.checked_mul(2)?.checked_add(32)?;
    let name = utf16(data.get(32..name_end)?)?;
    Some(format!("{name} ({vendor}), {len} bytes"))
}

/// TCG_PCClientTaggedEvent: UINT32 ID, UINT32 size, data.
fn tagged(data: &[u8]) -> Option<String> {
    let id = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
    let size = usize::try_from(u32::from_le_bytes(data.get(4..8)?.try_into().ok()?)).ok()?;
    let body = data.get(8..size.checked_add(8)?)?;
    let what = text(body).unwrap_or_else(|| format!("{} bytes", body.len()));
    Some(format!("tag {id:#x}: {what}"))
}

/// UEFI_IMAGE_LOAD_EVENT: location, length, link-time address, device-path length, the
/// device path; the file path nodes (media, type 4 subtype 4) name the image.
fn image_load(data: &[u8]) -> Option<String> {
    let len = le64(data.get(8..16))?;
    let path_len = usize::try_from(le64(data.get(24..32))?).ok()?;
    let path = data.get(32..path_len.checked_add(32)?)?;
    let mut names = Vec::new();
    let mut rest = path;
    while let [ty, sub, lo, hi, ..] = *rest {
        let n = usize::from(u16::from_le_bytes([lo, hi]));
        if n < 4 || ty == 0x7f {
            break;
        }
        let node = rest.get(..n)?;
        if ty == 4
            && sub == 4
            && let Some(s) = node.get(4..).and_then(utf16)
        {
            names.push(s);
        }
        rest = rest.get(n..)?;
    }
    Some(if names.is_empty() {
        format!("image, {len} bytes")
    } else {
        format!("image {}, {len} bytes", names.join("/"))
    })
}

/// How a guest's events for one RTMR depart from the plan's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DepartureKind {
    /// The plan predicts an event the guest's log does not have.
    Missing,
    /// The guest's log has an event the plan does not predict.
    Extra,
    /// The same kind of event in the same place, with another digest: what was measured
    /// differs.
    Digest,
}

/// One place where a guest's log departs from the plan's prediction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Departure {
    /// The RTMR (0-3).
    pub rtmr: u8,
    /// How.
    pub kind: DepartureKind,
    /// The event's position among the guest's events for this RTMR, from 0 (`missing`:
    /// the position the plan's event would have had).
    pub event: usize,
    /// The event type (the guest's; `missing`: the plan's).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The guest's event: its description, decoded from its data, and digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<Side>,
    /// The plan's event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Side>,
}

/// One side of a departure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Side {
    /// What was measured.
    pub description: String,
    /// The SHA-384 digest extended, hex.
    pub digest: String,
}

impl Side {
    fn of(e: &Event) -> Self {
        Side {
            description: e.description.clone(),
            digest: hex::encode(e.digest),
        }
    }
}

impl std::fmt::Display for Departure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (r, n, t) = (self.rtmr, self.event, self.event_type);
        let desc = |s: &Option<Side>| s.as_ref().map_or("", |s| s.description.as_str()).to_owned();
        match self.kind {
            DepartureKind::Digest => write!(
                f,
                "RTMR{r} event {n} ({t}): a different digest: the guest measured \"{}\", the \
                 plan predicts \"{}\"",
                desc(&self.guest),
                desc(&self.plan)
            ),
            DepartureKind::Extra => write!(
                f,
                "RTMR{r} event {n} ({t}): not in the plan: \"{}\"",
                desc(&self.guest)
            ),
            DepartureKind::Missing => write!(
                f,
                "RTMR{r} event {n} ({t}): the plan's \"{}\" is missing from the guest's log",
                desc(&self.plan)
            ),
        }
    }
}

/// Beyond this many (plan events x guest events) for one RTMR, events are compared
/// position by position instead of aligned.
const MOST_CELLS: usize = 1 << 22;

/// Where `guest`'s events for RTMR `rtmr` depart from `plan`'s: the two sequences are
/// aligned on equal digests (a longest common subsequence); between two aligned events,
/// a plan event and a guest event of the same type in the same place are one event with
/// another digest, the rest are missing or extra.
pub fn departures(rtmr: u8, plan: &[Event], guest: &[Event]) -> Vec<Departure> {
    let p: Vec<&Event> = plan.iter().filter(|e| e.rtmr == rtmr).collect();
    let g: Vec<&Event> = guest.iter().filter(|e| e.rtmr == rtmr).collect();
    let mut out = Vec::new();
    let (mut gap_p, mut gap_g) = (Vec::new(), Vec::new());
    for op in align(&p, &g) {
        match op {
            Op::Both(_, j) => close_gap(rtmr, &mut gap_p, &mut gap_g, j, &mut out),
            Op::Plan(i) => gap_p.extend(p.get(i).copied()),
            Op::Guest(j) => gap_g.extend(g.get(j).map(|e| (j, *e))),
        }
    }
    close_gap(rtmr, &mut gap_p, &mut gap_g, g.len(), &mut out);
    out
}

/// The departures of a run of unaligned plan and guest events, the next aligned guest
/// event being at `next`: in order, a guest event of the type of the next plan event is
/// that event with another digest, another guest event is extra; the plan events left
/// are missing (at `next`, where they would have been).
fn close_gap<'e>(
    rtmr: u8,
    plan: &mut Vec<&'e Event>,
    guest: &mut Vec<(usize, &'e Event)>,
    next: usize,
    out: &mut Vec<Departure>,
) {
    let mut ps = plan.drain(..).peekable();
    for (j, ge) in guest.drain(..) {
        let changed = ps.next_if(|pe| pe.event_type == ge.event_type);
        out.push(Departure {
            rtmr,
            kind: if changed.is_some() {
                DepartureKind::Digest
            } else {
                DepartureKind::Extra
            },
            event: j,
            event_type: ge.event_type,
            guest: Some(Side::of(ge)),
            plan: changed.map(Side::of),
        });
    }
    out.extend(ps.map(|pe| missing(rtmr, pe, next)));
}

fn missing(rtmr: u8, pe: &Event, at: usize) -> Departure {
    Departure {
        rtmr,
        kind: DepartureKind::Missing,
        event: at,
        event_type: pe.event_type,
        guest: None,
        plan: Some(Side::of(pe)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Both(usize, usize),
    Plan(usize),
    Guest(usize),
}

/// The alignment of `p` and `g` on equal digests, in order.
fn align(p: &[&Event], g: &[&Event]) -> Vec<Op> {
    let (n, m) = (p.len(), g.len());
    let same = |i: usize, j: usize| match (p.get(i), g.get(j)) {
        (Some(a), Some(b)) => a.digest == b.digest,
        _ => false,
    };
    let cells = n
        .checked_add(1)
        .and_then(|a| m.checked_add(1).and_then(|b| a.checked_mul(b)));
    let Some(cells) = cells.filter(|&c| c <= MOST_CELLS) else {
        // Position by position.
        let mut ops = Vec::new();
        for k in 0..n.max(m) {
            match (k < n, k < m) {
                (true, true) if same(k, k) => ops.push(Op::Both(k, k)),
                (true, true) => {
                    ops.push(Op::Plan(k));
                    ops.push(Op::Guest(k));
                }
                (true, false) => ops.push(Op::Plan(k)),
                (false, _) => ops.push(Op::Guest(k)),
            }
        }
        return ops;
    };
    // lcs[i * (m + 1) + j]: the longest common subsequence of p[i..] and g[j..].
    let width = m.saturating_add(1);
    let mut lcs = vec![0u32; cells];
    let at = |i: usize, j: usize| i.saturating_mul(width).saturating_add(j);
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if same(i, j) {
                lcs.get(at(i.saturating_add(1), j.saturating_add(1)))
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1)
            } else {
                let down = lcs.get(at(i.saturating_add(1), j)).copied().unwrap_or(0);
                let right = lcs.get(at(i, j.saturating_add(1))).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(c) = lcs.get_mut(at(i, j)) {
                *c = v;
            }
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < n || j < m {
        if i < n && j < m && same(i, j) {
            ops.push(Op::Both(i, j));
            i = i.saturating_add(1);
            j = j.saturating_add(1);
        } else if j >= m {
            ops.push(Op::Plan(i));
            i = i.saturating_add(1);
        } else if i >= n {
            ops.push(Op::Guest(j));
            j = j.saturating_add(1);
        } else {
            let down = lcs.get(at(i.saturating_add(1), j)).copied().unwrap_or(0);
            let right = lcs.get(at(i, j.saturating_add(1))).copied().unwrap_or(0);
            // Plan events first, so a changed event reads as one departure.
            if down >= right {
                ops.push(Op::Plan(i));
                i = i.saturating_add(1);
            } else {
                ops.push(Op::Guest(j));
                j = j.saturating_add(1);
            }
        }
    }
    ops
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    /// A header naming `algs`.
    fn header(algs: &[(u16, u16)]) -> Vec<u8> {
        let mut spec = SPEC_ID_SIGNATURE.to_vec();
        spec.extend(0u32.to_le_bytes());
        spec.extend([0, 2, 0, 2]);
        spec.extend(u32::try_from(algs.len()).unwrap().to_le_bytes());
        for (a, s) in algs {
            spec.extend(a.to_le_bytes());
            spec.extend(s.to_le_bytes());
        }
        spec.push(0);
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend(EV_NO_ACTION.to_le_bytes());
        b.extend([0; 20]);
        b.extend(u32::try_from(spec.len()).unwrap().to_le_bytes());
        b.extend(spec);
        b
    }

    fn event(index: u32, ty: u32, digests: &[(u16, &[u8])], data: &[u8]) -> Vec<u8> {
        let mut b = index.to_le_bytes().to_vec();
        b.extend(ty.to_le_bytes());
        b.extend(u32::try_from(digests.len()).unwrap().to_le_bytes());
        for (a, d) in digests {
            b.extend(a.to_le_bytes());
            b.extend(*d);
        }
        b.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
        b.extend(data);
        b
    }

    fn td_log() -> Vec<u8> {
        let mut b = header(&[(ALG_SHA384, 48)]);
        b.extend(event(
            1,
            0x8000_000b,
            &[(ALG_SHA384, &[1; 48])],
            b"\x09TdxTable\0",
        ));
        b.extend(event(1, 3, &[(ALG_SHA384, &[0; 48])], b"no action"));
        b.extend(event(
            2,
            0x8000_0007,
            &[(ALG_SHA384, &[2; 48])],
            b"Calling EFI Application from Boot Option",
        ));
        b.extend(event(3, 4, &[(ALG_SHA384, &[3; 48])], &[0; 4]));
        b
    }

    #[test]
    fn reads_a_td_log_and_maps_mr_index_to_rtmr() {
        use sha2::{Digest as _, Sha384};
        let mut bytes = td_log();
        let end = bytes.len();
        bytes.extend([0xff; 300]);
        let g = GuestLog::parse(&bytes).unwrap();
        assert_eq!(g.len, end);
        assert_eq!(g.no_action, 1);
        let rtmrs: Vec<u8> = g.events.iter().map(|e| e.rtmr).collect();
        assert_eq!(rtmrs, [0, 1, 2]);
        assert_eq!(g.events[0].event_type, EventType::HandoffTables2);
        assert_eq!(g.events[0].description, "TdxTable (handoff tables)");
        assert_eq!(
            g.events[1].description,
            "Calling EFI Application from Boot Option"
        );
        assert_eq!(g.events[2].description, "separator");
        // RTMR 0: SHA-384(48 zero bytes || [1; 48]).
        let mut h = Sha384::new();
        h.update([0u8; 48]);
        h.update([1u8; 48]);
        let want: [u8; 48] = h.finalize().into();
        assert_eq!(g.replay(0), Some((want, 1)));
        assert_eq!(g.replay(3), None);
    }

    #[test]
    fn every_truncation_is_an_error_naming_a_field() {
        let bytes = td_log();
        // A cut inside the header or an event is an error; a cut exactly between events
        // is a shorter log.
        let boundaries: Vec<usize> = {
            let log = parse(&bytes).unwrap();
            log.events
                .iter()
                .map(|e| e.offset)
                .chain([bytes.len()])
                .collect()
        };
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Ok(l) => assert!(boundaries.contains(&cut), "cut {cut}: {l:?}"),
                Err(e) => assert!(e.offset <= cut && !e.field.is_empty(), "{e}"),
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_crypto_agile_log() {
        let mut sha1_log = 0u32.to_le_bytes().to_vec();
        sha1_log.extend(8u32.to_le_bytes());
        sha1_log.extend([0; 24]);
        assert!(
            parse(&sha1_log)
                .unwrap_err()
                .to_string()
                .contains("TCG 1.2")
        );
        let mut bad = header(&[(ALG_SHA384, 48)]);
        bad[32] = b'X';
        assert!(
            parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("Spec ID: signature at byte 0x20")
        );
        let wrong_size = header(&[(ALG_SHA384, 32)]);
        assert!(
            parse(&wrong_size)
                .unwrap_err()
                .to_string()
                .contains("digest size")
        );
        let mut undeclared = header(&[(ALG_SHA384, 48)]);
        undeclared.extend(event(1, 4, &[(ALG_SHA256, &[0; 32])], &[0; 4]));
        assert!(
            parse(&undeclared)
                .unwrap_err()
                .to_string()
                .contains("does not name")
        );
        let mut huge = header(&[(ALG_SHA384, 48)]);
        let mut e = event(1, 4, &[(ALG_SHA384, &[0; 48])], &[]);
        let n = e.len();
        e[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        huge.extend(e);
        assert!(
            parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("event: data")
        );
    }

    #[test]
    fn a_tpm_log_or_an_mrtd_event_is_not_a_td_log() {
        let mut tpm = header(&[(ALG_SHA256, 32)]);
        tpm.extend(event(0, 4, &[(ALG_SHA256, &[0; 32])], &[0; 4]));
        assert!(
            GuestLog::parse(&tpm)
                .unwrap_err()
                .to_string()
                .contains("no SHA-384 (SHA-256)")
        );
        let mut mrtd = header(&[(ALG_SHA384, 48)]);
        mrtd.extend(event(0, 4, &[(ALG_SHA384, &[0; 48])], &[0; 4]));
        assert!(
            GuestLog::parse(&mrtd)
                .unwrap_err()
                .to_string()
                .contains("MR index at byte")
        );
    }

    #[test]
    fn describes_uefi_event_data() {
        // UEFI_VARIABLE_DATA for "PK" in EFI_GLOBAL_VARIABLE.
        let mut v = vec![
            0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03,
            0x2b, 0x8c,
        ];
        v.extend(2u64.to_le_bytes());
        v.extend(0u64.to_le_bytes());
        v.extend([b'P', 0, b'K', 0]);
        assert_eq!(
            describe(EventType::VariableDriverConfig, &v),
            "PK (8be4df61-93ca-11d2-aa0d-00e098032b8c), 0 bytes"
        );
        let mut tag = 0x8f3b22edu32.to_le_bytes().to_vec();
        tag.extend(5u32.to_le_bytes());
        tag.extend(b"abcd\0");
        assert_eq!(describe(EventType::EventTag, &tag), "tag 0x8f3b22ed: abcd");
        assert_eq!(
            describe(
                EventType::PlatformConfigFlags,
                b"QEMU FW CFG\0etc/e820\0\0\0"
            ),
            "QEMU FW CFG: etc/e820"
        );
        assert_eq!(
            describe(EventType::Ipl, &[0x80, 0x81]),
            "2 bytes of event data"
        );
    }

    fn ev(rtmr: u8, ty: EventType, d: u8, what: &str) -> Event {
        Event {
            rtmr,
            event_type: ty,
            digest: [d; 48],
            description: what.to_owned(),
        }
    }

    fn plan() -> Vec<Event> {
        vec![
            ev(0, EventType::HandoffTables2, 1, "TD HOB"),
            ev(0, EventType::FirmwareBlob2, 2, "CFV"),
            ev(0, EventType::Separator, 3, "separator"),
            ev(
                0,
                EventType::PlatformConfigFlags,
                4,
                "fw_cfg etc/acpi/tables",
            ),
            ev(1, EventType::BootServicesApplication, 5, "kernel"),
            ev(0, EventType::VariableBoot, 6, "BootOrder"),
        ]
    }

    #[test]
    fn the_same_events_do_not_depart() {
        for r in 0..4 {
            assert_eq!(departures(r, &plan(), &plan()), []);
        }
    }

    #[test]
    fn a_changed_event_is_one_digest_departure() {
        let mut g = plan();
        g[3].digest = [9; 48];
        g[3].description = "ACPI DATA".into();
        let d = departures(0, &plan(), &g);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].kind, d[0].event, d[0].event_type),
            (DepartureKind::Digest, 3, EventType::PlatformConfigFlags)
        );
        assert_eq!(
            d[0].plan.as_ref().unwrap().description,
            "fw_cfg etc/acpi/tables"
        );
        assert_eq!(d[0].guest.as_ref().unwrap().digest, hex::encode([9u8; 48]));
        assert!(
            d[0].to_string()
                .contains("RTMR0 event 3 (EV_PLATFORM_CONFIG_FLAGS): a different digest")
        );
        assert_eq!(departures(1, &plan(), &g), []);
    }

    #[test]
    fn a_removed_event_is_missing_where_it_would_have_been() {
        let mut g = plan();
        g.remove(1);
        let d = departures(0, &plan(), &g);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].kind, d[0].event), (DepartureKind::Missing, 1));
        assert_eq!(d[0].plan.as_ref().unwrap().description, "CFV");
        assert!(d[0].guest.is_none());
        // The last one.
        let mut g = plan();
        g.pop();
        let d = departures(0, &plan(), &g);
        assert_eq!(
            (d.len(), d[0].kind, d[0].event),
            (1, DepartureKind::Missing, 4)
        );
    }

    #[test]
    fn an_added_event_is_extra() {
        let mut g = plan();
        g.insert(
            2,
            ev(
                0,
                EventType::PlatformConfigFlags,
                7,
                "QEMU FW CFG: etc/smbios/smbios-tables",
            ),
        );
        let d = departures(0, &plan(), &g);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].kind, d[0].event), (DepartureKind::Extra, 2));
        assert!(
            d[0].to_string()
                .contains("not in the plan: \"QEMU FW CFG: etc/smbios/smbios-tables\"")
        );
        // A guest log with no events for the register: every plan event is missing.
        let d = departures(1, &plan(), &[]);
        assert_eq!(
            (d.len(), d[0].kind, d[0].event),
            (1, DepartureKind::Missing, 0)
        );
    }

    #[test]
    fn a_changed_event_of_another_type_is_extra_and_missing() {
        let mut g = plan();
        g[1] = ev(0, EventType::FirmwareBlob, 8, "another firmware");
        let kinds: Vec<DepartureKind> = departures(0, &plan(), &g).iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [DepartureKind::Extra, DepartureKind::Missing]);
    }
}
