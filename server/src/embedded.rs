//! gearmand-rs inside a Rust program or test (Perl's `to_inprocess_server`): the same
//! server as the binary, spawned on the caller's tokio runtime, on ports the OS picks,
//! stopped through its handle. It installs no tracing subscriber (its events go to the
//! host's, if any) and no signal handlers (the host's SIGTERM and SIGHUP stay the host's).

use crate::cli::Args;
use crate::event_loop::{self, StopOn};
use crate::{listeners, tls, transport, StartError};
use clap::Parser;
use std::ffi::OsString;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Configures an in-process [`Server`]: by default it listens on 127.0.0.1 on a port the
/// OS picks, with no durable queue.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = gearman_server::Server::builder()
///     .arg("--job-retries").arg("3") // any gearmand-rs flag
///     .spawn()?;
/// let addr = server.addr().expect("a TCP listener"); // e.g. 127.0.0.1:40123
/// // ... connect clients and workers to `addr` ...
/// # let _ = addr;
/// server.shutdown().await?; // graceful: running jobs finish first
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct ServerBuilder {
    args: Vec<OsString>,
    listen: Vec<String>,
    port: Option<u16>,
}

impl ServerBuilder {
    /// Listens on `host` (an address or name, as `-L`); repeat for several. Default:
    /// 127.0.0.1. `unix:/path` is a Unix socket.
    pub fn listen(mut self, host: impl Into<String>) -> Self {
        self.listen.push(host.into());
        self
    }

    /// The port (as `-p`). Default: 0, a free port the OS picks (see [`Server::addrs`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds one command-line argument, as `gearmand-rs` takes it (`--queue-type`,
    /// `--http-port`, `--acl-file`, ...).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several command-line arguments.
    pub fn args<A: Into<OsString>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Binds the listeners now (a bad flag, a port in use or a bad certificate is an error
    /// here) and spawns the server on the current tokio runtime (with I/O and time
    /// enabled; any flavour). Fails, without panicking, outside a runtime.
    pub fn spawn(self) -> Result<Server, StartError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StartError("Server::spawn must be called inside a tokio runtime".into())
        })?;
        let mut argv: Vec<OsString> = vec!["gearmand-rs".into()];
        let listen = match self.listen.is_empty() {
            true => vec!["127.0.0.1".to_string()],
            false => self.listen,
        };
        for host in listen {
            argv.extend(["--listen".into(), host.into()]);
        }
        argv.extend(["--port".into(), self.port.unwrap_or(0).to_string().into()]);
        argv.extend(self.args);
        let args = Args::try_parse_from(argv).map_err(|e| {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            StartError(first.trim_start_matches("error: ").to_string())
        })?;
        let settings = args.validate()?;
        if settings.daemon || settings.user.is_some() || settings.pid_file.is_some() {
            return Err(StartError(
                "--daemon, --user and --pid-file belong to the gearmand-rs process, not to an \
                 in-process server"
                    .into(),
            ));
        }
        let (tls, acl) = tls::prepare(&settings.security)?;
        let listeners = listeners::bind_all(&settings, tls)?;
        let addrs = listeners.iter().filter_map(|b| b.tcp_addr()).collect();
        let http_listeners = match &settings.http {
            Some(h) => transport::tcp::bind_hosts(&h.listen, h.port, settings.backlog)?,
            None => Vec::new(),
        };
        let http_addrs = http_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let (stop, stop_on) = oneshot::channel();
        let task = runtime.spawn(event_loop::serve(
            settings,
            listeners,
            acl,
            http_listeners,
            || {},
            StopOn::Handle(stop_on),
        ));
        Ok(Server {
            addrs,
            http_addrs,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running in-process gearmand-rs (see [`Server::builder`]). Dropping it stops the
/// server at once, as [`Server::stop`] does, without waiting.
///
/// Testing a worker against a real server, in a `#[tokio::test]` or any tokio program
/// (here with `gearman-tokio`, the tokio client and worker):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use gearman_tokio::Job;
///
/// let server = gearman_server::Server::builder().spawn()?;
/// let addr = server.addr().expect("a TCP listener").to_string();
///
/// let worker = gearman_tokio::worker()
///     .server(addr.clone())
///     .function("reverse", |job| async move {
///         Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
///     })
///     .build();
/// let stop_worker = worker.handle();
/// let worker_task = tokio::spawn(worker.run());
///
/// let client = gearman_tokio::client().server(addr).build();
/// let reversed = client.run(Job::new("reverse", "hello")).await?;
/// assert_eq!(&reversed[..], b"olleh");
///
/// stop_worker.shutdown();
/// worker_task.await?;
/// server.shutdown().await?; // graceful: running jobs finish first
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<bool>>,
    task: Option<JoinHandle<Result<(), StartError>>>,
}

impl Server {
    /// A builder for an in-process server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The TCP addresses the Gearman listeners are bound to (real ports, also for port 0).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first of [`Server::addrs`]; `None` when the server only has Unix sockets.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    /// The addresses of the HTTP listener (`--http-port`), if any.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// Stops gracefully, like SIGTERM or admin `shutdown graceful`: no new connections,
    /// running jobs finish (up to the shutdown timeout), then it returns.
    pub async fn shutdown(self) -> Result<(), StartError> {
        self.stop_with(true).await
    }

    /// Stops now, like admin `shutdown`: running jobs are not waited for (background
    /// jobs stay in a durable queue).
    pub async fn stop(self) -> Result<(), StartError> {
        self.stop_with(false).await
    }

    /// Whether the server has stopped (by its handle or by an admin `shutdown`).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    async fn stop_with(mut self, graceful: bool) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            // Already stopped (admin shutdown) when the receiver is gone.
            let _ = stop.send(graceful);
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| StartError(format!("the server task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(false);
        }
    }
}
