//! The digests the ledgers recorded for a SHA (issue 24): a SHA that any
//! environment already released is the bytes it was released at, not
//! whatever its tag names today.
//!
//! - `deploy <sha>` of a known SHA goes only to a recorded digest unless
//!   the operator names the new one (`--expect-digest`).
//! - A SHA seen at two digests is flagged; `rollback` takes the digest
//!   whose releases passed the most checks, or asks when two tie.
//! - `rollback` to an environment that never ran the SHA takes the digest
//!   another environment's ledger recorded.
//! - A recorded digest the registry no longer holds can be stood for by a
//!   rebuild (item 7): the tag's image now is accepted in its place when
//!   its layers (diff_ids: the bytes, uncompressed) and run config are the
//!   ones the release recorded; the new release records the link
//!   (`rebuild_of`), and from then on the two digests count as one.

use anyhow::bail;

use crate::build::adopt::{self, Content};
use crate::ledger::{Ledger, Release, Status};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::{ImageRef, full_tag};
use crate::model::sha::GitSha;
use crate::support::project::Project;
use crate::verify::cosign::SignatureStatus;

/// One digest a SHA was released at (completed releases only).
#[derive(Clone, Debug)]
pub struct Known {
    pub digest: Digest,
    /// The newest completed release at this digest, and its environment.
    pub newest: Release,
    /// How many completed releases ran it, in every environment.
    pub releases: usize,
    /// The most checks (signature, SBOM, provenance) one of them verified.
    pub checks: usize,
    /// The digest this one is a recorded rebuild of (its releases counted here).
    pub rebuild_of: Option<Digest>,
}

impl Known {
    pub fn source(&self) -> String {
        format!("{} release {}", self.newest.environment, self.newest.id)
    }
}

fn checks_verified(r: &Release) -> usize {
    [
        Some(r.signature_status),
        r.attestations.sbom_status,
        r.attestations.provenance_status,
    ]
    .into_iter()
    .filter(|s| *s == Some(SignatureStatus::Verified))
    .count()
}

/// The digests completed releases of `sha` ran at, in `releases` (any
/// environments), newest release first.
pub fn digests_of(releases: &[Release], sha: &GitSha) -> Vec<Known> {
    let mut known: Vec<Known> = Vec::new();
    let mut done: Vec<&Release> = releases
        .iter()
        .filter(|r| r.status == Status::Complete && &r.image_sha == sha)
        .collect();
    done.sort_by(|a, b| b.at.cmp(&a.at));
    for r in done {
        match known.iter_mut().find(|k| k.digest == r.image_digest) {
            Some(k) => {
                k.releases += 1;
                k.checks = k.checks.max(checks_verified(r));
            }
            None => known.push(Known {
                digest: r.image_digest.clone(),
                newest: r.clone(),
                releases: 1,
                checks: checks_verified(r),
                rebuild_of: None,
            }),
        }
    }
    // A recorded rebuild stands for the digest it rebuilt (gone from the
    // registry): one entry, the rebuild's, with both digests' releases.
    let links: Vec<(Digest, Digest)> = releases
        .iter()
        .filter(|r| r.status == Status::Complete && &r.image_sha == sha)
        .filter_map(|r| Some((r.image_digest.clone(), r.rebuild_of.clone()?)))
        .collect();
    for (rebuilt, original) in links {
        let Some(gone) = known.iter().position(|k| k.digest == original) else {
            continue;
        };
        let gone = known.remove(gone);
        if let Some(k) = known.iter_mut().find(|k| k.digest == rebuilt) {
            k.releases += gone.releases;
            k.checks = k.checks.max(gone.checks);
            k.rebuild_of = Some(original);
        }
    }
    known
}

/// The layers and run config a release at `digest` recorded, in any ledger.
pub fn content_of(releases: &[Release], digest: &Digest) -> Option<Content> {
    releases
        .iter()
        .rev()
        .filter(|r| &r.image_digest == digest)
        .find_map(|r| r.content.clone())
}

/// `image` (what the tag names now) in place of `recorded`, a digest
/// `source` recorded and the registry no longer holds: accepted only as a
/// rebuild of it, the same layers and run config and the same commit's
/// label. Refused naming each difference, or what is missing to tell.
pub fn check_rebuild(
    image: &ImageRef,
    recorded: &Digest,
    source: &str,
    releases: &[Release],
) -> anyhow::Result<()> {
    let tag = full_tag(&image.repository, &image.sha);
    let Some(was) = content_of(releases, recorded) else {
        bail!(
            "{tag} now names {}, but {source} recorded {recorded}, which the registry no longer holds, and no ledger line records that release's layers (a line older than that record): compare the two with `cargo xtask verify-build {} --repository {}`; if they match, name the new bytes with --expect-digest {}",
            image.digest,
            image.sha,
            image.repository,
            image.digest
        );
    };
    let found = adopt::examine(&image.repository, &image.digest)?;
    let mut differences = was.differences(&found.content());
    if found.revision.as_deref() != Some(image.sha.as_str()) {
        differences.push(format!(
            "revision label {} (not {})",
            found.revision.as_deref().unwrap_or("(none)"),
            image.sha
        ));
    }
    if !differences.is_empty() {
        bail!(
            "{tag} now names {}, which is not a rebuild of {recorded} ({source}, gone from the registry): {}; refusing it. Rebuild the commit with `cargo xtask ci-build` at {}, or investigate who pushed it",
            image.digest,
            differences.join("; "),
            image.sha
        );
    }
    eprintln!(
        "{tag} now names {}, a rebuild of {recorded} ({source}, gone from the registry): the same layers ({}) and run config; releasing it in its place (recorded as rebuild_of)",
        image.digest,
        was.layers
            .iter()
            .map(Digest::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Every environment's ledger, read (unreadable lines reported).
pub fn all_ledgers(project: &Project) -> anyhow::Result<Vec<Release>> {
    let mut all = Vec::new();
    for env in [Environment::Staging, Environment::Production] {
        all.extend(Ledger::open(project, env).read_reporting()?);
    }
    Ok(all)
}

/// Print the flag when a SHA was released at more than one digest.
pub fn flag_if_split(sha: &GitSha, known: &[Known]) {
    for k in known {
        if let Some(original) = &k.rebuild_of {
            eprintln!(
                "note: {sha} at {} is a recorded rebuild of {original} (same layers and run config; {})",
                k.digest,
                k.source()
            );
        }
    }
    if known.len() > 1 {
        let list: Vec<String> = known
            .iter()
            .map(|k| {
                format!(
                    "{} ({} release(s), newest {}, {} of 3 checks verified)",
                    k.digest,
                    k.releases,
                    k.source(),
                    k.checks
                )
            })
            .collect();
        eprintln!(
            "warning: {sha} was released at {} different digests (not rebuilds of one another): {}",
            known.len(),
            list.join("; ")
        );
    }
}

/// The digest a rollback returns to: the only one, else the one whose
/// releases passed the most checks; a tie is refused, naming both.
pub fn strictest<'a>(sha: &GitSha, known: &'a [Known]) -> anyhow::Result<Option<&'a Known>> {
    let Some(best) = known.iter().max_by_key(|k| k.checks) else {
        return Ok(None);
    };
    let tied: Vec<&Known> = known.iter().filter(|k| k.checks == best.checks).collect();
    if tied.len() > 1 {
        let list: Vec<String> = tied.iter().map(|k| k.digest.to_string()).collect();
        bail!(
            "{sha} was released at {} digests that passed the same checks ({} of 3): {}; say which bytes to return to with --expect-digest <digest>",
            tied.len(),
            best.checks,
            list.join(" and ")
        );
    }
    Ok(Some(best))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{RecordKind, Verified};
    use crate::targets::TargetKind;
    use crate::verify::cosign::Attestations;

    fn release(id: &str, digest: char, signed: bool, status: Status) -> Release {
        let s = if signed {
            SignatureStatus::Verified
        } else {
            SignatureStatus::Unverified
        };
        Release {
            record: RecordKind::Deploy,
            id: id.to_owned(),
            status,
            environment: Environment::Production,
            target: TargetKind::Docker,
            image_sha: "a".repeat(40).parse().expect("sha"),
            image_digest: format!("sha256:{}", digest.to_string().repeat(64))
                .parse()
                .expect("digest"),
            repository: "localhost:5000/a/api".parse().expect("repo"),
            image_ref: "x".into(),
            previous_sha: None,
            previous_release: None,
            new_sha: None,
            reason: None,
            signature_status: s,
            signature_reason: None,
            attestations: Attestations {
                sbom_status: Some(s),
                sbom_reason: None,
                provenance_status: Some(s),
                provenance_reason: None,
            },
            initiated_by: "t".into(),
            deployment_ref: None,
            url: None,
            config: None,
            config_sha256: None,
            strategy: None,
            analysis: None,
            content: None,
            rebuild_of: None,
            verified: Verified::default(),
            error: None,
            left_on_sha: None,
            started_at: id.into(),
            duration_sec: 0.0,
            at: id.into(),
        }
    }

    #[test]
    fn one_soft_deploy_of_other_bytes_does_not_win_the_rollback() {
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        // Four signed releases at the genuine digest, then one unsigned at another.
        let mut ledger: Vec<Release> = (1..=4)
            .map(|i| release(&format!("2026-01-0{i}"), 'c', true, Status::Complete))
            .collect();
        ledger.push(release("2026-01-09", 'e', false, Status::Complete));
        ledger.push(release("2026-01-10", 'f', true, Status::Refused));
        let known = digests_of(&ledger, &sha);
        assert_eq!(known.len(), 2, "refused lines are not releases");
        assert_eq!(known[0].digest.hex(), "e".repeat(64), "newest first");
        let best = strictest(&sha, &known).expect("one").expect("some");
        assert_eq!(
            (best.digest.hex(), best.releases),
            ("c".repeat(64).as_str(), 4)
        );
        // Two digests that passed the same checks: asked, not guessed.
        ledger.push(release("2026-01-11", 'd', true, Status::Complete));
        let err = strictest(&sha, &digests_of(&ledger, &sha))
            .expect_err("tie")
            .to_string();
        assert!(
            err.contains("--expect-digest") && err.contains(&"d".repeat(64)),
            "{err}"
        );
        assert!(strictest(&sha, &[]).expect("none").is_none());
    }

    #[test]
    fn a_recorded_rebuild_counts_as_the_digest_it_stands_for() {
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let original = release("2026-01-01", 'c', true, Status::Complete);
        let mut rebuilt = release("2026-01-05", 'e', true, Status::Complete);
        rebuilt.rebuild_of = Some(original.image_digest.clone());
        let known = digests_of(&[original.clone(), rebuilt], &sha);
        assert_eq!(known.len(), 1, "one release of the SHA, not a split");
        assert_eq!(known[0].digest.hex(), "e".repeat(64), "the rebuild stands");
        assert_eq!(known[0].releases, 2);
        assert_eq!(known[0].rebuild_of.as_ref(), Some(&original.image_digest));
        assert!(strictest(&sha, &known).is_ok(), "no tie to ask about");
    }

    #[test]
    fn content_differences_name_layers_and_run_config_against_the_record() {
        use crate::build::adopt::RunConfig;
        let layer = |c: char| -> Digest {
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .expect("digest")
        };
        let recorded = Content {
            layers: vec![layer('1')],
            run: RunConfig {
                user: "65532:65532".into(),
                ..RunConfig::default()
            },
        };
        assert!(recorded.differences(&recorded.clone()).is_empty());
        let forged = Content {
            layers: vec![layer('1'), layer('2')],
            run: RunConfig {
                user: "0:0".into(),
                ..RunConfig::default()
            },
        };
        let said = recorded.differences(&forged).join("; ");
        assert!(said.contains("recorded: [sha256:111"), "{said}");
        assert!(
            said.contains("user \"0:0\" (recorded: \"65532:65532\")"),
            "{said}"
        );
    }
}
