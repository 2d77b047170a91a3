//! What a canary's analysis leaves in the ledger: the bounds it was judged
//! against and the figures of every step it reached (additive fields of a
//! release record; docs/log-schema.md).

use super::{Figures, OnInconclusive, Template, Verdict};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub bounds: Bounds,
    pub steps: Vec<StepReport>,
}

/// The configured bounds, recorded with the figures they judged.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bounds {
    pub steps: Vec<u8>,
    pub step_duration_sec: u64,
    pub interval_sec: u64,
    pub min_requests: u64,
    pub success_rate: f64,
    pub p99_ms: u64,
    pub p99_vs_stable: f64,
    pub failure_limit: u32,
    pub inconclusive: OnInconclusive,
    /// `scrape` (each release's /metrics) or the Prometheus server's URL.
    pub source: String,
}

impl Bounds {
    pub fn of(t: &Template, steps: &[u8], step_duration: std::time::Duration) -> Bounds {
        Bounds {
            steps: steps.to_vec(),
            step_duration_sec: step_duration.as_secs(),
            interval_sec: t.interval.as_secs(),
            min_requests: t.min_requests,
            success_rate: t.min_success_rate,
            p99_ms: u64::try_from(t.max_p99.as_millis()).unwrap_or(u64::MAX),
            p99_vs_stable: t.max_p99_vs_stable,
            failure_limit: t.failure_limit,
            inconclusive: t.on_inconclusive,
            source: t
                .prometheus
                .as_ref()
                .map_or_else(|| "scrape".to_owned(), |p| p.url.clone()),
        }
    }
}

/// One step: its weight, verdict and the figures over the step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub weight: u8,
    pub verdict: Verdict,
    #[serde(flatten)]
    pub figures: Figures,
    /// Windows judged, and how many of them failed.
    pub measurements: u32,
    pub failed: u32,
    pub duration_sec: f64,
    /// What failed (or why nothing could be judged).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub why: Option<String>,
}

impl StepReport {
    /// `step 1 (10%) failed: success rate 76.0% < 99.0% [success 76.0% (6 of 25 requests answered 5xx), p99 4.8 ms]`
    pub fn line(&self) -> String {
        let why = self
            .why
            .as_deref()
            .map_or(String::new(), |w| format!(": {w}"));
        format!(
            "step {} ({}%) {}{why} [{}]",
            self.step,
            self.weight,
            self.verdict,
            self.figures.summary()
        )
    }
}
