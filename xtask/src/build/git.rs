//! What git says about the commit being built.

use std::path::Path;

use anyhow::bail;

use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;

pub struct Head {
    pub sha: GitSha,
    /// `None` for a detached HEAD outside CI.
    pub branch: Option<String>,
}

fn git(root: &Path) -> Cmd {
    Cmd::new("git").arg("-C").arg(root.display().to_string())
}

/// HEAD of a clean tree. A dirty tree is refused, for the user's sake (what
/// they see is not what would ship); the build itself reads only the commit.
pub fn clean_head(root: &Path) -> anyhow::Result<Head> {
    let inside = git(root)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output()?;
    if !inside.status.success() {
        bail!(
            "{} is not a git repository (git says: {}): images are tagged by commit, so build from a git checkout",
            root.display(),
            inside.last_words()
        );
    }
    let sha = git(root)
        .args(["rev-parse", "--verify", "-q", "HEAD^{commit}"])
        .output()?;
    if !sha.status.success() {
        bail!(
            "{} has no commit yet: commit your work, then build",
            root.display()
        );
    }
    let sha: GitSha = sha.stdout.trim().parse()?;
    let dirty = git(root)
        .args(["status", "--porcelain", "--untracked-files=normal"])
        .read()?;
    if !dirty.is_empty() {
        let count = dirty.lines().count();
        let first = dirty.lines().next().unwrap_or_default().trim();
        bail!(
            "the working tree has {count} uncommitted change(s) (first: `{first}`): commit or stash them, an image tag must describe exactly the committed bytes"
        );
    }
    Ok(Head {
        sha,
        branch: branch(root)?,
    })
}

/// Whether this clone has the commit (`git cat-file -e <sha>^{commit}`).
pub fn has_commit(root: &Path, sha: &GitSha) -> anyhow::Result<bool> {
    let out = git(root)
        .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .output()?;
    Ok(out.status.success())
}

/// The commit's committer time, seconds since the epoch: its SOURCE_DATE_EPOCH.
pub fn commit_time(root: &Path, sha: &GitSha) -> anyhow::Result<i64> {
    let text = git(root)
        .args(["show", "-s", "--format=%ct", sha.as_str()])
        .read()?;
    text.parse()
        .map_err(|_| anyhow::anyhow!("git gave an unreadable commit time `{text}` for {sha}"))
}

/// A file as committed (`git show <sha>:<path>`), `None` when the commit has no such file.
pub fn file_at(root: &Path, sha: &GitSha, path: &str) -> anyhow::Result<Option<String>> {
    let out = git(root)
        .args(["show", &format!("{sha}:{path}")])
        .output()?;
    Ok(out.status.success().then_some(out.stdout))
}

/// Files git was told not to look at (`git update-index --assume-unchanged`
/// or `--skip-worktree`): `git status` cannot see their edits, so a build
/// from the work tree would ship them unseen. The build uses the commit.
pub fn hidden_from_status(root: &Path) -> anyhow::Result<Vec<String>> {
    let listed = git(root).args(["ls-files", "-v"]).read()?;
    Ok(listed
        .lines()
        .filter_map(|l| {
            let (tag, path) = l.split_once(' ')?;
            let hidden = tag == "S" || tag.chars().all(|c| c.is_ascii_lowercase());
            hidden.then(|| path.to_owned())
        })
        .collect())
}

/// In CI (`CI` set) the branch GitHub names in `GITHUB_REF_NAME`, else git's.
fn branch(root: &Path) -> anyhow::Result<Option<String>> {
    if std::env::var_os("CI").is_some()
        && let Ok(name) = std::env::var("GITHUB_REF_NAME")
        && !name.is_empty()
    {
        return Ok(Some(name));
    }
    let out = git(root)
        .args(["symbolic-ref", "--short", "-q", "HEAD"])
        .output()?;
    Ok(out.status.success().then(|| out.stdout.trim().to_owned()))
}

/// Who is acting: `GITHUB_ACTOR` in CI, else git's user, else the login name.
pub fn actor(root: &Path) -> String {
    if let Ok(actor) = std::env::var("GITHUB_ACTOR")
        && !actor.is_empty()
    {
        return format!("github:{actor}");
    }
    let configured = git(root)
        .args(["config", "user.email"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout.trim().to_owned())
        .filter(|s| !s.is_empty());
    configured
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
