//! Where a clean build happens: a scratch directory of its own in the temp
//! dir, holding the commit's files as git stores them (crate::build::checkout;
//! never the user's work tree, and nothing registered in the repository), an
//! empty cargo target dir, a cargo home holding only verified crate
//! archives, and the image's build context.
//!
//! The temp dir may be shared (`/tmp`): nothing in the build reads from its
//! parents (cargo runs from `/`, see crate::build::compile).
//!
//! It is removed when dropped: on success, on error, and on the first
//! Ctrl-C or SIGTERM (the running child is killed, the error unwinds to
//! here). A second Ctrl-C exits at once and leaves it in the temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;

use crate::model::sha::GitSha;

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
    /// The commit's files.
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
