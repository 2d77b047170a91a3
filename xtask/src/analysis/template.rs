//! The analysis thresholds, their defaults, and the `analysis` keys of an
//! environment in `deploy/release.json`.
//!
//! Defaults: success rate ≥ 99 % and p99 ≤ 500 ms are Flagger's; a failure
//! limit of 0 is Argo's (the first failed measurement aborts). A measurement
//! every 2 s that needs 20 requests judges a canary taking 10 % of 50 req/s
//! (5 req/s) after about 4 s, so one answering 5xx to a quarter of its
//! requests is aborted within seconds of its first step.

use std::time::Duration;

use anyhow::bail;

/// What a step does when it never saw enough traffic to judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnInconclusive {
    /// Abort the canary (the default: no evidence is no promotion).
    #[default]
    Fail,
    /// Go on to the next step (for environments without real traffic).
    Promote,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Time between two measurements.
    pub interval: Duration,
    /// Requests a window needs before it is judged (else it grows).
    pub min_requests: u64,
    pub min_success_rate: f64,
    pub max_p99: Duration,
    /// The canary's p99 may be at most this multiple of the stable's...
    pub max_p99_vs_stable: f64,
    /// ...unless it is under this floor (a few ms against one ms is noise).
    pub p99_floor: Duration,
    /// Failed measurements a step tolerates; one more aborts.
    pub failure_limit: u32,
    pub on_inconclusive: OnInconclusive,
    /// Ask a Prometheus server instead of scraping the releases directly.
    pub prometheus: Option<super::promql::Server>,
}

impl Default for Template {
    fn default() -> Template {
        Template {
            interval: Duration::from_secs(2),
            min_requests: 20,
            min_success_rate: 0.99,
            max_p99: Duration::from_millis(500),
            max_p99_vs_stable: 2.0,
            p99_floor: Duration::from_millis(100),
            failure_limit: 0,
            on_inconclusive: OnInconclusive::Fail,
            prometheus: None,
        }
    }
}

/// An environment's `"analysis": {…}` in deploy/release.json; every key optional.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Seconds between measurements (1 to 60).
    pub interval: Option<u64>,
    pub min_requests: Option<u64>,
    /// 0 to 1, e.g. 0.99.
    pub success_rate: Option<f64>,
    pub p99_ms: Option<u64>,
    pub p99_vs_stable: Option<f64>,
    pub p99_floor_ms: Option<u64>,
    pub failure_limit: Option<u32>,
    pub inconclusive: Option<OnInconclusive>,
    pub prometheus: Option<super::promql::Server>,
}

impl AnalysisConfig {
    /// The template, each value checked; `Err` names the key and the fix.
    pub fn template(&self) -> anyhow::Result<Template> {
        let d = Template::default();
        let t = Template {
            interval: self.interval.map_or(d.interval, Duration::from_secs),
            min_requests: self.min_requests.unwrap_or(d.min_requests),
            min_success_rate: self.success_rate.unwrap_or(d.min_success_rate),
            max_p99: self.p99_ms.map_or(d.max_p99, Duration::from_millis),
            max_p99_vs_stable: self.p99_vs_stable.unwrap_or(d.max_p99_vs_stable),
            p99_floor: self.p99_floor_ms.map_or(d.p99_floor, Duration::from_millis),
            failure_limit: self.failure_limit.unwrap_or(d.failure_limit),
            on_inconclusive: self.inconclusive.unwrap_or_default(),
            prometheus: self.prometheus.clone(),
        };
        if !(1..=60).contains(&t.interval.as_secs()) {
            bail!(
                "analysis.interval is {}s: give 1 to 60 seconds",
                t.interval.as_secs()
            );
        }
        if t.min_requests == 0 {
            bail!(
                "analysis.min_requests is 0: a window with no request proves nothing; give 1 or more"
            );
        }
        if !(t.min_success_rate > 0.0 && t.min_success_rate <= 1.0) {
            bail!(
                "analysis.success_rate is {}: give a share between 0 and 1, e.g. 0.99",
                t.min_success_rate
            );
        }
        if t.max_p99.is_zero() {
            bail!("analysis.p99_ms is 0: give a bound in milliseconds, e.g. 500");
        }
        if !(t.max_p99_vs_stable >= 1.0 && t.max_p99_vs_stable.is_finite()) {
            bail!(
                "analysis.p99_vs_stable is {}: give a multiple of 1 or more, e.g. 2",
                t.max_p99_vs_stable
            );
        }
        if let Some(server) = &t.prometheus {
            server.check()?;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> anyhow::Result<Template> {
        serde_json::from_str::<AnalysisConfig>(json)?.template()
    }

    #[test]
    fn empty_is_the_defaults() {
        assert_eq!(config("{}").expect("ok"), Template::default());
        let t = config(r#"{"success_rate": 0.95, "p99_ms": 300, "inconclusive": "promote"}"#)
            .expect("ok");
        assert_eq!(t.min_success_rate, 0.95);
        assert_eq!(t.max_p99, Duration::from_millis(300));
        assert_eq!(t.on_inconclusive, OnInconclusive::Promote);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (json, key) in [
            (r#"{"success_rate": 99}"#, "analysis.success_rate"),
            (r#"{"interval": 0}"#, "analysis.interval"),
            (r#"{"min_requests": 0}"#, "analysis.min_requests"),
            (r#"{"p99_vs_stable": 0.5}"#, "analysis.p99_vs_stable"),
            (r#"{"inconclusive": "maybe"}"#, "unknown variant"),
            (r#"{"succes_rate": 0.9}"#, "unknown field"),
        ] {
            let err = config(json)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
