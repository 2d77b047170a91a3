//! The HTTP service this repository ships.
//!
//! [`serve`] runs it on a listener you bind (tests bind `127.0.0.1:0`) until a shutdown
//! future completes; [`app`] is the router alone. Endpoints: `/health`, `/liveness`,
//! `/readiness` ([`health`]), `/version` ([`version`]), `/metrics` ([`metrics`]).
//! Configuration: [`config`]. The binary (`src/main.rs`) adds signals, logging and the
//! `healthcheck` subcommand.

pub mod cli;
pub mod config;
pub mod health;
pub mod healthcheck;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod shutdown;
pub mod version;

#[cfg(test)]
mod build_support;

use std::{future::Future, io, sync::Arc};

use axum::{
    Router,
    http::{StatusCode, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use tokio::{net::TcpListener, sync::oneshot};

pub use config::Config;
use health::Readiness;
use metrics::Metrics;
use version::BuildInfo;

/// What the handlers share. Cloning is cheap (two reference counts).
#[derive(Clone)]
pub struct AppState {
    /// The `/readiness` flag.
    pub readiness: Readiness,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Identity of this build.
    pub build: BuildInfo,
}

impl AppState {
    /// Fresh state for this build: not ready, no requests counted.
    pub fn new() -> Self {
        Self {
            readiness: Readiness::new(),
            metrics: Arc::new(Metrics::new()),
            build: BuildInfo::CURRENT,
        }
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

/// The router. Every route, and the 404 fallback, passes through [`observe::track`]
/// (metrics and the request log line), which never rejects. The health routes are
/// merged first; a layer that can fail a request (auth, rate limits, timeouts) belongs
/// on the other routes only, so probes keep answering.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .route("/version", get(version::handler))
        .route("/metrics", get(metrics::handler))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::track,
        ))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"not found"}"#,
    )
}

/// Serves [`app`] on `listener` until `shutdown` completes, then drains.
///
/// At `shutdown`: `/readiness` turns 503 at once, the listener closes, and requests in
/// flight get `config.shutdown_grace` to finish. Returns `Ok(())` when they all did, an
/// [`io::ErrorKind::TimedOut`] error when the grace period ran out first (the caller
/// exits non-zero), or the accept loop's error. `config.port`/`config.bind` are not
/// used: the listener is already bound.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let state = AppState::new();
    let router = app(state.clone());

    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    let readiness = state.readiness.clone();
    let signal = async move {
        shutdown.await;
        readiness.set_not_ready();
        tracing::info!(
            grace_secs = config.shutdown_grace.as_secs(),
            "draining: readiness is 503, finishing requests in flight"
        );
        let _ = draining_tx.send(());
    };
    let grace_elapsed = async move {
        match draining_rx.await {
            Ok(()) => tokio::time::sleep(config.shutdown_grace).await,
            // The server stopped without a shutdown signal: only its own result counts.
            Err(_) => std::future::pending().await,
        }
    };

    state.readiness.set_ready();
    let build = state.build;
    tracing::info!(%addr, git_sha = build.git_sha, version = build.version, built_at = build.built_at, "listening");

    tokio::select! {
        result = axum::serve(listener, router).with_graceful_shutdown(signal).into_future() => {
            result?;
            tracing::info!("stopped: all requests finished");
            Ok(())
        }
        () = grace_elapsed => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("shutdown grace period of {}s elapsed with connections still open", config.shutdown_grace.as_secs()),
        )),
    }
}
