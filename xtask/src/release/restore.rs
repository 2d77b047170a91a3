//! Bring back the last *verified* release after a failed one: the instance
//! the target kept, else its frozen config, else its config rendered afresh.

use std::path::PathBuf;
use std::time::Duration;

use super::Engine;
use super::before::Before;
use super::run::{check_config, release_id};
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
    let sha = &fallback.image.sha;
    eprintln!("rolling back to {sha}");
    let frozen = fallback.record.as_ref().and_then(|r| r.config.clone());
    let kept_instance = kept.is_some();
    let (applied, config) = match kept {
        Some(applied) => (Some(applied), frozen),
        None => reapply(eng, &fallback.image, frozen),
    };
    let mut restored = Restored {
        image: fallback.image.clone(),
        record: fallback.record.clone(),
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

/// Nothing kept: apply the release's frozen config (checked like any
/// other), else render it afresh from the image.
fn reapply(
    eng: &Engine,
    image: &ImageRef,
    frozen: Option<PathBuf>,
) -> (Option<Applied>, Option<PathBuf>) {
    let config = match frozen.filter(|c| c.exists()) {
        Some(config) => config,
        None => {
            let id = release_id(&image.sha);
            match eng.target.render(image, &id, &eng.releases_dir.join(&id)) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("warning: could not render the config of {image}: {e:#}");
                    return (None, None);
                }
            }
        }
    };
    if let Err(e) = check_config(eng.target, &config, image, None) {
        eprintln!("warning: not restoring {}: {e:#}", config.display());
        return (None, Some(config));
    }
    match eng.target.apply(&config, Some(image)) {
        Ok(applied) => (Some(applied), Some(config)),
        Err(e) => {
            eprintln!("warning: re-applying {} failed: {e:#}", config.display());
            (None, Some(config))
        }
    }
}
