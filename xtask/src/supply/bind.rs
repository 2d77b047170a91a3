//! The proof bound to the commit (issue 24): a signature and attestations
//! prove only that SOME build was signed. Before the target is touched, what
//! they and the image say must name THIS commit and THESE bytes:
//!
//! - the image's revision label is the SHA deployed (read from the image's
//!   own config, pulled by digest, before anything runs);
//! - the verified provenance names the SHA (`gitCommit`) and the binary the
//!   image's label names (`api` dependency's sha256);
//! - production: the commit is on main, asked of git where the checkout
//!   has it, else of the verified provenance's ref.
//!
//! What refuses: a label naming another commit, and (production) a commit
//! that git or the provenance says is not on main, refuse under any policy
//! (each is a positive lie, not a missing proof). Under a strict provenance
//! policy a missing label, a provenance naming another commit or binary, and
//! a production commit nobody can place on main refuse too; under soft
//! policy they are printed as warnings and the release goes on.

use std::path::Path;

use anyhow::bail;
use serde_json::Value;

use super::policy::{Checked, Level, Policy};
use crate::build::adopt::Found;
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;

/// What one verified provenance predicate says (crate::supply::provenance
/// writes it): the commit, the git ref built, the `/api` sha256.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    pub commit: Option<String>,
    pub git_ref: Option<String>,
    pub binary_sha256: Option<String>,
}

/// Read a SLSA v1 predicate: `resolvedDependencies[].digest.gitCommit`
/// (else `externalParameters.sha`), `externalParameters.ref`, and the
/// sha256 of the dependency named `api`.
pub fn claim(predicate: &Value) -> Claim {
    let deps = predicate
        .pointer("/buildDefinition/resolvedDependencies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let commit = deps
        .iter()
        .find_map(|d| text(d.pointer("/digest/gitCommit")))
        .or_else(|| text(predicate.pointer("/buildDefinition/externalParameters/sha")));
    let binary_sha256 = deps
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some("api"))
        .and_then(|d| text(d.pointer("/digest/sha256")));
    Claim {
        commit,
        git_ref: text(predicate.pointer("/buildDefinition/externalParameters/ref")),
        binary_sha256,
    }
}

/// Whether a commit is on main, and who said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnMain {
    Yes(String),
    No(String),
    /// Neither git nor a verified provenance can tell.
    Unknown(String),
}

/// Git first (the checkout has the commit and a main), else the verified
/// provenance's ref (`refs/heads/main`).
pub fn on_main(root: &Path, sha: &GitSha, claims: &[Claim]) -> anyhow::Result<OnMain> {
    let known = crate::support::cmd::Cmd::new("git")
        .arg("-C")
        .arg(root.display().to_string())
        .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .output()?
        .status
        .success();
    if known && let Ok(main) = crate::promote::git::main_ref(root) {
        return Ok(if crate::promote::git::is_on(root, sha, main)? {
            OnMain::Yes(format!("git: {sha} is on {main}"))
        } else {
            OnMain::No(format!("git: {sha} is not on {main} (a branch commit)"))
        });
    }
    let refs: Vec<&str> = claims.iter().filter_map(|c| c.git_ref.as_deref()).collect();
    if refs.is_empty() {
        return Ok(OnMain::Unknown(format!(
            "this checkout {} and no verified provenance names the ref built",
            if known {
                "has no main"
            } else {
                "does not have the commit"
            }
        )));
    }
    Ok(
        if refs
            .iter()
            .all(|r| *r == "refs/heads/main" || *r == "refs/remotes/origin/main")
        {
            OnMain::Yes("the verified provenance: built from refs/heads/main".to_owned())
        } else {
            OnMain::No(format!(
                "the verified provenance says it was built from {}, not main",
                refs.join(", ")
            ))
        },
    )
}

/// One thing checked: what was found, and whether it refuses the release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub refuses: bool,
}

/// Everything that ties the proof to `image.sha` and the image's bytes.
/// `found` is the image's own config; `on_main` only for production.
pub fn findings(
    image: &ImageRef,
    policy: Policy,
    checked: &Checked,
    found: &Found,
    on_main: Option<&OnMain>,
) -> Vec<Finding> {
    let strict = policy.provenance == Level::Strict;
    let sha = image.sha.as_str();
    let mut out = Vec::new();
    let mut say = |what: String, refuses: bool| out.push(Finding { what, refuses });
    match found.revision.as_deref() {
        Some(r) if r == sha => {}
        Some(other) => say(
            format!("its revision label says it was built from {other}, not {sha}"),
            true,
        ),
        None => say(
            "it has no revision label: nothing says which commit it is".into(),
            strict,
        ),
    }
    let claims: Vec<Claim> = checked.provenance_claims.iter().map(claim).collect();
    for c in &claims {
        match c.commit.as_deref() {
            Some(commit) if commit == sha => {}
            Some(other) => say(
                format!("its signed provenance names commit {other}, not {sha}"),
                strict,
            ),
            None => say("its signed provenance names no commit".into(), strict),
        }
        let label = found.binary_label.as_deref();
        match (c.binary_sha256.as_deref(), label) {
            (Some(p), Some(l)) if p == l => {}
            (Some(p), l) => say(
                format!(
                    "its signed provenance names the binary sha256 {p}, its label {}",
                    l.unwrap_or("(none)")
                ),
                strict,
            ),
            (None, _) => say("its signed provenance names no binary".into(), strict),
        }
    }
    match on_main {
        None | Some(OnMain::Yes(_)) => {}
        Some(OnMain::No(why)) => say(
            format!("production takes only commits of main, and {why}"),
            true,
        ),
        Some(OnMain::Unknown(why)) => say(
            format!("nothing can place the commit on main ({why})"),
            strict,
        ),
    }
    out
}

/// Print each finding; refuse when one refuses, naming all of them.
pub fn enforce(env: Environment, image: &ImageRef, findings: &[Finding]) -> anyhow::Result<()> {
    for f in findings {
        if f.refuses {
            eprintln!("proof: {}: refused", f.what);
        } else {
            eprintln!("warning: proof: {}; continuing (soft policy)", f.what);
        }
    }
    let refused: Vec<&str> = findings
        .iter()
        .filter(|f| f.refuses)
        .map(|f| f.what.as_str())
        .collect();
    if !refused.is_empty() {
        bail!(
            "{} is not proven to be {} for {env}: {}; refusing before the target is touched (build that commit with `cargo xtask ci-build` on main, or see environments.{env}.policy in deploy/release.json)",
            image.by_digest(),
            image.sha,
            refused.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::cosign::Signature;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn image() -> ImageRef {
        format!("localhost:5000/a/api:{SHA}@sha256:{}", "c".repeat(64))
            .parse()
            .expect("image")
    }

    fn predicate(commit: &str, binary: &str, git_ref: &str) -> Value {
        serde_json::json!({"buildDefinition": {
            "externalParameters": {"sha": commit, "ref": git_ref},
            "resolvedDependencies": [
                {"uri": "git+x", "digest": {"gitCommit": commit}},
                {"name": "api", "uri": "file:/api", "digest": {"sha256": binary}}]}})
    }

    fn found(revision: Option<&str>, binary: &str) -> Found {
        Found {
            by_digest: "x".into(),
            revision: revision.map(str::to_owned),
            binary_label: Some(binary.to_owned()),
            layers: Vec::new(),
            run: crate::build::adopt::RunConfig::default(),
        }
    }

    fn checked(claims: Vec<Value>) -> Checked {
        let ok = Signature {
            status: crate::verify::cosign::SignatureStatus::Verified,
            reason: None,
        };
        Checked {
            signature: ok.clone(),
            sbom: ok.clone(),
            provenance: ok,
            provenance_claims: claims,
            sbom_documents: Vec::new(),
        }
    }

    const STRICT: Policy = Policy {
        signature: Level::Strict,
        sbom: Level::Strict,
        provenance: Level::Strict,
    };

    #[test]
    fn reads_what_ci_builds_provenance_says() {
        let c = claim(&predicate(SHA, "11", "refs/heads/main"));
        assert_eq!(c.commit.as_deref(), Some(SHA));
        assert_eq!(c.binary_sha256.as_deref(), Some("11"));
        assert_eq!(c.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(claim(&serde_json::json!({"note": 1})), Claim::default());
    }

    #[test]
    fn strict_binds_the_provenance_to_the_sha_and_the_label() {
        let good = checked(vec![predicate(SHA, "11", "refs/heads/main")]);
        assert!(findings(&image(), STRICT, &good, &found(Some(SHA), "11"), None).is_empty());
        // Another commit's correctly signed image under this SHA's tag.
        let moved = checked(vec![predicate(OTHER, "11", "refs/heads/main")]);
        let f = findings(&image(), STRICT, &moved, &found(Some(SHA), "11"), None);
        assert!(
            f.iter().any(|f| f.refuses && f.what.contains(OTHER)),
            "{f:?}"
        );
        let err = enforce(Environment::Staging, &image(), &f)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("refusing before the target is touched"),
            "{err}"
        );
        // Soft: the same finding is a warning.
        let soft = findings(
            &image(),
            Policy::default(),
            &moved,
            &found(Some(SHA), "11"),
            None,
        );
        assert!(soft.iter().all(|f| !f.refuses) && !soft.is_empty());
        // The binary: provenance and label disagree.
        let f = findings(&image(), STRICT, &good, &found(Some(SHA), "22"), None);
        assert!(
            f.iter().any(|f| f.refuses && f.what.contains("22")),
            "{f:?}"
        );
    }

    #[test]
    fn a_label_naming_another_commit_refuses_under_any_policy() {
        let f = findings(
            &image(),
            Policy::default(),
            &checked(Vec::new()),
            &found(Some(OTHER), "11"),
            None,
        );
        assert!(
            f.iter().any(|f| f.refuses && f.what.contains(OTHER)),
            "{f:?}"
        );
        let none = findings(
            &image(),
            Policy::default(),
            &checked(Vec::new()),
            &found(None, "1"),
            None,
        );
        assert!(none.iter().all(|f| !f.refuses), "soft: a warning");
        let none = findings(
            &image(),
            STRICT,
            &checked(Vec::new()),
            &found(None, "1"),
            None,
        );
        assert!(none.iter().any(|f| f.refuses), "strict: refused");
    }

    #[test]
    fn production_needs_main_from_git_or_the_provenance() {
        let c = checked(Vec::new());
        let f = found(Some(SHA), "11");
        let no = OnMain::No("git: not on main".into());
        let unknown = OnMain::Unknown("?".into());
        assert!(findings(&image(), Policy::default(), &c, &f, Some(&no))[0].refuses);
        assert!(!findings(&image(), Policy::default(), &c, &f, Some(&unknown))[0].refuses);
        assert!(findings(&image(), STRICT, &c, &f, Some(&unknown))[0].refuses);
        let dir = std::env::temp_dir().join(format!("h24-bind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let sha: GitSha = SHA.parse().expect("sha");
        let branch = claim(&predicate(SHA, "1", "refs/heads/feature/x"));
        let main = claim(&predicate(SHA, "1", "refs/heads/main"));
        // Not a git checkout: git cannot tell, the provenance can.
        assert!(matches!(
            on_main(&dir, &sha, &[branch]).expect("ok"),
            OnMain::No(_)
        ));
        assert!(matches!(
            on_main(&dir, &sha, &[main]).expect("ok"),
            OnMain::Yes(_)
        ));
        assert!(matches!(
            on_main(&dir, &sha, &[]).expect("ok"),
            OnMain::Unknown(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
