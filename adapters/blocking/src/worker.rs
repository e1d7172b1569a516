//! The blocking worker: one connection to the first reachable server, jobs run inline one
//! at a time, reconnect (and re-register) after a loss.

use crate::io::{connect, flush, wait};
use bytes::Bytes;
use gearman_core::machine::Machine;
use gearman_core::worker::{AssignedJob, WorkerConfig, WorkerConnection, WorkerEvent};
use std::collections::HashMap;
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a job ends other than by success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkError {
    /// WORK_FAIL.
    Fail,
    /// WORK_EXCEPTION with this payload.
    Exception(Bytes),
}

/// The running job, for progress reports.
pub struct JobContext<'a> {
    /// The assignment.
    pub job: &'a AssignedJob,
    conn: &'a mut WorkerConnection,
    stream: &'a mut TcpStream,
}

impl JobContext<'_> {
    fn send(&mut self, r: Result<(), gearman_core::UsageError>) {
        if r.is_ok() {
            flush(self.conn, self.stream, &mut Vec::new());
        }
    }

    /// WORK_STATUS.
    pub fn status(&mut self, numerator: u32, denominator: u32) {
        let r = self
            .conn
            .work_status(&self.job.handle, numerator, denominator);
        self.send(r);
    }

    /// WORK_DATA.
    pub fn send_data(&mut self, data: impl Into<Bytes>) {
        let r = self.conn.work_data(&self.job.handle, data.into());
        self.send(r);
    }

    /// WORK_WARNING.
    pub fn warning(&mut self, data: impl Into<Bytes>) {
        let r = self.conn.work_warning(&self.job.handle, data.into());
        self.send(r);
    }
}

type Handler = Box<dyn Fn(&mut JobContext<'_>) -> Result<Bytes, WorkError> + Send>;

/// A blocking Gearman worker.
pub struct Worker {
    servers: Vec<String>,
    functions: HashMap<Bytes, (Handler, Option<Duration>)>,
    config: WorkerConfig,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// A worker for these servers (`host:port`); the first reachable one is served.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        Worker {
            servers: servers.into_iter().map(Into::into).collect(),
            functions: HashMap::new(),
            config: WorkerConfig::default(),
            stop: Arc::default(),
        }
    }

    /// Registers a function, optionally with a server-side timeout (CAN_DO_TIMEOUT).
    pub fn function<F>(mut self, name: impl Into<Bytes>, timeout: Option<Duration>, f: F) -> Self
    where
        F: Fn(&mut JobContext<'_>) -> Result<Bytes, WorkError> + Send + 'static,
    {
        self.functions.insert(name.into(), (Box::new(f), timeout));
        self
    }

    /// A flag that, once set, stops [`Worker::work`] after the running job.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Works until the stop flag is set; reconnects after a lost connection.
    pub fn work(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            match connect(&self.servers) {
                Ok(stream) => self.serve(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn serve(&self, mut stream: TcpStream) {
        let mut conn = WorkerConnection::new(self.config.clone());
        for (name, (_, timeout)) in &self.functions {
            let _ = conn.can_do(name.clone(), *timeout);
        }
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                conn.stop_grabbing();
                if conn.is_quiescent() {
                    return;
                }
            }
            flush(&mut conn, &mut stream, &mut out);
            while let Some(event) = conn.poll_event() {
                match event {
                    WorkerEvent::JobAssigned(job) => self.run_job(&job, &mut conn, &mut stream),
                    WorkerEvent::Closed { .. } => return,
                    _ => {}
                }
            }
            if conn.is_closed() {
                return;
            }
            wait(&mut conn, &mut stream, &mut buf, Duration::from_millis(200));
        }
    }

    fn run_job(&self, job: &AssignedJob, conn: &mut WorkerConnection, stream: &mut TcpStream) {
        let result = match self.functions.get(&job.function) {
            Some((handler, _)) => {
                let mut ctx = JobContext { job, conn, stream };
                catch_unwind(AssertUnwindSafe(|| handler(&mut ctx))).unwrap_or(Err(WorkError::Fail))
            }
            None => Err(WorkError::Fail),
        };
        let _ = match result {
            Ok(data) => conn.work_complete(&job.handle, data),
            Err(WorkError::Fail) => conn.work_fail(&job.handle),
            Err(WorkError::Exception(data)) => conn.work_exception(&job.handle, data),
        };
    }
}
