//! The report as text (a terminal) and as Markdown with a Mermaid chart
//! (`$GITHUB_STEP_SUMMARY`: GitHub renders Mermaid blocks in job summaries).

use std::fmt::Write as _;

use super::{NOT_ENOUGH, Point, Report};

/// `41s`, `5m 03s`, `2h 03m`, `3d 4h`.
pub fn duration(secs: f64) -> String {
    let s = secs.round() as i64;
    match s {
        ..60 => format!("{s}s"),
        60..3_600 => format!("{}m {:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {:02}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

fn or_note(value: Option<String>, note: &Option<String>) -> String {
    value.unwrap_or_else(|| note.clone().unwrap_or_else(|| NOT_ENOUGH.to_owned()))
}

/// The four lines (label, figure, counts) both renderings share.
fn lines(r: &Report) -> Vec<(&'static str, String, String)> {
    let f = &r.deployment_frequency;
    let l = &r.lead_time;
    let c = &r.change_failure_rate;
    let t = &r.time_to_restore;
    vec![
        (
            "deployment frequency",
            or_note(
                f.value
                    .zip(f.per_week)
                    .map(|(d, w)| format!("{d:.2}/day ({w:.1}/week)")),
                &f.note,
            ),
            format!("{} verified deploys over {:.1} days", f.deploys, f.days),
        ),
        (
            "lead time for changes",
            or_note(
                l.value.map(|m| {
                    format!(
                        "median {} (min {}, max {})",
                        duration(m),
                        duration(l.min.unwrap_or(m)),
                        duration(l.max.unwrap_or(m))
                    )
                }),
                &l.note,
            ),
            format!(
                "{} changes; {} commit(s) not in git; {} with the clock going backwards",
                l.changes, l.unknown_commits, l.clock_backwards
            ),
        ),
        (
            "change failure rate",
            or_note(c.value.map(|v| format!("{:.1}%", v * 100.0)), &c.note),
            format!(
                "{} of {} deploys ({} failed, {} rolled back by hand)",
                c.failures, c.deploys, c.failed, c.rolled_back_by_hand
            ),
        ),
        (
            "time to restore",
            or_note(
                t.value.map(|m| {
                    format!(
                        "median {} (min {}, max {})",
                        duration(m),
                        duration(t.min.unwrap_or(m)),
                        duration(t.max.unwrap_or(m))
                    )
                }),
                &t.note,
            ),
            format!(
                "{} restores; {} not restored; {} with the clock going backwards",
                t.restores, t.not_restored, t.clock_backwards
            ),
        ),
    ]
}

fn window_line(r: &Report) -> String {
    match (&r.window.from, &r.window.to) {
        (Some(from), Some(to)) => format!(
            "{}: {from} → {to} (--since {}; times from the ledger's records)",
            r.environment, r.window.since
        ),
        _ => format!(
            "{}: no release with a readable time in the ledger",
            r.environment
        ),
    }
}

fn ledger_line(r: &Report) -> String {
    let c = &r.releases;
    format!(
        "{} deploys ({} verified, {} failed, {} interrupted), {} rollbacks ({} automatic, {} by hand), {} unfinished, {} unreadable line(s)",
        c.deploys,
        c.verified_deploys,
        c.failed_deploys,
        c.interrupted_deploys,
        c.rollbacks,
        c.automatic_rollbacks,
        c.manual_rollbacks,
        c.unfinished,
        c.unreadable_lines
    )
}

/// Rows the caller adds below the four keys (label, text): the signing
/// coverage, which `report` computes with signing-report's function.
pub type Extra = [(&'static str, String)];

pub fn text(r: &Report, extra: &Extra) -> String {
    let mut out = window_line(r);
    for (label, figure, counts) in lines(r) {
        let _ = write!(out, "\n  {label:<22} {figure}: {counts}");
    }
    for (label, text) in extra {
        let _ = write!(out, "\n  {label:<22} {text}");
    }
    let _ = write!(out, "\n  {:<22} {}", "ledger", ledger_line(r));
    out
}

pub fn markdown(r: &Report, extra: &Extra) -> String {
    let mut out = format!(
        "### Delivery of {}\n\n{}\n\n",
        r.environment,
        window_line(r)
    );
    out.push_str("| key | figure | counts |\n|---|---|---|\n");
    for (label, figure, counts) in lines(r) {
        let _ = writeln!(out, "| {label} | {figure} | {counts} |");
    }
    for (label, text) in extra {
        let _ = writeln!(out, "| {label} | {text} | |");
    }
    let _ = writeln!(out, "\n{}\n", ledger_line(r));
    if let Some(chart) = chart(r) {
        out.push_str(&chart);
    }
    out
}

/// A Mermaid `xychart-beta`: verified deploys per day as bars, failures
/// (failed or rolled back by hand) as a line; per week past 31 days.
fn chart(r: &Report) -> Option<String> {
    let first = r.timeline.iter().map(|p| p.at).min()?;
    let last = r.timeline.iter().map(|p| p.at).max()?;
    let day = 86_400;
    let (start, step, per) = if (last / day - first / day) < 31 {
        (first / day * day, day, "day")
    } else {
        (first / day * day, 7 * day, "week")
    };
    let buckets = ((last - start) / step + 1) as usize;
    let mut verified = vec![0u32; buckets];
    let mut failed = vec![0u32; buckets];
    for Point {
        at,
        verified_deploy,
        failure,
    } in &r.timeline
    {
        let b = ((at - start) / step) as usize;
        verified[b] += u32::from(*verified_deploy);
        failed[b] += u32::from(*failure);
    }
    let labels: Vec<String> = (0..buckets)
        .map(|b| {
            let at = crate::support::output::from_unix(start + b as i64 * step);
            format!("\"{}\"", &at[5..10])
        })
        .collect();
    let top = verified
        .iter()
        .chain(&failed)
        .max()
        .copied()
        .unwrap_or(0)
        .max(1);
    let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    Some(format!(
        "```mermaid\nxychart-beta\n    title \"{env}: verified deploys (bars) and failures (line) per {per}\"\n    x-axis [{labels}]\n    y-axis \"releases\" 0 --> {top}\n    bar [{verified}]\n    line [{failed}]\n```\n",
        env = r.environment,
        labels = labels.join(", "),
        verified = join(&verified),
        failed = join(&failed),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(41.0), "41s");
        assert_eq!(duration(303.0), "5m 03s");
        assert_eq!(duration(7_380.0), "2h 03m");
        assert_eq!(duration(273_600.0), "3d 4h");
    }
}
