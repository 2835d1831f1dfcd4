//! HTTP GET for collateral services (AMD's KDS, Intel's PCS and PCCS): bounded in time
//! and size, honouring 429 with its Retry-After, retrying 5xx a bounded number of times,
//! refusing what is not collateral (an HTML page, media), and asking each distinct URL once per
//! process. A [`Session`] puts a [`DiskCache`] in front of a [`Source`] (the network, or
//! an offline bundle) and keeps nothing that its caller did not verify.
//!
//! What comes back is untrusted: callers verify it (signature, chain, dates) before they
//! keep it.

use crate::error::CliError;
use cvm_attest::Time;
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

/// A response: its body and the headers collateral services put information in (the
/// `*-Issuer-Chain` headers of Intel's PCS, kept as sent: percent-encoded PEM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The body.
    pub body: Vec<u8>,
    /// `(lower-case name, value)` of every `*-issuer-chain` header.
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// A response with `body` and no headers.
    pub fn body(body: Vec<u8>) -> Self {
        Response {
            body,
            headers: Vec::new(),
        }
    }

    /// The first of `names` (any case) the response has, percent-decoded (as Intel's PCS
    /// encodes its issuer chains), or why not.
    pub fn decoded_header(&self, names: &[&str]) -> Result<String, String> {
        let value = names
            .iter()
            .find_map(|n| {
                self.headers
                    .iter()
                    .find(|(h, _)| h.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| format!("the response has no {} header", names.join(" or ")))?;
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map(|v| v.into_owned())
            .map_err(|_| {
                format!(
                    "the {} header is not percent-encoded UTF-8 text",
                    names.first().copied().unwrap_or("issuer chain")
                )
            })
    }
}

/// The headers a [`Response`] keeps.
fn kept_header(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with("-issuer-chain")
}

/// Where responses come from: the network ([`Fetcher`]) or an offline bundle.
pub trait Source {
    /// The response for `url`.
    fn get(&mut self, url: &str) -> Result<Response, FetchError>;
    /// Requests sent so far (retries counted; zero offline).
    fn requests(&self) -> usize;
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
    fetched: HashMap<String, Response>,
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

    /// The response for `url` (fetched once per process; later calls return the same).
    pub fn fetch(&mut self, url: &str) -> Result<Response, FetchError> {
        if let Some(r) = self.fetched.get(url) {
            return Ok(r.clone());
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
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(|t| t.trim().to_ascii_lowercase());
            let html = content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("text/html"));
            let not_collateral = content_type.as_deref().filter(|t| never_collateral(t));
            let last = attempt >= self.limits.attempts;
            match status {
                200 if !html && not_collateral.is_some() => {
                    return Err(err(format!(
                        "answered with Content-Type {}, which is never collateral",
                        not_collateral.unwrap_or_default()
                    )));
                }
                200 => {
                    let headers = resp
                        .headers()
                        .iter()
                        .filter(|(n, _)| kept_header(n.as_str()))
                        .filter_map(|(n, v)| {
                            Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                        })
                        .collect();
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
                    break Response { body, headers };
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
            progress(url, &format!("{} bytes", body.body.len()));
        }
        self.fetched.insert(url.to_owned(), body.clone());
        Ok(body)
    }
}

impl Source for Fetcher {
    fn get(&mut self, url: &str) -> Result<Response, FetchError> {
        self.fetch(url)
    }

    fn requests(&self) -> usize {
        self.requests
    }
}

/// Content types no collateral service answers with (certificates, CRLs and their
/// chains come as DER, PEM, JSON, hex text or octets): media, page resources, archives of
/// parts. Anything else is accepted here and judged by verification.
fn never_collateral(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim();
    ["image/", "audio/", "video/", "font/", "multipart/"]
        .iter()
        .any(|p| t.starts_with(p))
        || [
            "application/xhtml+xml",
            "application/javascript",
            "text/javascript",
            "text/css",
        ]
        .contains(&t)
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

/// Where `url` is kept, relative to a cache directory or inside a bundle:
/// `<host>[_port]/<path>[@<query>]`, with characters other than letters, digits and
/// `._-=,` replaced by `_` (`&` becomes `,`); no segment is ever `.` or `..`.
pub fn entry_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let clean = |s: &str| -> String {
        let c: String = s
            .chars()
            .map(|c| match c {
                '&' => ',',
                c if c.is_ascii_alphanumeric() || "._-=,".contains(c) => c,
                _ => '_',
            })
            .collect();
        if c.chars().all(|c| c == '.') {
            "_".into()
        } else {
            c
        }
    };
    let mut segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(clean)
        .collect();
    if segments.is_empty() {
        segments.push("_".into());
    }
    if let (false, Some(last)) = (query.is_empty(), segments.last_mut()) {
        last.push('@');
        last.push_str(&clean(query));
    }
    segments.join("/")
}

/// The file beside an entry that holds its response's headers.
pub const HEADERS_SUFFIX: &str = ".headers";

/// A response's kept headers as stored: one `name: value` line each.
pub fn encode_headers(r: &Response) -> Vec<u8> {
    let mut out = String::new();
    for (n, v) in &r.headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push('\n');
    }
    out.into_bytes()
}

/// A response from a stored body and stored headers (lines that are not `name: value`
/// or not kept headers are ignored: whatever comes of them is verified anyway).
pub fn decode_response(body: Vec<u8>, headers: Option<&[u8]>) -> Response {
    let headers = headers
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(|h| {
            h.lines()
                .filter_map(|l| l.split_once(": "))
                .filter(|(n, _)| kept_header(n))
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Response { body, headers }
}

/// A directory of fetched items, one file per URL ([`entry_name`]), its headers beside
/// it. An entry is only ever written after what it holds was verified, by a temporary
/// file and a rename (the headers first, so a body is never seen without them); it is
/// verified again on every use.
pub struct DiskCache {
    dir: std::path::PathBuf,
}

/// The largest cache entry read.
const MAX_ENTRY: u64 = 1 << 20;

fn read_bounded(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut b = Vec::new();
    f.take(MAX_ENTRY.saturating_add(1))
        .read_to_end(&mut b)
        .ok()?;
    (u64::try_from(b.len()).unwrap_or(u64::MAX) <= MAX_ENTRY).then_some(b)
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::path::PathBuf::from(p)
}

impl DiskCache {
    /// The cache in `dir`.
    pub fn new(dir: &std::path::Path) -> Self {
        DiskCache {
            dir: dir.to_owned(),
        }
    }

    /// Where `url` is kept.
    pub fn path(&self, url: &str) -> std::path::PathBuf {
        self.dir.join(entry_name(url))
    }

    /// The entry for `url`, if there is one (and it is no larger than an answer may be).
    pub fn load(&self, url: &str) -> Option<Response> {
        let path = self.path(url);
        let body = read_bounded(&path)?;
        let headers = read_bounded(&with_suffix(&path, HEADERS_SUFFIX));
        Some(decode_response(body, headers.as_deref()))
    }

    /// Keeps `r` for `url`.
    pub fn store(&self, url: &str, r: &Response) -> std::io::Result<()> {
        let path = self.path(url);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let write = |target: &std::path::Path, bytes: &[u8]| -> std::io::Result<()> {
            let tmp = with_suffix(target, &format!(".partial-{}", std::process::id()));
            std::fs::write(&tmp, bytes).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            std::fs::rename(&tmp, target)
        };
        let headers = with_suffix(&path, HEADERS_SUFFIX);
        if r.headers.is_empty() {
            let _ = std::fs::remove_file(&headers);
        } else {
            write(&headers, &encode_headers(r))?;
        }
        write(&path, &r.body)
    }

    /// Drops the entry for `url`.
    pub fn forget(&self, url: &str) {
        let path = self.path(url);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(with_suffix(&path, HEADERS_SUFFIX));
    }
}

/// One item a piece of evidence needs: its URL, and when a response for it stops being
/// usable (`None`: at once, or unreadable) so that a cached one is used only before.
pub struct Want {
    /// The URL.
    pub url: String,
    /// The end of a response's validity.
    pub expiry: fn(&Response) -> Option<Time>,
}

/// Fetches for one run: a [`Source`], an optional [`DiskCache`] in front of it, and a
/// record of every response that went into a verified result (what a bundle holds).
pub struct Session {
    source: Box<dyn Source>,
    cache: Option<DiskCache>,
    /// `(url, response)` of everything used in a verified result, in order, once each.
    pub kept: Vec<(String, Response)>,
}

impl Session {
    /// A session reading `source`, with `cache` in front of it.
    pub fn new(source: Box<dyn Source>, cache: Option<&std::path::Path>) -> Self {
        Session {
            source,
            cache: cache.map(DiskCache::new),
            kept: Vec::new(),
        }
    }

    /// A session on the network.
    pub fn network(timeout: Duration, cache: Option<&std::path::Path>) -> Self {
        Session::new(
            Box::new(Fetcher::new(Limits {
                timeout,
                ..Limits::default()
            })),
            cache,
        )
    }

    /// Requests sent.
    pub fn requests(&self) -> usize {
        self.source.requests()
    }

    /// The responses for `wants`, from the cache where an entry is still valid at `at`,
    /// else from the source, handed to `verify`; its result once it succeeds. When a
    /// cached item is part of a failure, every cached item is dropped and fetched again
    /// (a cache is never trusted more than the network). What verified is cached and
    /// recorded in [`Session::kept`]; nothing else is.
    pub fn obtain<T>(
        &mut self,
        wants: &[Want],
        at: Time,
        verify: impl Fn(&[Response]) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        let mut responses = Vec::with_capacity(wants.len());
        let mut cached = Vec::new();
        for (i, w) in wants.iter().enumerate() {
            let hit = self
                .cache
                .as_ref()
                .and_then(|c| c.load(&w.url))
                .filter(|r| (w.expiry)(r).is_some_and(|end| at < end));
            responses.push(match hit {
                Some(r) => {
                    cached.push(i);
                    r
                }
                None => self.source.get(&w.url).map_err(unavailable)?,
            });
        }
        let mut result = verify(&responses);
        if result.is_err() && !cached.is_empty() {
            for &i in &cached {
                let (Some(w), Some(slot)) = (wants.get(i), responses.get_mut(i)) else {
                    continue;
                };
                if let Some(c) = &self.cache {
                    c.forget(&w.url);
                }
                *slot = self.source.get(&w.url).map_err(unavailable)?;
            }
            cached.clear();
            result = verify(&responses);
        }
        let value = result?;
        for (i, (w, r)) in wants.iter().zip(&responses).enumerate() {
            if let (Some(c), false) = (&self.cache, cached.contains(&i)) {
                c.store(&w.url, r).map_err(|source| CliError::WriteFile {
                    path: c.path(&w.url),
                    source,
                })?;
            }
            if !self.kept.iter().any(|(u, _)| *u == w.url) {
                self.kept.push((w.url.clone(), r.clone()));
            }
        }
        Ok(value)
    }
}

/// A fetch error as the CLI's collateral-unavailable error (exit 4), naming the URL.
pub fn unavailable(e: FetchError) -> CliError {
    CliError::CollateralMissing {
        path: std::path::PathBuf::from(e.url),
        reason: e.reason,
    }
}
