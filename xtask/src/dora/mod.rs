//! The four DORA keys of one environment, computed from its ledger and the
//! commit times git holds (`cargo xtask report`, issue 22). Pure: the
//! releases, the commit times and the window come in; no clock is read, so
//! the same ledger gives the same report whenever it is asked.
//!
//! - **deployment frequency**: verified deploys (`deploy`, `complete`) per
//!   day over the days the window observed (from its start, or the first
//!   record if later, to its newest record); at least a day of records.
//! - **lead time for changes**: commit time (git's committer time) of a
//!   deployed SHA → the time its first verified deploy in this environment
//!   was recorded; the median.
//! - **change failure rate**: deploys that failed (verification or apply;
//!   the automatic rollback follows them) or that a manual rollback later
//!   replaced, over the deploys that concluded (`complete` or `failed`).
//! - **time to restore**: a failed deploy's start → the next verified
//!   release after it in the ledger (usually its automatic rollback); a deploy
//!   rolled back by hand: its start → that rollback's time; the median.
//!
//! A figure that has nothing to be computed from is `null` with a note
//! ("not enough data: …"), never 0 made up. Times that go backwards (a
//! record earlier than the commit or failure it follows) are left out of the
//! figure and counted.

mod keys;
pub mod render;
pub mod since;

use std::collections::HashMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ledger::{Reason, RecordKind, Release, Status};
use crate::model::environment::Environment;
use crate::model::sha::GitSha;
use crate::support::output;
pub use since::Since;

pub const NOT_ENOUGH: &str = "not enough data";

pub struct Input<'a> {
    pub env: Environment,
    /// The ledger as read: latest status of each release, in ledger order.
    pub releases: &'a [Release],
    pub unreadable_lines: usize,
    /// Committer time (unix seconds) of each SHA git knows.
    pub commit_times: &'a HashMap<GitSha, i64>,
    pub since: Since,
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub record: &'static str,
    pub environment: Environment,
    pub window: Window,
    pub releases: Counts,
    pub deployment_frequency: Frequency,
    pub lead_time: LeadTime,
    pub change_failure_rate: FailureRate,
    pub time_to_restore: Restore,
    /// One line per release in the window, for the chart.
    #[serde(skip)]
    pub timeline: Vec<Point>,
}

#[derive(Debug, serde::Serialize)]
pub struct Window {
    pub since: String,
    /// `null` when the ledger holds no readable record with a time.
    pub from: Option<String>,
    pub to: Option<String>,
    /// From the later of the window's start and the first record, to `to`.
    pub days_observed: f64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Counts {
    pub deploys: usize,
    pub verified_deploys: usize,
    pub failed_deploys: usize,
    pub interrupted_deploys: usize,
    /// `running` with no later line: in flight, or killed (`kill -9`).
    pub unfinished: usize,
    pub rollbacks: usize,
    pub automatic_rollbacks: usize,
    pub manual_rollbacks: usize,
    pub unreadable_lines: usize,
    /// Records whose time could not be read (left out of every figure).
    pub unreadable_times: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct Frequency {
    pub value: Option<f64>,
    pub unit: &'static str,
    pub per_week: Option<f64>,
    pub deploys: usize,
    pub days: f64,
    pub note: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct LeadTime {
    /// The median, in seconds.
    pub value: Option<f64>,
    pub unit: &'static str,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Deployed SHAs measured (the first verified deploy of each).
    pub changes: usize,
    /// Deployed SHAs git does not know (a shallow clone, a rewritten history).
    pub unknown_commits: usize,
    /// Deploys recorded before their commit's time (a clock went backwards).
    pub clock_backwards: usize,
    pub note: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct FailureRate {
    pub value: Option<f64>,
    pub unit: &'static str,
    pub failures: usize,
    pub failed: usize,
    pub rolled_back_by_hand: usize,
    /// Deploys that concluded (`complete` or `failed`).
    pub deploys: usize,
    pub note: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Restore {
    /// The median, in seconds.
    pub value: Option<f64>,
    pub unit: &'static str,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub restores: usize,
    /// Failures with no verified release after them yet.
    pub not_restored: usize,
    pub clock_backwards: usize,
    pub note: Option<String>,
}

/// A release on the chart: when, and whether it counts as a failure.
#[derive(Debug, Clone)]
pub struct Point {
    pub at: i64,
    pub verified_deploy: bool,
    pub failure: bool,
}

pub fn unix(rfc3339: &str) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

pub fn compute(input: Input) -> Report {
    let rs = input.releases;
    let times: Vec<Option<(i64, i64)>> = rs
        .iter()
        .map(|r| Some((unix(&r.started_at)?, unix(&r.at)?)))
        .collect();
    let to = times.iter().flatten().map(|(_, at)| *at).max();
    let first = times.iter().flatten().map(|(_, at)| *at).min();
    let from = to.map(|to| to - input.since.seconds());
    let observed_from = match (from, first) {
        (Some(from), Some(first)) => from.max(first),
        _ => 0,
    };
    let days = to.map_or(0.0, |to| (to - observed_from) as f64 / 86_400.0);
    let in_window = |i: usize| match (times[i], from) {
        (Some((_, at)), Some(from)) => at >= from,
        _ => false,
    };
    let window: Vec<usize> = (0..rs.len()).filter(|i| in_window(*i)).collect();

    let mut counts = Counts {
        unreadable_lines: input.unreadable_lines,
        unreadable_times: times.iter().filter(|t| t.is_none()).count(),
        ..Counts::default()
    };
    for &i in &window {
        let r = &rs[i];
        match r.record {
            RecordKind::Deploy => {
                counts.deploys += 1;
                match r.status {
                    Status::Complete => counts.verified_deploys += 1,
                    Status::Failed => counts.failed_deploys += 1,
                    Status::Interrupted => counts.interrupted_deploys += 1,
                    Status::Running => counts.unfinished += 1,
                }
            }
            RecordKind::Rollback => {
                counts.rollbacks += 1;
                if r.status == Status::Running {
                    counts.unfinished += 1;
                }
                match r.reason {
                    Some(Reason::FailedVerification) => counts.automatic_rollbacks += 1,
                    Some(Reason::Manual) | None => counts.manual_rollbacks += 1,
                    Some(Reason::Interrupted) => {}
                }
            }
        }
    }

    let frequency = keys::frequency(counts.verified_deploys, days, window.len());
    let lead_time = keys::lead_time(rs, &times, &window, input.commit_times);
    let rolled_back = keys::rolled_back_by_hand(rs);
    let (failure_rate, failures) = keys::failure_rate(rs, &window, &rolled_back);
    let restore = keys::restore(rs, &times, &failures, &rolled_back);
    let timeline = window
        .iter()
        .filter_map(|&i| {
            let (_, at) = times[i]?;
            let r = &rs[i];
            let deploy = r.record == RecordKind::Deploy;
            Some(Point {
                at,
                verified_deploy: deploy && r.status == Status::Complete,
                failure: failures.contains(&i),
            })
        })
        .collect();
    Report {
        record: "report",
        environment: input.env,
        window: Window {
            since: input.since.to_string(),
            from: to.map(|_| output::from_unix(observed_from)),
            to: to.map(output::from_unix),
            days_observed: keys::round(days, 3),
        },
        releases: counts,
        deployment_frequency: frequency,
        lead_time,
        change_failure_rate: failure_rate,
        time_to_restore: restore,
        timeline,
    }
}
