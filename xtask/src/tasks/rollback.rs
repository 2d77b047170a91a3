//! `cargo xtask rollback [<SHA>] --env …`: an earlier release again, with the
//! config that went with it. Never builds anything.

use std::time::Duration;

use anyhow::Context;

use crate::build::git;
use crate::ledger::{self, Ledger, Reason, RecordKind};
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::release::{self, Request};
use crate::support::output;
use crate::support::project::Project;
use crate::tasks::deploy::Common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The full 40-character SHA to return to [default: the last verified release before the current one]
    #[arg(value_name = "SHA")]
    pub sha: Option<GitSha>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let c = &args.common;
    let ledger = Ledger::open(project, c.env);
    let releases = ledger.read_reporting()?;
    let target = c.target(project)?;
    let running = target
        .status()
        .ok()
        .and_then(|r| r.image_sha)
        .or_else(|| ledger::current(&releases).map(|r| r.image_sha.clone()));
    let sha = match args.sha {
        Some(sha) => sha,
        None => {
            let prev = ledger::previous(&releases, running.as_ref()).with_context(|| {
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
        [
            crate::model::repository::RepositoryKind::Canonical,
            crate::model::repository::RepositoryKind::Staging,
        ]
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
    if running.as_ref() == Some(&sha) {
        eprintln!(
            "{} already runs {sha}: nothing to roll back, nothing changed",
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
    let Some((signature, _lock)) = c.last_checks(&*target, &image, project)? else {
        return Ok(());
    };
    eprintln!("rolling {} back to {}", c.env, image.pinned());
    let (records, ok) = release::execute(
        Request {
            kind: RecordKind::Rollback,
            env: c.env,
            image,
            signature,
            config: recorded.and_then(|r| r.config),
            reason: Some(Reason::Manual),
            verify_timeout: Duration::from_secs(c.verify_timeout),
            initiated_by: git::actor(&project.root),
            target: &*target,
        },
        project,
        &ledger,
    )?;
    release::finish(&records, ok, c.json)
}
