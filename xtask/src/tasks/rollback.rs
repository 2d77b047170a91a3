//! `cargo xtask rollback [<SHA>] --env …`: an earlier release again, with the
//! config that went with it. Never builds anything.

use std::time::Duration;

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::release_args::ReleaseArgs;
use crate::build::git;
use crate::ledger::{self, Ledger, Reason, RecordKind, Release};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::repository::RepositoryKind;
use crate::model::sha::GitSha;
use crate::registry;
use crate::release::{self, Request, recorded};
use crate::supply::policy::{Level, Policy};
use crate::support::output;
use crate::support::project::Project;
use crate::verify::{self, Probe};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The full 40-character SHA to return to [default: the last verified release before the current one]
    #[arg(value_name = "SHA")]
    pub sha: Option<GitSha>,
    #[command(flatten)]
    pub common: ReleaseArgs,
    /// The digest to return to (its build's metadata.json has it): needed to roll production back to a SHA it never ran, or to choose between two digests a SHA was released at
    #[arg(long, value_name = "DIGEST", conflicts_with = "metadata")]
    pub expect_digest: Option<Digest>,
    /// ci-build's metadata.json of the SHA: its digest is the one to return to
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
}

/// Where the digest to return to comes from, the digest, and the release of
/// this environment that ran it (for its config).
type Chosen = (String, Digest, Option<Release>);

/// The digest a rollback returns to (issue 24), in order: the one the
/// operator names; the one this environment's completed releases ran (of
/// two, the one that passed the most checks; a tie asks); the one another
/// environment's ledger recorded. None of them: production refuses unless
/// its policy is strict throughout (the registry alone is not trusted).
fn choose_digest(
    args: &Args,
    all: &[Release],
    releases: &[Release],
    sha: &GitSha,
    policy: Policy,
) -> anyhow::Result<Option<Chosen>> {
    let env = args.common.env;
    let here = recorded::digests_of(releases, sha);
    let everywhere = recorded::digests_of(all, sha);
    recorded::flag_if_split(sha, &everywhere);
    let ran_here = |d: &Digest| {
        here.iter()
            .find(|k| &k.digest == d)
            .map(|k| k.newest.clone())
    };
    if let Some(d) = &args.expect_digest {
        return Ok(Some(("--expect-digest".into(), d.clone(), ran_here(d))));
    }
    if let Some(path) = &args.metadata {
        let build = release::read_metadata(path, sha)?;
        let d = build.image_digest;
        return Ok(Some(("the build metadata".into(), d.clone(), ran_here(&d))));
    }
    if let Some(k) = recorded::strictest(sha, &here)? {
        if here.len() > 1 {
            eprintln!(
                "returning to {} ({} of 3 checks verified, {} release(s)): the strictest of the digests {sha} ran at",
                k.digest, k.checks, k.releases
            );
        }
        return Ok(Some((
            format!("release {}", k.newest.id),
            k.digest.clone(),
            Some(k.newest.clone()),
        )));
    }
    if let Some(k) = recorded::strictest(sha, &everywhere)? {
        eprintln!(
            "{sha} never ran in {env}; {} recorded its digest {}",
            k.source(),
            k.digest
        );
        return Ok(Some((k.source(), k.digest.clone(), None)));
    }
    let strict = policy.signature == Level::Strict
        && policy.sbom == Level::Strict
        && policy.provenance == Level::Strict;
    if env == Environment::Production && !strict && !args.common.require_signature {
        bail!(
            "{sha} was never released to production, and no ledger records its digest: the registry alone is not trusted for production. Pass the digest its build recorded (--expect-digest <digest>, or --metadata <its metadata.json>), or make environments.production.policy strict in deploy/release.json"
        );
    }
    Ok(None)
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let c = &args.common;
    let ledger = Ledger::open(project, c.env);
    let releases = ledger.read_reporting()?;
    let target = c.target(project)?;
    // What runs is the target's answer; one that cannot be asked stops here.
    let running = target.status().with_context(|| {
        format!(
            "could not ask the {} target what runs in {}, so nothing was changed; fix that and run again",
            target.kind(),
            c.env
        )
    })?;
    let running_sha = running.image_sha.clone().or_else(|| {
        running
            .url
            .as_deref()
            .and_then(|u| verify::Http.reported_sha(u))
    });
    let sha = match args.sha.clone() {
        Some(sha) => sha,
        None => {
            let prev = ledger::previous(&releases, running_sha.as_ref()).with_context(|| {
                format!(
                    "no earlier verified release of {} in the ledger ({}): name the SHA, `cargo xtask rollback <sha> --env {}`",
                    c.env,
                    ledger.path().display(),
                    c.env
                )
            })?;
            eprintln!(
                "previous verified release: {} ({}, {} at {})",
                prev.image_sha, prev.id, prev.target, prev.at
            );
            prev.image_sha.clone()
        }
    };
    let policy = project.release_config()?.environment(c.env)?.policy;
    let all = recorded::all_ledgers(project)?;
    let chosen = choose_digest(&args, &all, &releases, &sha, policy)?;
    let recorded = chosen.as_ref().and_then(|(_, _, r)| r.clone());
    let repos = c.repos.resolve(project)?;
    let only = chosen
        .as_ref()
        .and_then(|(_, _, r)| r.as_ref())
        .and_then(|r| {
            [RepositoryKind::Canonical, RepositoryKind::Staging]
                .into_iter()
                .find(|k| repos.get(*k) == &r.repository)
        });
    // A release the target still holds (a retained container, its local
    // image the digest the ledger recorded) needs no registry.
    let retained = recorded
        .as_ref()
        .map(ledger::Release::image)
        .filter(|image| chosen.as_ref().is_some_and(|(_, d, _)| *d == image.digest))
        .filter(|image| target.retained_image(image));
    let found = match &retained {
        Some(image) => {
            eprintln!(
                "{sha} is retained on the {} target with the recorded digest {}: rolling back without the registry",
                target.kind(),
                image.digest
            );
            Ok((
                only.unwrap_or(RepositoryKind::Canonical),
                image.digest.clone(),
            ))
        }
        None => release::find_image(c.env, &repos, &sha, only),
    };
    let image = match (found, &chosen) {
        (Ok((kind, digest)), _) => ImageRef {
            repository: repos.get(kind).clone(),
            sha: sha.clone(),
            digest,
        },
        // The tag is gone: the recorded digest, if the registry holds it.
        (Err(gone), Some((_, digest, _))) => {
            let kind = only.unwrap_or(RepositoryKind::Canonical);
            if !registry::holds(repos.get(kind), digest)? {
                return Err(gone.context(format!(
                    "and {}@{digest} (the recorded digest) is gone too: rebuild the commit (`git checkout {sha}`, then `cargo xtask ci-build`: it builds into {}, where {sha} was built first) and run this rollback again: it takes the rebuild when its layers and run config are the ones recorded",
                    repos.get(kind),
                    repos.get(kind)
                )));
            }
            eprintln!(
                "the tag {sha} is gone from {}, but it still holds {digest}: rolling back by the recorded digest",
                repos.get(kind)
            );
            ImageRef {
                repository: repos.get(kind).clone(),
                sha: sha.clone(),
                digest: digest.clone(),
            }
        }
        (Err(gone), None) => return Err(gone),
    };
    let mut rebuild_of = None;
    let image = match &chosen {
        Some((source, digest, _)) if *digest != image.digest => {
            // The tag was moved: the recorded bytes, when still there.
            if registry::holds(&image.repository, digest)? {
                eprintln!(
                    "the tag {sha} now names {}, but {source} recorded {digest}, which the registry still holds: rolling back to the recorded bytes by digest",
                    image.digest
                );
                ImageRef {
                    digest: digest.clone(),
                    ..image
                }
            } else {
                // Gone: the tag's image stands for it only as its rebuild.
                if let Err(refused) = recorded::check_rebuild(&image, digest, source, &all) {
                    release::record_refusal(
                        &ledger,
                        &release::Refusal {
                            kind: RecordKind::Rollback,
                            env: c.env,
                            target: target.kind(),
                            image: &image,
                            checked: None,
                            initiated_by: git::actor(&project.root),
                            why: format!("{refused:#}"),
                        },
                    )?;
                    return Err(refused);
                }
                rebuild_of = Some(digest.clone());
                image
            }
        }
        Some((source, digest, _)) => {
            release::check_digest(&image, Some(digest), source)?;
            image
        }
        None => image,
    };
    if recorded.is_none() {
        eprintln!(
            "warning: {sha} was never released to {} from this ledger: its config is rendered afresh",
            c.env
        );
    }
    // "Already runs" only when the target runs it AND the service says so
    // now: a stopped or broken service is rolled back onto, not reported fine.
    // After a canary killed mid-step the stable still "runs", but shares the
    // traffic: roll back onto it, which puts everything back on it first.
    if running_sha.as_ref() == Some(&sha) && !ledger::unfinished_canary(&releases) {
        let serving = running
            .url
            .as_deref()
            .map(|url| verify::Http.verify(url, &sha, None, Duration::from_secs(3), true));
        match serving {
            Some(outcome) if outcome.ok() => {
                eprintln!(
                    "{} already runs {sha}, verified just now: nothing to roll back, nothing changed",
                    c.env
                );
                if c.json {
                    output::print_line(&serde_json::json!({
                        "record": "rollback", "environment": c.env, "previous_sha": sha, "new_sha": sha,
                        "image_digest": image.digest, "changed": false, "at": output::now_rfc3339(),
                    }))?;
                }
                return Ok(());
            }
            Some(outcome) => eprintln!(
                "the {} target runs {sha} but the service does not verify ({}): applying it again",
                target.kind(),
                outcome.last_seen
            ),
            None => eprintln!(
                "the {} target has {sha} but it is not running: applying it again",
                target.kind()
            ),
        }
    }
    let Some(cleared) = c.last_checks(&*target, &image, project, RecordKind::Rollback)? else {
        return Ok(());
    };
    eprintln!("rolling {} back to {}", c.env, image.pinned());
    let image_digest = image.digest.clone();
    let outcome = release::execute(
        Request {
            kind: RecordKind::Rollback,
            env: c.env,
            image,
            recorded: chosen.map(|(source, digest, _)| (source, digest)),
            attestations: cleared.checked.attestations(),
            signature: cleared.checked.signature.clone(),
            config: recorded
                .filter(|r| r.image_digest == image_digest)
                .and_then(|r| r.config),
            reason: Some(Reason::Manual),
            verify_timeout: c.verify_timeout(&*target),
            initiated_by: git::actor(&project.root),
            // A rollback returns to a verified release: all at once, no steps.
            strategy: crate::release::Strategy::BlueGreen,
            content: Some(cleared.content.clone()),
            rebuild_of,
        },
        &c.engine(&*target, &ledger, project),
    )?;
    release::finish(&outcome, c.json)
}
