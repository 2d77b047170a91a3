//! One release in flight: its ledger record and the steps that move it.
//! `write` is the one place a status changes and reaches the ledger.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use super::before::Before;
use super::restore::Restored;
use super::{Engine, Request};
use crate::build::sha256;
use crate::ledger::{Reason, RecordKind, Release, Status, Verified};
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::support::output;
use crate::targets::{NothingChanged, Target};
use crate::verify::cosign::{Attestations, SignatureStatus};

/// Why a release failed, and whether the target was changed at all.
pub enum Failure {
    /// The target refused and stayed exactly as it was: nothing to restore.
    Untouched(String),
    Touched(String),
}

impl Failure {
    pub fn why(&self) -> &str {
        match self {
            Failure::Untouched(why) | Failure::Touched(why) => why,
        }
    }

    fn into_why(self) -> String {
        match self {
            Failure::Untouched(why) | Failure::Touched(why) => why,
        }
    }
}

pub struct Run {
    pub release: Release,
    config: PathBuf,
    started: Instant,
}

impl Run {
    /// The config (frozen with the release a rollback returns to, else
    /// rendered), checked to run exactly the image asked for; then the
    /// `running` line. The target is not touched yet.
    pub fn start(
        req: &Request,
        before: &Before,
        frozen_sha256: Option<&str>,
        eng: &Engine,
    ) -> anyhow::Result<Run> {
        let started = Instant::now();
        let id = release_id(&req.image.sha);
        let frozen = req.config.as_deref().map(|path| Frozen {
            path,
            sha256: frozen_sha256,
        });
        let config = config_for(eng, &req.image, &id, frozen, req.recorded.as_ref())?;
        let config_sha256 = Some(sha256::of_file(&config)?);
        let now = output::now_rfc3339();
        let mut run = Run {
            release: Release {
                record: req.kind,
                id,
                status: Status::Running,
                environment: req.env,
                target: eng.target.kind(),
                image_sha: req.image.sha.clone(),
                image_digest: req.image.digest.clone(),
                repository: req.image.repository.clone(),
                image_ref: req.image.pinned(),
                previous_sha: before.running.clone(),
                previous_release: before.record.as_ref().map(|p| p.id.clone()),
                new_sha: (req.kind == RecordKind::Rollback).then(|| req.image.sha.clone()),
                reason: req.reason,
                signature_status: req.signature.status,
                signature_reason: req.signature.reason.clone(),
                attestations: req.attestations.clone(),
                initiated_by: req.initiated_by.clone(),
                deployment_ref: None,
                url: None,
                config: Some(config.clone()),
                config_sha256,
                verified: Verified::default(),
                error: None,
                left_on_sha: None,
                strategy: None,
                analysis: None,
                content: req.content.clone(),
                rebuild_of: req.rebuild_of.clone(),
                started_at: now.clone(),
                duration_sec: 0.0,
                at: now,
            },
            config,
            started,
        };
        run.write(eng, Status::Running)?;
        Ok(run)
    }

    /// Ctrl-C arrived before the target was touched: say so, change nothing.
    pub fn untouched(&mut self, before: &Before, eng: &Engine) -> anyhow::Result<()> {
        self.release.error = Some("interrupted before the target was touched".to_owned());
        self.release.left_on_sha = before.running.clone();
        self.write(eng, Status::Interrupted)
    }

    /// Apply, then verify. `Err` when the target refused, the service did
    /// not serve this SHA in time, or Ctrl-C arrived.
    pub fn apply_and_verify(
        &mut self,
        req: &Request,
        before: &Before,
        eng: &Engine,
    ) -> Result<(), Failure> {
        let keep = before.fallback.as_ref().map(|f| &f.image);
        let applied = eng.target.apply(&self.config, keep).map_err(|e| {
            let why = format!("{e:#}");
            if e.downcast_ref::<NothingChanged>().is_some() {
                Failure::Untouched(why)
            } else {
                Failure::Touched(why)
            }
        })?;
        self.release.url = Some(applied.url.clone());
        self.release.deployment_ref = Some(applied.deployment_ref);
        // Only where old and new overlap during a rollout may the old SHA still answer.
        let overlapping = before
            .running
            .as_ref()
            .filter(|_| eng.target.rollout_overlaps());
        let sha = &req.image.sha;
        let outcome = eng
            .probe
            .verify(&applied.url, sha, overlapping, req.verify_timeout, true);
        self.release.verified = outcome.verified.clone();
        if (eng.interrupted)() {
            return Err(Failure::Touched(
                "interrupted during verification".to_owned(),
            ));
        }
        if !outcome.ok() {
            let ok = |b: bool| if b { "ok" } else { "not ok" };
            return Err(Failure::Touched(format!(
                "verification failed after {:.0}s (health {}, sha {}): {}",
                self.started.elapsed().as_secs_f64(),
                ok(outcome.verified.health),
                ok(outcome.verified.sha),
                outcome.last_seen
            )));
        }
        self.switch(req, eng)
    }

    /// Verified where it runs: the target moves users' traffic to it (a
    /// proxy's switch) and it is verified again where users reach it. A
    /// failure here is restored like any other: the old release is still
    /// there to switch back to.
    fn switch(&mut self, req: &Request, eng: &Engine) -> Result<(), Failure> {
        let url = match eng.target.switch() {
            Ok(Some(url)) => url,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Failure::Touched(format!("switching traffic failed: {e:#}"))),
        };
        let sha = &req.image.sha;
        eprintln!(
            "traffic switched to {sha} {:.2}s after the release started",
            self.started.elapsed().as_secs_f64()
        );
        let timeout = req.verify_timeout.min(std::time::Duration::from_secs(30));
        let outcome = eng.probe.verify(&url, sha, None, timeout, true);
        if !outcome.ok() {
            return Err(Failure::Touched(format!(
                "verified directly, but not through {url} after the switch: {}",
                outcome.last_seen
            )));
        }
        self.release.url = Some(url);
        Ok(())
    }

    /// Verified: drop what the target kept of the old release, record `complete`.
    pub fn settle(&mut self, eng: &Engine) -> anyhow::Result<()> {
        if let Err(e) = eng.target.commit() {
            eprintln!(
                "warning: the new release is verified, but removing the old instance failed: {e:#}"
            );
        }
        self.write(eng, Status::Complete)?;
        let r = &self.release;
        eprintln!(
            "{} {} verified on {} in {:.1}s: /version serves {}",
            r.environment,
            r.target,
            r.url.as_deref().unwrap_or("-"),
            r.duration_sec,
            r.image_sha
        );
        Ok(())
    }

    /// Record `failed` (or `interrupted`) with the cause and where the
    /// target was left: on the restored release when it verified, on what
    /// ran before when the target was never changed.
    pub fn fail(
        &mut self,
        failure: Failure,
        restored: Option<&Restored>,
        before: &Before,
        eng: &Engine,
    ) -> anyhow::Result<()> {
        self.release.left_on_sha = match &failure {
            Failure::Untouched(_) => before.running.clone(),
            Failure::Touched(_) => restored
                .filter(|r| r.verified.health && r.verified.sha)
                .map(|r| r.image.sha.clone()),
        };
        self.release.error = Some(failure.into_why());
        let status = if (eng.interrupted)() {
            Status::Interrupted
        } else {
            Status::Failed
        };
        self.write(eng, status)
    }

    /// The automatic rollback that `restore` performed, as its own record.
    pub fn auto_rollback(&self, restored: Restored, eng: &Engine) -> anyhow::Result<Release> {
        let started = Instant::now();
        let (signature_status, signature_reason, attestations, content, rebuild_of) =
            match &restored.record {
                Some(p) => (
                    p.signature_status,
                    p.signature_reason.clone(),
                    p.attestations.clone(),
                    p.content.clone(),
                    p.rebuild_of.clone(),
                ),
                None => (
                    SignatureStatus::Unverified,
                    Some(
                        "not checked: restored as found on the target, not from this ledger"
                            .to_owned(),
                    ),
                    Attestations::default(),
                    None,
                    None,
                ),
            };
        let verified = restored.verified.health && restored.verified.sha;
        let image = restored.image;
        let mut rollback = Release {
            record: RecordKind::Rollback,
            id: release_id(&image.sha),
            image_ref: image.pinned(),
            image_sha: image.sha.clone(),
            image_digest: image.digest,
            repository: image.repository,
            previous_sha: Some(self.release.image_sha.clone()),
            previous_release: Some(self.release.id.clone()),
            new_sha: Some(image.sha),
            reason: Some(if (eng.interrupted)() {
                Reason::Interrupted
            } else {
                Reason::FailedVerification
            }),
            signature_status,
            signature_reason,
            attestations,
            deployment_ref: restored.applied.as_ref().map(|a| a.deployment_ref.clone()),
            url: restored.applied.map(|a| a.url),
            config_sha256: restored
                .config
                .as_deref()
                .and_then(|c| sha256::of_file(c).ok()),
            config: restored.config,
            verified: restored.verified,
            error: None,
            left_on_sha: None,
            strategy: None,
            analysis: None,
            content,
            rebuild_of,
            started_at: self.release.at.clone(),
            ..self.release.clone()
        };
        let status = if verified {
            Status::Complete
        } else {
            Status::Failed
        };
        write(eng, &mut rollback, status, started)?;
        Ok(rollback)
    }

    pub(super) fn write(&mut self, eng: &Engine, status: Status) -> anyhow::Result<()> {
        write(eng, &mut self.release, status, self.started)
    }

    /// The config this release applies.
    pub(super) fn config(&self) -> &Path {
        &self.config
    }
}

/// The one place a release's status changes: the record gets its status,
/// duration and time, and is appended to the ledger (one fsynced line)
/// before the next step runs.
fn write(
    eng: &Engine,
    release: &mut Release,
    status: Status,
    started: Instant,
) -> anyhow::Result<()> {
    release.status = status;
    release.duration_sec = output::seconds(started.elapsed());
    release.at = output::now_rfc3339();
    eng.ledger.append(release)
}

/// A frozen config of an earlier release, and the sha256 the ledger
/// recorded for it (absent in lines older than that field).
pub struct Frozen<'a> {
    pub path: &'a Path,
    pub sha256: Option<&'a str>,
}

/// The config a release applies. Without a frozen one: rendered from the
/// image with the environment's current settings. From a frozen one (a
/// rollback, a restore): the frozen file must still run exactly the image
/// and be byte for byte what the ledger recorded; then the config is
/// rendered afresh, so the environment's port and names are what its
/// config says now, and the release's own settings (its env) are carried
/// over from the frozen one. Refusals come before the target is touched.
pub fn config_for(
    eng: &Engine,
    image: &ImageRef,
    id: &str,
    frozen: Option<Frozen>,
    recorded: Option<&(String, crate::model::digest::Digest)>,
) -> anyhow::Result<PathBuf> {
    let dir = eng.releases_dir.join(id);
    let Some(frozen) = frozen.filter(|f| f.path.exists()) else {
        let config = eng.target.render(image, id, &dir)?;
        check_config(eng.target, &config, image, recorded)?;
        return Ok(config);
    };
    check_config(eng.target, frozen.path, image, recorded)?;
    if let Some(expected) = frozen.sha256 {
        let found = sha256::of_file(frozen.path)?;
        if found != expected {
            bail!(
                "{} was changed after it was applied (sha256 {found}, the ledger recorded {expected}): refusing to restore an edited config; deploy the SHA to render its config afresh",
                frozen.path.display()
            );
        }
    }
    eprintln!(
        "restoring the image and settings frozen in {}; port and names from the current config",
        frozen.path.display()
    );
    let config = eng.target.render(image, id, &dir)?;
    eng.target.carry_over(frozen.path, &config)?;
    check_config(eng.target, &config, image, recorded)?;
    Ok(config)
}

/// The config must run exactly the image the registry serves for that SHA
/// (and the ledger or build recorded): a frozen config that was edited, or
/// one from another build, is refused before the target is touched.
pub fn check_config(
    target: &dyn Target,
    config: &Path,
    image: &ImageRef,
    recorded: Option<&(String, crate::model::digest::Digest)>,
) -> anyhow::Result<()> {
    let in_config = target
        .image_in(config)
        .with_context(|| format!("reading the image that {} runs", config.display()))?;
    if in_config != *image {
        let recorded = recorded.map_or_else(String::new, |(source, digest)| {
            format!(" and {source} recorded {digest}")
        });
        bail!(
            "{} would run {}, but the registry serves {} for {}{recorded}: refusing to apply it (the config was edited or belongs to another build); deploy the SHA to render its config afresh",
            config.display(),
            in_config.pinned(),
            image.digest,
            image.sha
        );
    }
    Ok(())
}

/// Unique and sortable: `20261123T101500.123Z-<short sha>`. Within one
/// process the millisecond is strictly increasing, so two releases of one
/// SHA never share an id (the ledger folds lines by id).
pub fn release_id(sha: &GitSha) -> String {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_MS: AtomicI64 = AtomicI64::new(0);
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    let prev = LAST_MS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now_ms.max(last.saturating_add(1)))
        })
        .unwrap_or(now_ms);
    let ms = now_ms.max(prev.saturating_add(1));
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond(),
        sha.short()
    )
}
