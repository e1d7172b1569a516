//! `gearman-soak`: runs a gearmand-rs with a durable SQLite queue under mixed load from
//! every adapter and libgearman while injecting faults on a schedule, checks throughout and
//! at the end that nothing was lost, nothing hung, results reached their callers, `status`
//! agrees when quiescent, memory came back down and healthy peers were served; prints a
//! progress line per interval and a summary, and exits non-zero on any failed check.
//! SIGINT or SIGTERM stops it early with a summary of what it saw until then.
//!
//! `gearman-soak worker ...` is the worker process the soak starts (and kills) itself.

mod ctx;
mod faults;
mod interrupt;
mod ledger;
mod load;
mod payload;
mod probe;
mod raw;
mod server;
mod stats;
mod sys;
mod worker;
mod workers;

use clap::{Parser, Subcommand};
use ctx::Ctx;
use faults::{Fault, Target};
use interrupt::Interrupt;
use server::ServerCtl;
use stats::Stats;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::Adapter;
use workers::Workers;

#[derive(Parser)]
#[command(name = "gearman-soak", about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Mode {
    /// A worker process (started by the soak itself).
    Worker {
        /// host:port of the server.
        #[arg(long)]
        server: String,
        /// Adapter to run on.
        #[arg(long, value_enum)]
        adapter: Adapter,
        /// Serve only the probe's function.
        #[arg(long)]
        probe: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Seconds of load (faults stop in the last 15%, at most 20 s, so the end state settles).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// The gearmand-rs binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Directory for the queue file and the server log: new or empty (default: a new one
    /// under /tmp, kept after the run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the fault schedule and the load mix (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Milliseconds between two faults.
    #[arg(long, default_value_t = 2000)]
    fault_interval_ms: u64,
    /// Worker processes per adapter (tokio, smol, blocking); at least 1, since every
    /// adapter's workers serve the load.
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    workers_per_adapter: usize,
    /// Clients per adapter (plus one libgearman CLI client).
    #[arg(long, default_value_t = 2)]
    clients_per_adapter: usize,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    progress_secs: u64,
    /// Seconds to wait after the load for every acknowledged job to have run.
    #[arg(long, default_value_t = 90)]
    drain_secs: u64,
    /// How far (MiB) the server's quiescent RSS after the load may exceed its quiescent
    /// RSS after the warm-up.
    #[arg(long, default_value_t = 32)]
    rss_tolerance_mib: u64,
}

/// A count of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Worker {
            server,
            adapter,
            probe,
        }) => worker::run(server, adapter, probe),
        None => std::process::exit(match soak(cli.run) {
            Ok(Ended::Passed) => 0,
            Ok(Ended::Failed) => 1,
            Ok(Ended::Interrupted(signal)) => 128 + signal,
            Err(e) => {
                eprintln!("gearman-soak: {e}");
                2
            }
        }),
    }
}

/// How a soak that ran ended.
enum Ended {
    /// Every check passed.
    Passed,
    /// Some check failed.
    Failed,
    /// SIGINT or SIGTERM (the number) stopped it early.
    Interrupted(i32),
}

/// How long an interrupted soak waits for the acknowledged jobs to run before its summary.
const INTERRUPTED_DRAIN: Duration = Duration::from_secs(10);

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The whole run.
fn soak(args: RunArgs) -> Result<Ended, String> {
    let interrupt = Interrupt::listen()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server_bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| exe.with_file_name("gearmand-rs"));
    if !server_bin.exists() {
        return Err(format!(
            "no server binary at {} (use --server-bin)",
            server_bin.display()
        ));
    }
    let dir = run_dir(args.dir.clone(), &std::env::temp_dir())?;
    let seed = args.seed.unwrap_or_else(ledger::now_us);
    println!(
        "gearman-soak: seed {seed}, {} s, dir {}",
        args.duration,
        dir.display()
    );

    let stats = Arc::new(Stats::default());
    let server = ServerCtl::new(server_bin, &dir, stats.clone()).map_err(|e| e.to_string())?;
    server.start(sys::UNLIMITED)?;
    let ctx = Arc::new(Ctx::new(server.addr, stats.clone()));
    let workers =
        Workers::start(exe, ctx.clone(), args.workers_per_adapter).map_err(|e| e.to_string())?;
    if !quiescent(&server, &workers, Duration::from_secs(20), &interrupt) {
        if let Some(signal) = interrupt.signal() {
            eprintln!(
                "gearman-soak: {} before the load started",
                interrupt::name(signal)
            );
            return Ok(Ended::Interrupted(signal));
        }
        return Err("the workers did not all register within 20 s".into());
    }

    // Warm-up without faults, then the quiescent baseline.
    let warm = load::start(&ctx, args.clients_per_adapter, seed);
    interrupt.sleep(Duration::from_secs(5));
    ctx.stop_load.store(true, Ordering::Release);
    warm.into_iter().for_each(|t| drop(t.join()));
    drain(&ctx, Duration::from_secs(30));
    quiescent(&server, &workers, Duration::from_secs(20), &interrupt);
    std::thread::sleep(Duration::from_secs(1));
    let baseline = sys::rss_bytes(server.pid()).unwrap_or(0);
    println!(
        "baseline: server RSS {:.1} MiB after the warm-up",
        mib(baseline)
    );

    ctx.stop_load.store(false, Ordering::Release);
    let started = Instant::now();
    let load = load::start(&ctx, args.clients_per_adapter, seed.wrapping_add(1));
    let probe = {
        let ctx = ctx.clone();
        std::thread::spawn(move || probe::run(ctx))
    };
    let duration = Duration::from_secs(args.duration);
    let quiet_tail = (duration * 15 / 100).min(Duration::from_secs(20));
    let mut rng = fastrand::Rng::with_seed(seed);
    let target = Target {
        ctx: &ctx,
        server: &server,
        workers: &workers,
    };
    let mut cycle = Vec::new();
    let mut next_progress = Duration::from_secs(args.progress_secs);
    while started.elapsed() < duration && !interrupt.happened() {
        if started.elapsed() + quiet_tail < duration {
            if cycle.is_empty() {
                cycle = Fault::ALL.to_vec();
                rng.shuffle(&mut cycle);
            }
            let fault = cycle.pop().expect("refilled above");
            target.inject(fault, &mut rng);
        }
        watch(&ctx, &server, &workers);
        let pause = Instant::now() + Duration::from_millis(args.fault_interval_ms);
        while Instant::now() < pause && started.elapsed() < duration && !interrupt.happened() {
            if started.elapsed() >= next_progress {
                progress(&ctx, &server, started.elapsed());
                next_progress += Duration::from_secs(args.progress_secs);
            }
            watch(&ctx, &server, &workers);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    match interrupt.signal() {
        Some(signal) => println!(
            "{} at {:?}: the load stops; draining for at most {INTERRUPTED_DRAIN:?}",
            interrupt::name(signal),
            started.elapsed()
        ),
        None => println!("load stops at {:?}; draining", started.elapsed()),
    }
    ctx.stop_load.store(true, Ordering::Release);
    for t in load {
        while !t.is_finished() {
            watch(&ctx, &server, &workers);
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(t.join());
    }
    if ctx.watch_hangs() > 0 {
        stats.inc("fail.fg_calls_left_running");
    }
    let drain_limit = match interrupt.happened() {
        true => INTERRUPTED_DRAIN.min(Duration::from_secs(args.drain_secs)),
        false => Duration::from_secs(args.drain_secs),
    };
    let drained = drain(&ctx, drain_limit);
    // An interrupted soak has not waited the drain out: jobs not run yet are unverified,
    // not lost, and the end state has not settled for the quiescent checks.
    let settled = !interrupt.happened();
    if settled || drained {
        check(
            &stats,
            "all_acknowledged_jobs_ran_before_drain_deadline",
            drained,
        );
    }
    if settled {
        let agrees = quiescent(&server, &workers, Duration::from_secs(30), &interrupt);
        check(&stats, "status_agrees_when_quiescent", agrees);
        std::thread::sleep(Duration::from_secs(2));
        let rss = sys::rss_bytes(server.pid()).unwrap_or(0);
        stats.max("info.server_rss_final_kib", rss / 1024);
        stats.max("info.server_rss_baseline_kib", baseline / 1024);
        let leak = rss > baseline + args.rss_tolerance_mib * 1024 * 1024;
        check(&stats, "rss_back_near_baseline", !leak);
        if leak {
            eprintln!(
                "FAIL: server RSS {:.1} MiB after the load, baseline {:.1} MiB (+{} MiB allowed)",
                mib(rss),
                mib(baseline),
                args.rss_tolerance_mib
            );
        }
    } else {
        stats.inc("info.interrupted_checks_not_made.status_agrees_when_quiescent");
        stats.inc("info.interrupted_checks_not_made.rss_back_near_baseline");
    }
    ctx.stop_all.store(true, Ordering::Release);
    drop(probe.join());
    workers.stop();

    let verdict = ctx.ledger.verdict();
    stats.add(
        "check.bg_acknowledged_jobs_ran",
        verdict.acked - verdict.lost.len() as u64,
    );
    stats.add("check.bg_ran_exactly_once", verdict.exactly_once);
    let unverified = !settled && !drained;
    if unverified {
        // Acknowledged, not run yet when the interrupted soak stopped waiting: still queued
        // as far as the soak knows.
        stats.add(
            "info.bg_not_run_when_interrupted",
            verdict.lost.len() as u64,
        );
    } else {
        stats.add("fail.bg_lost", verdict.lost.len() as u64);
    }
    stats.add(
        "fail.bg_duplicate_unexplained",
        verdict.unexplained_dups.len() as u64,
    );
    stats.add("fail.epoch_job_ran_early", verdict.early_epoch.len() as u64);
    stats.add("fail.run_of_unknown_id", verdict.unknown_runs);
    stats.add(
        "info.bg_extra_run_after_worker_kill",
        verdict.dup_worker_kill,
    );
    stats.add(
        "info.bg_extra_run_after_server_kill",
        verdict.dup_server_kill,
    );
    stats.add(
        "info.bg_extra_run_after_full_disk_and_kill",
        verdict.dup_disk_full,
    );
    stats.add(
        "info.bg_run_of_unacknowledged_submission",
        verdict.unacked_runs,
    );
    let no_ids = Vec::new();
    for (what, ids) in [
        ("lost", if unverified { &no_ids } else { &verdict.lost }),
        ("duplicated", &verdict.unexplained_dups),
        ("early", &verdict.early_epoch),
    ] {
        if !ids.is_empty() {
            eprintln!("FAIL: {} job(s) {what}, e.g.:", ids.len());
            for id in &ids[..ids.len().min(10)] {
                eprintln!("   {}", ctx.ledger.describe(*id));
            }
        }
    }
    summary(&stats, started.elapsed(), &dir, interrupt.signal());
    Ok(match interrupt.signal() {
        Some(signal) => Ended::Interrupted(signal),
        None if stats.sum("fail.") == 0 => Ended::Passed,
        None => Ended::Failed,
    })
}

/// The run's directory: `dir` if it is new or empty, else a fresh one under `tmp`. A
/// directory with a leftover queue file would replay the old run's jobs into this one,
/// where they fail as runs of unknown ids.
fn run_dir(dir: Option<PathBuf>, tmp: &std::path::Path) -> Result<PathBuf, String> {
    let Some(dir) = dir else {
        return tempfile::Builder::new()
            .prefix("gearman-soak-")
            .tempdir_in(tmp)
            // Kept: the summary points at its server log.
            .map(tempfile::TempDir::keep)
            .map_err(|e| format!("cannot create a directory under {}: {e}", tmp.display()));
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if entries.next().is_some() {
        return Err(format!(
            "--dir {} is not empty: a queue file left there would replay an old run's jobs \
             into this one; give a new or empty directory",
            dir.display()
        ));
    }
    Ok(dir)
}

fn check(stats: &Stats, name: &str, ok: bool) {
    stats.inc(&format!("{}.{name}", if ok { "check" } else { "fail" }));
    if !ok {
        eprintln!("FAIL: {name}");
    }
}

/// Per-interval health: hung calls, workers or server that died by themselves.
fn watch(ctx: &Ctx, server: &ServerCtl, workers: &Workers) {
    ctx.watch_hangs();
    let died = workers.reap_unexpected();
    ctx.stats.add("fail.worker_exited_unexpectedly", died);
    if server.exited() {
        ctx.stats.inc("fail.server_exited_unexpectedly");
        eprintln!("FAIL: the server exited by itself; restarting it");
        ctx.ledger.server_killed();
        if let Err(e) = server.start(sys::UNLIMITED) {
            eprintln!("FAIL: restart: {e}");
        }
        ctx.ledger.server_restarted();
    }
}

/// Waits until every acknowledged job ran.
fn drain(ctx: &Ctx, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let (acked, ran) = ctx.ledger.progress();
        if ran >= acked {
            return true;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "drain: {} of {acked} acknowledged jobs have not run",
                acked - ran
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `status` shows no queued or running soak job and exactly the live workers.
/// Gives up at once (false) when the soak is interrupted.
fn quiescent(
    server: &ServerCtl,
    workers: &Workers,
    limit: Duration,
    interrupt: &Interrupt,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        if let Ok(text) = server.admin("status") {
            let rows = raw::parse_status(&text, payload::PREFIX);
            let want = |name: &str, n: usize| {
                rows.iter()
                    .any(|r| r.0 == name && r.1 == 0 && r.2 == 0 && r.3 == n as u64)
            };
            if rows.len() == 3
                && want(payload::FG, workers.count())
                && want(payload::BG, workers.count())
                && want(payload::PROBE, 1)
            {
                return true;
            }
            last = text;
        }
        if interrupt.happened() {
            return false;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "status never matched {} workers, idle queues:\n{last}",
                workers.count()
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn progress(ctx: &Ctx, server: &ServerCtl, elapsed: Duration) {
    let s = &ctx.stats;
    let (acked, ran) = ctx.ledger.progress();
    let pid = server.pid();
    println!(
        "[{:>5}s] fg ok {} err {} | bg acked {acked} ran {ran} refused {} | faults {} | checks {} | FAILS {} | probe max {} ms | server rss {:.1} MiB fds {} log lines {}",
        elapsed.as_secs(),
        s.sum("check.fg_result_matched"),
        s.sum("load.fg_error"),
        s.get("load.bg_not_acked"),
        s.sum("fault."),
        s.sum("check."),
        s.sum("fail."),
        s.get("info.probe_echo_rtt_max_ms").max(s.get("info.probe_job_rtt_max_ms")),
        mib(sys::rss_bytes(pid).unwrap_or(0)),
        sys::open_fds(pid).unwrap_or(0),
        s.get("info.server_log_lines"),
    );
}

fn summary(stats: &Stats, elapsed: Duration, dir: &std::path::Path, signal: Option<i32>) {
    println!(
        "== gearman-soak summary after {:.0} s{} (server log: {})",
        elapsed.as_secs_f64(),
        signal.map_or(String::new(), |s| format!(
            ", interrupted by {}",
            interrupt::name(s)
        )),
        dir.join("server.log").display()
    );
    for group in ["fault.", "check.", "fail.", "load.", "info."] {
        let rows: Vec<_> = stats
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.starts_with(group))
            .collect();
        println!(
            "-- {} (total {})",
            group.trim_end_matches('.'),
            rows.iter().map(|r| r.1).sum::<u64>()
        );
        for (k, v) in rows {
            println!("   {k:<58} {v}");
        }
    }
    let fails = stats.sum("fail.");
    let verdict = match (fails, signal) {
        (0, None) => "PASS".to_string(),
        (_, None) => format!("FAIL ({fails} failed checks)"),
        (0, Some(s)) => format!(
            "INTERRUPTED by {} after {:.0} s: no check failed until then; the end checks \
             listed under info.interrupted_checks_not_made were not made",
            interrupt::name(s),
            elapsed.as_secs_f64()
        ),
        (_, Some(s)) => format!(
            "FAIL ({fails} failed checks), INTERRUPTED by {} after {:.0} s",
            interrupt::name(s),
            elapsed.as_secs_f64()
        ),
    };
    println!("== {verdict}");
}

#[cfg(test)]
mod tests {
    use super::run_dir;

    #[test]
    fn the_default_dir_is_fresh_even_beside_a_leftover_of_the_same_pid() {
        let tmp = tempfile::tempdir().unwrap();
        // What an earlier soak with this pid would have left.
        let leftover = tmp
            .path()
            .join(format!("gearman-soak-{}", std::process::id()));
        std::fs::create_dir(&leftover).unwrap();
        std::fs::write(leftover.join("queue.sqlite"), b"old jobs").unwrap();
        let first = run_dir(None, tmp.path()).unwrap();
        let second = run_dir(None, tmp.path()).unwrap();
        assert_ne!(first, leftover);
        assert_ne!(first, second);
        for dir in [&first, &second] {
            assert!(dir.starts_with(tmp.path()), "{}", dir.display());
            assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
        }
    }

    #[test]
    fn a_given_dir_must_be_new_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        assert_eq!(run_dir(Some(new.clone()), tmp.path()), Ok(new.clone()));
        assert_eq!(run_dir(Some(new.clone()), tmp.path()), Ok(new.clone()));
        std::fs::write(new.join("queue.sqlite"), b"old jobs").unwrap();
        let refused = run_dir(Some(new), tmp.path()).unwrap_err();
        assert!(refused.contains("is not empty"), "{refused}");
    }
}
