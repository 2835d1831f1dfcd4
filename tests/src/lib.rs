//! Shared helpers of the cross-crate integration tests in `tests/tests/`.

#![allow(clippy::panic, clippy::print_stderr, reason = "test support code")]

use std::path::{Path, PathBuf};

/// The directory of this crate (`tests/`).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A host fixture tree below `tests/fixtures/hosts/`.
pub fn host_fixture(name: &str) -> PathBuf {
    crate_dir().join("fixtures/hosts").join(name)
}

/// The shared directory with real vectors and reference tables: `$CVM_SHARED`, or
/// `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CVM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../../shared"))
}

/// The vectors directory: `$CVM_VECTORS`, or `shared/vectors`.
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("CVM_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir().join("vectors"))
}

pub mod cca_test_token;
pub mod http_server;
mod skip;
pub mod snp_test_pki;
pub mod tcg_test_log;
pub mod tdx_test_pki;
/// Whether a test's input is present. An absent input never lets a test pass: under
/// `CI=true` it fails the test; elsewhere the test says it was skipped, and why.
pub use skip::available as present;

/// `path` if it exists, or `None` after [`present`] said why the test cannot run.
pub fn input(path: PathBuf) -> Option<PathBuf> {
    let what = format!(
        "{} is absent (set CVM_SHARED to the directory holding reference/ and vectors/)",
        path.display()
    );
    present(path.exists(), &what).then_some(path)
}

/// The reference measurements directory (`shared/reference`), if present (see
/// [`present`]).
pub fn reference_dir() -> Option<PathBuf> {
    input(shared_dir().join("reference"))
}

/// A tab-separated table with a header row, as rows of (column name -> value).
pub fn read_tsv(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// The vectors directory, if present (see [`present`]).
pub fn vectors() -> Option<PathBuf> {
    let dir = vectors_dir();
    let what = format!(
        "no vectors at {} (set CVM_VECTORS or CVM_SHARED)",
        dir.display()
    );
    present(dir.join("MANIFEST.tsv").is_file(), &what).then_some(dir)
}

/// The SNP evidence of one vector case directory: the report, the certificates by role,
/// and the case's verification time.
pub struct SnpCase {
    /// report.bin.
    pub report: Vec<u8>,
    /// certs/, by role.
    pub certs: cvm_attest::snp::certs::Supplied,
}

/// Loads `dir` (holding report.bin and certs/).
pub fn snp_case(dir: &Path) -> SnpCase {
    let report =
        std::fs::read(dir.join("report.bin")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let certs = cvm_launcher::cmd::verify::read_certs(&dir.join("certs"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    SnpCase { report, certs }
}

/// `verify_time` of a case.json.
pub fn case_time(dir: &Path) -> cvm_attest::Time {
    let text = std::fs::read_to_string(dir.join("case.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let t = v["verify_time"].as_str().unwrap_or_default();
    cvm_attest::Time::parse_rfc3339(t).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// The median of benchmark timings (the upper one of an even count); zero for none.
pub fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The median of ratios (NaN for none).
pub fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `program` with `args` once; its wall time and stdout. Panics if it fails (a
/// benchmark of a failing command means nothing).
pub fn time_once(program: &Path, args: &[String]) -> (std::time::Duration, String) {
    let start = std::time::Instant::now();
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program` with `args` `runs` times; the median wall time and the last stdout.
pub fn time_command(program: &Path, args: &[String], runs: usize) -> (std::time::Duration, String) {
    let mut times = Vec::new();
    let mut output = String::new();
    for _ in 0..runs {
        let (t, out) = time_once(program, args);
        times.push(t);
        output = out;
    }
    (median(times), output)
}

/// The median time over `runs` of one pass of hash `D` over `bytes` bytes (fed 1 MiB at
/// a time): a benchmark's floor, what hashing alone costs.
pub fn one_pass_floor<D: sha2::Digest>(bytes: u64, runs: usize) -> std::time::Duration {
    let buf = vec![0x5au8; 1 << 20];
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = std::time::Instant::now();
        let mut h = D::new();
        let mut left = bytes;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            h.update(buf.get(..n).unwrap_or(&buf));
            left = left.saturating_sub(n as u64);
        }
        std::hint::black_box(h.finalize());
        times.push(start.elapsed());
    }
    median(times)
}

/// The CPU time (user and system, every thread) this process has used so far, from
/// /proc/self/stat in USER_HZ ticks (100 per second on Linux x86-64): for benchmarks
/// long enough that 10 ms steps do not matter.
pub fn cpu_time() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    std::time::Duration::from_millis(ticks.saturating_mul(10))
}

/// Milliseconds, for reports.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `a / b`.
pub fn ratio(a: std::time::Duration, b: std::time::Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// The DCAP evidence of one vector case directory: the quote and, where the case has it,
/// its collateral bundle.
pub struct TdxCase {
    /// quote.bin.
    pub quote: Vec<u8>,
    /// collateral.json, parsed.
    pub collateral: Option<cvm_attest::tdx::collateral::Collateral>,
}

/// Loads `dir` (holding quote.bin and maybe collateral.json).
pub fn tdx_case(dir: &Path) -> TdxCase {
    let quote =
        std::fs::read(dir.join("quote.bin")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let collateral = std::fs::read_to_string(dir.join("collateral.json"))
        .ok()
        .map(|text| {
            cvm_attest::tdx::collateral::Collateral::parse_json(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        });
    TdxCase { quote, collateral }
}

/// The `key=value` facts of a case.json (written by the vectors' curator from the
/// upstream sources, not by cvm).
pub fn case_fact(dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("case.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let facts = v["facts"].as_str()?.to_owned();
    facts
        .split("; ")
        .find_map(|f| f.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// One derived negative of `neg/negatives.json`.
pub struct Negative {
    /// Its id (its directory under `neg/<tech>/`).
    pub id: String,
    /// Why it must be rejected.
    pub expected: String,
    /// The time to verify it at.
    pub at: cvm_attest::Time,
    /// Its directory.
    pub dir: PathBuf,
}

/// The negatives of one technology ("snp", "tdx", "cca").
pub fn negatives(vectors: &Path, tech: &str) -> Vec<Negative> {
    let path = vectors.join("neg/negatives.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    list.iter()
        .filter(|n| n["tech"] == tech)
        .map(|n| {
            let field = |k: &str| n[k].as_str().unwrap_or_default().to_owned();
            Negative {
                dir: vectors.join("neg").join(tech).join(field("id")),
                id: field("id"),
                expected: field("expected"),
                at: cvm_attest::Time::parse_rfc3339(&field("verify_time"))
                    .unwrap_or_else(|e| panic!("{}: {e}", field("id"))),
            }
        })
        .collect()
}

/// The `--name VALUE` options of a benchmark program's command line, by name; panics on
/// an option not in `known` or without a value (a benchmark run wrongly means nothing).
pub fn bench_options(known: &[&str]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        assert!(
            known.contains(&name.as_str()),
            "unknown argument {name}; options: {}",
            known.join(" ")
        );
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{name} needs a value"));
        out.insert(name, value);
    }
    out
}

/// Every failed check of a verdict as "name: reason".
pub fn failed<C>(v: &cvm_attest::Verdict<C>) -> Vec<String> {
    v.failed_checks()
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect()
}

/// Runs `cvm --format json ARGS` in process: its exit code, its one JSON object, its
/// stderr. Panics when stdout is not JSON or stderr reports a panic.
pub fn cvm_json<S: AsRef<str>>(args: &[S]) -> (u8, serde_json::Value, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut all = vec!["cvm", "--format", "json"];
    all.extend(args.iter().map(AsRef::as_ref));
    let code = cvm_launcher::cli::run(all, &mut out, &mut err).code();
    let err = String::from_utf8_lossy(&err).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    let json = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
    (code, json, err)
}
