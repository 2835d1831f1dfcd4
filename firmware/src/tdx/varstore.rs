//! The UEFI variable store in OVMF's configuration firmware volume (CFV, the varstore of
//! a combined OVMF image): the enrolled Secure Boot keys that TDVF measures into RTMR 0.
//!
//! Layout (PI spec vol. 3, MdeModulePkg `VariableFormat.h`): an
//! `EFI_FIRMWARE_VOLUME_HEADER` ("_FVH" at byte 40, `HeaderLength` at 48), then a
//! `VARIABLE_STORE_HEADER` (format GUID, size, format 0x5a, state 0xfe), then variables
//! from the next 4-byte boundary, each a header with `StartId` 0x55aa, its name (UTF-16,
//! NUL-terminated) and data, 4-byte aligned. Authenticated stores have 60-byte headers,
//! plain ones 32-byte headers. A variable counts when its state is ADDED (0x3f), or ADDED
//! while in delete transition (0x3e) and no later copy exists.

use crate::bytes::Image;
use crate::error::Result;
use crate::guid::Guid;

const IMAGE: &str = "firmware CFV";

/// `gEfiAuthenticatedVariableGuid`.
pub const AUTHENTICATED_STORE: Guid = crate::guid!("aaf32c78-947b-439a-a180-2e144ec37792");
/// `gEfiVariableGuid`.
pub const PLAIN_STORE: Guid = crate::guid!("ddcf3616-3275-4164-98b6-fe85707ffe7d");
/// `EFI_GLOBAL_VARIABLE`: SecureBoot, PK, KEK.
pub const GLOBAL_VARIABLE: Guid = crate::guid!("8be4df61-93ca-11d2-aa0d-00e098032b8c");
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: db, dbx, dbt.
pub const IMAGE_SECURITY_DATABASE: Guid = crate::guid!("d719b2cb-3d3a-4596-a3bc-dad00e67656f");
/// `EFI_SECURE_BOOT_ENABLE_DISABLE`: OVMF's SecureBootEnable switch.
pub const SECURE_BOOT_ENABLE: Guid = crate::guid!("f0a30bc7-af08-4556-99c4-001009c93a44");

const VAR_ADDED: u8 = 0x3f;
const VAR_ADDED_IN_DELETE_TRANSITION: u8 = 0x3e;
const START_ID: u16 = 0x55aa;
const STORE_HEADER_LEN: u64 = 28;
const AUTH_HEADER_LEN: u64 = 60;
const PLAIN_HEADER_LEN: u64 = 32;

/// One live variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Vendor GUID.
    pub guid: Guid,
    /// Name, without the NUL.
    pub name: String,
    /// Offset of its header in the CFV.
    pub offset: u64,
    /// Contents.
    pub data: Vec<u8>,
}

/// The live variables of a CFV, in store order; empty when the volume holds no
/// variable store (an image without a CFV, or a CODE-only image).
pub fn variables(cfv: &[u8]) -> Result<Vec<Variable>> {
    let img = Image::new(IMAGE, cfv);
    if img.len() < 56 || img.array::<4>(40, "FV signature")? != *b"_FVH" {
        return Ok(Vec::new());
    }
    let header_len = u64::from(img.u16(48, "FV HeaderLength")?);
    let store = header_len;
    let format = Guid::from_disk(img.array::<16>(store, "variable store signature")?);
    let var_header_len = if format == AUTHENTICATED_STORE {
        AUTH_HEADER_LEN
    } else if format == PLAIN_STORE {
        PLAIN_HEADER_LEN
    } else {
        return Ok(Vec::new());
    };
    let store_size = u64::from(img.u32(store.saturating_add(16), "variable store size")?);
    img.bytes(store, store_size, "variable store (its header's size)")?;
    let store_end = store.saturating_add(store_size);
    let mut out: Vec<Variable> = Vec::new();
    let mut off = align4(store.saturating_add(STORE_HEADER_LEN));
    while off.saturating_add(var_header_len) <= store_end {
        if img.u16(off, "variable StartId")? != START_ID {
            break;
        }
        let state = img.u8(off.saturating_add(2), "variable State")?;
        let sizes = off.saturating_add(var_header_len).saturating_sub(24);
        let name_size = u64::from(img.u32(sizes, "variable NameSize")?);
        let data_size = u64::from(img.u32(sizes.saturating_add(4), "variable DataSize")?);
        let guid =
            Guid::from_disk(img.array::<16>(sizes.saturating_add(8), "variable VendorGuid")?);
        let name_at = off.saturating_add(var_header_len);
        let name_bytes = img.bytes(name_at, name_size, "variable name")?;
        let data_at = name_at.saturating_add(name_size);
        let data = img.bytes(data_at, data_size, "variable data")?;
        if name_size % 2 != 0 {
            return Err(img.invalid(
                "variable NameSize",
                sizes,
                format!("{name_size} is odd: names are UTF-16"),
            ));
        }
        let units: Vec<u16> = name_bytes
            .as_chunks::<2>()
            .0
            .iter()
            .map(|c| u16::from_le_bytes(*c))
            .take_while(|&u| u != 0)
            .collect();
        let name = String::from_utf16(&units)
            .map_err(|_| img.invalid("variable name", name_at, "not UTF-16".to_owned()))?;
        if state == VAR_ADDED || state == VAR_ADDED_IN_DELETE_TRANSITION {
            out.retain(|v| !(v.guid == guid && v.name == name));
            out.push(Variable {
                guid,
                name,
                offset: off,
                data: data.to_vec(),
            });
        }
        off = align4(data_at.saturating_add(data_size));
    }
    Ok(out)
}

fn align4(n: u64) -> u64 {
    n.saturating_add(3) & !3
}

/// The Secure Boot variables TDVF measures, in its order, with the contents it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureBootVariable {
    /// Vendor GUID.
    pub guid: Guid,
    /// Name.
    pub name: &'static str,
    /// Contents; `None` when the variable does not exist (measured with no data).
    pub data: Option<Vec<u8>>,
    /// Where the contents come from, for `--explain`.
    pub source: String,
}

/// The variables measured as EV_EFI_VARIABLE_DRIVER_CONFIG: SecureBoot, PK, KEK, db, dbx,
/// then dbt only if it exists (SecurityPkg `MeasureAllSecureVariables`).
///
/// PK, KEK, db, dbx and dbt are read from the store. SecureBoot is volatile, set at boot
/// by the variable driver: with a PK enrolled it is the SecureBootEnable setting (enabled,
/// 1, unless the store disables it); without one, cvm measures it as absent, as the
/// reference tools do for the images they were checked against.
pub fn secure_boot_variables(vars: &[Variable]) -> Vec<SecureBootVariable> {
    let find = |guid: Guid, name: &str| vars.iter().find(|v| v.guid == guid && v.name == name);
    let stored = |guid: Guid, name: &'static str| SecureBootVariable {
        guid,
        name,
        data: find(guid, name).map(|v| v.data.clone()),
        source: match find(guid, name) {
            Some(v) => format!(
                "variable store at CFV offset {:#x}, {} bytes",
                v.offset,
                v.data.len()
            ),
            None => "not in the variable store".to_owned(),
        },
    };
    let pk = find(GLOBAL_VARIABLE, "PK");
    let secure_boot = match pk {
        Some(_) => {
            let enable = find(SECURE_BOOT_ENABLE, "SecureBootEnable");
            let value = enable.and_then(|v| v.data.first().copied()).unwrap_or(1);
            SecureBootVariable {
                guid: GLOBAL_VARIABLE,
                name: "SecureBoot",
                data: Some(vec![value]),
                source: match enable {
                    Some(_) => format!("{value}: PK enrolled, SecureBootEnable = {value}"),
                    None => "1: PK enrolled, SecureBootEnable defaults to enabled".to_owned(),
                },
            }
        }
        None => SecureBootVariable {
            guid: GLOBAL_VARIABLE,
            name: "SecureBoot",
            data: None,
            source: "absent: no PK enrolled".to_owned(),
        },
    };
    let mut out = vec![
        secure_boot,
        stored(GLOBAL_VARIABLE, "PK"),
        stored(GLOBAL_VARIABLE, "KEK"),
        stored(IMAGE_SECURITY_DATABASE, "db"),
        stored(IMAGE_SECURITY_DATABASE, "dbx"),
    ];
    if find(IMAGE_SECURITY_DATABASE, "dbt").is_some() {
        out.push(stored(IMAGE_SECURITY_DATABASE, "dbt"));
    }
    out
}
