//! Every external command is a value before it runs: it prints as the exact
//! line a user can copy (`$ docker push …`), secrets masked; tests assert on
//! its argv; `--dry-run` prints it instead of running it.
//!
//! All of a command's output goes to stderr, so stdout carries only the
//! task's result (the JSON record with `--json`).

use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, bail};

#[derive(Clone, Debug)]
struct Arg {
    value: String,
    secret: bool,
}

#[derive(Clone, Debug)]
pub struct Cmd {
    program: String,
    args: Vec<Arg>,
    envs: Vec<(String, String)>,
    /// Start from an empty environment (printed as `env -i …`): only `envs` reach the child.
    clear_env: bool,
    dir: Option<PathBuf>,
    /// Fed to the child's stdin; a secret (a mnemonic), never printed.
    stdin: Option<String>,
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last non-empty line of stderr (else stdout): what a tool says when it fails.
    pub fn last_words(&self) -> &str {
        [&self.stderr, &self.stdout]
            .into_iter()
            .flat_map(|s| s.lines().rev())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(no output)")
    }
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            clear_env: false,
            dir: None,
            stdin: None,
        }
    }

    pub fn arg(mut self, value: impl Into<String>) -> Cmd {
        self.args.push(Arg {
            value: value.into(),
            secret: false,
        });
        self
    }

    pub fn args<I, S>(mut self, values: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for v in values {
            self = self.arg(v);
        }
        self
    }

    /// An argument that must never be printed (a webhook URL, a token).
    pub fn secret_arg(mut self, value: impl Into<String>) -> Cmd {
        self.args.push(Arg {
            value: value.into(),
            secret: true,
        });
        self
    }

    /// Environment for the child only. Env values are not printed except the
    /// ones that shape the build (shown as `KEY=value` before the program);
    /// pass secrets through the inherited environment, never here.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Cmd {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// The child gets only the variables given with [`Cmd::env`], nothing
    /// inherited (a clean build: no RUSTFLAGS, wrapper or secret leaks in).
    pub fn env_clear(mut self) -> Cmd {
        self.clear_env = true;
        self
    }

    /// A secret the child reads on stdin (printed as `<<< '***'`).
    pub fn secret_stdin(mut self, input: impl Into<String>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.dir = Some(dir.into());
        self
    }

    /// The arguments as the child receives them (secrets included): for tests.
    #[cfg(test)]
    pub fn argv(&self) -> Vec<&str> {
        self.args.iter().map(|a| a.value.as_str()).collect()
    }

    fn to_std(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.args.iter().map(|a| OsString::from(&a.value)));
        if self.clear_env {
            cmd.env_clear();
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn echo(&self) {
        eprintln!("$ {self}");
    }

    fn spawn_error(&self, err: io::Error) -> anyhow::Error {
        if err.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "`{}` is not installed or not on PATH (needed for `{self}`)",
                self.program
            )
        } else {
            anyhow::anyhow!("could not start `{self}`: {err}")
        }
    }

    /// Run with output streamed live to stderr; fail on a non-zero exit.
    pub fn run(&self) -> anyhow::Result<()> {
        self.echo();
        let status = self
            .to_std()
            .stdout(stderr_stdio()?)
            .stderr(stderr_stdio()?)
            .status()
            .map_err(|e| self.spawn_error(e))?;
        if !status.success() {
            bail!("`{self}` failed ({})", describe(status));
        }
        Ok(())
    }

    /// Like [`Cmd::run`], but a Ctrl-C or SIGTERM (see `support::interrupt`)
    /// kills the child and fails at once, so the caller's cleanup runs: for
    /// long steps whose half-done result is thrown away (a compile, an image
    /// build), never for a step that changes a target.
    pub fn run_interruptible(&self) -> anyhow::Result<()> {
        self.echo();
        let mut child = self
            .to_std()
            .stdout(stderr_stdio()?)
            .stderr(stderr_stdio()?)
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("waiting for `{self}`"))?
            {
                if crate::support::interrupt::requested() {
                    bail!("`{}` was stopped", self.program);
                }
                if !status.success() {
                    bail!("`{self}` failed ({})", describe(status));
                }
                return Ok(());
            }
            if crate::support::interrupt::requested() {
                let _ = child.kill();
                let _ = child.wait();
                bail!("`{}` was stopped", self.program);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Run and capture both streams; a non-zero exit is the caller's to judge.
    pub fn output(&self) -> anyhow::Result<Output> {
        self.echo();
        let out = match &self.stdin {
            None => self.to_std().output().map_err(|e| self.spawn_error(e))?,
            Some(input) => {
                let mut child = self
                    .to_std()
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| self.spawn_error(e))?;
                if let Some(mut stdin) = child.stdin.take() {
                    // A child that exits without reading is judged by its status.
                    let _ = writeln!(stdin, "{input}");
                }
                child
                    .wait_with_output()
                    .with_context(|| format!("waiting for `{self}`"))?
            }
        };
        Ok(Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run a read-only query and return its trimmed stdout; fail on non-zero
    /// exit with the tool's own last words.
    pub fn read(&self) -> anyhow::Result<String> {
        let out = self.output()?;
        if !out.status.success() {
            bail!(
                "`{self}` failed ({}): {}",
                describe(out.status),
                out.last_words()
            );
        }
        Ok(out.stdout.trim().to_owned())
    }

    /// Run with stdout and stderr streamed live to our stderr while also
    /// capturing them (e.g. `docker push`, whose digest line we need).
    pub fn tee(&self) -> anyhow::Result<Output> {
        self.echo();
        let mut child = self
            .to_std()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let out = child.stdout.take().context("child stdout")?;
        let err = child.stderr.take().context("child stderr")?;
        let err_thread = std::thread::spawn(move || copy_lines(BufReader::new(err)));
        let stdout = copy_lines(BufReader::new(out));
        let stderr = err_thread.join().unwrap_or_default();
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{self}`"))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

fn copy_lines(reader: impl BufRead) -> String {
    let mut all = String::new();
    let mut sink = io::stderr();
    for line in reader.lines().map_while(Result::ok) {
        let _ = writeln!(sink, "  {line}");
        all.push_str(&line);
        all.push('\n');
    }
    all
}

fn stderr_stdio() -> anyhow::Result<Stdio> {
    let fd = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    Ok(Stdio::from(fd))
}

pub fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Quote for a POSIX shell only when needed, so the printed line can be pasted.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%^".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.clear_env {
            f.write_str("env -i ")?;
        }
        for (k, v) in &self.envs {
            write!(f, "{k}={} ", quote(v))?;
        }
        f.write_str(&quote(&self.program))?;
        for arg in &self.args {
            if arg.secret {
                f.write_str(" '***'")?;
            } else {
                write!(f, " {}", quote(&arg.value))?;
            }
        }
        if self.stdin.is_some() {
            f.write_str(" <<< '***'")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_a_pasteable_line_with_secrets_masked() {
        let cmd = Cmd::new("curl")
            .env("GIT_SHA", "abc")
            .args(["-fsS", "--data-binary", "@-"])
            .arg("it's here")
            .secret_arg("https://hooks.example/T0K3N");
        let shown = cmd.to_string();
        assert_eq!(
            shown,
            r"GIT_SHA=abc curl -fsS --data-binary @- 'it'\''s here' '***'"
        );
        assert!(!shown.contains("T0K3N"));
        assert_eq!(cmd.argv().last(), Some(&"https://hooks.example/T0K3N"));
    }

    #[test]
    fn a_secret_on_stdin_reaches_the_child_and_is_never_printed() {
        let cmd = Cmd::new("sh")
            .args(["-c", "read line; echo \"got $line\""])
            .secret_stdin("w1 w2 S3CRET");
        assert_eq!(
            cmd.to_string(),
            "sh -c 'read line; echo \"got $line\"' <<< '***'"
        );
        assert_eq!(cmd.read().expect("runs"), "got w1 w2 S3CRET");
    }

    #[test]
    fn a_cleared_environment_is_printed_and_holds_only_what_was_given() {
        let cmd = Cmd::new("sh")
            .env_clear()
            .env("ONLY", "this")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args([
                "-c",
                "env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort",
            ]);
        assert!(
            cmd.to_string().starts_with("env -i ONLY=this PATH="),
            "{cmd}"
        );
        let seen = cmd.read().expect("runs");
        let names: Vec<&str> = seen.lines().filter_map(|l| l.split('=').next()).collect();
        assert_eq!(names, ["ONLY", "PATH"], "{seen}");
    }

    #[test]
    fn missing_program_is_named() {
        let err = Cmd::new("surely-not-a-program-xyz")
            .read()
            .expect_err("missing");
        assert!(
            err.to_string()
                .contains("`surely-not-a-program-xyz` is not installed"),
            "{err}"
        );
    }

    #[test]
    fn failure_carries_the_tools_last_words() {
        let err = Cmd::new("sh")
            .args(["-c", "echo first >&2; echo 'the reason' >&2; exit 3"])
            .read();
        let err = err.expect_err("fails").to_string();
        assert!(
            err.contains("exit 3") && err.contains("the reason"),
            "{err}"
        );
    }

    #[test]
    fn tee_captures_what_it_streams() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .tee()
            .expect("runs");
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }
}
