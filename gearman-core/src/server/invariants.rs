//! The property-test hook: every structural invariant of the server, checked from scratch.

use super::job::JobState;
use super::timers::TimerKind;
use super::Server;
use crate::proto::Priority;
use std::collections::HashMap;

pub(super) fn check(s: &Server) -> Result<(), String> {
    // Every job is in exactly one place.
    let mut queued_seen: HashMap<u64, usize> = HashMap::new();
    for f in s.functions.values() {
        for (p, id) in f.queue_ids() {
            if let Some(j) = s.jobs.get(&id) {
                if j.state == JobState::Queued {
                    if j.priority != p || j.function != f.name {
                        return Err(format!(
                            "job {id} queued under the wrong function or priority"
                        ));
                    }
                    *queued_seen.entry(id).or_default() += 1;
                }
            }
        }
        for p in Priority::ALL {
            let live = f
                .queue_ids()
                .filter(|(q, id)| {
                    *q == p && s.jobs.get(id).is_some_and(|j| j.state == JobState::Queued)
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
        let running = s
            .jobs
            .values()
            .filter(|j| j.function == f.name && j.is_running())
            .count();
        if running != f.running {
            return Err(format!(
                "function {:?}: running {} but {running} jobs run",
                f.name, f.running
            ));
        }
        let waiting = s
            .jobs
            .values()
            .filter(|j| {
                j.function == f.name
                    && matches!(j.state, JobState::Scheduled(_) | JobState::Persisting)
            })
            .count();
        if waiting != f.waiting {
            return Err(format!(
                "function {:?}: waiting {} but {waiting} jobs wait",
                f.name, f.waiting
            ));
        }
        let registrations: usize = s
            .conns
            .values()
            .map(|c| {
                c.abilities
                    .iter()
                    .zip(&c.registrations)
                    .filter(|((n, _), _)| *n == f.name)
                    .map(|(_, r)| *r)
                    .sum::<usize>()
            })
            .sum();
        if registrations != f.registrations {
            return Err(format!(
                "function {:?}: {} registrations counted, {registrations} held",
                f.name, f.registrations
            ));
        }
        for w in &f.capable {
            if s.conns.get(w).is_none_or(|c| c.ability(&f.name).is_none()) {
                return Err(format!(
                    "function {:?}: capable worker {w:?} cannot do it",
                    f.name
                ));
            }
        }
        // Work never waits on workers that are all asleep and unwoken. (With
        // `worker_wakeup` N, sleepers beyond the N woken may stay asleep; with 0, none may.)
        if f.queued_total() > 0 && !f.capable.is_empty() {
            let unwoken =
                |w: &&super::ConnId| s.conns.get(w).is_some_and(|c| c.sleeping && !c.noop_sent);
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
    }
    for (id, j) in &s.jobs {
        match j.state {
            JobState::Queued => {
                if queued_seen.get(id) != Some(&1) {
                    return Err(format!(
                        "queued job {id} is in {} queues",
                        queued_seen.get(id).unwrap_or(&0)
                    ));
                }
            }
            JobState::Running { worker } => {
                let held = s
                    .conns
                    .get(&worker)
                    .map_or(0, |c| c.running.iter().filter(|&&r| r == *id).count());
                if held != 1 {
                    return Err(format!("running job {id} held {held} times by its worker"));
                }
            }
            JobState::Unplaced => return Err(format!("job {id} left unplaced")),
            JobState::Scheduled(_) | JobState::Persisting => {}
        }
        if s.by_handle.get(&j.handle) != Some(id) {
            return Err(format!("job {id} missing from the handle map"));
        }
        if let Some(k) = &j.unique_key {
            if s.by_unique.get(&(j.function.clone(), k.clone())) != Some(id) {
                return Err(format!("job {id} missing from the unique map"));
            }
        }
        if !j.background
            && j.listeners.is_empty()
            && matches!(j.state, JobState::Queued | JobState::Scheduled(_))
        {
            return Err(format!("foreground job {id} queued with no client"));
        }
        for l in &j.listeners {
            let n_l = j.listeners.iter().filter(|x| *x == l).count();
            let n_w = s
                .conns
                .get(l)
                .map_or(0, |c| c.watching.get(id).copied().unwrap_or(0));
            if n_l != n_w {
                return Err(format!(
                    "job {id}: listener {l:?} attached {n_l} times but watches {n_w}"
                ));
            }
        }
        if j.cancelled
            && !(j.is_running()
                && j.listeners.is_empty()
                && j.unique_key.is_none()
                && j.durable_id.is_none())
        {
            return Err(format!("cancelled job {id} is not a silent running job"));
        }
        // A job waiting for its first write has it pending; and with persistence on, every
        // background job is stored or being stored (a job accepted is never lost).
        let write_pending = j
            .durable_id
            .is_some_and(|d| s.persisting.get(&d).is_some_and(|w| w.job == *id));
        if j.state == JobState::Persisting && !write_pending {
            return Err(format!("job {id} waits for a store write nobody awaits"));
        }
        if s.config.persist_background && j.background && !j.cancelled && j.durable_id.is_none() {
            return Err(format!("background job {id} is not stored"));
        }
        let expected_timer = match j.state {
            JobState::Scheduled(_) => Some(true),
            JobState::Running { .. } => None,
            _ => Some(false),
        };
        if expected_timer.is_some_and(|want| want != j.timer.is_some()) {
            return Err(format!(
                "job {id} in state {:?} has timer {:?}",
                j.state, j.timer
            ));
        }
    }
    // Timers: exactly the live ones, each owned by the job in the state it was armed for.
    for (timer, kind) in s.timers.iter() {
        let ok = s.jobs.get(&kind.job()).is_some_and(|j| {
            j.timer == Some(*timer)
                && match kind {
                    TimerKind::EpochDue { .. } => matches!(j.state, JobState::Scheduled(_)),
                    TimerKind::RunTimeout { .. } => j.is_running(),
                }
        });
        if !ok {
            return Err(format!("timer {kind:?} outlived its purpose"));
        }
    }
    let owned = s.jobs.values().filter(|j| j.timer.is_some()).count();
    if owned != s.timers.len() {
        return Err(format!(
            "{owned} jobs hold timers but {} are armed",
            s.timers.len()
        ));
    }
    // maxqueue: with every priority limited, no new job took the total past the largest
    // limit (jobs already there when the limit was lowered are allowed to drain).
    for (name, limits) in &s.max_queue {
        let Some(f) = s.functions.get(name) else {
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
    for (h, id) in &s.by_handle {
        if s.jobs.get(id).is_none_or(|j| j.handle != *h) {
            return Err(format!("handle {h:?} points at no live job"));
        }
    }
    for ((f, _), id) in &s.by_unique {
        if s.jobs.get(id).is_none_or(|j| j.function != *f) {
            return Err(format!("unique entry of {f:?} points at no live job"));
        }
    }
    // Store writes: each for the job holding that durable id (unless it ended or was
    // cancelled since), and each holding at least one reply.
    for (d, w) in &s.persisting {
        // A job nobody submitted (a schedule's firing, `retry dead`) holds no reply.
        if *d >= s.next_durable {
            return Err(format!("store write {d} was never started"));
        }
        if let Some(j) = s.jobs.get(&w.job) {
            if j.handle != w.handle || j.durable_id.is_some_and(|x| x != *d) {
                return Err(format!("store write {d} is not for job {}", w.job));
            }
        }
    }
    for (cid, c) in &s.conns {
        // No placeholder is left unresolved: each is owed an answer by a pending write.
        let mut held: HashMap<u64, usize> = HashMap::new();
        for d in c.placeholders() {
            *held.entry(d).or_default() += 1;
        }
        for (d, n) in held {
            let owed = s
                .persisting
                .get(&d)
                .map_or(0, |w| w.waiting.iter().filter(|&&x| x == *cid).count())
                + s.schedules_persisting
                    .get(&d)
                    .map_or(0, |p| p.waiting_on(*cid));
            if n > owed {
                return Err(format!(
                    "conn {cid:?} holds {n} replies for store write {d}, {owed} owed"
                ));
            }
        }
        for id in &c.running {
            if !s
                .jobs
                .get(id)
                .is_some_and(|j| j.state == JobState::Running { worker: *cid })
            {
                return Err(format!(
                    "conn {cid:?} holds job {id} that is not running on it"
                ));
            }
        }
        for id in c.watching.keys() {
            if !s.jobs.get(id).is_some_and(|j| j.listeners.contains(cid)) {
                return Err(format!(
                    "conn {cid:?} watches job {id} that does not list it"
                ));
            }
        }
    }
    s.kept.check()?;
    if s.kept.bytes() > s.config.keep_results_bytes {
        return Err(format!(
            "kept results hold {} bytes, over the bound {}",
            s.kept.bytes(),
            s.config.keep_results_bytes
        ));
    }
    Ok(())
}
