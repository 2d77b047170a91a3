//! The measurements of one canary step. Every `interval` both releases are
//! scraped; a window runs from the last judged scrape until it holds
//! `min_requests` canary requests (it grows while traffic is thin), then it
//! is judged and the next one starts. The canary's metrics unreachable or
//! malformed is a failed measurement, never a pass. The step fails as soon
//! as its failed measurements exceed the failure limit; at its end it passes
//! only when at least one window was judged (else it is inconclusive).

use super::{Counts, Figures, Measurement, Template, Verdict, Window, judge};

/// Both releases at one scrape; the stable's may be missing (unreachable).
#[derive(Clone, Debug)]
struct Scrape {
    canary: Counts,
    stable: Option<Counts>,
}

pub struct StepAnalysis<'t> {
    template: &'t Template,
    /// The first good scrape of the step, and the start of the open window.
    step_base: Option<Scrape>,
    window_base: Option<Scrape>,
    last: Option<Scrape>,
    pub judged: u32,
    pub failed: u32,
    /// The last failed measurement (what the abort names).
    pub failure: Option<Measurement>,
    /// The open window as last seen (what an inconclusive step names).
    pub pending: Option<Measurement>,
}

impl<'t> StepAnalysis<'t> {
    pub fn new(template: &'t Template) -> StepAnalysis<'t> {
        StepAnalysis {
            template,
            step_base: None,
            window_base: None,
            last: None,
            judged: 0,
            failed: 0,
            failure: None,
            pending: None,
        }
    }

    /// One scrape of both releases. Returns the measurement when a window
    /// was judged (or the canary could not be read).
    pub fn observe(
        &mut self,
        canary: anyhow::Result<Counts>,
        stable: anyhow::Result<Counts>,
    ) -> Option<Measurement> {
        let canary = match canary {
            Ok(c) => c,
            Err(e) => {
                // The window restarts at the next good scrape.
                self.window_base = None;
                return Some(self.record_failure(Measurement {
                    verdict: Verdict::Failed,
                    figures: Figures::default(),
                    why: format!("the canary's metrics could not be read: {e:#}"),
                }));
            }
        };
        let now = Scrape {
            canary,
            stable: stable.ok(),
        };
        self.step_base.get_or_insert_with(|| now.clone());
        let Some(base) = self.window_base.clone() else {
            self.window_base = Some(now.clone());
            self.last = Some(now);
            return None;
        };
        self.last = Some(now.clone());
        let window = match Window::between(&base.canary, &now.canary) {
            Ok(w) => w,
            Err(e) => {
                self.window_base = Some(now);
                self.step_base = self.window_base.clone();
                return Some(self.record_failure(Measurement {
                    verdict: Verdict::Failed,
                    figures: Figures::default(),
                    why: format!("the canary's metrics: {e:#}"),
                }));
            }
        };
        let stable = stable_window(&base, &now);
        let m = judge(self.template, &window, stable.as_ref());
        match m.verdict {
            Verdict::Inconclusive => {
                self.pending = Some(m);
                return None;
            }
            Verdict::Failed => {
                self.record_failure(m.clone());
            }
            Verdict::Successful => {}
        }
        self.judged += 1;
        self.pending = None;
        self.window_base = Some(now);
        Some(m)
    }

    fn record_failure(&mut self, m: Measurement) -> Measurement {
        self.failed += 1;
        self.failure = Some(m.clone());
        m
    }

    /// More failed measurements than the limit: abort now.
    pub fn failed_out(&self) -> bool {
        self.failed > self.template.failure_limit
    }

    /// The verdict at the end of the step's duration (or at the abort).
    pub fn verdict(&self) -> Verdict {
        if self.failed_out() {
            Verdict::Failed
        } else if self.judged == 0 {
            Verdict::Inconclusive
        } else {
            Verdict::Successful
        }
    }

    /// The figures over the whole step so far.
    pub fn figures(&self) -> Figures {
        match (&self.step_base, &self.last) {
            (Some(base), Some(last)) => match Window::between(&base.canary, &last.canary) {
                Ok(w) => Figures::of(&w, stable_window(base, last).as_ref()),
                Err(_) => Figures::default(),
            },
            _ => Figures::default(),
        }
    }
}

fn stable_window(base: &Scrape, now: &Scrape) -> Option<Window> {
    match (&base.stable, &now.stable) {
        (Some(b), Some(n)) => Window::between(b, n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn counts(requests: f64, errors: f64) -> Counts {
        Counts {
            requests,
            errors,
            buckets: vec![(0.01, requests), (0.5, requests), (INF, requests)],
        }
    }

    #[test]
    fn thin_traffic_grows_the_window_until_it_can_be_judged() {
        let t = Template::default();
        let mut s = StepAnalysis::new(&t);
        assert!(
            s.observe(Ok(counts(0.0, 0.0)), Ok(counts(0.0, 0.0)))
                .is_none()
        );
        // 10 requests: not enough, the window stays open.
        assert!(
            s.observe(Ok(counts(10.0, 0.0)), Ok(counts(90.0, 0.0)))
                .is_none()
        );
        assert_eq!(s.verdict(), Verdict::Inconclusive);
        let m = s
            .observe(Ok(counts(25.0, 0.0)), Ok(counts(200.0, 0.0)))
            .expect("judged at 25 requests");
        assert_eq!(m.verdict, Verdict::Successful);
        assert_eq!(m.figures.requests, 25);
        assert_eq!(s.verdict(), Verdict::Successful);
        assert_eq!(s.figures().stable_requests, Some(200));
    }

    #[test]
    fn a_failed_window_fails_the_step_at_the_default_limit() {
        let t = Template::default();
        let mut s = StepAnalysis::new(&t);
        s.observe(Ok(counts(100.0, 0.0)), Ok(counts(0.0, 0.0)));
        let m = s
            .observe(Ok(counts(125.0, 6.0)), Ok(counts(0.0, 0.0)))
            .expect("judged");
        assert_eq!(m.verdict, Verdict::Failed);
        assert!(s.failed_out());
        assert_eq!(s.verdict(), Verdict::Failed);
        assert_eq!(s.figures().errors, 6);
    }

    #[test]
    fn unreachable_or_restarted_canary_metrics_are_failed_checks() {
        let t = Template {
            failure_limit: 1,
            ..Template::default()
        };
        let mut s = StepAnalysis::new(&t);
        s.observe(Ok(counts(100.0, 0.0)), Ok(counts(0.0, 0.0)));
        let m = s
            .observe(
                Err(anyhow::anyhow!("connecting to 10.0.0.2:8080: refused")),
                Ok(counts(0.0, 0.0)),
            )
            .expect("a failed check");
        assert_eq!(m.verdict, Verdict::Failed);
        assert!(m.why.contains("could not be read"), "{}", m.why);
        assert!(!s.failed_out(), "one failure is within a limit of 1");
        s.observe(Ok(counts(5.0, 0.0)), Ok(counts(0.0, 0.0)));
        let m = s
            .observe(Ok(counts(1.0, 0.0)), Ok(counts(0.0, 0.0)))
            .expect("a restart is a failed check");
        assert!(m.why.contains("restarted"), "{}", m.why);
        assert!(s.failed_out());
    }
}
