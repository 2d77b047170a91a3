//! `cargo xtask history --env …`: the release ledger, newest first.
//!
//! A release still `running` while no live process holds the lock was
//! killed (`kill -9`): it is shown `abandoned` (the next release records it
//! so in the ledger).

use crate::ledger::lock::{self, LockState};
use crate::ledger::{Ledger, Release, Status};
use crate::model::environment::Environment;
use crate::support::output;
use crate::support::project::Project;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which environment
    #[arg(long, value_enum)]
    pub env: Environment,
    /// One JSON line per release on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let ledger = Ledger::open(project, args.env);
    let releases = shown_abandoned(
        ledger.read_reporting()?,
        &lock::inspect(&project.state_dir(), args.env),
    );
    if releases.is_empty() && !args.json {
        output::print_text(format_args!(
            "no releases of {} yet ({})",
            args.env,
            ledger.path().display()
        ))?;
    }
    for r in releases.iter().rev() {
        if args.json {
            output::print_line(r)?;
        } else {
            let kind = match (r.record, r.reason) {
                (crate::ledger::RecordKind::Deploy, _) if r.strategy.is_some() => {
                    "deploy (canary)".to_owned()
                }
                (crate::ledger::RecordKind::Deploy, _) => "deploy".to_owned(),
                (_, Some(reason)) => format!(
                    "rollback ({})",
                    serde_json::to_value(reason)?.as_str().unwrap_or("?")
                ),
                (_, None) => "rollback".to_owned(),
            };
            // An aborted canary says so where the status is read.
            let status = if r.reason == Some(crate::ledger::Reason::FailedAnalysis) {
                "failed-analysis".to_owned()
            } else {
                r.status.to_string()
            };
            output::print_text(format_args!(
                "{}  {:<31} {:<12} {:<15} {}  {}",
                r.at,
                kind,
                r.image_sha.short(),
                status,
                r.target,
                r.initiated_by
            ))?;
            // A refused attempt says why, so the audit reads it without --json.
            if r.status == Status::Refused {
                output::print_text(format_args!(
                    "    REFUSED before the target was touched: {}",
                    r.error.as_deref().unwrap_or("(no reason recorded)")
                ))?;
            }
            // A rebuild that stood for a digest the registry had lost.
            if let Some(original) = &r.rebuild_of {
                output::print_text(format_args!(
                    "    REBUILD: {} in place of {original} (gone from the registry; same layers and run config)",
                    r.image_digest
                ))?;
            }
            for step in r.analysis.iter().flat_map(|a| &a.steps) {
                output::print_text(format_args!("    {}", step.line()))?;
            }
        }
    }
    Ok(())
}

/// Releases `running` while the lock is free or stale, as `abandoned`, with
/// a note saying why; unchanged while a live process holds the lock.
pub fn shown_abandoned(mut releases: Vec<Release>, lock: &LockState) -> Vec<Release> {
    if matches!(lock, LockState::Held(_)) {
        return releases;
    }
    for r in releases.iter_mut().filter(|r| r.status == Status::Running) {
        eprintln!(
            "note: release {} is `running` in the ledger but no live process holds the {} lock: its process died, shown as abandoned (the next deploy or rollback records it)",
            r.id, r.environment
        );
        r.status = Status::Abandoned;
    }
    releases
}
