//! The canary, run by the engine on a target that can split traffic:
//!
//! ```text
//! recover ─► start beside ─► verify ─► step 1 … step n ─► promote ─► settle   complete
//!   (100 % on     (weight 0)   (directly)  (weight, held,                          + figures
//!    stable)                               judged)
//!                    └─────────────┴──────────┴─► abort: weight 0 at once,       failed | interrupted
//!                                                 canary removed                 (failed-analysis)
//! ```
//!
//! Each step sets the weight, then measures every `interval` for
//! `step_duration` (`analysis::step`); its figures are written to the ledger
//! as it ends, so a run killed later still shows them. An abort never waits:
//! the weight goes to 0 first, then the canary is removed.

use std::time::{Duration, Instant};

use super::before::Before;
use super::run::Run;
use super::strategy::{Canary, Strategy};
use super::{Engine, Outcome, Request};
use crate::analysis::report::{Bounds, Report, StepReport};
use crate::analysis::step::StepAnalysis;
use crate::analysis::{Counts, Side, Verdict, exposition};
use crate::ledger::{Reason, Release, Status};
use crate::model::image::ImageRef;
use crate::model::strategy::StrategyKind;
use crate::targets::Split;

/// A canary ready to run: the target can split, and a verified release
/// runs to compare it with.
pub struct Prepared<'a> {
    plan: &'a Canary,
    split: &'a dyn Split,
    stable: ImageRef,
}

/// First, whatever strategy: a canary the last run left unfinished is
/// recovered. `None`: this release goes in all at once (bluegreen asked, or
/// nothing verified runs to compare a canary with). `Err`: the target
/// cannot split traffic (akash, kubernetes), before anything is touched.
pub fn prepare<'a>(
    req: &'a Request,
    releases: &[Release],
    before: &Before,
    eng: &Engine<'a>,
) -> anyhow::Result<Option<Prepared<'a>>> {
    recover(releases, before, eng)?;
    let Strategy::Canary(plan) = &req.strategy else {
        return Ok(None);
    };
    let split = eng.target.split()?;
    let Some(stable) = before.fallback.as_ref().map(|f| f.image.clone()) else {
        eprintln!(
            "no verified release of {} to compare a canary with: this first release goes in all at once",
            req.env
        );
        return Ok(None);
    };
    if stable.sha == req.image.sha {
        eprintln!(
            "{} is the verified release already: redeployed all at once, no canary",
            stable.sha
        );
        return Ok(None);
    }
    Ok(Some(Prepared {
        plan,
        split,
        stable,
    }))
}

/// A canary the last run left unfinished (`kill -9` mid-step): all traffic
/// back on the last verified release before anything else happens.
fn recover(releases: &[Release], before: &Before, eng: &Engine) -> anyhow::Result<()> {
    let unfinished = crate::ledger::unfinished_canary(releases);
    let stable = before.fallback.as_ref().map(|f| &f.image);
    if let (true, Ok(split), Some(stable)) = (unfinished, eng.target.split(), stable) {
        eprintln!(
            "the last canary never finished: all traffic back on {} first",
            stable.sha
        );
        split.recover(stable)?;
    }
    Ok(())
}

pub fn run(mut run: Run, req: &Request, c: Prepared, eng: &Engine) -> anyhow::Result<Outcome> {
    let plan = c.plan;
    run.release.strategy = Some(StrategyKind::Canary);
    run.release.analysis = Some(Report {
        bounds: Bounds::of(&plan.analysis, plan.steps.weights(), plan.step_duration),
        steps: Vec::new(),
    });
    let started = c
        .split
        .recover(&c.stable)
        .and_then(|()| c.split.start_canary(run.config(), &c.stable));
    let applied = match started {
        Ok(applied) => applied,
        Err(e) => return abort(run, &c, eng, None, format!("starting the canary: {e:#}")),
    };
    run.release.url = Some(applied.url.clone());
    run.release.deployment_ref = Some(applied.deployment_ref);
    let outcome = eng
        .probe
        .verify(&applied.url, &req.image.sha, None, req.verify_timeout, true);
    run.release.verified = outcome.verified.clone();
    if !outcome.ok() || (eng.interrupted)() {
        let why = format!(
            "the canary did not verify before taking traffic: {}",
            outcome.last_seen
        );
        return abort(run, &c, eng, None, why);
    }
    let steps = plan.steps.weights();
    for (i, &weight) in steps.iter().enumerate() {
        eprintln!(
            "canary step {}/{}: {weight}% of the traffic for {}s",
            i + 1,
            steps.len(),
            plan.step_duration.as_secs()
        );
        if let Err(e) = c.split.set_weight(weight) {
            return abort(
                run,
                &c,
                eng,
                None,
                format!("setting the weight to {weight}%: {e:#}"),
            );
        }
        let report = step(i + 1, weight, &c, eng);
        let line = report.line();
        eprintln!("  {line}");
        let verdict = report.verdict;
        if let Some(a) = run.release.analysis.as_mut() {
            a.steps.push(report);
        }
        if (eng.interrupted)() {
            return abort(run, &c, eng, None, format!("interrupted during {line}"));
        }
        let passed = match verdict {
            Verdict::Successful => true,
            Verdict::Inconclusive => {
                plan.analysis.on_inconclusive == crate::analysis::OnInconclusive::Promote
            }
            Verdict::Failed => false,
        };
        if !passed {
            let why = format!("failed-analysis: {line}");
            return abort(run, &c, eng, Some(Reason::FailedAnalysis), why);
        }
        // The figures so far, on disk before the next step.
        run.write(eng, Status::Running)?;
    }
    match c.split.promote() {
        Ok(applied) => {
            run.release.url = Some(applied.url);
            run.settle(eng)?;
            Ok(Outcome {
                release: run.release,
                auto_rollback: None,
            })
        }
        Err(e) => abort(run, &c, eng, None, format!("promoting the canary: {e:#}")),
    }
}

/// One step: measure every interval until the step's duration, stopping
/// early on a failure past the limit or on Ctrl-C.
fn step(n: usize, weight: u8, c: &Prepared, eng: &Engine) -> StepReport {
    let plan = c.plan;
    let started = Instant::now();
    let mut analysis = StepAnalysis::new(&plan.analysis);
    loop {
        let canary = counts(c, Side::Canary);
        let stable = counts(c, Side::Stable);
        if let Some(m) = analysis.observe(canary, stable) {
            let why = if m.why.is_empty() {
                String::new()
            } else {
                format!(": {}", m.why)
            };
            eprintln!(
                "  [{:>4.1}s] {}{why} [{}]",
                started.elapsed().as_secs_f64(),
                m.verdict,
                m.figures.summary()
            );
        }
        let left = plan.step_duration.saturating_sub(started.elapsed());
        if analysis.failed_out() || left.is_zero() || (eng.interrupted)() {
            break;
        }
        if !sleep(plan.analysis.interval.min(left), eng) {
            break;
        }
    }
    let verdict = analysis.verdict();
    let why = match verdict {
        Verdict::Failed => analysis.failure.as_ref().map(|m| m.why.clone()),
        Verdict::Inconclusive => Some(analysis.pending.as_ref().map_or_else(
            || "no window could be judged".to_owned(),
            |m| format!("too little traffic to judge: {}", m.why),
        )),
        Verdict::Successful => None,
    };
    StepReport {
        step: n,
        weight,
        verdict,
        figures: analysis.figures(),
        measurements: analysis.judged,
        failed: analysis.failed,
        duration_sec: crate::support::output::seconds(started.elapsed()),
        why,
    }
}

fn counts(c: &Prepared, side: Side) -> anyhow::Result<Counts> {
    match &c.plan.analysis.prometheus {
        Some(server) => server.counts(side),
        None => exposition::parse(&c.split.metrics(side)?),
    }
}

/// Sleep in short slices; `false` when Ctrl-C or SIGTERM arrived.
fn sleep(d: Duration, eng: &Engine) -> bool {
    let until = Instant::now() + d;
    loop {
        if (eng.interrupted)() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Weight 0 at once, the canary removed, the release recorded `failed`
/// (reason `failed-analysis` when the analysis said so) or `interrupted`,
/// with its figures.
fn abort(
    mut run: Run,
    c: &Prepared,
    eng: &Engine,
    reason: Option<Reason>,
    why: String,
) -> anyhow::Result<Outcome> {
    eprintln!("aborting the canary: {why}");
    let mut error = why;
    match c.split.abort() {
        Ok(()) => run.release.left_on_sha = Some(c.stable.sha.clone()),
        Err(e) => {
            error.push_str(&format!(
                "; aborting failed too ({e:#}): see `cargo xtask status --env {}`",
                run.release.environment
            ));
        }
    }
    run.release.error = Some(error);
    run.release.reason = reason;
    let status = if (eng.interrupted)() {
        Status::Interrupted
    } else {
        Status::Failed
    };
    run.write(eng, status)?;
    Ok(Outcome {
        release: run.release,
        auto_rollback: None,
    })
}
