//! Runs every adapter's examples (client and worker) against a started gearmand: the worker
//! example serves `reverse`, the client example must print the reversed word. The examples
//! are built as examples of this crate (see Cargo.toml), so `cargo test` builds them.

mod adapter_common;

use adapter_common::server::TestServer;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/this-test -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test -p gearman-tests` (it builds the examples)",
        path.display()
    );
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the client example until it exits (bounded), returning its stdout.
fn run_client(name: &str, server: &str) -> String {
    let mut child = Killed(
        Command::new(example(name))
            .env("GEARMAN_SERVER", server)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("client example starts"),
    );
    let end = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < end, "{name} did not finish in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.0.stdout.take() {
        use std::io::Read;
        stdout.read_to_string(&mut out).expect("read stdout");
    }
    out
}

fn client_and_worker(adapter: &str) {
    let s = TestServer::start();
    let _worker = Killed(
        Command::new(example(&format!("{adapter}_worker")))
            .env("GEARMAN_SERVER", s.addr())
            .stdout(Stdio::null())
            .spawn()
            .expect("worker example starts"),
    );
    let out = run_client(&format!("{adapter}_client"), &s.addr());
    assert!(out.contains("olleh"), "{adapter} client printed {out:?}");
}

#[test]
fn tokio_examples() {
    client_and_worker("tokio");
}

#[test]
fn async_std_examples() {
    client_and_worker("async_std");
}

#[test]
fn blocking_examples() {
    client_and_worker("blocking");
}
