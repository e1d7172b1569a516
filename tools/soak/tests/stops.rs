//! gearman-soak stopped early or refused at once: SIGINT mid-run still prints the summary
//! and exits 128 + 2; a run without workers is refused before it starts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SOAK: &str = env!("CARGO_BIN_EXE_gearman-soak");

/// Kills the soak if the test panics before it exited.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a long soak with a progress line a second, in `dir`.
fn spawn_soak(dir: &std::path::Path) -> Running {
    Running(
        Command::new(SOAK)
            .args(["--duration", "600", "--progress-secs", "1", "--seed", "5"])
            .arg("--server-bin")
            .arg(gearman_tests::gearmand_rs_binary())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gearman-soak"),
    )
}

/// The soak's stdout lines, as they come.
fn lines(soak: &mut Running) -> mpsc::Receiver<String> {
    let out = soak.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line starting with `prefix`; returns every line read so far.
fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str, seen: &mut Vec<String>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !seen.iter().any(|l| l.starts_with(prefix)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line {prefix:?} within {limit:?}:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn sigint_mid_run_prints_the_summary_and_exits_130() {
    let dir = gearman_tests::temp_dir("soak-sigint");
    let mut soak = spawn_soak(dir.path());
    let rx = lines(&mut soak);
    let mut seen = Vec::new();
    // The first progress line: the load is under way.
    wait_for(&rx, "[", &mut seen, Duration::from_secs(90));
    // SAFETY: kill(2) on the soak's own pid.
    assert_eq!(
        unsafe { libc::kill(soak.0.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    // The load threads end within their call timeout, the drain within its 10 s.
    wait_for(&rx, "== INTERRUPTED", &mut seen, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = soak.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit:\n{}", seen.join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    };
    seen.extend(rx.try_iter());
    let report = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{status}:\n{report}");
    assert!(
        report.contains("== gearman-soak summary after")
            && report.contains("interrupted by SIGINT"),
        "{report}"
    );
    // What it saw until then: the load ran and was counted.
    assert!(report.contains("check.fg_result_matched."), "{report}");
    assert!(
        report.contains("info.interrupted_checks_not_made.rss_back_near_baseline"),
        "{report}"
    );
}

#[test]
fn zero_workers_per_adapter_is_refused_at_once() {
    let dir = gearman_tests::temp_dir("soak-no-workers");
    let started = Instant::now();
    let mut soak = Running(
        Command::new(SOAK)
            .args(["--workers-per-adapter", "0", "--duration", "5"])
            .arg("--server-bin")
            .arg(gearman_tests::gearmand_rs_binary())
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gearman-soak"),
    );
    let deadline = started + Duration::from_secs(60);
    while soak.0.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "still running after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut soak.0.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = soak.0.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{status}: {stderr}");
    assert!(
        stderr.contains("--workers-per-adapter") && stderr.contains("at least 1"),
        "{stderr}"
    );
    // Refused before any server or worker started (the old wait was 20 s).
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
}
