//! HTTP helpers for the tests of `--http-port`: requests through curl, a Gearman worker
//! thread, and a load of jobs.
#![allow(dead_code)]

use super::Server;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitMode, WorkPayload};
use gearman_tests::{free_port, run, Conn};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A reply: status, headers (names lower-cased), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Runs `curl` with `args` (plus -s -i and a time limit) and parses its reply.
pub fn curl(args: &[&str]) -> Reply {
    // The body goes to a file: a large one would fill the stdout pipe. The file is removed
    // when `file` drops, also when an assertion below panics.
    let file = tempfile::Builder::new()
        .prefix("gearmand-rs-curl-")
        .tempfile()
        .expect("a temp file for curl's body")
        .into_temp_path();
    let file_arg = file.to_str().unwrap().to_string();
    let mut all = vec!["-s", "-D", "-", "-o", &file_arg, "--max-time", "10"];
    all.extend_from_slice(args);
    let out = run("curl", &all, b"", Duration::from_secs(15));
    assert!(out.status.success(), "curl {args:?}: {}", out.status);
    let body = std::fs::read(&file).unwrap_or_default();
    drop(file);
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

/// GET `url`'s body as text (panics unless 200).
pub fn get(url: &str) -> String {
    let r = curl(&[url]);
    assert_eq!(r.status, 200, "GET {url}: {r:?}");
    String::from_utf8(r.body).unwrap()
}

/// gearmand-rs with `--http-port` on a free port plus `extra`, once its `/healthz` answers;
/// with the HTTP base URL.
pub fn start_with_http(extra: &[&str]) -> (Server, String) {
    let port = free_port().to_string();
    let mut args = vec!["--http-port", port.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl_status(&format!("{base}/healthz")) != Some(0) {
        assert!(Instant::now() < deadline, "HTTP not up on {base}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, base)
}

/// curl's exit code for a GET of `url` (body dropped).
fn curl_status(url: &str) -> Option<i32> {
    run(
        "curl",
        &["-s", "-o", "/dev/null", url],
        b"",
        Duration::from_secs(10),
    )
    .status
    .code()
}

/// A worker thread for `functions`: `reverse*` answer the reversed workload, `fail*`
/// WORK_FAIL, anything else echoes. Stops when dropped.
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Worker {
    pub fn start(port: u16, functions: &[&str]) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let functions: Vec<String> = functions.iter().map(|f| f.to_string()).collect();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut c = Conn::new(port);
            for f in &functions {
                c.send(Request::CanDo {
                    function: f.clone().into(),
                });
            }
            let mut done = 0;
            while !flag.load(Ordering::Acquire) {
                c.send(Request::GrabJob(GrabMode::Uniq));
                match c.recv_within(Duration::from_secs(2)) {
                    Some(Response::JobAssign(job)) => {
                        let name = String::from_utf8_lossy(&job.function).into_owned();
                        let reply = if name.starts_with("fail") {
                            Request::WorkFail { handle: job.handle }
                        } else {
                            let data: Vec<u8> = if name.starts_with("reverse") {
                                job.data.iter().rev().copied().collect()
                            } else {
                                job.data.to_vec()
                            };
                            Request::WorkComplete(WorkPayload {
                                handle: job.handle,
                                data: data.into(),
                            })
                        };
                        c.send(reply);
                        done += 1;
                    }
                    Some(Response::NoJob) => {
                        c.send(Request::PreSleep);
                        // Woken by NOOP, or look again after a while.
                        let _ = c.recv_within(Duration::from_millis(100));
                    }
                    Some(_) => {}
                    None => return done,
                }
            }
            done
        });
        Worker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the worker; returns how many jobs it did.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Foreground jobs for `function`, submitted one after another until dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Load {
    pub fn start(port: u16, function: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut c = Conn::new(port);
            let mut n = 0;
            while !flag.load(Ordering::Acquire) {
                c.submit(function, SubmitMode::Foreground(Priority::Normal));
                loop {
                    match c.recv_within(Duration::from_secs(5)) {
                        Some(Response::WorkComplete(_)) | Some(Response::WorkFail { .. }) => break,
                        Some(_) => {}
                        None => return n,
                    }
                }
                n += 1;
            }
            n
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
