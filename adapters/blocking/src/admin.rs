//! The admin client on `std::net`: gearmand's text protocol (`status`, `workers`, `show
//! jobs`, ...) with typed replies. The calls are [`AdminCalls`]' methods; parsing lives in
//! [`gearman_core::admin_reply`].
//!
//! ```no_run
//! use gearman_blocking::admin::AdminCalls;
//! let mut admin = gearman_blocking::admin::client("127.0.0.1:4730");
//! for row in admin.status()? {
//!     println!("{:?}: {} queued, {} workers", row.function, row.total, row.workers);
//! }
//! # Ok::<(), gearman_blocking::admin::AdminError>(())
//! ```

use bytes::Bytes;
use gearman_async::blocking::{connect, Connector, StdConnector, Stream};
use gearman_core::admin_reply::{request_line, AdminExchange};
pub use gearman_core::admin_reply::{
    AdminCalls, AdminError, AdminReply, AdminReplyError, FunctionStatus, JobInfo, JobResult,
    Outcome, PriorityStatus, WorkerInfo,
};
pub use gearman_core::proto::admin::AdminCommand;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

/// An admin client for the server at `addr` (`host:port`, `[v6]:port` or `unix:/path`),
/// connecting on first use: the same as [`AdminClient::new`], named as
/// `gearman_tokio::admin::client` and `gearman_async_std::admin::client` are.
pub fn client(addr: impl Into<String>) -> AdminClient {
    AdminClient::new(addr)
}

/// An admin connection to one server, opened on first use (or by [`AdminClient::connect`])
/// and reopened after an error. One command at a time; reads time out (30 s).
pub struct AdminClient {
    addr: String,
    connector: Arc<dyn Connector>,
    stream: Option<Box<dyn Stream>>,
    timeout: Duration,
}

impl AdminClient {
    /// A client for the server at `addr` (`host:port`, `[v6]:port` or `unix:/path`).
    pub fn new(addr: impl Into<String>) -> Self {
        let (addr, timeout) = (addr.into(), Duration::from_secs(30));
        let connector = Arc::new(StdConnector);
        AdminClient {
            addr,
            connector,
            stream: None,
            timeout,
        }
    }

    /// Sets the read timeout.
    pub fn timeout(self, timeout: Duration) -> Self {
        AdminClient { timeout, ..self }
    }

    /// Connects with `connector` from now on (TLS, a proxy).
    pub fn connector(self, connector: impl Connector + 'static) -> Self {
        AdminClient {
            connector: Arc::new(connector),
            ..self
        }
    }

    gearman_async::__blocking_tls_method!();

    /// Connects now instead of at the first command.
    pub fn connect(&mut self) -> Result<&mut Box<dyn Stream>, AdminError> {
        if self.stream.is_none() {
            let stream = connect(&*self.connector, &self.addr)?;
            stream.set_read_timeout(Some(self.timeout))?;
            self.stream = Some(stream);
        }
        self.stream
            .as_mut()
            .ok_or(AdminError::Io(io::ErrorKind::NotConnected.into()))
    }

    fn exchange(&mut self, command: &AdminCommand) -> Result<Bytes, AdminError> {
        let line = request_line(command)?;
        let stream = self.connect()?;
        stream.write_all(&line)?;
        let (mut exchange, mut buf) = (AdminExchange::new(command), vec![0u8; 16 * 1024]);
        loop {
            // The read timeout shows as WouldBlock on Unix: report the TimedOut promised.
            let n = stream.read(&mut buf).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock => {
                    io::Error::new(io::ErrorKind::TimedOut, "admin call timed out")
                }
                _ => e,
            })?;
            if n == 0 {
                return Err(AdminError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            if let Some(reply) = exchange.handle_input(buf.get(..n).unwrap_or_default())? {
                return Ok(reply);
            }
        }
    }
}

impl AdminCalls for AdminClient {
    fn raw(&mut self, command: &AdminCommand) -> Result<Bytes, AdminError> {
        let result = self.exchange(command);
        if result.is_err() {
            // The stream may be mid-reply: the next call starts on a fresh connection.
            self.stream = None;
        }
        result
    }
}
