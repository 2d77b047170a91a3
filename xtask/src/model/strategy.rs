//! How a release takes traffic: all at once (`bluegreen`) or a `canary` in
//! weighted steps. Values parsed once, from `--strategy`/`--steps` or the
//! environment's keys in deploy/release.json.

use std::str::FromStr;

use anyhow::bail;

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Start beside the old release, verify, switch all traffic at once
    #[default]
    Bluegreen,
    /// Weighted steps, each judged by the releases' own metrics before the next
    Canary,
}

/// The canary's weights in percent: strictly increasing, each 1 to 100
/// (`10,50,100`). After the last step the canary takes all the traffic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Steps(Vec<u8>);

/// Argo's and Flagger's common shape, small enough to abort fast.
pub const DEFAULT_STEPS: [u8; 3] = [10, 50, 100];

impl Default for Steps {
    fn default() -> Steps {
        Steps(DEFAULT_STEPS.to_vec())
    }
}

impl Steps {
    pub fn weights(&self) -> &[u8] {
        &self.0
    }

    fn new(weights: Vec<u8>, shown: &str) -> anyhow::Result<Steps> {
        if weights.is_empty() {
            bail!("steps `{shown}` names no weight: give percentages like 10,50,100");
        }
        if let Some(w) = weights.iter().find(|w| !(1..=100).contains(*w)) {
            bail!("steps `{shown}`: {w} is not a weight from 1 to 100 (percent of the traffic)");
        }
        if weights.windows(2).any(|p| p[1] <= p[0]) {
            bail!("steps `{shown}` must increase strictly, e.g. 10,50,100");
        }
        Ok(Steps(weights))
    }
}

impl FromStr for Steps {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Steps> {
        let weights = s
            .split(',')
            .map(|w| {
                let w = w.trim().trim_end_matches('%');
                w.parse::<u8>().map_err(|_| {
                    anyhow::anyhow!(
                        "steps `{s}`: `{w}` is not a weight from 1 to 100 (give percentages like 10,50,100)"
                    )
                })
            })
            .collect::<anyhow::Result<Vec<u8>>>()?;
        Steps::new(weights, s)
    }
}

/// `"steps": [10, 50, 100]` or `"steps": "10,50,100"`.
impl<'de> serde::Deserialize<'de> for Steps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Steps, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<u8>),
            Text(String),
        }
        let steps = match Raw::deserialize(d)? {
            Raw::List(l) => {
                let shown = l.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
                Steps::new(l, &shown)
            }
            Raw::Text(t) => t.parse(),
        };
        steps.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_steps() {
        assert_eq!(
            "10,50,100".parse::<Steps>().expect("ok").weights(),
            [10, 50, 100]
        );
        assert_eq!("5%, 25%".parse::<Steps>().expect("ok").weights(), [5, 25]);
        for (bad, said) in [
            ("", "not a weight"),
            ("10,,50", "not a weight"),
            ("0,50", "0 is not a weight"),
            ("10,50,150", "not a weight"),
            ("50,10", "increase strictly"),
            ("10,10", "increase strictly"),
        ] {
            let err = bad
                .parse::<Steps>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(said), "{bad:?}: {err}");
        }
        let from_json: Steps = serde_json::from_str("[20, 100]").expect("list");
        assert_eq!(from_json.weights(), [20, 100]);
        let from_json: Steps = serde_json::from_str("\"20,100\"").expect("text");
        assert_eq!(from_json.weights(), [20, 100]);
        assert!(serde_json::from_str::<Steps>("[100, 20]").is_err());
    }
}
