//! An image already in the registry, held against a clean build of the SHA
//! its tag names. `ci-build` adopts an existing tag (pushes nothing) only
//! when its revision label is this SHA and both its binary label and the
//! `/api` it really holds hash to what the clean build produced; otherwise
//! it refuses, naming both. `verify-build` reads images the same way.

use std::path::Path;

use anyhow::bail;

use crate::build::{image, sha256};
use crate::model::digest::Digest;
use crate::model::repository::Repository;
use crate::model::sha::GitSha;

/// What a registry image says about itself (labels, layers), read by digest.
pub struct Found {
    /// `repo@sha256:…`: pulled and read by digest, never by tag.
    pub by_digest: String,
    pub revision: Option<String>,
    pub binary_label: Option<String>,
    pub layers: Vec<Digest>,
}

impl Found {
    pub fn top_layer(&self) -> Option<&Digest> {
        self.layers.last()
    }

    /// The sha256 of the `/api` the image really holds (copied out into `dir`).
    pub fn hash_api(&self, dir: &Path) -> anyhow::Result<String> {
        std::fs::create_dir_all(dir)?;
        let api = dir.join("api");
        image::extract_api(&self.by_digest, &api)?;
        let hash = sha256::of_file(&api)?;
        eprintln!("    {}: /api sha256 {hash}", self.by_digest);
        Ok(hash)
    }
}

/// Pull by digest, read the labels and layers.
pub fn examine(repository: &Repository, digest: &Digest) -> anyhow::Result<Found> {
    let by_digest = format!("{repository}@{digest}");
    image::pull(&by_digest)?;
    let inspected = image::inspect(&by_digest)?;
    eprintln!(
        "    {by_digest}: revision label {}, binary label {}",
        inspected.label(image::REVISION_LABEL).unwrap_or("(none)"),
        inspected.label(image::BINARY_LABEL).unwrap_or("(none)"),
    );
    Ok(Found {
        revision: inspected.label(image::REVISION_LABEL).map(str::to_owned),
        binary_label: inspected.label(image::BINARY_LABEL).map(str::to_owned),
        layers: inspected.layers,
        by_digest,
    })
}

/// Checked before compiling: an image that says it is another commit (or
/// says nothing) is refused at once.
pub fn check_revision(found: &Found, tag: &str, sha: &GitSha) -> anyhow::Result<()> {
    match found.revision.as_deref() {
        Some(revision) if revision == sha.as_str() => Ok(()),
        Some(other) => bail!(
            "{tag} exists ({}) but its revision label says it was built from {other}, not {sha}: it was not built from this commit (pushed by hand?); refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
            found.by_digest
        ),
        None => bail!(
            "{tag} exists ({}) but has no {} label, so nothing says which commit it is: refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
            found.by_digest,
            image::REVISION_LABEL
        ),
    }
}

/// Checked after the clean compile: the label and the bytes (`held`, the
/// sha256 of the image's `/api`) must both be what this commit builds.
pub fn check_binary(
    found: &Found,
    held: &str,
    tag: &str,
    sha: &GitSha,
    built: &str,
) -> anyhow::Result<()> {
    let label = found.binary_label.as_deref().unwrap_or("(none)");
    if held == built && label == built {
        return Ok(());
    }
    bail!(
        "{tag} exists ({}) but does not hold what {sha} builds: its /api has sha256 {held} (label {label}), a clean build of {sha} gives {built}; refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
        found.by_digest
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(revision: Option<&str>, label: Option<&str>) -> Found {
        Found {
            by_digest: format!("r/api@sha256:{}", "c".repeat(64)),
            revision: revision.map(str::to_owned),
            binary_label: label.map(str::to_owned),
            layers: Vec::new(),
        }
    }

    #[test]
    fn another_commits_image_is_refused_naming_both_shas() {
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let other = "b".repeat(40);
        let err = check_revision(&found(Some(&other), None), "r/api:aaa", &sha)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(&other) && err.contains(sha.as_str()), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert!(check_revision(&found(None, None), "t", &sha).is_err());
        assert!(check_revision(&found(Some(sha.as_str()), None), "t", &sha).is_ok());
    }

    #[test]
    fn label_and_content_must_both_be_the_clean_builds() {
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let (built, other) = ("1".repeat(64), "2".repeat(64));
        let labelled = found(Some(sha.as_str()), Some(&built));
        assert!(check_binary(&labelled, &built, "t", &sha, &built).is_ok());
        // A swapped /api under the original labels (FROM the real image).
        let err = check_binary(&labelled, &other, "t", &sha, &built)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(&built) && err.contains(&other), "{err}");
        let relabelled = found(Some(sha.as_str()), Some(&other));
        assert!(check_binary(&relabelled, &built, "t", &sha, &built).is_err());
    }
}
