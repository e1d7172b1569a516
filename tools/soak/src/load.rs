//! The client load: foreground, background (high, normal, low), epoch and coalesced
//! (same unique) jobs from the tokio, smol and blocking adapters and from libgearman's
//! `gearman` CLI, each client pacing itself until the load stops.

use crate::ctx::{Ctx, FG_TIMEOUT};
use crate::payload;
use crate::worker::{quick_backoff, Adapter};
use bytes::Bytes;
use gearman_core::client::Job;
use gearman_core::proto::Priority;
use gearman_tokio::Runtime;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Pause between two calls of one client.
const PACE: Duration = Duration::from_millis(25);

/// One call of the mix.
#[derive(Clone, Copy, Debug)]
enum Op {
    Fg(Priority),
    Bg(Priority),
    Epoch,
    CoalescedFg,
    CoalescedBg,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Fg(_) => "fg",
            Op::Bg(Priority::High) => "bg_high",
            Op::Bg(Priority::Low) => "bg_low",
            Op::Bg(_) => "bg",
            Op::Epoch => "epoch",
            Op::CoalescedFg => "coalesced_fg",
            Op::CoalescedBg => "coalesced_bg",
        }
    }

    fn pick(rng: &mut fastrand::Rng) -> Op {
        match rng.u8(..100) {
            0..25 => Op::Fg(Priority::Normal),
            25..31 => Op::Fg(Priority::High),
            31..37 => Op::Fg(Priority::Low),
            37..60 => Op::Bg(Priority::Normal),
            60..68 => Op::Bg(Priority::High),
            68..76 => Op::Bg(Priority::Low),
            76..84 => Op::Epoch,
            84..92 => Op::CoalescedFg,
            _ => Op::CoalescedBg,
        }
    }
}

fn fg_job(unique: String, data: &Bytes, p: Priority) -> Job {
    Job::new(payload::FG, data.clone())
        .unique(unique)
        .priority(p)
        .timeout(FG_TIMEOUT)
}

/// A background job for `op` (Bg, Epoch, CoalescedBg) and its run-at time for epoch jobs.
fn bg_job(op: Op, id: u64, data: &Bytes, rng: &mut fastrand::Rng) -> (Job, Option<i64>) {
    let job = Job::new(payload::BG, data.clone())
        .unique(format!("b{id}"))
        .timeout(FG_TIMEOUT);
    match op {
        Op::Bg(p) => (job.priority(p), None),
        Op::Epoch => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let when = (now + rng.u64(1..=3)) as i64;
            (job.at_epoch(when), Some(when))
        }
        _ => (job, None),
    }
}

fn bg_outcome<E: std::fmt::Display>(
    ctx: &Ctx,
    source: &str,
    kind: &'static str,
    id: u64,
    epoch: Option<i64>,
    r: Result<Bytes, E>,
) {
    match r {
        Ok(handle) => {
            ctx.ledger.acked(id, kind, handle, epoch);
            ctx.stats.inc(&format!("load.bg_acked.{source}"));
        }
        Err(_) => ctx.stats.inc("load.bg_not_acked"),
    }
}

/// One async client (tokio or smol) until the load stops.
async fn async_client<Rt: Runtime>(
    rt: Rt,
    client: gearman_tokio::Client<Rt>,
    ctx: Arc<Ctx>,
    source: &'static str,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !ctx.load_stopped() {
        let op = Op::pick(&mut rng);
        let id = ctx.id();
        let data = payload::make(id, &mut rng);
        match op {
            Op::Fg(p) => {
                let call = ctx.fg_begin(source);
                let r = client.run(fg_job(format!("f{id}"), &data, p)).await;
                ctx.fg_end(call, source, r, &data);
            }
            Op::CoalescedFg => {
                let (a, b) = (ctx.fg_begin(source), ctx.fg_begin(source));
                let job = fg_job(format!("c{id}"), &data, Priority::Normal);
                let (ra, rb) = smol::future::zip(client.run(job.clone()), client.run(job)).await;
                ctx.fg_end(a, source, ra, &data);
                ctx.fg_end(b, source, rb, &data);
            }
            Op::Bg(_) | Op::Epoch | Op::CoalescedBg => {
                let (job, epoch) = bg_job(op, id, &data, &mut rng);
                ctx.ledger.submitting(id);
                let times = if matches!(op, Op::CoalescedBg) { 2 } else { 1 };
                for _ in 0..times {
                    let r = client.submit_background(job.clone()).await;
                    bg_outcome(&ctx, source, op.name(), id, epoch, r);
                }
            }
        }
        rt.sleep_until(Instant::now() + PACE).await;
    }
}

/// One blocking client until the load stops (coalesced foreground calls go out together
/// through `run_tasks`).
fn blocking_client(ctx: Arc<Ctx>, seed: u64) {
    let source = "blocking";
    let mut client = gearman_blocking::client()
        .server(ctx.addr.to_string())
        .backoff(quick_backoff())
        .timeout(FG_TIMEOUT)
        .build();
    let mut rng = fastrand::Rng::with_seed(seed);
    while !ctx.load_stopped() {
        let op = Op::pick(&mut rng);
        let id = ctx.id();
        let data = payload::make(id, &mut rng);
        match op {
            Op::Fg(p) => {
                let call = ctx.fg_begin(source);
                let r = client.run(fg_job(format!("f{id}"), &data, p));
                ctx.fg_end(call, source, r, &data);
            }
            Op::CoalescedFg => {
                let (a, b) = (ctx.fg_begin(source), ctx.fg_begin(source));
                let job = fg_job(format!("c{id}"), &data, Priority::Normal);
                let mut results = client
                    .run_tasks(vec![job.clone(), job], |_, _| {})
                    .into_iter();
                let none = || Err(gearman_blocking::Error::NoServer(Vec::new()));
                ctx.fg_end(a, source, results.next().unwrap_or_else(none), &data);
                ctx.fg_end(b, source, results.next().unwrap_or_else(none), &data);
            }
            Op::Bg(_) | Op::Epoch | Op::CoalescedBg => {
                let (job, epoch) = bg_job(op, id, &data, &mut rng);
                ctx.ledger.submitting(id);
                let times = if matches!(op, Op::CoalescedBg) { 2 } else { 1 };
                for _ in 0..times {
                    let r = client.submit_background(job.clone());
                    bg_outcome(&ctx, source, op.name(), id, epoch, r);
                }
            }
        }
        std::thread::sleep(PACE);
    }
}

/// The libgearman CLI: `gearman -f soak_fg` (foreground) or `-b` (background, high or
/// low), one process per call, killed if it outlives its timeout.
fn libgearman_client(ctx: Arc<Ctx>, seed: u64) {
    let source = "libgearman";
    let mut rng = fastrand::Rng::with_seed(seed);
    let port = ctx.addr.port().to_string();
    let timeout_ms = FG_TIMEOUT.as_millis().to_string();
    while !ctx.load_stopped() {
        let id = ctx.id();
        let data = format!("{id}|0|libgearman");
        let background = rng.bool();
        let mut cmd = Command::new("gearman");
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-t", &timeout_ms]);
        if background {
            cmd.args(["-b", "-f", payload::BG, "-u", &format!("b{id}")]);
            match rng.u8(..3) {
                0 => cmd.arg("-I"),
                1 => cmd.arg("-L"),
                _ => &mut cmd,
            };
            ctx.ledger.submitting(id);
        } else {
            cmd.args(["-f", payload::FG, "-u", &format!("f{id}")]);
        }
        cmd.arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal reaches only the soak.
            .process_group(0);
        let call = ctx.fg_begin(source);
        let outcome = run_bounded(&ctx, cmd);
        match (background, outcome) {
            (_, Err(e)) => {
                ctx.fg_end(call, source, Err::<Bytes, _>(e), b"");
            }
            (true, Ok((ok, _))) => {
                ctx.fg_end(call, source, Ok::<_, String>(Bytes::new()), b"");
                // The CLI prints no handle; it stays silent only after JOB_CREATED.
                let r = if ok {
                    Ok(Bytes::from(format!("cli-{id}")))
                } else {
                    Err("exit status")
                };
                bg_outcome(&ctx, source, "libgearman_bg", id, None, r);
            }
            (false, Ok((true, out))) => {
                ctx.fg_end(call, source, Ok::<_, String>(out), data.as_bytes())
            }
            (false, Ok((false, _))) => ctx.fg_end(
                call,
                source,
                Err("connection: gearman exited non-zero"),
                b"",
            ),
        }
        std::thread::sleep(PACE * 4);
    }
}

/// Runs the CLI; kills it (an error) if it is still running after its timeout and the
/// hang slack. Returns (success, stdout): the CLI exits 0 even when it could not connect,
/// so success is exit 0 *and* nothing on stderr.
fn run_bounded(ctx: &Ctx, mut cmd: Command) -> Result<(bool, Bytes), String> {
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            // Without libgearman the soak does not test what it claims: a failure.
            ctx.stats.inc("fail.libgearman_cli_cannot_run");
            return Err(format!("cannot run gearman (libgearman CLI): {e}"));
        }
    };
    let deadline = Instant::now() + FG_TIMEOUT + crate::ctx::HANG_SLACK;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("gearman CLI hung: timed out".into());
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    Ok((
        out.status.success() && out.stderr.is_empty(),
        out.stdout.into(),
    ))
}

/// Starts `per_adapter` clients on each adapter and one libgearman client.
pub fn start(ctx: &Arc<Ctx>, per_adapter: usize, seed: u64) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for adapter in Adapter::ALL {
        for i in 0..per_adapter {
            let ctx = ctx.clone();
            let seed = seed ^ ((adapter as u64) << 32) ^ i as u64;
            threads.push(std::thread::spawn(move || match adapter {
                Adapter::Tokio => {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("tokio runtime");
                    rt.block_on(async {
                        let client = gearman_tokio::client()
                            .server(ctx.addr.to_string())
                            .timeout(FG_TIMEOUT)
                            .backoff(quick_backoff())
                            .build();
                        async_client(gearman_tokio::TokioRuntime, client, ctx, "tokio", seed).await;
                    });
                }
                Adapter::Smol => smol::block_on(async {
                    let client = gearman_async_std::client()
                        .server(ctx.addr.to_string())
                        .timeout(FG_TIMEOUT)
                        .backoff(quick_backoff())
                        .build();
                    async_client(gearman_async_std::AsyncIoRuntime, client, ctx, "smol", seed)
                        .await;
                }),
                Adapter::Blocking => blocking_client(ctx, seed),
            }));
        }
    }
    let ctx = ctx.clone();
    threads.push(std::thread::spawn(move || {
        libgearman_client(ctx, seed ^ 0xc11)
    }));
    threads
}
