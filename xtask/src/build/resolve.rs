//! What the compile compiled: the crates of the lock's resolve for the
//! target, asked of the same sealed cargo in the same checkout right after
//! the build (`cargo tree --locked --offline`), each marked as linked into
//! `/api` or build-time only. This is the SBOM's content (crate::supply::sbom).
//!
//! - every crate compiled: `cargo tree -e normal,build` (normal and build
//!   edges, no dev): the crates linked in, the proc-macros, the build
//!   scripts' dependencies, and theirs;
//! - linked into `/api`: `cargo tree -e normal,no-proc-macro` (normal edges
//!   that do not go through a proc-macro);
//! - build-time only: the first set less the second (`serde_derive`,
//!   `syn`, `proc-macro2`, ...): they ran during the compile, they shaped the
//!   binary, and none of their code is in it.
//!
//! A crate the lock names but the target never compiles (a dependency of a
//! disabled feature or of another platform) is in neither.

use std::collections::BTreeSet;

use anyhow::{Context, bail};

use crate::build::compile::{self, RUST_TARGET, Toolchain};
use crate::build::sources;
use crate::build::worktree::Layout;
use crate::support::cmd::Cmd;

/// One compiled crate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// The lock's sha256 of the archive; `None` for the workspace's own.
    pub checksum: Option<String>,
    /// Ran at build time only (a proc-macro, a build-script dependency, or
    /// theirs): not linked into `/api`.
    pub build_time: bool,
}

/// `cargo tree -p api --target <t> -e <edges> --prefix none --format {p}`.
pub fn tree_cmd(layout: &Layout, toolchain: &Toolchain, config: &[String], edges: &str) -> Cmd {
    compile::cargo(layout, toolchain, config, "tree")
        .env("CARGO_TARGET_DIR", layout.target().display().to_string())
        .args(["--locked", "--offline", "--package", "api"])
        .args(["--target", RUST_TARGET, "--edges", edges])
        .args(["--prefix", "none", "--format", "{p}"])
}

/// `name version` of each line (`serde_derive v1.0.2 (proc-macro)`,
/// `api v0.1.0 (/path)`, `syn v2.0.1 (*)`), deduplicated.
fn parse_tree(text: &str) -> anyhow::Result<BTreeSet<(String, String)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|v| v.strip_prefix('v'))) {
                (Some(name), Some(version)) => Ok((name.to_owned(), version.to_owned())),
                _ => bail!("unreadable `cargo tree` line `{line}`"),
            }
        })
        .collect()
}

/// Every crate compiled for the api, marked, with the lock's checksums.
pub fn compiled(
    layout: &Layout,
    toolchain: &Toolchain,
    config: &[String],
    lock: &str,
) -> anyhow::Result<Vec<Crate>> {
    let all = parse_tree(&tree_cmd(layout, toolchain, config, "normal,build").read()?)?;
    let linked = parse_tree(&tree_cmd(layout, toolchain, config, "normal,no-proc-macro").read()?)?;
    Ok(join(&all, &linked, lock))
}

fn join(
    all: &BTreeSet<(String, String)>,
    linked: &BTreeSet<(String, String)>,
    lock: &str,
) -> Vec<Crate> {
    let sums = sources::locked_checksums(lock);
    all.iter()
        .map(|(name, version)| Crate {
            checksum: sums.get(&format!("{name}-{version}")).cloned(),
            build_time: !linked.contains(&(name.clone(), version.clone())),
            name: name.clone(),
            version: version.clone(),
        })
        .collect()
}

/// The crate list must hold the api itself, linked: else cargo tree said
/// something unexpected.
pub fn check(crates: &[Crate]) -> anyhow::Result<()> {
    crates
        .iter()
        .find(|c| c.name == "api" && !c.build_time)
        .map(|_| ())
        .context(
            "`cargo tree` of the checkout did not list the api package: the SBOM would be empty",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_time_crates_are_those_not_linked() {
        let all = parse_tree(
            "api v0.1.0 (/build/src/api)\nserde v1.0.1\nserde_derive v1.0.1 (proc-macro)\nsyn v2.0.1\nsyn v2.0.1 (*)\nserde v1.0.1 (*)\n",
        )
        .expect("parses");
        let linked = parse_tree("api v0.1.0 (/build/src/api)\nserde v1.0.1\n").expect("parses");
        let lock = "[[package]]\nname = \"serde\"\nversion = \"1.0.1\"\nsource = \"registry+x\"\nchecksum = \"abc\"\n";
        let crates = join(&all, &linked, lock);
        let names: Vec<(&str, bool)> = crates
            .iter()
            .map(|c| (c.name.as_str(), c.build_time))
            .collect();
        assert_eq!(
            names,
            [
                ("api", false),
                ("serde", false),
                ("serde_derive", true),
                ("syn", true)
            ]
        );
        assert_eq!(crates[1].checksum.as_deref(), Some("abc"));
        assert_eq!(crates[0].checksum, None);
        check(&crates).expect("the api is there");
        assert!(check(&crates[1..]).is_err());
        assert!(parse_tree("garbage\n").is_err());
    }
}
