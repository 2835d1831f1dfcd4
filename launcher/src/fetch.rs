//! HTTP GET for collateral services (AMD KDS): bounded in time and size, honouring 429
//! with its Retry-After, retrying 5xx a bounded number of times, refusing what is not
//! collateral (an HTML page), and asking each distinct URL once per process.
//!
//! What comes back is untrusted: callers verify it (signature, chain, dates) before they
//! keep it.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Why a fetch failed; always names the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct FetchError {
    /// The URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// Limits of one fetcher.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole of one request, connect to last byte.
    pub timeout: Duration,
    /// The largest body accepted.
    pub max_bytes: u64,
    /// The longest Retry-After waited for (AMD's KDS asks for about 10 s per VCEK).
    pub max_retry_after: Duration,
    /// Attempts per URL (429 and 5xx count).
    pub attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            max_bytes: 1 << 20,
            max_retry_after: Duration::from_secs(60),
            attempts: 4,
        }
    }
}

/// A blocking HTTP client with a per-process memo of what it fetched.
pub struct Fetcher {
    agent: ureq::Agent,
    limits: Limits,
    fetched: HashMap<String, Vec<u8>>,
    /// How many requests were sent (retries included).
    pub requests: usize,
}

impl Fetcher {
    /// A fetcher with `limits`.
    pub fn new(limits: Limits) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(limits.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("cvm/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher {
            agent,
            limits,
            fetched: HashMap::new(),
            requests: 0,
        }
    }

    /// The body of `url` (fetched once per process; later calls return the same bytes).
    pub fn get(&mut self, url: &str) -> Result<Vec<u8>, FetchError> {
        if let Some(b) = self.fetched.get(url) {
            return Ok(b.clone());
        }
        let started = Instant::now();
        let err = |reason: String| FetchError {
            url: url.to_owned(),
            reason,
        };
        let mut backoff = Duration::from_secs(1);
        let mut attempt = 0u32;
        let body = loop {
            attempt = attempt.saturating_add(1);
            self.requests = self.requests.saturating_add(1);
            let resp = self
                .agent
                .get(url)
                .header("Accept", "application/octet-stream, application/pkix-cert, application/x-pem-file, application/pkix-crl, */*")
                .call()
                .map_err(|e| err(describe(&e)))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let html = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/html"));
            let last = attempt >= self.limits.attempts;
            match status {
                200 => {
                    if html {
                        return Err(err(
                            "answered with an HTML page (Content-Type text/html), not \
                             collateral: a proxy or a portal in the way?"
                                .into(),
                        ));
                    }
                    let body = resp
                        .into_body()
                        .with_config()
                        .limit(self.limits.max_bytes)
                        .read_to_vec()
                        .map_err(|e| err(describe(&e)))?;
                    break body;
                }
                429 if !last => {
                    let wait = retry_after.unwrap_or(backoff);
                    if wait > self.limits.max_retry_after {
                        return Err(err(format!(
                            "rate limited (429), asked to wait {} s, more than the {} s \
                             cvm waits",
                            wait.as_secs(),
                            self.limits.max_retry_after.as_secs()
                        )));
                    }
                    progress(
                        url,
                        &format!("rate limited, retrying in {} s", wait.as_secs()),
                    );
                    std::thread::sleep(wait);
                }
                500..=599 if !last => {
                    progress(
                        url,
                        &format!("HTTP {status}, retrying in {} s", backoff.as_secs()),
                    );
                    std::thread::sleep(backoff);
                }
                429 => {
                    return Err(err(format!(
                        "rate limited (429) {attempt} times; try again later"
                    )));
                }
                s => {
                    return Err(err(format!("HTTP {s}{}", after(attempt))));
                }
            }
            backoff = backoff.saturating_mul(2);
        };
        if started.elapsed() > Duration::from_secs(1) {
            progress(url, &format!("{} bytes", body.len()));
        }
        self.fetched.insert(url.to_owned(), body.clone());
        Ok(body)
    }
}

fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

/// ureq's error, said plainly.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::BodyExceedsLimit(n) => {
            format!("the response is larger than the {n} bytes accepted")
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the response ended early (truncated)".into()
        }
        other => other.to_string(),
    }
}

/// A progress line on stderr.
fn progress(url: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "cvm: {url}: {what}");
}

/// A directory of fetched items, one file per URL: `DIR/<host>/<path>[@<query>]`, with
/// characters other than letters, digits and `._-=,` replaced by `_` (`&` becomes `,`).
/// An entry is only ever written after what it holds was verified, by a temporary
/// file and a rename; it is verified again on every use.
pub struct DiskCache {
    dir: std::path::PathBuf,
}

/// The largest cache entry read.
const MAX_ENTRY: u64 = 1 << 20;

impl DiskCache {
    /// The cache in `dir`.
    pub fn new(dir: &std::path::Path) -> Self {
        DiskCache {
            dir: dir.to_owned(),
        }
    }

    /// Where `url` is kept.
    pub fn path(&self, url: &str) -> std::path::PathBuf {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    '&' => ',',
                    c if c.is_ascii_alphanumeric() || "._-=,".contains(c) => c,
                    _ => '_',
                })
                .collect()
        };
        let mut p = self.dir.clone();
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let Some((last, dirs)) = segments.split_last() else {
            return p.join("_");
        };
        for d in dirs {
            // Never `..` or `.`: a segment is a name.
            let d = clean(d);
            p.push(if d.chars().all(|c| c == '.') {
                "_".into()
            } else {
                d
            });
        }
        let mut name = clean(last);
        if name.chars().all(|c| c == '.') {
            name = "_".into();
        }
        if !query.is_empty() {
            name.push('@');
            name.push_str(&clean(query));
        }
        p.join(name)
    }

    /// The entry for `url`, if there is one (and it is no larger than an answer may be).
    pub fn load(&self, url: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        let f = std::fs::File::open(self.path(url)).ok()?;
        let mut b = Vec::new();
        f.take(MAX_ENTRY.saturating_add(1))
            .read_to_end(&mut b)
            .ok()?;
        (u64::try_from(b.len()).unwrap_or(u64::MAX) <= MAX_ENTRY).then_some(b)
    }

    /// Keeps `bytes` for `url`.
    pub fn store(&self, url: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(url);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".partial-{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, bytes).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        std::fs::rename(&tmp, &path)
    }

    /// Drops the entry for `url`.
    pub fn forget(&self, url: &str) {
        let _ = std::fs::remove_file(self.path(url));
    }
}
