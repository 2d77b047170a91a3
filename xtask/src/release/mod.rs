//! The release engine: what deploy and rollback share once the image is
//! checked. One release is a few small steps; every status transition is
//! one ledger line, written in one place (`run::write`):
//!
//! ```text
//! ask ─► start ─► apply ─► verify ─► settle                      complete
//!  │       │        └────────┴─────► restore ─► fail (+ rollback) failed | interrupted
//!  │       ├─ Ctrl-C before apply ─► untouched                    interrupted
//!  │       └─ strategy canary ─────► canary.rs (steps, analysis)  complete | failed-analysis
//!  └─ the target cannot be asked: error, nothing touched
//! ```
//!
//! The strategy is a value in the [`Request`] (`strategy.rs`): bluegreen is
//! the path above; a canary starts beside the stable release and moves
//! traffic in judged steps (`canary.rs`).
//!
//! The engine never imports a task. The target, the probe, the ledger and
//! the interrupt flag come in through [`Engine`], so the unit tests
//! (`tests.rs`) drive every path with an in-memory target.

mod before;
mod canary;
#[cfg(test)]
mod canary_tests;
mod checks;
mod finish;
pub mod recorded;
mod restore;
mod run;
pub mod strategy;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use checks::{Refusal, check_digest, find_image, read_metadata, record_refusal};
pub use finish::finish;
pub use strategy::Strategy;

use crate::ledger::{Ledger, Reason, RecordKind, Release, Status};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::targets::Target;
use crate::verify::Probe;
use crate::verify::cosign::{Attestations, Signature};

/// What a release runs against.
pub struct Engine<'a> {
    pub target: &'a dyn Target,
    pub probe: &'a dyn Probe,
    pub ledger: &'a Ledger,
    /// Each release's rendered config is frozen under `<releases_dir>/<id>/`.
    pub releases_dir: PathBuf,
    /// Whether Ctrl-C or SIGTERM arrived (the process-wide flag in real life).
    pub interrupted: &'a dyn Fn() -> bool,
}

pub struct Request {
    pub kind: RecordKind,
    pub env: Environment,
    /// The image, its digest read from the registry.
    pub image: ImageRef,
    /// The digest recorded for it elsewhere, and where (`the build metadata`,
    /// `release <id>`): named when the config disagrees.
    pub recorded: Option<(String, Digest)>,
    pub signature: Signature,
    /// The SBOM and provenance attestations' checks.
    pub attestations: Attestations,
    /// A rollback re-applies the config frozen with the release it returns to.
    pub config: Option<PathBuf>,
    pub reason: Option<Reason>,
    pub verify_timeout: Duration,
    pub initiated_by: String,
    /// All at once, or a canary in judged steps (rollbacks: always at once).
    pub strategy: Strategy,
    /// The image's layers and run config (read before the target is touched).
    pub content: Option<crate::build::adopt::Content>,
    /// A rebuild standing for this recorded digest, gone from the registry.
    pub rebuild_of: Option<Digest>,
}

/// The release as it ended, and the automatic rollback when it failed.
pub struct Outcome {
    pub release: Release,
    pub auto_rollback: Option<Release>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.release.status == Status::Complete
    }
}

pub fn execute(req: Request, eng: &Engine) -> anyhow::Result<Outcome> {
    // The caller holds the lock: a release still `running` is a dead one.
    let releases = eng.ledger.mark_abandoned(eng.ledger.read_reporting()?)?;
    let before = before::Before::ask(eng.target, eng.probe, &releases)?;
    let frozen_sha256 = req.config.as_ref().and_then(|c| {
        releases
            .iter()
            .rev()
            .find(|r| r.config.as_ref() == Some(c))
            .and_then(|r| r.config_sha256.clone())
    });
    let canary = canary::prepare(&req, &releases, &before, eng)?;
    let mut run = run::Run::start(&req, &before, frozen_sha256.as_deref(), eng)?;
    if (eng.interrupted)() {
        run.untouched(&before, eng)?;
        return Ok(Outcome {
            release: run.release,
            auto_rollback: None,
        });
    }
    if let Some(canary) = canary {
        return canary::run(run, &req, canary, eng);
    }
    let failure = match run.apply_and_verify(&req, &before, eng) {
        Ok(()) => {
            run.settle(eng)?;
            return Ok(Outcome {
                release: run.release,
                auto_rollback: None,
            });
        }
        Err(failure) => failure,
    };
    eprintln!("failed: {}", failure.why());
    // From here to the last ledger line no signal cuts the run short: each
    // call of the restore is bounded by its deadline, and a second Ctrl-C
    // waits for it (issue 23; support/interrupt.rs).
    crate::support::interrupt::shielded(|| {
        let restored = match failure {
            run::Failure::Touched(_) => restore::restore(eng, &before, req.verify_timeout),
            run::Failure::Untouched(_) => {
                eprintln!("the target was not changed: nothing to restore");
                None
            }
        };
        run.fail(failure, restored.as_ref(), &before, eng)?;
        let auto_rollback = restored.map(|r| run.auto_rollback(r, eng)).transpose()?;
        Ok(Outcome {
            release: run.release,
            auto_rollback,
        })
    })
}
