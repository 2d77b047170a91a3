//! What deploy and rollback share: finding and checking the image before
//! anything is touched, then apply → verify → commit, or restore.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::ledger::{self, Ledger, Reason, RecordKind, Release, Status, Verified};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::{ImageRef, full_tag};
use crate::model::repository::RepositoryKind;
use crate::model::sha::GitSha;
use crate::registry;
use crate::support::interrupt;
use crate::support::output;
use crate::support::project::{Project, ResolvedRepositories};
use crate::targets::Target;
use crate::verify;
use crate::verify::cosign::{self, Signature};

/// The image for `sha` that `env` may run: looked up in the repositories the
/// environment accepts, in order; a SHA found only in the staging repository
/// is refused for production by name.
pub fn find_image(
    env: Environment,
    repos: &ResolvedRepositories,
    sha: &GitSha,
    only: Option<RepositoryKind>,
) -> anyhow::Result<(RepositoryKind, Digest)> {
    let accepted = env.accepted_repositories();
    if let Some(kind) = only
        && !accepted.contains(&kind)
    {
        bail!(
            "{sha} was built into the {kind} repository {} (a branch build): {env} takes only images from {}, built from main",
            repos.get(kind),
            repos.canonical
        );
    }
    for kind in accepted
        .iter()
        .copied()
        .filter(|k| only.is_none_or(|o| o == *k))
    {
        if let Some(digest) = registry::digest_of(repos.get(kind), sha.as_str())? {
            eprintln!("found {} → {digest}", full_tag(repos.get(kind), sha));
            return Ok((kind, digest));
        }
    }
    if env == Environment::Production
        && only.is_none()
        && registry::digest_of(&repos.staging, sha.as_str())?.is_some()
    {
        bail!(
            "{sha} exists only in the staging repository {} (a branch build): production takes only images built from main into {}",
            repos.staging,
            repos.canonical
        );
    }
    let looked: Vec<String> = accepted
        .iter()
        .map(|k| full_tag(repos.get(*k), sha))
        .collect();
    bail!(
        "no image tagged {sha} (looked for {}): build that commit first with `cargo xtask ci-build`",
        looked.join(" and ")
    )
}

/// The registry's digest must be the one recorded at build time.
pub fn check_digest(
    image: &ImageRef,
    expected: Option<&Digest>,
    source: &str,
) -> anyhow::Result<()> {
    match expected {
        Some(expected) if *expected != image.digest => bail!(
            "{} now points at {} but {source} recorded {expected}: the tag was moved to other bytes; refusing to deploy it (rebuild the commit or investigate the registry)",
            full_tag(&image.repository, &image.sha),
            image.digest
        ),
        Some(_) => {
            eprintln!("digest matches {source}");
            Ok(())
        }
        None => Ok(()),
    }
}

pub struct Request<'a> {
    pub kind: RecordKind,
    pub env: Environment,
    pub image: ImageRef,
    pub signature: Signature,
    /// A rollback re-applies the config that went with that release.
    pub config: Option<PathBuf>,
    pub reason: Option<Reason>,
    pub verify_timeout: Duration,
    pub initiated_by: String,
    pub target: &'a dyn Target,
}

/// Apply, verify, and commit or restore. Returns the final records (the
/// release, and the automatic rollback when there was one) and whether the
/// release succeeded.
pub fn execute(
    req: Request,
    project: &Project,
    ledger: &Ledger,
) -> anyhow::Result<(Vec<Release>, bool)> {
    let started = Instant::now();
    let releases = ledger.read_reporting()?;
    let before = Before::ask(req.target, &releases);
    let previous = before.record.clone();
    let id = release_id(&req.image.sha);
    let dir = project.state_dir().join("releases").join(&id);
    let config = match &req.config {
        Some(stored) if stored.exists() => {
            eprintln!("restoring the config of that release: {}", stored.display());
            stored.clone()
        }
        _ => req.target.render(&req.image, &id, &dir)?,
    };
    let mut release = Release {
        record: req.kind,
        id: id.clone(),
        status: Status::Running,
        environment: req.env,
        target: req.target.kind(),
        image_sha: req.image.sha.clone(),
        image_digest: req.image.digest.clone(),
        repository: req.image.repository.clone(),
        image_ref: req.image.pinned(),
        previous_sha: before.sha.clone(),
        previous_release: previous.as_ref().map(|p| p.id.clone()),
        new_sha: (req.kind == RecordKind::Rollback).then(|| req.image.sha.clone()),
        reason: req.reason,
        signature_status: req.signature.status,
        signature_reason: req.signature.reason.clone(),
        initiated_by: req.initiated_by.clone(),
        deployment_ref: None,
        url: None,
        config: Some(config.clone()),
        verified: Verified::default(),
        error: None,
        left_on_sha: None,
        started_at: output::now_rfc3339(),
        duration_sec: 0.0,
        at: output::now_rfc3339(),
    };
    ledger.append(&release)?;
    if interrupt::requested() {
        return finish_untouched(
            release,
            ledger,
            started,
            "interrupted before the target was touched",
        );
    }

    let applied = req.target.apply(&config);
    let failure = match applied {
        Ok(applied) => {
            release.url = Some(applied.url.clone());
            release.deployment_ref = Some(applied.deployment_ref);
            // Only where old and new overlap during a rollout may the old SHA still answer.
            let overlapping = release
                .previous_sha
                .as_ref()
                .filter(|_| req.target.rollout_overlaps());
            let outcome = verify::service(
                &applied.url,
                &req.image.sha,
                overlapping,
                req.verify_timeout,
                true,
            );
            release.verified = outcome.verified.clone();
            if outcome.ok() && !interrupt::requested() {
                req.target.commit()?;
                release.status = Status::Complete;
                release.duration_sec = output::seconds(started.elapsed());
                release.at = output::now_rfc3339();
                ledger.append(&release)?;
                eprintln!(
                    "{} {} verified on {} in {:.1}s: /version serves {}",
                    req.env, release.target, applied.url, release.duration_sec, req.image.sha
                );
                return Ok((vec![release], true));
            }
            if interrupt::requested() {
                "interrupted during verification".to_owned()
            } else {
                format!(
                    "verification failed after {:.0}s (health {}, sha {}): {}",
                    started.elapsed().as_secs_f64(),
                    ok(outcome.verified.health),
                    ok(outcome.verified.sha),
                    outcome.last_seen
                )
            }
        }
        Err(e) => format!("{e:#}"),
    };
    eprintln!("failed: {failure}");

    // Put the previous release back, verified, and say so in the ledger.
    let restored = restore(req.target, &before, req.verify_timeout);
    release.status = if interrupt::requested() {
        Status::Interrupted
    } else {
        Status::Failed
    };
    release.error = Some(failure);
    release.duration_sec = output::seconds(started.elapsed());
    release.at = output::now_rfc3339();
    release.left_on_sha = match &restored {
        Some((_, v)) if v.health && v.sha => before.sha.clone(),
        _ => None,
    };
    ledger.append(&release)?;
    let mut records = vec![release.clone()];
    if let (Some(prev), Some((applied, verified))) = (&before.image, restored) {
        let (signature_status, signature_reason) = match &previous {
            Some(p) => (p.signature_status, p.signature_reason.clone()),
            None => (
                crate::verify::cosign::SignatureStatus::Unverified,
                Some(
                    "not checked: restored as found on the target, not from this ledger".to_owned(),
                ),
            ),
        };
        let rollback = Release {
            record: RecordKind::Rollback,
            id: release_id(&prev.sha),
            status: if verified.health && verified.sha {
                Status::Complete
            } else {
                Status::Failed
            },
            image_sha: prev.sha.clone(),
            image_digest: prev.digest.clone(),
            repository: prev.repository.clone(),
            image_ref: prev.pinned(),
            previous_sha: Some(req.image.sha.clone()),
            previous_release: Some(id),
            new_sha: Some(prev.sha.clone()),
            reason: Some(if interrupt::requested() {
                Reason::Interrupted
            } else {
                Reason::FailedVerification
            }),
            signature_status,
            signature_reason,
            deployment_ref: applied.as_ref().map(|a| a.deployment_ref.clone()),
            url: applied.map(|a| a.url),
            config: previous.as_ref().and_then(|p| p.config.clone()),
            verified,
            error: None,
            left_on_sha: None,
            started_at: release.at.clone(),
            duration_sec: output::seconds(started.elapsed()),
            at: output::now_rfc3339(),
            ..release.clone()
        };
        ledger.append(&rollback)?;
        records.push(rollback);
    }
    Ok((records, false))
}

fn ok(b: bool) -> &'static str {
    if b { "ok" } else { "not ok" }
}

/// What ran before this release: asked of the target (the container's
/// pinned image, or what `/version` says behind a lease), with the ledger's
/// record of it when the two agree. A fresh CI runner has an empty ledger;
/// the target still knows.
struct Before {
    sha: Option<GitSha>,
    image: Option<ImageRef>,
    record: Option<Release>,
}

impl Before {
    fn ask(target: &dyn Target, releases: &[Release]) -> Before {
        let running = target.status().unwrap_or_default();
        let sha = running
            .image_sha
            .clone()
            .or_else(|| running.url.as_deref().and_then(verify::reported_sha));
        let record = ledger::current(releases)
            .filter(|c| sha.as_ref().is_none_or(|s| *s == c.image_sha))
            .cloned();
        let sha = sha.or_else(|| record.as_ref().map(|r| r.image_sha.clone()));
        let image = running
            .image()
            .filter(|i| Some(&i.sha) == sha.as_ref())
            .or_else(|| {
                record.as_ref().map(|r| ImageRef {
                    repository: r.repository.clone(),
                    sha: r.image_sha.clone(),
                    digest: r.image_digest.clone(),
                })
            });
        Before { sha, image, record }
    }
}

/// Bring back what ran before: what the target kept, else the stored config
/// of its release. `None` when nothing ran before.
fn restore(
    target: &dyn Target,
    before: &Before,
    timeout: Duration,
) -> Option<(Option<crate::targets::Applied>, Verified)> {
    let kept = match target.restore_kept() {
        Ok(kept) => kept,
        Err(e) => {
            eprintln!("warning: could not restore the kept instance: {e:#}");
            None
        }
    };
    let sha = before.sha.as_ref()?;
    eprintln!("rolling back to {sha}");
    let applied = match kept {
        Some(applied) => Some(applied),
        None => match before
            .record
            .as_ref()
            .and_then(|r| r.config.as_deref())
            .filter(|c| c.exists())
        {
            Some(config) => match target.apply(config) {
                Ok(applied) => Some(applied),
                Err(e) => {
                    eprintln!("warning: re-applying {} failed: {e:#}", config.display());
                    None
                }
            },
            None => {
                eprintln!(
                    "warning: no kept instance and no stored config for {sha} (not in this ledger); redeploy it: `cargo xtask deploy {sha} …`"
                );
                None
            }
        },
    };
    let Some(applied) = applied else {
        return Some((None, Verified::default()));
    };
    let outcome = verify::service(&applied.url, sha, None, timeout, false);
    if outcome.ok() {
        let _ = target.commit();
        eprintln!("rolled back: {} serves {sha} again", applied.url);
    } else {
        eprintln!(
            "warning: the restored release did not verify either: {}",
            outcome.last_seen
        );
    }
    Some((Some(applied), outcome.verified))
}

fn finish_untouched(
    mut release: Release,
    ledger: &Ledger,
    started: Instant,
    why: &str,
) -> anyhow::Result<(Vec<Release>, bool)> {
    release.status = Status::Interrupted;
    release.error = Some(why.to_owned());
    release.left_on_sha = release.previous_sha.clone();
    release.duration_sec = output::seconds(started.elapsed());
    release.at = output::now_rfc3339();
    ledger.append(&release)?;
    Ok((vec![release], false))
}

/// Unique and sortable: `20261123T101500.123Z-<short sha>`.
fn release_id(sha: &GitSha) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond(),
        sha.short()
    )
}

/// Soft (or strict) signature check, exactly as in ci-build.
pub fn signature(image: &ImageRef, require: bool) -> anyhow::Result<Signature> {
    cosign::verify(image, require)
}

/// Read `metadata.json` from ci-build for its digest (and repository).
pub fn read_metadata(path: &Path, sha: &GitSha) -> anyhow::Result<crate::build::BuildRecord> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the build metadata {}: pass the metadata.json that `cargo xtask ci-build` wrote (default target/xtask/metadata.json)",
            path.display()
        )
    })?;
    let build: crate::build::BuildRecord = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a ci-build metadata.json: {e}", path.display()))?;
    if &build.image_sha != sha {
        bail!(
            "{} records {}, not {sha}: pass the metadata of the commit you deploy",
            path.display(),
            build.image_sha
        );
    }
    Ok(build)
}

/// Print the records, notify, and turn a failed release into the exit status.
pub fn finish(records: &[Release], ok: bool, json: bool) -> anyhow::Result<()> {
    for r in records {
        crate::ledger::notify::send(r);
        if json {
            output::print_line(r)?;
        }
    }
    if ok {
        return Ok(());
    }
    let first = &records[0];
    let what = match first.record {
        RecordKind::Deploy => "deploy",
        RecordKind::Rollback => "rollback",
    };
    let error = first.error.as_deref().unwrap_or("failed");
    match (&first.left_on_sha, records.get(1)) {
        (Some(left), Some(_)) => bail!(
            "{what} of {} {}: {error}; rolled back automatically, {} runs {left} (verified)",
            first.image_sha,
            first.status,
            first.environment
        ),
        _ if first.previous_sha.is_none() => bail!(
            "{what} of {} {}: {error}; nothing ran before, so nothing runs now",
            first.image_sha,
            first.status
        ),
        _ => bail!(
            "{what} of {} {}: {error}; the previous release could NOT be verified: see `cargo xtask status --env {}` and docs/rollback.md",
            first.image_sha,
            first.status,
            first.environment
        ),
    }
}
