//! The blocking adapter's transport seam, kept with the async one so every adapter names
//! servers and opens streams the same way: a [`Stream`] is any reader and writer with read
//! timeouts (TCP, a Unix socket, TLS over either); a [`Connector`] opens one for a
//! [`ServerAddr`](gearman_core::addr::ServerAddr). `gearman-blocking` re-exports these;
//! its threads drive each core machine with [`flush`] and [`wait`] (str0m's loop: drain
//! output and events, then read with a timeout that ends at the machine's next deadline).

mod connector;
mod kept_timeouts;
#[cfg(feature = "tls")]
mod tls;
pub use connector::{Connector, Resolve, ResolvingConnector, StdConnector, CONNECT_TIMEOUT};
#[cfg(feature = "tls")]
pub use tls::{TlsConnector, TlsStream};

pub use crate::driver::log_close;
pub use crate::worker::{log_refused_function, log_server_error};
use crate::Error;
use gearman_core::client::{Call, CallError, ClientEvent, ClientOptions, ClientSet, Member};
use gearman_core::machine::Machine;
use kept_timeouts::KeptTimeouts;
use std::io::{self, ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A byte stream the blocking adapter runs over (TCP, a Unix socket, TLS over either with
/// the `tls` feature's `TlsConnector`): reads must time out, so waits end at the
/// machine's deadlines.
pub trait Stream: Read + Write + Send {
    /// Sets how long a read may block (`None`: forever), like `TcpStream::set_read_timeout`.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// Sets how long a write may block (`None`: forever), like
    /// `TcpStream::set_write_timeout`, so a call's timeout holds while a server that
    /// stopped reading leaves its request unsent. The default does nothing: a stream
    /// without it blocks in writes until the peer reads.
    fn set_write_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl Stream for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, timeout)
    }
}

/// Parses `addr` (a malformed one is an `InvalidInput` error) and connects to it within
/// [`CONNECT_TIMEOUT`]; says so (`tracing`) either way.
pub fn connect(connector: &dyn Connector, addr: &str) -> io::Result<Box<dyn Stream>> {
    connect_within(connector, addr, Some(Instant::now() + CONNECT_TIMEOUT))
}

/// [`connect`], giving up at `deadline` (`None`: when the connector does). The stream
/// sets its read and write timeouts only when they change (each set is a system call;
/// [`flush`] and [`wait`] set one before every write and read).
pub fn connect_within(
    connector: &dyn Connector,
    addr: &str,
    deadline: Option<Instant>,
) -> io::Result<Box<dyn Stream>> {
    let parsed = crate::parse_addr(addr);
    let connected = parsed.and_then(|a| connector.connect_within(&a, deadline));
    // Timeouts set only when they change: flush and wait set them before each write and read.
    let connected = connected.map(|s| Box::new(KeptTimeouts::new(s)) as Box<dyn Stream>);
    match &connected {
        Ok(_) => tracing::debug!(server = addr, "gearman: connected"),
        Err(e) => tracing::warn!(server = addr, error = %e, "gearman: cannot connect"),
    }
    connected
}

/// Writes everything `m` wants to send (a failed write is the end of the stream for `m`).
/// Writes block no longer than the machine's next deadline: when it passes first, its
/// timers run (the calls waiting time out) and, with a packet left half written, the
/// stream ends for `m`.
pub fn flush<M: Machine>(m: &mut M, stream: &mut dyn Stream, out: &mut Vec<u8>) {
    while m.poll_transmit(out) > 0 {}
    if out.is_empty() {
        return;
    }
    let mut rest = out.as_slice();
    let written = loop {
        let now = Instant::now();
        let wait = m.poll_timeout().map(|d| {
            d.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        if stream.set_write_timeout(wait).is_err() {
            break false;
        }
        match stream.write(rest) {
            Ok(0) => break false,
            Ok(n) => {
                rest = rest.get(n..).unwrap_or_default();
                if rest.is_empty() {
                    // A TLS stream may hold back what the socket did not take.
                    break stream.flush().is_ok();
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => {}
            // Unix reports WouldBlock, Windows TimedOut.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let now = Instant::now();
                if m.poll_timeout().is_some_and(|d| d <= now) {
                    m.handle_timeout(now);
                    break false;
                }
            }
            Err(_) => break false,
        }
    };
    if !written {
        m.handle_eof(Instant::now());
    }
    out.clear();
}

/// One wait: reads until input, the machine's deadline, or `tick` (so callers can look at
/// a stop flag). Runs due timers.
pub fn wait<M: Machine>(m: &mut M, stream: &mut dyn Stream, buf: &mut [u8], tick: Duration) {
    let now = Instant::now();
    let until = m.poll_timeout().map_or(now + tick, |d| d.min(now + tick));
    let wait = until
        .saturating_duration_since(now)
        .max(Duration::from_millis(1));
    let _ = stream.set_read_timeout(Some(wait));
    match stream.read(buf) {
        Ok(0) => m.handle_eof(Instant::now()),
        Ok(n) => {
            let _ = m.handle_input(buf.get(..n).unwrap_or_default(), Instant::now());
        }
        // Unix reports WouldBlock, Windows TimedOut: both mean the wait ended.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(_) => m.handle_eof(Instant::now()),
    }
    m.handle_timeout(Instant::now());
}

/// The blocking client's engine: its server connections ([`ClientSet`], which also keeps
/// each server's last connect error: a call no server took fails with
/// [`Error::NoServer`] naming them) and how they are opened.
pub struct ClientEngine {
    set: ClientSet<Box<dyn Stream>, Arc<io::Error>>,
    /// Opens the connections.
    pub connector: Arc<dyn Connector>,
    timeout: Option<Duration>,
}

impl ClientEngine {
    /// An engine for these servers, connecting with [`StdConnector`].
    pub fn new(addrs: Vec<String>, options: &ClientOptions) -> Self {
        ClientEngine {
            set: ClientSet::new(addrs, options),
            connector: Arc::new(StdConnector),
            timeout: options.timeout,
        }
    }

    /// Sends every call (pipelined per connection), connecting where needed, then runs
    /// each busy connection until its calls end. A call's timeout covers its connect: a
    /// connect still pending at the call's deadline is that server's failure (`TimedOut`)
    /// and the call ends with [`Error::TimedOut`]; a connect for a call without a timeout
    /// gives up after [`CONNECT_TIMEOUT`]; `on_event(i, event)` sees each event of
    /// call `i`. Returns each call's final event or error, in call order.
    pub fn run_calls(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        on_event: impl FnMut(usize, &ClientEvent),
    ) -> Vec<Result<ClientEvent, Error>> {
        self.run_calls_with(calls, &mut [], on_event)
    }

    /// [`ClientEngine::run_calls`] where call `i` ([`Call::Streamed`]) streams its
    /// workload from `sources[i]`, copied onto the wire a chunk at a time as it is read.
    pub fn run_calls_with(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        sources: &mut [Option<&mut dyn Read>],
        on_event: impl FnMut(usize, &ClientEvent),
    ) -> Vec<Result<ClientEvent, Error>> {
        self.run(calls, sources, on_event).0
    }

    /// The connect check behind a client's `connect()`: one ECHO round trip to a server
    /// (the one the next call would use), connect included, within the client's call
    /// timeout or [`CONNECT_CHECK_TIMEOUT`](crate::CONNECT_CHECK_TIMEOUT). A connect that
    /// fails, or is still pending then, is that server's failure: with none left,
    /// [`Error::NoServer`] names each server's error.
    pub fn check(&mut self) -> Result<(), Error> {
        let timeout = self.timeout.unwrap_or(crate::CONNECT_CHECK_TIMEOUT);
        let echo = Call::Echo(bytes::Bytes::from_static(b"gearman-rs: connect check"));
        let (mut results, connect_ran_out) =
            self.run(vec![(echo, Some(timeout))], &mut [], |_, _| {});
        match results.pop() {
            Some(Err(Error::TimedOut)) if connect_ran_out => {
                Err(Error::no_server(self.set.unreachable()))
            }
            Some(r) => r.map(drop),
            None => Err(Error::no_server(self.set.unreachable())),
        }
    }

    /// [`ClientEngine::run_calls_with`], also saying whether a connect failed at or after
    /// its call's deadline.
    fn run(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        sources: &mut [Option<&mut dyn Read>],
        mut on_event: impl FnMut(usize, &ClientEvent),
    ) -> (Vec<Result<ClientEvent, Error>>, bool) {
        let (set, connector) = (&mut self.set, &*self.connector);
        let mut connect_ran_out = false;
        let open = |addr: &str, deadline: Option<Instant>| {
            let bound = deadline.unwrap_or_else(|| Instant::now() + CONNECT_TIMEOUT);
            let connected = connect_within(connector, addr, Some(bound));
            if connected.is_err() && deadline.is_some_and(|d| d <= Instant::now()) {
                connect_ran_out = true;
            }
            connected.map_err(Arc::new)
        };
        set.start_within(calls, Instant::now(), Instant::now, open);
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        let busy = set.busy();
        // Every server gets its calls before we wait on any one of them.
        for &idx in &busy {
            if let Some(m) = set.member(idx) {
                pump(m, sources, &mut out, &mut buf);
            }
        }
        for idx in busy {
            while let Some(m) = set.member(idx) {
                pump(m, sources, &mut out, &mut buf);
                if !set.drain(idx, Instant::now(), &mut on_event) {
                    break;
                }
                if let Some(m) = set.member(idx) {
                    wait(&mut m.machine, &mut *m.io, &mut buf, Duration::from_secs(1));
                }
            }
        }
        let results = set.take_results().into_iter();
        let results = results
            .map(|r| match r {
                Err(CallError::NoServer) => Err(Error::no_server(set.unreachable())),
                r => r.map_err(Error::from),
            })
            .collect();
        (results, connect_ran_out)
    }
}

/// Writes what `m` wants to send, copying each streamed workload from its source (call
/// `i`'s is `sources[i]`) until none waits for bytes.
fn pump(
    m: &mut Member<Box<dyn Stream>>,
    sources: &mut [Option<&mut dyn Read>],
    out: &mut Vec<u8>,
    buf: &mut [u8],
) {
    loop {
        flush(&mut m.machine, &mut *m.io, out);
        let Some((req, want)) = m.machine.workload_wanted() else {
            return;
        };
        let slot = m.call_of(req).and_then(|i| sources.get_mut(i));
        let Some(source) = slot.and_then(Option::as_mut) else {
            m.machine
                .workload_error("the streamed workload has no source");
            continue;
        };
        let chunk = buf.get_mut(..want.min(buf.len())).unwrap_or_default();
        match source.read(chunk) {
            Ok(n) => m.machine.workload_input(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => m.machine.workload_error(e),
        }
    }
}

/// Configures a blocking client `C` (built from a [`ClientEngine`]): the same builder
/// methods as the async [`ClientBuilder`](crate::ClientBuilder).
pub struct ClientBuilder<C> {
    addrs: Vec<String>,
    options: ClientOptions,
    connector: Arc<dyn Connector>,
    client: PhantomData<fn() -> C>,
}

impl<C> Default for ClientBuilder<C> {
    fn default() -> Self {
        ClientBuilder {
            addrs: Vec::new(),
            options: ClientOptions::default(),
            connector: Arc::new(StdConnector),
            client: PhantomData,
        }
    }
}

impl<C: From<ClientEngine>> ClientBuilder<C> {
    crate::__client_builder_methods!(Connector);
    crate::__blocking_tls_method!();

    /// Builds the client; connections are opened lazily (or by its `connect()`).
    pub fn build(self) -> C {
        let mut engine = ClientEngine::new(self.addrs, &self.options);
        engine.connector = self.connector;
        C::from(engine)
    }
}
