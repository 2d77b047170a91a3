//! The proxy's image, pinned: `deploy/release.json`'s `"proxy": {"image":
//! "…@sha256:…"}`, overridden by `XTASK_PROXY_IMAGE`; with neither, the image
//! `cargo xtask proxy build` makes from the HAProxy binary `.ci/setup`
//! installs (Debian's `haproxy`), built on the spot.
//!
//! A reference is always `name[:tag]@sha256:<64 hex>`. The digest is either
//! the registry's manifest digest (an official image, `haproxy:2.6@sha256:…`)
//! or, for an image built here that never saw a registry, its local image ID
//! (the sha256 of its config, which names every layer): both pin the bytes
//! that run. Which of the two it is, is found when it is resolved.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::haproxy::{ADMIN_PORT, CONFIG_PATH, HTTP_PORT};
use crate::model::digest::Digest;
use crate::support::docker::docker;

pub const ENV_VAR: &str = "XTASK_PROXY_IMAGE";
/// The local repository `proxy build` tags its images in.
const LOCAL_REPOSITORY: &str = "xtask-proxy";
/// Where `.ci/setup` (Debian's `haproxy` package) puts the binary.
const HAPROXY: &str = "/usr/sbin/haproxy";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyImage {
    /// `name[:tag]`
    pub name: String,
    pub digest: Digest,
}

impl std::fmt::Display for ProxyImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.digest)
    }
}

impl std::str::FromStr for ProxyImage {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<ProxyImage> {
        let Some((name, digest)) = s.split_once('@') else {
            bail!(
                "proxy image `{s}` is not pinned by digest: write it as `name[:tag]@sha256:<64 hex>` (e.g. the last line of `cargo xtask proxy build`)"
            );
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
        if !name_ok {
            bail!("proxy image `{s}`: `{name}` is not an image name");
        }
        let digest = digest
            .parse()
            .with_context(|| format!("proxy image `{s}`: bad digest"))?;
        Ok(ProxyImage {
            name: name.to_owned(),
            digest,
        })
    }
}

impl ProxyImage {
    /// The configured image (env var, else the release config), if any.
    pub fn configured(from_config: Option<&str>) -> anyhow::Result<Option<ProxyImage>> {
        if let Some(v) = std::env::var_os(ENV_VAR) {
            let v = v.to_string_lossy();
            return v
                .parse()
                .with_context(|| format!("{ENV_VAR}={v}"))
                .map(Some);
        }
        from_config
            .map(|s| {
                s.parse()
                    .with_context(|| format!("deploy/release.json proxy.image {s}"))
            })
            .transpose()
    }

    /// What `docker create` is given: the registry-pinned reference when the
    /// engine knows it (pulled when it does not), else the local image ID
    /// when that is the digest (an image `proxy build` made).
    pub fn resolve(&self) -> anyhow::Result<String> {
        let pinned = self.to_string();
        let repo = self.name.split(':').next().unwrap_or(&self.name);
        let by_repo = format!("{repo}@{}", self.digest);
        if exists(&by_repo)? {
            return Ok(by_repo);
        }
        let id = self.digest.to_string();
        if exists(&id)? {
            return Ok(id);
        }
        let out = docker().args(["pull", &by_repo]).output()?;
        if !out.status.success() {
            bail!(
                "proxy image {pinned} is neither a local image nor pullable ({}): run `cargo xtask proxy build` and set {ENV_VAR} to its last line, or fix proxy.image in deploy/release.json",
                out.last_words()
            );
        }
        Ok(by_repo)
    }
}

fn exists(reference: &str) -> anyhow::Result<bool> {
    let out = docker()
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()?;
    Ok(out.status.success())
}

/// `cargo xtask proxy build`: a `FROM scratch` image holding the HAProxy
/// binary and its shared libraries (from `ldd`), run as nobody. Tagged by the
/// binary's sha256, so a second build of the same binary reuses the image.
pub fn build(work: &Path) -> anyhow::Result<ProxyImage> {
    let binary = Path::new(HAPROXY);
    if !binary.exists() {
        bail!(
            "{HAPROXY} is missing: install HAProxy (`.ci/setup`, or `sudo apt-get install haproxy`), or set {ENV_VAR} to an image pinned by digest"
        );
    }
    let binary_sha = crate::build::sha256::of_file(binary)?;
    let tag = format!("{LOCAL_REPOSITORY}:haproxy-{}", &binary_sha[..12]);
    if let Some(id) = image_id(&tag)? {
        eprintln!("{tag} already holds this HAProxy binary ({id})");
        return Ok(ProxyImage {
            name: tag,
            digest: id,
        });
    }
    let dir = work.join("proxy-image");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let rootfs = dir.join("rootfs");
    copy(binary, &rootfs.join("usr/local/sbin/haproxy"))?;
    for lib in shared_libs(binary)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        copy(&lib, &rootfs.join(rel))?;
    }
    let config_dir = rootfs.join(CONFIG_PATH.trim_start_matches('/'));
    let config_dir = config_dir.parent().context("config path has a folder")?;
    std::fs::create_dir_all(config_dir)?;
    std::fs::write(config_dir.join(".keep"), "")?;
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM scratch\n\
             COPY rootfs/ /\n\
             LABEL xtask.proxy=haproxy xtask.proxy.binary.sha256=\"{binary_sha}\"\n\
             ENV PATH=/usr/local/sbin\n\
             USER 65534:65534\n\
             EXPOSE {HTTP_PORT} {ADMIN_PORT}\n\
             STOPSIGNAL SIGUSR1\n\
             CMD [\"haproxy\", \"-db\", \"-f\", \"{CONFIG_PATH}\"]\n"
        ),
    )?;
    docker()
        .args(["build", "--quiet", "--tag", &tag])
        .arg(dir.display().to_string())
        .run()?;
    let id = image_id(&tag)?.with_context(|| format!("`docker build` made no image {tag}"))?;
    Ok(ProxyImage {
        name: tag,
        digest: id,
    })
}

fn image_id(reference: &str) -> anyhow::Result<Option<Digest>> {
    let out = docker()
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()?;
    if !out.status.success() {
        return Ok(None);
    }
    out.stdout.trim().parse().map(Some)
}

/// `ldd`'s `libc.so.6 => /lib/…/libc.so.6 (0x…)` and the loader
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
fn shared_libs(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = crate::support::cmd::Cmd::new("ldd")
        .arg(binary.display().to_string())
        .read()?;
    Ok(parse_ldd(&out))
}

fn parse_ldd(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Follows symlinks (a library's name is often one); keeps the mode.
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_image_must_be_pinned_by_digest() {
        let hex = "ab".repeat(32);
        let image: ProxyImage = format!("haproxy:2.6@sha256:{hex}").parse().expect("pinned");
        assert_eq!(image.name, "haproxy:2.6");
        assert_eq!(image.to_string(), format!("haproxy:2.6@sha256:{hex}"));
        for bad in [
            "haproxy:2.6".to_owned(),
            format!("haproxy@sha256:{}", "ab".repeat(31)),
            format!("Bad Name@sha256:{hex}"),
            format!("@sha256:{hex}"),
        ] {
            assert!(bad.parse::<ProxyImage>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ldd_lines_give_the_library_files() {
        let out = "\tlinux-vdso.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
