//! Ctrl-C and SIGTERM. Installed for every task (`main`); what a signal
//! does depends on where it lands:
//!
//! - Every external command runs in a process group of its own
//!   (`support::cmd`), so a terminal's Ctrl-C (sent to the foreground
//!   group) reaches xtask alone; xtask decides what happens to the child.
//! - The first signal sets a flag. The command running when it arrived is
//!   ended (SIGTERM, then SIGKILL to its group) unless a release is in
//!   flight and the signal was Ctrl-C: then the step finishes (each call is
//!   bounded by its deadline), and the release restores the last verified
//!   one and records `interrupted`. Commands started after the signal (a
//!   cleanup, a restore) run to their deadline.
//! - A second signal ends the process at once (exit 130), after ending the
//!   children it started, except inside [`shielded`] (a restore): there it
//!   is noted and the restore finishes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

struct Flags {
    /// Any signal arrived (never cleared).
    any: Arc<AtomicBool>,
    /// SIGTERM arrived (never cleared).
    term: Arc<AtomicBool>,
    /// A signal arrived since the watcher last looked (cleared by it).
    pending: Arc<AtomicBool>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();
/// How many signals the watcher has counted.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// A release is in flight: a Ctrl-C lets the step in progress finish.
static RELEASE: AtomicBool = AtomicBool::new(false);
/// Depth of [`shielded`] sections.
static SHIELD: AtomicUsize = AtomicUsize::new(0);
/// Process groups of the children running now (ended on a second signal).
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Register the handlers (once; later calls do nothing). The handlers only
/// set flags; a watcher thread counts signals and ends the process on the
/// second one outside a [`shielded`] section.
pub fn install() -> anyhow::Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    let flags = Flags {
        any: Arc::new(AtomicBool::new(false)),
        term: Arc::new(AtomicBool::new(false)),
        pending: Arc::new(AtomicBool::new(false)),
    };
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, flags.any.clone())?;
        signal_hook::flag::register(signal, flags.pending.clone())?;
    }
    signal_hook::flag::register(SIGTERM, flags.term.clone())?;
    let pending = flags.pending.clone();
    if FLAGS.set(flags).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || watch(&pending))?;
    Ok(())
}

fn watch(pending: &AtomicBool) {
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if pending.swap(false, Ordering::SeqCst) {
            let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= 2 && SHIELD.load(Ordering::SeqCst) > 0 {
                eprintln!(
                    "interrupt noted: the last verified release is being restored first (each step is bounded); then this run ends"
                );
            }
        }
        if COUNT.load(Ordering::SeqCst) >= 2 && SHIELD.load(Ordering::SeqCst) == 0 {
            eprintln!("second interrupt: stopping now");
            let groups = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
            for group in groups {
                signal_group("KILL", group);
            }
            std::process::exit(130);
        }
    }
}

/// A release is in flight from here on: a Ctrl-C lets the step in progress
/// finish (the release then restores and records `interrupted`); SIGTERM
/// still ends a stuck call.
pub fn protect_steps() -> anyhow::Result<()> {
    install()?;
    RELEASE.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn requested() -> bool {
    FLAGS.get().is_some_and(|f| f.any.load(Ordering::SeqCst))
}

/// Whether SIGTERM arrived.
pub fn terminated() -> bool {
    FLAGS.get().is_some_and(|f| f.term.load(Ordering::SeqCst))
}

/// The signals counted so far: a command compares it with the count when
/// it started, so only a signal that arrived *during* it ends it.
pub fn count() -> u64 {
    // The watcher counts every 20 ms; a flag it has not seen yet counts too.
    let pending = FLAGS
        .get()
        .is_some_and(|f| f.pending.load(Ordering::SeqCst));
    COUNT.load(Ordering::SeqCst) + u64::from(pending)
}

/// Whether a command that started when [`count`] was `at_start` must be
/// ended now: a signal arrived since, outside a shielded section, and it
/// was SIGTERM or no release is in flight.
pub fn ends_call(at_start: u64) -> bool {
    count() > at_start
        && SHIELD.load(Ordering::SeqCst) == 0
        && (terminated() || !RELEASE.load(Ordering::SeqCst))
}

/// Run `f` so that no signal cuts it short: the calls in it run to their
/// own deadlines, and a second Ctrl-C is not fatal inside it. For the
/// restore of the last verified release and its ledger lines.
pub fn shielded<T>(f: impl FnOnce() -> T) -> T {
    struct Unshield;
    impl Drop for Unshield {
        fn drop(&mut self) {
            // Signals that arrived inside asked for what is happening
            // anyway (the run ends): they count as one, so the run records
            // and unlocks; one more signal after this ends it at once.
            if SHIELD.fetch_sub(1, Ordering::SeqCst) == 1 {
                let _ = COUNT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.min(1)));
            }
        }
    }
    SHIELD.fetch_add(1, Ordering::SeqCst);
    let _unshield = Unshield;
    f()
}

/// Note a child's process group while it runs.
pub fn track(group: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(group);
    }
}

pub fn untrack(group: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|g| *g != group);
    }
}

/// `kill -<signal> -- -<group>`: the whole group (a shell script's own
/// children too). The `kill` program, since this crate has no unsafe code.
pub fn signal_group(signal: &str, group: u32) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{group}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
