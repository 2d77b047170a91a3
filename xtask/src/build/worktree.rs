//! Where a clean build happens: a scratch directory of its own in the temp
//! dir, holding a `git worktree add --detach` checkout of the commit (never
//! the user's work tree), an empty cargo target dir, a cargo home holding
//! only verified crate archives, and the image's build context.
//!
//! Both are removed when dropped: on success, on error, and on the first
//! Ctrl-C or SIGTERM (the running child is killed, the error unwinds to
//! here). A second Ctrl-C exits at once and leaves them; the next build's
//! `git worktree prune` forgets the checkout, the temp dir keeps the files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;

use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;

/// A fresh, empty directory `<temp>/xtask-build-<short sha>-<pid>-<n>`,
/// removed with everything in it on drop.
pub struct Scratch {
    base: PathBuf,
}

impl Scratch {
    /// Where the next scratch dir would be: printed by `--dry-run`.
    pub fn path_for(sha: &GitSha) -> PathBuf {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        std::env::temp_dir().join(format!(
            "xtask-build-{}-{}-{n}",
            sha.short(),
            std::process::id()
        ))
    }

    /// Create it. Paths go into RUSTFLAGS, which cargo splits on spaces.
    pub fn create(base: PathBuf) -> anyhow::Result<Scratch> {
        if base.to_string_lossy().contains(char::is_whitespace) {
            anyhow::bail!(
                "the temp dir {} has whitespace in its path, which RUSTFLAGS cannot carry: set TMPDIR to a path without spaces",
                base.display()
            );
        }
        std::fs::create_dir_all(base.parent().unwrap_or(Path::new("/")))
            .with_context(|| format!("creating {}", base.display()))?;
        std::fs::create_dir(&base).with_context(|| {
            format!(
                "creating the build's scratch dir {} (it must not exist yet)",
                base.display()
            )
        })?;
        Ok(Scratch { base })
    }

    pub fn path(&self) -> &Path {
        &self.base
    }
}

impl Drop for Scratch {
    /// After a Ctrl-C, compiler processes of the killed cargo may still be
    /// writing for a moment: retry for up to 5 s before giving up.
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match std::fs::remove_dir_all(&self.base) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if std::time::Instant::now() >= deadline => {
                    eprintln!(
                        "warning: could not remove {}: {e}; delete it by hand",
                        self.base.display()
                    );
                    return;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }
}

/// The layout inside a scratch dir. One place, so the remapped paths, the
/// dry-run plan and the real run agree.
pub struct Layout {
    pub base: PathBuf,
}

impl Layout {
    /// The detached checkout of the commit.
    pub fn src(&self) -> PathBuf {
        self.base.join("src")
    }
    /// `CARGO_HOME` of the build: verified crate archives and the index cache.
    pub fn cargo_home(&self) -> PathBuf {
        self.base.join("cargo")
    }
    /// The empty target dir.
    pub fn target(&self) -> PathBuf {
        self.base.join("target")
    }
    /// `HOME` of the build: empty, so no dotfile (docker credentials, a
    /// cargo config) is found through it.
    pub fn home(&self) -> PathBuf {
        self.base.join("home")
    }
    /// The image's build context: the binary alone.
    pub fn context(&self) -> PathBuf {
        self.base.join("context")
    }
    /// Files pulled out of a registry image for comparison.
    pub fn pulled(&self) -> PathBuf {
        self.base.join("pulled")
    }
}

fn git(repo: &Path) -> Cmd {
    Cmd::new("git").arg("-C").arg(repo.display().to_string())
}

/// `git worktree add --detach <dir> <sha>`.
pub fn add_cmd(repo: &Path, dir: &Path, sha: &GitSha) -> Cmd {
    git(repo)
        .args(["worktree", "add", "--detach"])
        .arg(dir.display().to_string())
        .arg(sha.as_str())
}

/// A detached checkout of one commit, registered in the user's repository
/// only while it exists: `git worktree remove --force` on drop.
pub struct Worktree {
    repo: PathBuf,
    dir: PathBuf,
}

impl Worktree {
    pub fn add(repo: &Path, dir: &Path, sha: &GitSha) -> anyhow::Result<Worktree> {
        // Forget checkouts whose directories are gone (a build killed by a
        // second Ctrl-C). git marks one being created as locked, so this
        // never races another build's `worktree add`.
        let _ = git(repo).args(["worktree", "prune"]).output();
        let out = add_cmd(repo, dir, sha).output()?;
        if !out.status.success() {
            // It may have registered the dir before failing.
            let _ = std::fs::remove_dir_all(dir);
            let _ = git(repo).args(["worktree", "prune"]).output();
            anyhow::bail!(
                "could not check out {sha} into {} ({})",
                dir.display(),
                out.last_words()
            );
        }
        Ok(Worktree {
            repo: repo.to_path_buf(),
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let removed = git(&self.repo)
            .args(["worktree", "remove", "--force"])
            .arg(self.dir.display().to_string())
            .output();
        if !removed.is_ok_and(|o| o.status.success()) {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = git(&self.repo).args(["worktree", "prune"]).output();
        }
    }
}
