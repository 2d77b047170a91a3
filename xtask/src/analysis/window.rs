//! What happened between two scrapes of one release: the counters' deltas,
//! and the p99 latency read from the histogram's bucket deltas the way
//! Prometheus' `histogram_quantile` reads them.

use anyhow::bail;

use super::exposition::Counts;

/// The requests one release answered in a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub requests: f64,
    pub errors: f64,
    /// Bucket deltas, cumulative within the window, ascending, last `+Inf`.
    pub buckets: Vec<(f64, f64)>,
}

impl Window {
    /// `after - before`. Counters that went down mean the release restarted
    /// (or another process answers): the window cannot be judged.
    pub fn between(before: &Counts, after: &Counts) -> anyhow::Result<Window> {
        if after.requests < before.requests || after.errors < before.errors {
            bail!(
                "the request counters went down ({} → {}): the release restarted during the window",
                before.requests,
                after.requests
            );
        }
        let buckets = if before.buckets.is_empty() {
            after.buckets.clone()
        } else if after.buckets.len() != before.buckets.len() {
            bail!("the latency buckets changed between two scrapes");
        } else {
            let mut out = Vec::with_capacity(after.buckets.len());
            for (a, b) in after.buckets.iter().zip(&before.buckets) {
                if a.0 != b.0 || a.1 < b.1 {
                    bail!(
                        "the latency buckets changed or went down between two scrapes: the release restarted"
                    );
                }
                out.push((a.0, a.1 - b.1));
            }
            out
        };
        Ok(Window {
            requests: after.requests - before.requests,
            errors: after.errors - before.errors,
            buckets,
        })
    }

    /// Share of requests not answered 5xx; `None` without requests.
    pub fn success_rate(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| 1.0 - self.errors / self.requests)
    }

    /// The `q` quantile of latency in seconds (`histogram_quantile`: linear
    /// within the bucket that holds the rank, the first bucket starting at
    /// 0; a rank in the `+Inf` bucket gives the highest finite bound).
    /// `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &self.buckets {
            if count >= rank {
                if le == f64::INFINITY {
                    return Some(lower.0);
                }
                let in_bucket = count - lower.1;
                if in_bucket <= 0.0 {
                    return Some(le);
                }
                return Some(lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket);
            }
            lower = (le, count);
        }
        Some(lower.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> Counts {
        Counts {
            requests,
            errors,
            buckets: buckets.to_vec(),
        }
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn deltas_over_the_window() {
        let before = counts(100.0, 1.0, &[(0.1, 90.0), (0.5, 100.0), (INF, 100.0)]);
        let after = counts(200.0, 26.0, &[(0.1, 150.0), (0.5, 200.0), (INF, 200.0)]);
        let w = Window::between(&before, &after).expect("window");
        assert_eq!((w.requests, w.errors), (100.0, 25.0));
        assert_eq!(w.buckets, vec![(0.1, 60.0), (0.5, 100.0), (INF, 100.0)]);
        assert_eq!(w.success_rate(), Some(0.75));
    }

    #[test]
    fn counters_that_go_down_are_a_restart_not_a_window() {
        let before = counts(100.0, 0.0, &[(0.1, 100.0), (INF, 100.0)]);
        let after = counts(3.0, 0.0, &[(0.1, 3.0), (INF, 3.0)]);
        let err = Window::between(&before, &after).expect_err("refused");
        assert!(err.to_string().contains("restarted"), "{err}");
    }

    #[test]
    fn p99_like_histogram_quantile() {
        // 100 requests: 90 under 100 ms, 10 between 100 and 500 ms.
        let w = Window {
            requests: 100.0,
            errors: 0.0,
            buckets: vec![(0.1, 90.0), (0.5, 100.0), (INF, 100.0)],
        };
        // rank 99 is the 9th of 10 in (0.1, 0.5]: 0.1 + 0.4 * 9/10.
        let p99 = w.quantile(0.99).expect("p99");
        assert!((p99 - 0.46).abs() < 1e-9, "{p99}");
        // rank 50 is in the first bucket, which starts at 0.
        let p50 = w.quantile(0.5).expect("p50");
        assert!((p50 - 0.1 * 50.0 / 90.0).abs() < 1e-9, "{p50}");
        // In +Inf: the highest finite bound.
        let slow = Window {
            requests: 10.0,
            errors: 0.0,
            buckets: vec![(0.1, 0.0), (0.5, 0.0), (INF, 10.0)],
        };
        assert_eq!(slow.quantile(0.99), Some(0.5));
        assert_eq!(Window::default().quantile(0.99), None);
        assert_eq!(Window::default().success_rate(), None);
    }
}
