//! Worker requests: abilities, sleeping and waking, grabbing jobs, and their results.

use super::conn::Conns;
use super::jobs::{FunctionId, JobId, JobState, Phase, Target};
use super::roles::Ability;
use super::{ConnId, Failure, KeptResult, Outcome, Server};
use crate::proto::{GrabMode, PacketType, Part, Priority, Response, WorkStatus};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// gearmand raises CAN_DO_TIMEOUT values below one second to one second.
pub(super) const MIN_RUN_TIMEOUT: Duration = Duration::from_millis(1000);

/// What a worker reports about a job it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Report {
    Status,
    Data,
    Warning,
    Complete,
    Fail,
    Exception,
}

impl Report {
    /// gearmand's ERROR text when the job is not held by the reporting connection.
    pub(super) fn not_found_text(self) -> &'static str {
        match self {
            Report::Data | Report::Warning => "Job does not exist on server",
            Report::Status | Report::Complete | Report::Fail => {
                "Job given in work result not found"
            }
            Report::Exception => "An exception was received for a job that does not exist",
        }
    }
}

impl Server {
    pub(super) fn can_do(&mut self, conn: ConnId, function: Bytes, timeout: Option<Duration>) {
        if function.len() > self.config.limits.max_argument {
            self.send(
                conn,
                Response::error("ARGUMENT_TOO_LARGE", "Function name too large"),
            );
            return;
        }
        if self.conns.get(conn).is_none() {
            return;
        }
        let fid = self.jobs.intern(&function);
        let has_work = self.jobs.register(fid);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.worker.add(fid, timeout);
        if c.worker.is_unwoken() {
            self.list_sleeper(conn);
        }
        // A sleeping worker that learns a function with work waiting must not stay asleep.
        if has_work {
            self.wake(conn);
        }
    }

    pub(super) fn cant_do(&mut self, conn: ConnId, function: &Bytes, now: Instant) {
        let Some(fid) = self.jobs.functions.id(function) else {
            return;
        };
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let woken = c.worker.noop_sent;
        let Some(ability) = c.worker.remove(fid) else {
            return;
        };
        self.jobs.unregister(fid, ability.registrations);
        self.lose_held(conn, fid, now);
        if woken {
            self.pass_on_wakeup([fid]);
        }
    }

    /// An ACL no longer lets `conn` register `function`: the registration goes, as with
    /// CANT_DO, but jobs it already runs stay with it (they were granted) and report as usual.
    pub(super) fn revoke_ability(&mut self, conn: ConnId, function: FunctionId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let woken = c.worker.noop_sent;
        let Some(ability) = c.worker.remove(function) else {
            return;
        };
        self.jobs.unregister(function, ability.registrations);
        if woken {
            self.pass_on_wakeup([function]);
        }
    }

    /// RESET_ABILITIES: a CANT_DO of every function, in registration order.
    pub(super) fn reset_abilities(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let woken = c.worker.noop_sent;
        let abilities = c.worker.take_abilities();
        let mut held: HashMap<FunctionId, Vec<JobId>> = HashMap::new();
        for &job in &c.worker.running {
            if let Some(j) = self.jobs.job(job) {
                held.entry(j.function).or_default().push(job);
            }
        }
        let functions: Vec<FunctionId> = abilities.iter().map(|a| a.function).collect();
        for a in abilities {
            self.jobs.unregister(a.function, a.registrations);
            let mut jobs = held.remove(&a.function).unwrap_or_default();
            jobs.sort_unstable(); // requeue in arrival order, as on disconnect
            for job in jobs {
                self.lose(job, now);
            }
        }
        if woken {
            self.pass_on_wakeup(functions);
        }
    }

    /// A worker sent NOOP left, or dropped these functions, before it grabbed: with
    /// `worker_wakeup` limiting how many sleepers a job wakes, the work it was woken for
    /// would otherwise wait with every other capable worker asleep.
    pub(super) fn pass_on_wakeup(&mut self, functions: impl IntoIterator<Item = FunctionId>) {
        for function in functions {
            if self
                .jobs
                .function(function)
                .is_some_and(|f| f.queued_total() > 0)
            {
                self.wake_for(function);
            }
        }
    }

    /// The jobs `conn` holds of `function` go back (or fail), in arrival order, as on
    /// disconnect.
    fn lose_held(&mut self, conn: ConnId, function: FunctionId, now: Instant) {
        let mut held = self
            .conns
            .get(conn)
            .map(|c| c.worker.running.clone())
            .unwrap_or_default();
        held.sort_unstable();
        for job in held {
            if self.jobs.job(job).is_some_and(|j| j.function == function) {
                self.lose(job, now);
            }
        }
    }

    pub(super) fn pre_sleep(&mut self, conn: ConnId) {
        let runnable = self.has_runnable(conn);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.worker.sleeping = true;
        c.worker.noop_sent = false;
        if runnable {
            self.wake(conn);
        } else {
            self.list_sleeper(conn);
        }
    }

    /// Puts `conn` on the wake-up list of each of its functions it is not on yet.
    fn list_sleeper(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let mut crowded = Vec::new();
        for a in c.worker.abilities_mut().iter_mut().filter(|a| !a.listed) {
            a.listed = true;
            let len = self.sleepers.push(a.function, (conn, a.tag));
            let registrations = self
                .jobs
                .function(a.function)
                .map_or(0, |f| f.registrations);
            if len > 2 * registrations + 64 {
                crowded.push(a.function);
            }
        }
        for function in crowded {
            let conns = &self.conns;
            self.sleepers.retain(function, |&(conn, tag)| {
                listed_ability(conns, conn, function, tag).is_some()
            });
        }
    }

    /// Whether any function `conn` can do has a job queued. Looks at whichever is fewer:
    /// the worker's functions or the functions with work.
    fn has_runnable(&self, conn: ConnId) -> bool {
        let Some(w) = self.conns.get(conn).map(|c| &c.worker) else {
            return false;
        };
        Priority::ALL.into_iter().any(|p| {
            let ready = self.jobs.functions.ready(p);
            if ready.len() <= w.abilities().len() {
                ready.iter().any(|&f| w.can(f))
            } else {
                w.abilities().iter().any(|a| {
                    self.jobs
                        .function(a.function)
                        .is_some_and(|f| f.queued(p) > 0)
                })
            }
        })
    }

    /// Sends NOOP to a sleeping worker that has not had one since it last grabbed.
    pub(super) fn wake(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.worker.is_unwoken() {
            c.worker.noop_sent = true;
            self.send(conn, Response::Noop);
        }
    }

    /// Wakes sleeping workers for a newly runnable job of `function` (`worker_wakeup` of
    /// them, 0 = all), in the order they joined its list.
    pub(super) fn wake_for(&mut self, function: FunctionId) {
        let limit = match self.config.worker_wakeup {
            0 => usize::MAX,
            n => n as usize,
        };
        let mut woken = 0;
        while woken < limit {
            let Some((conn, tag)) = self.sleepers.pop(function) else {
                break;
            };
            let Some(c) = self.conns.get_mut(conn) else {
                continue;
            };
            let Some(a) = c.worker.ability_mut(function).filter(|a| a.tag == tag) else {
                continue;
            };
            a.listed = false;
            if c.worker.is_unwoken() {
                self.wake(conn);
                woken += 1;
            }
        }
    }

    pub(super) fn grab(&mut self, conn: ConnId, mode: GrabMode, now: Instant) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.worker.sleeping = false;
        c.worker.noop_sent = false;
        match self.pick_job(conn) {
            Some(job) => self.assign(conn, job, mode, now),
            None => self.send(conn, Response::NoJob),
        }
    }

    /// Priority is global across the worker's functions; within a priority, functions take
    /// turns starting after the one served last. Looks at whichever is fewer: the worker's
    /// functions or the functions with work at that priority.
    fn pick_job(&mut self, conn: ConnId) -> Option<JobId> {
        let w = &self.conns.get(conn)?.worker;
        let n = w.abilities().len();
        if n == 0 {
            return None;
        }
        let start = w.rr_cursor % n;
        let turn = |i: usize| (i + n - start) % n;
        for priority in Priority::ALL {
            let ready = self.jobs.functions.ready(priority);
            let next = if ready.len() <= n {
                ready
                    .iter()
                    .filter_map(|&f| w.position(f))
                    .min_by_key(|&i| turn(i))
            } else {
                (0..n).map(|k| (start + k) % n).find(|&i| {
                    w.abilities()
                        .get(i)
                        .and_then(|a| self.jobs.function(a.function))
                        .is_some_and(|f| f.queued(priority) > 0)
                })
            };
            let Some((idx, function)) =
                next.and_then(|i| w.abilities().get(i).map(|a| (i, a.function)))
            else {
                continue;
            };
            if let Some(job) = self.jobs.peek_queued(function, priority) {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.worker.rr_cursor = idx + 1;
                }
                return Some(job);
            }
        }
        None
    }

    fn assign(&mut self, conn: ConnId, id: JobId, mode: GrabMode, now: Instant) {
        let Some(job) = self.jobs.job(id) else {
            return;
        };
        let timeout = self
            .conns
            .get(conn)
            .and_then(|c| c.worker.timeout(job.function));
        self.move_job(
            id,
            Target::Running {
                worker: conn,
                timeout,
            },
            now,
        );
        self.send_assign(conn, id, mode);
    }

    /// Writes JOB_ASSIGN* for job `id` straight from the job's bytes (no handle, unique or
    /// workload is copied into a packet first).
    fn send_assign(&mut self, conn: ConnId, id: JobId, mode: GrabMode) {
        use crate::proto::Part::Raw;
        let Some(job) = self.jobs.job(id) else {
            return;
        };
        let mut handle = std::mem::take(&mut self.handle_scratch);
        self.jobs.write_handle(id, &mut handle);
        let function = self
            .jobs
            .function(job.function)
            .map_or(&[][..], |f| &f.name[..]);
        let (h, u, d) = (Raw(&handle), Raw(job.unique()), Raw(job.data()));
        let max = self.config.max_output_bytes;
        let queued = match (mode, job.reducer()) {
            (GrabMode::Plain, _) => {
                let parts = [h, Raw(function), d];
                self.conns
                    .queue_parts(conn, PacketType::JobAssign, &parts, max)
            }
            (GrabMode::All, Some(reducer)) => {
                let parts = [h, Raw(function), u, Raw(reducer), d];
                self.conns
                    .queue_parts(conn, PacketType::JobAssignAll, &parts, max)
            }
            _ => {
                let parts = [h, Raw(function), u, d];
                self.conns
                    .queue_parts(conn, PacketType::JobAssignUniq, &parts, max)
            }
        };
        self.handle_scratch = handle;
        self.close_on_overflow(conn, queued);
    }

    pub(super) fn report(
        &mut self,
        conn: ConnId,
        kind: Report,
        handle: Bytes,
        status: Option<WorkStatus>,
        data: Bytes,
        now: Instant,
    ) {
        let held = self.jobs.find_handle(&handle).filter(|&id| {
            self.jobs
                .job(id)
                .is_some_and(|j| j.phase() == Phase::Running { worker: conn })
        });
        let Some(id) = held else {
            self.send(
                conn,
                Response::error("JOB_NOT_FOUND", kind.not_found_text()),
            );
            return;
        };
        let listeners = match self.jobs.job_mut(id) {
            Some(job) => {
                if let Some(s) = &status {
                    job.set_progress(s.numerator, s.denominator);
                }
                job.listeners.clone()
            }
            None => return,
        };
        let max = self.config.max_output_bytes;
        for listener in listeners.into_conns() {
            // Written from the worker's bytes, with no packet built.
            let (ty, parts): (PacketType, &[Part<'_>]) = match kind {
                Report::Status => match &status {
                    Some(s) => (
                        PacketType::WorkStatus,
                        &[
                            Part::Raw(&handle),
                            Part::Unsigned(s.numerator.into()),
                            Part::Unsigned(s.denominator.into()),
                        ],
                    ),
                    None => continue,
                },
                Report::Exception
                    if self
                        .conns
                        .get(listener)
                        .is_some_and(|c| c.client.exceptions) =>
                {
                    (
                        PacketType::WorkException,
                        &[Part::Raw(&handle), Part::Raw(&data)],
                    )
                }
                Report::Fail | Report::Exception => (PacketType::WorkFail, &[Part::Raw(&handle)]),
                Report::Data => (
                    PacketType::WorkData,
                    &[Part::Raw(&handle), Part::Raw(&data)],
                ),
                Report::Warning => (
                    PacketType::WorkWarning,
                    &[Part::Raw(&handle), Part::Raw(&data)],
                ),
                Report::Complete => (
                    PacketType::WorkComplete,
                    &[Part::Raw(&handle), Part::Raw(&data)],
                ),
            };
            let queued = self.conns.queue_parts(listener, ty, parts, max);
            self.close_on_overflow(listener, queued);
        }
        let outcome = match kind {
            Report::Complete => Outcome::Complete,
            Report::Fail => Outcome::Fail,
            Report::Exception => Outcome::Exception,
            Report::Status | Report::Data | Report::Warning => return,
        };
        self.finish_reported(id, handle, outcome, data, now);
    }

    /// The worker's final report on job `id`: count it, keep its result if it is kept,
    /// then retry it under a `--retry` policy or end it.
    fn finish_reported(
        &mut self,
        id: JobId,
        handle: Bytes,
        outcome: Outcome,
        data: Bytes,
        now: Instant,
    ) {
        self.jobs.count_outcome(id, outcome, now);
        let failure = match outcome {
            Outcome::Complete => None,
            Outcome::Fail => Some(Failure::Fail),
            Outcome::Exception => Some(Failure::Exception),
        };
        let kept = self
            .jobs
            .job(id)
            .filter(|j| j.background && !j.cancelled)
            .map(|j| KeptResult {
                handle,
                function: self.jobs.functions.name(j.function),
                unique: j.unique_bytes(),
                outcome,
                data: data.clone(),
                finished_unix: JobState::unix_at(&self.config, now),
            });
        let policy = kept
            .as_ref()
            .is_some_and(|k| failure.is_some() && self.config.retry.contains_key(&k.function));
        let config = &self.config;
        match (failure, kept) {
            (Some(f), Some(kept)) if policy => {
                self.jobs.fail_with_policy(config, id, f, data, now);
                // A failure retried later is not the job's end; one that dead-letters is.
                if self.jobs.job(id).is_none() {
                    self.jobs.keep_result(config, kept, now);
                }
            }
            (failure, kept) => {
                // Kept before the job's row goes, so a crash between the two store
                // writes runs the job again rather than losing its result.
                if let Some(kept) = kept {
                    self.jobs.keep_result(config, kept, now);
                }
                let retried =
                    failure.is_some_and(|f| self.jobs.fail_with_policy(config, id, f, data, now));
                if !retried {
                    self.jobs.transition(config, id, Target::Ended, now);
                }
            }
        }
        self.apply_effects();
    }
}

/// The ability whose wake-up entry `(conn, tag)` is, if that entry is still live.
fn listed_ability(conns: &Conns, conn: ConnId, function: FunctionId, tag: u64) -> Option<&Ability> {
    let c = conns.get(conn)?;
    let a = c.worker.abilities().get(c.worker.position(function)?)?;
    (a.tag == tag && a.listed).then_some(a)
}

#[cfg(test)]
mod tests {
    use crate::proto::{
        AssignExtras, FrameDecoder, GrabMode, JobAssign, Packet, Priority, Request, Response,
        SubmitJob, SubmitMode, SubmitReduceJob, WorkPayload,
    };
    use crate::server::{ConnId, PeerInfo, Server, ServerConfig, ServerEvent};
    use crate::Limits;
    use bytes::{Bytes, BytesMut};
    use std::time::Instant;

    fn connect(s: &mut Server, fd: u64, now: Instant) -> ConnId {
        let ip = "127.0.0.1".into();
        s.accept(PeerInfo { fd, ip }, now)
    }

    /// Every response queued for `conn`, decoded.
    fn responses(s: &mut Server, conn: ConnId) -> Vec<Response> {
        let mut out = Vec::new();
        while s.poll_transmit(conn, &mut out) > 0 {}
        let (mut buf, mut decoder) = (
            BytesMut::from(&out[..]),
            FrameDecoder::new(Limits::default()),
        );
        let mut all = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            all.push(Response::parse(&frame).unwrap());
        }
        assert!(buf.is_empty(), "a partial packet left");
        all
    }

    /// A server that stores background jobs (their JOB_CREATED waits for the store).
    fn storing_server(now: Instant) -> Server {
        let mut config = ServerConfig::new(now, 0);
        config.persist_background = true;
        Server::new(config, now)
    }

    /// The store commits the first background job it was asked to store.
    fn store_answers(s: &mut Server, now: Instant) {
        let durable_id = std::iter::from_fn(|| s.poll_event())
            .find_map(|e| match e {
                ServerEvent::Persist(record) => Some(record.durable_id),
                _ => None,
            })
            .expect("the background job is stored");
        s.persisted(durable_id, Ok(()), now);
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// `w` sends GRAB_JOB_UNIQ; the JOB_ASSIGN_UNIQ it gets back.
    fn grab_uniq(s: &mut Server, w: ConnId, now: Instant) -> JobAssign {
        s.handle_input(w, &Request::GrabJob(GrabMode::Uniq).to_bytes(), now);
        match responses(s, w).pop() {
            Some(Response::JobAssign(a)) => a,
            other => panic!("expected JOB_ASSIGN_UNIQ, got {other:?}"),
        }
    }

    fn submit(function: &str, unique: &str, mode: SubmitMode) -> Bytes {
        let (function, unique, data) = (b(function), b(unique), b("payload"));
        Request::Submit(SubmitJob {
            function,
            unique,
            mode,
            data,
        })
        .to_bytes()
    }

    /// JOB_ASSIGN, JOB_ASSIGN_UNIQ and JOB_ASSIGN_ALL (with and without a reducer), as
    /// written from the job's bytes, decode to the packet the owned path builds.
    #[test]
    fn assignments_written_from_parts_carry_every_field() {
        let now = Instant::now();
        let fg = SubmitMode::Foreground(Priority::Normal);
        let reduce = Request::SubmitReduce(Box::new(SubmitReduceJob {
            function: b("f"),
            unique: b("r1"),
            reducer: b("sum"),
            aggregator: Bytes::new(),
            background: false,
            data: b("payload"),
        }))
        .to_bytes();
        let cases = [
            (GrabMode::Plain, submit("f", "u1", fg), AssignExtras::Plain),
            (
                GrabMode::Uniq,
                submit("f", "u1", fg),
                AssignExtras::Unique(b("u1")),
            ),
            (
                GrabMode::All,
                submit("f", "u1", fg),
                AssignExtras::Unique(b("u1")),
            ),
            (
                GrabMode::All,
                reduce,
                AssignExtras::Reduce {
                    unique: b("r1"),
                    reducer: b("sum"),
                },
            ),
        ];
        for (mode, submission, extras) in cases {
            let mut s = Server::new(ServerConfig::new(now, 0), now);
            let (c, w) = (connect(&mut s, 1, now), connect(&mut s, 2, now));
            s.handle_input(c, &submission, now);
            let Some(Response::JobCreated { handle }) = responses(&mut s, c).pop() else {
                panic!("no JOB_CREATED");
            };
            s.handle_input(w, &Request::CanDo { function: b("f") }.to_bytes(), now);
            s.handle_input(w, &Request::GrabJob(mode).to_bytes(), now);
            let want = Response::JobAssign(JobAssign {
                handle,
                function: b("f"),
                extras,
                data: b("payload"),
            });
            assert_eq!(responses(&mut s, w), [want], "{mode:?}");
            s.check_invariants().unwrap();
        }
    }

    /// A client whose output waits for the store (its background submission) gets the
    /// JOB_CREATED and WORK_COMPLETE of its next, foreground, job after that reply; once
    /// nothing is held, they are written as they come.
    #[test]
    fn replies_behind_a_held_reply_keep_their_place() {
        let now = Instant::now();
        let mut s = storing_server(now);
        let (c, w) = (connect(&mut s, 1, now), connect(&mut s, 2, now));
        let bg = SubmitMode::Background(Priority::Normal);
        s.handle_input(c, &submit("g", "u2", bg), now);
        let fg = SubmitMode::Foreground(Priority::Normal);
        s.handle_input(c, &submit("f", "u1", fg), now);
        s.handle_input(w, &Request::CanDo { function: b("f") }.to_bytes(), now);
        let a = grab_uniq(&mut s, w, now);
        let (handle, data) = (a.handle.clone(), b("done"));
        let complete = WorkPayload {
            handle: handle.clone(),
            data,
        };
        s.handle_input(w, &Request::WorkComplete(complete.clone()).to_bytes(), now);
        assert_eq!(
            responses(&mut s, c),
            [],
            "all held behind the store's answer"
        );
        store_answers(&mut s, now);
        let got = responses(&mut s, c);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], Response::JobCreated { handle: h } if *h != handle));
        assert_eq!(got[1], Response::JobCreated { handle });
        assert_eq!(got[2], Response::WorkComplete(complete));
        // Nothing held now: the next job's replies go out from borrowed parts.
        s.handle_input(c, &submit("f", "u3", fg), now);
        let a = grab_uniq(&mut s, w, now);
        let complete = WorkPayload {
            handle: a.handle.clone(),
            data: b("ok"),
        };
        s.handle_input(w, &Request::WorkComplete(complete.clone()).to_bytes(), now);
        let got = responses(&mut s, c);
        assert_eq!(
            got,
            [
                Response::JobCreated { handle: a.handle },
                Response::WorkComplete(complete)
            ]
        );
        s.check_invariants().unwrap();
    }

    /// A worker whose output waits for the store (its own background submission) gets its
    /// JOB_ASSIGN after that JOB_CREATED, not before.
    #[test]
    fn an_assignment_behind_a_held_reply_keeps_its_place() {
        let now = Instant::now();
        let mut s = storing_server(now);
        let (c, w) = (connect(&mut s, 1, now), connect(&mut s, 2, now));
        let fg = SubmitMode::Foreground(Priority::Normal);
        s.handle_input(c, &submit("f", "u1", fg), now);
        let bg = SubmitMode::Background(Priority::Normal);
        s.handle_input(w, &submit("g", "u2", bg), now);
        s.handle_input(w, &Request::CanDo { function: b("f") }.to_bytes(), now);
        s.handle_input(w, &Request::GrabJob(GrabMode::Uniq).to_bytes(), now);
        assert_eq!(
            responses(&mut s, w),
            [],
            "all held behind the store's answer"
        );
        store_answers(&mut s, now);
        let got = responses(&mut s, w);
        assert!(
            matches!(got.as_slice(), [Response::JobCreated { .. }, Response::JobAssign(a)]
            if a.extras == AssignExtras::Unique(b("u1")) && a.data == b("payload")),
            "{got:?}"
        );
        s.check_invariants().unwrap();
    }

    #[test]
    fn stale_wake_up_entries_are_swept() {
        let now = Instant::now();
        let mut s = Server::new(ServerConfig::new(now, 0), now);
        let peer = PeerInfo {
            fd: 1,
            ip: "127.0.0.1".into(),
        };
        let w = s.accept(peer, now);
        let f = Bytes::from_static(b"f");
        s.handle_input(w, &Request::PreSleep.to_bytes(), now);
        // Each CAN_DO while asleep lists the worker; each CANT_DO leaves that entry stale.
        for _ in 0..1000 {
            s.handle_input(
                w,
                &Request::CanDo {
                    function: f.clone(),
                }
                .to_bytes(),
                now,
            );
            s.handle_input(
                w,
                &Request::CantDo {
                    function: f.clone(),
                }
                .to_bytes(),
                now,
            );
            s.check_invariants().unwrap();
        }
        let id = s.jobs.functions.id(b"f").unwrap();
        let entries = s.sleepers.of(id).count();
        assert!(entries <= 2 + 64, "{entries} wake-up entries kept");
    }
}
