//! What git says about a version tag: annotated, on main, the commit it
//! names, the version before it and the commits in between.

use std::path::Path;

use anyhow::{Context, bail};

use crate::model::sha::GitSha;
use crate::model::version::Version;
use crate::support::cmd::Cmd;

fn git(root: &Path) -> Cmd {
    Cmd::new("git").arg("-C").arg(root.display().to_string())
}

/// The commit an annotated tag `vX.Y.Z` names. A missing tag and a
/// lightweight one are refused with the command that fixes them.
pub fn tagged_commit(root: &Path, version: &Version) -> anyhow::Result<GitSha> {
    let tag = version.tag();
    let kind = git(root)
        .args(["cat-file", "-t", &format!("refs/tags/{tag}")])
        .output()?;
    if !kind.status.success() {
        bail!(
            "there is no git tag {tag} here: tag the commit of main to release with `git tag -a {tag} -m '{tag}' <sha>` and push it (`git push origin {tag}`), or fetch tags (`git fetch --tags`)"
        );
    }
    match kind.stdout.trim() {
        "tag" => {}
        "commit" => bail!(
            "{tag} is a lightweight tag: a release needs an annotated one (it records who tagged what, and when); re-create it with `git tag -d {tag} && git tag -a {tag} -m '{tag}' <sha>` (in CI: the checkout step must fetch the tag object, see .github/workflows/release.yml)"
        ),
        other => bail!("{tag} is a tag of a {other}, not of a commit: tag a commit of main"),
    }
    let sha = git(root)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/tags/{tag}^{{commit}}"),
        ])
        .read()
        .with_context(|| format!("resolving the commit of {tag}"))?;
    sha.parse()
        .with_context(|| format!("git gave an unreadable commit for {tag}"))
}

/// The refs that stand for main, in order: `origin/main` (what a CI
/// checkout has: actions/checkout makes no local branch for a tag push),
/// then the local `main`.
pub const MAIN_REFS: [&str; 2] = ["refs/remotes/origin/main", "refs/heads/main"];

/// The first of [`MAIN_REFS`] that exists, with its short name.
pub fn main_ref(root: &Path) -> anyhow::Result<&'static str> {
    for r in MAIN_REFS {
        let out = git(root)
            .args(["rev-parse", "--verify", "-q", &format!("{r}^{{commit}}")])
            .output()?;
        if out.status.success() {
            return Ok(r);
        }
    }
    bail!(
        "neither origin/main nor main exists in {}: fetch main (`git fetch origin main`), releases are cut from commits of main only",
        root.display()
    )
}

/// Whether `sha` is `main_ref` or one of its ancestors.
pub fn is_on(root: &Path, sha: &GitSha, main_ref: &str) -> anyhow::Result<bool> {
    let out = git(root)
        .args(["merge-base", "--is-ancestor", sha.as_str(), main_ref])
        .output()?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => bail!(
            "`git merge-base --is-ancestor {sha} {main_ref}` failed: {}",
            out.last_words()
        ),
    }
}

/// The highest version tag below `version` whose commit is an ancestor of
/// `sha` (tags that do not parse as a version are ignored).
pub fn previous_version(
    root: &Path,
    version: &Version,
    sha: &GitSha,
) -> anyhow::Result<Option<Version>> {
    let tags = git(root)
        .args(["tag", "--list", "v*", "--merged", sha.as_str()])
        .read()?;
    Ok(tags
        .lines()
        .filter_map(|t| t.trim().parse::<Version>().ok())
        .filter(|v| v < version)
        .max())
}

/// One commit: its SHA and subject line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
}

/// The commits in `previous..sha` (all of `sha`'s history when there is
/// no previous version), newest first, merges left out.
pub fn commits_since(
    root: &Path,
    previous: Option<&Version>,
    sha: &GitSha,
) -> anyhow::Result<Vec<Commit>> {
    let range = match previous {
        Some(p) => format!("refs/tags/{}..{sha}", p.tag()),
        None => sha.to_string(),
    };
    let log = git(root)
        .args(["log", "--no-merges", "--format=%H %s", &range])
        .read()?;
    Ok(log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(sha, subject)| Commit {
            sha: sha.to_owned(),
            subject: subject.trim().to_owned(),
        })
        .collect())
}
