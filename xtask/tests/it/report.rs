//! `cargo xtask report`: the four DORA keys from synthetic ledgers (the edge
//! cases: empty, one release, a torn line, a clock going backwards), each
//! figure checked against the arithmetic written out here. The ledger built
//! by real deploys and rollbacks is in `metrics.rs` (one run feeds both).

use serde_json::Value;

use crate::support::ledger::{Line, append};
use crate::support::*;

const REPO: &str = "127.0.0.1:5999/t/api-staging";

struct Scene {
    project: Project,
    state: TempDir,
    shas: [String; 3],
    commit: [i64; 3],
}

impl Scene {
    /// A git repository with three commits A, B, C.
    fn new() -> Scene {
        let project = Project::tiny();
        let a = project.sha();
        let b = project.commit_empty("B");
        let c = project.commit_empty("C");
        let time = |sha: &str| -> i64 {
            project
                .git(&["show", "-s", "--format=%ct", sha])
                .parse()
                .expect("a commit time")
        };
        let commit = [time(&a), time(&b), time(&c)];
        Scene {
            project,
            state: TempDir::new("report-state"),
            shas: [a, b, c],
            commit,
        }
    }

    fn report(&self, args: &[&str]) -> Run {
        let mut all = vec!["report", "--env", "staging"];
        all.extend(args);
        self.project
            .xtask_cmd(&all)
            .env("XTASK_STATE_DIR", self.state.path())
            .run()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.report(&all);
        run.expect_success();
        run.last_json()
    }
}

#[allow(clippy::too_many_arguments)]
fn line<'a>(
    record: &'a str,
    id: &'a str,
    status: &'a str,
    sha: &'a str,
    previous_sha: Option<&'a str>,
    reason: Option<&'a str>,
    started: i64,
    at: i64,
) -> Value {
    Line {
        record,
        id,
        status,
        sha,
        previous_sha,
        reason,
        started,
        at,
        repository: REPO,
    }
    .json()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

/// Three deploys verified, one failed (and rolled back automatically), one
/// rolled back by hand, one still running, and a torn line in the middle.
#[test]
fn a_synthetic_ledger_gives_the_four_keys_as_computed_by_hand() {
    let s = Scene::new();
    let [a, b, c] = [&s.shas[0], &s.shas[1], &s.shas[2]];
    let base = s.commit[2]; // the newest commit's time
    let (a, b, c) = (a.as_str(), b.as_str(), c.as_str());
    let running =
        |id, sha, started| line("deploy", id, "running", sha, None, None, started, started);
    append(
        s.state.path(),
        &[
            Ok(running("d1", a, base)),
            Ok(line(
                "deploy",
                "d1",
                "complete",
                a,
                None,
                None,
                base,
                base + 60,
            )),
            Ok(running("d2", b, base + 3_600)),
            Ok(line(
                "deploy",
                "d2",
                "complete",
                b,
                Some(a),
                None,
                base + 3_600,
                base + 3_660,
            )),
            Err(r#"{"record":"deploy","id":"torn","sta"#),
            Ok(running("d3", c, base + 7_200)),
            Ok(line(
                "deploy",
                "d3",
                "failed",
                c,
                Some(b),
                None,
                base + 7_200,
                base + 7_290,
            )),
            Ok(line(
                "rollback",
                "r1",
                "complete",
                b,
                Some(c),
                Some("failed-verification"),
                base + 7_280,
                base + 7_300,
            )),
            Ok(running("d4", c, base + 86_400)),
            Ok(line(
                "deploy",
                "d4",
                "complete",
                c,
                Some(b),
                None,
                base + 86_400,
                base + 86_460,
            )),
            Ok(line(
                "rollback",
                "r2",
                "complete",
                b,
                Some(c),
                Some("manual"),
                base + 90_000,
                base + 90_030,
            )),
            Ok(running("d5", a, base + 100_000)),
        ],
    );
    let r = s.json(&[]);
    // The window ends at the newest record (d5's line), not at the clock.
    let to = base + 100_000;
    assert_eq!(r["window"]["to"], ledger::rfc3339(to).as_str(), "{r}");
    assert_eq!(r["window"]["from"], ledger::rfc3339(base + 60).as_str());
    let days = (to - (base + 60)) as f64 / 86_400.0;

    let counts = &r["releases"];
    assert_eq!(counts["deploys"], 5, "d1..d5: {r}");
    assert_eq!(counts["verified_deploys"], 3, "d1, d2, d4");
    assert_eq!(counts["failed_deploys"], 1, "d3");
    assert_eq!(counts["unfinished"], 1, "d5");
    assert_eq!(counts["rollbacks"], 2);
    assert_eq!(counts["automatic_rollbacks"], 1, "r1");
    assert_eq!(counts["manual_rollbacks"], 1, "r2");
    assert_eq!(counts["unreadable_lines"], 1, "the torn line");

    let freq = &r["deployment_frequency"];
    assert_eq!(freq["deploys"], 3);
    assert_eq!(f(&freq["value"]), round(3.0 / days, 3), "{freq}");
    assert_eq!(f(&freq["per_week"]), round(3.0 / days * 7.0, 3));

    // Lead time: d1 (A), d2 (B), d4 (C, its first verified deploy).
    let lead = &r["lead_time"];
    let leads = vec![
        (base + 60 - s.commit[0]) as f64,
        (base + 3_660 - s.commit[1]) as f64,
        (base + 86_460 - s.commit[2]) as f64,
    ];
    assert_eq!(lead["changes"], 3, "{lead}");
    assert_eq!(f(&lead["value"]), median(leads.clone()));
    assert_eq!(f(&lead["min"]), leads[0]);
    assert_eq!(f(&lead["max"]), leads[2]);
    assert_eq!(lead["unknown_commits"], 0);

    // Change failure rate: d3 failed, d4 rolled back by hand (r2) → 2 of
    // the 4 deploys that concluded (d5 still runs).
    let cfr = &r["change_failure_rate"];
    assert_eq!(
        (
            &cfr["failures"],
            &cfr["failed"],
            &cfr["rolled_back_by_hand"],
            &cfr["deploys"]
        ),
        (&2.into(), &1.into(), &1.into(), &4.into()),
        "{cfr}"
    );
    assert_eq!(f(&cfr["value"]), 0.5);

    // Time to restore: d3 started at base+7200, r1 verified at base+7300
    // → 100 s; d4 started at base+86400, r2 verified at base+90030 → 3630 s.
    let ttr = &r["time_to_restore"];
    assert_eq!(ttr["restores"], 2, "{ttr}");
    assert_eq!(f(&ttr["value"]), median(vec![100.0, 3_630.0]));
    assert_eq!((f(&ttr["min"]), f(&ttr["max"])), (100.0, 3_630.0));

    // The same ledger over the last day: only d4, r2 and d5 are in it.
    let r = s.json(&["--since", "1d"]);
    assert_eq!(r["window"]["from"], ledger::rfc3339(to - 86_400).as_str());
    assert_eq!(f(&r["deployment_frequency"]["value"]), 1.0, "{r}");
    assert_eq!(f(&r["change_failure_rate"]["value"]), 1.0);
    assert_eq!(f(&r["time_to_restore"]["value"]), 3_630.0);
    assert_eq!(
        f(&r["lead_time"]["value"]),
        (base + 86_460 - s.commit[2]) as f64
    );

    // Text and Markdown say the same figures; the chart has one bar per day.
    let text = s.report(&[]);
    text.expect_success();
    assert!(
        text.stdout.contains(
            "change failure rate    50.0%: 2 of 4 deploys (1 failed, 1 rolled back by hand)"
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stderr.contains("skipped an unreadable ledger line"),
        "{}",
        text.stderr
    );
    let summary = s.state.join("step-summary.md");
    let md = s
        .project
        .xtask_cmd(&["report", "--env", "staging", "--markdown"])
        .env("XTASK_STATE_DIR", s.state.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .run();
    md.expect_success();
    assert_eq!(
        std::fs::read_to_string(&summary)
            .expect("the job summary")
            .trim_end(),
        md.stdout.trim_end(),
        "the job summary gets what is printed"
    );
    assert!(
        md.stdout.contains("| change failure rate | 50.0% |"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("```mermaid\nxychart-beta\n"),
        "{}",
        md.stdout
    );
    let bars = md
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("bar ["))
        .expect("a bar series");
    let bars: Vec<u32> = bars
        .trim_end_matches(']')
        .split(", ")
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(
        bars.iter().sum::<u32>(),
        3,
        "three verified deploys: {bars:?}"
    );
}

#[test]
fn an_empty_ledger_reports_not_enough_data_for_every_key() {
    let s = Scene::new();
    let r = s.json(&[]);
    for key in [
        "deployment_frequency",
        "lead_time",
        "change_failure_rate",
        "time_to_restore",
    ] {
        assert!(r[key]["value"].is_null(), "{key}: {r}");
        let note = r[key]["note"].as_str().unwrap_or_default();
        assert!(note.starts_with("not enough data"), "{key}: {note}");
    }
    assert!(r["window"]["to"].is_null());
    assert_eq!(r["releases"]["deploys"], 0);
    let text = s.report(&[]);
    text.expect_success();
    assert_eq!(
        text.stdout.matches("not enough data").count(),
        4,
        "{}",
        text.stdout
    );
}

#[test]
fn one_release_has_a_lead_time_and_a_failure_rate_but_no_frequency_or_restore() {
    let s = Scene::new();
    let a = s.shas[0].as_str();
    let t = s.commit[0] + 500;
    append(
        s.state.path(),
        &[Ok(line(
            "deploy",
            "d1",
            "complete",
            a,
            None,
            None,
            t - 30,
            t,
        ))],
    );
    let r = s.json(&[]);
    assert!(
        r["deployment_frequency"]["value"].is_null(),
        "one instant is no span: {r}"
    );
    let note = r["deployment_frequency"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("spanning 0s (less than a day)"), "{note}");
    assert_eq!(r["deployment_frequency"]["deploys"], 1);
    assert_eq!(f(&r["lead_time"]["value"]), 500.0);
    assert_eq!(r["lead_time"]["changes"], 1);
    assert_eq!(f(&r["change_failure_rate"]["value"]), 0.0, "0 of 1");
    assert_eq!(r["change_failure_rate"]["deploys"], 1);
    assert!(r["time_to_restore"]["value"].is_null());
    assert_eq!(r["time_to_restore"]["restores"], 0);
}

#[test]
fn a_clock_going_backwards_is_counted_never_measured() {
    let s = Scene::new();
    let [a, b] = [s.shas[0].as_str(), s.shas[1].as_str()];
    let t = s.commit[1];
    append(
        s.state.path(),
        &[
            // Recorded an hour before its own commit existed.
            Ok(line(
                "deploy",
                "d1",
                "complete",
                a,
                None,
                None,
                s.commit[0] - 3_660,
                s.commit[0] - 3_600,
            )),
            // A failure whose automatic rollback is stamped before it started.
            Ok(line(
                "deploy",
                "d2",
                "failed",
                b,
                Some(a),
                None,
                t + 500,
                t + 520,
            )),
            Ok(line(
                "rollback",
                "r1",
                "complete",
                a,
                Some(b),
                Some("failed-verification"),
                t + 90,
                t + 100,
            )),
            // A SHA git does not know.
            Ok(line(
                "deploy",
                "d3",
                "complete",
                &"f".repeat(40),
                Some(a),
                None,
                t + 1_000,
                t + 1_010,
            )),
        ],
    );
    let r = s.json(&[]);
    let lead = &r["lead_time"];
    assert!(lead["value"].is_null(), "{lead}");
    assert_eq!(lead["clock_backwards"], 1);
    assert_eq!(lead["unknown_commits"], 1);
    let ttr = &r["time_to_restore"];
    assert!(ttr["value"].is_null(), "{ttr}");
    assert_eq!(ttr["clock_backwards"], 1);
    // 1 failure (d2) of 3 concluded deploys.
    assert_eq!(f(&r["change_failure_rate"]["value"]), round(1.0 / 3.0, 4));
}

#[test]
fn a_bad_period_is_one_line_and_exit_2() {
    let s = Scene::new();
    for bad in ["30", "0d", "1.5d", "latest"] {
        let run = s.report(&["--since", bad]);
        run.expect_code(2);
        assert!(
            run.single_error().contains("--since"),
            "{bad}: {}",
            run.stderr
        );
    }
}

/// Forty days between two deploys: the window is what was asked for, the
/// frequency is over the days observed, and the chart counts per week.
#[test]
fn a_long_gap_is_counted_in_days_and_charted_per_week() {
    let s = Scene::new();
    let [a, b] = [s.shas[0].as_str(), s.shas[1].as_str()];
    let t = s.commit[1] + 100;
    let day = 86_400;
    append(
        s.state.path(),
        &[
            Ok(line("deploy", "d1", "complete", a, None, None, t - 10, t)),
            Ok(line(
                "deploy",
                "d2",
                "complete",
                b,
                Some(a),
                None,
                t + 40 * day - 10,
                t + 40 * day,
            )),
        ],
    );
    // 30 days back from the newest record: d1 is outside.
    let r = s.json(&[]);
    assert_eq!(r["deployment_frequency"]["deploys"], 1, "{r}");
    assert_eq!(f(&r["deployment_frequency"]["days"]), 30.0);
    assert_eq!(f(&r["deployment_frequency"]["value"]), round(1.0 / 30.0, 3));
    // Eight weeks back: both, over the 40 days between them.
    let r = s.json(&["--since", "8w"]);
    assert_eq!(r["deployment_frequency"]["deploys"], 2, "{r}");
    assert_eq!(f(&r["deployment_frequency"]["value"]), round(2.0 / 40.0, 3));
    assert_eq!(
        f(&r["deployment_frequency"]["per_week"]),
        round(2.0 / 40.0 * 7.0, 3)
    );
    let md = s.report(&["--since", "8w", "--markdown"]);
    md.expect_success();
    assert!(md.stdout.contains("per week\""), "{}", md.stdout);
    let bars = md
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("bar ["))
        .expect("a bar series");
    let bars: Vec<&str> = bars.trim_end_matches(']').split(", ").collect();
    // Weeks 0..=5 from d1's day: d1 in the first, d2 (day 40) in the sixth.
    assert_eq!(bars, ["1", "0", "0", "0", "0", "1"], "{}", md.stdout);
}

/// The release workflows check out full history: lead time needs each
/// deployed commit's time, which a shallow clone does not have.
#[test]
fn the_release_workflows_fetch_the_history_the_report_needs() {
    let dir = workspace_root().join(".github/workflows");
    for (file, job) in [
        ("api-deploy.yml", "deploy"),
        ("api-rollback.yml", "rollback"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("workflow");
        let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("YAML");
        let checkout = docs[0]["jobs"][job]["steps"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/checkout@"))
            })
            .expect("a checkout");
        assert_eq!(checkout["with"]["fetch-depth"].as_i64(), Some(0), "{file}");
    }
}
