//! Tags, pushes, and the registry's answer read back. Nothing is deployed
//! from a tag the registry does not serve as pushed.

use anyhow::{Context, bail};

use crate::build::image::PLATFORM;
use crate::model::digest::Digest;
use crate::model::image::{full_tag, short_tag};
use crate::model::repository::Repository;
use crate::model::sha::GitSha;
use crate::registry;
use crate::support::docker::{self, docker};
use crate::support::step::Steps;

/// The two tags of a SHA: `repo:<40 hex>` and `repo:<12 hex>`.
pub struct Tags {
    pub full: String,
    pub short: String,
}

impl Tags {
    pub fn new(repository: &Repository, sha: &GitSha) -> Tags {
        Tags {
            full: full_tag(repository, sha),
            short: short_tag(repository, sha),
        }
    }

    /// The commands a push runs, for `--dry-run`.
    pub fn commands(&self, image: &str) -> Vec<String> {
        vec![
            format!("docker tag {image} {}", self.full),
            format!("docker tag {image} {}", self.short),
            format!("docker push {}", self.full),
            format!("docker push {}", self.short),
        ]
    }
}

/// Tag the built image with both tags, push both, and read both back.
pub fn push(
    image_id: &str,
    tags: &Tags,
    repository: &Repository,
    sha: &GitSha,
    steps: &mut Steps,
) -> anyhow::Result<Digest> {
    for tag in [&tags.full, &tags.short] {
        docker().args(["tag", image_id, tag]).run()?;
    }
    let pushed = steps.run("push both tags", || {
        let full = docker::push(&tags.full)?;
        let short = docker::push(&tags.short).with_context(|| {
            format!("{} was pushed but {} was not: run ci-build again to complete it", tags.full, tags.short)
        })?;
        if full != short {
            bail!("the two tags were pushed with different digests ({full} and {short}): push again with --force");
        }
        Ok(full)
    })?;
    steps.run("read both tags back from the registry", || {
        for reference in [sha.as_str(), sha.short()] {
            match registry::digest_of(repository, reference)? {
                Some(d) if d == pushed => {}
                Some(d) => bail!(
                    "the registry serves {repository}:{reference} as {d}, but docker pushed {pushed}: something rewrote the tag; do not deploy it, investigate the registry"
                ),
                None => bail!(
                    "the registry has no {repository}:{reference} right after the push of {pushed}: check the registry's storage and push again"
                ),
            }
        }
        eprintln!("    registry agrees: both tags → {pushed}");
        Ok(())
    })?;
    Ok(pushed)
}

/// The full tag exists (and was adopted): the short tag must name the same
/// digest. A push that failed midway left it missing: push it from the full
/// tag's digest (no rebuild, the bytes are the registry's). One pointing
/// elsewhere was moved: refuse, never overwrite.
pub fn complete_short_tag(
    tags: &Tags,
    repository: &Repository,
    sha: &GitSha,
    digest: &Digest,
) -> anyhow::Result<()> {
    match registry::digest_of(repository, sha.short())? {
        Some(short) if short == *digest => Ok(()),
        Some(other) => bail!(
            "{} points at {other}, but {} is {digest}: the short tag was moved; investigate before anything deploys it",
            tags.short,
            tags.full
        ),
        None => {
            eprintln!(
                "{} is missing (an earlier push stopped midway): pushing it from {digest}",
                tags.short
            );
            let by_digest = format!("{repository}@{digest}");
            docker()
                .args(["pull", "--platform", PLATFORM, &by_digest])
                .run()?;
            docker().args(["tag", &by_digest, &tags.short]).run()?;
            let pushed = docker::push(&tags.short)?;
            match registry::digest_of(repository, sha.short())? {
                Some(d) if d == *digest && pushed == *digest => Ok(()),
                other => bail!(
                    "re-pushing {} gave {}, not {digest}: investigate the registry",
                    tags.short,
                    other.map_or_else(|| "nothing".to_owned(), |d| d.to_string())
                ),
            }
        }
    }
}
