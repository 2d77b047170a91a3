//! The one middleware around every route: counts the request in the metrics and
//! writes its log line. It never rejects a request.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

use crate::{AppState, metrics::method_label};

/// Route label of requests no route matched (404s), so cardinality stays bounded.
pub const UNMATCHED: &str = "unmatched";

/// Records method, route template, status and latency of one request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(request.method());
    // A clone of `MatchedPath` is a reference-count bump, not a string copy.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);

    let response = {
        let _in_flight = state.metrics.in_flight();
        next.run(request).await
    };

    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe(method, route, status, elapsed);
    tracing::info!(
        target: "api::request",
        method,
        route,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        "request"
    );
    response
}
