//! `cargo xtask`: build, ship and roll back the api by git SHA.
//!
//! This file is the table of contents: parse, find the project root once,
//! dispatch to one module per task.

mod analysis;
mod build;
mod dora;
mod ledger;
mod metrics;
mod model;
mod promote;
mod registry;
mod release;
mod supply;
mod support;
mod targets;
mod tasks;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::support::project::Project;

const ONBOARDING: &str = "\
Every image is named by the full 40-character git SHA it was built from (and a
12-character short tag); nothing floats. The flow:

  cargo xtask ci-build                     build HEAD's commit clean, push <repo>:<sha>, read the
                                           digest back, check the signature, write
                                           target/xtask/metadata.json
  cargo xtask verify-build <sha>           rebuild that commit clean; does the registry's image
                                           hold the same /api and layer? (exit 0 or 1)
  cargo xtask deploy <sha> --env staging   run exactly that digest, verify /health and /version,
                                           roll back by itself if verification fails; on the
                                           docker target behind HAProxy, no request dropped
  cargo xtask deploy <sha> --env production --strategy canary
                                           10 %, 50 %, 100 % of the traffic, each step judged on
                                           both releases' /metrics; withdrawn by itself if bad
  cargo xtask rollback --env staging       back to the previous verified release (no build)
  cargo xtask release v1.2.3               tag that commit's image 1.2.3 by digest (no build), write
                                           binary, SBOM, SHA256SUMS/SHA512SUMS, notes (an annotated tag on main)
  cargo xtask status|history --env …       what runs now (asked of the target; non-zero when it
                                           cannot be asked or does not serve its SHA) / the ledger
  cargo xtask report                       the DORA keys from the ledgers and git
  cargo xtask proxy build                  the docker target's HAProxy image, from this machine

With nothing configured, images go to a local registry on localhost:5000
(`cargo xtask registry up`) and deploys run on the local Docker engine.
Every command prints each external command it runs; `--dry-run` only prints.
Docs: README.md, docs/quickstart.md, docs/rollback.md; the code's map: xtask/README.md.";

/// Release automation for the api: build, deploy and roll back by git SHA.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about, long_about = None, after_help = ONBOARDING)]
struct Cli {
    /// Show the full chain of causes on errors
    #[arg(short, long, global = true)]
    verbose: bool,
    /// node_exporter textfile-collector folder: every task rewrites xtask.prom there atomically (XTASK_PUSHGATEWAY_URL: also push to a Pushgateway)
    #[arg(long, global = true, value_name = "DIR", env = "XTASK_METRICS_DIR")]
    metrics_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build HEAD's commit clean (its blobs written out of git, sealed from this machine, empty target dir, --locked), push it tagged by SHA, read the digest back, sign it, record it
    CiBuild(tasks::ci_build::Args),
    /// Rebuild a SHA clean and compare /api's sha256 and the layer diff_id with the image the registry (or --env's ledger) names; exit 0 on a match, 1 otherwise
    VerifyBuild(tasks::verify_build::Args),
    /// Deploy the image of one commit SHA: checked, pinned by digest, verified, rolled back on failure
    Deploy(tasks::deploy::Args),
    /// Return to an earlier SHA (default: the previous verified release), with its config; never builds
    Rollback(tasks::rollback::Args),
    /// What runs in an environment now, asked of the target and of the service itself
    Status(tasks::status::Args),
    /// The release ledger of an environment, newest first
    History(tasks::history::Args),
    /// Name a version: tag the image of an annotated vX.Y.Z git tag's commit as X.Y.Z by digest (no build), write binary, SBOM, checksums, notes
    Release(tasks::release::Args),
    /// Share of signature-verified releases in the last 30, and whether to turn strict
    SigningReport(tasks::signing_report::Args),
    /// The four DORA keys of an environment from its ledger and git (frequency, lead time, failure rate, time to restore), with signing coverage
    Report(tasks::report::Args),
    /// The docker target's reverse proxy (HAProxy): `proxy build` makes its image from this machine's binary
    Proxy {
        #[command(subcommand)]
        action: tasks::proxy::Action,
    },
    /// Start or stop the local registry used when no repository is configured
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
}

#[derive(Debug, Subcommand)]
enum RegistryAction {
    /// Start a registry on 127.0.0.1 (Debian's docker-registry, else the registry:2 image)
    Up {
        #[arg(long, default_value_t = 5000)]
        port: u16,
    },
    /// Stop the registry that `registry up` started
    Down,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let verbose = cli.verbose;
    let result = run(cli);
    // The webhook goes out after the task (and its lock) is done, bounded.
    ledger::notify::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if verbose {
                eprintln!("error: {err:?}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// clap's help and version go out as clap renders them; a usage error is
/// one line (clap's first), exit 2.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return if err.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    // A value our parser refused: clap would echo it raw, and a newline or
    // carriage return in it (a SHA pasted from a file) would cut the line
    // before the reason. Show it with control characters made visible.
    if err.kind() == ErrorKind::ValueValidation
        && let (Some(ContextValue::String(value)), Some(ContextValue::String(arg)), Some(why)) = (
            err.get(ContextKind::InvalidValue),
            err.get(ContextKind::InvalidArg),
            std::error::Error::source(&err),
        )
    {
        eprintln!(
            "error: invalid value '{}' for '{arg}': {why} (see `cargo xtask --help`)",
            model::sha::printable(value)
        );
        return ExitCode::from(2);
    }
    // One line: clap's first, with the indented lines that complete it
    // (e.g. the names of missing arguments) folded in.
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
    let mut line = lines.next().unwrap_or("error: bad arguments").to_owned();
    if line.ends_with(':') {
        let details: Vec<&str> = lines
            .take_while(|l| l.starts_with(' '))
            .map(str::trim)
            .collect();
        line = format!("{line} {}", details.join(", "));
    }
    eprintln!("{line} (see `cargo xtask --help`)");
    ExitCode::from(2)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Ctrl-C and SIGTERM only set flags: each task ends its children and
    // cleans up (support/interrupt.rs).
    support::interrupt::install()?;
    let project = Project::locate()?;
    let sinks = metrics::Sinks::new(cli.metrics_dir);
    let released = match &cli.task {
        Task::Deploy(args) => Some(args.common.env),
        Task::Rollback(args) => Some(args.common.env),
        _ => None,
    };
    let result = dispatch(cli.task, &project);
    // After every task, whatever its outcome: a failed deploy counts too.
    metrics::publish(&project, &sinks);
    if let Some(env) = released {
        tasks::report::step_summary(&project, env);
    }
    result
}

fn dispatch(task: Task, project: &Project) -> anyhow::Result<()> {
    match task {
        Task::CiBuild(args) => tasks::ci_build::run(args, project),
        Task::VerifyBuild(args) => tasks::verify_build::run(args, project),
        Task::Deploy(args) => tasks::deploy::run(args, project),
        Task::Rollback(args) => tasks::rollback::run(args, project),
        Task::Status(args) => tasks::status::run(args, project),
        Task::History(args) => tasks::history::run(args, project),
        Task::Release(args) => tasks::release::run(args, project),
        Task::SigningReport(args) => tasks::signing_report::run(args, project),
        Task::Report(args) => tasks::report::run(args, project),
        Task::Proxy { action } => tasks::proxy::run(action, project),
        Task::Registry {
            action: RegistryAction::Up { port },
        } => registry::local::up(&project.state_dir(), port),
        Task::Registry {
            action: RegistryAction::Down,
        } => registry::local::down(&project.state_dir()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
