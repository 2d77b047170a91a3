//! The compile of a clean build: the commit's pinned toolchain's `cargo
//! build --release --locked`, by absolute path, on the commit's files
//! (crate::build::checkout), from an empty environment with a minimal PATH,
//! run from `/` so cargo reads no config outside the build's own tree, into
//! an empty target dir, with paths remapped so the binary does not depend on
//! where it was built. docs/decisions.md says what it is sealed against and
//! what it still trusts.

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

/// The linker, by absolute path: a `cc` earlier on the caller's PATH is
/// never asked.
pub const LINKER: &str = "/usr/bin/cc";

/// The system dirs on the compile's PATH, after the toolchain's own `bin`:
/// what the linker driver itself runs (`as`, `ld`) is found there.
pub const SYSTEM_PATH: &str = "/usr/bin:/bin";

/// Where every cargo of a clean build runs: `/`, so that cargo's config
/// discovery (the cwd and all its parents) reads only `/.cargo` (root's)
/// and the build's own empty `CARGO_HOME`, never a `.cargo/config.toml` in
/// a parent of the scratch dir (`$TMPDIR/.cargo`, writable by anyone on a
/// shared `/tmp`). The commit's own `.cargo/config.toml` is passed with
/// `--config`, as running from the workspace root would read it.
pub const CWD: &str = "/";

/// The commit's pinned toolchain, by absolute path under `RUSTUP_HOME`:
/// neither `rustup` nor a `cargo` found on PATH takes part.
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub channel: String,
    /// `<RUSTUP_HOME>/toolchains/<channel>-x86_64-unknown-linux-gnu/bin`.
    pub bin: PathBuf,
}

impl Toolchain {
    pub fn at(channel: &str) -> Toolchain {
        let home = rustup_home().unwrap_or_else(|| PathBuf::from("/nonexistent-rustup-home"));
        Toolchain {
            channel: channel.to_owned(),
            bin: home
                .join("toolchains")
                .join(format!("{channel}-{RUST_TARGET}"))
                .join("bin"),
        }
    }

    pub fn cargo(&self) -> PathBuf {
        self.bin.join("cargo")
    }

    pub fn rustc(&self) -> PathBuf {
        self.bin.join("rustc")
    }

    /// The compile's whole PATH.
    pub fn path_var(&self) -> String {
        format!("{}:{SYSTEM_PATH}", self.bin.display())
    }

    /// Installed, and a linker where it is expected: else the fix.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.cargo().is_file() || !self.rustc().is_file() {
            bail!(
                "the commit pins toolchain {} (rust-toolchain.toml), which is not installed at {}: `rustup toolchain install {}`",
                self.channel,
                self.bin.display(),
                self.channel
            );
        }
        if !std::path::Path::new(LINKER).is_file() {
            bail!(
                "no C linker at {LINKER}: install one (Debian: `apt-get install gcc`); the clean build never takes `cc` from PATH"
            );
        }
        Ok(())
    }
}

/// The variables a clean compile starts from, and nothing else: no
/// RUSTFLAGS, RUSTC_WRAPPER, CARGO_PROFILE_* or CARGO_TARGET_DIR of the
/// caller, no token or key of a CI step; the toolchain and the linker by
/// absolute path; run from [`CWD`].
fn sealed(cmd: Cmd, layout: &Layout, toolchain: &Toolchain) -> Cmd {
    cmd.env_clear()
        .env("PATH", toolchain.path_var())
        .env("HOME", layout.home().display().to_string())
        .env("CARGO_HOME", layout.cargo_home().display().to_string())
        .env("RUSTC", toolchain.rustc().display().to_string())
        .env(LINKER_VAR, LINKER)
        .dir(CWD)
}

/// cargo's setting of the linker for the target (and, the same triple, for
/// build scripts and proc-macros).
const LINKER_VAR: &str = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER";

/// `<cargo> <subcommand> [--config <the commit's .cargo/config.toml>]
/// --manifest-path <checkout>/Cargo.toml`, sealed.
pub fn cargo(layout: &Layout, toolchain: &Toolchain, config: &[String], sub: &str) -> Cmd {
    let mut cmd = sealed(
        Cmd::new(toolchain.cargo().display().to_string()),
        layout,
        toolchain,
    )
    .arg(sub);
    for file in config {
        cmd = cmd
            .arg("--config")
            .arg(layout.src().join(file).display().to_string());
    }
    cmd.arg("--manifest-path")
        .arg(layout.src().join("Cargo.toml").display().to_string())
}

/// The commit's own cargo config files (at its root), as cargo run from
/// the workspace root would read them.
pub const CONFIG_FILES: &[&str] = &[".cargo/config.toml", ".cargo/config"];

/// `cargo build --release --locked` of the api in the checkout. Static
/// glibc (static-pie) for the FROM scratch image; RUSTFLAGS reach only the
/// target triple's artifacts, so build scripts and proc macros stay dynamic.
pub fn command(
    layout: &Layout,
    toolchain: &Toolchain,
    config: &[String],
    sha: &GitSha,
    commit_time: i64,
) -> Cmd {
    let rustflags = format!(
        "-C target-feature=+crt-static --remap-path-prefix={}={REMAPPED}",
        layout.base.display()
    );
    cargo(layout, toolchain, config, "build")
        .env("CARGO_TARGET_DIR", layout.target().display().to_string())
        .env("GIT_SHA", sha.as_str())
        .env("SOURCE_DATE_EPOCH", commit_time.to_string())
        .env("RUSTFLAGS", rustflags)
        .args(["--release", "--locked", "--package", "api"])
        .args(["--target", RUST_TARGET])
}

/// `rustc --version` of the pinned toolchain, for the record.
pub fn version_command(layout: &Layout, toolchain: &Toolchain) -> Cmd {
    sealed(
        Cmd::new(toolchain.rustc().display().to_string()),
        layout,
        toolchain,
    )
    .arg("--version")
}

/// What the compile was sealed with, for the provenance
/// (`internalParameters.seal`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Seal {
    /// How the commit was written out (crate::build::checkout).
    pub checkout: String,
    /// Where cargo ran (its config discovery starts there).
    pub cwd: String,
    pub cargo: String,
    pub rustc: String,
    pub linker: String,
    /// The compile's whole PATH.
    pub path: String,
    /// Cargo config files read: the commit's own, remapped, and the empty
    /// `CARGO_HOME`'s (none).
    pub cargo_config: Vec<String>,
    /// The only variables the compile saw (values of the paths above).
    pub env: Vec<String>,
}

impl Seal {
    pub fn of(compile: &Cmd, toolchain: &Toolchain, config: &[String]) -> Seal {
        Seal {
            checkout: super::checkout::METHOD.to_owned(),
            cwd: CWD.to_owned(),
            cargo: toolchain.cargo().display().to_string(),
            rustc: toolchain.rustc().display().to_string(),
            linker: LINKER.to_owned(),
            path: toolchain.path_var(),
            cargo_config: config
                .iter()
                .map(|f| format!("{REMAPPED}/src/{f}"))
                .collect(),
            env: compile.env_names(),
        }
    }
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
    fn the_compile_is_sealed_from_the_callers_path_cwd_and_config() {
        let layout = Layout {
            base: PathBuf::from("/tmp/xtask-build-abc"),
        };
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let toolchain = Toolchain {
            channel: "1.95.0".into(),
            bin: PathBuf::from("/r/toolchains/1.95.0-x86_64-unknown-linux-gnu/bin"),
        };
        let config = vec![".cargo/config.toml".to_owned()];
        let cmd = command(&layout, &toolchain, &config, &sha, 1_700_000_000);
        let shown = cmd.to_string();
        assert!(
            shown.starts_with(
                "env -i PATH=/r/toolchains/1.95.0-x86_64-unknown-linux-gnu/bin:/usr/bin:/bin "
            ),
            "{shown}"
        );
        for part in [
            "HOME=/tmp/xtask-build-abc/home",
            "CARGO_HOME=/tmp/xtask-build-abc/cargo",
            "RUSTC=/r/toolchains/1.95.0-x86_64-unknown-linux-gnu/bin/rustc",
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=/usr/bin/cc",
            "CARGO_TARGET_DIR=/tmp/xtask-build-abc/target",
            "SOURCE_DATE_EPOCH=1700000000",
            "--remap-path-prefix=/tmp/xtask-build-abc=/build'",
            "/r/toolchains/1.95.0-x86_64-unknown-linux-gnu/bin/cargo build --config /tmp/xtask-build-abc/src/.cargo/config.toml --manifest-path /tmp/xtask-build-abc/src/Cargo.toml --release --locked --package api --target x86_64-unknown-linux-gnu",
        ] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
        assert!(shown.contains(&format!("GIT_SHA={sha}")), "{shown}");
        assert!(!shown.contains("rustup"), "{shown}");
        let seal = Seal::of(&cmd, &toolchain, &config);
        assert_eq!(seal.cwd, "/");
        assert_eq!(seal.cargo_config, ["/build/src/.cargo/config.toml"]);
        assert!(seal.env.iter().any(|e| e == "RUSTFLAGS"), "{:?}", seal.env);
    }
}
