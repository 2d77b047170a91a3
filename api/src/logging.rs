//! Logs: one JSON object per line on stdout, filtered by `API_LOG`.
//!
//! A request line looks like
//! `{"timestamp":"…","level":"INFO","message":"request","method":"GET","route":"/health","status":200,"latency_ms":0.041,"target":"api::request"}`.

use crate::config::LogFilter;

/// Installs the global subscriber. Call once, before serving.
pub fn init(filter: &LogFilter) {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter.to_env_filter())
        .with_writer(std::io::stdout)
        .init();
}
