//! Intel TDX: MRTD and RTMR 0-3, folded from a TDX [`LaunchPlan`].
//!
//! MRTD (TDX module ABI, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND): SHA-384 over, for every
//! page added, a 128-byte record "MEM.PAGE.ADD" with the page's GPA at byte 16, and for
//! every 256-byte chunk extended, a 128-byte record "MR.EXTEND" with the chunk's GPA,
//! followed by the chunk. The plan's step order is the order of those calls.
//!
//! RTMRs (TDVF direct boot): every event extends `RTMR = SHA-384(RTMR || digest)` from
//! zero. RTMR 0: the TD HOB, the CFV, the Secure Boot variables, the separator, the three
//! ACPI fw_cfg files, BootOrder and Boot0000. RTMR 1: the kernel's Authenticode digest and
//! the boot-service events. RTMR 2: the command line (UTF-16, with " initrd=initrd" when
//! the initrd is not empty), the initrd. The kernel, initrd and command line are the
//! blobs OVMF's kernel loader makes of the plan's fw_cfg items. RTMR 3 is never extended by the firmware.

use crate::error::{FirmwareError, Result};
use crate::guid::Guid;
use crate::ovmf::TdvfSectionType;
use crate::pe;
use crate::plan::{LaunchPlan, Origin, PageKind, Step};
use crate::reference::{Hex, TdxValues};
use crate::tdx::varstore::{self, SecureBootVariable};
use crate::tdx::{HOB_END_LEN, MR_EXTEND_CHUNK, PAGE, fw_cfg};
use crate::tee::Tee;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// A 48-byte SHA-384 value.
pub type Digest48 = [u8; 48];

/// A TCG event type (TCG PC Client Platform Firmware Profile, section 10.4.1): the ones
/// TDVF logs and the others a guest's firmware log may hold, by name, and any other value
/// as [`EventType::Other`]. In JSON a type is its name (`"EV_SEPARATOR"`), or for a value
/// without one, `"0x"` and eight hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// EV_POST_CODE (0x1).
    PostCode,
    /// EV_NO_ACTION (0x3): logged, never extended.
    NoAction,
    /// EV_SEPARATOR (0x4).
    Separator,
    /// EV_ACTION (0x5).
    ActionLegacy,
    /// EV_EVENT_TAG (0x6).
    EventTag,
    /// EV_S_CRTM_CONTENTS (0x7).
    CrtmContents,
    /// EV_S_CRTM_VERSION (0x8).
    CrtmVersion,
    /// EV_CPU_MICROCODE (0x9).
    CpuMicrocode,
    /// EV_PLATFORM_CONFIG_FLAGS (0xa).
    PlatformConfigFlags,
    /// EV_TABLE_OF_DEVICES (0xb).
    TableOfDevices,
    /// EV_COMPACT_HASH (0xc).
    CompactHash,
    /// EV_IPL (0xd).
    Ipl,
    /// EV_NONHOST_CODE (0xf).
    NonhostCode,
    /// EV_NONHOST_CONFIG (0x10).
    NonhostConfig,
    /// EV_NONHOST_INFO (0x11).
    NonhostInfo,
    /// EV_OMIT_BOOT_DEVICE_EVENTS (0x12).
    OmitBootDeviceEvents,
    /// EV_EFI_VARIABLE_DRIVER_CONFIG (0x80000001).
    VariableDriverConfig,
    /// EV_EFI_VARIABLE_BOOT (0x80000002).
    VariableBoot,
    /// EV_EFI_BOOT_SERVICES_APPLICATION (0x80000003).
    BootServicesApplication,
    /// EV_EFI_BOOT_SERVICES_DRIVER (0x80000004).
    BootServicesDriver,
    /// EV_EFI_RUNTIME_SERVICES_DRIVER (0x80000005).
    RuntimeServicesDriver,
    /// EV_EFI_GPT_EVENT (0x80000006).
    GptEvent,
    /// EV_EFI_ACTION (0x80000007).
    Action,
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB (0x80000008).
    FirmwareBlob,
    /// EV_EFI_HANDOFF_TABLES (0x80000009).
    HandoffTables,
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB2 (0x8000000a).
    FirmwareBlob2,
    /// EV_EFI_HANDOFF_TABLES2 (0x8000000b).
    HandoffTables2,
    /// EV_EFI_VARIABLE_BOOT2 (0x8000000c).
    VariableBoot2,
    /// EV_EFI_GPT_EVENT2 (0x8000000d).
    GptEvent2,
    /// EV_EFI_HCRTM_EVENT (0x80000010).
    HcrtmEvent,
    /// EV_EFI_VARIABLE_AUTHORITY (0x800000e0).
    VariableAuthority,
    /// EV_EFI_SPDM_FIRMWARE_BLOB (0x800000e1).
    SpdmFirmwareBlob,
    /// EV_EFI_SPDM_FIRMWARE_CONFIG (0x800000e2).
    SpdmFirmwareConfig,
    /// A value without a name here.
    Other(u32),
}

/// Every named type: value and name.
const EVENT_TYPES: &[(EventType, u32, &str)] = &[
    (EventType::PostCode, 0x1, "EV_POST_CODE"),
    (EventType::NoAction, 0x3, "EV_NO_ACTION"),
    (EventType::Separator, 0x4, "EV_SEPARATOR"),
    (EventType::ActionLegacy, 0x5, "EV_ACTION"),
    (EventType::EventTag, 0x6, "EV_EVENT_TAG"),
    (EventType::CrtmContents, 0x7, "EV_S_CRTM_CONTENTS"),
    (EventType::CrtmVersion, 0x8, "EV_S_CRTM_VERSION"),
    (EventType::CpuMicrocode, 0x9, "EV_CPU_MICROCODE"),
    (
        EventType::PlatformConfigFlags,
        0xa,
        "EV_PLATFORM_CONFIG_FLAGS",
    ),
    (EventType::TableOfDevices, 0xb, "EV_TABLE_OF_DEVICES"),
    (EventType::CompactHash, 0xc, "EV_COMPACT_HASH"),
    (EventType::Ipl, 0xd, "EV_IPL"),
    (EventType::NonhostCode, 0xf, "EV_NONHOST_CODE"),
    (EventType::NonhostConfig, 0x10, "EV_NONHOST_CONFIG"),
    (EventType::NonhostInfo, 0x11, "EV_NONHOST_INFO"),
    (
        EventType::OmitBootDeviceEvents,
        0x12,
        "EV_OMIT_BOOT_DEVICE_EVENTS",
    ),
    (
        EventType::VariableDriverConfig,
        0x8000_0001,
        "EV_EFI_VARIABLE_DRIVER_CONFIG",
    ),
    (EventType::VariableBoot, 0x8000_0002, "EV_EFI_VARIABLE_BOOT"),
    (
        EventType::BootServicesApplication,
        0x8000_0003,
        "EV_EFI_BOOT_SERVICES_APPLICATION",
    ),
    (
        EventType::BootServicesDriver,
        0x8000_0004,
        "EV_EFI_BOOT_SERVICES_DRIVER",
    ),
    (
        EventType::RuntimeServicesDriver,
        0x8000_0005,
        "EV_EFI_RUNTIME_SERVICES_DRIVER",
    ),
    (EventType::GptEvent, 0x8000_0006, "EV_EFI_GPT_EVENT"),
    (EventType::Action, 0x8000_0007, "EV_EFI_ACTION"),
    (
        EventType::FirmwareBlob,
        0x8000_0008,
        "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    ),
    (
        EventType::HandoffTables,
        0x8000_0009,
        "EV_EFI_HANDOFF_TABLES",
    ),
    (
        EventType::FirmwareBlob2,
        0x8000_000a,
        "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    ),
    (
        EventType::HandoffTables2,
        0x8000_000b,
        "EV_EFI_HANDOFF_TABLES2",
    ),
    (
        EventType::VariableBoot2,
        0x8000_000c,
        "EV_EFI_VARIABLE_BOOT2",
    ),
    (EventType::GptEvent2, 0x8000_000d, "EV_EFI_GPT_EVENT2"),
    (EventType::HcrtmEvent, 0x8000_0010, "EV_EFI_HCRTM_EVENT"),
    (
        EventType::VariableAuthority,
        0x8000_00e0,
        "EV_EFI_VARIABLE_AUTHORITY",
    ),
    (
        EventType::SpdmFirmwareBlob,
        0x8000_00e1,
        "EV_EFI_SPDM_FIRMWARE_BLOB",
    ),
    (
        EventType::SpdmFirmwareConfig,
        0x8000_00e2,
        "EV_EFI_SPDM_FIRMWARE_CONFIG",
    ),
];

impl EventType {
    /// The TCG PC Client value.
    pub fn value(self) -> u32 {
        match self {
            EventType::Other(v) => v,
            t => EVENT_TYPES
                .iter()
                .find(|(n, ..)| *n == t)
                .map_or(0, |&(_, v, _)| v),
        }
    }

    /// The type of a value: named where it has a name.
    pub fn from_value(v: u32) -> Self {
        EVENT_TYPES
            .iter()
            .find(|&&(_, n, _)| n == v)
            .map_or(EventType::Other(v), |&(t, ..)| t)
    }

    /// The TCG name (`EV_SEPARATOR`), or `None` for a value without one.
    pub fn name(self) -> Option<&'static str> {
        let v = self.value();
        EVENT_TYPES
            .iter()
            .find(|&&(_, n, _)| n == v)
            .map(|&(.., name)| name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#010x}", self.value()),
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(&(t, ..)) = EVENT_TYPES.iter().find(|&&(.., n)| n == s) {
            return Ok(t);
        }
        s.strip_prefix("0x")
            .filter(|h| h.len() == 8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .map(EventType::from_value)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "event type {s:?}: not a TCG name (EV_...) or 0x and eight hex digits"
                ))
            })
    }
}

/// One extension of an RTMR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The RTMR index (0-3).
    pub rtmr: u8,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The SHA-384 extended into the RTMR, hex.
    #[serde(with = "hex48")]
    pub digest: Digest48,
    /// What was measured.
    pub description: String,
}

mod hex48 {
    use crate::reference::Hex;
    use serde::{Deserialize, Serialize};

    pub fn serialize<S: serde::Serializer>(d: &[u8; 48], s: S) -> Result<S::Ok, S::Error> {
        Hex(*d).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 48], D::Error> {
        Hex::<48>::deserialize(d).map(|h| h.0)
    }
}

/// The format name of RTMR event logs.
pub const EVENT_LOG_FORMAT: &str = "cvm-tdx-event-log/1";

/// An RTMR event log: what `cvm measure --tee tdx --event-log-out` writes and `cvm
/// verify --event-log` replays against a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLog {
    /// [`EVENT_LOG_FORMAT`].
    pub format: String,
    /// MRTD, and the RTMRs the launch's inputs determine (`null` for the others: their
    /// events are logged, but some are missing).
    #[serde(flatten)]
    pub values: TdxValues,
    /// Every event, in order.
    pub events: Vec<Event>,
}

impl EventLog {
    /// The log of `m`.
    pub fn of(m: &TdxMeasurement) -> Self {
        EventLog {
            format: EVENT_LOG_FORMAT.to_owned(),
            values: m.values(),
            events: m.events.clone(),
        }
    }

    /// Checks a log read from elsewhere: its format, the RTMR of every event, and that
    /// the events of every RTMR it gives a value for replay to that value.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.format != EVENT_LOG_FORMAT {
            return Err(format!(
                "format {:?}, expected {EVENT_LOG_FORMAT:?}",
                self.format
            ));
        }
        if let Some(e) = self.events.iter().find(|e| e.rtmr > 3) {
            return Err(format!(
                "an event extends RTMR {}; there are four (0-3)",
                e.rtmr
            ));
        }
        for (index, stated) in (0u8..4).zip(&self.values.rtmr) {
            // An RTMR no event extends stays zero.
            let replayed = self.replay(index).map_or([0; 48], |(v, _)| v);
            if let Some(stated) = stated
                && replayed != stated.0
            {
                return Err(format!(
                    "its events do not replay to the RTMR {index} it states ({stated})"
                ));
            }
        }
        Ok(())
    }

    /// The value the events of RTMR `index` extend it to, and how many there are;
    /// `None` when the log has none for it.
    pub fn replay(&self, index: u8) -> Option<(Digest48, usize)> {
        replay(&self.events, index)
    }
}

/// The value `events` extend RTMR `index` to from zero, and how many of them do; `None`
/// when none does.
pub fn replay(events: &[Event], index: u8) -> Option<(Digest48, usize)> {
    let mut value = [0u8; 48];
    let mut n = 0usize;
    for e in events.iter().filter(|e| e.rtmr == index) {
        value = extend(&value, &e.digest);
        n = n.saturating_add(1);
    }
    (n > 0).then_some((value, n))
}

/// The TDX measurement of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxMeasurement {
    /// MRTD.
    pub mrtd: Digest48,
    /// RTMR 0-3; `None` where the plan does not determine it (RTMR 0 without the ACPI
    /// tables, RTMR 1 and 2 without direct boot).
    pub rtmr: [Option<Digest48>; 4],
    /// Every RTMR event, in order.
    pub events: Vec<Event>,
    /// The Secure Boot variables measured into RTMR 0.
    pub secure_boot: Vec<SecureBootVariable>,
    /// For each RTMR that is `None`, why the plan does not determine it.
    pub unpredicted: [Option<&'static str>; 4],
    /// The edk2 recipe the fold followed, and how it was decided.
    pub tdvf: crate::edk2::Detected,
}

impl TdxMeasurement {
    /// The values a quote of this TD will carry.
    pub fn values(&self) -> TdxValues {
        TdxValues {
            mrtd: Hex(self.mrtd),
            rtmr: self.rtmr.map(|r| r.map(Hex)),
            mr_config_id: None,
            mr_owner: None,
            mr_owner_config: None,
        }
    }
}

const ADD_TAG: &[u8; 12] = b"MEM.PAGE.ADD";
const EXTEND_TAG: &[u8; 9] = b"MR.EXTEND";

/// MRTD of `plan`: the fold of its steps.
pub fn mrtd(plan: &LaunchPlan<'_>) -> Result<Digest48> {
    let mut h = Sha384::new();
    for step in &plan.steps {
        match step.kind {
            PageKind::Normal => {
                for page in pages(step) {
                    record(&mut h, ADD_TAG, page);
                    extend_page(&mut h, step, page);
                }
            }
            PageKind::Added => pages(step).for_each(|page| record(&mut h, ADD_TAG, page)),
            PageKind::Extended => pages(step).for_each(|page| extend_page(&mut h, step, page)),
            PageKind::Augmented => {}
            other => {
                return Err(FirmwareError::Unsupported(format!(
                    "a TDX plan cannot hold {} pages (at {:#x})",
                    other.name(),
                    step.gpa
                )));
            }
        }
    }
    Ok(h.finalize().into())
}

fn pages(step: &Step<'_>) -> impl Iterator<Item = u64> {
    let gpa = step.gpa;
    (0..step.len / PAGE).map(move |i| gpa.saturating_add(i.saturating_mul(PAGE)))
}

fn record<const N: usize>(h: &mut Sha384, tag: &[u8; N], gpa: u64) {
    let mut buf = [0u8; 128];
    crate::bytes::put_at::<0, N, 128>(&mut buf, tag);
    crate::bytes::put_at::<16, 8, 128>(&mut buf, &gpa.to_le_bytes());
    h.update(buf);
}

/// TDH.MR.EXTEND of the 16 chunks of the page at `page`; contents past the step's data
/// are zero, as the page the VMM added.
fn extend_page(h: &mut Sha384, step: &Step<'_>, page: u64) {
    const ZERO: [u8; 256] = [0; 256];
    for i in 0..PAGE / MR_EXTEND_CHUNK {
        let gpa = page.saturating_add(i.saturating_mul(MR_EXTEND_CHUNK));
        record(h, EXTEND_TAG, gpa);
        let chunk = usize::try_from(gpa.saturating_sub(step.gpa))
            .ok()
            .and_then(|at| step.data.get(at..at.checked_add(256)?));
        h.update(chunk.unwrap_or(&ZERO));
    }
}

/// Extends `rtmr` with `digest`.
pub fn extend(rtmr: &Digest48, digest: &Digest48) -> Digest48 {
    let mut h = Sha384::new();
    h.update(rtmr);
    h.update(digest);
    h.finalize().into()
}

fn sha384(data: &[u8]) -> Digest48 {
    Sha384::digest(data).into()
}

fn utf16(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.encode_utf16().flat_map(u16::to_le_bytes)
}

/// The digest of an EV_EFI_VARIABLE_* event: SHA-384 of its UEFI_VARIABLE_DATA.
pub fn variable_event_digest(guid: &Guid, name: &str, data: &[u8]) -> Digest48 {
    sha384(&variable_data(guid, name, data))
}

/// The UEFI_VARIABLE_DATA that EV_EFI_VARIABLE_* events digest.
fn variable_data(guid: &Guid, name: &str, data: &[u8]) -> Vec<u8> {
    let chars = u64::try_from(name.encode_utf16().count()).unwrap_or(u64::MAX);
    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let mut v = Vec::with_capacity(32usize.saturating_add(data.len()));
    v.extend_from_slice(&guid.to_disk());
    v.extend_from_slice(&chars.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend(utf16(name));
    v.extend_from_slice(data);
    v
}

/// OVMF's Boot0000 for direct boot: the UiApp load option
/// (LOAD_OPTION_ACTIVE | HIDDEN | CATEGORY_APP, "UiApp", device path MEDIA_FV(DXEFV)
/// MEDIA_FV_FILE(UiApp) END).
fn boot0000() -> Vec<u8> {
    /// OVMF's DXEFV volume name.
    const DXEFV: Guid = crate::guid!("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1");
    /// MdeModulePkg UiApp's FILE_GUID.
    const UIAPP: Guid = crate::guid!("462caa21-7614-4503-836e-8ab6f4662331");
    let mut path = Vec::new();
    path.extend_from_slice(&[0x04, 0x07, 0x14, 0x00]);
    path.extend_from_slice(&DXEFV.to_disk());
    path.extend_from_slice(&[0x04, 0x06, 0x14, 0x00]);
    path.extend_from_slice(&UIAPP.to_disk());
    path.extend_from_slice(&[0x7f, 0xff, 0x04, 0x00]);
    let mut v = Vec::new();
    v.extend_from_slice(&0x109u32.to_le_bytes());
    v.extend_from_slice(&u16::try_from(path.len()).unwrap_or(0).to_le_bytes());
    v.extend(utf16("UiApp\0"));
    v.extend_from_slice(&path);
    v
}

struct Log {
    events: Vec<Event>,
}

impl Log {
    fn push(&mut self, rtmr: u8, event_type: EventType, digest: Digest48, description: String) {
        self.events.push(Event {
            rtmr,
            event_type,
            digest,
            description,
        });
    }
}

/// MRTD, the RTMRs and their events for `plan`.
pub fn measure(plan: &LaunchPlan<'_>) -> Result<TdxMeasurement> {
    if plan.tee() != Tee::Tdx {
        return Err(FirmwareError::Unsupported(format!(
            "a {} plan has no TDX measurement",
            plan.tee().name()
        )));
    }
    let part = plan
        .tdx()
        .ok_or_else(|| FirmwareError::Unsupported("not a TDX plan".into()))?;
    let tdvf = part.tdvf.clone();
    // MRTD and the RTMR events hash disjoint inputs: fold MRTD on a second thread.
    std::thread::scope(|scope| {
        let mrtd = scope.spawn(|| mrtd(plan));
        let (rtmr, events, secure_boot, unpredicted) = if part.extends_rtmrs {
            rtmrs(plan, &tdvf.recipe)?
        } else {
            // The TDX module starts every RTMR at zero, and nothing extends them.
            ([Some([0; 48]); 4], Vec::new(), Vec::new(), [None; 4])
        };
        let mrtd = mrtd
            .join()
            .unwrap_or_else(|_| Err(FirmwareError::Unsupported("the MRTD fold panicked".into())))?;
        Ok(TdxMeasurement {
            mrtd,
            rtmr,
            events,
            secure_boot,
            unpredicted,
            tdvf,
        })
    })
}

/// What RTMR 0 needs that a plan without ACPI tables lacks.
const NO_ACPI: &str = "RTMR 0 covers QEMU's ACPI tables: give --acpi-tables";
/// What RTMR 0 needs that no plan has, with edk2-stable202505 and later.
const SMBIOS: &str = "this TDVF (edk2-stable202505 or later) also measures the SMBIOS \
                      tables into RTMR 0 at ReadyToBoot (SmbiosMeasurementDxe), which cvm \
                      does not model";
/// What RTMR 1 and 2 need.
const NO_KERNEL: &str = "RTMR 1 and 2 cover the kernel the firmware boots: give --kernel";

/// The fw_cfg items TDVF's SEC phase caches and measures into RTMR 0, in its order
/// (edk2 `OvmfPkg/Library/QemuFwCfgLib/QemuFwCfgCacheInit.c` mCacheFwCfgList, the
/// entries with NeedMeasure): the name in the event, the item (a file name, or a key
/// read whether or not the VMM serves it) and the size the file must have (0: any).
const CACHED: [(&str, Option<u16>, usize); 6] = [
    ("etc/extra-pci-roots", None, 8),
    ("BootMenu", Some(crate::fwcfg::key::BOOT_MENU), 2),
    ("etc/boot-menu-wait", None, 2),
    ("etc/reserved-memory-end", None, 8),
    ("opt/ovmf/X-PciMmio64Mb", None, 0),
    ("bootorder", None, 0),
];

/// The RTMR values, their events, the Secure Boot variables measured, and why any RTMR
/// is undetermined.
#[allow(clippy::type_complexity, reason = "a private helper's tuple")]
fn rtmrs(
    plan: &LaunchPlan<'_>,
    recipe: &crate::edk2::Recipe,
) -> Result<(
    [Option<Digest48>; 4],
    Vec<Event>,
    Vec<SecureBootVariable>,
    [Option<&'static str>; 4],
)> {
    let mut log = Log { events: Vec::new() };
    let section = |kind: TdvfSectionType| {
        plan.steps.iter().find_map(|s| match s.origin {
            Origin::Tdvf {
                section, raw_size, ..
            } if section == kind => Some((s, raw_size)),
            _ => None,
        })
    };

    // RTMR 0.
    let acpi = [fw_cfg::TABLE_LOADER, fw_cfg::RSDP, fw_cfg::ACPI_TABLES]
        .map(|name| plan.fw_cfg.file(name).map(|d| (name, d)));
    let rtmr0_unknown = if !acpi.iter().all(Option::is_some) {
        Some(NO_ACPI)
    } else if recipe.fw_cfg_cache {
        Some(SMBIOS)
    } else {
        None
    };
    if let Some((hob, _)) = section(TdvfSectionType::TdHob) {
        let measured = hob
            .data
            .len()
            .checked_sub(HOB_END_LEN)
            .and_then(|n| hob.data.get(..n))
            .unwrap_or_default();
        // TdxMeasurementHob.c: the TD HOB is logged as EV_EFI_HANDOFF_TABLES2 ("TdxTable").
        log.push(
            0,
            EventType::HandoffTables2,
            sha384(measured),
            format!("TD HOB, {} bytes at {:#x}", measured.len(), hob.gpa),
        );
    }
    let mut vars = Vec::new();
    if let Some((cfv, raw)) = section(TdvfSectionType::Cfv) {
        let raw = usize::try_from(raw).unwrap_or(usize::MAX);
        let bytes = cfv.data.get(..raw).unwrap_or(&cfv.data);
        log.push(
            0,
            EventType::FirmwareBlob2,
            sha384(bytes),
            format!("CFV, {} bytes at {:#x}", bytes.len(), cfv.gpa),
        );
        vars = varstore::variables(bytes)?;
    }
    if recipe.fw_cfg_cache {
        // Each event's data is "QEMU FW CFG\0" and the 56-byte name; its digest is over
        // the item's bytes. A file is measured when served with a nonzero size (the
        // size it must have, where the list fixes one); the boot-menu key always, two
        // bytes, zeros when the VMM does not serve it (fw_cfg reads past an item are 0).
        for (name, key, size) in CACHED {
            let data: Option<Vec<u8>> = match key {
                Some(k) => {
                    let mut d = plan.fw_cfg.item(k).unwrap_or_default().to_vec();
                    d.resize(size, 0);
                    Some(d)
                }
                None => plan
                    .fw_cfg
                    .file(name)
                    .filter(|d| !d.is_empty() && (size == 0 || d.len() == size))
                    .map(<[u8]>::to_vec),
            };
            if let Some(d) = data {
                log.push(
                    0,
                    EventType::PlatformConfigFlags,
                    sha384(&d),
                    format!("fw_cfg {name} (QEMU FW CFG), {} bytes", d.len()),
                );
            }
        }
    }
    let secure_boot = varstore::secure_boot_variables(&vars);
    for v in &secure_boot {
        let data = v.data.as_deref().unwrap_or_default();
        log.push(
            0,
            EventType::VariableDriverConfig,
            variable_event_digest(&v.guid, v.name, data),
            format!("{} ({})", v.name, v.source),
        );
    }
    log.push(
        0,
        EventType::Separator,
        sha384(&[0; 4]),
        "separator".to_owned(),
    );
    for (name, data) in acpi.iter().flatten() {
        log.push(
            0,
            EventType::PlatformConfigFlags,
            sha384(data),
            format!("fw_cfg {name}, {} bytes", data.len()),
        );
    }
    log.push(
        0,
        EventType::VariableBoot,
        sha384(&[0, 0]),
        "BootOrder: 0000".to_owned(),
    );
    log.push(
        0,
        EventType::VariableBoot,
        sha384(&boot0000()),
        "Boot0000: UiApp".to_owned(),
    );

    // RTMR 1 and 2: direct boot.
    // The kernel loader file system's blobs, as TDVF reads them from fw_cfg.
    let kernel = plan.fw_cfg.loader_blob(fw_cfg::KERNEL);
    if let Some(kernel) = kernel.as_deref() {
        log.push(
            1,
            EventType::BootServicesApplication,
            pe::authenticode_sha384(kernel, "kernel")?,
            format!("kernel, Authenticode SHA-384 of {} bytes", kernel.len()),
        );
        const CALLING: &str = "Calling EFI Application from Boot Option";
        const EBS: &str = "Exit Boot Services Invocation";
        const EBS_OK: &str = "Exit Boot Services Returned with Success";
        for (ty, data, description) in [
            (EventType::Action, CALLING.as_bytes(), CALLING),
            (EventType::Separator, &[0u8; 4][..], "separator"),
            (EventType::Action, EBS.as_bytes(), EBS),
            (EventType::Action, EBS_OK.as_bytes(), EBS_OK),
        ] {
            log.push(1, ty, sha384(data), description.to_owned());
        }
        let initrd = plan.fw_cfg.loader_blob(fw_cfg::INITRD);
        // The command line ends in its NUL (QEMU's CMDLINE_DATA); the load options are
        // the string before it.
        let cmdline = plan.fw_cfg.loader_blob(fw_cfg::CMDLINE);
        let cmdline = cmdline.as_deref().unwrap_or_default();
        let cmdline = String::from_utf8_lossy(cmdline.strip_suffix(&[0]).unwrap_or(cmdline));
        // The load options (edk2 `X86QemuLoadImageLib` QemuLoadKernelImage): the command
        // line, with " initrd=initrd" when the initrd's size is not zero; none at all when
        // both are empty. The Linux EFI stub measures them only when there are some, and
        // the initrd only when it loaded one of nonzero size through LoadFile2, which the
        // firmware installs only then (`drivers/firmware/efi/libstub/efi-stub-helper.c`
        // efi_convert_cmdline and efi_load_initrd; `QemuKernelLoaderFsDxe.c`).
        // edk2-stable202508 and later put "initrd=initrd " in front (commit a2ac0fea49).
        let load_options = match (initrd.is_some(), recipe.initrd_prefix) {
            (false, _) => cmdline.into_owned(),
            (true, false) => format!("{cmdline} initrd=initrd"),
            (true, true) => format!("initrd=initrd {cmdline}"),
        };
        if !load_options.is_empty() {
            let mut bytes: Vec<u8> = utf16(&load_options).collect();
            bytes.extend_from_slice(&[0, 0]);
            log.push(
                2,
                EventType::EventTag,
                sha384(&bytes),
                format!("kernel command line {load_options:?} (UTF-16, NUL-terminated)"),
            );
        }
        if let Some(initrd) = initrd.as_deref() {
            log.push(
                2,
                EventType::EventTag,
                sha384(initrd),
                format!("initrd, {} bytes", initrd.len()),
            );
        }
    }

    let mut rtmr = [None; 4];
    let mut unpredicted = [None; 4];
    for (i, (slot, why)) in rtmr.iter_mut().zip(&mut unpredicted).enumerate() {
        *why = match i {
            0 => rtmr0_unknown,
            1 | 2 if kernel.is_none() => Some(NO_KERNEL),
            _ => None,
        };
        if why.is_none() {
            *slot = Some(
                log.events
                    .iter()
                    .filter(|e| usize::from(e.rtmr) == i)
                    .fold([0u8; 48], |r, e| extend(&r, &e.digest)),
            );
        }
    }
    // Without the ACPI tables RTMR 0's log would miss its middle; without the SMBIOS
    // event (edk2-stable202505+) only that event, which the log then lacks.
    if rtmr0_unknown == Some(NO_ACPI) {
        log.events.retain(|e| e.rtmr != 0);
    }
    Ok((rtmr, log.events, secure_boot, unpredicted))
}
