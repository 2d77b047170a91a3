//! What ran before a release, asked of the target (never guessed from the
//! ledger), and the release a failed one goes back to.

use anyhow::Context;

use crate::ledger::{self, Release};
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::targets::Target;
use crate::verify::Probe;

pub struct Before {
    /// The SHA the target says runs (for a lease, what its `/version` says).
    pub running: Option<GitSha>,
    /// The ledger's record of that release, when the two agree.
    pub record: Option<Release>,
    /// Where a failed release goes back to: the ledger's last *verified*
    /// release (not the last one started: after a `kill -9` the target may
    /// run an unverified one); with an empty ledger (a fresh CI runner),
    /// what the target was found running.
    pub fallback: Option<Fallback>,
}

pub struct Fallback {
    pub image: ImageRef,
    /// Its ledger record (and frozen config), when the ledger has one.
    pub record: Option<Release>,
}

impl Before {
    /// A target that cannot be asked stops the release before anything is
    /// touched: deploying blind could replace what we cannot see.
    pub fn ask(
        target: &dyn Target,
        probe: &dyn Probe,
        releases: &[Release],
    ) -> anyhow::Result<Before> {
        let found = target.status().with_context(|| {
            format!(
                "could not ask the {} target what runs, so nothing was touched; fix that and run again",
                target.kind()
            )
        })?;
        let running = found
            .image_sha
            .clone()
            .or_else(|| found.url.as_deref().and_then(|url| probe.reported_sha(url)));
        let record = ledger::current(releases)
            .filter(|c| running.as_ref() == Some(&c.image_sha))
            .cloned();
        let fallback = match ledger::current(releases) {
            Some(verified) => Some(Fallback {
                image: verified.image(),
                record: Some(verified.clone()),
            }),
            None => found.image().map(|image| Fallback {
                image,
                record: None,
            }),
        };
        Ok(Before {
            running,
            record,
            fallback,
        })
    }
}
