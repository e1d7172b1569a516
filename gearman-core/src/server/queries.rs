//! Admin listings, read from the job state (or the connection table) and never changing it.

use super::conn::Conns;
use super::jobs::{kept, schedule, JobState};
use super::{DeadLetter, Failure, KeptResult, ServerConfig};
use crate::proto::admin::render;
use crate::proto::Priority;

/// `status`: per function, jobs held (queued, running, waiting), running, registrations.
pub(crate) fn status(jobs: &JobState, out: &mut Vec<u8>) {
    for (_, f) in jobs.functions.sorted() {
        render::status_line(
            out,
            &f.name,
            f.total() as u64,
            f.running as u64,
            f.registrations as u64,
        );
    }
    render::end_list(out);
}

/// `prioritystatus`: per function, jobs queued at each priority and registrations.
pub(crate) fn priority_status(jobs: &JobState, out: &mut Vec<u8>) {
    for (_, f) in jobs.functions.sorted() {
        let queued = Priority::ALL.map(|p| f.queued(p) as u64);
        render::priority_status_line(out, &f.name, queued, f.registrations as u64);
    }
    render::end_list(out);
}

/// `workers`: every connection, with the functions it registered (duplicates repeated).
pub(crate) fn workers(conns: &Conns, jobs: &JobState, out: &mut Vec<u8>) {
    for id in conns.sorted_ids() {
        let Some(c) = conns.get(id) else {
            continue;
        };
        let functions = c.worker.abilities().iter().flat_map(|a| {
            let name = jobs.function(a.function).map_or(&[][..], |f| &f.name[..]);
            std::iter::repeat_n(name, a.registrations)
        });
        let s = &c.session;
        render::workers_line(out, s.peer.fd, &s.peer.ip, &s.client_id, functions);
    }
    render::end_list(out);
}

/// `show jobs`: handle, retries, IGNORE, QUEUED per job, oldest first.
pub(crate) fn show_jobs(jobs: &JobState, config: &ServerConfig, out: &mut Vec<u8>) {
    for j in jobs.jobs.iter_in_order() {
        // gearmand's QUEUED: the queue module holds the job. Its builtin module takes
        // every background job; a store, those it stored.
        let queued = j.durable_id().is_some()
            || (!config.persist_background && j.background && !j.cancelled);
        let handle = jobs.handle(j.id);
        render::show_jobs_line(out, &handle, j.retries.into(), j.is_ignored(), queued);
    }
    render::end_list(out);
}

/// `show unique jobs`: the unique id of every job.
pub(crate) fn show_unique_jobs(jobs: &JobState, out: &mut Vec<u8>) {
    for j in jobs.jobs.iter_in_order() {
        render::show_unique_line(out, j.unique());
    }
    render::end_list(out);
}

/// `show schedules`.
pub(crate) fn show_schedules(jobs: &JobState, out: &mut Vec<u8>) {
    for s in jobs.schedules.values() {
        schedule::render_schedule(out, s);
    }
    render::end_list(out);
}

/// `show dead`.
pub(crate) fn show_dead(jobs: &JobState, out: &mut Vec<u8>) {
    for d in jobs.dead.values() {
        render_dead(out, d);
    }
    render::end_list(out);
}

/// One `show dead` line: handle, function, failures, how the last ended (`fail` or
/// `exception`), when it died (Unix seconds), unique; tab-separated.
fn render_dead(out: &mut Vec<u8>, d: &DeadLetter) {
    let how = match d.failure {
        Failure::Fail => "fail",
        Failure::Exception => "exception",
    };
    out.extend_from_slice(&d.handle);
    out.push(b'\t');
    out.extend_from_slice(&d.function);
    out.extend_from_slice(format!("\t{}\t{how}\t{}\t", d.failures, d.died_unix).as_bytes());
    out.extend_from_slice(&d.unique);
    out.push(b'\n');
}

/// `show result HANDLE`.
pub(crate) fn show_result(
    jobs: &JobState,
    config: &ServerConfig,
    handle: &[u8],
    out: &mut Vec<u8>,
) {
    render_kept(config, jobs.kept_result(handle), out);
}

/// `show result unique FUNCTION UNIQUE`.
pub(crate) fn show_result_unique(
    jobs: &JobState,
    config: &ServerConfig,
    function: &[u8],
    unique: &[u8],
    out: &mut Vec<u8>,
) {
    render_kept(config, jobs.kept_result_by_unique(function, unique), out);
}

/// The `show result` reply: the result, `ERR UNKNOWN_JOB`, or `ERR RESULTS_NOT_KEPT`
/// when the server keeps none.
fn render_kept(config: &ServerConfig, found: Option<&KeptResult>, out: &mut Vec<u8>) {
    match found {
        Some(r) => kept::render_result(out, r),
        None if config.keep_results.is_none() => render::err(
            out,
            "RESULTS_NOT_KEPT start+gearmand-rs+with+--keep-results+DURATION",
        ),
        None => render::err(out, "UNKNOWN_JOB"),
    }
}
