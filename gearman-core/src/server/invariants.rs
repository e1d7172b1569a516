//! The property-test hook: every structural invariant of the server, one function each,
//! checked from scratch.

use super::jobs::{JobId, Phase, TimerKind};
use super::{ConnId, Server};
use crate::proto::Priority;
use bytes::Bytes;
use std::collections::HashMap;

type Check = fn(&Server) -> Result<(), String>;

/// Every invariant, in the order they are checked.
const INVARIANTS: &[Check] = &[
    jobs_are_placed,
    queued_jobs_are_in_one_queue,
    queue_counts_match,
    running_and_waiting_counts_match,
    registrations_match,
    capable_workers_can_do,
    no_worker_sleeps_on_work,
    running_jobs_are_held_by_their_worker,
    handles_are_indexed,
    uniques_are_indexed,
    foreground_jobs_have_clients,
    listeners_match_watchers,
    cancelled_jobs_are_silent,
    background_jobs_are_stored,
    timers_match_phases,
    max_queue_is_respected,
    store_writes_are_live,
    placeholders_are_owed,
    kept_results_are_consistent,
];

pub(super) fn check(s: &Server) -> Result<(), String> {
    INVARIANTS.iter().try_for_each(|invariant| invariant(s))
}

/// No job is left in the phase it was created in.
fn jobs_are_placed(s: &Server) -> Result<(), String> {
    match s.jobs.jobs.iter().find(|(_, j)| j.phase() == Phase::New) {
        Some((id, _)) => Err(format!("job {id:?} left unplaced")),
        None => Ok(()),
    }
}

/// Each queued job is in exactly one queue, its function's at its priority.
fn queued_jobs_are_in_one_queue(s: &Server) -> Result<(), String> {
    let mut seen: HashMap<JobId, usize> = HashMap::new();
    for f in s.jobs.functions.values() {
        for (p, id) in f.queue_ids() {
            let Some(j) = s.jobs.job(id).filter(|j| j.phase() == Phase::Queued) else {
                continue;
            };
            if j.priority != p || j.function != f.name {
                return Err(format!(
                    "job {id:?} queued under the wrong function or priority"
                ));
            }
            *seen.entry(id).or_default() += 1;
        }
    }
    for (id, j) in &s.jobs.jobs {
        if j.phase() == Phase::Queued && seen.get(id) != Some(&1) {
            return Err(format!(
                "queued job {id:?} is in {} queues",
                seen.get(id).unwrap_or(&0)
            ));
        }
    }
    Ok(())
}

/// Each function's queued counts are its live queue entries.
fn queue_counts_match(s: &Server) -> Result<(), String> {
    for f in s.jobs.functions.values() {
        for p in Priority::ALL {
            let live = f
                .queue_ids()
                .filter(|(q, id)| {
                    *q == p && s.jobs.job(*id).is_some_and(|j| j.phase() == Phase::Queued)
                })
                .count();
            if live != f.queued(p) {
                return Err(format!(
                    "function {:?}: queued count {} but {live} live ids",
                    f.name,
                    f.queued(p)
                ));
            }
        }
    }
    Ok(())
}

/// Each function's running and waiting counts are its jobs in those phases.
fn running_and_waiting_counts_match(s: &Server) -> Result<(), String> {
    let mut counted: HashMap<&Bytes, (usize, usize)> = HashMap::new();
    for j in s.jobs.jobs.values() {
        let c = counted.entry(&j.function).or_default();
        match j.phase() {
            Phase::Running { .. } => c.0 += 1,
            Phase::Scheduled(_) | Phase::Persisting => c.1 += 1,
            Phase::New | Phase::Queued => {}
        }
    }
    for f in s.jobs.functions.values() {
        let (running, waiting) = counted.get(&f.name).copied().unwrap_or_default();
        if running != f.running {
            return Err(format!(
                "function {:?}: running {} but {running} jobs run",
                f.name, f.running
            ));
        }
        if waiting != f.waiting {
            return Err(format!(
                "function {:?}: waiting {} but {waiting} jobs wait",
                f.name, f.waiting
            ));
        }
    }
    Ok(())
}

/// Each function's registrations are the CAN_DOs its workers hold.
fn registrations_match(s: &Server) -> Result<(), String> {
    let mut held: HashMap<&Bytes, usize> = HashMap::new();
    for (_, c) in s.conns.iter() {
        for ((name, _), n) in c.worker.abilities.iter().zip(&c.worker.registrations) {
            *held.entry(name).or_default() += n;
        }
    }
    for f in s.jobs.functions.values() {
        let registrations = held.get(&f.name).copied().unwrap_or(0);
        if registrations != f.registrations {
            return Err(format!(
                "function {:?}: {} registrations counted, {registrations} held",
                f.name, f.registrations
            ));
        }
    }
    Ok(())
}

/// Each worker listed as capable of a function can do it.
fn capable_workers_can_do(s: &Server) -> Result<(), String> {
    for f in s.jobs.functions.values() {
        for &w in &f.capable {
            if s.conns
                .get(w)
                .is_none_or(|c| c.worker.ability(&f.name).is_none())
            {
                return Err(format!(
                    "function {:?}: capable worker {w:?} cannot do it",
                    f.name
                ));
            }
        }
    }
    Ok(())
}

/// Work never waits on workers that are all asleep and unwoken. (With `worker_wakeup` N,
/// sleepers beyond the N woken may stay asleep; with 0, none may.)
fn no_worker_sleeps_on_work(s: &Server) -> Result<(), String> {
    let unwoken = |w: &&ConnId| s.conns.get(**w).is_some_and(|c| c.worker.is_unwoken());
    for f in s.jobs.functions.values() {
        if f.queued_total() == 0 || f.capable.is_empty() {
            continue;
        }
        let stuck = if s.config.worker_wakeup == 0 {
            f.capable.iter().find(unwoken).copied()
        } else if f.capable.iter().all(|w| unwoken(&w)) {
            f.capable.first().copied()
        } else {
            None
        };
        if let Some(w) = stuck {
            return Err(format!(
                "worker {w:?} sleeps while {:?} has queued work",
                f.name
            ));
        }
    }
    Ok(())
}

/// A running job is held once by its worker, and a worker holds only jobs running on it.
fn running_jobs_are_held_by_their_worker(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        if let Phase::Running { worker } = j.phase() {
            let held = s
                .conns
                .get(worker)
                .map_or(0, |c| c.worker.running.iter().filter(|&r| r == id).count());
            if held != 1 {
                return Err(format!(
                    "running job {id:?} held {held} times by its worker"
                ));
            }
        }
    }
    for (cid, c) in s.conns.iter() {
        for &id in &c.worker.running {
            let here = s
                .jobs
                .job(id)
                .is_some_and(|j| j.phase() == Phase::Running { worker: cid });
            if !here {
                return Err(format!(
                    "conn {cid:?} holds job {id:?} that is not running on it"
                ));
            }
        }
    }
    Ok(())
}

/// The handle map holds exactly the live jobs.
fn handles_are_indexed(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        if s.jobs.by_handle.get(&j.handle) != Some(id) {
            return Err(format!("job {id:?} missing from the handle map"));
        }
    }
    for (h, id) in &s.jobs.by_handle {
        if s.jobs.job(*id).is_none_or(|j| j.handle != *h) {
            return Err(format!("handle {h:?} points at no live job"));
        }
    }
    Ok(())
}

/// The unique map holds each job that coalesces, under its function.
fn uniques_are_indexed(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        if let Some(k) = &j.unique_key {
            if s.jobs.by_unique(&j.function, k) != Some(*id) {
                return Err(format!("job {id:?} missing from the unique map"));
            }
        }
    }
    for ((f, _), id) in &s.jobs.by_unique {
        if s.jobs.job(*id).is_none_or(|j| j.function != *f) {
            return Err(format!("unique entry of {f:?} points at no live job"));
        }
    }
    Ok(())
}

/// A foreground job nobody waits for is not kept waiting to run.
fn foreground_jobs_have_clients(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        if !j.background
            && j.listeners.is_empty()
            && matches!(j.phase(), Phase::Queued | Phase::Scheduled(_))
        {
            return Err(format!("foreground job {id:?} queued with no client"));
        }
    }
    Ok(())
}

/// A job's listeners and its clients' watch counts agree, both ways.
fn listeners_match_watchers(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        for l in &j.listeners {
            let n_l = j.listeners.iter().filter(|x| *x == l).count();
            let n_w = s
                .conns
                .get(*l)
                .map_or(0, |c| c.client.watching.get(id).copied().unwrap_or(0));
            if n_l != n_w {
                return Err(format!(
                    "job {id:?}: listener {l:?} attached {n_l} times but watches {n_w}"
                ));
            }
        }
    }
    for (cid, c) in s.conns.iter() {
        for id in c.client.watching.keys() {
            if !s.jobs.job(*id).is_some_and(|j| j.listeners.contains(&cid)) {
                return Err(format!(
                    "conn {cid:?} watches job {id:?} that does not list it"
                ));
            }
        }
    }
    Ok(())
}

/// A cancelled job is a running job nobody hears of: no clients, unique or store row.
fn cancelled_jobs_are_silent(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        if j.cancelled
            && !(j.is_running()
                && j.listeners.is_empty()
                && j.unique_key.is_none()
                && j.durable_id.is_none())
        {
            return Err(format!("cancelled job {id:?} is not a silent running job"));
        }
    }
    Ok(())
}

/// A job waiting for its first write has it pending; and with persistence on, every
/// background job is stored or being stored (a job accepted is never lost).
fn background_jobs_are_stored(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        let write_pending = j
            .durable_id
            .is_some_and(|d| s.jobs.persisting.get(&d).is_some_and(|w| w.job == *id));
        if j.phase() == Phase::Persisting && !write_pending {
            return Err(format!("job {id:?} waits for a store write nobody awaits"));
        }
        if s.config.persist_background && j.background && !j.cancelled && j.durable_id.is_none() {
            return Err(format!("background job {id:?} is not stored"));
        }
    }
    Ok(())
}

/// Exactly the live timers are armed, each owned by the job in the phase it was armed for.
fn timers_match_phases(s: &Server) -> Result<(), String> {
    for (id, j) in &s.jobs.jobs {
        let expected = match j.phase() {
            Phase::Scheduled(_) => Some(true),
            Phase::Running { .. } => None,
            _ => Some(false),
        };
        if expected.is_some_and(|want| want != j.timer().is_some()) {
            return Err(format!(
                "job {id:?} in phase {:?} has timer {:?}",
                j.phase(),
                j.timer()
            ));
        }
    }
    for (timer, kind) in s.jobs.timers.iter() {
        let ok = s.jobs.job(kind.job()).is_some_and(|j| {
            j.timer() == Some(*timer)
                && match kind {
                    TimerKind::Due { .. } => matches!(j.phase(), Phase::Scheduled(_)),
                    TimerKind::RunTimeout { .. } => j.is_running(),
                }
        });
        if !ok {
            return Err(format!("timer {kind:?} outlived its purpose"));
        }
    }
    let owned = s.jobs.jobs.values().filter(|j| j.timer().is_some()).count();
    if owned != s.jobs.timers.len() {
        return Err(format!(
            "{owned} jobs hold timers but {} are armed",
            s.jobs.timers.len()
        ));
    }
    Ok(())
}

/// With every priority limited, no new job took a function's total past its largest
/// `maxqueue` limit (jobs already there when the limit was lowered may drain).
fn max_queue_is_respected(s: &Server) -> Result<(), String> {
    for (name, limits) in &s.jobs.max_queue {
        let Some(f) = s.jobs.function(name) else {
            continue;
        };
        if limits.iter().all(|&l| l > 0) {
            let max = limits.iter().copied().max().unwrap_or(0) as usize;
            if f.total() > max.max(f.over_limit_grace) {
                return Err(format!(
                    "function {name:?} holds {} jobs over its limit {max}",
                    f.total()
                ));
            }
        }
    }
    Ok(())
}

/// Each pending store write was started, and is for the job holding that durable id
/// (unless it ended or was cancelled since).
fn store_writes_are_live(s: &Server) -> Result<(), String> {
    for (d, w) in &s.jobs.persisting {
        if *d >= s.jobs.next_durable {
            return Err(format!("store write {d} was never started"));
        }
        if let Some(j) = s.jobs.job(w.job) {
            if j.handle != w.handle || j.durable_id.is_some_and(|x| x != *d) {
                return Err(format!("store write {d} is not for job {:?}", w.job));
            }
        }
    }
    Ok(())
}

/// No placeholder is left unresolved: each is owed an answer by a pending write.
fn placeholders_are_owed(s: &Server) -> Result<(), String> {
    for (cid, c) in s.conns.iter() {
        let mut held: HashMap<u64, usize> = HashMap::new();
        for d in c.session.output.placeholders() {
            *held.entry(d).or_default() += 1;
        }
        for (d, n) in held {
            let owed = s
                .jobs
                .persisting
                .get(&d)
                .map_or(0, |w| w.waiting.iter().filter(|&&x| x == cid).count())
                + s.jobs
                    .schedules_persisting
                    .get(&d)
                    .map_or(0, |p| p.waiting_on(cid));
            if n > owed {
                return Err(format!(
                    "conn {cid:?} holds {n} replies for store write {d}, {owed} owed"
                ));
            }
        }
    }
    Ok(())
}

/// The kept results agree with their indexes and stay within their bound.
fn kept_results_are_consistent(s: &Server) -> Result<(), String> {
    s.jobs.kept.check()?;
    if s.jobs.kept.bytes() > s.config.keep_results_bytes {
        return Err(format!(
            "kept results hold {} bytes, over the bound {}",
            s.jobs.kept.bytes(),
            s.config.keep_results_bytes
        ));
    }
    Ok(())
}
