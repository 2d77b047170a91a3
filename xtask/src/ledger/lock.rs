//! One deploy or rollback per environment at a time: a lock file created
//! atomically (`O_CREAT|O_EXCL`), naming its holder, removed on every exit
//! path (Ctrl-C included: the signal only sets a flag, the task unwinds).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::model::environment::Environment;
use crate::support::output;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
    pub command: String,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            user: std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
            host: hostname(),
            pid: std::process::id(),
            since: output::now_rfc3339(),
            command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}@{} (pid {}) since {} running `{}`",
            self.user, self.host, self.pid, self.since, self.command
        )
    }
}

pub struct Lock {
    path: PathBuf,
}

impl Lock {
    pub fn acquire(state_dir: &Path, env: Environment, force_unlock: bool) -> anyhow::Result<Lock> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{env}.lock"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let me = serde_json::to_string(&Holder::me())?;
                    file.write_all(me.as_bytes())?;
                    file.sync_all()?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            let holder: Option<Holder> = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let stale = match &holder {
                Some(h) if h.host == hostname() => !pid_alive(h.pid),
                Some(_) => false, // another host: we cannot tell
                None => true,     // unreadable: died while writing it
            };
            let who = holder
                .as_ref()
                .map_or_else(|| "an unreadable holder".to_owned(), Holder::describe);
            match (stale, force_unlock) {
                (true, true) => {
                    eprintln!("breaking the stale {env} lock held by {who}");
                    std::fs::remove_file(&path)?;
                }
                (false, true) if holder.as_ref().is_some_and(|h| h.host != hostname()) => {
                    eprintln!(
                        "breaking the {env} lock held on another host by {who} (--force-unlock)"
                    );
                    std::fs::remove_file(&path)?;
                }
                (true, false) => bail!(
                    "the {env} lock at {} is stale: its holder {who} is gone; if nothing else is deploying, rerun with --force-unlock",
                    path.display()
                ),
                (false, _) => bail!(
                    "{env} is locked by {who}: wait for it to finish (a lock held by a live process is never broken)"
                ),
            }
        }
        bail!("could not take the {env} lock at {}", path.display())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only remove it if it is still ours.
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
            .is_some_and(|h| h.pid == std::process::id() && h.host == hostname());
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

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
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
    }

    #[test]
    fn stale_lock_is_reported_then_broken_on_request() {
        let state = dir("stale");
        std::fs::create_dir_all(state.join("locks")).expect("dir");
        // A pid that cannot be alive: above the kernel's pid_max (2^22).
        let dead = Holder {
            pid: 4_194_999,
            host: hostname(),
            ..Holder::me()
        };
        std::fs::write(
            state.join("locks/staging.lock"),
            serde_json::to_string(&dead).expect("json"),
        )
        .expect("write");
        let err = Lock::acquire(&state, Environment::Staging, false)
            .err()
            .expect("stale")
            .to_string();
        assert!(
            err.contains("stale") && err.contains("--force-unlock"),
            "{err}"
        );
        drop(Lock::acquire(&state, Environment::Staging, true).expect("broken"));
    }
}
