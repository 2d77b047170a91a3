//! Release metrics in Prometheus' conventions (issue 22), written after
//! every task to the sinks that are configured:
//!
//! - `XTASK_METRICS_DIR` (or `--metrics-dir`): node_exporter's textfile
//!   collector; `xtask.prom` is rewritten atomically (a temp file in the same
//!   folder, then a rename), so the collector never reads half a file.
//! - `XTASK_PUSHGATEWAY_URL`: a Pushgateway; the whole group `job="xtask"`
//!   is replaced (HTTP PUT) with the same text.
//!
//! xtask is a CLI, not a process that lives between releases, so it keeps no
//! counters in memory: every figure is derived afresh from durable records,
//! the ledgers (deploys, rollbacks, their durations) and the build log
//! (`<state dir>/metrics/builds.jsonl`, one line per `ci-build`). Rewriting
//! the file is then idempotent, a crash between a release and its metrics
//! loses nothing, and the counters can never disagree with `history`
//! (docs/decisions.md). A sink that is down is one warning line; it never
//! changes a task's outcome.

pub mod builds;
pub mod exposition;
mod sinks;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ledger::{Ledger, Reason, RecordKind, Release, Status};
use crate::model::environment::Environment;
use crate::model::repository::RepositoryKind;
use crate::support::project::{Project, RepositoryArgs, ResolvedRepositories};
use exposition::{Exposition, Labels};

/// Build durations: a clean build of the api takes minutes.
const BUILD_BUCKETS: [f64; 9] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];
/// Release durations: seconds on the docker target, minutes on Akash.
const RELEASE_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0];

/// Where the metrics go; neither set means nothing is computed.
#[derive(Debug, Default, Clone)]
pub struct Sinks {
    pub dir: Option<PathBuf>,
    pub pushgateway: Option<String>,
}

impl Sinks {
    /// `--metrics-dir` (clap also reads `XTASK_METRICS_DIR` into it) and
    /// `XTASK_PUSHGATEWAY_URL`; empty values count as unset.
    pub fn new(dir: Option<PathBuf>) -> Sinks {
        Sinks {
            dir: dir.filter(|d| !d.as_os_str().is_empty()),
            pushgateway: std::env::var("XTASK_PUSHGATEWAY_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
        }
    }

    pub fn any(&self) -> bool {
        self.dir.is_some() || self.pushgateway.is_some()
    }
}

/// Compute the metrics and write them to every configured sink. Never
/// fails: each sink that cannot be written is one warning on stderr.
pub fn publish(project: &Project, sinks: &Sinks) {
    if !sinks.any() {
        return;
    }
    let text = render(project);
    if let Some(dir) = &sinks.dir
        && let Err(e) = sinks::textfile(dir, &text)
    {
        eprintln!(
            "warning: metrics not written to {}: {e:#}; the task itself is unaffected",
            dir.display()
        );
    }
    if let Some(url) = &sinks.pushgateway
        && let Err(e) = sinks::push(url, &text)
    {
        eprintln!(
            "warning: metrics not pushed to the Pushgateway: {e:#}; the task itself is unaffected"
        );
    }
}

/// The exposition text of every environment's ledger and the build log.
pub fn render(project: &Project) -> String {
    let repos = RepositoryArgs {
        repository: None,
        staging_repository: None,
    }
    .resolve(project)
    .ok();
    let mut ledgers = Vec::new();
    let mut unreadable: BTreeMap<Labels, f64> = BTreeMap::new();
    for env in [Environment::Staging, Environment::Production] {
        // Unreadable lines are counted (a gauge), not printed: the task that
        // runs may be anything, and `history` already names them.
        let (releases, skipped) = match Ledger::open(project, env).read() {
            Ok(read) => (read.releases, read.skipped.len()),
            Err(_) => (Vec::new(), 1),
        };
        unreadable.insert(vec![("environment", env.to_string())], skipped as f64);
        ledgers.push(releases);
    }
    let builds = builds::read(project);
    let mut e = Exposition::default();
    let all: Vec<&Release> = ledgers.iter().flatten().collect();
    families(&mut e, &all, &builds, repos.as_ref());
    e.gauge(
        "xtask_ledger_unreadable_lines",
        "Ledger lines that could not be read (torn writes), per environment.",
        &unreadable,
    );
    e.into_text()
}

/// The families, from the releases (latest status of each) and builds.
fn families(
    e: &mut Exposition,
    releases: &[&Release],
    builds: &[builds::Build],
    repos: Option<&ResolvedRepositories>,
) {
    let mut built: BTreeMap<Labels, u64> = BTreeMap::new();
    let mut build_secs: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
    // Both repository types always appear, so a rate over zero builds is 0.
    for kind in [RepositoryKind::Canonical, RepositoryKind::Staging] {
        built.insert(vec![("repository_type", kind.to_string())], 0);
    }
    for b in builds {
        let labels = vec![("repository_type", b.repository_type.to_string())];
        *built.entry(labels.clone()).or_default() += 1;
        build_secs
            .entry(labels)
            .or_default()
            .push(b.build_duration_sec);
    }
    let mut deploys: BTreeMap<Labels, u64> = BTreeMap::new();
    let mut rollbacks: BTreeMap<Labels, u64> = BTreeMap::new();
    let mut release_secs: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
    for r in releases {
        let record = match r.record {
            RecordKind::Deploy => {
                let labels = vec![
                    ("environment", r.environment.to_string()),
                    ("status", r.status.to_string()),
                    ("target", r.target.to_string()),
                ];
                *deploys.entry(labels).or_default() += 1;
                "deploy"
            }
            RecordKind::Rollback => {
                let labels = vec![
                    ("reason", reason(r.reason).to_owned()),
                    ("repository_type", repository_type(r, repos).to_owned()),
                ];
                *rollbacks.entry(labels).or_default() += 1;
                "rollback"
            }
        };
        // A release still `running` has no duration yet.
        if r.status != Status::Running {
            let labels = vec![
                ("environment", r.environment.to_string()),
                ("record", record.to_owned()),
                ("target", r.target.to_string()),
            ];
            release_secs.entry(labels).or_default().push(r.duration_sec);
        }
    }
    e.counter(
        "image_build_total",
        "Finished ci-build runs (a clean build, then pushed or adopted), by repository type (canonical: main; staging: other branches).",
        &built,
    );
    e.histogram(
        "image_build_duration_seconds",
        "Duration of ci-build (clean compile, image, push, read-back, signing).",
        &BUILD_BUCKETS,
        &build_secs,
    );
    e.counter(
        "deploy_total",
        "Deploys by environment, target and final status (complete, failed, interrupted, running).",
        &deploys,
    );
    e.counter(
        "rollback_total",
        "Rollbacks by repository type and reason (manual, failed-verification = automatic, interrupted).",
        &rollbacks,
    );
    e.histogram(
        "release_duration_seconds",
        "Duration of a deploy or rollback, from its start to its final status.",
        &RELEASE_BUCKETS,
        &release_secs,
    );
}

fn reason(reason: Option<Reason>) -> &'static str {
    match reason {
        Some(Reason::Manual) => "manual",
        Some(Reason::FailedVerification) => "failed-verification",
        Some(Reason::Interrupted) => "interrupted",
        None => "unknown",
    }
}

/// The ledger records the repository, not its type: matched against the
/// configured pair; production only ever takes the canonical one.
fn repository_type(r: &Release, repos: Option<&ResolvedRepositories>) -> &'static str {
    if let Some(repos) = repos {
        if r.repository == repos.canonical {
            return "canonical";
        }
        if r.repository == repos.staging {
            return "staging";
        }
    }
    match r.environment {
        Environment::Production => "canonical",
        Environment::Staging => "unknown",
    }
}
