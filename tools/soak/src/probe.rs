//! The healthy peer: an echo every 250 ms and a foreground job of the probe's own worker
//! (never killed) every second, each with a bounded round trip. Failures while a fault
//! makes new connections wait (server down, fd limit) are expected and counted apart.

use crate::ctx::Ctx;
use crate::payload;
use crate::raw::RawConn;
use bytes::Bytes;
use gearman_core::proto::{Priority, SubmitMode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest acceptable echo round trip.
pub const ECHO_BOUND: Duration = Duration::from_secs(2);
/// Longest acceptable probe job round trip.
pub const JOB_BOUND: Duration = Duration::from_secs(5);

fn attempt(conn: &mut Option<RawConn>, ctx: &Ctx, job: bool) -> std::io::Result<Duration> {
    if conn.is_none() {
        *conn = Some(RawConn::connect(ctx.addr, Duration::from_secs(1))?);
    }
    let c = conn.as_mut().expect("connected above");
    let start = Instant::now();
    if job {
        let id = ctx.id();
        let data = Bytes::from(format!("{id}|0|probe"));
        c.submit(
            payload::PROBE,
            "",
            SubmitMode::Foreground(Priority::High),
            data.clone(),
            JOB_BOUND,
        )?;
        let back = c.complete(JOB_BOUND)?;
        if back != data {
            ctx.stats.inc("fail.probe_wrong_result");
        }
    } else {
        c.echo(b"probe", ECHO_BOUND)?;
    }
    Ok(start.elapsed())
}

/// Runs until `ctx.stop_all`.
pub fn run(ctx: Arc<Ctx>) {
    let mut conn: Option<RawConn> = None;
    let mut round = 0u64;
    while !ctx.stop_all.load(Ordering::Acquire) {
        round += 1;
        let job = round % 4 == 0;
        let excused_before = ctx.excused.load(Ordering::Acquire) > 0;
        let mut result = attempt(&mut conn, &ctx, job);
        if result.is_err() {
            // The connection may be stale from a server restart: one retry on a new one.
            conn = None;
            result = attempt(&mut conn, &ctx, job);
        }
        let excused = excused_before || ctx.excused.load(Ordering::Acquire) > 0;
        let (what, bound) = if job {
            ("job", JOB_BOUND)
        } else {
            ("echo", ECHO_BOUND)
        };
        match result {
            Ok(rtt) => {
                ctx.stats.inc(&format!("check.probe_{what}_served"));
                if !excused {
                    ctx.stats.max(
                        &format!("info.probe_{what}_rtt_max_ms"),
                        rtt.as_millis() as u64,
                    );
                    if rtt > bound {
                        ctx.stats.inc(&format!("fail.probe_{what}_slow"));
                        eprintln!("FAIL: probe {what} took {rtt:?}");
                    }
                }
            }
            Err(_) if excused => {
                conn = None;
                ctx.stats
                    .inc("info.probe_failed_during_server_down_or_fd_limit");
            }
            Err(e) => {
                conn = None;
                ctx.stats.inc(&format!("fail.probe_{what}_failed"));
                eprintln!("FAIL: probe {what}: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
