//! The built-in guest: a small bzImage assembled from `guest/builtin.s` by the build
//! script, booted by `cvm launch` when neither firmware nor a kernel is given. It prints
//! what the boot protocol handed it (e820 map, command line, initrd checksum, vCPUs from
//! the MP table, each vCPU announcing itself) on COM1 and stops through the debug-exit
//! port. Its command-line switches (`cvm.test=poke|hang|triple`, `cvm.exit=N`) exercise
//! the VMM's handling of misbehaving guests.
//!
//! The attesting guest: a 256 KiB firmware-style image (`guest/attest.s` with the no_std
//! crate `guest/attest`, built by the build script), which `cvm launch --tee snp|tdx` and
//! `cvm measure --tee snp|tdx` use when no image is given. It ends at 4 GiB like OVMF,
//! with SEV metadata and a TDVF descriptor, so it is planned, measured and launched as
//! any firmware is. Under SEV-SNP it sends an SNP guest request through the GHCB, under
//! TDX it asks for a quote with GetQuote, and prints the evidence line; a failed step
//! stops it through the TEE's termination request (GHCB reason set 0xc, TDX
//! ReportFatalError) with the step's code. In a plain VM it computes the nonce binding
//! and reports that there is no TEE (exit status 2).

/// The built-in guest's bzImage.
pub const BUILTIN_GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtin.bin"));

/// The attesting guest's image.
pub const ATTEST_GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attest.bin"));

/// How reports name the attesting guest's image in place of a path.
pub const ATTEST_GUEST_NAME: &str = "(built-in attesting guest)";

/// The attesting guest's SNP message code, compiled into cvm as well: `cvm launch --tee
/// snp --dry-run --attest` plays the guest with the very functions the payload runs.
#[cfg(target_arch = "x86_64")]
#[path = "../guest/attest/src/snp_msg.rs"]
pub(crate) mod snp_msg;

#[cfg(test)]
#[cfg(target_arch = "x86_64")]
mod tests {
    use super::snp_msg::{self, MsgError};
    use cvm_attest::snp::guest_msg::{self, Message, ReportRequest};

    const KEY: [u8; 32] = [0x5a; 32];

    fn response(seqno: u64, status: u32, report: &[u8]) -> Vec<u8> {
        let m = Message {
            seqno,
            msg_type: guest_msg::MSG_REPORT_RSP,
            msg_version: 1,
            vmpck: 0,
            payload: guest_msg::report_response(status, report),
        };
        guest_msg::seal(&KEY, &m).unwrap()
    }

    #[test]
    fn the_guests_request_opens_with_the_verifiers_code() {
        let data = [7u8; 64];
        let sealed = snp_msg::report_request(&KEY, 5, &data);
        let m = guest_msg::open(&KEY, &sealed).unwrap();
        assert_eq!((m.seqno, m.msg_type, m.msg_version, m.vmpck), (5, 5, 1, 0));
        let req = ReportRequest::decode(&m.payload).unwrap();
        assert_eq!((req.report_data, req.vmpl, req.key_sel), (data, 0, 0));
        // Another key does not open it.
        assert!(guest_msg::open(&[0; 32], &sealed).is_err());
    }

    #[test]
    fn the_guest_opens_only_the_answer_to_its_request() {
        let report: Vec<u8> = (0..snp_msg::REPORT_LEN)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut ok = response(2, 0, &report);
        assert_eq!(
            snp_msg::open_report_response(&KEY, 1, &mut ok).map(|r| r.to_vec()),
            Ok(report.clone())
        );
        // The answer to another request (sequence number at 0x20).
        let mut other = response(4, 0, &report);
        assert_eq!(
            snp_msg::open_report_response(&KEY, 1, &mut other),
            Err(MsgError::Header(0x20))
        );
        // A flipped ciphertext byte.
        let mut bad = response(2, 0, &report);
        if let Some(b) = bad.get_mut(0x70) {
            *b ^= 1;
        }
        assert_eq!(
            snp_msg::open_report_response(&KEY, 1, &mut bad),
            Err(MsgError::Tag)
        );
        // The firmware's refusal (INVALID_PARAM), and a short message.
        let mut refused = response(2, 0x16, &[0; snp_msg::REPORT_LEN]);
        assert_eq!(
            snp_msg::open_report_response(&KEY, 1, &mut refused),
            Err(MsgError::Status(0x16))
        );
        let mut short = vec![0u8; 0x60];
        assert_eq!(
            snp_msg::open_report_response(&KEY, 1, &mut short),
            Err(MsgError::Header(0x36))
        );
    }

    /// The guest measures the host's certificate table as the verifier's parser reads
    /// it (`cvm_attest::snp::cert_table`); an empty table, one whose certificate runs past
    /// the buffer, or one without its terminating entry gives nothing to send.
    #[test]
    fn the_guest_sends_the_whole_certificate_table_and_nothing_else() {
        use cvm_attest::snp::cert_table;
        let table = crate::vmm::sev::model::test_vcek::cert_table().unwrap();
        let mut buffer = table.clone();
        buffer.resize(4 * 4096, 0);
        let n = snp_msg::cert_table_len(&buffer);
        assert_eq!(n, table.len());
        assert_eq!(cert_table::parse(&buffer[..n]).unwrap().len(), 3);
        assert_eq!(snp_msg::cert_table_len(&[0; 4096]), 0);
        // The last certificate one byte past the buffer.
        assert_eq!(snp_msg::cert_table_len(&table[..table.len() - 1]), 0);
        // Entries with no all-zero entry after them.
        let entries = cert_table::parse(&table).unwrap().len() * 24;
        assert_eq!(snp_msg::cert_table_len(&table[..entries]), 0);
    }
}
