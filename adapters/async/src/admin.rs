//! The admin client: gearmand's text protocol (`status`, `workers`, `show jobs`, ...) with
//! typed replies, over one connection of the runtime. Parsing lives in
//! [`gearman_core::admin_reply`].

use crate::{BoxIo, Connector, Runtime};
use bytes::Bytes;
use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gearman_core::admin_reply::{
    expect_reply, expect_result, parse_reply, request_line, AdminExchange,
};
pub use gearman_core::admin_reply::{
    AdminError, AdminReply, AdminReplyError, FunctionStatus, JobInfo, JobResult, Outcome,
    PriorityStatus, WorkerInfo,
};
pub use gearman_core::proto::admin::AdminCommand;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// An admin connection to one server, opened on first use (or by
/// [`AdminClient::connect`]) and reopened after an error. One command at a time.
pub struct AdminClient<R: Runtime> {
    runtime: R,
    connector: Arc<dyn Connector>,
    addr: String,
    io: Option<BoxIo>,
    timeout: Duration,
}

impl<R: Runtime> AdminClient<R> {
    /// A client for the server at `addr` (`host:port`, `[v6]:port` or `unix:/path`),
    /// connecting with `connector`; each call times out after 30 s.
    pub fn new(runtime: R, connector: impl Connector, addr: impl Into<String>) -> Self {
        AdminClient {
            runtime,
            connector: Arc::new(connector),
            addr: addr.into(),
            io: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Connects with `connector` from now on (TLS, a proxy).
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Arc::new(connector);
        self
    }

    /// Connects over TLS with these settings from now on (see
    /// [`ClientBuilder::tls`](crate::ClientBuilder::tls)).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::ClientTls) -> Self
    where
        R: crate::TlsRuntime,
    {
        self.connector = self.runtime.tls_connector(tls);
        self
    }

    /// Sets the limit for each call, connecting included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects now instead of at the first command.
    pub async fn connect(&mut self) -> Result<(), AdminError> {
        if self.io.is_none() {
            let timer = self.runtime.sleep_until(self.runtime.now() + self.timeout);
            let connect = crate::connect(&*self.connector, &self.addr);
            self.io = Some(match select(connect, timer).await {
                Either::Left((io, _)) => io?,
                Either::Right(_) => return Err(timed_out()),
            });
        }
        Ok(())
    }

    /// Sends `command` and returns the reply exactly as the server wrote it.
    pub async fn raw(&mut self, command: &AdminCommand) -> Result<Bytes, AdminError> {
        let line = request_line(command)?;
        let timer = self.runtime.sleep_until(self.runtime.now() + self.timeout);
        let result = match select(Box::pin(self.exchange(&line, command)), timer).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => Err(timed_out()),
        };
        if result.is_err() {
            // The stream may be mid-reply: the next call starts on a fresh connection.
            self.io = None;
        }
        result
    }

    async fn exchange(&mut self, line: &[u8], command: &AdminCommand) -> Result<Bytes, AdminError> {
        self.connect().await?;
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| AdminError::Io(io::ErrorKind::NotConnected.into()))?;
        io.write_all(line).await?;
        io.flush().await?;
        let mut exchange = AdminExchange::new(command);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                return Err(AdminError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the admin connection",
                )));
            }
            if let Some(reply) = exchange.handle_input(buf.get(..n).unwrap_or_default())? {
                return Ok(reply);
            }
        }
    }

    /// Sends `command` and parses the reply.
    pub async fn command(&mut self, command: &AdminCommand) -> Result<AdminReply, AdminError> {
        let reply = self.raw(command).await?;
        Ok(parse_reply(command, &reply)?)
    }

    /// `status`: every function with its queued+running total, running jobs and workers.
    pub async fn status(&mut self) -> Result<Vec<FunctionStatus>, AdminError> {
        let reply = self.command(&AdminCommand::Status).await?;
        expect_reply(reply, |r| match r {
            AdminReply::Status(rows) => Some(rows),
            _ => None,
        })
    }

    /// `prioritystatus`: queued jobs per priority and workers, per function.
    pub async fn priority_status(&mut self) -> Result<Vec<PriorityStatus>, AdminError> {
        let reply = self.command(&AdminCommand::PriorityStatus).await?;
        expect_reply(reply, |r| match r {
            AdminReply::PriorityStatus(rows) => Some(rows),
            _ => None,
        })
    }

    /// `workers`: every connection with its id and registered functions.
    pub async fn workers(&mut self) -> Result<Vec<WorkerInfo>, AdminError> {
        let reply = self.command(&AdminCommand::Workers).await?;
        expect_reply(reply, |r| match r {
            AdminReply::Workers(rows) => Some(rows),
            _ => None,
        })
    }

    /// `show jobs`: every job's handle, retries and flags.
    pub async fn show_jobs(&mut self) -> Result<Vec<JobInfo>, AdminError> {
        let reply = self.command(&AdminCommand::ShowJobs).await?;
        expect_reply(reply, |r| match r {
            AdminReply::Jobs(rows) => Some(rows),
            _ => None,
        })
    }

    /// `show unique jobs`: every job's unique id (empty when it has none).
    pub async fn show_unique_jobs(&mut self) -> Result<Vec<Bytes>, AdminError> {
        let reply = self.command(&AdminCommand::ShowUniqueJobs).await?;
        expect_reply(reply, |r| match r {
            AdminReply::UniqueJobs(rows) => Some(rows),
            _ => None,
        })
    }

    /// `cancel job HANDLE` (`ERR UNKNOWN_JOB` comes back as [`AdminError::Reply`]).
    pub async fn cancel_job(&mut self, handle: impl Into<Bytes>) -> Result<(), AdminError> {
        self.ok(AdminCommand::CancelJob(handle.into())).await
    }

    /// `create function NAME`.
    pub async fn create_function(&mut self, name: impl Into<Bytes>) -> Result<(), AdminError> {
        self.ok(AdminCommand::CreateFunction(name.into())).await
    }

    /// `drop function NAME`.
    pub async fn drop_function(&mut self, name: impl Into<Bytes>) -> Result<(), AdminError> {
        self.ok(AdminCommand::DropFunction(name.into())).await
    }

    /// `maxqueue NAME HIGH NORMAL LOW` (0 = unlimited).
    pub async fn max_queue(
        &mut self,
        function: impl Into<Bytes>,
        limits: [u32; 3],
    ) -> Result<(), AdminError> {
        self.ok(AdminCommand::MaxQueue {
            function: function.into(),
            limits,
        })
        .await
    }

    /// `shutdown` or `shutdown graceful` (gearmand-rs; gearmand 1.1.20 refuses it).
    pub async fn shutdown(&mut self, graceful: bool) -> Result<(), AdminError> {
        self.ok(AdminCommand::Shutdown { graceful }).await
    }

    /// `show result HANDLE` (gearmand-rs with `--keep-results`): the kept result of the
    /// background job that had `handle`. `ERR UNKNOWN_JOB` (none kept, or expired) and
    /// `ERR RESULTS_NOT_KEPT` come back as [`AdminError::Reply`].
    pub async fn result(&mut self, handle: impl Into<Bytes>) -> Result<JobResult, AdminError> {
        let reply = self
            .command(&AdminCommand::ShowResult(handle.into()))
            .await?;
        expect_result(reply)
    }

    /// `show result unique FUNCTION UNIQUE` (gearmand-rs with `--keep-results`): the
    /// latest kept result of a background job of `function` submitted with `unique`.
    pub async fn result_by_unique(
        &mut self,
        function: impl Into<Bytes>,
        unique: impl Into<Bytes>,
    ) -> Result<JobResult, AdminError> {
        let command = AdminCommand::ShowResultUnique {
            function: function.into(),
            unique: unique.into(),
        };
        expect_result(self.command(&command).await?)
    }

    /// `getpid`: the server's process id.
    pub async fn getpid(&mut self) -> Result<u32, AdminError> {
        let reply = self.command(&AdminCommand::Getpid).await?;
        expect_reply(reply, |r| match r {
            AdminReply::Pid(pid) => Some(pid),
            _ => None,
        })
    }

    /// `version`: the server's version string.
    pub async fn version(&mut self) -> Result<String, AdminError> {
        self.value(AdminCommand::Version).await
    }

    /// `verbose`: the server's log level name.
    pub async fn verbose(&mut self) -> Result<String, AdminError> {
        self.value(AdminCommand::Verbose).await
    }

    async fn ok(&mut self, command: AdminCommand) -> Result<(), AdminError> {
        let reply = self.command(&command).await?;
        expect_reply(reply, |r| matches!(r, AdminReply::Ok).then_some(()))
    }

    async fn value(&mut self, command: AdminCommand) -> Result<String, AdminError> {
        let reply = self.command(&command).await?;
        expect_reply(reply, |r| match r {
            AdminReply::Value(v) => Some(v),
            _ => None,
        })
    }
}

fn timed_out() -> AdminError {
    AdminError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        "admin call timed out",
    ))
}
