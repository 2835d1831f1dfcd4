//! The decoded claims of a quote, as the verdict reports them.

use super::pck::{PckCa, SgxExtensions};
use super::quote::{Body, EnclaveReport, Quote, TdReport, Tee};
use super::tcb::StatusAdvisories;
use hex::encode;
use serde::Serialize;

/// TDATTRIBUTES, decoded (bit numbers of the little-endian 64-bit value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdAttributes {
    /// Bit 0: the TD runs in debug mode (the host can read and change its state).
    pub debug: bool,
    /// Bit 28: EPT violations on pending pages do not become #VE in the TD.
    pub sept_ve_disable: bool,
    /// Bit 29: the TD may be migrated (TDX 1.5).
    pub migratable: bool,
    /// Bit 30: supervisor protection keys.
    pub pks: bool,
    /// Bit 31: key locker.
    pub kl: bool,
    /// Bit 63: performance monitoring.
    pub perfmon: bool,
    /// Every other set bit (reserved, or profiling/debug features), as a mask.
    pub other: String,
}

/// The bits [`TdAttributes`] names.
const NAMED: u64 = 1 | 1 << 28 | 1 << 29 | 1 << 30 | 1 << 31 | 1 << 63;

impl TdAttributes {
    /// Decodes the 8 bytes of TDATTRIBUTES.
    pub fn new(bytes: [u8; 8]) -> Self {
        let v = u64::from_le_bytes(bytes);
        let bit = |n: u32| v & (1u64 << n) != 0;
        TdAttributes {
            debug: bit(0),
            sept_ve_disable: bit(28),
            migratable: bit(29),
            pks: bit(30),
            kl: bit(31),
            perfmon: bit(63),
            other: format!("{:#018x}", v & !NAMED),
        }
    }

    /// The bits not named here.
    pub fn other_bits(bytes: [u8; 8]) -> u64 {
        u64::from_le_bytes(bytes) & !NAMED
    }
}

/// A TD report's fields.
#[derive(Debug, Clone, Serialize)]
pub struct TdClaims {
    /// TEE_TCB_SVN.
    pub tee_tcb_svn: String,
    /// MRSEAM.
    pub mr_seam: String,
    /// MRSIGNERSEAM.
    pub mr_signer_seam: String,
    /// SEAMATTRIBUTES.
    pub seam_attributes: String,
    /// TDATTRIBUTES (hex, as in the quote).
    pub td_attributes: String,
    /// TDATTRIBUTES decoded.
    pub td_attributes_decoded: TdAttributes,
    /// XFAM.
    pub xfam: String,
    /// MRTD.
    pub mr_td: String,
    /// MRCONFIGID.
    pub mr_config_id: String,
    /// MROWNER.
    pub mr_owner: String,
    /// MROWNERCONFIG.
    pub mr_owner_config: String,
    /// RTMR 0-3.
    pub rtmr: [String; 4],
    /// REPORTDATA.
    pub report_data: String,
    /// TEE_TCB_SVN_2 (TD report 1.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tee_tcb_svn_2: Option<String>,
    /// MRSERVICETD (TD report 1.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_service_td: Option<String>,
}

impl TdClaims {
    fn new(t: &TdReport) -> Self {
        TdClaims {
            tee_tcb_svn: encode(t.tee_tcb_svn),
            mr_seam: encode(t.mr_seam),
            mr_signer_seam: encode(t.mr_signer_seam),
            seam_attributes: encode(t.seam_attributes),
            td_attributes: encode(t.td_attributes),
            td_attributes_decoded: TdAttributes::new(t.td_attributes),
            xfam: encode(t.xfam),
            mr_td: encode(t.mr_td),
            mr_config_id: encode(t.mr_config_id),
            mr_owner: encode(t.mr_owner),
            mr_owner_config: encode(t.mr_owner_config),
            rtmr: t.rtmr.map(encode),
            report_data: encode(t.report_data),
            tee_tcb_svn_2: t.tee_tcb_svn_2.map(encode),
            mr_service_td: t.mr_service_td.map(encode),
        }
    }
}

/// An enclave report's fields (the SGX quote's enclave, or the QE).
#[derive(Debug, Clone, Serialize)]
pub struct EnclaveClaims {
    /// CPUSVN.
    pub cpu_svn: String,
    /// MISCSELECT.
    pub misc_select: String,
    /// ATTRIBUTES.
    pub attributes: String,
    /// ATTRIBUTES bit 1: a debug enclave.
    pub debug: bool,
    /// MRENCLAVE.
    pub mr_enclave: String,
    /// MRSIGNER.
    pub mr_signer: String,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// REPORTDATA.
    pub report_data: String,
}

impl EnclaveClaims {
    fn new(e: &EnclaveReport) -> Self {
        EnclaveClaims {
            cpu_svn: encode(e.cpu_svn),
            misc_select: format!("{:#010x}", e.misc_select),
            attributes: encode(e.attributes),
            debug: enclave_debug(e),
            mr_enclave: encode(e.mr_enclave),
            mr_signer: encode(e.mr_signer),
            isv_prod_id: e.isv_prod_id,
            isv_svn: e.isv_svn,
            report_data: encode(e.report_data),
        }
    }
}

/// Whether an enclave report's ATTRIBUTES.DEBUG bit is set.
pub fn enclave_debug(e: &EnclaveReport) -> bool {
    e.attributes.first().is_some_and(|b| b & 0x02 != 0)
}

/// The PCK certificate's platform claims.
#[derive(Debug, Clone, Serialize)]
pub struct PckClaims {
    /// FMSPC.
    pub fmspc: String,
    /// PCE ID.
    pub pce_id: String,
    /// PCESVN.
    pub pce_svn: u16,
    /// CPUSVN.
    pub cpu_svn: String,
    /// The SGX TCB components.
    pub tcb_components: String,
    /// The issuing CA.
    pub ca: PckCa,
}

impl PckClaims {
    /// From verified extensions.
    pub fn new(ext: &SgxExtensions, ca: PckCa) -> Self {
        PckClaims {
            fmspc: encode(ext.fmspc).to_ascii_uppercase(),
            pce_id: encode(ext.pce_id).to_ascii_uppercase(),
            pce_svn: ext.pce_svn,
            cpu_svn: encode(ext.cpu_svn),
            tcb_components: encode(ext.tcb_components),
            ca,
        }
    }
}

/// The TCB evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct TcbClaims {
    /// The merged status and advisories.
    #[serde(flatten)]
    pub status: StatusAdvisories,
    /// The platform level's status.
    pub platform: StatusAdvisories,
    /// The platform level's date.
    pub tcb_date: String,
    /// The TDX module's status (TDX modules with a major version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<StatusAdvisories>,
    /// The QE's status.
    pub qe: StatusAdvisories,
    /// Intel's TCB evaluation data number of the TCB Info.
    pub evaluation_data_number: u32,
}

/// Everything the quote says, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// The quote version.
    pub version: u16,
    /// TDX or SGX.
    pub tee: Tee,
    /// The body type.
    pub body: &'static str,
    /// The header's user data (the first 16 bytes are the QE ID).
    pub user_data: String,
    /// The TD report (TDX).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub td: Option<TdClaims>,
    /// The enclave report (SGX).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enclave: Option<EnclaveClaims>,
    /// The quoting enclave's report.
    pub qe: EnclaveClaims,
    /// The PCK certificate's claims (when its chain verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pck: Option<PckClaims>,
    /// The TCB evaluation (when the collateral allowed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcb: Option<TcbClaims>,
    /// Bytes after the quote's declared end (ignored; not signed).
    pub trailing_bytes: usize,
}

impl Claims {
    /// Decodes a parsed quote.
    pub fn new(q: &Quote<'_>) -> Self {
        Claims {
            version: q.header.version,
            tee: q.tee(),
            body: q.body.name(),
            user_data: encode(q.header.user_data),
            td: q.body.td().map(TdClaims::new),
            enclave: match &q.body {
                Body::Sgx(e) => Some(EnclaveClaims::new(e)),
                _ => None,
            },
            qe: EnclaveClaims::new(&q.qe_report),
            pck: None,
            tcb: None,
            trailing_bytes: q.trailing,
        }
    }
}
