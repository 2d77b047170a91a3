//! Bakes the build's identity into the binary: `API_GIT_SHA`, `API_SHORT_SHA` and
//! `API_BUILT_AT` (read by `src/version.rs` with `env!`).
//!
//! - SHA: `GIT_SHA` when set (must be 40 lowercase hex), else `git rev-parse HEAD`,
//!   else `unknown`.
//! - Time: `SOURCE_DATE_EPOCH` when set (reproducible builds use the commit time), else
//!   now; RFC 3339 UTC.
//!
//! Same commit and same environment give the same bytes.

#[path = "src/build_support.rs"]
mod build_support;

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/build_support.rs");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let sha = match env::var("GIT_SHA") {
        Ok(sha) => {
            assert!(
                build_support::is_full_sha(&sha),
                "GIT_SHA={sha:?} is not a full commit SHA: expected exactly 40 lowercase hex characters (git rev-parse HEAD)"
            );
            sha
        }
        Err(env::VarError::NotUnicode(raw)) => {
            panic!(
                "GIT_SHA={raw:?} is not a full commit SHA: expected exactly 40 lowercase hex characters"
            )
        }
        Err(env::VarError::NotPresent) => {
            watch_git_head(&manifest_dir);
            sha_from_git(&manifest_dir)
        }
    };
    let short = if sha == "unknown" {
        "unknown"
    } else {
        &sha[..12]
    };

    println!("cargo:rustc-env=API_GIT_SHA={sha}");
    println!("cargo:rustc-env=API_SHORT_SHA={short}");
    println!(
        "cargo:rustc-env=API_BUILT_AT={}",
        build_support::rfc3339_utc(build_epoch())
    );
}

/// `git rev-parse HEAD`, or `unknown` when there is no git, no repository or no commit.
fn sha_from_git(dir: &Path) -> String {
    match git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]) {
        Some(sha) if build_support::is_full_sha(&sha) => sha,
        Some(other) => {
            println!(
                "cargo:warning=git rev-parse HEAD gave {other:?}, not a 40-hex SHA; version reports unknown"
            );
            "unknown".to_owned()
        }
        None => "unknown".to_owned(),
    }
}

/// Reruns this script when HEAD moves, so a local build picks up a new commit: HEAD
/// itself (branch switch, detached checkout), the branch's ref file (commit), the refs
/// folder (first commit creates the ref) and packed-refs. Only existing paths are
/// listed: Cargo treats a missing one as always stale.
fn watch_git_head(dir: &Path) {
    let Some(git_dir) = git(dir, &["rev-parse", "--path-format=absolute", "--git-dir"]) else {
        return;
    };
    let common_dir = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .unwrap_or_else(|| git_dir.clone());
    let (git_dir, common_dir) = (PathBuf::from(git_dir), PathBuf::from(common_dir));
    let mut watched = vec![
        git_dir.join("HEAD"),
        common_dir.join("packed-refs"),
        common_dir.join("refs/heads"),
    ];
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        watched.push(common_dir.join(reference));
    }
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn build_epoch() -> i64 {
    match env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => match value.trim().parse::<i64>() {
            Ok(secs) if (0..=build_support::MAX_EPOCH_SECS).contains(&secs) => secs,
            _ => panic!(
                "SOURCE_DATE_EPOCH={value:?} is invalid: expected whole seconds since 1970-01-01 UTC, 0 to {}",
                build_support::MAX_EPOCH_SECS
            ),
        },
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            }),
    }
}
