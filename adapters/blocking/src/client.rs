//! The blocking client: a lazily opened connection per server, failover and backoff from
//! the core's [`ClientSet`], and many calls pipelined at once (PECL's addTask/runTasks).

use crate::{ClientBuilder, Error, JobEvent, Task, TaskOutput};
use bytes::Bytes;
use gearman_async::blocking::ClientEngine;
#[cfg(doc)]
use gearman_async::CONNECT_CHECK_TIMEOUT;
use gearman_core::client::{Call, ClientEvent, Job, Schedule};
use gearman_core::proto::{StatusRes, StatusResUnique};
use std::io::Read;
use std::time::{Duration, Instant};

/// A blocking Gearman client over several servers.
pub struct Client {
    engine: ClientEngine,
}

impl From<ClientEngine> for Client {
    fn from(engine: ClientEngine) -> Self {
        Client { engine }
    }
}

impl Client {
    /// A client for these servers (`host:port`, `[v6]:port` or `unix:/path`): round-robin,
    /// failing over in list order; the same as [`client()`](crate::client) with these
    /// servers.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        ClientBuilder::default().servers(servers).build()
    }

    fn call(&mut self, call: Call, timeout: Option<Duration>) -> Result<ClientEvent, Error> {
        let mut results = self.engine.run_calls(vec![(call, timeout)], |_, _| {});
        results.pop().unwrap_or(Err(Error::NoServer(Vec::new())))
    }

    /// Opens a connection now (they are otherwise opened on first use) and checks that a
    /// server answers, so a wrong address or a dead port shows at once: connect and
    /// answer within the client's call timeout, or [`CONNECT_CHECK_TIMEOUT`]. A server
    /// not reached by then is unreachable: [`Error::NoServer`] names each server's error.
    pub fn connect(&mut self) -> Result<(), Error> {
        self.engine.check()
    }

    /// An ECHO round trip to a server (the one the next call would use): its time.
    pub fn ping(&mut self) -> Result<Duration, Error> {
        let start = Instant::now();
        self.echo("ping")?;
        Ok(start.elapsed())
    }

    /// Runs a batch of tasks at once, pipelined per server (PECL's `addTask*`/`runTasks`,
    /// `addTaskStatus`); `on_event(i, event)` sees the events of foreground task `i`, its
    /// last one included. Returns each task's output, in task order.
    pub fn run_batch(
        &mut self,
        tasks: Vec<Task>,
        mut on_event: impl FnMut(usize, &JobEvent),
    ) -> Vec<Result<TaskOutput, Error>> {
        let calls = tasks.iter().map(Task::call).collect();
        let mut on_job = |i: usize, e: &JobEvent| {
            if matches!(tasks.get(i), Some(Task::Run(_))) {
                on_event(i, e);
            }
        };
        let results = self.engine.run_calls(calls, |i, e| {
            JobEvent::from_event(e).inspect(|e| on_job(i, e));
        });
        let outputs = results.into_iter().enumerate();
        let output = |(i, r): (usize, Result<_, Error>)| {
            r.as_ref()
                .err()
                .and_then(JobEvent::from_error)
                .inspect(|e| on_job(i, e));
            r.and_then(TaskOutput::from_event)
        };
        outputs.map(output).collect()
    }

    /// Runs many foreground jobs at once; `on_event(i, event)` sees the events of job `i`.
    /// Returns the results in job order.
    pub fn run_tasks(
        &mut self,
        jobs: Vec<Job>,
        on_event: impl FnMut(usize, &JobEvent),
    ) -> Vec<Result<Bytes, Error>> {
        let tasks = jobs.into_iter().map(Task::Run).collect();
        let outputs = self.run_batch(tasks, on_event).into_iter();
        outputs.map(|o| o?.into_bytes()).collect()
    }

    /// Runs a foreground job; `on_event` sees its events. A failed job or an exception is
    /// an error ([`Error::JobFailed`], [`Error::JobException`]).
    pub fn run_with(&mut self, job: Job, mut on: impl FnMut(&JobEvent)) -> Result<Bytes, Error> {
        let mut results = self.run_tasks(vec![job], |_, e| on(e));
        results.pop().unwrap_or(Err(Error::NoServer(Vec::new())))
    }

    /// Runs a foreground job and returns its result.
    pub fn run(&mut self, job: Job) -> Result<Bytes, Error> {
        self.run_with(job, |_| {})
    }

    /// Runs a foreground job whose workload is streamed (PECL's `setWorkloadCallback`):
    /// exactly `len` bytes read from `reader`, in place of the job's data (which must be
    /// empty), copied onto the wire a chunk at a time as they are read; the reader must end
    /// after them (cut a longer one with [`Read::take`]). A reader that fails, ends early
    /// or runs long closes the connection and ends the job with
    /// [`Error::Connection`]`(`[`ConnError::Workload`](crate::ConnError::Workload)`)`;
    /// nothing runs on the server.
    ///
    /// ```no_run
    /// use gearman_blocking::Job;
    /// use std::io::Read;
    /// let mut client = gearman_blocking::Client::new(["127.0.0.1:4730"]);
    /// let file = std::fs::File::open("/var/backups/db.dump")?;
    /// let len = file.metadata()?.len();
    /// let checksum = client.run_streamed(Job::new("checksum", ""), len, file)?;
    /// let handle = client.submit_background_streamed(Job::new("log", ""), 4, &b"abcd"[..])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_streamed(&mut self, job: Job, len: u64, reader: impl Read) -> Result<Bytes, Error> {
        self.run_streamed_with(job, len, reader, |_| {})
    }

    /// [`Client::run_streamed`] with `on_event` seeing the job's events (data, warnings,
    /// status, and the last one) as in [`Client::run_with`].
    pub fn run_streamed_with(
        &mut self,
        job: Job,
        len: u64,
        reader: impl Read,
        mut on: impl FnMut(&JobEvent),
    ) -> Result<Bytes, Error> {
        let call = job.streamed_call(false, len);
        let result = self.streamed(call, job.call_timeout(), reader, |e| {
            JobEvent::from_event(e).inspect(|e| on(e));
        });
        if let Some(e) = result.as_ref().err().and_then(JobEvent::from_error) {
            on(&e);
        }
        Ok(result?.into_bytes()?)
    }

    /// A background job whose workload is streamed as in [`Client::run_streamed`];
    /// returns its handle.
    pub fn submit_background_streamed(
        &mut self,
        job: Job,
        len: u64,
        reader: impl Read,
    ) -> Result<Bytes, Error> {
        let call = job.streamed_call(true, len);
        Ok(self
            .streamed(call, job.call_timeout(), reader, |_| {})?
            .into_bytes()?)
    }

    fn streamed(
        &mut self,
        call: Call,
        timeout: Option<Duration>,
        mut reader: impl Read,
        mut on_event: impl FnMut(&ClientEvent),
    ) -> Result<ClientEvent, Error> {
        let calls = vec![(call, timeout)];
        let mut results = self
            .engine
            .run_calls_with(calls, &mut [Some(&mut reader)], |_, e| on_event(e));
        results.pop().unwrap_or(Err(Error::NoServer(Vec::new())))
    }

    /// Submits a background (or epoch) job; returns its handle.
    pub fn submit_background(&mut self, job: Job) -> Result<Bytes, Error> {
        Ok(self
            .call(job.call(true), job.call_timeout())?
            .into_bytes()?)
    }

    /// Submits `job` as a recurring background job on `schedule` (SUBMIT_JOB_SCHED, a
    /// gearmand-rs extension: gearmand answers [`Error::Server`]); returns the schedule's
    /// handle, which admin `show schedules` lists and `cancel job` ends. A field the server
    /// would refuse is [`Error::Usage`] naming it, and nothing is sent.
    pub fn submit_scheduled(&mut self, job: Job, schedule: Schedule) -> Result<Bytes, Error> {
        let call = job.scheduled_call(&schedule);
        Ok(self.call(call, job.call_timeout())?.into_bytes()?)
    }

    /// Asks for a job's status by handle (on the server that created it, if known here).
    pub fn status(&mut self, handle: impl Into<Bytes>) -> Result<StatusRes, Error> {
        Ok(self
            .call(Call::Status(handle.into()), None)?
            .into_status()?)
    }

    /// Asks for a job's status by unique id.
    pub fn status_unique(&mut self, unique: impl Into<Bytes>) -> Result<StatusResUnique, Error> {
        let call = Call::StatusUnique(unique.into());
        Ok(self.call(call, None)?.into_status_unique()?)
    }

    /// Sends ECHO_REQ; returns the echoed bytes.
    pub fn echo(&mut self, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        Ok(self.call(Call::Echo(data.into()), None)?.into_bytes()?)
    }
}
