//! The only thing a clean build reuses: crate archives (`.crate` files)
//! whose SHA-256 is the checksum the commit's `Cargo.lock` names.
//!
//! cargo trusts its cache: an archive already in `$CARGO_HOME/registry/cache`
//! is not checked again, and an unpacked `registry/src/…` is used as found.
//! A restored CI cache can therefore feed a build any source. So the build
//! gets a cargo home of its own: each archive the lock file names is read,
//! hashed, compared with the lock's checksum, and written there; the index
//! cache is copied (cargo itself compares its checksums with the lock's).
//! Nothing unpacked, nothing compiled, and no config or credentials file
//! is carried over. An archive that does not match is refused; one that is
//! missing is downloaded by cargo, which checks it on download.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};

use crate::build::sha256;

/// One registry package of a lock file: `name-version` → checksum (hex).
pub fn locked_checksums(lock: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package.lines().find_map(|l| {
                l.trim()
                    .strip_prefix(key)?
                    .trim_start()
                    .strip_prefix('=')?
                    .trim()
                    .strip_prefix('"')?
                    .strip_suffix('"')
                    .map(str::to_owned)
            })
        };
        if let (Some(name), Some(version), Some(checksum)) =
            (field("name"), field("version"), field("checksum"))
        {
            out.insert(format!("{name}-{version}"), checksum);
        }
    }
    out
}

/// What was carried over.
pub struct Reused {
    pub verified: usize,
    pub missing: usize,
}

/// Fill `dest` (the build's `CARGO_HOME`) from `user_home`: verified crate
/// archives of the packages in `lock`, and a copy of the index cache.
pub fn prepare(lock: &str, user_home: &Path, dest: &Path) -> anyhow::Result<Reused> {
    let wanted = locked_checksums(lock);
    let index = user_home.join("registry/index");
    if index.is_dir() {
        copy_tree(&index, &dest.join("registry/index"))?;
    }
    let mut found = BTreeSet::new();
    let cache = user_home.join("registry/cache");
    // One folder per registry (`index.crates.io-<hash>`); the name depends
    // on cargo's version, so every folder is looked in.
    for registry in read_dir(&cache)? {
        if !registry.is_dir() {
            continue;
        }
        let Some(registry_name) = registry.file_name() else {
            continue;
        };
        for archive in read_dir(&registry)? {
            let Some(stem) = archive
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".crate"))
            else {
                continue;
            };
            let Some(expected) = wanted.get(stem) else {
                continue;
            };
            let bytes = std::fs::read(&archive)
                .with_context(|| format!("reading {}", archive.display()))?;
            let actual = sha256::of_bytes(&bytes);
            if &actual != expected {
                bail!(
                    "{} does not match Cargo.lock (sha256 {actual}, the lock says {expected}): the crate cache was altered; delete that file (cargo downloads it again, checked) and build again",
                    archive.display()
                );
            }
            let to = dest.join("registry/cache").join(registry_name);
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
            // The bytes that were hashed are the bytes written: nothing can
            // change the file between the check and the build.
            std::fs::write(to.join(format!("{stem}.crate")), &bytes)
                .with_context(|| format!("writing into {}", to.display()))?;
            found.insert(stem.to_owned());
        }
    }
    Ok(Reused {
        verified: found.len(),
        missing: wanted.len() - found.len(),
    })
}

fn read_dir(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            Ok(paths)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in read_dir(from)? {
        let Some(name) = entry.file_name() else {
            continue;
        };
        let meta = std::fs::symlink_metadata(&entry)?;
        if meta.is_dir() {
            copy_tree(&entry, &to.join(name))?;
        } else if meta.is_file() {
            std::fs::copy(&entry, to.join(name))
                .with_context(|| format!("copying {}", entry.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "api"
version = "0.1.0"
dependencies = [
 "itoa",
]

[[package]]
name = "itoa"
version = "1.0.15"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"

[[package]]
name = "zerocopy"
version = "0.8.26"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "1039dd0d3c310cf05de012d8a39ff557cb0d23087fd44cad61df08fc31907a2f"
"#;

    #[test]
    fn only_registry_packages_with_a_checksum_are_listed() {
        let sums = locked_checksums(LOCK);
        assert_eq!(sums.len(), 2, "{sums:?}");
        assert_eq!(
            sums["itoa-1.0.15"],
            "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"
        );
        assert!(sums.contains_key("zerocopy-0.8.26"));
    }

    fn temp(label: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-unit-sources-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_matching_archive_is_copied_an_altered_one_refused() {
        let dir = temp("match");
        let (home, dest) = (dir.join("home"), dir.join("dest"));
        let registry = home.join("registry/cache/index.example-0123");
        std::fs::create_dir_all(&registry).expect("mkdir");
        std::fs::create_dir_all(home.join("registry/index/index.example-0123/.cache/3/a"))
            .expect("mkdir");
        std::fs::write(
            home.join("registry/index/index.example-0123/.cache/3/a/abc"),
            "entry",
        )
        .expect("write");
        let good = b"the real archive".as_slice();
        let lock = format!(
            "[[package]]\nname = \"good\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\nchecksum = \"{}\"\n",
            sha256::of_bytes(good)
        );
        std::fs::write(registry.join("good-1.0.0.crate"), good).expect("write");
        std::fs::write(registry.join("unlisted-2.0.0.crate"), "not in the lock").expect("write");
        let reused = prepare(&lock, &home, &dest).expect("prepare");
        assert_eq!((reused.verified, reused.missing), (1, 0));
        let copied = dest.join("registry/cache/index.example-0123");
        assert_eq!(
            std::fs::read(copied.join("good-1.0.0.crate")).expect("copied"),
            good
        );
        assert!(
            !copied.join("unlisted-2.0.0.crate").exists(),
            "only what the lock names"
        );
        assert!(
            dest.join("registry/index/index.example-0123/.cache/3/a/abc")
                .exists()
        );

        std::fs::write(registry.join("good-1.0.0.crate"), b"poisoned").expect("write");
        let err = prepare(&lock, &home, &dir.join("dest2"))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("good-1.0.0.crate") && err.contains("does not match Cargo.lock"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_archives_are_counted_for_cargo_to_download() {
        let dir = temp("missing");
        let reused = prepare(LOCK, &dir.join("empty-home"), &dir.join("dest")).expect("prepare");
        assert_eq!((reused.verified, reused.missing), (0, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
