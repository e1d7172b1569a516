//! Running real Gearman peer programs with time limits.

use crate::ServerProcess;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a peer program to completion with a time limit; panics (test fails) if the program
/// is missing, so a CI machine without the peer fails loudly instead of skipping.
pub fn run(program: &str, args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("peer {program} is not installed ({e}); run .ci/run to install it")
        });
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{program} {args:?} did not finish in {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts a long-running peer (a worker), killed on drop.
pub struct Peer(pub Child);

impl Peer {
    /// Starts `program args...` with no stdio; panics if it is not installed.
    pub fn spawn(program: &str, args: &[&str]) -> Peer {
        Peer(
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("peer {program} is not installed ({e}); run .ci/run to install it")
                }),
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A program's standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits until `status` shows at least `n` workers for `function`.
pub fn wait_for_workers(server: &ServerProcess, function: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.conn().admin("status\r\n");
        let workers = status
            .lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                (cols.first() == Some(&function))
                    .then(|| cols.get(3).and_then(|w| w.parse::<usize>().ok()))
            })
            .flatten()
            .unwrap_or(0);
        if workers >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {function} worker registered: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
