//! `ImageRef`: one built image, named three ways that must agree.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;

use crate::model::digest::Digest;
use crate::model::repository::Repository;
use crate::model::sha::GitSha;

/// Repository + commit + manifest digest. Deploys use [`ImageRef::pinned`]
/// (`repo:sha@sha256:…`): the engine resolves the digest, so a moved tag
/// cannot change what runs, and the tag still says which commit it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: Repository,
    pub sha: GitSha,
    pub digest: Digest,
}

impl ImageRef {
    pub fn pinned(&self) -> String {
        format!("{}:{}@{}", self.repository, self.sha, self.digest)
    }

    /// `repo@sha256:…`, the form cosign verifies.
    pub fn by_digest(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pinned())
    }
}

/// `repo:<sha>@sha256:…`, the form every deployment runs and every target
/// reports back: parsed once, each part by its own type.
impl FromStr for ImageRef {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let shown = crate::model::sha::printable(s);
        let (name, digest) = s.rsplit_once('@').with_context(|| {
            format!(
                "`{shown}` is not pinned by digest: expected `repo:<40-char sha>@sha256:<64 hex>`"
            )
        })?;
        let (repository, sha) = name
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .with_context(|| {
                format!("`{shown}` has no SHA tag: expected `repo:<40-char sha>@sha256:<64 hex>`")
            })?;
        Ok(ImageRef {
            repository: repository.parse()?,
            sha: sha.parse()?,
            digest: digest.parse()?,
        })
    }
}

/// `repo:<40-char sha>`.
pub fn full_tag(repository: &Repository, sha: &GitSha) -> String {
    format!("{repository}:{sha}")
}

/// `repo:<12-char sha>`.
pub fn short_tag(repository: &Repository, sha: &GitSha) -> String {
    format!("{repository}:{}", sha.short())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_form_carries_tag_and_digest() {
        let image = ImageRef {
            repository: "ghcr.io/acme/api".parse().expect("repo"),
            sha: "0123456789abcdef0123456789abcdef01234567"
                .parse()
                .expect("sha"),
            digest: format!("sha256:{}", "0f".repeat(32))
                .parse()
                .expect("digest"),
        };
        assert_eq!(
            image.pinned(),
            format!(
                "ghcr.io/acme/api:0123456789abcdef0123456789abcdef01234567@sha256:{}",
                "0f".repeat(32)
            )
        );
        assert_eq!(
            image.by_digest(),
            format!("ghcr.io/acme/api@sha256:{}", "0f".repeat(32))
        );
        assert_eq!(
            short_tag(&image.repository, &image.sha),
            "ghcr.io/acme/api:0123456789ab"
        );
        assert_eq!(
            image.pinned().parse::<ImageRef>().expect("round trip"),
            image
        );
    }

    #[test]
    fn parses_only_fully_pinned_references() {
        let sha = "a".repeat(40);
        let digest = format!("sha256:{}", "b".repeat(64));
        let local: ImageRef = format!("127.0.0.1:5000/x/api:{sha}@{digest}")
            .parse()
            .expect("a port is not a tag");
        assert_eq!(local.repository.to_string(), "127.0.0.1:5000/x/api");
        for bad in [
            "127.0.0.1:5000/x/api:latest".to_owned(),
            format!("127.0.0.1:5000/x/api@{digest}"),
            format!("127.0.0.1:5000/x/api:latest@{digest}"),
            format!("127.0.0.1:5000/x/api:{sha}@sha256:short"),
            format!("localhost:5000/api@{digest}"),
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }
}
