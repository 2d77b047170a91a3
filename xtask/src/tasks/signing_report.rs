//! `cargo xtask signing-report --env production`: how many of the last 30
//! releases ran signature-verified images, and whether the policy should
//! turn strict (more than 90% of the last 30; see docs/distribution.md).

use crate::ledger::{Ledger, Status};
use crate::model::environment::Environment;
use crate::support::output;
use crate::support::project::Project;
use crate::verify::cosign::SignatureStatus;

pub const WINDOW: usize = 30;
pub const THRESHOLD: f64 = 0.9;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which environment's ledger
    #[arg(long, value_enum, default_value = "production")]
    pub env: Environment,
    /// Print the report as one JSON line on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub record: &'static str,
    pub environment: Environment,
    pub window: usize,
    pub releases: usize,
    pub verified: usize,
    pub share: f64,
    /// Strict verification is due: a full window, more than 90% verified.
    pub escalate: bool,
}

pub fn report(env: Environment, statuses: &[SignatureStatus]) -> Report {
    let last: Vec<_> = statuses.iter().rev().take(WINDOW).collect();
    let verified = last
        .iter()
        .filter(|s| ***s == SignatureStatus::Verified)
        .count();
    let share = if last.is_empty() {
        0.0
    } else {
        verified as f64 / last.len() as f64
    };
    Report {
        record: "signing-report",
        environment: env,
        window: WINDOW,
        releases: last.len(),
        verified,
        share: (share * 1000.0).round() / 1000.0,
        escalate: last.len() == WINDOW && share > THRESHOLD,
    }
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let releases = Ledger::open(project, args.env).read_reporting()?;
    // Releases that reached the environment: completed ones.
    let statuses: Vec<_> = releases
        .iter()
        .filter(|r| r.status == Status::Complete)
        .map(|r| r.signature_status)
        .collect();
    let report = report(args.env, &statuses);
    if args.json {
        output::print_line(&report)?;
    } else {
        output::print_text(format_args!(
            "{}: {} of the last {} releases signature-verified ({:.1}%); escalate to --require-signature: {}",
            args.env,
            report.verified,
            report.releases,
            report.share * 100.0,
            if report.escalate {
                "yes"
            } else {
                "no (needs more than 90% of a full window of 30)"
            }
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use SignatureStatus::{Unverified as U, Verified as V};

    #[test]
    fn escalates_only_past_ninety_percent_of_a_full_window() {
        let mut s = vec![V; 28];
        s.extend([U, U]);
        let r = report(Environment::Production, &s);
        assert_eq!(
            (r.releases, r.verified, r.escalate),
            (30, 28, true),
            "28/30 = 93%"
        );
        let mut s = vec![V; 27];
        s.extend([U, U, U]);
        assert!(
            !report(Environment::Production, &s).escalate,
            "27/30 = 90% is not more than 90%"
        );
        assert!(
            !report(Environment::Production, &[V; 10]).escalate,
            "not a full window"
        );
        let mut s = vec![U; 5];
        s.extend(vec![V; 30]);
        assert!(
            report(Environment::Production, &s).escalate,
            "only the last 30 count"
        );
    }
}
