//! `cargo xtask report --env <env> [--since 30d] [--json|--markdown]`: the
//! four DORA keys from the ledger and git (see `dora/`), with the signing
//! coverage `signing-report` computes folded in.

use std::collections::HashMap;
use std::io::Write as _;

use crate::dora::{self, Since};
use crate::ledger::{Ledger, Release, Status};
use crate::model::environment::Environment;
use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;
use crate::support::output;
use crate::support::project::Project;
use crate::tasks::signing_report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which environment's ledger
    #[arg(long, value_enum)]
    pub env: Environment,
    /// How far back from the newest record: a whole number of h, d or w
    #[arg(long, value_name = "PERIOD", default_value = "30d")]
    pub since: Since,
    /// One JSON object on stdout
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Markdown with a Mermaid chart, for $GITHUB_STEP_SUMMARY (also appended there when it is set)
    #[arg(long)]
    pub markdown: bool,
}

/// The record `--json` prints: the four keys, then the signing coverage.
#[derive(serde::Serialize)]
struct Record {
    #[serde(flatten)]
    report: dora::Report,
    /// signing-report's figures over the window's verified releases.
    signing: signing_report::Report,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let record = compute(project, args.env, args.since)?;
    if args.json {
        return output::print_line(&record);
    }
    if args.markdown {
        let text = markdown(&record);
        append_to_step_summary(&text)?;
        return output::print_text(text.trim_end());
    }
    output::print_text(dora::render::text(&record.report, &extra(&record)))
}

fn markdown(record: &Record) -> String {
    dora::render::markdown(&record.report, &extra(record))
}

fn extra(record: &Record) -> Vec<(&'static str, String)> {
    let s = &record.signing;
    vec![(
        "signing",
        format!(
            "signature {}/{} verified ({:.1}%), sbom {}, provenance {} (the window's last {} verified releases)",
            s.verified,
            s.releases,
            s.share * 100.0,
            s.sbom.verified,
            s.provenance.verified,
            s.releases
        ),
    )]
}

/// After a deploy or a rollback in a GitHub job (`GITHUB_STEP_SUMMARY`
/// set): the environment's report of the last 30 days in the job summary,
/// below the release. The workflows stay one xtask call per job; a report
/// that cannot be made is a warning, never a failed release.
pub fn step_summary(project: &Project, env: Environment) {
    if std::env::var_os("GITHUB_STEP_SUMMARY").is_none() {
        return;
    }
    let written =
        compute(project, env, Since::default()).and_then(|r| append_to_step_summary(&markdown(&r)));
    if let Err(e) = written {
        eprintln!("warning: no report in the job summary: {e:#}");
    }
}

fn append_to_step_summary(text: &str) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{text}")?;
    }
    Ok(())
}

fn compute(project: &Project, env: Environment, since: Since) -> anyhow::Result<Record> {
    let read = Ledger::open(project, env).read()?;
    for s in &read.skipped {
        eprintln!("warning: skipped an unreadable ledger line (torn write?) at {s}");
    }
    let commit_times = commit_times(project, &read.releases);
    let policy = project.release_config()?.environment(env).policy;
    Ok(Record {
        report: dora::compute(dora::Input {
            env,
            releases: &read.releases,
            unreadable_lines: read.skipped.len(),
            commit_times: &commit_times,
            since,
        }),
        signing: signing(env, &read.releases, since, policy),
    })
}

/// signing-report's figures over the verified releases of the window.
fn signing(
    env: Environment,
    releases: &[Release],
    since: Since,
    policy: crate::supply::policy::Policy,
) -> signing_report::Report {
    let newest = releases.iter().filter_map(|r| dora::unix(&r.at)).max();
    let complete: Vec<&Release> = releases
        .iter()
        .filter(|r| r.status == Status::Complete)
        .filter(|r| {
            matches!((dora::unix(&r.at), newest), (Some(at), Some(n)) if at >= n - since.seconds())
        })
        .collect();
    signing_report::report(env, &complete, policy)
}

/// Committer times of the deployed SHAs, in one `git log` (SHAs git does
/// not know are skipped by `--ignore-missing` and reported as unknown).
fn commit_times(project: &Project, releases: &[Release]) -> HashMap<GitSha, i64> {
    let mut shas: Vec<&GitSha> = releases.iter().map(|r| &r.image_sha).collect();
    shas.sort_by_key(|s| s.as_str());
    shas.dedup();
    if shas.is_empty() {
        return HashMap::new();
    }
    let cmd = Cmd::new("git")
        .arg("-C")
        .arg(project.root.display().to_string())
        .args([
            "log",
            "--no-walk=unsorted",
            "--ignore-missing",
            "--format=%H %ct",
        ])
        .args(shas.iter().map(|s| s.as_str()));
    let out = match cmd.read() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("warning: no commit times from git ({e:#}): lead time cannot be computed");
            return HashMap::new();
        }
    };
    out.lines()
        .filter_map(|l| {
            let (sha, at) = l.split_once(' ')?;
            Some((sha.parse().ok()?, at.trim().parse().ok()?))
        })
        .collect()
}
