//! A worker whose server cannot be reached keeps retrying, as gearman's does, and says so
//! on stderr (gearman prints each failed attempt; gearman-rs the library's warning).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const GEARMAN_RS: &str = env!("CARGO_BIN_EXE_gearman-rs");

#[test]
fn worker_on_a_dead_port_says_why_on_stderr() {
    let dead = format!("127.0.0.1:{}", gearman_tests::free_port());
    let mut worker = Command::new(GEARMAN_RS)
        .args(["-w", "-h", &dead, "-f", "nobody_serves"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gearman-rs -w");
    let stderr = worker.stderr.take().expect("piped stderr");
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The first connect fails at once (refused); its warning names the server and the
    // reason. Bounded: nothing within 10 s fails the test.
    let line = seen.recv_timeout(Duration::from_secs(10));
    let still_running = worker.try_wait().expect("try_wait").is_none();
    let _ = worker.kill();
    let _ = worker.wait();
    let line = line.expect("gearman-rs -w said nothing about the dead server within 10 s");
    assert!(
        line.contains(&dead) && line.contains("cannot connect") && line.contains("refused"),
        "{line}"
    );
    assert!(still_running, "the worker gave up instead of retrying");
}
