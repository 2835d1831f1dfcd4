//! Helpers shared by the integration tests that run the real `cvm` binary.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "each test binary uses a subset of these test helpers"
)]

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `cvm` binary with `args`.
pub fn cvm<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args(args)
        .output()
        .expect("run cvm")
}

/// Parses stdout as one JSON value, showing both streams if it is not.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The first (for one `--evidence`, the only) verdict of `cvm verify --format json`.
pub fn verdict_json(out: &Output) -> serde_json::Value {
    let batch = stdout_json(out);
    assert_eq!(batch["schema"], 1, "{batch:#}");
    batch["verdicts"][0].clone()
}

/// `rel` below the shared directory (`$CVM_SHARED`, or `../shared` beside the
/// repository), or `None` with a message on stderr when it is absent.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = std::env::var_os("CVM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join(rel);
    present(path)
}

/// The vectors directory (`$CVM_VECTORS`, or `vectors` in the shared directory), or
/// `None` with a message on stderr.
pub fn vectors() -> Option<PathBuf> {
    match std::env::var_os("CVM_VECTORS") {
        Some(dir) => present(PathBuf::from(dir)),
        None => shared("vectors"),
    }
}

#[path = "../../../tests/src/skip.rs"]
mod skip;
pub use skip::available;

fn present(path: PathBuf) -> Option<PathBuf> {
    let what = format!("{} is absent (set CVM_SHARED)", path.display());
    available(path.exists(), &what).then_some(path)
}

/// Whether `/dev/kvm` can be opened (see [`available`]).
#[allow(dead_code, reason = "not every test crate launches")]
pub fn have_kvm() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    available(ok, "/dev/kvm cannot be opened on this host")
}

/// Writes `contents` to a file named `name` in a directory private to this process.
pub fn temp_file(name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cvm-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The single `cvm: error: ...` line of a failed run's stderr.
pub fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("cvm: error: "), "{err}");
    err
}

/// The single `cvm: error: ...` line of a run that exited with `code`.
pub fn failed_with(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    one_error_line(out)
}

/// Asserts that a run exited 0, showing its stderr otherwise.
pub fn succeeded(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The exit status of a finished run.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

/// A `key=value` fact the case.json of a vector case records (written by the vectors'
/// curator from the upstream source, not by cvm).
pub fn case_fact(case: &Path, key: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    v["facts"]
        .as_str()
        .unwrap()
        .split("; ")
        .find_map(|f| f.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{}: no fact {key}", case.display()))
        .to_owned()
}

/// Whether `CVM_HW_TESTS` names `tee` (hardware tests launch only the TEEs it names).
#[allow(dead_code, reason = "only the hardware tests use it")]
pub fn hw_enabled(tee: &str) -> bool {
    let on = std::env::var("CVM_HW_TESTS")
        .unwrap_or_default()
        .split(',')
        .any(|t| t.trim() == tee);
    if !on {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: CVM_HW_TESTS does not name {tee}"
        );
    }
    on
}

/// The report data a guest binds `nonce` into (README, `--attest`): SHA-512 of the label
/// `cvm-evidence-nonce/1` and the nonce, hex; computed here, not by cvm's code.
#[allow(dead_code, reason = "not every test file that includes common uses it")]
pub fn binding(nonce: &[u8]) -> String {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new();
    h.update(b"cvm-evidence-nonce/1");
    h.update(nonce);
    hex::encode(h.finalize())
}

#[allow(dead_code, reason = "only the TDX tests use it")]
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
/// A QGS that answers one connection with `reply(request)`, framed; returns its address.
pub fn qgs(
    name: &str,
    reply: impl FnOnce(Vec<u8>) -> Vec<u8> + Send + 'static,
) -> cvm_launcher::vmm::tdx::qgs::QgsAddr {
    let path = std::env::temp_dir().join(format!("cvm-qgs-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        use std::io::{Read, Write};
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; usize::try_from(u32::from_be_bytes(len)).unwrap()];
        s.read_exact(&mut m).unwrap();
        let out = reply(m);
        let _ = s.write_all(&out);
    });
    cvm_launcher::vmm::tdx::qgs::QgsAddr::Unix(path)
}

#[allow(dead_code, reason = "only the TDX tests use it")]
/// A framed GET_QUOTE_RESP carrying `quote` (`kind` and `code` as given).
pub fn qgs_response(kind: u32, code: u32, quote: &[u8]) -> Vec<u8> {
    let size = u32::try_from(16 + 8 + quote.len()).unwrap();
    let mut m = Vec::new();
    m.extend_from_slice(&size.to_be_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&kind.to_le_bytes());
    m.extend_from_slice(&size.to_le_bytes());
    m.extend_from_slice(&code.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&u32::try_from(quote.len()).unwrap().to_le_bytes());
    m.extend_from_slice(quote);
    m
}
