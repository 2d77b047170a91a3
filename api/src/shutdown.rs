//! The shutdown signal: SIGTERM (orchestrators) or SIGINT (ctrl-c), whichever first.

use std::{future::Future, io};

/// Installs the handlers now, so a signal that arrives while the server is still
/// starting is queued rather than killing the process, and returns a future that
/// completes at the first SIGTERM or SIGINT.
#[cfg(unix)]
pub fn signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown signal received");
    })
}

/// Ctrl-c only where there are no Unix signals.
#[cfg(not(unix))]
pub fn signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!(signal = "ctrl-c", "shutdown signal received");
        } else {
            std::future::pending::<()>().await;
        }
    })
}
