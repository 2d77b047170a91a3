//! The release ledger: append-only JSON lines per environment. Every status
//! transition of a release (`running` → `complete` | `failed` |
//! `interrupted`) is a new line with the full record, written and fsynced
//! before the next step, so an interrupted run stays visible. A release
//! whose process died (`kill -9`) stays `running` until the next release
//! takes the lock: it then appends `abandoned` for it. History is never
//! rewritten; unreadable lines (a torn write) are skipped and summarised.

pub mod lock;
pub mod notify;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::repository::Repository;
use crate::model::sha::GitSha;
use crate::support::project::Project;
use crate::targets::TargetKind;
use crate::verify::cosign::SignatureStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    Deploy,
    Rollback,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Complete,
    Failed,
    Interrupted,
    /// Refused before the target was touched (a strict check, a proof
    /// naming another commit): recorded so the audit shows the attempt.
    Refused,
    /// Its process died mid-release (`kill -9`, power loss): found `running`
    /// by the next release, which holds the lock, so nothing runs it.
    Abandoned,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Refused => "refused",
            Status::Abandoned => "abandoned",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Manual,
    FailedVerification,
    Interrupted,
    /// A canary aborted by its analysis (the figures are in `analysis`).
    FailedAnalysis,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verified {
    pub health: bool,
    pub sha: bool,
}

/// One release (a deploy or a rollback) at one status. See docs/log-schema.md.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Release {
    pub record: RecordKind,
    pub id: String,
    pub status: Status,
    pub environment: Environment,
    pub target: TargetKind,
    /// The SHA this release puts in place.
    pub image_sha: GitSha,
    pub image_digest: Digest,
    pub repository: Repository,
    pub image_ref: String,
    /// What ran before (`None` on a first deploy).
    pub previous_sha: Option<GitSha>,
    pub previous_release: Option<String>,
    /// Rollbacks: the SHA now running (= image_sha), and why.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub new_sha: Option<GitSha>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<Reason>,
    pub signature_status: SignatureStatus,
    pub signature_reason: Option<String>,
    /// The SBOM and provenance attestations' checks (absent in older lines).
    #[serde(flatten)]
    pub attestations: crate::verify::cosign::Attestations,
    pub initiated_by: String,
    pub deployment_ref: Option<String>,
    pub url: Option<String>,
    /// The rendered target config of this release (restored by a rollback).
    pub config: Option<PathBuf>,
    /// The sha256 of that file as applied: a rollback refuses a frozen
    /// config that no longer matches it (absent in older lines).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config_sha256: Option<String>,
    pub verified: Verified,
    /// Failed or interrupted: what happened, and the SHA the target was left on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub left_on_sha: Option<GitSha>,
    /// `canary` when the release went in by weighted steps (absent: all at once).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub strategy: Option<crate::model::strategy::StrategyKind>,
    /// A canary's bounds and the figures of every step it reached.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub analysis: Option<crate::analysis::report::Report>,
    /// The image's layers and run config, read by digest before the target
    /// was touched: what a rebuild must hold to stand for it (absent in
    /// older lines).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<crate::build::adopt::Content>,
    /// This release ran a rebuild of a release whose digest the registry no
    /// longer held: that digest (same layers and run config, another
    /// manifest digest).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rebuild_of: Option<Digest>,
    pub started_at: String,
    pub duration_sec: f64,
    /// When this line was written.
    pub at: String,
}

impl Release {
    /// `deploy` or `rollback`.
    pub fn record_name(&self) -> &'static str {
        match self.record {
            RecordKind::Deploy => "deploy",
            RecordKind::Rollback => "rollback",
        }
    }

    /// The image this release put in place.
    pub fn image(&self) -> ImageRef {
        ImageRef {
            repository: self.repository.clone(),
            sha: self.image_sha.clone(),
            digest: self.image_digest.clone(),
        }
    }
}

pub struct Ledger {
    path: PathBuf,
}

/// What reading found: releases (latest status of each, oldest first) and
/// the lines that could not be read (1-based line number, why).
pub struct Read {
    pub releases: Vec<Release>,
    pub skipped: Vec<(usize, String)>,
}

impl Ledger {
    /// `XTASK_LEDGER_DIR` when set (relative to the project root), else
    /// `<state dir>/ledger/`; one file per environment.
    pub fn open(project: &Project, env: Environment) -> Ledger {
        let dir = std::env::var_os("XTASK_LEDGER_DIR").map_or_else(
            || project.state_dir().join("ledger"),
            |d| project.root.join(d),
        );
        Ledger {
            path: dir.join(format!("{env}.jsonl")),
        }
    }

    /// A ledger at an exact path (the engine's unit tests).
    #[cfg(test)]
    pub fn at(path: PathBuf) -> Ledger {
        Ledger { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One `write` of one line, then fsync: the line is on disk before the
    /// next step of the release runs.
    pub fn append(&self, release: &Release) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut line = serde_json::to_string(release)?;
        line.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening the ledger {}", self.path.display()))?;
        // A torn line from an earlier crash must not swallow this one.
        if file.metadata()?.len() > 0 && !ends_with_newline(&self.path)? {
            line.insert(0, '\n');
        }
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing the ledger {}", self.path.display()))
    }

    pub fn read(&self) -> anyhow::Result<Read> {
        // Bytes, line by line: a corrupt line (torn write, a disk error, a
        // careless edit, even invalid UTF-8) is skipped and reported, and
        // never makes the rest of the history unreadable.
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let mut releases: Vec<Release> = Vec::new();
        let mut skipped = Vec::new();
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Release>(line) {
                Ok(r) => match releases.iter_mut().find(|old| old.id == r.id) {
                    Some(old) => *old = r,
                    None => releases.push(r),
                },
                Err(e) => skipped.push((n + 1, e.to_string())),
            }
        }
        Ok(Read { releases, skipped })
    }

    /// Read, and say on stderr, in one line, how many lines were skipped
    /// and where the first one is (a ledger full of garbage is one
    /// warning, not one per line).
    pub fn read_reporting(&self) -> anyhow::Result<Vec<Release>> {
        let read = self.read()?;
        if let Some(warning) = self.skipped_warning(&read.skipped) {
            eprintln!("{warning}");
        }
        Ok(read.releases)
    }

    /// One line for all the unreadable lines: their count and the first.
    pub fn skipped_warning(&self, skipped: &[(usize, String)]) -> Option<String> {
        let (first, why) = skipped.first()?;
        Some(match skipped.len() {
            1 => format!(
                "warning: skipped 1 unreadable ledger line (a torn write?): {}:{first}: {why}",
                self.path.display()
            ),
            n => format!(
                "warning: skipped {n} unreadable ledger lines (a torn write, a careless edit?), the first at {}:{first}: {why}",
                self.path.display()
            ),
        })
    }

    /// Append `abandoned` for every release still `running`. Called by a
    /// release that holds the environment's lock: no live process runs
    /// them, so their process died (`kill -9`) and its lock was found stale.
    /// Returns the releases as they now stand.
    pub fn mark_abandoned(&self, releases: Vec<Release>) -> anyhow::Result<Vec<Release>> {
        releases
            .into_iter()
            .map(|mut r| {
                if r.status == Status::Running {
                    eprintln!(
                        "release {} ({} of {}) never finished: its process died; recorded as abandoned",
                        r.id, r.record_name(), r.image_sha
                    );
                    r.status = Status::Abandoned;
                    r.error = Some(
                        "its process ended without finishing (kill -9, power loss); found when the next release took the lock".to_owned(),
                    );
                    r.at = crate::support::output::now_rfc3339();
                    self.append(&r)?;
                }
                Ok(r)
            })
            .collect()
    }
}

fn ends_with_newline(path: &Path) -> anyhow::Result<bool> {
    use std::io::{Read as _, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

/// The release running now, as far as the ledger knows: the newest one
/// that completed.
pub fn current(releases: &[Release]) -> Option<&Release> {
    releases.iter().rev().find(|r| r.status == Status::Complete)
}

/// The newest release is a canary that never finished (`kill -9` mid-step):
/// the proxy may still send it a share of the traffic.
pub fn unfinished_canary(releases: &[Release]) -> bool {
    // A refusal never touched the target, so it hides nothing; a killed run
    // is `running` until the next release (holding the lock) marks it
    // `abandoned`, just before it asks this.
    releases
        .iter()
        .rev()
        .find(|r| r.status != Status::Refused)
        .is_some_and(|r| {
            matches!(r.status, Status::Running | Status::Abandoned)
                && r.strategy == Some(crate::model::strategy::StrategyKind::Canary)
        })
}

/// The newest completed release of `sha` (its digest and rendered config).
pub fn last_complete_of<'a>(releases: &'a [Release], sha: &GitSha) -> Option<&'a Release> {
    releases
        .iter()
        .rev()
        .find(|r| r.status == Status::Complete && &r.image_sha == sha)
}

/// The last verified release other than the one running now.
pub fn previous<'a>(releases: &'a [Release], running: Option<&GitSha>) -> Option<&'a Release> {
    releases
        .iter()
        .rev()
        .filter(|r| r.status == Status::Complete)
        .find(|r| Some(&r.image_sha) != running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str, sha_char: char, status: Status) -> Release {
        Release {
            record: RecordKind::Deploy,
            id: id.to_owned(),
            status,
            environment: Environment::Staging,
            target: TargetKind::Docker,
            image_sha: sha_char.to_string().repeat(40).parse().expect("sha"),
            image_digest: format!("sha256:{}", "0".repeat(64))
                .parse()
                .expect("digest"),
            repository: "localhost:5000/a/api".parse().expect("repo"),
            image_ref: "x".to_owned(),
            previous_sha: None,
            previous_release: None,
            new_sha: None,
            reason: None,
            signature_status: SignatureStatus::Unverified,
            signature_reason: Some("cosign not found".to_owned()),
            attestations: Default::default(),
            initiated_by: "t".to_owned(),
            deployment_ref: None,
            url: None,
            config: None,
            config_sha256: None,
            verified: Verified::default(),
            error: None,
            left_on_sha: None,
            strategy: None,
            analysis: None,
            content: None,
            rebuild_of: None,
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            duration_sec: 0.0,
            at: "2026-01-01T00:00:00Z".to_owned(),
        }
    }

    fn temp_ledger(name: &str) -> Ledger {
        let dir = std::env::temp_dir().join(format!("xtask-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Ledger {
            path: dir.join("staging.jsonl"),
        }
    }

    #[test]
    fn folds_status_transitions_and_survives_a_torn_line() {
        let ledger = temp_ledger("torn");
        ledger
            .append(&release("r1", 'a', Status::Running))
            .expect("append");
        ledger
            .append(&release("r1", 'a', Status::Complete))
            .expect("append");
        // A crash mid-write leaves half a line with no newline.
        let mut f = OpenOptions::new()
            .append(true)
            .open(ledger.path())
            .expect("open");
        f.write_all(b"{\"record\":\"deploy\",\"id\":\"r2\",\"sta")
            .expect("write");
        ledger
            .append(&release("r3", 'b', Status::Failed))
            .expect("append after torn line");
        // A line of bytes that are not even UTF-8.
        f.write_all(b"\xff\xfe garbage \x80\n").expect("write");
        ledger
            .append(&release("r4", 'c', Status::Complete))
            .expect("append after garbage");
        let read = ledger.read().expect("read");
        assert_eq!(read.skipped.len(), 2, "{:?}", read.skipped);
        let warning = ledger.skipped_warning(&read.skipped).expect("a warning");
        assert!(
            warning.contains("skipped 2 unreadable ledger lines")
                && warning.contains(&format!("{}:3:", ledger.path().display())),
            "{warning}"
        );
        let ids: Vec<_> = read
            .releases
            .iter()
            .map(|r| (r.id.as_str(), r.status))
            .collect();
        assert_eq!(
            ids,
            [
                ("r1", Status::Complete),
                ("r3", Status::Failed),
                ("r4", Status::Complete)
            ]
        );
        let lines = std::fs::read(ledger.path())
            .expect("bytes")
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        assert_eq!(lines, 6, "history is never truncated");
    }

    /// 1 MB of garbage used to print one warning per line on every command.
    #[test]
    fn a_ledger_full_of_garbage_is_one_warning_with_the_count_and_the_first_line() {
        let ledger = temp_ledger("garbage");
        ledger
            .append(&release("r1", 'a', Status::Complete))
            .expect("append");
        let mut f = OpenOptions::new()
            .append(true)
            .open(ledger.path())
            .expect("open");
        for i in 0..3785 {
            writeln!(f, "garbage line {i} \x00 {{not json").expect("write");
        }
        let read = ledger.read().expect("read");
        assert_eq!(read.releases.len(), 1);
        let warning = ledger.skipped_warning(&read.skipped).expect("warned");
        assert!(!warning.contains('\n'), "one line: {warning}");
        assert!(
            warning.contains("skipped 3785 unreadable ledger lines")
                && warning.contains(&format!("the first at {}:2:", ledger.path().display())),
            "{warning}"
        );
        assert!(ledger.skipped_warning(&[]).is_none());
    }

    /// A `kill -9` left a release `running`; the next release (holding the
    /// lock) records it `abandoned`, once, and the history says so.
    #[test]
    fn a_release_left_running_is_marked_abandoned_once() {
        let ledger = temp_ledger("abandoned");
        ledger
            .append(&release("r1", 'a', Status::Complete))
            .expect("append");
        ledger
            .append(&release("r2", 'b', Status::Running))
            .expect("append");
        let now = ledger
            .mark_abandoned(ledger.read().expect("read").releases)
            .expect("marked");
        assert_eq!(
            now.iter().map(|r| r.status).collect::<Vec<_>>(),
            [Status::Complete, Status::Abandoned]
        );
        let again = ledger
            .mark_abandoned(ledger.read().expect("read").releases)
            .expect("marked");
        assert_eq!(again[1].status, Status::Abandoned);
        let text = std::fs::read_to_string(ledger.path()).expect("ledger");
        assert_eq!(
            text.lines().count(),
            3,
            "one abandoned line, appended: {text}"
        );
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l.contains("\"status\":\"abandoned\""))
        );
    }

    #[test]
    fn current_and_previous_skip_failed_releases() {
        let rs = vec![
            release("1", 'a', Status::Complete),
            release("2", 'b', Status::Complete),
            release("3", 'c', Status::Failed),
        ];
        assert_eq!(current(&rs).map(|r| r.id.as_str()), Some("2"));
        let running = &rs[1].image_sha;
        assert_eq!(
            previous(&rs, Some(running)).map(|r| r.id.as_str()),
            Some("1")
        );
        assert_eq!(
            last_complete_of(&rs, &rs[0].image_sha).map(|r| r.id.as_str()),
            Some("1")
        );
        assert!(last_complete_of(&rs, &rs[2].image_sha).is_none());
    }
}
