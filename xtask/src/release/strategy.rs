//! The strategy a release runs, as a value the engine runs (never a branch
//! inside a target): `bluegreen` switches all traffic once the new release
//! is verified; `canary` moves traffic in weighted steps, each held for a
//! duration and judged by the analysis before the next (`canary.rs`).
//! Rollbacks always switch at once (Argo's `rollbackWindow`): the release
//! they return to was verified already.

use std::time::Duration;

use anyhow::bail;

use crate::analysis::{AnalysisConfig, Template};
use crate::model::strategy::{Steps, StrategyKind};

/// The longest step accepted: an hour (a bigger number is a typo).
pub const MAX_STEP_SECS: u64 = 3600;
/// Long enough for several 2 s measurements at each weight, short enough
/// that a healthy canary is promoted through three steps in a minute and a half.
pub const DEFAULT_STEP_SECS: u64 = 30;

#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    BlueGreen,
    Canary(Canary),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    pub steps: Steps,
    pub step_duration: Duration,
    pub analysis: Template,
}

/// Where the choice comes from: the flags, else the environment's keys.
#[derive(Debug, Default)]
pub struct Choice<'a> {
    pub kind: Option<StrategyKind>,
    pub steps: Option<&'a Steps>,
    pub step_duration: Option<u64>,
}

impl Strategy {
    /// Each key from the flag when given, else from the environment's config
    /// (`strategy`, `steps`, `step_duration`, `analysis`), else the default.
    pub fn resolve(
        flags: &Choice,
        config: &Choice,
        analysis: Option<&AnalysisConfig>,
    ) -> anyhow::Result<Strategy> {
        let kind = flags.kind.or(config.kind).unwrap_or_default();
        if kind == StrategyKind::Bluegreen {
            if flags.steps.is_some() || flags.step_duration.is_some() {
                bail!(
                    "--steps and --step-duration shape a canary, but the strategy is bluegreen: add --strategy canary"
                );
            }
            return Ok(Strategy::BlueGreen);
        }
        let steps = flags.steps.or(config.steps).cloned().unwrap_or_default();
        let secs = flags
            .step_duration
            .or(config.step_duration)
            .unwrap_or(DEFAULT_STEP_SECS);
        if !(1..=MAX_STEP_SECS).contains(&secs) {
            bail!("step duration {secs}s: give 1 to {MAX_STEP_SECS} seconds per step");
        }
        let mut analysis = analysis.cloned().unwrap_or_default().template()?;
        // A step shorter than the interval is measured at its end.
        analysis.interval = analysis.interval.min(Duration::from_secs(secs));
        Ok(Strategy::Canary(Canary {
            steps,
            step_duration: Duration::from_secs(secs),
            analysis,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_config_and_defaults_fill_the_rest() {
        let config_steps: Steps = "20,100".parse().expect("steps");
        let config = Choice {
            kind: Some(StrategyKind::Canary),
            steps: Some(&config_steps),
            step_duration: Some(60),
        };
        let Strategy::Canary(c) = Strategy::resolve(&Choice::default(), &config, None).expect("ok")
        else {
            panic!("canary expected")
        };
        assert_eq!(c.steps.weights(), [20, 100]);
        assert_eq!(c.step_duration, Duration::from_secs(60));
        let flag_steps: Steps = "5,50".parse().expect("steps");
        let flags = Choice {
            kind: None,
            steps: Some(&flag_steps),
            step_duration: Some(1),
        };
        let Strategy::Canary(c) = Strategy::resolve(&flags, &config, None).expect("ok") else {
            panic!("canary expected")
        };
        assert_eq!(c.steps.weights(), [5, 50]);
        assert_eq!(
            c.analysis.interval,
            Duration::from_secs(1),
            "clamped to the step"
        );
        let flags = Choice {
            kind: Some(StrategyKind::Bluegreen),
            ..Choice::default()
        };
        assert_eq!(
            Strategy::resolve(&flags, &config, None).expect("ok"),
            Strategy::BlueGreen
        );
        let Strategy::Canary(c) = Strategy::resolve(
            &Choice {
                kind: Some(StrategyKind::Canary),
                ..Choice::default()
            },
            &Choice::default(),
            None,
        )
        .expect("ok") else {
            panic!("canary expected")
        };
        assert_eq!(c.steps.weights(), [10, 50, 100]);
        assert_eq!(c.step_duration, Duration::from_secs(DEFAULT_STEP_SECS));
    }

    #[test]
    fn bad_choices_are_refused_with_the_fix() {
        let steps: Steps = "10,100".parse().expect("steps");
        let err = Strategy::resolve(
            &Choice {
                steps: Some(&steps),
                ..Choice::default()
            },
            &Choice::default(),
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("add --strategy canary"), "{err}");
        let err = Strategy::resolve(
            &Choice {
                kind: Some(StrategyKind::Canary),
                step_duration: Some(0),
                ..Choice::default()
            },
            &Choice::default(),
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("give 1 to 3600 seconds"), "{err}");
    }
}
