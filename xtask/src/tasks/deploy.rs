//! `cargo xtask deploy <SHA> --env …`: exactly the bytes built from that
//! commit, checked before the target is touched, verified after, rolled
//! back by itself when verification fails.

use std::path::PathBuf;

use anyhow::bail;

use super::release_args::ReleaseArgs;
use crate::build::git;
use crate::ledger::{Ledger, RecordKind};
use crate::model::digest::Digest;
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::release::{self, Request};
use crate::support::project::Project;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The full 40-character commit SHA to deploy (never a tag like `latest`)
    #[arg(value_name = "SHA")]
    pub sha: GitSha,
    #[command(flatten)]
    pub common: ReleaseArgs,
    /// The digest recorded at build; the registry must still serve it
    #[arg(long, value_name = "DIGEST", conflicts_with = "metadata")]
    pub expect_digest: Option<Digest>,
    /// ci-build's metadata.json: its digest must match the registry's
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let c = &args.common;
    // Settings first: a broken config is reported before the registry is asked.
    let target = c.target(project)?;
    let repos = c.repos.resolve(project)?;
    let metadata = args
        .metadata
        .as_deref()
        .map(|p| release::read_metadata(p, &args.sha))
        .transpose()?;
    let only = match &metadata {
        Some(build) => {
            if repos.get(build.repository_kind) != &build.repository {
                bail!(
                    "the metadata names {} as the {} repository, but the configured one is {}: pass --repository/--staging-repository to match the build",
                    build.repository,
                    build.repository_kind,
                    repos.get(build.repository_kind)
                );
            }
            Some(build.repository_kind)
        }
        None => None,
    };
    let (kind, digest) = release::find_image(c.env, &repos, &args.sha, only)?;
    let image = ImageRef {
        repository: repos.get(kind).clone(),
        sha: args.sha.clone(),
        digest,
    };
    let recorded = match (&args.expect_digest, &metadata) {
        (Some(d), _) => Some(("--expect-digest".to_owned(), d.clone())),
        (None, Some(build)) => Some(("the build metadata".to_owned(), build.image_digest.clone())),
        (None, None) => {
            eprintln!(
                "warning: no --metadata or --expect-digest: trusting the registry's digest {}",
                image.digest
            );
            None
        }
    };
    if let Some((source, digest)) = &recorded {
        release::check_digest(&image, Some(digest), source)?;
    }
    let Some((checked, _lock)) = c.last_checks(&*target, &image, project)? else {
        return Ok(());
    };
    let ledger = Ledger::open(project, c.env);
    eprintln!(
        "deploying {} to {} on {}",
        image.pinned(),
        c.env,
        target.kind()
    );
    let outcome = release::execute(
        Request {
            kind: RecordKind::Deploy,
            env: c.env,
            image,
            recorded,
            attestations: checked.attestations(),
            signature: checked.signature,
            config: None,
            reason: None,
            verify_timeout: c.verify_timeout(&*target),
            initiated_by: git::actor(&project.root),
        },
        &c.engine(&*target, &ledger, project),
    )?;
    release::finish(&outcome, c.json)
}
