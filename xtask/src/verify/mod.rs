//! Is the service up, and is it the SHA we deployed? Polled until a deadline.

pub mod cosign;

use std::time::{Duration, Instant};

use crate::ledger::Verified;
use crate::model::sha::GitSha;
use crate::support::http;
use crate::support::interrupt;

/// How the engine asks a service whether it serves a SHA: over HTTP in real
/// life ([`Http`]), in memory in the engine's unit tests.
pub trait Probe {
    /// Poll until `/health` is 200 and `/version` reports `sha`, the
    /// deadline passes, a third SHA answers, or (when `interruptible`) Ctrl-C.
    fn verify(
        &self,
        url: &str,
        sha: &GitSha,
        previous: Option<&GitSha>,
        timeout: Duration,
        interruptible: bool,
    ) -> Outcome;

    /// The SHA the service at `url` reports on `/version`, if it answers.
    fn reported_sha(&self, url: &str) -> Option<GitSha>;
}

/// The real probe: plain HTTP GETs of `<url>/health` and `<url>/version`.
pub struct Http;

impl Probe for Http {
    fn verify(
        &self,
        url: &str,
        sha: &GitSha,
        previous: Option<&GitSha>,
        timeout: Duration,
        interruptible: bool,
    ) -> Outcome {
        service(url, sha, previous, timeout, interruptible)
    }

    fn reported_sha(&self, url: &str) -> Option<GitSha> {
        reported_sha(url)
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub verified: Verified,
    /// What `/version` said last (or why it could not be read).
    pub last_seen: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.verified.health && self.verified.sha
    }
}

/// Poll `<base>/health` (200) and `<base>/version` (`git_sha` == `sha`)
/// until both hold or `timeout` passes (or a Ctrl-C arrives). While a
/// rollout is under way the old release may still answer (`previous`), so
/// that is waited out; any third SHA fails at once: those bytes are not this commit.
/// `interruptible`: a Ctrl-C ends the wait (not while restoring the previous
/// release, which must end verified; a second Ctrl-C still ends the process).
pub fn service(
    base: &str,
    sha: &GitSha,
    previous: Option<&GitSha>,
    timeout: Duration,
    interruptible: bool,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let base = base.trim_end_matches('/');
    let mut outcome = Outcome {
        verified: Verified::default(),
        last_seen: "no answer yet".to_owned(),
    };
    eprintln!(
        "verifying {base}/health and {base}/version reports {sha} (up to {}s)",
        timeout.as_secs()
    );
    loop {
        outcome.verified.health = matches!(http::get(&format!("{base}/health"), Duration::from_secs(2)), Ok(r) if r.status == 200);
        match http::get(&format!("{base}/version"), Duration::from_secs(2)) {
            Ok(r) if r.status == 200 => {
                let reported = serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("git_sha")?.as_str().map(str::to_owned));
                outcome.verified.sha = reported.as_deref() == Some(sha.as_str());
                outcome.last_seen = match reported {
                    Some(s) => format!("/version reports {s}"),
                    None => "/version has no git_sha".to_owned(),
                };
            }
            Ok(r) => outcome.last_seen = format!("/version answered {}", r.status),
            Err(e) => outcome.last_seen = format!("{e:#}"),
        }
        let wrong_sha = outcome
            .last_seen
            .strip_prefix("/version reports ")
            .is_some_and(|seen| {
                seen != sha.as_str() && previous.is_none_or(|p| p.as_str() != seen)
            });
        if outcome.ok()
            || wrong_sha
            || Instant::now() >= deadline
            || (interruptible && interrupt::requested())
        {
            return outcome;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The SHA the service at `base` reports on `/version`, if it answers.
pub fn reported_sha(base: &str) -> Option<GitSha> {
    let r = http::get(
        &format!("{}/version", base.trim_end_matches('/')),
        Duration::from_secs(2),
    )
    .ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    v.get("git_sha")?.as_str()?.parse().ok()
}
