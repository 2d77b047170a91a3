//! `cargo xtask registry up|down`: Debian's `docker-registry` on a loopback
//! port (else the `registry:2` image), the default when nothing is configured.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::support::cmd::Cmd;
use crate::support::http;

/// The `registry:2` container `registry up` starts when Debian's
/// `docker-registry` is not installed.
const CONTAINER: &str = "xtask-registry";
/// Its label: the state dir of the checkout that started it. `registry
/// down` removes only a container that carries it (as deploys do with
/// theirs): the name alone is anyone's.
const LABEL: &str = "xtask.registry";

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
        std::fs::write(&config, config_text(&dir.join("data"), port)?)
            .with_context(|| format!("writing {}", config.display()))?;
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
            .args(["run", "-d", "--name", CONTAINER, "--label"])
            .arg(format!("{LABEL}={}", state.display()))
            .arg("-p")
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

/// distribution's config, written as JSON: JSON is YAML 1.2 and
/// distribution's YAML parser reads it, and serde quotes what YAML's plain
/// scalars cannot hold (a state dir with `, ` or `: ` in its path).
fn config_text(data: &Path, port: u16) -> anyhow::Result<String> {
    let data = data.to_str().with_context(|| {
        format!(
            "the registry's storage path {} is not UTF-8",
            data.display()
        )
    })?;
    let config = serde_json::json!({
        "version": "0.1",
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": data},
            "delete": {"enabled": true},
        },
        "http": {"addr": format!("127.0.0.1:{port}")},
    });
    Ok(serde_json::to_string_pretty(&config)? + "\n")
}

pub fn down(state: &Path) -> anyhow::Result<()> {
    let dir = state.join("registry");
    let pid_file = dir.join("pid");
    let mut stopped = false;
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid = pid.trim();
        match pid.parse::<u32>() {
            Ok(n) if is_our_registry(n, &dir.join("config.yml")) => {
                let out = Cmd::new("kill").arg(pid).output()?;
                stopped |= out.status.success();
            }
            Ok(_) => eprintln!(
                "pid {pid} in {} is not the registry `registry up` started (it exited and the pid may be reused): left alone, removing the stale pid file",
                pid_file.display()
            ),
            Err(_) => eprintln!("{} does not hold a pid: removing it", pid_file.display()),
        }
        std::fs::remove_file(&pid_file)?;
    }
    let foreign = match remove_container_if_ours(CONTAINER, state) {
        Ok(removed) => {
            stopped |= removed;
            None
        }
        Err(e) => Some(e),
    };
    eprintln!(
        "{}",
        if stopped {
            "registry stopped"
        } else {
            "no registry of ours was running"
        }
    );
    foreign.map_or(Ok(()), Err)
}

/// Remove container `name` only when its `xtask.registry` label names this
/// state dir. `Ok(false)`: there is none (or docker is not here); `Err`:
/// one is there that is not ours, left alone.
fn remove_container_if_ours(name: &str, state: &Path) -> anyhow::Result<bool> {
    let Ok(out) = Cmd::new("docker")
        .args([
            "container",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            name,
        ])
        .output()
    else {
        return Ok(false);
    };
    if !out.status.success() {
        return Ok(false);
    }
    let labels: Option<std::collections::BTreeMap<String, String>> =
        serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    let ours = state.display().to_string();
    match labels.as_ref().and_then(|l| l.get(LABEL)) {
        Some(owner) if *owner == ours => {
            Cmd::new("docker").args(["rm", "-f", name]).read()?;
            Ok(true)
        }
        Some(owner) => bail!(
            "container {name} was started by `registry up` from another checkout (state in {owner}): left alone; stop it from there"
        ),
        None => bail!(
            "container {name} was not started by `registry up` (no {LABEL} label): left alone; if it is yours, `docker rm -f {name}`"
        ),
    }
}

/// Is `pid` `docker-registry serve <config>` (our config, this state dir)?
/// Read from `/proc/<pid>/cmdline`, whose arguments are NUL-separated, so a
/// path with spaces compares exactly.
fn is_our_registry(pid: u32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let Some(config) = config.to_str() else {
        return false;
    };
    matches!(
        argv.as_slice(),
        [program, b"serve", path] if program.ends_with(b"docker-registry") && *path == config.as_bytes()
    )
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
    fn config_quotes_a_path_yaml_would_split() {
        let text = config_text(Path::new("/tmp/a, b: c/state dir/data"), 5123).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            v["storage"]["filesystem"]["rootdirectory"],
            "/tmp/a, b: c/state dir/data"
        );
        assert_eq!(v["http"]["addr"], "127.0.0.1:5123");
        assert_eq!(v["version"], "0.1");
    }

    /// `registry down` used to `docker rm -f xtask-registry` whatever it
    /// was. On the real engine: a container under the name without our
    /// label is left alone, with the reason; ours is removed.
    #[test]
    fn down_removes_only_a_container_labelled_as_ours() {
        let tag = format!("xtask-test-scratch:{}", std::process::id());
        let name = format!("xtask-test-registry-{}", std::process::id());
        let docker = |args: &[&str]| Cmd::new("docker").args(args.to_vec()).read();
        // An empty image, imported in a blink (nothing is pulled).
        Cmd::new("sh")
            .args([
                "-c",
                &format!("tar cf - --files-from /dev/null | docker import - {tag}"),
            ])
            .read()
            .expect("docker import");
        let state = Path::new("/tmp/xtask-test-state");
        let cases = [
            (vec![], Some("no xtask.registry label")),
            (
                vec!["--label", "xtask.registry=/elsewhere"],
                Some("from another checkout"),
            ),
            (
                vec!["--label", "xtask.registry=/tmp/xtask-test-state"],
                None,
            ),
        ];
        for (labels, refused) in cases {
            let mut args = vec!["create", "--name", &name];
            args.extend(labels.iter().copied());
            args.extend([tag.as_str(), "/x"]);
            docker(&args).expect("docker create");
            let result = remove_container_if_ours(&name, state);
            let left = docker(&["container", "inspect", "--format", "{{.Id}}", &name]).is_ok();
            let _ = docker(&["rm", "-f", &name]);
            match refused {
                Some(why) => {
                    let err = result.expect_err("refused").to_string();
                    assert!(err.contains(why) && err.contains("left alone"), "{err}");
                    assert!(left, "a container not ours was removed");
                }
                None => {
                    assert!(result.expect("ours"));
                    assert!(!left, "ours is removed");
                }
            }
        }
        assert!(!remove_container_if_ours(&name, state).expect("none"));
        let _ = docker(&["rmi", &tag]);
    }

    #[test]
    fn a_live_process_that_is_not_our_registry_is_not_ours() {
        let mut sleep = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let ours = is_our_registry(sleep.id(), Path::new("/tmp/x/registry/config.yml"));
        let _ = sleep.kill();
        let _ = sleep.wait();
        assert!(!ours);
        assert!(!is_our_registry(4_194_999, Path::new("/tmp/x/config.yml")));
    }
}
