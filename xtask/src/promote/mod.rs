//! A named version (issue 12): the image already built from a commit of
//! main, promoted by digest, never rebuilt.
//!
//! ```text
//! vX.Y.Z ─► annotated git tag ─► its commit is on main ─► <canonical>:<sha> exists (digest D)
//!        ─► policy + proof: signature, SBOM, provenance; /api = label = provenance = record
//!        ─► <canonical>:X.Y.Z: absent → pull @D, tag, push, read back D | D → no-op | other → refused
//!        ─► target/xtask/release/X.Y.Z/: api binary (from @D), the attested SBOM, SHA256SUMS
//!           (+ .sig, cosign sign-blob), SHA512SUMS, notes.md
//! ```
//!
//! - git.rs: the tag, main, the previous version, the commits since
//! - image.rs: the version tag in the registry
//! - artifacts.rs: the attached files and their checksums
//! - notes.rs: release notes from commit subjects
//! - github.rs: `--publish`, the GitHub release by `gh release create`
//! - proof.rs: before the tag: the production policy's checks, the proof
//!   and the `/api` held to the tag's commit (issue 24)

pub mod artifacts;
pub mod git;
pub mod github;
pub mod image;
pub mod notes;
pub mod proof;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::model::image::ImageRef;
use crate::model::repository::Repository;
use crate::model::sha::GitSha;
use crate::model::version::Version;
use crate::registry;
use crate::support::output;
use crate::support::project::Project;
use crate::support::step::Steps;
use image::Promotion;

pub struct Request<'a> {
    pub project: &'a Project,
    pub version: Version,
    /// The SHA the operator expects the tag to name (`--sha`).
    pub expect_sha: Option<GitSha>,
    pub canonical: Repository,
    pub dry_run: bool,
    /// Create the GitHub release with `gh` (CI).
    pub publish: bool,
}

/// What a release did: written as `release.json` beside the artifacts and,
/// with `--json`, printed as the last stdout line.
#[derive(Debug, serde::Serialize)]
pub struct Record {
    pub record: &'static str,
    pub version: String,
    pub tag: String,
    pub prerelease: bool,
    pub image_sha: GitSha,
    pub repository: Repository,
    pub image_digest: crate::model::digest::Digest,
    /// `repo:X.Y.Z@sha256:…`.
    pub image_ref: String,
    pub promotion: Promotion,
    pub previous_version: Option<String>,
    pub main_ref: &'static str,
    pub artifacts_dir: Option<PathBuf>,
    pub artifacts: Vec<String>,
    pub sbom_source: Option<String>,
    /// sha256 of the image's `/api`, and what it was found equal to.
    pub binary_sha256: String,
    pub binary_matches: Vec<String>,
    /// `signed` (SHA256SUMS.sig attached), or why not.
    pub sums_signature: Option<String>,
    pub notes: Option<PathBuf>,
    /// `created` or `already-there` with `--publish`.
    pub github_release: Option<&'static str>,
    pub duration_sec: f64,
    pub at: String,
}

/// Check the tag, promote the digest, write the artifacts and notes.
/// Every refusal comes before anything is pushed.
pub fn release(req: &Request) -> anyhow::Result<Record> {
    let started = std::time::Instant::now();
    let mut steps = Steps::new();
    let root = &req.project.root;
    let version = &req.version;
    let tag = version.tag();
    let sha = git::tagged_commit(root, version)?;
    if let Some(expected) = &req.expect_sha
        && expected != &sha
    {
        bail!(
            "{tag} names {sha}, not the --sha {expected}: pass the commit the tag names, or re-tag (a pushed version tag should not move)"
        );
    }
    let main_ref = git::main_ref(root)?;
    if !git::is_on(root, &sha, main_ref)? {
        bail!(
            "{tag} names {sha}, which is not on {main_ref}: versions are cut from commits of main only (merge it first, then tag the merge commit; or `git fetch origin main` if main is stale here)"
        );
    }
    let digest = registry::digest_of(&req.canonical, sha.as_str())?.with_context(|| {
        format!(
            "{}:{sha} does not exist: the commit has no canonical image (ci-build on main pushes it; run it, or pass --repository)",
            req.canonical
        )
    })?;
    let image = ImageRef {
        repository: req.canonical.clone(),
        sha: sha.clone(),
        digest,
    };
    eprintln!(
        "releasing {tag}: {} (commit {sha} on {main_ref})",
        image.by_digest()
    );
    let scratch = req
        .project
        .state_dir()
        .join("release-check")
        .join(sha.short());
    let proven = steps.run("policy and proof of the digest", || {
        proof::check(req.project, &image, &scratch)
    })?;
    let promotion = steps.run("promote the digest (version tag)", || {
        image::promote(&image, version, req.dry_run)
    })?;
    let target = image::version_tag(&image, version);
    match promotion {
        Promotion::AlreadyThere => eprintln!(
            "{target} already names {}: nothing to promote (a no-op); artifacts written again",
            image.digest
        ),
        Promotion::Pushed => eprintln!("{target} pushed and read back: {}", image.digest),
        Promotion::WouldPush => {}
    }
    let previous = git::previous_version(root, version, &sha)?;
    let mut record = Record {
        record: "release",
        version: version.number(),
        tag: tag.clone(),
        prerelease: version.is_prerelease(),
        image_sha: sha.clone(),
        repository: image.repository.clone(),
        image_digest: image.digest.clone(),
        image_ref: format!("{target}@{}", image.digest),
        promotion,
        previous_version: previous.as_ref().map(Version::tag),
        main_ref,
        artifacts_dir: None,
        artifacts: Vec::new(),
        sbom_source: None,
        binary_sha256: proven.binary_sha256.clone(),
        binary_matches: proven.compared_with.clone(),
        sums_signature: None,
        notes: None,
        github_release: None,
        duration_sec: 0.0,
        at: output::now_rfc3339(),
    };
    if req.dry_run {
        eprintln!(
            "(dry run) then write the binary, SBOM, checksums and notes; nothing was changed"
        );
        record.duration_sec = output::seconds(started.elapsed());
        return Ok(record);
    }
    let made = steps.run("artifacts (binary from the image, SBOM, checksums)", || {
        artifacts::write(
            req.project,
            &image,
            version,
            proven.checked.sbom_documents.first(),
        )
    })?;
    let signed = steps.run("sign SHA256SUMS (cosign sign-blob)", || {
        artifacts::sign_sums(&made.dir)
    })?;
    let commits = git::commits_since(root, previous.as_ref(), &sha)?;
    let header = format!(
        "# {tag}\n\nImage: `{target}` = `{}` (commit {sha}), the image built from that commit, promoted by digest, never rebuilt. Checksums: SHA256SUMS, SHA512SUMS.",
        image.by_digest()
    );
    let text = notes::render(&header, record.previous_version.as_deref(), &commits);
    let notes_path = made.dir.join("notes.md");
    std::fs::write(&notes_path, text)
        .with_context(|| format!("writing {}", notes_path.display()))?;
    let mut attached = made.files.clone();
    attached.extend(artifacts::SUMS.iter().map(|(f, _)| (*f).to_owned()));
    match signed {
        Ok(files) => {
            eprintln!("SHA256SUMS signed: {}", files.join(", "));
            attached.extend(files);
            record.sums_signature = Some("signed".to_owned());
        }
        Err(reason) => {
            if proven.policy.signature == crate::supply::policy::Level::Strict {
                bail!(
                    "the production policy is strict on signatures but SHA256SUMS could not be signed: {reason} (the version tag {target} is pushed; rerun once signing works, the rerun is a no-op for the tag)"
                );
            }
            eprintln!("warning: SHA256SUMS not signed ({reason}); continuing (soft policy)");
            record.sums_signature = Some(format!("unsigned: {reason}"));
        }
    }
    record.artifacts = attached;
    record.sbom_source = Some(made.sbom_source);
    if req.publish {
        let files: Vec<PathBuf> = record.artifacts.iter().map(|f| made.dir.join(f)).collect();
        let files: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        let created = steps.run("GitHub release (gh)", || {
            github::publish(version, &notes_path, &files)
        })?;
        if !created {
            eprintln!("the GitHub release {tag} exists already: left as it is");
        }
        record.github_release = Some(if created { "created" } else { "already-there" });
    }
    record.notes = Some(notes_path);
    record.artifacts_dir = Some(made.dir.clone());
    record.duration_sec = output::seconds(started.elapsed());
    output::write_file(&made.dir.join("release.json"), &record)?;
    eprintln!("done: {} ({})", made.dir.display(), steps.summary());
    Ok(record)
}
