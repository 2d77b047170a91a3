//! Health endpoints, mounted before anything that can reject a request.
//!
//! - `GET /health`: 200 `{"status":"ok"}` while the process serves.
//! - `GET /liveness`: 200 `{"status":"alive"}`; checks nothing but that the process answers.
//! - `GET /readiness`: 200 `{"status":"ready"}` while serving, 503 `{"status":"not ready"}`
//!   before serving starts and from the moment a shutdown signal arrives.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use crate::AppState;

/// The readiness flag: set when serving starts, cleared when draining starts.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serving: `/readiness` answers 200.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Draining (or not started): `/readiness` answers 503.
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether `/readiness` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The three routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/liveness", get(liveness))
        .route("/readiness", get(readiness))
}

fn json(status: StatusCode, body: &'static str) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn health() -> impl IntoResponse {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

async fn liveness() -> impl IntoResponse {
    json(StatusCode::OK, r#"{"status":"alive"}"#)
}

async fn readiness(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
    }
}
