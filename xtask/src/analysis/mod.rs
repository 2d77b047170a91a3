//! Canary analysis from the service's own Prometheus metrics, as data
//! (the shape of Argo Rollouts' `AnalysisTemplate`): a [`Template`] says how
//! often to measure, what a measurement needs to count (a minimum number of
//! requests), what passes (success rate, p99 latency, p99 against the stable
//! release's in the same window) and how many failed measurements a step
//! tolerates. A [`Measurement`] is a verdict (Successful / Failed /
//! Inconclusive) with the figures it was judged on, kept for the ledger.
//!
//! - `exposition.rs`: one scrape of `/metrics` → cumulative [`Counts`]
//! - `window.rs`: two scrapes → deltas and the p99 (`histogram_quantile`)
//! - `step.rs`: the measurements of one canary step and its verdict
//! - `template.rs`: the thresholds, their defaults and `release.json` keys
//! - `promql.rs`: the same counts asked of a Prometheus server instead
//! - `report.rs`: the bounds and each step's figures, for the ledger
//!
//! Nothing here touches a target: the engine hands in the scraped counts.

pub mod exposition;
pub mod promql;
pub mod report;
pub mod step;
pub mod template;
pub mod window;

pub use exposition::Counts;
pub use promql::Side;
pub use template::{AnalysisConfig, OnInconclusive, Template};
pub use window::Window;

/// Argo's three verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Successful,
    Failed,
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Successful => "successful",
            Verdict::Failed => "failed",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// What was measured in a window (or over a whole step).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// Requests the canary answered (probe routes left out).
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Non-5xx share, 0 to 1 (absent without requests).
    pub success_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The stable release in the same window, when its metrics answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stable_requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stable_p99_ms: Option<f64>,
}

impl Figures {
    pub fn of(canary: &Window, stable: Option<&Window>) -> Figures {
        let ms = |s: f64| (s * 1000.0 * 10.0).round() / 10.0;
        Figures {
            requests: whole(canary.requests),
            errors: whole(canary.errors),
            success_rate: canary
                .success_rate()
                .map(|r| (r * 10_000.0).round() / 10_000.0),
            p99_ms: canary.quantile(0.99).map(ms),
            stable_requests: stable.map(|s| whole(s.requests)),
            stable_p99_ms: stable.and_then(|s| s.quantile(0.99)).map(ms),
        }
    }

    /// `success 75.0% (6 of 25 answered 5xx), p99 3.2 ms (stable 1.0 ms)`.
    pub fn summary(&self) -> String {
        let rate = self
            .success_rate
            .map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
        let p99 = self.p99_ms.map_or("-".to_owned(), |p| format!("{p} ms"));
        let stable = match (self.stable_requests, self.stable_p99_ms) {
            (Some(n), Some(p)) => format!(" (stable: {n} requests, p99 {p} ms)"),
            (Some(n), None) => format!(" (stable: {n} requests)"),
            _ => String::new(),
        };
        format!(
            "success {rate} ({} of {} requests answered 5xx), p99 {p99}{stable}",
            self.errors, self.requests
        )
    }
}

fn whole(v: f64) -> u64 {
    // Counters are whole numbers; the cast saturates on nonsense.
    v.round().max(0.0) as u64
}

/// One judgement of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub verdict: Verdict,
    pub figures: Figures,
    /// What failed, or why it could not be judged; empty when successful.
    pub why: String,
}

/// Judge the canary's window against the template (and the stable
/// release's window, for the relative latency bound).
pub fn judge(t: &Template, canary: &Window, stable: Option<&Window>) -> Measurement {
    let figures = Figures::of(canary, stable);
    if canary.requests < t.min_requests as f64 {
        return Measurement {
            verdict: Verdict::Inconclusive,
            why: format!(
                "{} requests seen, {} needed to judge",
                figures.requests, t.min_requests
            ),
            figures,
        };
    }
    let mut failed = Vec::new();
    if let Some(rate) = canary.success_rate()
        && rate < t.min_success_rate
    {
        failed.push(format!(
            "success rate {:.1}% < {:.1}%",
            rate * 100.0,
            t.min_success_rate * 100.0
        ));
    }
    let p99 = canary.quantile(0.99);
    let max = t.max_p99.as_secs_f64();
    if let Some(p) = p99
        && p > max
    {
        failed.push(format!("p99 {:.0} ms > {:.0} ms", p * 1000.0, max * 1000.0));
    }
    // The relative bound needs a stable p99 worth comparing with.
    let stable_p99 = stable
        .filter(|s| s.requests >= t.min_requests as f64)
        .and_then(|s| s.quantile(0.99));
    if let (Some(p), Some(s)) = (p99, stable_p99) {
        let bound = (s * t.max_p99_vs_stable).max(t.p99_floor.as_secs_f64());
        if p > bound && p <= max {
            failed.push(format!(
                "p99 {:.0} ms > {}× the stable's {:.1} ms (and above the {} ms floor)",
                p * 1000.0,
                t.max_p99_vs_stable,
                s * 1000.0,
                t.p99_floor.as_millis()
            ));
        }
    }
    Measurement {
        verdict: if failed.is_empty() {
            Verdict::Successful
        } else {
            Verdict::Failed
        },
        why: failed.join("; "),
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn window(requests: f64, errors: f64, fast: f64) -> Window {
        // `fast` of the requests under 10 ms, the rest between 250 and 500 ms.
        Window {
            requests,
            errors,
            buckets: vec![
                (0.01, fast),
                (0.25, fast),
                (0.5, requests),
                (1.0, requests),
                (INF, requests),
            ],
        }
    }

    #[test]
    fn a_quarter_of_5xx_fails_on_the_success_rate() {
        let m = judge(&Template::default(), &window(25.0, 6.0, 25.0), None);
        assert_eq!(m.verdict, Verdict::Failed);
        assert!(m.why.contains("success rate 76.0% < 99.0%"), "{}", m.why);
        assert_eq!((m.figures.requests, m.figures.errors), (25, 6));
    }

    #[test]
    fn too_few_requests_is_inconclusive_not_a_pass() {
        let m = judge(&Template::default(), &window(3.0, 0.0, 3.0), None);
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert!(m.why.contains("3 requests seen, 20 needed"), "{}", m.why);
    }

    #[test]
    fn slow_against_the_stable_fails_fast_noise_does_not() {
        let t = Template::default();
        let stable = window(200.0, 0.0, 200.0);
        // All canary requests between 250 and 500 ms: under the 500 ms bound,
        // but far above the stable's few ms.
        let slow = judge(&t, &window(40.0, 0.0, 0.0), Some(&stable));
        assert_eq!(slow.verdict, Verdict::Failed, "{slow:?}");
        assert!(slow.why.contains("the stable's"), "{}", slow.why);
        // A canary at 3× the stable's 5 ms is still under the floor: healthy.
        let fine = judge(&t, &window(40.0, 0.0, 40.0), Some(&stable));
        assert_eq!(fine.verdict, Verdict::Successful, "{fine:?}");
        // With too little stable traffic there is no comparison.
        let alone = judge(&t, &window(40.0, 0.0, 0.0), Some(&window(2.0, 0.0, 2.0)));
        assert_eq!(alone.verdict, Verdict::Successful, "{alone:?}");
    }

    #[test]
    fn over_the_absolute_p99_bound_fails() {
        let mut w = window(40.0, 0.0, 0.0);
        w.buckets[2].1 = 0.0; // all between 500 ms and 1 s
        let m = judge(&Template::default(), &w, None);
        assert_eq!(m.verdict, Verdict::Failed);
        assert!(m.why.contains("> 500 ms"), "{}", m.why);
    }
}
