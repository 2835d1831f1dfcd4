//! TCB status evaluation, as Intel's Quote Verification Library does it: the platform's
//! TCB level from the PCK certificate's SGX components and PCESVN and the quote's TDX TCB
//! components; the TDX module's and the QE's levels; the merged status and advisories.

use super::collateral::{IsvSvn, Level, QeIdentity, TcbInfo, TcbStatus, hex_field};
use super::pck::SgxExtensions;
use super::quote::{EnclaveReport, TdReport};
use serde::Serialize;

/// A status with its advisories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusAdvisories {
    /// The status.
    pub status: TcbStatus,
    /// Intel's advisory IDs (INTEL-SA-xxxxx).
    pub advisory_ids: Vec<String>,
}

impl StatusAdvisories {
    fn of<T>(level: &Level<T>) -> Self {
        StatusAdvisories {
            status: level.tcb_status,
            advisory_ids: level.advisory_ids.clone(),
        }
    }

    /// Merges a component's status (QE, TDX module) into the platform's: a revoked
    /// component revokes; an out-of-date component makes an up-to-date (or hardening)
    /// platform out of date, and a configuration-needed one out of date with configuration
    /// needed; otherwise the platform's status stands. Advisories are unioned.
    pub fn merge(&self, component: &StatusAdvisories) -> StatusAdvisories {
        use TcbStatus::*;
        let status = match (component.status, self.status) {
            (Revoked, _) => Revoked,
            (OutOfDate | OutOfDateConfigurationNeeded, UpToDate | SWHardeningNeeded) => OutOfDate,
            (
                OutOfDate | OutOfDateConfigurationNeeded,
                ConfigurationNeeded | ConfigurationAndSWHardeningNeeded,
            ) => OutOfDateConfigurationNeeded,
            (_, platform) => platform,
        };
        let mut advisory_ids = self.advisory_ids.clone();
        for id in &component.advisory_ids {
            if !advisory_ids.contains(id) {
                advisory_ids.push(id.clone());
            }
        }
        StatusAdvisories {
            status,
            advisory_ids,
        }
    }
}

fn svns(components: &[super::collateral::Component], what: &str) -> Result<[u8; 16], String> {
    let v: Vec<u8> = components.iter().map(|c| c.svn).collect();
    <[u8; 16]>::try_from(v.as_slice())
        .map_err(|_| format!("a TCB level has {} {what} components, not 16", v.len()))
}

/// Whether the TDX TCB components at `i` are compared against the platform level: not
/// the module's own SVNs (0 and 1) when the module has a major version, since those are
/// judged by the module's identity (quote versions 4 and 5).
fn tdx_component_compared(i: usize, tee_tcb_svn: &[u8; 16]) -> bool {
    i > 1 || tee_tcb_svn.get(1).is_none_or(|major| *major == 0)
}

/// The first platform TCB level (in the TCB Info's order, highest first) that the
/// platform meets.
pub fn platform_level(
    info: &TcbInfo,
    ext: &SgxExtensions,
    td: Option<&TdReport>,
) -> Result<(StatusAdvisories, String), String> {
    for level in &info.tcb_levels {
        let sgx = svns(&level.tcb.sgxtcbcomponents, "SGX")?;
        if ext
            .tcb_components
            .iter()
            .zip(sgx)
            .any(|(have, min)| *have < min)
        {
            continue;
        }
        if ext.pce_svn < level.tcb.pcesvn {
            continue;
        }
        if let Some(td) = td {
            let tdx = svns(
                level
                    .tcb
                    .tdxtcbcomponents
                    .as_deref()
                    .ok_or("a TDX TCB level has no tdxtcbcomponents")?,
                "TDX",
            )?;
            let below = td
                .tee_tcb_svn
                .iter()
                .zip(tdx)
                .enumerate()
                .any(|(i, (have, min))| tdx_component_compared(i, &td.tee_tcb_svn) && *have < min);
            if below {
                continue;
            }
        }
        return Ok((StatusAdvisories::of(level), level.tcb_date.clone()));
    }
    Err(format!(
        "no TCB level matches: the platform (SGX components {}, PCESVN {}{}) is below all {} \
         levels of the TCB Info (evaluation data number {}); Intel does not support this TCB",
        hex::encode(ext.tcb_components),
        ext.pce_svn,
        td.map(|t| format!(", TEE_TCB_SVN {}", hex::encode(t.tee_tcb_svn)))
            .unwrap_or_default(),
        info.tcb_levels.len(),
        info.tcb_evaluation_data_number
    ))
}

/// The TDX module's identity and status. A module with a major version (TEE_TCB_SVN[1])
/// is judged by the identity `TDX_<major>`, which gives a status; otherwise by the
/// `tdxModule` summary, which gives none.
pub fn module_status(
    info: &TcbInfo,
    td: &TdReport,
) -> Result<(Option<StatusAdvisories>, String), String> {
    let [minor, major, ..] = td.tee_tcb_svn;
    let (identity, id) = if major > 0 {
        let id = format!("TDX_{major:02X}");
        let identity = info
            .tdx_module_identities
            .iter()
            .flatten()
            .find(|m| m.id.as_deref() == Some(id.as_str()))
            .ok_or_else(|| format!("the TCB Info has no TDX module identity {id}"))?;
        (identity, id)
    } else {
        let summary = info
            .tdx_module
            .as_ref()
            .ok_or("the TCB Info has no tdxModule")?;
        (summary, "tdxModule".to_owned())
    };
    let signer = hex_field::<48>(&identity.mrsigner, "mrsigner")?;
    if signer != td.mr_signer_seam {
        return Err(format!(
            "MRSIGNERSEAM {} is not {id}'s signer {}",
            hex::encode(td.mr_signer_seam),
            identity.mrsigner
        ));
    }
    let attributes = hex_field::<8>(&identity.attributes, "attributes")?;
    let mask = hex_field::<8>(&identity.attributes_mask, "attributesMask")?;
    if masked_differ(&td.seam_attributes, &attributes, &mask) {
        return Err(format!(
            "SEAMATTRIBUTES {} do not match {id}'s {} under mask {}",
            hex::encode(td.seam_attributes),
            identity.attributes,
            identity.attributes_mask
        ));
    }
    if major == 0 {
        return Ok((
            None,
            format!("TDX module matches {id} (no module TCB levels)"),
        ));
    }
    let level = first_isv_level(&identity.tcb_levels, u16::from(minor))
        .ok_or_else(|| format!("TDX module SVN {minor} is below every level of {id}"))?;
    Ok((
        Some(StatusAdvisories::of(level)),
        format!(
            "TDX module {id} SVN {minor}: {} (level isvsvn {})",
            level.tcb_status, level.tcb.isvsvn
        ),
    ))
}

/// Whether `have` and `want` differ in a bit that `mask` selects.
fn masked_differ(have: &[u8], want: &[u8], mask: &[u8]) -> bool {
    have.iter()
        .zip(want)
        .zip(mask)
        .any(|((h, w), m)| h & m != w & m)
}

fn first_isv_level(levels: &[Level<IsvSvn>], svn: u16) -> Option<&Level<IsvSvn>> {
    levels.iter().find(|l| l.tcb.isvsvn <= svn)
}

/// Checks the QE report against the QE Identity (MRSIGNER, ISVPRODID, masked MISCSELECT
/// and ATTRIBUTES).
pub fn qe_identity_matches(id: &QeIdentity, qe: &EnclaveReport) -> Result<String, String> {
    let mut bad = Vec::new();
    let signer = hex_field::<32>(&id.mrsigner, "mrsigner")?;
    if signer != qe.mr_signer {
        bad.push(format!(
            "MRSIGNER {} is not {}",
            hex::encode(qe.mr_signer),
            id.mrsigner
        ));
    }
    if qe.isv_prod_id != id.isvprodid {
        bad.push(format!(
            "ISVPRODID {} is not {}",
            qe.isv_prod_id, id.isvprodid
        ));
    }
    let misc = u32::from_le_bytes(hex_field::<4>(&id.miscselect, "miscselect")?);
    let misc_mask = u32::from_le_bytes(hex_field::<4>(&id.miscselect_mask, "miscselectMask")?);
    if qe.misc_select & misc_mask != misc & misc_mask {
        bad.push(format!(
            "MISCSELECT {:#010x} does not match {} under mask {}",
            qe.misc_select, id.miscselect, id.miscselect_mask
        ));
    }
    let attrs = hex_field::<16>(&id.attributes, "attributes")?;
    let attrs_mask = hex_field::<16>(&id.attributes_mask, "attributesMask")?;
    if masked_differ(&qe.attributes, &attrs, &attrs_mask) {
        bad.push(format!(
            "ATTRIBUTES {} do not match {} under mask {}",
            hex::encode(qe.attributes),
            id.attributes,
            id.attributes_mask
        ));
    }
    if bad.is_empty() {
        Ok(format!(
            "the QE is Intel's {} (MRSIGNER {}, ISVPRODID {})",
            id.id,
            id.mrsigner.to_ascii_lowercase(),
            id.isvprodid
        ))
    } else {
        Err(format!(
            "the QE is not the one the QE Identity describes: {}",
            bad.join("; ")
        ))
    }
}

/// The QE's TCB status: the first level at or below its ISVSVN.
pub fn qe_status(id: &QeIdentity, qe: &EnclaveReport) -> Result<StatusAdvisories, String> {
    first_isv_level(&id.tcb_levels, qe.isv_svn)
        .map(StatusAdvisories::of)
        .ok_or_else(|| {
            format!(
                "QE ISVSVN {} is below every level of the QE Identity",
                qe.isv_svn
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcbStatus::*;

    fn s(status: TcbStatus, ids: &[&str]) -> StatusAdvisories {
        StatusAdvisories {
            status,
            advisory_ids: ids.iter().map(|i| (*i).to_owned()).collect(),
        }
    }

    #[test]
    fn merge_follows_intel_qvl() {
        let cases = [
            (UpToDate, UpToDate, UpToDate),
            (UpToDate, OutOfDate, OutOfDate),
            (SWHardeningNeeded, OutOfDate, OutOfDate),
            (ConfigurationNeeded, OutOfDate, OutOfDateConfigurationNeeded),
            (
                ConfigurationAndSWHardeningNeeded,
                OutOfDate,
                OutOfDateConfigurationNeeded,
            ),
            (OutOfDate, UpToDate, OutOfDate),
            (ConfigurationNeeded, UpToDate, ConfigurationNeeded),
            (UpToDate, Revoked, Revoked),
            (Revoked, UpToDate, Revoked),
            (UpToDate, SWHardeningNeeded, UpToDate),
        ];
        for (platform, component, want) in cases {
            assert_eq!(
                s(platform, &[]).merge(&s(component, &[])).status,
                want,
                "{platform} + {component}"
            );
        }
        let merged = s(UpToDate, &["A", "B"]).merge(&s(OutOfDate, &["B", "C"]));
        assert_eq!(merged.advisory_ids, ["A", "B", "C"]);
    }

    #[test]
    fn module_svns_are_left_to_the_module_identity() {
        let mut svn = [0u8; 16];
        assert!(tdx_component_compared(0, &svn));
        svn[1] = 1;
        assert!(!tdx_component_compared(0, &svn));
        assert!(!tdx_component_compared(1, &svn));
        assert!(tdx_component_compared(2, &svn));
    }
}
