//! Collateral bundles and pieces (the input split at NUL bytes into the files of a
//! collateral directory), TCB Info and QE Identity bodies on arbitrary text, and the TCB
//! evaluation over whatever decodes.
#![no_main]

use cvm_attest::tdx::collateral::{Collateral, QeIdentity, TcbInfo, window};
use cvm_attest::tdx::pck::SgxExtensions;
use cvm_attest::tdx::quote::{EnclaveReport, TdReport};
use cvm_attest::tdx::tcb;
use libfuzzer_sys::fuzz_target;

/// The files of a collateral directory, in the order the input's NUL-separated parts
/// fill them.
const NAMES: [&str; 8] = [
    "tcb_info.json",
    "qe_identity.json",
    "tcb_info.sig.bin",
    "qe_identity.sig.bin",
    "tcb_signing_chain.pem",
    "root_ca_crl.der",
    "pck_crl.der",
    "pck_crl_issuer_chain.pem",
];

fuzz_target!(|data: &[u8]| {
    let pieces: Vec<(&str, &[u8])> = NAMES.into_iter().zip(data.split(|b| *b == 0)).collect();
    let _ = Collateral::from_pieces(&pieces);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Collateral::parse_json(text);
    if let Ok(info) = serde_json::from_str::<TcbInfo>(text) {
        let _ = window(&info.issue_date, &info.next_update, cvm_attest::Time(0));
        let ext = SgxExtensions {
            ppid: vec![0; 16],
            tcb_components: [3; 16],
            pce_svn: 11,
            cpu_svn: [3; 16],
            pce_id: [0; 2],
            fmspc: [0; 6],
        };
        let td = TdReport {
            tee_tcb_svn: [1; 16],
            mr_seam: [0; 48],
            mr_signer_seam: [0; 48],
            seam_attributes: [0; 8],
            td_attributes: [0; 8],
            xfam: [0; 8],
            mr_td: [0; 48],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            rtmr: [[0; 48]; 4],
            report_data: [0; 64],
            tee_tcb_svn_2: None,
            mr_service_td: None,
        };
        let _ = tcb::platform_level(&info, &ext, Some(&td));
        let _ = tcb::module_status(&info, &td);
    }
    if let Ok(id) = serde_json::from_str::<QeIdentity>(text) {
        let qe = EnclaveReport {
            cpu_svn: [0; 16],
            misc_select: 0,
            attributes: [0; 16],
            mr_enclave: [0; 32],
            mr_signer: [0; 32],
            isv_prod_id: 1,
            isv_svn: 2,
            report_data: [0; 64],
        };
        let _ = tcb::qe_identity_matches(&id, &qe);
        let _ = tcb::qe_status(&id, &qe);
    }
});
