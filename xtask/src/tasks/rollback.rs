//! `cargo xtask rollback [<SHA>] --env …`: an earlier release again, with the
//! config that went with it. Never builds anything.

use std::time::Duration;

use anyhow::Context;

use super::release_args::ReleaseArgs;
use crate::build::git;
use crate::ledger::{self, Ledger, Reason, RecordKind};
use crate::model::image::ImageRef;
use crate::model::repository::RepositoryKind;
use crate::model::sha::GitSha;
use crate::release::{self, Request};
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
    let sha = match args.sha {
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
    let recorded = ledger::last_complete_of(&releases, &sha).cloned();
    let repos = c.repos.resolve(project)?;
    let only = recorded.as_ref().and_then(|r| {
        [RepositoryKind::Canonical, RepositoryKind::Staging]
            .into_iter()
            .find(|k| repos.get(*k) == &r.repository)
    });
    let (kind, digest) = release::find_image(c.env, &repos, &sha, only)?;
    let image = ImageRef {
        repository: repos.get(kind).clone(),
        sha: sha.clone(),
        digest,
    };
    match &recorded {
        Some(r) => {
            release::check_digest(&image, Some(&r.image_digest), &format!("release {}", r.id))?
        }
        None => eprintln!(
            "warning: {sha} was never released to {} from this ledger: its config is rendered afresh",
            c.env
        ),
    }
    // "Already runs" only when the target runs it AND the service says so
    // now: a stopped or broken service is rolled back onto, not reported fine.
    if running_sha.as_ref() == Some(&sha) {
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
    let Some((checked, _lock)) = c.last_checks(&*target, &image, project)? else {
        return Ok(());
    };
    eprintln!("rolling {} back to {}", c.env, image.pinned());
    let outcome = release::execute(
        Request {
            kind: RecordKind::Rollback,
            env: c.env,
            image,
            recorded: recorded
                .as_ref()
                .map(|r| (format!("release {}", r.id), r.image_digest.clone())),
            attestations: checked.attestations(),
            signature: checked.signature,
            config: recorded.and_then(|r| r.config),
            reason: Some(Reason::Manual),
            verify_timeout: c.verify_timeout(&*target),
            initiated_by: git::actor(&project.root),
        },
        &c.engine(&*target, &ledger, project),
    )?;
    release::finish(&outcome, c.json)
}
