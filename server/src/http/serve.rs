//! The HTTP accept loop: axum's Router on hyper's HTTP/1 connections, with the bounds that
//! `axum::serve` (which takes no configuration) does not set.
//!
//! * hyper's header read timeout (`--http-read-timeout`, on hyper-util's tokio timer): a
//!   client that has not sent a request's headers within it, counted from its connection
//!   or, on a kept-alive one, from the last reply, is closed. A request being served
//!   (a job waiting for its result) is not timed: hyper reads no header meanwhile.
//! * a write timeout (`--http-write-timeout`, in [`super::write_stall`]): a reply that
//!   makes no progress for it (a client that stopped reading, its socket buffers full)
//!   ends the connection. Waiting for a job's result writes nothing, so is not timed.
//! * a cap on open connections (`--http-max-connections`), shared by every HTTP
//!   listener: at the cap the listeners stop accepting, and new connections wait in the
//!   kernel's listen backlog until one closes, rather than being refused (the same as the
//!   Gearman listeners out of file descriptors). A held connection lasts at most the read
//!   timeout while its client sends nothing, and the write timeout while it takes nothing
//!   of a reply; a request waiting for its job's result is not timed.
//!
//! A job request's body has its own deadline, in [`super::jobs`].

use super::write_stall::WriteStallTimeout;
use crate::log_limit::{repeats_note, LogLimiter};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

/// Failed accepts (out of descriptors, mostly) are logged once per interval.
static ACCEPT_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// How long the accept loop waits after a failed accept instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until the process ends, each connection holding one of
/// `slots` while open, its request headers bounded by `read_timeout` and its reply's
/// stalls by `write_timeout`.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    read_timeout: Duration,
    write_timeout: Duration,
    slots: Arc<Semaphore>,
) {
    // The client's address: the peer of its job's connection in admin `workers`.
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    loop {
        // Taken before accepting: at the cap, connections wait in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                if let Some(repeats) = ACCEPT_FAILED.check() {
                    tracing::warn!("HTTP accept failed: {e}{}", repeats_note(repeats));
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        std::future::poll_fn(|cx| Service::<SocketAddr>::poll_ready(&mut make, cx))
            .await
            .unwrap_or_else(|e| match e {});
        let service = make.call(peer).await.unwrap_or_else(|e| match e {});
        let stream = WriteStallTimeout::new(stream, write_timeout);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Header and write timeouts, resets and malformed requests: the client's doing.
                tracing::debug!("HTTP connection from {peer} ended: {e}");
            }
            drop(slot);
        });
    }
}
