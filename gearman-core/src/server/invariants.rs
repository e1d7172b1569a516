//! The property-test hook: every structural invariant of the server, one function each,
//! checked from scratch.

use super::jobs::{FunctionId, JobId, KeyKind, Phase, TimerKind};
use super::{ConnId, Server};
use crate::proto::Priority;
use std::collections::HashMap;

type Check = fn(&Server) -> Result<(), String>;

/// Every invariant, in the order they are checked.
const INVARIANTS: &[Check] = &[
    jobs_are_placed,
    queued_jobs_are_in_one_queue,
    queue_counts_match,
    running_and_waiting_counts_match,
    registrations_match,
    sleepers_are_listed,
    no_worker_sleeps_on_work,
    running_jobs_are_held_by_their_worker,
    jobs_are_indexed,
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
    match s.jobs.jobs.iter().find(|j| j.phase() == Phase::New) {
        Some(j) => Err(format!("job {:?} left unplaced", j.id)),
        None => Ok(()),
    }
}

/// Each queued job is in exactly one queue, its function's at its priority.
fn queued_jobs_are_in_one_queue(s: &Server) -> Result<(), String> {
    let mut seen: HashMap<JobId, usize> = HashMap::new();
    for (fid, f) in s.jobs.functions.iter() {
        for (p, id) in f.queue_ids() {
            let Some(j) = s.jobs.job(id).filter(|j| j.phase() == Phase::Queued) else {
                continue;
            };
            if j.priority != p || j.function != fid {
                return Err(format!(
                    "job {id:?} queued under the wrong function or priority"
                ));
            }
            *seen.entry(id).or_default() += 1;
        }
    }
    for j in s.jobs.jobs.iter() {
        if j.phase() == Phase::Queued && seen.get(&j.id) != Some(&1) {
            return Err(format!(
                "queued job {:?} is in {} queues",
                j.id,
                seen.get(&j.id).unwrap_or(&0)
            ));
        }
    }
    Ok(())
}

/// Each function's queued counts are its live queue entries; the function indexes agree.
fn queue_counts_match(s: &Server) -> Result<(), String> {
    s.jobs.functions.check()?;
    for (_, f) in s.jobs.functions.iter() {
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
    let mut counted: HashMap<FunctionId, (usize, usize)> = HashMap::new();
    for j in s.jobs.jobs.iter() {
        let c = counted.entry(j.function).or_default();
        match j.phase() {
            Phase::Running { .. } => c.0 += 1,
            Phase::Scheduled | Phase::Persisting => c.1 += 1,
            Phase::New | Phase::Queued => {}
        }
    }
    for (fid, f) in s.jobs.functions.iter() {
        let (running, waiting) = counted.get(&fid).copied().unwrap_or_default();
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
    if let Some(j) = s
        .jobs
        .jobs
        .iter()
        .find(|j| s.jobs.function(j.function).is_none())
    {
        return Err(format!("job {:?} of a function that is gone", j.id));
    }
    Ok(())
}

/// Each function's registrations are the CAN_DOs its workers hold.
fn registrations_match(s: &Server) -> Result<(), String> {
    let mut held: HashMap<FunctionId, usize> = HashMap::new();
    for (_, c) in s.conns.iter() {
        for a in c.worker.abilities() {
            *held.entry(a.function).or_default() += a.registrations;
            if s.jobs.function(a.function).is_none() {
                return Err(format!("a worker can do a function that is gone: {a:?}"));
            }
        }
    }
    for (fid, f) in s.jobs.functions.iter() {
        let registrations = held.get(&fid).copied().unwrap_or(0);
        if registrations != f.registrations {
            return Err(format!(
                "function {:?}: {} registrations counted, {registrations} held",
                f.name, f.registrations
            ));
        }
    }
    Ok(())
}

/// Each listed ability has its one entry on its function's wake-up list, and an unwoken
/// sleeper has all its abilities listed.
fn sleepers_are_listed(s: &Server) -> Result<(), String> {
    for (cid, c) in s.conns.iter() {
        for a in c.worker.abilities() {
            if c.worker.is_unwoken() && !a.listed {
                return Err(format!("sleeping worker {cid:?} not listed for {a:?}"));
            }
            let entries = s
                .sleepers
                .of(a.function)
                .filter(|&&(conn, tag)| conn == cid && tag == a.tag)
                .count();
            if entries != usize::from(a.listed) {
                return Err(format!(
                    "worker {cid:?}: {entries} wake-up entries for {a:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Work never waits on workers that are all asleep and unwoken. (With `worker_wakeup` N,
/// sleepers beyond the N woken may stay asleep; with 0, none may.)
fn no_worker_sleeps_on_work(s: &Server) -> Result<(), String> {
    for (fid, f) in s.jobs.functions.iter() {
        if f.queued_total() == 0 {
            continue;
        }
        let capable: Vec<(ConnId, bool)> = s
            .conns
            .iter()
            .filter(|(_, c)| c.worker.can(fid))
            .map(|(id, c)| (id, c.worker.is_unwoken()))
            .collect();
        let stuck = if s.config.worker_wakeup == 0 {
            capable.iter().find(|(_, unwoken)| *unwoken)
        } else if capable.iter().all(|(_, unwoken)| *unwoken) {
            capable.first()
        } else {
            None
        };
        if let Some((w, _)) = stuck {
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
    for j in s.jobs.jobs.iter() {
        if let Phase::Running { worker } = j.phase() {
            let held = s.conns.get(worker).map_or(0, |c| {
                c.worker.running.iter().filter(|&&r| r == j.id).count()
            });
            if held != 1 {
                return Err(format!(
                    "running job {:?} held {held} times by its worker",
                    j.id
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

/// The job table's index finds every job, and each job's handle names it.
fn jobs_are_indexed(s: &Server) -> Result<(), String> {
    s.jobs.jobs.check()?;
    for j in s.jobs.jobs.iter() {
        if s.jobs.find_handle(&s.jobs.handle(j.id)) != Some(j.id) {
            return Err(format!("job {:?} not found by its handle", j.id));
        }
    }
    Ok(())
}

/// The unique index holds exactly the jobs that coalesce, each found by its function and
/// key, and each holder of a unique id also by the unique alone.
fn uniques_are_indexed(s: &Server) -> Result<(), String> {
    let mut keyed = 0;
    for j in s.jobs.jobs.iter() {
        if let Some((kind, key)) = j.key_bytes() {
            keyed += 1;
            if s.jobs.by_unique(j.function, kind, key) != Some(j.id) {
                return Err(format!("job {:?} not found by its unique", j.id));
            }
            if kind == KeyKind::Unique {
                // Bounded, so that a chain looping back on itself is reported, not followed.
                let holders: Vec<JobId> = s
                    .jobs
                    .unique_holders(key)
                    .take(s.jobs.jobs.len() + 1)
                    .collect();
                if !holders.contains(&j.id) {
                    return Err(format!("job {:?} not found by its unique alone", j.id));
                }
                let mut functions: Vec<FunctionId> = Vec::with_capacity(holders.len());
                for h in &holders {
                    let job = s.jobs.job(*h);
                    if job.and_then(|h| h.key_bytes()) != Some((kind, key)) {
                        return Err(format!("job {h:?} listed for a unique it does not hold"));
                    }
                    functions.extend(job.map(|h| h.function));
                }
                functions.sort_unstable();
                functions.dedup();
                if functions.len() != holders.len() {
                    return Err(format!(
                        "unique of job {:?} listed twice for a function",
                        j.id
                    ));
                }
            }
        }
    }
    s.jobs.check_unique_links()?;
    for id in s.jobs.unique_ids() {
        if s.jobs.job(id).is_none_or(|j| j.key_bytes().is_none()) {
            return Err(format!("unique entry {id:?} points at no coalescing job"));
        }
    }
    let indexed = s.jobs.unique_ids().count();
    if indexed != keyed {
        return Err(format!(
            "{indexed} unique entries for {keyed} coalescing jobs"
        ));
    }
    Ok(())
}

/// A foreground job nobody waits for is not kept waiting to run.
fn foreground_jobs_have_clients(s: &Server) -> Result<(), String> {
    for j in s.jobs.jobs.iter() {
        if !j.background
            && j.listeners.is_empty()
            && matches!(j.phase(), Phase::Queued | Phase::Scheduled)
        {
            return Err(format!("foreground job {:?} queued with no client", j.id));
        }
    }
    Ok(())
}

/// A job's listeners and its clients' watch counts agree, both ways.
fn listeners_match_watchers(s: &Server) -> Result<(), String> {
    for j in s.jobs.jobs.iter() {
        for l in j.listeners.iter() {
            let n_l = j.listeners.iter().filter(|x| *x == l).count();
            let n_w = s
                .conns
                .get(*l)
                .map_or(0, |c| c.client.watching.get(&j.id).copied().unwrap_or(0));
            if n_l != n_w {
                return Err(format!(
                    "job {:?}: listener {l:?} attached {n_l} times but watches {n_w}",
                    j.id
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
    for j in s.jobs.jobs.iter() {
        if j.cancelled
            && !(j.is_running()
                && j.listeners.is_empty()
                && j.key_bytes().is_none()
                && j.durable_id().is_none())
        {
            return Err(format!(
                "cancelled job {:?} is not a silent running job",
                j.id
            ));
        }
    }
    Ok(())
}

/// A job waiting for its first write has it pending; and with persistence on, every
/// background job is stored or being stored (a job accepted is never lost).
fn background_jobs_are_stored(s: &Server) -> Result<(), String> {
    for j in s.jobs.jobs.iter() {
        let write_pending = j
            .durable_id()
            .is_some_and(|d| s.jobs.persisting.get(&d).is_some_and(|w| w.job == j.id));
        if j.phase() == Phase::Persisting && !write_pending {
            return Err(format!(
                "job {:?} waits for a store write nobody awaits",
                j.id
            ));
        }
        if s.config.persist_background && j.background && !j.cancelled && j.durable_id().is_none() {
            return Err(format!("background job {:?} is not stored", j.id));
        }
    }
    Ok(())
}

/// Exactly the live timers are armed, each owned by the job in the phase it was armed for.
fn timers_match_phases(s: &Server) -> Result<(), String> {
    for j in s.jobs.jobs.iter() {
        let expected = match j.phase() {
            Phase::Scheduled => Some(true),
            Phase::Running { .. } => None,
            _ => Some(false),
        };
        if expected.is_some_and(|want| want != j.timer().is_some()) {
            return Err(format!(
                "job {:?} in phase {:?} has timer {:?}",
                j.id,
                j.phase(),
                j.timer()
            ));
        }
    }
    for (timer, id, kind) in s.jobs.timers.iter() {
        let ok = s.jobs.job(id).is_some_and(|j| {
            j.timer() == Some(timer)
                && match kind {
                    TimerKind::Due => j.phase() == Phase::Scheduled,
                    TimerKind::RunTimeout => j.is_running(),
                }
        });
        if !ok {
            return Err(format!("timer {kind:?} of job {id:?} outlived its purpose"));
        }
    }
    let owned = s.jobs.jobs.iter().filter(|j| j.timer().is_some()).count();
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
        let Some(f) = s.jobs.functions.id(name).and_then(|id| s.jobs.function(id)) else {
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
/// (unless it ended, was cancelled or took an adopted row since).
fn store_writes_are_live(s: &Server) -> Result<(), String> {
    for (d, w) in &s.jobs.persisting {
        if *d >= s.jobs.next_durable {
            return Err(format!("store write {d} was never started"));
        }
        if let Some(j) = s.jobs.job(w.job).filter(|_| !w.superseded) {
            if j.durable_id().is_some_and(|x| x != *d) {
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
