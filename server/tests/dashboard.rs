//! The embedded dashboard in a real browser: headless Chromium loads `/` from gearmand-rs
//! under load, runs its script, and the page shows the functions, the workers and drawn
//! charts; a screenshot is written for a human to look at. Chromium must be installed
//! (`.ci/install-21-chromium.sh`): without it this test fails.

mod common;

use common::http::{get, start_with_http, Load, Worker};
use gearman_core::proto::{Priority, SubmitMode};
use gearman_tests::{run, Conn};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Chromium's binary: Debian calls it `chromium`, others `chromium-browser` or Chrome.
fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is needed for this test: run .ci/install-21-chromium.sh")
}

/// Runs headless Chromium on `url` with `args`, with a throwaway profile; returns stdout.
fn headless(url: &str, profile: &Path, args: &[&str]) -> String {
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let mut all = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        profile_arg.as_str(),
        // Lets the page's fetch and first refreshes finish before the DOM is taken.
        "--virtual-time-budget=3000",
    ];
    all.extend_from_slice(args);
    all.push(url);
    let out = run(chromium(), &all, b"", Duration::from_secs(90));
    assert!(
        out.status.success(),
        "chromium {args:?} {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rows of the table body with id `id` in a serialised DOM.
fn tbody<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<tbody id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no tbody#{id} in the page:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</tbody>").expect("tbody closed")]
}

/// The `points` of every drawn series polyline.
fn series_points(dom: &str) -> Vec<Vec<(f64, f64)>> {
    dom.match_indices("<polyline")
        .map(|(at, _)| &dom[at..at + dom[at..].find('>').unwrap()])
        .filter(|tag| tag.contains("class=\"series\""))
        .map(|tag| {
            let from = tag.find("points=\"").expect("points") + "points=\"".len();
            tag[from..from + tag[from..].find('"').unwrap()]
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("x,y");
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn dashboard_renders_functions_workers_and_charts_in_chromium() {
    let (server, base) = start_with_http(&[]);

    // Busy `reverse_dash` with a worker; `queued_dash` has jobs and no worker.
    let worker = Worker::start(server.port, &["reverse_dash"]);
    let load = Load::start(server.port, "reverse_dash");
    let mut client = Conn::new(server.port);
    for _ in 0..3 {
        client.submit("queued_dash", SubmitMode::Background(Priority::Normal));
    }
    // The page charts the server's history: wait until it has several samples with
    // completions in them (one is taken a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = get(&format!("{base}/api/status"));
        let status: serde_json::Value = serde_json::from_str(&status).expect("JSON status");
        let history = status["history"].as_array().expect("history");
        let completed: Vec<u64> = history
            .iter()
            .filter_map(|s| s["completed"].as_u64())
            .collect();
        if completed.len() >= 5 && completed.first() < completed.last() {
            break;
        }
        assert!(Instant::now() < deadline, "no history after 30 s: {status}");
        std::thread::sleep(Duration::from_millis(250));
    }

    let profile = tempdir("profile");
    let dom = headless(&format!("{base}/"), &profile, &["--dump-dom"]);

    let functions = tbody(&dom, "functions");
    assert!(functions.contains("reverse_dash"), "{functions}");
    assert!(functions.contains("queued_dash"), "{functions}");
    // queued_dash: 3 queued, 0 running, 0 workers, 0 / 3 / 0 by priority.
    assert!(functions.contains("0 / 3 / 0"), "{functions}");
    let workers = tbody(&dom, "workers");
    assert!(workers.contains("reverse_dash"), "{workers}");
    // The script ran and reached the server: no error shown, the summary filled in.
    assert!(dom.contains("<span id=\"error\"></span>"), "{dom}");
    assert!(!dom.contains("loading…"), "{dom}");
    assert!(dom.contains(" queued · "), "{dom}");

    // Both charts draw lines with several points inside the picture; the throughput
    // line of completed jobs is not flat at zero (its y differs from the axis).
    let series = series_points(&dom);
    assert!(series.len() >= 2, "drawn series: {series:?}\n{dom}");
    assert!(series.iter().all(|points| points.len() >= 2), "{series:?}");
    assert!(
        series
            .iter()
            .flatten()
            .all(|&(x, y)| x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0),
        "{series:?}"
    );
    let first = &series[0];
    let lowest = first.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    assert!(
        first.iter().any(|p| p.1 < lowest),
        "completed throughput is flat: {first:?}"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let shot_arg = format!("--screenshot={}", shot.display());
    let shot_profile = tempdir("profile-shot");
    headless(
        &format!("{base}/"),
        &shot_profile,
        &[&shot_arg, "--window-size=1280,900"],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "screenshot of {} bytes", png.len());

    assert!(load.stop() > 0);
    assert!(worker.stop() > 0);
    let _ = std::fs::remove_dir_all(profile);
    let _ = std::fs::remove_dir_all(shot_profile);
}

/// A fresh directory under the test target's temporary directory.
fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dashboard-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
