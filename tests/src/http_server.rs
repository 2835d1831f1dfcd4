//! A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port), for the clients of vendor
//! services: it answers routes with recorded bodies, and can answer 429 with
//! Retry-After, 5xx, slowly, truncated, oversized or as HTML. It counts and logs every
//! request. No other address is ever contacted.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    reason = "test support code"
)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Claim this Content-Length (more than the body: a truncated answer).
    pub claimed_len: Option<usize>,
}

impl Answer {
    /// 200 with `body`.
    pub fn ok(body: Vec<u8>) -> Self {
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body,
            delay: Duration::ZERO,
            claimed_len: None,
        }
    }

    /// `status` with no body.
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            claimed_len: None,
        }
    }
}

/// A route: a path and its query parameters in any order.
pub fn route(path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// The server's state.
#[derive(Default)]
struct State {
    /// Per route, the answers in order (the last one repeats).
    answers: HashMap<String, Vec<Answer>>,
    /// Every request's route, in order.
    log: Vec<String>,
}

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    /// Starts a server answering nothing (404) until routes are added.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Server { url, state }
    }

    /// Answers `path_and_query` with `answers` in turn, the last one from then on.
    pub fn on(&self, path_and_query: &str, answers: Vec<Answer>) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(route(path_and_query), answers);
    }

    /// Every request so far, as routes.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many requests `path_and_query` got.
    pub fn count(&self, path_and_query: &str) -> usize {
        let r = route(path_and_query);
        self.log().iter().filter(|l| **l == r).count()
    }
}

fn serve(stream: std::net::TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let r = route(&target);
    let answer = {
        let mut s = state.lock().unwrap();
        s.log.push(r.clone());
        match s.answers.get_mut(&r) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) => list[0].clone(),
            None => Answer::status(404),
        }
    };
    std::thread::sleep(answer.delay);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.claimed_len.unwrap_or(answer.body.len())
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&answer.body);
    let _ = out.flush();
}
