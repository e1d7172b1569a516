//! The HTTP listener (`--http-port`): gearmand's HTTP job protocol (`POST /FUNCTION`),
//! Prometheus metrics, health checks, a JSON status and a live dashboard.
//!
//! Built on axum (hyper underneath, tokio's HTTP stack: maintained, and already on the
//! runtime the server uses) rather than hand-written HTTP. Data comes from the core task:
//! each request sends it a [`ToCore::Report`] and gets a [`CoreReport`] back, so the job
//! state stays single-owner. A sampler keeps a few minutes of totals for the charts.
//! Connections are served by the accept loop in `serve`, which bounds how long a client
//! may take to send a request or to take its reply, and how many connections are open at
//! once.

mod dashboard;
mod extras;
mod jobs;
mod metrics;
mod serve;
mod store_status;
mod write_stall;

use crate::core_channel::{CoreReport, ToCore};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Totals at one moment, for the dashboard's charts.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    /// Milliseconds since the Unix epoch.
    t: u64,
    queued: u64,
    running: u64,
    workers: u64,
    submitted: u64,
    completed: u64,
    failed: u64,
}

/// Samples kept: one per [`SAMPLE_EVERY`], ten minutes.
const HISTORY: usize = 600;
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) struct HttpState {
    to_core: mpsc::Sender<ToCore>,
    history: Arc<Mutex<VecDeque<Sample>>>,
    /// The server's packet limits (`--max-packet-size`): a job's reply, and its result
    /// gathered from WORK_DATA, are bounded by them too.
    limits: gearman_core::Limits,
    /// `--http-read-timeout`: the deadline for a job request's body.
    read_timeout: Duration,
}

impl HttpState {
    async fn report(&self) -> Option<CoreReport> {
        let (tx, rx) = oneshot::channel();
        self.to_core.send(ToCore::Report(tx)).await.ok()?;
        rx.await.ok()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sample(report: &CoreReport) -> Sample {
    let f = &report.snapshot.functions;
    let mut totals = report.stats.other.clone();
    for (_, s) in report.stats.functions() {
        totals.add(s);
    }
    Sample {
        t: unix_ms(),
        queued: f.iter().map(|g| g.total - g.running).sum(),
        running: f.iter().map(|g| g.running).sum(),
        workers: report.snapshot.workers.len() as u64,
        submitted: totals.submitted,
        completed: totals.completed,
        failed: totals.failed + totals.exceptions,
    }
}

/// Serves HTTP on `listeners` until the process ends, with the read and write timeouts
/// and the connection cap of `settings`.
pub(crate) fn spawn(
    listeners: Vec<std::net::TcpListener>,
    to_core: mpsc::Sender<ToCore>,
    limits: gearman_core::Limits,
    settings: &crate::cli::HttpSettings,
) -> Result<(), crate::StartError> {
    let state = HttpState {
        to_core,
        history: Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY))),
        limits,
        read_timeout: settings.read_timeout,
    };
    let sampler = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let Some(report) = sampler.report().await else {
                return;
            };
            let mut h = sampler.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(sample(&report));
        }
    });
    // Any method but GET/HEAD on these paths is a job, as on every other path (gearmand's
    // `POST /metrics` runs function `metrics`).
    let app = Router::new()
        .route("/", get(dashboard::page).fallback(jobs::job))
        .route("/metrics", get(metrics::metrics).fallback(jobs::job))
        .route("/healthz", get(healthz).fallback(jobs::job))
        .route("/readyz", get(readyz).fallback(jobs::job))
        .route("/api/status", get(api_status).fallback(jobs::job))
        .route(
            "/api/schedules",
            get(extras::api_schedules).fallback(jobs::job),
        )
        .route("/api/dead", get(extras::api_dead).fallback(jobs::job))
        .fallback(jobs::job)
        .with_state(state);
    // One cap for every HTTP listener.
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    for listener in listeners {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| crate::StartError(format!("cannot register the HTTP listener: {e}")))?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("HTTP listening on {addr}");
        }
        tokio::spawn(serve::serve(
            listener,
            app.clone(),
            settings.read_timeout,
            settings.write_timeout,
            slots.clone(),
        ));
    }
    Ok(())
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 while accepting connections with a writable store (or none); 503 saying why not.
async fn readyz(State(state): State<HttpState>) -> Response {
    let Some(report) = state.report().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response();
    };
    if !report.accepting {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if report.store.as_ref().is_some_and(|s| s.last_failed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the durable queue's last commit failed\n",
        )
            .into_response();
    }
    "ready\n".into_response()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The dashboard's data: functions, workers, totals and the recent history.
async fn api_status(State(state): State<HttpState>) -> Response {
    let Some(report) = state.report().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let functions: Vec<serde_json::Value> = report
        .snapshot
        .functions
        .iter()
        .map(|f| {
            let s = report.stats.function_named(&f.name).cloned().unwrap_or_default();
            serde_json::json!({
                "name": text(&f.name),
                "total": f.total,
                "running": f.running,
                "queued": f.total - f.running,
                "queued_by_priority": {"high": f.queued[0], "normal": f.queued[1], "low": f.queued[2]},
                "workers": f.workers,
                "submitted": s.submitted,
                "completed": s.completed,
                "failed": s.failed,
                "exceptions": s.exceptions,
            })
        })
        .collect();
    let workers: Vec<serde_json::Value> = report
        .snapshot
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "fd": w.fd,
                "ip": w.ip,
                "client_id": text(&w.client_id),
                "functions": w.functions.iter().map(|f| text(f)).collect::<Vec<_>>(),
                "running": w.running,
            })
        })
        .collect();
    let history: Vec<Sample> = state
        .history
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "accepting": report.accepting,
        "connections": report.snapshot.connections,
        "jobs": report.snapshot.jobs,
        "now": sample(&report),
        "functions": functions,
        "workers": workers,
        "history": history,
        "store": store_status::json(&report),
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}
