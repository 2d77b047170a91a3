//! `cargo xtask registry up|down`: Debian's `docker-registry` on a loopback
//! port (else the `registry:2` image), the default when nothing is configured.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::support::cmd::Cmd;
use crate::support::http;

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
