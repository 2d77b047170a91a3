//! Bring back the last *verified* release after a failed one: the instance
//! the target kept, else its frozen config, else its config rendered afresh.

use std::path::PathBuf;
use std::time::Duration;

use super::Engine;
use super::before::{Before, Fallback};
use super::run::{Frozen, config_for, release_id};
use crate::ledger::{Release, Verified};
use crate::model::image::ImageRef;
use crate::targets::Applied;

pub struct Restored {
    pub image: ImageRef,
    pub record: Option<Release>,
    pub config: Option<PathBuf>,
    pub applied: Option<Applied>,
    pub verified: Verified,
}

/// `None`: nothing verified ran before, so there is nothing to go back to
/// (the failed instance is removed all the same).
pub fn restore(eng: &Engine, before: &Before, timeout: Duration) -> Option<Restored> {
    let kept = eng.target.restore_kept().unwrap_or_else(|e| {
        eprintln!("warning: could not bring back the kept instance: {e:#}");
        None
    });
    let fallback = before.fallback.as_ref()?;
    let frozen = fallback.record.as_ref().and_then(|r| r.config.clone());
    let kept_instance = kept.is_some();
    let (applied, config, image, record) = match kept {
        Some(applied) => {
            // Verify what came back, as the target names it, when it is
            // what ran before the release or the last verified one: a
            // ledger behind what runs (its last line torn) must not make a
            // good restore look failed.
            let (image, record) = match back_from_target(eng, before, fallback) {
                Some(image) if image.sha != fallback.image.sha => {
                    eprintln!(
                        "the kept instance runs {}, which the target ran before this release (the ledger's last verified release is {})",
                        image.sha, fallback.image.sha
                    );
                    (image, before.record.clone())
                }
                _ => (fallback.image.clone(), fallback.record.clone()),
            };
            (Some(applied), frozen, image, record)
        }
        None => {
            let (applied, config) = reapply(eng, fallback);
            (
                applied,
                config,
                fallback.image.clone(),
                fallback.record.clone(),
            )
        }
    };
    let sha = &image.sha;
    eprintln!("rolling back to {sha}");
    let mut restored = Restored {
        image: image.clone(),
        record,
        config,
        applied: None,
        verified: Verified::default(),
    };
    let Some(applied) = applied else {
        return Some(restored);
    };
    let mut outcome = eng.probe.verify(&applied.url, sha, None, timeout, false);
    let mut applied = applied;
    // Re-applied beside a proxy: verified where it runs, then switched to.
    if outcome.ok() && !kept_instance {
        match eng.target.switch() {
            Ok(Some(url)) => {
                outcome = eng.probe.verify(&url, sha, None, timeout, false);
                applied.url = url;
            }
            Ok(None) => {}
            Err(e) => eprintln!("warning: switching back to {sha} failed: {e:#}"),
        }
    }
    if outcome.ok() {
        if let Err(e) = eng.target.commit() {
            eprintln!("warning: removing the failed instance's leftovers failed: {e:#}");
        }
        eprintln!("rolled back: {} serves {sha} again", applied.url);
    } else {
        eprintln!(
            "warning: the restored release did not verify either: {}",
            outcome.last_seen
        );
    }
    restored.verified = outcome.verified;
    restored.applied = Some(applied);
    Some(restored)
}

/// The image the target runs after bringing back its kept instance, when
/// that is what it ran before the release or the last verified release.
fn back_from_target(eng: &Engine, before: &Before, fallback: &Fallback) -> Option<ImageRef> {
    let now = eng.target.status().ok()?.image()?;
    let known = before.running.as_ref() == Some(&now.sha) || now.sha == fallback.image.sha;
    known.then_some(now)
}

/// Nothing kept: apply the release's config again, rendered with the
/// environment's current settings and the release's own carried over from
/// its frozen config (checked like any other: see `run::config_for`).
fn reapply(eng: &Engine, fallback: &Fallback) -> (Option<Applied>, Option<PathBuf>) {
    let image = &fallback.image;
    let frozen = fallback.record.as_ref().and_then(|r| {
        r.config.as_deref().map(|path| Frozen {
            path,
            sha256: r.config_sha256.as_deref(),
        })
    });
    let id = release_id(&image.sha);
    let config = match config_for(eng, image, &id, frozen, None) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("warning: not restoring {image}: {e:#}");
            return (None, None);
        }
    };
    match eng.target.apply(&config, Some(image)) {
        Ok(applied) => (Some(applied), Some(config)),
        Err(e) => {
            eprintln!("warning: re-applying {} failed: {e:#}", config.display());
            (None, Some(config))
        }
    }
}
