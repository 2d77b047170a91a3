//! Releases for the engine's tests (deploy, rollback, status, the lock, the
//! docker and akash targets): the same shape as [`super::world::World`]'s
//! (A and B on `main`, B an empty commit after A; F on `feature/x`; a SHA
//! whose tag holds A's image), but their images are stand-in images
//! ([`super::standin`]), built in about a second each, not clean builds of
//! the api. Those tests need a service that answers `/health` and
//! `/version` with its SHA, a digest per SHA, and a build record; what a
//! clean build proves (reproducibility, the worktree, the seal) is
//! asserted by the build tests on World's real images.
//!
//! Its own registry and project, so neither waits on the other.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::docker::{DockerGuard, docker_build_relabelled, docker_ok};
use super::process::TempDir;
use super::project::Project;
use super::registry::Registry;
use super::standin::{Standin, push};

/// One release: a SHA of the project, its image's digest, and the build
/// record `deploy --metadata` reads.
pub struct Release {
    pub sha: String,
    pub digest: String,
    /// Its metadata.json, as ci-build writes it (see [`record`]).
    pub metadata: PathBuf,
}

pub struct Releases {
    pub registry: Registry,
    /// The repository with all three commits, on `main` at B.
    pub project: Project,
    pub canonical: String,
    pub staging: String,
    pub a: Release,
    pub b: Release,
    pub feature: Release,
    /// A SHA whose tag holds A's image: its `/version` reports A, not itself.
    pub wrong_sha: String,
    _records: TempDir,
    _images: DockerGuard,
}

impl Releases {
    /// `--repository <canonical> --staging-repository <staging>`.
    pub fn repo_flags(&self) -> Vec<String> {
        vec![
            "--repository".to_owned(),
            self.canonical.clone(),
            "--staging-repository".to_owned(),
            self.staging.clone(),
        ]
    }
}

/// What deploy and rollback are given: a SHA and its build record.
pub trait Shipped {
    fn sha(&self) -> &str;
    fn metadata(&self) -> &Path;
}

impl Shipped for Release {
    fn sha(&self) -> &str {
        &self.sha
    }
    fn metadata(&self) -> &Path {
        &self.metadata
    }
}

impl Shipped for super::world::Built {
    fn sha(&self) -> &str {
        &self.sha
    }
    fn metadata(&self) -> &Path {
        &self.metadata
    }
}

pub fn releases() -> &'static Releases {
    static RELEASES: OnceLock<Releases> = OnceLock::new();
    RELEASES.get_or_init(|| {
        let registry = Registry::start();
        let project = Project::new();
        project.remove_at_exit();
        let records = TempDir::new("standin-records");
        records.remove_at_exit();
        let images = DockerGuard::new();
        images.images_under(&format!("{}/", registry.host()));
        images.clean_at_exit();
        let canonical = registry.repo("it/api");
        let staging = registry.repo("it/api-staging");

        let a_sha = project.sha();
        let b_sha = project.commit_empty("second commit, same bytes");
        project.checkout_new_branch("feature/x");
        let f_sha = project.commit_empty("a branch commit");
        project.git(&["checkout", "-q", "main"]);

        let release = |sha: &str, repository: &str, kind: &str, branch: &str| -> Release {
            let tag = format!("{repository}:{sha}");
            Standin::new(sha).build(&tag);
            let digest = push(&tag);
            let short = format!("{repository}:{}", &sha[..12]);
            docker_ok(&["tag", &tag, &short]);
            push(&short);
            let metadata = records.join(format!("{}.json", &sha[..12]));
            let text = record(sha, repository, kind, branch, &digest).to_string();
            std::fs::write(&metadata, text).expect("write a build record");
            Release {
                sha: sha.to_owned(),
                digest,
                metadata,
            }
        };
        let a = release(&a_sha, &canonical, "canonical", "main");
        let b = release(&b_sha, &canonical, "canonical", "main");
        let feature = release(&f_sha, &staging, "staging", "feature/x");

        let wrong_sha = "0badc0de".repeat(5);
        // A's bytes that claim to be `wrong_sha` (relabelled, as World's
        // is): the label check passes, only `/version` tells the truth.
        docker_build_relabelled(
            &format!("{canonical}:{}", a.sha),
            &format!("{canonical}:{wrong_sha}"),
            &[("org.opencontainers.image.revision", &wrong_sha)],
        );
        push(&format!("{canonical}:{wrong_sha}"));
        Releases {
            registry,
            project,
            canonical,
            staging,
            a,
            b,
            feature,
            wrong_sha,
            _records: records,
            _images: images,
        }
    })
}

/// A build record (metadata.json, docs/log-schema.md) of a pushed image, as
/// ci-build writes it for an unsigned build (cosign not on PATH); the fields
/// a clean build measures (binary and layer hashes, toolchain, compile time)
/// are absent, as the record type allows.
fn record(sha: &str, repository: &str, kind: &str, branch: &str, digest: &str) -> Value {
    json!({
        "record": "build",
        "image_sha": sha,
        "short_sha": &sha[..12],
        "repository": repository,
        "repository_kind": kind,
        "branch": branch,
        "image_ref": format!("{repository}:{sha}@{digest}"),
        "image_digest": digest,
        "pushed": true,
        "signature_status": "unverified",
        "signature_reason": "cosign not found",
        "build_duration_sec": 0.0,
        "built_at": "2026-01-01T00:00:00Z",
    })
}
