//! `cargo xtask history --env …`: the release ledger, newest first.

use crate::ledger::Ledger;
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
    let releases = ledger.read_reporting()?;
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
            for step in r.analysis.iter().flat_map(|a| &a.steps) {
                output::print_text(format_args!("    {}", step.line()))?;
            }
        }
    }
    Ok(())
}
