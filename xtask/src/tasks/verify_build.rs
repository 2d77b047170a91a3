//! `cargo xtask verify-build [<SHA>] [--env E | --repository R]`: rebuild a
//! commit clean (its own checkout; the user's work tree is never read) and
//! hold the result against the image a registry or a ledger names: the
//! sha256 of `/api` and the layer diff_ids must be equal. Exit 0 on a
//! match, 1 otherwise, with both hashes printed and one JSON record.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::build::worktree::Scratch;
use crate::build::{self, adopt, git, image};
use crate::ledger::{self, Ledger};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::repository::Repository;
use crate::model::sha::GitSha;
use crate::registry;
use crate::support::docker;
use crate::support::interrupt;
use crate::support::output;
use crate::support::project::{Project, RepositoryArgs};
use crate::support::step::Steps;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The full 40-character commit SHA to rebuild [default with --env: the release the ledger says runs there]
    #[arg(value_name = "SHA", required_unless_present = "env")]
    pub sha: Option<GitSha>,
    /// Check the digest this environment's ledger recorded for the SHA (what was deployed), not the registry's tag
    #[arg(long, value_enum, conflicts_with = "repository")]
    pub env: Option<Environment>,
    /// Look up `<REPO>:<SHA>` here [default: the canonical repository, then staging]
    #[arg(long, value_name = "REPO")]
    pub repository: Option<Repository>,
    /// Also print the record as one JSON line on stdout (the last line)
    #[arg(long)]
    pub json: bool,
    /// Also write the record to this file
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// What the image holds and what the clean build made.
#[derive(Debug, serde::Serialize)]
pub struct Pair<T> {
    pub image: T,
    pub built: T,
}

/// One verify-build: see docs/log-schema.md.
#[derive(Debug, serde::Serialize)]
pub struct VerifyRecord {
    pub record: &'static str,
    pub image_sha: GitSha,
    pub repository: Repository,
    pub image_digest: Digest,
    /// `registry` (the `<repo>:<sha>` tag) or `ledger` (with `--env`).
    pub digest_from: &'static str,
    pub environment: Option<Environment>,
    #[serde(rename = "match")]
    pub matches: bool,
    pub binary_sha256: Pair<String>,
    pub layer_diff_ids: Pair<Vec<Digest>>,
    /// The image's own labels, for the reader: not part of the match.
    pub revision_label: Option<String>,
    pub binary_label: Option<String>,
    pub toolchain: String,
    pub compile_duration_sec: f64,
    pub duration_sec: f64,
    pub at: String,
}

struct Target {
    sha: GitSha,
    repository: Repository,
    digest: Digest,
    from: &'static str,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    build::name_interruption(run_inner(args, project))
}

fn run_inner(args: Args, project: &Project) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut steps = Steps::new();
    let target = steps.run("find the image to verify", || locate(&args, project))?;
    let Target {
        sha,
        repository,
        digest,
        from,
    } = target;
    eprintln!("verifying {repository}@{digest} ({sha}, digest from the {from})");

    let plan = build::Plan::new(&project.root, &sha)?;
    interrupt::install()?;
    let scratch = Scratch::create(plan.layout.base.clone())?;
    let (found, held) = steps.run("read the image", || {
        let found = adopt::examine(&repository, &digest)?;
        let held = found.hash_api(&plan.layout.pulled())?;
        Ok((found, held))
    })?;
    let compiled = build::compile(&plan, &project.root, &scratch, &mut steps)?;
    let built = build::build_image(&plan, &compiled, &mut steps);
    drop(scratch);
    let built = built?;
    // Made only to be compared: not kept in the engine.
    image::remove(&built.id);

    let record = VerifyRecord {
        record: "verify-build",
        image_sha: sha.clone(),
        repository,
        image_digest: digest,
        digest_from: from,
        environment: args.env,
        matches: held == compiled.sha256 && found.layers == built.layers,
        binary_sha256: Pair {
            image: held,
            built: compiled.sha256.clone(),
        },
        layer_diff_ids: Pair {
            image: found.layers.clone(),
            built: built.layers.clone(),
        },
        revision_label: found.revision.clone(),
        binary_label: found.binary_label.clone(),
        toolchain: compiled.toolchain,
        compile_duration_sec: output::seconds(compiled.duration),
        duration_sec: output::seconds(started.elapsed()),
        at: output::now_rfc3339(),
    };
    if let Some(out) = &args.out {
        output::write_file(out, &record)?;
    }
    eprintln!("steps: {}", steps.summary());
    if args.json {
        output::print_line(&record)?;
    }
    let layers = |l: &[Digest]| l.iter().map(Digest::as_str).collect::<Vec<_>>().join(",");
    if record.matches {
        eprintln!(
            "match: {} is what a clean build of {sha} produces (/api sha256 {}, layer diff_id {})",
            found.by_digest,
            record.binary_sha256.built,
            layers(&record.layer_diff_ids.built)
        );
        return Ok(());
    }
    bail!(
        "{} is not what {sha} builds: /api sha256 {} in the image, {} from a clean build; layer diff_id {} in the image, {} from a clean build. Do not deploy it; find out who pushed it",
        found.by_digest,
        record.binary_sha256.image,
        record.binary_sha256.built,
        layers(&record.layer_diff_ids.image),
        layers(&record.layer_diff_ids.built)
    )
}

/// The SHA and the digest to check, each refusal a clear line, before
/// anything slow runs.
fn locate(args: &Args, project: &Project) -> anyhow::Result<Target> {
    let from_ledger = match args.env {
        Some(env) => {
            let ledger = Ledger::open(project, env);
            let releases = ledger.read_reporting()?;
            let release = match &args.sha {
                Some(sha) => ledger::last_complete_of(&releases, sha).with_context(|| {
                    format!(
                        "the {env} ledger ({}) has no completed release of {sha}: name a SHA that was deployed there, or use --repository to check the registry's tag",
                        ledger.path().display()
                    )
                })?,
                None => ledger::current(&releases).with_context(|| {
                    format!(
                        "the {env} ledger ({}) has no completed release: nothing runs there to verify; name a SHA and a --repository",
                        ledger.path().display()
                    )
                })?,
            };
            Some(Target {
                sha: release.image_sha.clone(),
                repository: release.repository.clone(),
                digest: release.image_digest.clone(),
                from: "ledger",
            })
        }
        None => None,
    };
    let sha = match (&from_ledger, &args.sha) {
        (Some(t), _) => t.sha.clone(),
        (None, Some(sha)) => sha.clone(),
        (None, None) => bail!("name the SHA to verify, or --env to verify what runs there"),
    };
    if !git::has_commit(&project.root, &sha)? {
        bail!(
            "commit {sha} is not in this clone's history: fetch it (`git fetch origin {sha}`, or clone with full history) and run verify-build again"
        );
    }
    docker::ensure_daemon()?;
    if let Some(target) = from_ledger {
        return Ok(target);
    }
    let candidates = match &args.repository {
        Some(r) => vec![r.clone()],
        None => {
            let repos = RepositoryArgs {
                repository: None,
                staging_repository: None,
            }
            .resolve(project)?;
            vec![repos.canonical, repos.staging]
        }
    };
    for repository in &candidates {
        if let Some(digest) = registry::digest_of(repository, sha.as_str())? {
            return Ok(Target {
                sha,
                repository: repository.clone(),
                digest,
                from: "registry",
            });
        }
    }
    let looked = candidates
        .iter()
        .map(|r| format!("{r}:{sha}"))
        .collect::<Vec<_>>()
        .join(" or ");
    bail!(
        "{looked} is not in the registry: nothing to verify; build it with `cargo xtask ci-build` at that commit, or name the repository with --repository"
    )
}
