//! The version tag in the registry: the SHA's digest, tagged `X.Y.Z` in the
//! canonical repository by docker (pull by digest, tag, push), then read
//! back. Never a build; never a tag moved.

use anyhow::{Context, bail};

use crate::model::image::ImageRef;
use crate::model::version::Version;
use crate::registry;
use crate::support::docker::{self, docker};

/// What the registry held under the version tag before this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Promotion {
    /// The tag was pushed by this run (and read back: the SHA's digest).
    Pushed,
    /// The tag already named this digest: nothing was pushed.
    AlreadyThere,
    /// `--dry-run`: the tag is free and would be pushed.
    WouldPush,
}

/// `repo:X.Y.Z`.
pub fn version_tag(image: &ImageRef, version: &Version) -> String {
    format!("{}:{}", image.repository, version.number())
}

/// Tag `image` (the SHA's digest) as `X.Y.Z`, unless the tag exists: the
/// same digest is a no-op, another one is refused.
pub fn promote(image: &ImageRef, version: &Version, dry_run: bool) -> anyhow::Result<Promotion> {
    let number = version.number();
    let target = version_tag(image, version);
    match registry::digest_of(&image.repository, &number)? {
        Some(d) if d == image.digest => return Ok(Promotion::AlreadyThere),
        Some(d) => bail!(
            "{target} already names {d}, not {} (the image of {}): a version tag is never moved; release the new commit under a new version",
            image.digest,
            image.sha
        ),
        None => {}
    }
    let source = image.by_digest();
    if dry_run {
        for line in [
            format!("docker pull {source}"),
            format!("docker tag {source} {target}"),
            format!("docker push {target}"),
        ] {
            eprintln!("(dry run) $ {line}");
        }
        return Ok(Promotion::WouldPush);
    }
    docker()
        .args(["pull", &source])
        .run()
        .with_context(|| format!("pulling {source}"))?;
    check_revision(image)?;
    docker().args(["tag", &source, &target]).run()?;
    let pushed = docker::push(&target)?;
    let read_back = registry::digest_of(&image.repository, &number)?;
    if pushed != image.digest || read_back.as_ref() != Some(&image.digest) {
        let read_back = read_back.map_or_else(|| "nothing".to_owned(), |d| d.to_string());
        bail!(
            "pushed {target}, but docker pushed {pushed} and the registry now answers {read_back}, not the SHA's {}: this docker re-wrote the manifest, so {target} does NOT name the built bytes; delete that tag in the registry before anyone pulls it, and promote with a docker that pushes the manifest unchanged",
            image.digest
        );
    }
    Ok(Promotion::Pushed)
}

/// The pulled image says which commit it was built from (the
/// `org.opencontainers.image.revision` label ci-build sets): it must be
/// the SHA being released.
fn check_revision(image: &ImageRef) -> anyhow::Result<()> {
    let source = image.by_digest();
    let revision = docker()
        .args([
            "image",
            "inspect",
            "--format",
            "{{ index .Config.Labels \"org.opencontainers.image.revision\" }}",
            &source,
        ])
        .read()?;
    match revision.trim() {
        r if r == image.sha.as_str() => Ok(()),
        "" | "<no value>" => {
            eprintln!(
                "warning: {source} has no org.opencontainers.image.revision label: trusting the registry's tag {}",
                image.sha
            );
            Ok(())
        }
        other => bail!(
            "{source} was built from {other} (its revision label), not {}: the tag {} names another commit's image; rebuild it with `cargo xtask ci-build` on that commit",
            image.sha,
            image.sha
        ),
    }
}
