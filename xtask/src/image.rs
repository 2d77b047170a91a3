//! `ImageRef`: one built image, named three ways that must agree.

use std::fmt;

use crate::digest::Digest;
use crate::repository::Repository;
use crate::sha::GitSha;

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
    }
}
