//! Benchmark: SEV-SNP report verification, cvm against the `sev` crate's OpenSSL path (and
//! snpguest, when given), on the same report and certificates.
//!
//! - Cold, in process, per verification: everything from bytes each time. cvm loads its
//!   built-in AMD roots, parses the certificates and the report, verifies the chain, the
//!   certificates' dates, the report signature and the VCEK's match to the report, and
//!   appraises; the sev crate parses the certificates and the report and verifies the
//!   chain (the supplied ARK is trusted as given) and the signature, nothing more.
//! - Cold, whole process: `cvm verify`, this program's `sev-once` mode (one sev/OpenSSL
//!   verification in a fresh process), and snpguest's `verify certs` + `verify attestation`.
//! - Batch: cvm per further report once a batch has verified the chain (what `cvm verify`
//!   with several `--evidence` does), against the floor of one P-384 signature check.
//!
//! Prints times and ratios; asserts nothing about time. Run through bench/verify-snp.sh.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program that reports on stdout"
)]

use cvm_attest::snp::Verifier;
use cvm_attest::snp::appraise::Policy;
use cvm_attest::snp::certs::{Roots, Supplied};
use cvm_attest::{Cache, Status, Time};
use cvm_tests::{case_time, median, ms, ratio, time_command, vectors};
use sev::certs::snp::{Certificate, Chain, Verifiable, ca};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ITERATIONS: u32 = 200;
const RUNS: usize = 5;
const PROCESS_RUNS: usize = 11;

const CASES: [&str; 3] = [
    "snp/snp-milan-v3-oak-oc-release",
    "snp/snp-genoa-v3-azure",
    "snp/snp-turin-v5-oak",
];

/// The files of one case, read once (the timed work starts from bytes).
struct Case {
    dir: PathBuf,
    report: Vec<u8>,
    certs: Vec<(String, Vec<u8>)>,
    at: Time,
}

impl Case {
    fn load(dir: &Path) -> Case {
        let mut certs = Vec::new();
        for e in std::fs::read_dir(dir.join("certs")).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            certs.push((name, std::fs::read(&path).unwrap()));
        }
        certs.sort();
        Case {
            dir: dir.to_owned(),
            report: std::fs::read(dir.join("report.bin")).unwrap(),
            certs,
            at: case_time(dir),
        }
    }

    fn cert(&self, stem: &str) -> &[u8] {
        &self
            .certs
            .iter()
            .find(|(n, _)| n.starts_with(stem))
            .unwrap_or_else(|| panic!("{}: no {stem} certificate", self.dir.display()))
            .1
    }

    fn supplied(&self) -> Supplied {
        let files: Vec<(&str, &[u8])> = self
            .certs
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        Supplied::from_files(&files).unwrap().0
    }
}

fn cvm_verify(case: &Case, roots: &Roots, supplied: &Supplied, cache: &Cache) -> Status {
    Verifier {
        roots,
        supplied,
        crl: None,
        reference: None,
        policy: &Policy::default(),
        at: case.at,
        cache,
    }
    .verify(&case.report)
    .verdict
}

fn sev_verify(case: &Case) -> Result<(), String> {
    let cert = |stem: &str| Certificate::from_bytes(case.cert(stem)).map_err(|e| e.to_string());
    let chain = Chain {
        ca: ca::Chain {
            ark: cert("ark")?,
            ask: cert("ask")?,
        },
        vek: cert("vcek")?,
    };
    let report = AttestationReport::from_bytes(&case.report).map_err(|e| e.to_string())?;
    (&chain, &report).verify().map_err(|e| e.to_string())
}

/// The median over `RUNS` of the mean time of `ITERATIONS` calls.
fn per_call(mut f: impl FnMut()) -> Duration {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            f();
        }
        runs.push(start.elapsed() / ITERATIONS);
    }
    median(runs)
}

fn cvm_cold(case: &Case) -> Duration {
    per_call(|| {
        let roots = Roots::amd().unwrap();
        let status = cvm_verify(case, &roots, &case.supplied(), &Cache::default());
        assert_eq!(status, Status::Pass);
    })
}

fn sev_cold(case: &Case) -> Duration {
    per_call(|| sev_verify(case).unwrap())
}

/// A further report in a batch: roots, certificates and the verified chain are there;
/// the report is parsed, its signature verified, the leaf matched and the claims appraised.
fn cvm_batch(case: &Case) -> Duration {
    let roots = Roots::amd().unwrap();
    let supplied = case.supplied();
    let cache = Cache::default();
    assert_eq!(cvm_verify(case, &roots, &supplied, &cache), Status::Pass);
    per_call(|| assert_eq!(cvm_verify(case, &roots, &supplied, &cache), Status::Pass))
}

/// One ECDSA P-384/SHA-384 verification of the report's signature, the key already
/// extracted: the floor for a batch.
fn p384_floor(case: &Case) -> Duration {
    let vcek = cvm_attest::x509::Cert::from_der(case.cert("vcek"), "vcek").unwrap();
    let key = vcek.p384_public_key().unwrap().to_vec();
    let report = cvm_attest::snp::report::Report::parse(&case.report).unwrap();
    let sig = report.signature_fixed();
    let signed = report.signed_bytes();
    per_call(|| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, &key)
            .verify(signed, &sig)
            .unwrap();
    })
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sev-once") {
        // One verification in a fresh process, for the whole-process comparison.
        let case = Case::load(Path::new(args.get(1).expect("sev-once CASE_DIR")));
        sev_verify(&case).unwrap();
        return;
    }
    let opts = cvm_tests::bench_options(&["--cvm", "--snpguest"]);
    let cvm = PathBuf::from(opts.get("--cvm").expect("--cvm PATH"));
    let snpguest = opts.get("--snpguest").map(PathBuf::from);
    let me = std::env::current_exe().unwrap();
    let Some(vectors) = vectors() else { return };
    println!(
        "SEV-SNP report verification, cold, in process: median of {RUNS} runs of {ITERATIONS}"
    );
    for rel in CASES {
        let case = Case::load(&vectors.join(rel));
        let (ours, theirs) = (cvm_cold(&case), sev_cold(&case));
        println!(
            "  {rel:34} cvm {:6.3} ms   sev+OpenSSL {:6.3} ms   sev / cvm = {:.2}",
            ms(ours),
            ms(theirs),
            ratio(theirs, ours)
        );
    }
    println!("Batch (chain verified once), per further report, against one P-384 check");
    for rel in CASES {
        let case = Case::load(&vectors.join(rel));
        let (batch, floor) = (cvm_batch(&case), p384_floor(&case));
        println!(
            "  {rel:34} cvm {:6.3} ms ({:5.0} reports/s)   P-384 verify {:6.3} ms   cvm / floor = {:.2}",
            ms(batch),
            1.0 / batch.as_secs_f64(),
            ms(floor),
            ratio(batch, floor)
        );
    }
    println!("Cold, whole process: median of {PROCESS_RUNS} runs");
    let case = Case::load(&vectors.join(CASES[0]));
    let report = case.dir.join("report.bin").display().to_string();
    let certs = case.dir.join("certs").display().to_string();
    let at = case.at.to_string();
    let (ours, out) = time_command(
        &cvm,
        &strings(&[
            "verify",
            "--evidence",
            &report,
            "--certs",
            &certs,
            "--at",
            &at,
            "--no-reference",
            "--format",
            "json",
        ]),
        PROCESS_RUNS,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(v["verdict"], "pass", "{out}");
    let dir = case.dir.display().to_string();
    let (theirs, _) = time_command(&me, &strings(&["sev-once", &dir]), PROCESS_RUNS);
    println!(
        "  {:34} cvm verify {:6.2} ms   sev+OpenSSL {:6.2} ms   sev / cvm = {:.2}",
        CASES[0],
        ms(ours),
        ms(theirs),
        ratio(theirs, ours)
    );
    if let Some(snpguest) = snpguest {
        let (chain, _) = time_command(
            &snpguest,
            &strings(&["verify", "certs", &certs]),
            PROCESS_RUNS,
        );
        let (att, _) = time_command(
            &snpguest,
            &strings(&["verify", "attestation", &certs, &report]),
            PROCESS_RUNS,
        );
        println!(
            "  {:34} snpguest verify certs {:6.2} ms + attestation {:6.2} ms   snpguest / cvm = {:.2}",
            "",
            ms(chain),
            ms(att),
            ratio(chain + att, ours)
        );
    } else {
        println!("  snpguest: not installed (bench/verify-snp.sh installs it when it can)");
    }
}
