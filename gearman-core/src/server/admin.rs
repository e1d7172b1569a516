//! Admin text commands, answered byte-for-byte as gearmand 1.1.20 answers them.

use super::conn::Outbound;
use super::{ConnId, Server, ServerEvent};
use crate::proto::admin::{render, AdminCommand};
use crate::proto::{Priority, Response};
use std::time::Instant;

/// Whether a peer may shut the server down: a loopback address, or a peer without an IP
/// address at all (a Unix socket or an in-process connection).
fn peer_is_local(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .map_or(true, |a| a.to_canonical().is_loopback())
}

/// One `show dead` line: handle, function, failures, how the last ended (`fail` or
/// `exception`), when it died (Unix seconds), unique; tab-separated.
fn render_dead(out: &mut Vec<u8>, d: &super::DeadLetter) {
    let how = match d.failure {
        super::Failure::Fail => "fail",
        super::Failure::Exception => "exception",
    };
    out.extend_from_slice(&d.handle);
    out.push(b'\t');
    out.extend_from_slice(&d.function);
    out.extend_from_slice(format!("\t{}\t{how}\t{}\t", d.failures, d.died_unix).as_bytes());
    out.extend_from_slice(&d.unique);
    out.push(b'\n');
}

impl Server {
    pub(super) fn handle_admin(&mut self, conn: ConnId, command: AdminCommand, now: Instant) {
        let mut out = Vec::new();
        match command {
            AdminCommand::Status => {
                for f in self.functions.values() {
                    render::status_line(
                        &mut out,
                        &f.name,
                        f.total() as u64,
                        f.running as u64,
                        f.registrations as u64,
                    );
                }
                render::end_list(&mut out);
            }
            AdminCommand::PriorityStatus => {
                for f in self.functions.values() {
                    let queued = Priority::ALL.map(|p| f.queued(p) as u64);
                    render::priority_status_line(&mut out, &f.name, queued, f.registrations as u64);
                }
                render::end_list(&mut out);
            }
            AdminCommand::Workers => {
                let mut ids: Vec<&ConnId> = self.conns.keys().collect();
                ids.sort();
                for id in ids {
                    let Some(c) = self.conns.get(id) else {
                        continue;
                    };
                    let functions = c
                        .abilities
                        .iter()
                        .zip(&c.registrations)
                        .flat_map(|((f, _), &n)| std::iter::repeat_n(&f[..], n));
                    render::workers_line(&mut out, c.peer.fd, &c.peer.ip, &c.client_id, functions);
                }
                render::end_list(&mut out);
            }
            AdminCommand::ShowJobs => {
                let mut jobs: Vec<(&u64, &super::job::Job)> = self.jobs.iter().collect();
                jobs.sort_by_key(|(id, _)| **id);
                for (_, j) in jobs {
                    // gearmand's QUEUED: the queue module holds the job. Its builtin
                    // module takes every background job; a store, those it stored.
                    let queued = j.durable_id.is_some()
                        || (!self.config.persist_background && j.background && !j.cancelled);
                    render::show_jobs_line(
                        &mut out,
                        &j.handle,
                        j.retries.into(),
                        j.is_ignored(),
                        queued,
                    );
                }
                render::end_list(&mut out);
            }
            AdminCommand::ShowUniqueJobs => {
                let mut jobs: Vec<(&u64, &super::job::Job)> = self.jobs.iter().collect();
                jobs.sort_by_key(|(id, _)| **id);
                for (_, j) in jobs {
                    render::show_unique_line(&mut out, &j.unique);
                }
                render::end_list(&mut out);
            }
            AdminCommand::CancelJob(handle) => match self.by_handle.get(&handle).copied() {
                Some(id) => {
                    self.cancel(id, now);
                    render::ok(&mut out);
                }
                None if self.cancel_schedule(&handle) => render::ok(&mut out),
                None => render::err(&mut out, "UNKNOWN_JOB"),
            },
            AdminCommand::ShowSchedules => {
                for s in self.schedules() {
                    super::schedule::render_schedule(&mut out, s);
                }
                render::end_list(&mut out);
            }
            AdminCommand::CreateFunction(name) => {
                self.function_mut(&name);
                render::ok(&mut out);
            }
            AdminCommand::DropFunction(name) => self.drop_function(&name, &mut out),
            AdminCommand::MaxQueue { function, limits } => {
                if let Some(f) = self.functions.get_mut(&function) {
                    f.over_limit_grace = f.total();
                }
                if limits == [0; 3] {
                    self.max_queue.remove(&function);
                } else {
                    self.max_queue.insert(function, limits);
                }
                render::ok(&mut out);
            }
            AdminCommand::Getpid => render::ok_value(&mut out, &self.config.pid.to_string()),
            AdminCommand::Verbose => render::ok_value(&mut out, &self.config.verbose),
            AdminCommand::Version => render::ok_value(&mut out, &self.config.version),
            AdminCommand::Shutdown { graceful } => {
                let local = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| peer_is_local(&c.peer.ip));
                if local {
                    render::ok(&mut out);
                    self.events.push_back(ServerEvent::Shutdown { graceful });
                } else {
                    render::err(
                        &mut out,
                        "PERMISSION_DENIED shutdown+is+only+accepted+from+loopback+or+a+Unix+socket",
                    );
                }
            }
            AdminCommand::ShowDead => {
                for d in self.dead.values() {
                    render_dead(&mut out, d);
                }
                render::end_list(&mut out);
            }
            AdminCommand::RetryDead(which) => match self.retry_dead(&which, now) {
                0 => render::err(&mut out, "UNKNOWN_JOB"),
                n => render::ok_value(&mut out, &n.to_string()),
            },
            AdminCommand::DropDead(which) => match self.drop_dead(&which) {
                0 => render::err(&mut out, "UNKNOWN_JOB"),
                n => render::ok_value(&mut out, &n.to_string()),
            },
            AdminCommand::ShowResult(handle) => {
                let found = self.kept_result(&handle);
                self.render_kept(&mut out, found);
            }
            AdminCommand::ShowResultUnique { function, unique } => {
                let found = self.kept_result_by_unique(&function, &unique);
                self.render_kept(&mut out, found);
            }
            AdminCommand::Invalid(e) => e.render(&mut out),
        }
        self.queue_out(conn, Outbound::Text(out));
    }

    /// The `show result` reply: the result, `ERR UNKNOWN_JOB`, or `ERR RESULTS_NOT_KEPT`
    /// when the server keeps none.
    fn render_kept(&self, out: &mut Vec<u8>, found: Option<&super::KeptResult>) {
        match found {
            Some(r) => super::kept::render_result(out, r),
            None if self.config.keep_results.is_none() => render::err(
                out,
                "RESULTS_NOT_KEPT start+gearmand-rs+with+--keep-results+DURATION",
            ),
            None => render::err(out, "UNKNOWN_JOB"),
        }
    }

    /// `cancel job`: the clients get WORK_FAIL at once. A job not yet running is gone; a
    /// running one stays with its worker (as in gearmand) so the worker's later results are
    /// accepted and discarded instead of drawing an ERROR, but it no longer coalesces new
    /// submissions, its store row is deleted now, and it is never run again.
    fn cancel(&mut self, id: u64, now: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let listeners = std::mem::take(&mut job.listeners);
        let handle = job.handle.clone();
        let running = job.is_running();
        self.stats.function(&job.function).cancelled += 1;
        let mut forgotten = None;
        if running {
            job.cancelled = true;
            forgotten = Some((
                job.unique_key.take().map(|k| (job.function.clone(), k)),
                job.durable_id.take(),
            ));
        }
        for l in &listeners {
            if let Some(c) = self.conns.get_mut(l) {
                c.unwatch(id);
            }
            self.send(
                *l,
                Response::WorkFail {
                    handle: handle.clone(),
                },
            );
        }
        match forgotten {
            Some((unique, durable)) => {
                if let Some(k) = unique {
                    if self.by_unique.get(&k) == Some(&id) {
                        self.by_unique.remove(&k);
                    }
                }
                if let Some(durable_id) = durable {
                    self.events.push_back(ServerEvent::Unpersist { durable_id });
                }
            }
            None => self.finish(id, now),
        }
    }

    /// `drop function`: refused while anything still depends on the function, including
    /// queued jobs (gearmand orphans those; we never lose a job this way).
    fn drop_function(&mut self, name: &[u8], out: &mut Vec<u8>) {
        let key = self
            .functions
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned();
        let Some(key) = key else {
            render::err(out, "function not found");
            return;
        };
        let busy = self
            .functions
            .get(&key)
            .is_some_and(|f| f.registrations > 0 || f.total() > 0);
        if busy {
            render::err(
                out,
                "there are still connected workers or executing clients",
            );
        } else {
            self.functions.remove(&key);
            render::ok(out);
        }
    }
}
