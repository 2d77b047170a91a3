//! `cargo xtask status --env …`: what runs now, asked of the target, and
//! what the running service itself reports.

use std::time::Duration;

use crate::ledger::{self, Ledger};
use crate::model::environment::Environment;
use crate::model::sha::GitSha;
use crate::support::http;
use crate::support::output;
use crate::support::project::Project;
use crate::targets::{self, TargetKind};

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
    let target = targets::select(project, args.env, args.target)?;
    let mut running = target.status()?;
    let ledger = Ledger::open(project, args.env);
    let releases = ledger.read_reporting()?;
    let current = ledger::current(&releases);
    let (healthy, reported_sha) = match &running.url {
        Some(url) => (
            http::get(&format!("{url}/health"), Duration::from_secs(2))
                .is_ok_and(|r| r.status == 200),
            crate::verify::reported_sha(url),
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
        "environment": args.env,
        "target": target.kind(),
        "image_sha": running.image_sha,
        "image_digest": running.image_digest,
        "image_ref": running.image_ref,
        "url": running.url,
        "deployment_ref": running.deployment_ref,
        "healthy": healthy,
        "reported_sha": reported_sha,
        "ledger_release": current.map(|c| &c.id),
        "at": output::now_rfc3339(),
    });
    if args.json {
        output::print_line(&status)?;
    } else {
        match &running.image_sha {
            Some(sha) => println!(
                "{} on {}: {sha}\n  image   {}\n  url     {}\n  health  {}\n  reports {}",
                args.env,
                target.kind(),
                running.image_ref.as_deref().unwrap_or("-"),
                running.url.as_deref().unwrap_or("-"),
                if healthy { "ok" } else { "NOT OK" },
                reported_sha.as_ref().map_or("-", GitSha::as_str),
            ),
            None => println!("{} on {}: nothing deployed", args.env, target.kind()),
        }
    }
    Ok(())
}
