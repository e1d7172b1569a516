//! The core task: the single owner of the job server. It reads every connection whose
//! socket is ready, runs the core machine on the bytes, and writes the output back,
//! batching everything that is ready (see [`crate::connection`]).

use crate::cli::Settings;
use crate::connection::set::Connections;
use crate::core_channel::{CoreReport, ExtrasList, StoreInfo, ToCore};
use crate::heap_trim::HeapTrim;
use crate::listeners::{accept, Bound};
use crate::log_limit::{repeats_note, LogLimiter};
use crate::store::StoreHandle;
use crate::transport::Accepted;
use crate::{acl, privileges, StartError};
use gearman_core::server::{ConnId, PeerInfo, Server, ServerConfig, ServerEvent};
use gearman_core::Limits;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Messages handled before output is flushed, so one busy peer cannot starve the rest.
const BATCH: usize = 512;
/// Rounds of the core loop between two yields to the runtime. The loop runs outside
/// tokio's cooperative budget (it does its own batching), so it lets the listeners' and the
/// HTTP tasks run at least this often under a load that never lets it wait.
const YIELD_EVERY: u32 = 32;

/// An instant and the Unix second it falls on exactly: the instant is moved back by the
/// clock's fraction of a second, so Unix times the core derives from it (a retry's due
/// time kept across a restart) are not up to a second early.
fn wall_anchor() -> (Instant, i64) {
    let now = Instant::now();
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let fraction = std::time::Duration::from_nanos(since.subsec_nanos().into());
    let anchor = now.checked_sub(fraction).unwrap_or(now);
    (anchor, since.as_secs() as i64)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct CoreTask {
    server: Server,
    conns: Connections,
    /// Store acknowledgements: unbounded so the store may answer from any thread, even
    /// inline from `insert` on this one, without blocking.
    acks: mpsc::UnboundedSender<(u64, Result<(), String>)>,
    settings: Settings,
    store: Option<StoreHandle>,
    /// An admin `shutdown` asked to stop: `Some(graceful)`.
    stop_requested: Option<bool>,
    /// False once shutting down (for `/readyz`).
    accepting: bool,
    /// The store's commit counters, for `/metrics`.
    commit_stats: Option<std::sync::Arc<crate::store::CommitStats>>,
    /// Which backend, and the jobs taken over from other servers, for `/metrics`.
    store_info: Option<StoreInfo>,
    /// Past every durable id the core has handed out or restored: jobs taken over from
    /// another server are numbered from here, so they never share an id with this
    /// server's own.
    next_durable: u64,
    /// Gives a drained backlog's memory back to the system.
    heap_trim: HeapTrim,
}

/// Connections refused past --max-connections are logged once per interval.
static CONNECTION_REFUSED: LogLimiter = LogLimiter::new(std::time::Duration::from_secs(10));

/// What stops the server, besides an admin `shutdown`.
pub(crate) enum StopOn {
    /// SIGTERM or SIGINT (graceful); SIGHUP reopens the log file and reloads the ACL: the binary.
    Signals,
    /// The in-process handle's request (`true`: graceful; a dropped handle: now). No
    /// signal handlers: the host program's signals stay its own.
    Handle(tokio::sync::oneshot::Receiver<bool>),
}

/// Runs the server on `listeners` (already bound) with the ACL read at start. `ready` is
/// called once the store is open, the pid file written and privileges dropped, just before
/// serving.
pub(crate) async fn serve(
    settings: Settings,
    listeners: Vec<Bound>,
    acl: Option<gearman_core::acl::Acl>,
    http_listeners: Vec<std::net::TcpListener>,
    ready: impl FnOnce(),
    stop_on: StopOn,
) -> Result<(), StartError> {
    let listeners = listeners
        .into_iter()
        .map(|bound| bound.into_listener(settings.keepalive))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError(format!("cannot register the listeners: {e}")))?;
    if let (Some(acl), Some(path)) = (&acl, &settings.security.acl_file) {
        acl::log_in_force(path, acl, false);
    }
    // The store is opened and replayed before any connection is accepted.
    let (mut durable_extras, mut extras) = (false, Vec::new());
    let mut takeovers = None;
    let (store, restored) = match &settings.store {
        Some(backend) => {
            let fail = |e: crate::store::BackendError| StartError(e.to_string());
            let mut opened = backend.open().map_err(fail)?;
            (durable_extras, extras) = (opened.keeps_extras(), opened.load_extras().map_err(fail)?);
            takeovers = opened.takeovers();
            let (handle, jobs) = StoreHandle::start(opened).map_err(fail)?;
            tracing::info!("{}: {} job(s) restored", backend.describe(), jobs.len());
            (Some(handle), jobs)
        }
        None => (None, Vec::new()),
    };
    if settings.threads_requested != 1 {
        tracing::info!(
            "--threads {} ignored: gearmand-rs serves every connection from one thread",
            settings.threads_requested
        );
    }
    let pid_file = write_pid_file(&settings)?;
    if let Some(user) = &settings.user {
        privileges::switch_user(user, pid_file.as_deref())?;
    }
    let now = Instant::now();
    let (anchor, anchor_unix) = wall_anchor();
    let mut config = ServerConfig::new(anchor, anchor_unix);
    config.limits = Limits {
        max_body: settings.max_packet_size,
        ..Limits::default()
    };
    config.job_retries = settings.job_retries;
    config.worker_wakeup = settings.worker_wakeup;
    config.handle_prefix = settings.handle_prefix.clone();
    // With a durable queue the server restarts with its jobs and their clients: a handle
    // from before must not name a new job, so count from the start time (without one,
    // handles count from 1, as gearmand's do).
    if store.is_some() {
        config.first_handle = unix_now_millis();
    }
    config.exceptions_by_default = settings.exceptions;
    config.pid = std::process::id();
    config.verbose = settings.level.to_string();
    config.max_output_bytes = settings
        .max_packet_size
        .saturating_mul(2)
        .max(16 * 1024 * 1024);
    config.persist_background = store.is_some();
    config.retry = settings.retry.clone();
    config.durable_extras = durable_extras;
    config.schedule_offset_secs = settings.schedule_offset_secs;
    config.keep_results = settings.keep_results;
    config.keep_results_bytes = settings.keep_results_bytes;
    if store.is_some() && !durable_extras && settings.keep_results.is_some() {
        tracing::warn!(
            "this store keeps no records beyond the job queue: kept results (--keep-results) \
             are lost at a restart"
        );
    }
    if store.is_some() && !durable_extras && !settings.retry.is_empty() {
        tracing::warn!(
            "this store keeps no records beyond the job queue: with --retry, retry state and \
             dead letters are lost at a restart"
        );
    }

    let (to_core, mut from_conns) = mpsc::channel(8192);
    let (acks, mut from_store) = mpsc::unbounded_channel();
    let accept_tasks: Vec<JoinHandle<()>> = listeners
        .into_iter()
        .map(|(listener, tls)| accept::spawn(listener, tls, to_core.clone()))
        .collect();

    if let (false, Some(http)) = (http_listeners.is_empty(), &settings.http) {
        crate::http::spawn(http_listeners, to_core.clone(), config.limits, http)?;
    }
    let mut server = Server::new(config, now);
    server.set_acl(acl);
    let next_durable = extras
        .iter()
        .map(|e| e.key.saturating_add(1))
        .fold(next_durable_after(&restored, 1), u64::max);
    server.restore_with(restored, extras, now);
    let mut core = CoreTask {
        server,
        conns: Connections::new(),
        acks,
        settings,
        store,
        stop_requested: None,
        accepting: true,
        commit_stats: None,
        store_info: None,
        next_durable,
        heap_trim: HeapTrim::default(),
    };
    core.store_info = core.settings.store.as_ref().map(|backend| StoreInfo {
        backend: backend.queue_type(),
        jobs_taken_over: takeovers.is_some().then_some(0),
    });
    core.commit_stats = core.store.as_ref().map(|s| s.commit_stats());
    let (mut shutdown, mut hangups): (crate::transport::BoxFuture<'static, bool>, Hangups) =
        match stop_on {
            StopOn::Signals => (Box::pin(shutdown_signal()), hangup_signals()),
            StopOn::Handle(request) => (
                Box::pin(async move { request.await.unwrap_or(false) }),
                Hangups::default(),
            ),
        };
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    ready();
    let mut rounds: u32 = 0;
    // Outside the cooperative budget: the loop batches on its own, and a budget running
    // out in the middle of a round would leave sockets half-served until the next one.
    tokio::task::unconstrained(async {
        loop {
            rounds = rounds.wrapping_add(1);
            if rounds % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
            let timer = core
                .server
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let linger_end = core
                .conns
                .next_linger_end()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                graceful = &mut shutdown, if grace_deadline.is_none() => {
                    core.stop_requested = Some(graceful);
                }
                _ = next_hangup(&mut hangups) => core.hangup(),
                msg = from_conns.recv() => {
                    let Some(msg) = msg else { break };
                    core.handle(msg);
                    for _ in 0..BATCH {
                        match from_conns.try_recv() {
                            Ok(msg) => core.handle(msg),
                            Err(_) => break,
                        }
                    }
                }
                Some((id, result)) = from_store.recv() => {
                    let now = Instant::now();
                    core.server.persisted(id, result, now);
                    while let Ok((id, result)) = from_store.try_recv() {
                        core.server.persisted(id, result, now);
                    }
                }
                Some(adopted) = next_takeover(&mut takeovers) => {
                    // Persist events still queued hold ids the numbering must skip.
                    core.flush();
                    let records = adopted.into_records(core.next_durable);
                    core.count_taken_over(records.len());
                    core.next_durable = next_durable_after(&records, core.next_durable);
                    core.server.restore(records, Instant::now());
                }
                _ = sleep_until(timer), if timer.is_some() => {}
                _ = sleep_until(linger_end), if linger_end.is_some() => {}
                _ = sleep_until(grace_deadline), if grace_deadline.is_some() => {
                    tracing::warn!(
                        "shutdown grace period over with {} job(s) still running",
                        core.server.running_jobs()
                    );
                    break;
                }
                // Last: serviced after every branch anyway, so nothing above starves.
                _ = std::future::poll_fn(|cx| core.conns.poll_due(cx)) => {}
            }
            let now = Instant::now();
            core.conns.service(&mut core.server, now);
            core.conns.end_lingering(now);
            while let Ok((id, result)) = from_store.try_recv() {
                core.server.persisted(id, result, now);
            }
            if core.server.poll_timeout().is_some_and(|t| t <= now) {
                let (anchor, anchor_unix) = wall_anchor();
                core.server.set_wall_anchor(anchor, anchor_unix);
                core.server.handle_timeout(now);
            }
            core.flush();
            let held = core.server.jobs_held();
            if let Some(took) = core.heap_trim.observe(held) {
                tracing::debug!(
                    "{held} job(s) left of a larger backlog: free heap memory released in {took:?}"
                );
            }
            match core.stop_requested.take() {
                Some(false) => {
                    tracing::info!("admin shutdown: stopping now");
                    break;
                }
                Some(true) if grace_deadline.is_none() => {
                    tracing::info!(
                        "shutting down: no new connections; waiting for {} running job(s)",
                        core.server.running_jobs()
                    );
                    for task in &accept_tasks {
                        task.abort();
                    }
                    core.accepting = false;
                    grace_deadline = Some(grace_end(core.settings.shutdown_timeout));
                }
                _ => {}
            }
            if grace_deadline.is_some() && core.server.running_jobs() == 0 {
                break;
            }
        }
    })
    .await;
    core.flush();
    core.conns.close_all();
    // Let the last replies go out (bounded: a peer that does not read is not waited for).
    let _ = tokio::time::timeout(std::time::Duration::from_millis(50), async {
        while !core.conns.all_closed() {
            std::future::poll_fn(|cx| core.conns.poll_due(cx)).await;
            core.conns.service(&mut core.server, Instant::now());
        }
    })
    .await;
    if let Some(store) = core.store.take() {
        store.close();
    }
    if let Some(path) = pid_file {
        let _ = std::fs::remove_file(path);
    }
    // Dropping a listener stops it and removes its Unix socket file: done before returning,
    // since the process may exit without dropping the runtime's tasks.
    for task in accept_tasks {
        task.abort();
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The next batch of jobs taken over from another server, if the store shares its
/// database with others; pending forever otherwise.
async fn next_takeover(
    takeovers: &mut Option<crate::store::Takeovers>,
) -> Option<crate::store::Adopted> {
    match takeovers {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The first durable id past `records` and at least `floor`.
fn next_durable_after(records: &[gearman_core::server::JobRecord], floor: u64) -> u64 {
    records
        .iter()
        .map(|r| r.durable_id + 1)
        .fold(floor, u64::max)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl CoreTask {
    fn handle(&mut self, msg: ToCore) {
        let now = Instant::now();
        match msg {
            ToCore::Accepted(Accepted {
                stream,
                peer,
                identity,
                fd,
            }) => {
                if let Some(max) = self.settings.max_connections {
                    if self.conns.held() >= max {
                        if let Some(repeats) = CONNECTION_REFUSED.check() {
                            tracing::warn!(
                                "refused a connection from {peer}: {max} connections open \
                                 (--max-connections){}",
                                repeats_note(repeats)
                            );
                        }
                        let text = format!("server at its limit of {max} connections");
                        crate::transport::refuse::spawn_refusal(stream, "MAX_CONNECTIONS", text);
                        return;
                    }
                }
                let info = PeerInfo {
                    fd,
                    ip: peer.admin_address(),
                };
                let conn = self.server.accept_as(info, identity.clone(), now);
                tracing::debug!(?conn, %peer, %identity, "accepted");
                self.conns.add(conn, stream);
            }
            ToCore::Report(reply) => {
                let _ = reply.send(CoreReport {
                    snapshot: self.server.snapshot(),
                    stats: self.server.stats().clone(),
                    accepting: self.accepting,
                    store: self.commit_stats.as_ref().map(|s| s.report()),
                    extras: self.server.extras_gauges(),
                    store_info: self.store_info.clone(),
                });
            }
            ToCore::Extras(reply) => {
                let _ = reply.send(ExtrasList::of(&self.server));
            }
        }
    }

    /// Hands every connection's ready output to its writer and acts on events.
    fn flush(&mut self) {
        while let Some(conn) = self.server.poll_writable() {
            self.transmit(conn);
        }
        while let Some(event) = self.server.poll_event() {
            match event {
                ServerEvent::Close { conn, reason } => {
                    tracing::info!(?conn, "closing connection: {reason}");
                    self.conns.close(&mut self.server, conn);
                    self.server.handle_eof(conn, Instant::now());
                }
                ServerEvent::Persist(record) => match &self.store {
                    Some(store) => {
                        self.next_durable = self.next_durable.max(record.durable_id + 1);
                        let acks = self.acks.clone();
                        let id = record.durable_id;
                        store.insert(
                            record,
                            Box::new(move |result| {
                                let _ = acks.send((id, result));
                            }),
                        );
                    }
                    None => self.server.persisted(
                        record.durable_id,
                        Err("no store".into()),
                        Instant::now(),
                    ),
                },
                ServerEvent::Unpersist { durable_id } => {
                    if let Some(store) = &self.store {
                        store.remove(durable_id);
                    }
                }
                ServerEvent::PutExtra {
                    record,
                    acknowledge,
                } => {
                    self.next_durable = self.next_durable.max(record.key.saturating_add(1));
                    self.put_extra(record, acknowledge)
                }
                ServerEvent::DeleteExtra { kind, key } => {
                    if let Some(store) = &self.store {
                        store.delete_extra(kind, key);
                    }
                }
                ServerEvent::UnreadableRecord { kind, key } => tracing::warn!(
                    "stored {kind:?} record {key} cannot be read by this version (written by \
                     a newer one, or damaged): left in the store, unused"
                ),
                ServerEvent::Shutdown { graceful } => {
                    // A plain shutdown overrides a graceful one asked for before.
                    self.stop_requested = Some(graceful && self.stop_requested != Some(false));
                }
                ServerEvent::Refused {
                    conn,
                    identity,
                    permission,
                    function,
                } => tracing::warn!(
                    ?conn,
                    "refused: {permission} {:?} for {identity}",
                    String::from_utf8_lossy(&function)
                ),
                other => tracing::debug!(?other, "unhandled server event"),
            }
        }
    }

    /// Jobs taken over from another server's expired lease, for `/metrics`.
    fn count_taken_over(&mut self, jobs: usize) {
        if let Some(n) = self
            .store_info
            .as_mut()
            .and_then(|i| i.jobs_taken_over.as_mut())
        {
            *n += jobs as u64;
        }
    }

    /// Writes a record beyond the job queue; an acknowledged one is answered as an insert.
    fn put_extra(&mut self, record: gearman_core::server::ExtraRecord, acknowledge: bool) {
        let key = record.key;
        match &self.store {
            Some(store) => {
                let acks = self.acks.clone();
                let ack: Option<crate::store::Ack> = acknowledge.then(|| {
                    Box::new(move |result| {
                        let _ = acks.send((key, result));
                    }) as crate::store::Ack
                });
                store.put_extra(record, ack);
            }
            None if acknowledge => {
                self.server
                    .persisted(key, Err("no store".into()), Instant::now())
            }
            None => {}
        }
    }

    /// SIGHUP: reopens `--log-file` (logrotate), reads `--acl-file` again; a bad file
    /// keeps the rules in force.
    fn hangup(&mut self) {
        crate::logging::reopen();
        let Some(path) = &self.settings.security.acl_file else {
            tracing::info!("SIGHUP: no --acl-file to reload");
            return;
        };
        match acl::load(path) {
            Ok(acl) => {
                acl::log_in_force(path, &acl, true);
                self.server.set_acl(Some(acl));
            }
            Err(e) => tracing::error!("SIGHUP: keeping the previous ACL: {e}"),
        }
    }

    fn transmit(&mut self, conn: ConnId) {
        self.conns.transmit(&mut self.server, conn);
    }
}

fn write_pid_file(settings: &Settings) -> Result<Option<std::path::PathBuf>, StartError> {
    let Some(path) = &settings.pid_file else {
        return Ok(None);
    };
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| StartError(format!("cannot write pid file {}: {e}", path.display())))?;
    Ok(Some(path.clone()))
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map_err(|e| tracing::warn!("SIGHUP unavailable, no ACL reloads or log reopening: {e}"))
        .ok()
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangups {}

/// The next SIGHUP (never, where there are none).
async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        if signal.recv().await.is_some() {
            return;
        }
    }
    let _ = hangups;
    std::future::pending::<()>().await
}

/// SIGTERM or SIGINT: a graceful stop (`true`). The handlers are installed here, before
/// the server says it is ready, not when the future is first polled: a SIGTERM sent right
/// after the start (an init script's stop) must stop the server gracefully, not kill it.
fn shutdown_signal() -> impl std::future::Future<Output = bool> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        true
    }
}

/// When a graceful stop gives up on running jobs; a grace too long to add to the clock
/// (`--shutdown-timeout` near u64::MAX seconds) is a wait of a century, not a panic.
fn grace_end(grace: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(grace)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}
