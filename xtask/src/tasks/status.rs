//! `cargo xtask status --env …`: what runs now, asked of the target, and
//! what the running service itself reports. Exit 0 only when the target
//! answered and what it runs is healthy and serves the SHA it names (or
//! nothing is deployed and the ledger agrees).

use std::time::Duration;

use anyhow::{Context, bail};

use crate::ledger::{self, Ledger, Status};
use crate::model::environment::Environment;
use crate::model::sha::GitSha;
use crate::support::http;
use crate::support::output;
use crate::support::project::Project;
use crate::targets::{self, TargetKind};
use crate::verify::{self, Probe};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which environment
    #[arg(long, value_enum)]
    pub env: Environment,
    /// Which target to ask [default: docker; in CI, the environment's target in deploy/release.json]
    #[arg(long, value_enum)]
    pub target: Option<TargetKind>,
    /// Print the status as one JSON line on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let env = args.env;
    let target = targets::select(project, env, args.target)?;
    let mut running = target.status().with_context(|| {
        format!(
            "could not ask the {} target what runs in {env}, so nothing is known about it",
            target.kind()
        )
    })?;
    let ledger = Ledger::open(project, env);
    let releases = ledger.read_reporting()?;
    let current = ledger::current(&releases);
    let latest = releases.last();
    let (healthy, reported_sha) = match &running.url {
        Some(url) => (
            http::get(&format!("{url}/health"), Duration::from_secs(2))
                .is_ok_and(|r| r.status == 200),
            verify::Http.reported_sha(url),
        ),
        None => (false, None),
    };
    // Targets that cannot name the image (akash): the SHA the service
    // reports, and the ledger's digest for that SHA.
    if running.image_sha.is_none() {
        running.image_sha = reported_sha.clone();
    }
    if running.image_digest.is_none() {
        running.image_digest = current
            .filter(|c| Some(&c.image_sha) == running.image_sha.as_ref())
            .map(|c| c.image_digest.clone());
    }
    let status = serde_json::json!({
        "record": "status",
        "environment": env,
        "target": target.kind(),
        "image_sha": running.image_sha,
        "image_digest": running.image_digest,
        "image_ref": running.image_ref,
        "url": running.url,
        "deployment_ref": running.deployment_ref,
        "healthy": healthy,
        "reported_sha": reported_sha,
        "ledger_release": current.map(|c| &c.id),
        "ledger_latest": latest.map(|l| serde_json::json!({"id": l.id, "status": l.status, "image_sha": l.image_sha})),
        "proxy": running.notes.get("proxy"),
        "retained": running.notes.get("retained"),
        "at": output::now_rfc3339(),
    });
    if args.json {
        output::print_line(&status)?;
    } else {
        match &running.image_sha {
            Some(sha) => output::print_text(format!(
                "{env} on {}: {sha}\n  image   {}\n  url     {}\n  health  {}\n  reports {}",
                target.kind(),
                running.image_ref.as_deref().unwrap_or("-"),
                running.url.as_deref().unwrap_or("- (not running)"),
                if healthy { "ok" } else { "NOT OK" },
                reported_sha.as_ref().map_or("-", GitSha::as_str),
            ))?,
            None => output::print_text(format!("{env} on {}: nothing serving", target.kind()))?,
        }
        if let Some(p) = running.notes.get("proxy").filter(|p| !p.is_null()) {
            let text = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
            output::print_text(format!(
                "  proxy   {} ({}), {}, port {} → {}",
                text("container"),
                text("image"),
                if p["running"] == true {
                    "running"
                } else {
                    "STOPPED"
                },
                p["port"],
                text("upstream")
            ))?;
        }
        if let Some(retained) = running.notes.get("retained").and_then(|r| r.as_array()) {
            for r in retained {
                output::print_text(format!(
                    "  retained {} ({})",
                    r["container"].as_str().unwrap_or("-"),
                    r["image_sha"].as_str().unwrap_or("-")
                ))?;
            }
        }
    }
    // A command printed here must work as printed: `--force-unlock` when a
    // lock is left behind (it never breaks a live holder's lock).
    let unlock = if project
        .state_dir()
        .join("locks")
        .join(format!("{env}.lock"))
        .exists()
    {
        " --force-unlock"
    } else {
        ""
    };
    if let Some(l) = latest.filter(|l| l.status == Status::Running) {
        match current {
            Some(c) => eprintln!(
                "warning: release {} ({}) never finished: its process died mid-release or still runs; if no deploy is running, `cargo xtask rollback {} --env {env}{unlock}` makes sure the last verified release serves",
                l.id, l.image_sha, c.image_sha
            ),
            None => eprintln!(
                "warning: release {} ({}) never finished: its process died mid-release or still runs; if no deploy is running, deploy again with --force-unlock",
                l.id, l.image_sha
            ),
        }
    }
    match (&running.image_sha, current) {
        (None, Some(c)) if running.url.is_none() => bail!(
            "{env} serves nothing on {}; the ledger's last verified release is {} ({}), {}: bring it back with `cargo xtask rollback {} --env {env}{unlock}`",
            target.kind(),
            c.image_sha,
            c.id,
            where_is(&running.notes, c),
            c.image_sha
        ),
        (Some(sha), Some(c)) if running.url.is_none() => bail!(
            "{env} is NOT serving: the {} target holds {sha} but nothing answers for it (proxy or release stopped); the ledger's last verified release is {} ({}), {}: bring it back with `cargo xtask rollback {} --env {env}{unlock}`",
            target.kind(),
            c.image_sha,
            c.id,
            where_is(&running.notes, c),
            c.image_sha
        ),
        (None, _) if running.url.is_none() => Ok(()),
        (sha, _) if !healthy || reported_sha.is_none() || reported_sha != *sha => bail!(
            "{env} is NOT serving what the {} target runs ({}): health {}, /version reports {}; see docs/rollback.md",
            target.kind(),
            sha.as_ref().map_or("-", GitSha::as_str),
            if healthy { "ok" } else { "not ok" },
            reported_sha.as_ref().map_or("nothing", GitSha::as_str)
        ),
        _ => Ok(()),
    }
}

/// Where the ledger's last verified release is, as the target shows it: a
/// retained (stopped) container, else only in the registry.
fn where_is(notes: &serde_json::Value, release: &ledger::Release) -> String {
    let retained = notes
        .get("retained")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .find(|r| {
            r["release"] == release.id.as_str()
                || r["image_digest"] == release.image_digest.as_str()
        });
    match retained.and_then(|r| r["container"].as_str()) {
        Some(name) => {
            format!("retained, stopped, in container {name} (started again without the registry)")
        }
        None => "no longer on the target (its image comes from the registry again)".to_owned(),
    }
}
