//! The end of a release for the user: records printed and sent, and a
//! failed release turned into a non-zero exit with one line saying where
//! the environment was left.

use anyhow::bail;

use super::Outcome;
use crate::ledger::RecordKind;
use crate::ledger::notify;
use crate::support::output;

/// Print the records, queue them for the webhook, and turn a failed release into the exit status.
pub fn finish(outcome: &Outcome, json: bool) -> anyhow::Result<()> {
    for r in std::iter::once(&outcome.release).chain(&outcome.auto_rollback) {
        // Sent by `main` once the lock is released (ledger/notify.rs).
        notify::queue(r);
        if json {
            output::print_line(r)?;
        }
    }
    let r = &outcome.release;
    if outcome.ok() {
        return Ok(());
    }
    let what = match r.record {
        RecordKind::Deploy => "deploy",
        RecordKind::Rollback => "rollback",
    };
    let error = r.error.as_deref().unwrap_or("failed");
    let (sha, status, env) = (&r.image_sha, r.status, r.environment);
    if r.strategy == Some(crate::model::strategy::StrategyKind::Canary)
        && let Some(left) = &r.left_on_sha
    {
        bail!(
            "{what} of {sha} {status}: {error}; the canary was aborted (weight 0, removed): {env} runs {left}, the stable release"
        );
    }
    match (&r.left_on_sha, &outcome.auto_rollback) {
        (Some(left), Some(_)) => bail!(
            "{what} of {sha} {status}: {error}; rolled back automatically, {env} runs {left} (verified)"
        ),
        (Some(left), None) => {
            bail!("{what} of {sha} {status}: {error}; nothing was changed, {env} still runs {left}")
        }
        (None, None) if r.previous_sha.is_none() => bail!(
            "{what} of {sha} {status}: {error}; nothing verified ran before, so nothing runs now"
        ),
        _ => bail!(
            "{what} of {sha} {status}: {error}; the previous release could NOT be verified: see `cargo xtask status --env {env}` and docs/rollback.md"
        ),
    }
}
