//! `GET /`: the live dashboard, one HTML page with its script and styles inline, embedded
//! in the binary (works offline: no CDN). It polls `GET /api/status` and draws its charts
//! as SVG by hand.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("dashboard.html");

pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}
