//! One deploy or rollback per environment at a time: a lock file naming its
//! holder, removed on every exit path (Ctrl-C included: the signal only sets
//! a flag, the task unwinds).
//!
//! Taken atomically and never seen half-written: the holder is written to a
//! temp file in the same folder and fsynced, then hard-linked to the lock's
//! name. `link(2)` fails if the name exists (the `O_EXCL` of it), and a
//! reader sees either no lock or a complete one, never an empty file.
//!
//! A holder is named by pid, the pid's start time (field 22 of
//! `/proc/<pid>/stat`) and the boot id, so a pid reused by another process
//! after a hard kill, or a reboot, makes the lock stale, not held.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::model::environment::Environment;
use crate::support::output;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
    pub command: String,
    /// The pid's start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22). Absent in locks written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id` when the lock was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// What the holder of an existing lock is, seen from here.
#[derive(Debug, PartialEq, Eq)]
enum Liveness {
    /// Running on this host: never broken.
    Alive,
    /// Gone, and why we know: broken with `--force-unlock`.
    Stale(String),
    /// A lock without the start time (an older xtask wrote it) whose pid is
    /// alive: maybe the holder, maybe a process that reused its pid. Not
    /// broken by `--force-unlock`: a person checks and removes it.
    PidOnly,
    /// Another host: nothing can be checked from here.
    OtherHost,
}

impl Holder {
    fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            user: real_user(),
            host: hostname(),
            pid,
            since: output::now_rfc3339(),
            command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            pid_start: pid_start(pid),
            boot_id: boot_id(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}@{} (pid {}) since {} running `{}`",
            self.user, self.host, self.pid, self.since, self.command
        )
    }

    fn liveness(&self) -> Liveness {
        if self.host != hostname() {
            return Liveness::OtherHost;
        }
        if let (Some(then), Some(now)) = (&self.boot_id, boot_id())
            && *then != now
        {
            return Liveness::Stale("the machine has rebooted since".to_owned());
        }
        if !pid_alive(self.pid) {
            return Liveness::Stale(format!("pid {} is gone", self.pid));
        }
        match (self.pid_start, pid_start(self.pid)) {
            (None, _) => Liveness::PidOnly,
            (Some(then), Some(now)) if then != now => Liveness::Stale(format!(
                "pid {} is now another process (started at tick {now}, the holder at {then})",
                self.pid
            )),
            _ => Liveness::Alive,
        }
    }

    /// The same process as `self`: pid, host, and start time when recorded.
    fn same_process(&self, other: &Holder) -> bool {
        self.pid == other.pid && self.host == other.host && self.pid_start == other.pid_start
    }
}

pub struct Lock {
    path: PathBuf,
    holder: Holder,
}

impl Lock {
    pub fn acquire(state_dir: &Path, env: Environment, force_unlock: bool) -> anyhow::Result<Lock> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{env}.lock"));
        let me = Holder::me();
        for _ in 0..3 {
            if take(&path, &me)? {
                return Ok(Lock { path, holder: me });
            }
            let Some(found) = Found::read(&path)? else {
                // Released between our link and this read: try again.
                continue;
            };
            let shown = path.display();
            let holder = match found {
                Found::Holder(holder) => Some(holder),
                Found::Unreadable(what) if force_unlock => {
                    eprintln!(
                        "breaking the unreadable {env} lock at {shown} ({what}; --force-unlock)"
                    );
                    remove(&path)?;
                    continue;
                }
                Found::Unreadable(what) => bail!(
                    "the {env} lock at {shown} cannot be read ({what}), so its holder cannot be checked: if nothing else is deploying {env}, rerun with --force-unlock (or remove {shown})"
                ),
            };
            let who = holder.as_ref().map_or_else(String::new, Holder::describe);
            let liveness = holder.as_ref().map_or(Liveness::Alive, Holder::liveness);
            match (liveness, force_unlock) {
                (Liveness::Alive, _) => bail!(
                    "{env} is locked by {who}: wait for it to finish (a lock held by a live process is never broken)"
                ),
                (Liveness::Stale(why), false) => bail!(
                    "the {env} lock at {shown} is stale: its holder {who} is gone ({why}); if nothing else is deploying, rerun with --force-unlock"
                ),
                (Liveness::PidOnly, _) => bail!(
                    "{env} is locked by {who}: pid {pid} is alive, and this lock (written by an older xtask, without the pid's start time) cannot tell whether it is still the holder or a reused pid, so it is never broken by --force-unlock: if `ps -p {pid}` shows no deploy, remove {shown}",
                    pid = holder.as_ref().map_or(0, |h| h.pid),
                ),
                (Liveness::OtherHost, false) => bail!(
                    "{env} is locked by {who} on another host, which cannot be checked from here: make sure nothing is deploying on {host} (pid {pid}), then rerun with --force-unlock",
                    host = holder.as_ref().map_or("?", |h| h.host.as_str()),
                    pid = holder.as_ref().map_or(0, |h| h.pid),
                ),
                (Liveness::Stale(why), true) => {
                    eprintln!("breaking the stale {env} lock held by {who} ({why})");
                    remove(&path)?;
                }
                (Liveness::OtherHost, true) => {
                    eprintln!(
                        "breaking the {env} lock held on another host by {who} (--force-unlock)"
                    );
                    remove(&path)?;
                }
            }
        }
        bail!(
            "could not take the {env} lock at {}: it keeps changing hands; try again",
            path.display()
        )
    }
}

/// What a lock file holds, read as bytes: anything that is not a holder
/// xtask wrote (binary bytes, an empty or truncated file) is `Unreadable`,
/// reported with the way out, never a dead end.
enum Found {
    Holder(Holder),
    Unreadable(String),
}

impl Found {
    /// `Ok(None)`: there is no lock.
    fn read(path: &Path) -> anyhow::Result<Option<Found>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reading the lock {}: fix its permissions, or if nothing is deploying, remove it",
                        path.display()
                    )
                });
            }
        };
        Ok(Some(match serde_json::from_slice::<Holder>(&bytes) {
            Ok(holder) => Found::Holder(holder),
            Err(e) => Found::Unreadable(format!(
                "{} bytes that are not a lock xtask wrote: {e}",
                bytes.len()
            )),
        }))
    }
}

/// Who holds an environment's lock, seen from here (for `status` and
/// `history`; never breaks it).
#[derive(Debug, PartialEq, Eq)]
pub enum LockState {
    Free,
    /// A live holder, or one that cannot be checked from here.
    Held(String),
    /// Its holder is gone, or the file cannot be read: `--force-unlock`
    /// breaks it.
    Stale(String),
}

pub fn inspect(state_dir: &Path, env: Environment) -> LockState {
    let path = state_dir.join("locks").join(format!("{env}.lock"));
    match Found::read(&path) {
        Ok(None) => LockState::Free,
        Ok(Some(Found::Unreadable(what))) => {
            LockState::Stale(format!("it cannot be read ({what})"))
        }
        Ok(Some(Found::Holder(h))) => match h.liveness() {
            Liveness::Stale(why) => LockState::Stale(format!("{} is gone ({why})", h.describe())),
            _ => LockState::Held(h.describe()),
        },
        Err(e) => LockState::Held(format!("{e:#}")),
    }
}

/// Write `me` to a temp file beside `path`, fsync it, and hard-link it to
/// `path`. `Ok(false)` when a lock is already there.
fn take(path: &Path, me: &Holder) -> anyhow::Result<bool> {
    let dir = path.parent().context("the lock path has no folder")?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("lock"),
        me.pid,
        unique()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(serde_json::to_string(me)?.as_bytes())?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new name is durable once the folder is.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| {
            format!(
                "taking the lock {} (written to {}, then hard-linked: the state directory must allow hard links)",
                path.display(),
                tmp.display()
            )
        }),
    }
}

/// Distinct temp names for the threads of one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing the lock {}", path.display()))
        }
        _ => Ok(()),
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only remove it if it is still ours.
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
            .is_some_and(|h| h.same_process(&self.holder));
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The user this process really runs as: the real uid (`/proc/self/status`)
/// named by `/etc/passwd`, since `USER` may be unset (CI, containers) or
/// someone else's (`sudo` keeps it). Under sudo, who called it is added.
/// Falls back to `USER`, then to the bare uid.
fn real_user() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| real_uid(&s));
    let name = uid.and_then(|uid| {
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| user_name(&p, uid))
    });
    let name = match (name, uid) {
        (Some(name), _) => name,
        (None, uid) => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| uid.map(|u| format!("uid {u}")))
            .unwrap_or_else(|| "unknown".to_owned()),
    };
    match std::env::var("SUDO_USER") {
        Ok(by) if !by.is_empty() && by != name => format!("{name} (sudo from {by})"),
        _ => name,
    }
}

/// The real uid: the first number of the `Uid:` line of `/proc/<pid>/status`.
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The name of `uid` in an `/etc/passwd` text (`name:x:uid:gid:…`).
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks
/// since boot. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted after the last `)`.
fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_from_stat(&stat)
}

fn start_from_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: field 22 is the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn pid_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::cmd::Cmd;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn plant(state: &Path, holder: &impl serde::Serialize) {
        std::fs::create_dir_all(state.join("locks")).expect("dir");
        std::fs::write(
            state.join("locks/staging.lock"),
            serde_json::to_string(holder).expect("json"),
        )
        .expect("write");
    }

    fn refusal(state: &Path) -> String {
        Lock::acquire(state, Environment::Staging, false)
            .err()
            .expect("refused")
            .to_string()
    }

    #[test]
    fn second_holder_is_refused_by_name_and_released_on_drop() {
        let state = dir("live");
        let lock = Lock::acquire(&state, Environment::Staging, false).expect("first");
        let err = Lock::acquire(&state, Environment::Staging, true)
            .err()
            .expect("held")
            .to_string();
        assert!(
            err.contains("staging is locked by")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // Another environment is independent.
        drop(Lock::acquire(&state, Environment::Production, false).expect("other env"));
        drop(lock);
        drop(Lock::acquire(&state, Environment::Staging, false).expect("released"));
        let leftovers: Vec<_> = std::fs::read_dir(state.join("locks"))
            .expect("locks dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    }

    #[test]
    fn stale_lock_is_reported_then_broken_on_request() {
        let state = dir("stale");
        // A pid that cannot be alive: above the kernel's pid_max (2^22).
        plant(
            &state,
            &Holder {
                pid: 4_194_999,
                ..Holder::me()
            },
        );
        let err = refusal(&state);
        assert!(
            err.contains("stale")
                && err.contains("pid 4194999 is gone")
                && err.contains("--force-unlock"),
            "{err}"
        );
        drop(Lock::acquire(&state, Environment::Staging, true).expect("broken"));
    }

    /// A lock full of binary bytes used to fail with "stream did not
    /// contain valid UTF-8", and `--force-unlock` did not help.
    #[test]
    fn an_unreadable_lock_names_the_way_out_and_force_unlock_breaks_it() {
        for (name, bytes) in [
            ("binary", &b"\xff\xfe\x00garbage\x80"[..]),
            ("empty", &b""[..]),
            ("truncated", &b"{\"user\":\"al"[..]),
        ] {
            let state = dir(&format!("unreadable-{name}"));
            std::fs::create_dir_all(state.join("locks")).expect("dir");
            std::fs::write(state.join("locks/staging.lock"), bytes).expect("write");
            let err = refusal(&state);
            assert!(
                err.contains("cannot be read")
                    && err.contains("--force-unlock")
                    && err.contains("staging.lock")
                    && !err.contains("UTF-8"),
                "{name}: {err}"
            );
            assert!(matches!(
                inspect(&state, Environment::Staging),
                LockState::Stale(_)
            ));
            drop(Lock::acquire(&state, Environment::Staging, true).expect("broken"));
            assert_eq!(inspect(&state, Environment::Staging), LockState::Free);
        }
    }

    #[test]
    fn a_reused_pid_is_stale_not_a_holder() {
        let state = dir("reused");
        // This very process, as if the lock had been taken by an earlier
        // process that had the same pid: another start time.
        let me = Holder::me();
        let start = me.pid_start.expect("this process's start time");
        plant(
            &state,
            &Holder {
                pid_start: Some(start - 1),
                ..me.clone()
            },
        );
        let err = refusal(&state);
        assert!(
            err.contains("stale")
                && err.contains(&format!("pid {} is now another process", me.pid))
                && err.contains("--force-unlock"),
            "{err}"
        );
        drop(Lock::acquire(&state, Environment::Staging, true).expect("broken"));

        // After a reboot the same pid and start time mean nothing either.
        plant(
            &state,
            &Holder {
                boot_id: Some("00000000-0000-0000-0000-000000000000".to_owned()),
                ..me
            },
        );
        assert!(refusal(&state).contains("rebooted"));
    }

    #[test]
    fn another_hosts_lock_names_the_host_and_the_way_out() {
        let state = dir("other-host");
        plant(
            &state,
            &Holder {
                host: "ci-runner-7".to_owned(),
                pid: 4242,
                ..Holder::me()
            },
        );
        let err = refusal(&state);
        assert!(
            err.contains("another host")
                && err.contains("make sure nothing is deploying on ci-runner-7 (pid 4242)")
                && err.contains("--force-unlock"),
            "{err}"
        );
        drop(Lock::acquire(&state, Environment::Staging, true).expect("broken on request"));
    }

    #[test]
    fn an_old_lock_without_start_time_is_read_and_described() {
        let state = dir("old-format");
        // The shape written before pid_start and boot_id existed, naming a
        // live process (this one).
        plant(
            &state,
            &serde_json::json!({
                "user": "alice", "host": hostname(), "pid": std::process::id(),
                "since": "2026-11-23T11:35:15Z", "command": "deploy x --env staging",
            }),
        );
        let err = refusal(&state);
        assert!(
            err.contains("alice@")
                && err.contains("without the pid's start time")
                && err.contains(&format!("ps -p {}", std::process::id())),
            "{err}"
        );
        let forced = Lock::acquire(&state, Environment::Staging, true)
            .err()
            .expect("not broken by the flag")
            .to_string();
        assert!(
            forced.contains("never broken by --force-unlock"),
            "{forced}"
        );
    }

    /// Readers poll the lock while threads take and release it: a lock file
    /// is either absent or a complete holder, never empty or half-written.
    #[test]
    fn a_reader_never_sees_an_empty_lock() {
        let state = dir("race");
        std::fs::create_dir_all(state.join("locks")).expect("dir");
        let path = state.join("locks/staging.lock");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (taken, seen) = std::thread::scope(|s| {
            let takers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut taken = 0;
                        for _ in 0..300 {
                            if let Ok(lock) = Lock::acquire(&state, Environment::Staging, false) {
                                taken += 1;
                                drop(lock);
                            }
                        }
                        taken
                    })
                })
                .collect();
            let reader = s.spawn(|| {
                let mut seen = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(text) = std::fs::read_to_string(&path) {
                        let holder: Holder = serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("a reader saw {text:?}: {e}"));
                        assert_eq!(holder.pid, std::process::id());
                        seen += 1;
                    }
                }
                seen
            });
            let taken: usize = takers.into_iter().map(|t| t.join().expect("taker")).sum();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (taken, reader.join().expect("reader"))
        });
        assert!(taken > 0 && seen > 0, "taken {taken}, seen {seen}");
    }

    #[test]
    fn the_holder_is_the_real_user_and_host() {
        let me = Holder::me();
        let name = Cmd::new("id").arg("-run").read().expect("id -run");
        assert!(me.user.starts_with(&name), "{} vs {name}", me.user);
        assert_eq!(me.host, hostname());
        assert_eq!(
            real_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n"),
            Some(1000),
            "the real uid, not the effective one"
        );
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbuild:x:1000:1000::/home/build:/bin/sh\n";
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("build"));
        assert_eq!(user_name(passwd, 4242), None);
    }

    #[test]
    fn start_time_is_field_22_even_with_a_tricky_command_name() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_from_stat(stat), Some(987_654));
        assert!(pid_start(std::process::id()).is_some());
    }
}
