//! `cargo xtask status --env …`: what runs now, asked of the target, and
//! what the running service itself reports. Exit 0 only when the target
//! answered and what it runs is healthy and serves the SHA it names (or
//! nothing is deployed and the ledger agrees).

use std::time::Duration;

use anyhow::{Context, bail};

use crate::ledger::lock::{self, LockState};
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
    let lock = lock::inspect(&project.state_dir(), env);
    let releases = super::history::shown_abandoned(ledger.read_reporting()?, &lock);
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
        "last_verified": current.map(|c| serde_json::json!({"id": c.id, "image_sha": c.image_sha, "image_ref": c.image_ref, "config": c.config, "at": c.at})),
        "lock": match &lock {
            LockState::Free => serde_json::json!({"state": "free"}),
            LockState::Held(who) => serde_json::json!({"state": "held", "by": who}),
            LockState::Stale(why) => serde_json::json!({"state": "stale", "why": why}),
        },
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
    // The one command that brings the last verified release back, exactly
    // as it must be typed now (a stale lock needs --force-unlock).
    let way_back = current.map(|c| {
        let force = if matches!(lock, LockState::Stale(_)) {
            " --force-unlock"
        } else {
            ""
        };
        format!("cargo xtask rollback {} --env {env}{force}", c.image_sha)
    });
    if let Some(c) = current {
        eprintln!(
            "last verified release: {} ({}, {} at {}), its config frozen at {}",
            c.image_sha,
            c.id,
            c.record_name(),
            c.at,
            c.config
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
        );
    }
    if let LockState::Held(who) = &lock {
        eprintln!("note: a release is in progress ({who}): what runs may change");
    }
    if let Some(l) = latest.filter(|l| l.status == Status::Abandoned) {
        eprintln!(
            "warning: release {} ({} of {}) never finished: its process died mid-release{}",
            l.id,
            l.record_name(),
            l.image_sha,
            way_back
                .as_ref()
                .filter(
                    |_| current.is_some_and(|c| running.image_sha.as_ref() != Some(&c.image_sha))
                )
                .map_or_else(String::new, |w| format!(
                    "; to serve the last verified release again: `{w}`"
                ))
        );
    }
    let back = |w: &Option<String>| {
        w.as_ref().map_or_else(String::new, |w| {
            format!("; to serve the last verified release again: `{w}`")
        })
    };
    match (&running.image_sha, current) {
        (None, Some(c)) if running.url.is_none() => bail!(
            "{env} serves nothing on {}; the ledger's last verified release is {} ({}), {}{}",
            target.kind(),
            c.image_sha,
            c.id,
            where_is(&running.notes, c),
            back(&way_back)
        ),
        (Some(sha), Some(c)) if running.url.is_none() => bail!(
            "{env} is NOT serving: the {} target holds {sha} but nothing answers for it (proxy or release stopped); the ledger's last verified release is {} ({}), {}{}",
            target.kind(),
            c.image_sha,
            c.id,
            where_is(&running.notes, c),
            back(&way_back)
        ),
        (None, _) if running.url.is_none() => Ok(()),
        (sha, _) if !healthy || reported_sha.is_none() || reported_sha != *sha => bail!(
            "{env} is NOT serving what the {} target runs ({}): health {}, /version reports {}{}; see docs/rollback.md",
            target.kind(),
            sha.as_ref().map_or("-", GitSha::as_str),
            if healthy { "ok" } else { "not ok" },
            reported_sha.as_ref().map_or("nothing", GitSha::as_str),
            back(&way_back)
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
