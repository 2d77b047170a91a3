//! The four keys, each from the releases of the window (see `mod.rs` for
//! their definitions), and the median they share.

use std::collections::HashMap;

use super::{FailureRate, Frequency, LeadTime, NOT_ENOUGH, Restore, render};
use crate::ledger::{Reason, RecordKind, Release, Status};
use crate::model::sha::GitSha;

pub fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

pub fn frequency(deploys: usize, days: f64, records: usize) -> Frequency {
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

pub fn lead_time(
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
pub fn rolled_back_by_hand(rs: &[Release]) -> HashMap<usize, usize> {
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

pub fn failure_rate(
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

pub fn restore(
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
pub fn stats(xs: &mut [f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(stats(&mut []), (None, None, None));
        assert_eq!(stats(&mut [5.0]), (Some(5.0), Some(5.0), Some(5.0)));
        assert_eq!(
            stats(&mut [9.0, 1.0, 4.0]),
            (Some(4.0), Some(1.0), Some(9.0))
        );
        assert_eq!(
            stats(&mut [100.0, 3_630.0]),
            (Some(1_865.0), Some(100.0), Some(3_630.0))
        );
    }

    #[test]
    fn under_a_day_of_records_there_is_no_rate() {
        let f = frequency(3, 0.5, 4);
        assert_eq!((f.value, f.deploys), (None, 3));
        assert!(f.note.is_some_and(|n| n.contains("spanning 12h 00m")));
        let f = frequency(3, 2.0, 4);
        assert_eq!((f.value, f.per_week), (Some(1.5), Some(10.5)));
    }
}
