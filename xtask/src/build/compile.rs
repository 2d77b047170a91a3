//! The compile of a clean build: `rustup run <the commit's toolchain> cargo
//! build --release --locked` in the detached checkout, from an empty
//! environment, into an empty target dir, with paths remapped so the binary
//! does not depend on where it was built.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::build::worktree::Layout;
use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;

pub const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// What every build path is remapped to: `<scratch>/src` (the checkout)
/// becomes `/build/src`, `<scratch>/cargo` (`CARGO_HOME`) `/build/cargo`,
/// `<scratch>/target` `/build/target`.
pub const REMAPPED: &str = "/build";

/// The toolchain channel of the commit's `rust-toolchain.toml` (or legacy
/// `rust-toolchain`): the compiler is part of what a SHA means.
pub fn channel(toml: Option<&str>, legacy: Option<&str>) -> anyhow::Result<String> {
    let channel = match (toml, legacy) {
        (Some(toml), _) => toml
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("channel")?
                    .trim_start()
                    .strip_prefix('=')?
                    .trim()
                    .strip_prefix('"')?
                    .strip_suffix('"')
                    .map(str::to_owned)
            })
            .context("rust-toolchain.toml has no `channel = \"…\"` line: pin the toolchain")?,
        (None, Some(legacy)) => legacy.trim().to_owned(),
        (None, None) => bail!(
            "the commit has no rust-toolchain.toml: a reproducible build needs the toolchain pinned in the commit"
        ),
    };
    if channel.is_empty()
        || !channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        bail!("the commit's toolchain channel `{channel}` is not a toolchain name");
    }
    Ok(channel)
}

/// The user's cargo home: where verified crate archives are taken from.
pub fn user_cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

fn rustup_home() -> Option<PathBuf> {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
}

/// The variables a clean compile starts from, and nothing else: no
/// RUSTFLAGS, RUSTC_WRAPPER, CARGO_PROFILE_* or CARGO_TARGET_DIR of the
/// caller, no token or key of a CI step.
fn clean_env(cmd: Cmd, layout: &Layout) -> Cmd {
    let mut cmd = cmd
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", layout.home().display().to_string());
    if let Some(home) = rustup_home() {
        cmd = cmd.env("RUSTUP_HOME", home.display().to_string());
    }
    // Whether rustup may install the pinned toolchain, and from where.
    for key in [
        "RUSTUP_AUTO_INSTALL",
        "RUSTUP_DIST_SERVER",
        "RUSTUP_UPDATE_ROOT",
    ] {
        if let Ok(value) = std::env::var(key) {
            cmd = cmd.env(key, value);
        }
    }
    cmd
}

/// `rustup run <channel> cargo build …` in the checkout. Static glibc
/// (static-pie) for the FROM scratch image; RUSTFLAGS reach only the target
/// triple's artifacts, so build scripts and proc macros stay dynamic.
pub fn command(layout: &Layout, sha: &GitSha, commit_time: i64, channel: &str) -> Cmd {
    let rustflags = format!(
        "-C target-feature=+crt-static --remap-path-prefix={}={REMAPPED}",
        layout.base.display()
    );
    clean_env(Cmd::new("rustup"), layout)
        .env("CARGO_HOME", layout.cargo_home().display().to_string())
        .env("CARGO_TARGET_DIR", layout.target().display().to_string())
        .env("GIT_SHA", sha.as_str())
        .env("SOURCE_DATE_EPOCH", commit_time.to_string())
        .env("RUSTFLAGS", rustflags)
        // `cargo auditable build`: the binary carries its crate list, which
        // syft reads into the SBOM (crate::supply::sbom).
        .args(["run", channel, "cargo", "auditable", "build"])
        .args(["--release", "--locked", "--package", "api"])
        .args(["--target", RUST_TARGET])
        .dir(layout.src())
}

/// `rustc --version` of the pinned toolchain, for the record.
pub fn version_command(layout: &Layout, channel: &str) -> Cmd {
    clean_env(Cmd::new("rustup"), layout)
        .args(["run", channel, "rustc", "--version"])
        .dir(layout.src())
}

pub fn binary(layout: &Layout) -> PathBuf {
    layout
        .target()
        .join(RUST_TARGET)
        .join("release")
        .join("api")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_comes_from_the_commits_toolchain_file() {
        let toml = "[toolchain]\nchannel = \"1.95.0\"\ncomponents = [\"rustfmt\"]\n";
        assert_eq!(channel(Some(toml), None).expect("ok"), "1.95.0");
        assert_eq!(channel(None, Some("stable\n")).expect("ok"), "stable");
        let none = channel(None, None).expect_err("required").to_string();
        assert!(none.contains("rust-toolchain.toml"), "{none}");
        assert!(channel(Some("[toolchain]\n"), None).is_err());
        assert!(channel(Some("channel = \"1.95; rm -rf /\"\n"), None).is_err());
    }

    #[test]
    fn the_compile_starts_from_nothing_and_remaps_the_scratch_dir() {
        let layout = Layout {
            base: PathBuf::from("/tmp/xtask-build-abc"),
        };
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let cmd = command(&layout, &sha, 1_700_000_000, "1.95.0");
        let shown = cmd.to_string();
        assert!(shown.starts_with("env -i PATH="), "{shown}");
        for part in [
            "HOME=/tmp/xtask-build-abc/home",
            "CARGO_HOME=/tmp/xtask-build-abc/cargo",
            "CARGO_TARGET_DIR=/tmp/xtask-build-abc/target",
            "SOURCE_DATE_EPOCH=1700000000",
            "--remap-path-prefix=/tmp/xtask-build-abc=/build'",
            "rustup run 1.95.0 cargo auditable build --release --locked --package api --target x86_64-unknown-linux-gnu",
        ] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
        assert!(shown.contains(&format!("GIT_SHA={sha}")), "{shown}");
    }
}
