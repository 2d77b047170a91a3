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

    let frequency = frequency(counts.verified_deploys, days, window.len());
    let lead_time = lead_time(rs, &times, &window, input.commit_times);
    let rolled_back = rolled_back_by_hand(rs);
    let (failure_rate, failures) = failure_rate(rs, &window, &rolled_back);
    let restore = restore(rs, &times, &failures, &rolled_back);
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
            days_observed: round(days, 3),
        },
        releases: counts,
        deployment_frequency: frequency,
        lead_time,
        change_failure_rate: failure_rate,
        time_to_restore: restore,
        timeline,
    }
}

fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

fn frequency(deploys: usize, days: f64, records: usize) -> Frequency {
    // Under a day of records, a rate per day would be an extrapolation
    // (two deploys a minute apart are not 2880 a day).
    let (value, per_week, note) = if days >= 1.0 {
        let per_day = deploys as f64 / days;
        (Some(round(per_day, 3)), Some(round(per_day * 7.0, 3)), None)
    } else {
        (
            None,
            None,
            Some(format!(
                "{NOT_ENOUGH}: {records} record(s) in the window, spanning {} (less than a day)",
                render::duration(days * 86_400.0)
            )),
        )
    };
    Frequency {
        value,
        unit: "deploys/day",
        per_week,
        deploys,
        days: round(days, 3),
        note,
    }
}

fn lead_time(
    rs: &[Release],
    times: &[Option<(i64, i64)>],
    window: &[usize],
    commits: &HashMap<GitSha, i64>,
) -> LeadTime {
    let verified =
        |i: usize| rs[i].record == RecordKind::Deploy && rs[i].status == Status::Complete;
    let (mut leads, mut unknown, mut backwards) = (Vec::new(), 0, 0);
    for &i in window.iter().filter(|i| verified(**i)) {
        let sha = &rs[i].image_sha;
        // The first verified deploy of this SHA (a redeploy is not a change).
        if (0..i).any(|j| verified(j) && &rs[j].image_sha == sha) {
            continue;
        }
        let (Some(commit), Some((_, at))) = (commits.get(sha), times[i]) else {
            unknown += 1;
            continue;
        };
        if at < *commit {
            backwards += 1;
        } else {
            leads.push((at - commit) as f64);
        }
    }
    let (value, min, max) = stats(&mut leads);
    LeadTime {
        value,
        unit: "seconds",
        min,
        max,
        changes: leads.len(),
        unknown_commits: unknown,
        clock_backwards: backwards,
        note: value.is_none().then(|| {
            format!(
                "{NOT_ENOUGH}: no verified deploy in the window with a commit time ({unknown} not in git, {backwards} before their commit)"
            )
        }),
    }
}

/// Completed deploys a manual rollback replaced, each with that rollback:
/// the newest verified deploy of the rollback's `previous_sha` before it.
fn rolled_back_by_hand(rs: &[Release]) -> HashMap<usize, usize> {
    let mut map = HashMap::new();
    for (k, r) in rs.iter().enumerate() {
        let manual = r.record == RecordKind::Rollback
            && matches!(r.reason, Some(Reason::Manual) | None)
            && matches!(r.status, Status::Complete | Status::Failed);
        let Some(prev) = r.previous_sha.as_ref().filter(|_| manual) else {
            continue;
        };
        if let Some(d) = (0..k).rev().find(|&d| {
            rs[d].record == RecordKind::Deploy
                && rs[d].status == Status::Complete
                && &rs[d].image_sha == prev
        }) {
            map.entry(d).or_insert(k);
        }
    }
    map
}

fn failure_rate(
    rs: &[Release],
    window: &[usize],
    rolled_back: &HashMap<usize, usize>,
) -> (FailureRate, Vec<usize>) {
    let deploys: Vec<usize> = window
        .iter()
        .copied()
        .filter(|&i| {
            rs[i].record == RecordKind::Deploy
                && matches!(rs[i].status, Status::Complete | Status::Failed)
        })
        .collect();
    let failed: Vec<usize> = deploys
        .iter()
        .copied()
        .filter(|&i| rs[i].status == Status::Failed)
        .collect();
    let by_hand: Vec<usize> = deploys
        .iter()
        .copied()
        .filter(|i| rolled_back.contains_key(i))
        .collect();
    let failures: Vec<usize> = deploys
        .iter()
        .copied()
        .filter(|i| failed.contains(i) || by_hand.contains(i))
        .collect();
    let value =
        (!deploys.is_empty()).then(|| round(failures.len() as f64 / deploys.len() as f64, 4));
    (
        FailureRate {
            value,
            unit: "ratio",
            failures: failures.len(),
            failed: failed.len(),
            rolled_back_by_hand: by_hand.len(),
            deploys: deploys.len(),
            note: value
                .is_none()
                .then(|| format!("{NOT_ENOUGH}: no deploy concluded in the window")),
        },
        failures,
    )
}

fn restore(
    rs: &[Release],
    times: &[Option<(i64, i64)>],
    failures: &[usize],
    rolled_back: &HashMap<usize, usize>,
) -> Restore {
    let (mut durations, mut not_restored, mut backwards) = (Vec::new(), 0, 0);
    for &i in failures {
        let end = match rolled_back.get(&i) {
            Some(&k) if rs[k].status == Status::Complete => Some(k),
            _ => (i + 1..rs.len()).find(|&k| rs[k].status == Status::Complete),
        };
        let (Some((start, _)), Some(Some((_, end)))) = (times[i], end.map(|k| times[k])) else {
            not_restored += 1;
            continue;
        };
        if end < start {
            backwards += 1;
        } else {
            durations.push((end - start) as f64);
        }
    }
    let (value, min, max) = stats(&mut durations);
    Restore {
        value,
        unit: "seconds",
        min,
        max,
        restores: durations.len(),
        not_restored,
        clock_backwards: backwards,
        note: value.is_none().then(|| {
            format!(
                "{NOT_ENOUGH}: {} failure(s) in the window, none restored with consistent times",
                failures.len()
            )
        }),
    }
}

/// Median (mean of the two middle values when even), min, max.
fn stats(xs: &mut [f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    if xs.is_empty() {
        return (None, None, None);
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    (Some(median), Some(xs[0]), Some(xs[n - 1]))
}
