//! Benchmark: TDX quote verification, cvm against dcap-qvl (PyPI, the Rust library behind
//! a Python binding), on the same quote and collateral at the same verification time.
//! Both are timed in process, per verification: cvm parses the collateral bundle inside
//! its timed loop (dcap-qvl's `verify` decodes the CRLs, certificates and JSON inside its
//! own); both verify the PCK chain, CRLs, TCB Info, QE Identity, QE report and quote
//! signatures and evaluate the TCB status. Also the whole `cvm verify` process, for
//! scale. Prints ratios; asserts nothing about time.
//!
//! Run through `bench/verify.sh`, which installs dcap-qvl in a virtual environment.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program that reports on stdout"
)]

use cvm_attest::Cache;
use cvm_attest::Time;
use cvm_attest::tdx::Verifier;
use cvm_attest::tdx::appraise::Policy;
use cvm_attest::tdx::collateral::Collateral;
use cvm_attest::tdx::pck::IntelRoot;
use cvm_tests::{case_time, cpu_time, median, ms, ratio, time_command, vectors};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ITERATIONS: u32 = 300;
const RUNS: usize = 7;

const CASES: [&str; 3] = [
    "tdx/tdx-v4-phala-b0c06f-uptodate",
    "tdx/tdx-v5-gotdx-90c06f-uptodate",
    "tdx/sgx-v3-phala-00a06711",
];

/// One run of [`ITERATIONS`] verifications, each one on its own: the collateral parsed
/// and every signature verified each time. Wall and CPU time per verification.
fn cvm_run(quote: &[u8], collateral: &str, at: Time) -> (Duration, Duration) {
    let root = IntelRoot::builtin().unwrap();
    let policy = Policy::default();
    let cpu = cpu_time();
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        let c = Collateral::parse_json(collateral).unwrap();
        let v = Verifier {
            root: &root,
            collateral: Some(&c),
            reference: None,
            policy: &policy,
            event_log: None,
            plan_log: None,
            at,
            cache: &Cache::default(),
        }
        .verify(quote);
        assert!(v.claims.and_then(|c| c.tcb).is_some());
    }
    (
        start.elapsed() / ITERATIONS,
        (cpu_time() - cpu) / ITERATIONS,
    )
}

/// Per verification in a batch (`cvm verify` with several `--evidence`): the collateral
/// parsed once and the cache warmed by another quote of the same platform family, so
/// what is timed is a further, different quote: its PCK certificate, QE report and quote
/// signatures, its TCB evaluation and appraisal. The warm cache is cloned for each
/// iteration so that the timed quote's own signatures are never remembered.
fn cvm_batch_per_verification(warm: &[u8], quote: &[u8], collateral: &str, at: Time) -> Duration {
    let root = IntelRoot::builtin().unwrap();
    let policy = Policy::default();
    let c = Collateral::parse_json(collateral).unwrap();
    let verifier = |cache: &Cache, q: &[u8]| {
        Verifier {
            root: &root,
            collateral: Some(&c),
            reference: None,
            policy: &policy,
            event_log: None,
            plan_log: None,
            at,
            cache,
        }
        .verify(q)
    };
    let warmed = Cache::default();
    verifier(&warmed, warm);
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let caches: Vec<Cache> = (0..ITERATIONS).map(|_| warmed.clone()).collect();
        let start = Instant::now();
        for cache in &caches {
            let v = verifier(cache, quote);
            assert!(v.claims.and_then(|c| c.pck).is_some());
        }
        runs.push(start.elapsed() / ITERATIONS);
    }
    median(runs)
}

const PY: &str = r#"
import sys, time, dcap_qvl
quote = open(sys.argv[1], 'rb').read()
coll = dcap_qvl.QuoteCollateralV3.from_json(open(sys.argv[2]).read())
now, n = int(sys.argv[3]), int(sys.argv[4])
status = dcap_qvl.verify(quote, coll, now).status
t = time.perf_counter()
for _ in range(n):
    dcap_qvl.verify(quote, coll, now)
print((time.perf_counter() - t) / n * 1e9, status)
"#;

/// One run of [`ITERATIONS`] verifications by dcap-qvl in a Python process (timed inside
/// it, after one verification to warm up): the time per verification and the status.
fn dcap_qvl_run(python: &Path, case: &Path, at: Time) -> (Duration, String) {
    let out = Command::new(python)
        .args(["-c", PY])
        .arg(case.join("quote.bin"))
        .arg(case.join("collateral.json"))
        .arg(at.0.to_string())
        .arg(ITERATIONS.to_string())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "dcap-qvl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (ns, status) = text.trim().split_once(' ').unwrap();
    let secs: f64 = ns.parse::<f64>().unwrap() / 1e9;
    (Duration::from_secs_f64(secs), status.to_owned())
}

fn main() {
    let opts = cvm_tests::bench_options(&["--python", "--cvm"]);
    let python = PathBuf::from(
        opts.get("--python")
            .expect("--python PATH (a Python with dcap-qvl installed)"),
    );
    let cvm = PathBuf::from(opts.get("--cvm").expect("--cvm PATH"));
    let Some(vectors) = vectors() else { return };
    println!(
        "TDX/SGX quote verification, per verification: {RUNS} alternating rounds of {ITERATIONS} each, in process; medians, and the median of the rounds' ratios"
    );
    for rel in CASES {
        let case = vectors.join(rel);
        let at = case_time(&case);
        let quote = std::fs::read(case.join("quote.bin")).unwrap();
        let collateral = std::fs::read_to_string(case.join("collateral.json")).unwrap();
        // Rounds alternate the two, so that a slow spell of this shared machine hits
        // both; the ratio is taken within each round.
        let (mut ours, mut cpus, mut theirs, mut ratios, mut cpu_ratios) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut status = String::new();
        for _ in 0..RUNS {
            let (wall, cpu) = cvm_run(&quote, &collateral, at);
            let (t, s) = dcap_qvl_run(&python, &case, at);
            ratios.push(ratio(t, wall));
            cpu_ratios.push(ratio(t, cpu));
            ours.push(wall);
            cpus.push(cpu);
            theirs.push(t);
            status = s;
        }
        println!(
            "  {rel:34} cvm {:6.3} ms (CPU {:5.3} ms)   dcap-qvl {:6.3} ms ({status})   dcap-qvl / cvm = {:.2} (CPU: {:.2})",
            ms(median(ours)),
            ms(median(cpus)),
            ms(median(theirs)),
            cvm_tests::median_f64(ratios),
            cvm_tests::median_f64(cpu_ratios)
        );
    }
    // A batch: the two quotes of FMSPC 90C06F000000 share their collateral; one warms the
    // cache, the other is timed.
    let (a, b) = (
        vectors.join(CASES[1]),
        vectors.join("tdx/tdx-v5-phala-90c06f-tcb-unsupported"),
    );
    let collateral = std::fs::read_to_string(b.join("collateral.json")).unwrap();
    let warm = std::fs::read(a.join("quote.bin")).unwrap();
    let quote = std::fs::read(b.join("quote.bin")).unwrap();
    let batch = cvm_batch_per_verification(&warm, &quote, &collateral, case_time(&b));
    // dcap-qvl refuses the timed quote (no TCB level matches); its time on the other
    // quote of the same platform and collateral stands for it.
    let theirs = median(
        (0..RUNS)
            .map(|_| dcap_qvl_run(&python, &a, case_time(&a)).0)
            .collect(),
    );
    println!(
        "  batch, a further quote of the platform: cvm {:6.3} ms   dcap-qvl (one by one) {:6.3} ms   ratio {:.2}",
        ms(batch),
        ms(theirs),
        ratio(theirs, batch)
    );
    let case = vectors.join(CASES[0]);
    let args: Vec<String> = [
        "verify",
        "--evidence",
        &case.join("quote.bin").display().to_string(),
        "--collateral",
        &case.join("collateral.json").display().to_string(),
        "--at",
        &case_time(&case).to_string(),
        "--no-reference",
        "--format",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (whole, out) = time_command(&cvm, &args, 7);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(v["verdict"], "pass", "{out}");
    println!(
        "  whole process: cvm verify {:.1} ms (process start, reading and printing included)",
        ms(whole)
    );
}
