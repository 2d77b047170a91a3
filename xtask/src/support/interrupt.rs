//! Ctrl-C and SIGTERM during a deploy or rollback: the first one only sets a
//! flag, so the task finishes the step it is in, leaves the target on a
//! verified release, records `interrupted`, and releases its lock. A second
//! Ctrl-C ends the process at once.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

pub fn install() -> anyhow::Result<()> {
    let flag = FLAG
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it fires only when the flag is already set.
        signal_hook::flag::register_conditional_shutdown(signal, 130, flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(())
}

pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
