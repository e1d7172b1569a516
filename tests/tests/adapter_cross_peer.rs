//! Our client and worker (tokio adapter) against other peers: the `gearman` CLI as worker
//! and as client, and a PHP (pecl gearman) client, through real gearmand.

mod adapter_common;

use adapter_common::async_impl::{AsyncAdapter, Exec};
use adapter_common::server::TestServer;
use adapter_common::{spec, Adapter, Outcome};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Tokio;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

impl Exec for Tokio {
    type Rt = gearman_tokio::TokioRuntime;
    type Connector = gearman_tokio::TokioConnector;
    fn rt() -> Self::Rt {
        gearman_tokio::TokioRuntime
    }
    fn connector() -> Self::Connector {
        gearman_tokio::TokioConnector
    }
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        runtime().block_on(f)
    }
}

type A = AsyncAdapter<Tokio>;

/// Runs a peer command with a time limit, returning its stdout.
fn run_peer(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("peer runs");
    for _ in 0..200 {
        if let Some(_status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("peer command did not finish in 10 s");
}

#[test]
fn our_client_with_gearman_cli_worker() {
    let s = TestServer::start();
    let mut worker = Command::new("gearman")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-w",
            "-f",
            "cli_upper",
            "--",
            "tr",
            "a-z",
            "A-Z",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gearman CLI installed");
    let mut c = A::client(&[s.addr()], false);
    let mut sp = spec("cli_upper", "hello");
    sp.timeout = Some(Duration::from_secs(10));
    let (_, outcome) = A::run(&mut c, sp);
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(outcome, Outcome::Ok(b"HELLO".to_vec()));
}

#[test]
fn gearman_cli_client_with_our_worker() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let out = run_peer(Command::new("gearman").args([
        "-h",
        "127.0.0.1",
        "-p",
        &s.port.to_string(),
        "-f",
        "upper",
        "abc",
    ]));
    A::stop(w);
    assert_eq!(out.trim(), "ABC");
}

#[test]
fn php_client_with_our_worker() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let script = format!(
        "$c = new GearmanClient(); $c->addServer('127.0.0.1', {}); echo $c->doNormal('upper', 'php'), '|', $c->returnCode();",
        s.port
    );
    let out = run_peer(Command::new("php").args(["-r", &script]));
    A::stop(w);
    assert_eq!(out.trim(), "PHP|0");
}
