//! What gearmand-rs holds beyond gearmand's jobs, over HTTP: `GET /api/schedules` (the
//! SUBMIT_JOB_SCHED schedules, as `show schedules`) and `GET /api/dead` (the dead letters
//! of `--retry`, as `show dead`), in JSON. The lists come from the core task on request
//! ([`ToCore::Extras`]), not with every report: they can be long.

use super::{text, HttpState};
use crate::core_channel::{ExtrasList, ToCore};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use gearman_core::server::Failure;
use tokio::sync::oneshot;

async fn extras(state: &HttpState) -> Option<ExtrasList> {
    let (tx, rx) = oneshot::channel();
    state.to_core.send(ToCore::Extras(tx)).await.ok()?;
    rx.await.ok()
}

fn json(body: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// `GET /api/schedules`: `{"schedules": [{handle, function, unique, schedule, next_unix,
/// fired, skipped}], "total": N}`; `next_unix` is null when no minute matches again; at
/// most [`LIST_LIMIT`](crate::core_channel::LIST_LIMIT) are listed, `total` counts them all.
pub(crate) async fn api_schedules(State(state): State<HttpState>) -> Response {
    let Some(list) = extras(&state).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let schedules: Vec<serde_json::Value> = list
        .schedules
        .iter()
        .map(|s| {
            serde_json::json!({
                "handle": text(&s.handle),
                "function": text(&s.function),
                "unique": text(&s.unique),
                "schedule": s.spec.to_string(),
                "next_unix": s.next_unix,
                "fired": s.fired,
                "skipped": s.skipped,
            })
        })
        .collect();
    json(serde_json::json!({ "schedules": schedules, "total": list.schedules_total }))
}

/// `GET /api/dead`: `{"dead": [{handle, function, unique, failures, failure, last_error,
/// died_unix}], "total": N}`; `failure` is `fail` or `exception`; at most [`LIST_LIMIT`](crate::core_channel::LIST_LIMIT)
/// are listed, `total` counts them all.
pub(crate) async fn api_dead(State(state): State<HttpState>) -> Response {
    let Some(list) = extras(&state).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let dead: Vec<serde_json::Value> = list
        .dead
        .iter()
        .map(|d| {
            let failure = match d.failure {
                Failure::Fail => "fail",
                Failure::Exception => "exception",
            };
            serde_json::json!({
                "handle": text(&d.handle),
                "function": text(&d.function),
                "unique": text(&d.unique),
                "failures": d.failures,
                "failure": failure,
                "last_error": text(&d.last_error),
                "died_unix": d.died_unix,
            })
        })
        .collect();
    json(serde_json::json!({ "dead": dead, "total": list.dead_total }))
}
