//! `deploy`'s strategy flags: `--strategy canary [--steps 10,50,100]
//! [--step-duration SECS]`, each falling back to the environment's key of
//! the same name in deploy/release.json.

use crate::model::environment::Environment;
use crate::model::strategy::{Steps, StrategyKind};
use crate::release::Strategy;
use crate::release::strategy::{Choice, MAX_STEP_SECS};
use crate::support::project::Project;
use crate::targets::Target;

#[derive(Debug, clap::Args)]
pub struct StrategyArgs {
    /// How the release takes traffic [default: the environment's `strategy` in deploy/release.json, else bluegreen]
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyKind>,
    /// Canary weights in percent, each step judged before the next [default: 10,50,100]
    #[arg(long, value_name = "10,50,100")]
    pub steps: Option<Steps>,
    /// Seconds each canary step is held and measured (1 to 3600) [default: 30]
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_STEP_SECS))]
    pub step_duration: Option<u64>,
}

impl StrategyArgs {
    /// The strategy, checked against the target before anything is asked
    /// of the registry: a target that cannot split traffic refuses a canary
    /// in one line.
    pub fn resolve(
        &self,
        project: &Project,
        env: Environment,
        target: &dyn Target,
    ) -> anyhow::Result<Strategy> {
        let config = project.release_config()?.environment(env)?;
        let flags = Choice {
            kind: self.strategy,
            steps: self.steps.as_ref(),
            step_duration: self.step_duration,
        };
        let configured = Choice {
            kind: config.strategy,
            steps: config.steps.as_ref(),
            step_duration: config.step_duration,
        };
        let strategy = Strategy::resolve(&flags, &configured, config.analysis.as_ref())?;
        if let Strategy::Canary(_) = strategy {
            target.split()?;
        }
        Ok(strategy)
    }
}
