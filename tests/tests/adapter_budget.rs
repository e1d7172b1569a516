//! The adapters stay thin: protocol logic belongs in gearman-core. Counts non-blank,
//! non-comment lines in each adapter crate's `src/` and fails above its budget (design.md
//! §9.6: move logic into core when this fails).

use std::path::Path;

/// Non-blank lines that are not `//` comments (doc comments included), in every `.rs`
/// file under `dir`.
fn code_lines(dir: &Path) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("adapter src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            total += code_lines(&path);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            total += text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("//"))
                .count();
        }
    }
    total
}

fn check(crate_dir: &str, budget: usize) -> usize {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters")
        .join(crate_dir)
        .join("src");
    let n = code_lines(&src);
    assert!(n > 0, "no code found in {}", src.display());
    assert!(
        n <= budget,
        "{crate_dir}: {n} code lines, budget {budget}: move protocol logic into gearman-core"
    );
    n
}

#[test]
fn tokio_shim_within_150_lines() {
    check("tokio", 150);
}

#[test]
fn async_std_shim_within_150_lines() {
    check("async-std", 150);
}

#[test]
fn blocking_adapter_within_490_lines() {
    // +55 for the admin client's socket loop (its typed calls are gearman-core's AdminCalls),
    // +65 for work_once: a thread per server, the shared stop and the deadline tick,
    // +5 for the `tls` feature: its re-exports and the builders' `tls` (the connector itself
    // is gearman_async::blocking::TlsConnector),
    // +4 for submit_scheduled and its re-export (the call is gearman-core's
    // Job::scheduled_call),
    // +30 for streamed workloads: run_streamed, submit_background_streamed and their one
    // call into the engine's run_calls_with (the copy loop is gearman_async::blocking's),
    // +15 for run_streamed_with: a streamed job's events (converted by gearman_async's
    // JobEvent::from_event, as run_batch's are),
    // +15 for the worker logging what the server refused (ERROR packets, functions it
    // cannot register; the log lines are gearman_async::blocking's) and the connect
    // timeouts' re-exports (the deadline logic is gearman-core's ClientSet::start_within).
    check("blocking", 490);
}

#[test]
fn counting_skips_blanks_and_comments() {
    let dir = tempfile::Builder::new()
        .prefix("adapter-budget-")
        .tempdir()
        .unwrap();
    std::fs::write(
        dir.path().join("a.rs"),
        "//! doc\n\n/// item\nfn f() {\n    // why\n}\n",
    )
    .unwrap();
    assert_eq!(code_lines(dir.path()), 2);
}
