//! Admin text commands, answered byte-for-byte as gearmand 1.1.20 answers them: listings
//! come from [`super::queries`], commands that change something are here.

use super::jobs::{JobId, Target};
use super::output::Outbound;
use super::queries;
use super::{ConnId, Server, ServerEvent};
use crate::proto::admin::{render, AdminCommand};
use crate::proto::Response;
use std::time::Instant;

/// Whether a peer may shut the server down: a loopback address, or a peer without an IP
/// address at all (a Unix socket or an in-process connection).
fn peer_is_local(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .map_or(true, |a| a.to_canonical().is_loopback())
}

impl Server {
    pub(super) fn handle_admin(&mut self, conn: ConnId, command: AdminCommand, now: Instant) {
        let mut out = Vec::new();
        let (jobs, config) = (&self.jobs, &self.config);
        match command {
            AdminCommand::Status => queries::status(jobs, &mut out),
            AdminCommand::PriorityStatus => queries::priority_status(jobs, &mut out),
            AdminCommand::Workers => queries::workers(&self.conns, jobs, &mut out),
            AdminCommand::ShowJobs => queries::show_jobs(jobs, config, &mut out),
            AdminCommand::ShowUniqueJobs => queries::show_unique_jobs(jobs, &mut out),
            AdminCommand::ShowSchedules => queries::show_schedules(jobs, &mut out),
            AdminCommand::ShowDead => queries::show_dead(jobs, &mut out),
            AdminCommand::ShowResult(handle) => {
                queries::show_result(jobs, config, &handle, &mut out)
            }
            AdminCommand::ShowResultUnique { function, unique } => {
                queries::show_result_unique(jobs, config, &function, &unique, &mut out)
            }
            AdminCommand::Getpid => render::ok_value(&mut out, &config.pid.to_string()),
            AdminCommand::Verbose => render::ok_value(&mut out, &config.verbose),
            AdminCommand::Version => render::ok_value(&mut out, &config.version),
            AdminCommand::CancelJob(handle) => match self.jobs.find_handle(&handle) {
                Some(id) => {
                    self.cancel(id, now);
                    render::ok(&mut out);
                }
                None if self.jobs.cancel_schedule(&self.config, &handle) => render::ok(&mut out),
                None => render::err(&mut out, "UNKNOWN_JOB"),
            },
            AdminCommand::CreateFunction(name) => {
                self.jobs.intern(&name);
                render::ok(&mut out);
            }
            AdminCommand::DropFunction(name) => self.drop_function(&name, &mut out),
            AdminCommand::MaxQueue { function, limits } => {
                self.jobs.set_max_queue(function, limits);
                render::ok(&mut out);
            }
            AdminCommand::Shutdown { graceful } => {
                let local = self
                    .conns
                    .get(conn)
                    .is_some_and(|c| peer_is_local(&c.session.peer.ip));
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
            AdminCommand::RetryDead(which) => {
                let n = self.jobs.retry_dead(&self.config, &which, now);
                self.apply_effects();
                match n {
                    0 => render::err(&mut out, "UNKNOWN_JOB"),
                    n => render::ok_value(&mut out, &n.to_string()),
                }
            }
            AdminCommand::DropDead(which) => match self.jobs.drop_dead(&self.config, &which) {
                0 => render::err(&mut out, "UNKNOWN_JOB"),
                n => render::ok_value(&mut out, &n.to_string()),
            },
            AdminCommand::Invalid(e) => e.render(&mut out),
        }
        self.queue_out(conn, Outbound::Encoded(out));
    }

    /// `cancel job`: the clients get WORK_FAIL at once. A job not yet running is gone; a
    /// running one stays with its worker (as in gearmand) so the worker's later results are
    /// accepted and discarded instead of drawing an ERROR, but it no longer coalesces new
    /// submissions, its store row is deleted now, and it is never run again.
    fn cancel(&mut self, id: JobId, now: Instant) {
        let Some(job) = self.jobs.job(id) else {
            return;
        };
        let listeners = job.listeners.to_vec();
        let target = if job.is_running() {
            Target::Cancelled
        } else {
            Target::Ended
        };
        let (handle, name) = (self.jobs.handle(id), self.jobs.functions.name(job.function));
        self.jobs.stats.function(&name).cancelled += 1;
        for l in listeners {
            let handle = handle.clone();
            self.send(l, Response::WorkFail { handle });
        }
        self.move_job(id, target, now);
    }

    /// `drop function`: refused while anything still depends on the function, including
    /// queued jobs (gearmand orphans those; we never lose a job this way).
    fn drop_function(&mut self, name: &[u8], out: &mut Vec<u8>) {
        // gearmand compares case-insensitively; the function named exactly goes first, so
        // `drop function zz` never drops `ZZ` while `zz` exists.
        let found = self.jobs.functions.id(name).or_else(|| {
            self.jobs
                .functions
                .sorted()
                .find(|(_, f)| f.name.eq_ignore_ascii_case(name))
                .map(|(id, _)| id)
        });
        match found {
            None => render::err(out, "function not found"),
            Some(id) if self.jobs.drop_function(id) => render::ok(out),
            Some(_) => render::err(
                out,
                "there are still connected workers or executing clients",
            ),
        }
    }
}
