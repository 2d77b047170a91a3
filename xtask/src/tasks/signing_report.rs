//! `cargo xtask signing-report --env production`: of the last 30 releases
//! (deployed SHAs), how many ran a verified signature, SBOM attestation and
//! provenance attestation, and which policy setting in deploy/release.json
//! to flip to `strict`. The rule (docs/distribution.md): a full window of
//! 30, more than 90% verified, and fewer than 1% failed verification (a
//! signature or attestation present but bad).

use crate::ledger::{Ledger, Release, Status};
use crate::model::environment::Environment;
use crate::supply::policy::{Level, Policy};
use crate::support::output;
use crate::support::project::Project;
use crate::verify::cosign::SignatureStatus;

pub const WINDOW: usize = 30;
pub const THRESHOLD: f64 = 0.9;
pub const MAX_FAILURES: f64 = 0.01;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which environment's ledger
    #[arg(long, value_enum, default_value = "production")]
    pub env: Environment,
    /// Print the report as one JSON line on stdout
    #[arg(long)]
    pub json: bool,
}

/// One check's outcome in a release: verified, or why not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Verified,
    /// Missing, not checked, or cosign absent.
    Unverified,
    /// Present but bad: a signature or attestation that did not verify.
    Failed,
}

fn outcome(status: Option<SignatureStatus>, reason: Option<&str>) -> Outcome {
    match (status, reason) {
        (Some(SignatureStatus::Verified), _) => Outcome::Verified,
        (_, Some(r)) if r.starts_with("bad ") || r.starts_with("cosign output does not name") => {
            Outcome::Failed
        }
        _ => Outcome::Unverified,
    }
}

#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Share {
    pub verified: usize,
    pub share: f64,
    pub failures: usize,
    pub failure_share: f64,
    /// Strict is due: a full window, > 90% verified, < 1% failures.
    pub escalate: bool,
}

fn share(outcomes: &[Outcome]) -> Share {
    let n = outcomes.len();
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let ratio = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let (verified, failures) = (count(Outcome::Verified), count(Outcome::Failed));
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Share {
        verified,
        share: round(ratio(verified)),
        failures,
        failure_share: round(ratio(failures)),
        escalate: n == WINDOW && ratio(verified) > THRESHOLD && ratio(failures) < MAX_FAILURES,
    }
}

#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub record: &'static str,
    pub environment: Environment,
    pub window: usize,
    pub releases: usize,
    /// The signature (kept flat: the fields this record always had).
    pub verified: usize,
    pub share: f64,
    pub failures: usize,
    pub escalate: bool,
    pub sbom: Share,
    pub provenance: Share,
    /// The settings to set to "strict" now (escalation due, still soft).
    pub flip: Vec<String>,
}

/// Newest last, as the ledger reads: only the last `WINDOW` count.
pub fn report(env: Environment, releases: &[&Release], policy: Policy) -> Report {
    let last: Vec<&&Release> = releases.iter().rev().take(WINDOW).collect();
    let signature: Vec<Outcome> = last
        .iter()
        .map(|r| outcome(Some(r.signature_status), r.signature_reason.as_deref()))
        .collect();
    let sbom: Vec<Outcome> = last
        .iter()
        .map(|r| {
            outcome(
                r.attestations.sbom_status,
                r.attestations.sbom_reason.as_deref(),
            )
        })
        .collect();
    let provenance: Vec<Outcome> = last
        .iter()
        .map(|r| {
            outcome(
                r.attestations.provenance_status,
                r.attestations.provenance_reason.as_deref(),
            )
        })
        .collect();
    let (signature, sbom, provenance) = (share(&signature), share(&sbom), share(&provenance));
    let flip = [
        ("signature", signature.escalate, policy.signature),
        ("sbom", sbom.escalate, policy.sbom),
        ("provenance", provenance.escalate, policy.provenance),
    ]
    .into_iter()
    .filter(|(_, due, level)| *due && *level == Level::Soft)
    .map(|(name, _, _)| format!("environments.{env}.policy.{name} = \"strict\""))
    .collect();
    Report {
        record: "signing-report",
        environment: env,
        window: WINDOW,
        releases: last.len(),
        verified: signature.verified,
        share: signature.share,
        failures: signature.failures,
        escalate: signature.escalate,
        sbom,
        provenance,
        flip,
    }
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let releases = Ledger::open(project, args.env).read_reporting()?;
    let policy = project.release_config()?.environment(args.env)?.policy;
    // Releases that reached the environment: completed ones.
    let complete: Vec<&Release> = releases
        .iter()
        .filter(|r| r.status == Status::Complete)
        .collect();
    let report = report(args.env, &complete, policy);
    if args.json {
        output::print_line(&report)?;
        return Ok(());
    }
    let line = |name: &str, s: &Share, level: Level| {
        output::print_text(format_args!(
            "  {name:<11} {:>2} verified ({:.1}%), {} failed ({:.1}%); now {}; strict due: {}",
            s.verified,
            s.share * 100.0,
            s.failures,
            s.failure_share * 100.0,
            match level {
                Level::Soft => "soft",
                Level::Strict => "strict",
            },
            if s.escalate { "yes" } else { "no" }
        ))
    };
    output::print_text(format_args!(
        "{}: the last {} releases (window {WINDOW}; strict is due above 90% verified with under 1% failed, on a full window):",
        args.env, report.releases
    ))?;
    line("signature", &share_of_signature(&report), policy.signature)?;
    line("sbom", &report.sbom, policy.sbom)?;
    line("provenance", &report.provenance, policy.provenance)?;
    if report.flip.is_empty() {
        output::print_text("nothing to flip in deploy/release.json")?;
    } else {
        for f in &report.flip {
            output::print_text(format_args!("flip in deploy/release.json: {f}"))?;
        }
    }
    Ok(())
}

fn share_of_signature(r: &Report) -> Share {
    Share {
        verified: r.verified,
        share: r.share,
        failures: r.failures,
        failure_share: if r.releases == 0 {
            0.0
        } else {
            ((r.failures as f64 / r.releases as f64) * 1000.0).round() / 1000.0
        },
        escalate: r.escalate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{Failed as F, Unverified as U, Verified as V};

    #[test]
    fn escalates_only_past_ninety_percent_of_a_full_window_without_failures() {
        let mut s = vec![V; 28];
        s.extend([U, U]);
        let r = share(&s);
        assert_eq!((r.verified, r.escalate), (28, true), "28/30 = 93%");
        let mut s = vec![V; 27];
        s.extend([U, U, U]);
        assert!(!share(&s).escalate, "27/30 = 90% is not more than 90%");
        assert!(!share(&[V; 10]).escalate, "not a full window");
        let mut s = vec![V; 29];
        s.push(F);
        assert!(
            !share(&s).escalate,
            "one bad signature in 30 is 3.3% failures, not under 1%"
        );
    }

    #[test]
    fn a_bad_signature_is_a_failure_a_missing_one_is_not() {
        assert_eq!(
            outcome(
                Some(SignatureStatus::Unverified),
                Some("bad signature (no matching signatures: …)")
            ),
            F
        );
        assert_eq!(
            outcome(Some(SignatureStatus::Unverified), Some("no signature")),
            U
        );
        assert_eq!(outcome(None, None), U, "not checked (an older record)");
        assert_eq!(outcome(Some(SignatureStatus::Verified), None), V);
    }
}
