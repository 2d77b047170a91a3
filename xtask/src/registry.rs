//! Reading tags back from the registry itself, and the local registry a
//! newcomer gets by default (`cargo xtask registry up|down`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd::Cmd;
use crate::digest::Digest;
use crate::http;
use crate::repository::Repository;

/// `docker manifest inspect --verbose <repo>:<tag>`: docker's client asks the
/// registry with the full Accept header (OCI index, Docker manifest list, OCI
/// manifest, Docker v2 manifest) and uses docker's own TLS and credentials, so
/// the same call works for `ghcr.io` and for a plain-HTTP loopback registry.
pub fn inspect_cmd(repository: &Repository, reference: &str) -> Cmd {
    let mut cmd = Cmd::new("docker").args(["manifest", "inspect", "--verbose"]);
    if repository.is_loopback() {
        cmd = cmd.arg("--insecure");
    }
    cmd.arg(format!("{repository}:{reference}"))
}

/// The manifest digest a tag points at in the registry, or `None` when the
/// registry says it has no such tag. An unreachable registry is an error.
pub fn digest_of(repository: &Repository, reference: &str) -> anyhow::Result<Option<Digest>> {
    let out = inspect_cmd(repository, reference).output()?;
    if !out.status.success() {
        let said = out.last_words();
        if said.contains("no such manifest") || said.contains("manifest unknown") {
            return Ok(None);
        }
        let host = repository.host().unwrap_or("docker.io");
        let hint = if repository.is_loopback() {
            " (start it with `cargo xtask registry up`, or pass --repository)"
        } else {
            " (check the name and `docker login`)"
        };
        bail!("registry {host} did not answer for {repository}:{reference}: {said}{hint}");
    }
    parse_descriptor_digest(&out.stdout)
        .with_context(|| format!("reading the manifest of {repository}:{reference}"))
        .map(Some)
}

fn parse_descriptor_digest(json: &str) -> anyhow::Result<Digest> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("docker manifest inspect printed no JSON")?;
    if value.is_array() {
        bail!(
            "the tag is a multi-platform index; this tool ships single-platform linux/amd64 images"
        );
    }
    let digest = value
        .pointer("/Descriptor/digest")
        .and_then(|d| d.as_str())
        .context("no Descriptor.digest in docker's answer")?;
    digest.parse()
}

/// `cargo xtask registry up`: a registry on 127.0.0.1:<port>, Debian's
/// `docker-registry` when installed, else the `registry:2` image.
pub fn up(state: &Path, port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/v2/");
    if answers(&url) {
        eprintln!("a registry already answers on 127.0.0.1:{port}");
        return Ok(());
    }
    let dir = state.join("registry");
    std::fs::create_dir_all(dir.join("data"))?;
    if let Ok(binary) = which::which("docker-registry") {
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        // setsid: the registry outlives this command and the terminal it ran in.
        let (program, args): (&str, Vec<String>) = match which::which("setsid") {
            Ok(_) => ("setsid", vec![binary.display().to_string()]),
            Err(_) => (binary.to_str().unwrap_or("docker-registry"), vec![]),
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(&args).arg("serve").arg(&config);
        eprintln!(
            "$ {} serve {} &  (log: {})",
            binary.display(),
            config.display(),
            dir.join("registry.log").display()
        );
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        std::fs::write(dir.join("pid"), child.id().to_string())?;
    } else {
        Cmd::new("docker")
            .args(["run", "-d", "--name", "xtask-registry", "-p"])
            .arg(format!("127.0.0.1:{port}:5000"))
            .arg("registry:2")
            .run()
            .context("neither Debian's docker-registry nor the registry:2 image is available: `apt-get install docker-registry`")?;
    }
    wait_until_answers(&url, Duration::from_secs(15))?;
    eprintln!(
        "registry up on localhost:{port} (storage {})",
        dir.join("data").display()
    );
    Ok(())
}

pub fn down(state: &Path) -> anyhow::Result<()> {
    let pid_file = state.join("registry").join("pid");
    let mut stopped = false;
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid = pid.trim();
        if pid.parse::<u32>().is_ok() {
            let out = Cmd::new("kill").arg(pid).output()?;
            stopped |= out.status.success();
        }
        std::fs::remove_file(&pid_file)?;
    }
    let out = Cmd::new("docker")
        .args(["rm", "-f", "xtask-registry"])
        .output();
    stopped |= out.is_ok_and(|o| o.status.success());
    eprintln!(
        "{}",
        if stopped {
            "registry stopped"
        } else {
            "no registry of ours was running"
        }
    );
    Ok(())
}

pub fn answers(url: &str) -> bool {
    http::get(url, Duration::from_millis(500)).is_ok_and(|r| r.status == 200)
}

fn wait_until_answers(url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if answers(url) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the registry did not answer on {url} within {within:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_digest_from_docker_verbose_output() {
        let hex = "cc".repeat(32);
        let json = format!(
            r#"{{"Ref":"x","Descriptor":{{"mediaType":"m","digest":"sha256:{hex}","size":527}}}}"#
        );
        assert_eq!(parse_descriptor_digest(&json).expect("ok").hex(), hex);
        assert!(parse_descriptor_digest("[]").is_err());
        assert!(parse_descriptor_digest("{}").is_err());
    }

    #[test]
    fn loopback_registries_are_inspected_insecurely() {
        let local: Repository = "127.0.0.1:5000/a/api".parse().expect("repo");
        assert!(inspect_cmd(&local, "t").argv().contains(&"--insecure"));
        let remote: Repository = "ghcr.io/a/api".parse().expect("repo");
        assert!(!inspect_cmd(&remote, "t").argv().contains(&"--insecure"));
    }
}
