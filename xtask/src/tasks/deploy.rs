//! `cargo xtask deploy <SHA> --env …`: exactly the bytes built from that
//! commit, checked before the target is touched, verified after, rolled
//! back by itself when verification fails.

use std::path::PathBuf;

use anyhow::bail;

use super::release_args::ReleaseArgs;
use super::strategy_args::StrategyArgs;
use crate::build::git;
use crate::ledger::{Ledger, RecordKind};
use crate::model::digest::Digest;
use crate::model::image::{ImageRef, full_tag};
use crate::model::sha::GitSha;
use crate::release::{self, Request, recorded};
use crate::support::project::Project;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The full 40-character commit SHA to deploy (never a tag like `latest`)
    #[arg(value_name = "SHA")]
    pub sha: GitSha,
    #[command(flatten)]
    pub common: ReleaseArgs,
    #[command(flatten)]
    pub strategy: StrategyArgs,
    /// The digest recorded at build; the registry must still serve it (also: the explicit word to deploy new bytes of a SHA a ledger recorded at other ones)
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
    let strategy = args.strategy.resolve(project, c.env, &*target)?;
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
    let all = recorded::all_ledgers(project)?;
    let known = recorded::digests_of(&all, &args.sha);
    recorded::flag_if_split(&args.sha, &known);
    let mut rebuild_of = None;
    let recorded = match (&args.expect_digest, &metadata) {
        (Some(d), _) => Some(("--expect-digest".to_owned(), d.clone())),
        (None, Some(build)) => Some(("the build metadata".to_owned(), build.image_digest.clone())),
        // A SHA a ledger already knows is the bytes it was released at: a
        // tag re-pointed at other bytes is refused unless named explicitly.
        (None, None) if !known.is_empty() => {
            if let Some(k) = known.iter().find(|k| k.digest == image.digest) {
                Some((k.source(), k.digest.clone()))
            } else if let Some(k) = rebuilt(&known, &image, &all)? {
                // A recorded digest the registry lost, and the tag's image
                // is its rebuild (same layers and run config).
                rebuild_of = Some(k.digest.clone());
                Some((format!("{} (rebuilt)", k.source()), image.digest.clone()))
            } else {
                let was: Vec<String> = known
                    .iter()
                    .map(|k| format!("{} ({})", k.digest, k.source()))
                    .collect();
                let why = format!(
                    "{} now points at {} but {} was released at {}: the tag was moved to other bytes; refusing to deploy them (deploy the recorded bytes with `cargo xtask rollback {} --env {}`, or, if these new bytes are intended, name them: --expect-digest {})",
                    full_tag(&image.repository, &image.sha),
                    image.digest,
                    args.sha,
                    was.join(" and "),
                    args.sha,
                    c.env,
                    image.digest
                );
                release::record_refusal(
                    &Ledger::open(project, c.env),
                    &release::Refusal {
                        kind: RecordKind::Deploy,
                        env: c.env,
                        target: target.kind(),
                        image: &image,
                        checked: None,
                        initiated_by: git::actor(&project.root),
                        why: why.clone(),
                    },
                )?;
                bail!("{why}");
            }
        }
        (None, None) => {
            eprintln!(
                "warning: no --metadata or --expect-digest, and no ledger knows {}: trusting the registry's digest {}",
                args.sha, image.digest
            );
            None
        }
    };
    if let Some((source, digest)) = &recorded {
        release::check_digest(&image, Some(digest), source)?;
    }
    let Some(cleared) = c.last_checks(&*target, &image, project, RecordKind::Deploy)? else {
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
            attestations: cleared.checked.attestations(),
            signature: cleared.checked.signature.clone(),
            config: None,
            reason: None,
            verify_timeout: c.verify_timeout(&*target),
            initiated_by: git::actor(&project.root),
            strategy,
            content: Some(cleared.content.clone()),
            rebuild_of,
        },
        &c.engine(&*target, &ledger, project),
    )?;
    release::finish(&outcome, c.json)
}

/// The known digest of the SHA that the registry no longer holds and whose
/// rebuild the tag's image is (`recorded::check_rebuild`), if any.
fn rebuilt<'a>(
    known: &'a [recorded::Known],
    image: &ImageRef,
    all: &[crate::ledger::Release],
) -> anyhow::Result<Option<&'a recorded::Known>> {
    for k in known {
        if crate::registry::holds(&k.newest.repository, &k.digest)? {
            continue;
        }
        match recorded::check_rebuild(image, &k.digest, &k.source(), all) {
            Ok(()) => return Ok(Some(k)),
            Err(why) => eprintln!("{why:#}"),
        }
    }
    Ok(None)
}
