//! Processes, ports, temp dirs, PATH surgery and polling.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A directory removed (recursively) on drop, and in any case when the test
/// process exits. No external crate: the xtask guards its dependency list.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory under the system temp dir, `xtask-it-<label>-…`.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "xtask-it-{label}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        let path = path.canonicalize().expect("canonical temp dir");
        // Also at exit: a TempDir held in a `static` is never dropped.
        at_exit(&format!("rm -rf {}", sh_quote(&path.display().to_string())));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// For a value held in a `static` (never dropped). Every TempDir is
    /// already removed at exit; kept so callers can say so explicitly.
    pub fn remove_at_exit(&self) {
        at_exit(&format!(
            "rm -rf {}",
            sh_quote(&self.path.display().to_string())
        ));
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Quote for `sh`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run a shell line when this test process exits, however it exits (the
/// pipe to a detached `sh` closes): cleanup for values held in `static`s,
/// whose `Drop` never runs. Lines run in registration order.
pub fn at_exit(line: &str) {
    static REAPER: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let child = Command::new("sh")
            .args([
                "-c",
                r#"trap '' INT TERM HUP; script=$(cat); eval "$script""#,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Mutex::new(child.and_then(|mut c| c.stdin.take()))
    });
    let mut stdin = reaper.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(stdin) = stdin.as_mut() {
        let _ = writeln!(stdin, "{line}");
        let _ = stdin.flush();
    }
}

/// A loopback port nothing listens on right now (bound, read, released),
/// and never one this process handed out before: the kernel can give the
/// same free port to two binds in a row, and a stage's two environments
/// once got one port (refused as "both use port …").
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Call `probe` until it returns `Some`, or `within` has passed (then `None`).
/// Backs off from 20 ms to 250 ms between calls; never one fixed sleep.
pub fn poll_until<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// A temp dir holding symlinks `name → target`, to prepend to a child's PATH.
pub fn bin_dir(links: &[(&str, &Path)]) -> TempDir {
    let dir = TempDir::new("bin");
    for (name, target) in links {
        std::os::unix::fs::symlink(target, dir.join(name))
            .unwrap_or_else(|e| panic!("symlink {name} → {}: {e}", target.display()));
    }
    dir
}

/// A bin dir with only these tools (found on the current PATH), to use as a
/// child's WHOLE PATH: e.g. `tools_only(&["git", "cargo"])` has no docker.
pub fn tools_only(tools: &[&str]) -> TempDir {
    let found: Vec<(&str, PathBuf)> = tools
        .iter()
        .map(|t| {
            let path = which::which(t).unwrap_or_else(|e| panic!("{t} is not on PATH: {e}"));
            (*t, path)
        })
        .collect();
    let links: Vec<(&str, &Path)> = found.iter().map(|(n, p)| (*n, p.as_path())).collect();
    bin_dir(&links)
}

/// The current PATH without the directories that hold any of `programs`:
/// e.g. `path_without(&["cosign"])` makes "cosign not found" deterministic
/// on a machine that has a real cosign.
pub fn path_without(programs: &[&str]) -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !programs.iter().any(|p| dir.join(p).exists()))
        .collect();
    std::env::join_paths(kept).expect("PATH entries without ':'")
}

/// Prepend `dir` to `path`.
pub(crate) fn prepend_path(dir: &Path, path: &OsString) -> OsString {
    let mut all = vec![dir.to_path_buf()];
    all.extend(std::env::split_paths(path));
    std::env::join_paths(all).expect("PATH entries without ':'")
}
