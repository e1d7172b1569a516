//! gearmand's HTTP job protocol: `POST /FUNCTION` (or `PUT`) runs a job with the body as
//! its workload and answers its result, as gearmand's `-r http` does
//! (libgearman-server/plugins/protocol/http):
//!
//! * the function is the request target without its leading slashes (not URL-decoded);
//!   none gives `404` with an empty body;
//! * `X-Gearman-Unique: U` sets the unique (default `-`, coalescing on the workload);
//!   `X-Gearman-Background: true` submits in the background and answers at once;
//!   `X-Gearman-Priority: high|low` picks the priority;
//! * the reply is `200` with `X-Gearman-Job-Handle` and `X-Gearman-Command`
//!   (`WORK_COMPLETE`, `WORK_FAIL`, `WORK_EXCEPTION` or `JOB_CREATED`) and the result (with
//!   any WORK_DATA before it) as the body.
//!
//! Differences, on purpose: gearmand cuts the last byte off the handle of a WORK_FAIL and
//! off every WORK_DATA chunk, and runs jobs for `GET /FUNCTION` too (so a browser's
//! `/favicon.ico` becomes a job); here handles and data are whole, and GET serves the
//! monitoring pages only. A job the server refuses (e.g. its `maxqueue` is full) is `503`
//! with the server's reason.
//!
//! Each request is one client connection handed straight to the core task over an
//! in-memory pipe (no Gearman listener needed, TLS-only or Unix-only servers included),
//! with the HTTP client's address as its peer and the `anonymous` ACL identity; a caller
//! that hangs up drops it, as a Gearman client leaving would.
//!
//! The body has to arrive within `--http-read-timeout` of the headers: a client whose body
//! stalls gets `408` and is closed. The wait for the job's result is not timed (a job may
//! legitimately wait long for a worker).

use super::HttpState;
use crate::core_channel::ToCore;
use crate::transport::{Accepted, Peer, Stream};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use gearman_core::proto::{
    FrameDecoder, Packet as _, Priority, Request as Packet, Response as Reply,
};
use gearman_core::proto::{SubmitJob, SubmitMode};
use gearman_core::Limits;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest workload accepted over HTTP (the server's default packet limit).
const MAX_BODY: usize = Limits::DEFAULT_MAX_BODY;

fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
}

fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

fn answer(handle: &Bytes, command: &'static str, body: Bytes) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    if let Ok(h) = HeaderValue::from_bytes(handle) {
        headers.insert("X-Gearman-Job-Handle", h);
    }
    headers.insert("X-Gearman-Command", HeaderValue::from_static(command));
    response
}

/// Bytes buffered each way between an HTTP job and the core task.
const PIPE_BUFFER: usize = 64 * 1024;

pub(crate) async fn job(
    State(state): State<HttpState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    if method != Method::POST && method != Method::PUT {
        return if method == Method::GET || method == Method::HEAD {
            empty(StatusCode::NOT_FOUND)
        } else {
            empty(StatusCode::METHOD_NOT_ALLOWED)
        };
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("", |p| p.as_str())
        .trim_start_matches('/')
        .to_string();
    if target.is_empty() {
        return empty(StatusCode::NOT_FOUND);
    }
    let headers = request.headers().clone();
    let unique = headers
        .get("X-Gearman-Unique")
        .map_or(Bytes::from_static(b"-"), |v| {
            Bytes::copy_from_slice(v.as_bytes())
        });
    let priority = if header_is(&headers, "X-Gearman-Priority", "high") {
        Priority::High
    } else if header_is(&headers, "X-Gearman-Priority", "low") {
        Priority::Low
    } else {
        Priority::Normal
    };
    let background = header_is(&headers, "X-Gearman-Background", "true");
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY);
    let data = match tokio::time::timeout(state.read_timeout, body).await {
        Ok(Ok(data)) => data,
        Ok(Err(_)) => return empty(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => {
            tracing::debug!("HTTP job from {client}: no whole body within the read timeout");
            let mut response = empty(StatusCode::REQUEST_TIMEOUT);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let submit = SubmitJob {
        function: Bytes::from(target),
        unique,
        mode: if background {
            SubmitMode::Background(priority)
        } else {
            SubmitMode::Foreground(priority)
        },
        data,
    };
    match run(&state, client, submit, background).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!("HTTP job failed: {e}");
            (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response()
        }
    }
}

/// Submits on a connection of its own to the core task and waits for the job's end.
async fn run(
    state: &HttpState,
    client: SocketAddr,
    submit: SubmitJob,
    background: bool,
) -> std::io::Result<Response> {
    let (mut stream, core_side) = tokio::io::duplex(PIPE_BUFFER);
    let accepted = Accepted::new(Stream::Other(Box::new(core_side)), Peer::Http(client));
    if state
        .to_core
        .send(ToCore::Accepted(accepted))
        .await
        .is_err()
    {
        return Err(std::io::Error::other("the server is stopping"));
    }
    stream.write_all(&Packet::Submit(submit).to_bytes()).await?;
    let mut decoder = FrameDecoder::new(state.limits);
    let max_result = state.limits.max_body;
    let mut buf = BytesMut::with_capacity(4096);
    let mut handle = Bytes::new();
    let mut partial = BytesMut::new();
    loop {
        while let Some(frame) = decoder
            .decode(&mut buf)
            .map_err(|e| std::io::Error::other(format!("bad reply from the server: {e:?}")))?
        {
            let reply = Reply::parse(&frame)
                .map_err(|e| std::io::Error::other(format!("bad reply from the server: {e:?}")))?;
            match reply {
                Reply::JobCreated { handle: h } => {
                    if background {
                        return Ok(answer(&h, "JOB_CREATED", Bytes::new()));
                    }
                    handle = h;
                }
                Reply::WorkData(p) | Reply::WorkComplete(p)
                    if partial.len() + p.data.len() > max_result =>
                {
                    // The worker streams more than one packet may hold: not gathered
                    // without bound in the server's memory.
                    let why = format!(
                        "the job's result is larger than the server's packet limit of \
                         {max_result} bytes (--max-packet-size)\n"
                    );
                    return Ok((StatusCode::INSUFFICIENT_STORAGE, why).into_response());
                }
                Reply::WorkData(p) => partial.extend_from_slice(&p.data),
                Reply::WorkComplete(p) => {
                    partial.extend_from_slice(&p.data);
                    return Ok(answer(&handle, "WORK_COMPLETE", partial.freeze()));
                }
                Reply::WorkException(p) => {
                    return Ok(answer(&handle, "WORK_EXCEPTION", p.data));
                }
                Reply::WorkFail { .. } => return Ok(answer(&handle, "WORK_FAIL", Bytes::new())),
                Reply::Error { code, text } => {
                    let why = format!(
                        "{}: {}\n",
                        String::from_utf8_lossy(&code),
                        String::from_utf8_lossy(&text)
                    );
                    return Ok((StatusCode::SERVICE_UNAVAILABLE, why).into_response());
                }
                _ => {}
            }
        }
        buf.reserve(4096);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::other(
                "the server closed the job's connection",
            ));
        }
    }
}
