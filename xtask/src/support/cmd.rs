//! Every external command is a value before it runs: it prints as the exact
//! line a user can copy (`$ docker push …`), secrets masked; tests assert on
//! its argv; `--dry-run` prints it instead of running it.
//!
//! Running it is `duct`'s job (spawning, stdin, capture, exit status); what
//! is ours is the value, its printed form, the one-line failure message, and
//! `tee` (streamed to our stderr and captured at once).
//!
//! All of a command's output goes to stderr, so stdout carries only the
//! task's result (the JSON record with `--json`).
//!
//! Every child runs in a process group of its own, so a terminal's Ctrl-C
//! reaches xtask alone (`support::interrupt` decides what the child gets),
//! and every call has a deadline by its [`CallKind`]: a hung daemon ends
//! the call (SIGTERM, then SIGKILL to its whole group), never the run.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::support::interrupt;

/// What a call does, which bounds how long it may take. Each bound can be
/// raised (or lowered) with `XTASK_DEADLINE_<KIND>=<seconds>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Asks and changes nothing (`docker inspect`, `docker version`,
    /// `curl` to a webhook): 60 s.
    Query,
    /// Changes a target in one short step (`docker run`, `stop`, `rm`,
    /// `rename`): 180 s (`docker stop -t 30` included).
    Change,
    /// Moves or makes bytes (`docker build`, `push`, `pull`, a compile, a
    /// chain transaction): 3600 s.
    Transfer,
}

impl CallKind {
    fn name(self) -> &'static str {
        match self {
            CallKind::Query => "QUERY",
            CallKind::Change => "CHANGE",
            CallKind::Transfer => "TRANSFER",
        }
    }

    fn default_secs(self) -> u64 {
        match self {
            CallKind::Query => 60,
            CallKind::Change => 180,
            CallKind::Transfer => 3600,
        }
    }

    /// The variable that overrides this kind's deadline.
    pub fn variable(self) -> String {
        format!("XTASK_DEADLINE_{}", self.name())
    }

    /// The bound: `XTASK_DEADLINE_<KIND>` seconds when set to a positive
    /// number, else the default.
    pub fn deadline(self) -> Duration {
        let secs = std::env::var(self.variable())
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or_else(|| self.default_secs());
        Duration::from_secs(secs)
    }

    /// The kind of a call by its program and subcommand: docker's are known;
    /// anything else (cargo, git, cosign, kubectl, provider-services) may
    /// move bytes and gets the long bound.
    fn of(program: &str, args: &[Arg]) -> CallKind {
        let words: Vec<&str> = args
            .iter()
            .map(|a| a.value.as_str())
            .filter(|a| !a.starts_with('-'))
            .take(2)
            .collect();
        let program = program.rsplit('/').next().unwrap_or(program);
        match (program, words.as_slice()) {
            ("curl" | "kill" | "id", _) => CallKind::Query,
            ("docker", [group, sub, ..])
                if ["container", "image", "network", "volume"].contains(group) =>
            {
                Self::docker(sub)
            }
            ("docker", [sub, ..]) => Self::docker(sub),
            _ => CallKind::Transfer,
        }
    }

    fn docker(sub: &str) -> CallKind {
        match sub {
            "inspect" | "version" | "info" | "port" | "ps" | "ls" | "images" | "logs"
            | "history" => CallKind::Query,
            "build" | "push" | "pull" | "save" | "load" | "commit" | "export" | "import" => {
                CallKind::Transfer
            }
            _ => CallKind::Change,
        }
    }
}

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
    /// The child may see the signing secrets (see [`SIGNING_SECRETS`]):
    /// only `cosign sign` and `cosign attest` ask for them.
    signing: bool,
    /// Overrides the deadline of the call's kind.
    deadline: Option<Duration>,
}

/// Variables that can sign in this project's name. Every child except the
/// one marked [`Cmd::signing`] starts without them (and without the
/// variable an `env://VAR` in `COSIGN_KEY` names): git, docker and cargo
/// have no use for them, and a hook, a wrapper or a build script could
/// read them.
pub const SIGNING_SECRETS: &[&str] = &[
    "COSIGN_KEY",
    "COSIGN_PASSWORD",
    "SIGSTORE_ID_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
];

/// [`SIGNING_SECRETS`], plus the variable `COSIGN_KEY=env://VAR` points at.
fn signing_secrets() -> Vec<String> {
    let mut all: Vec<String> = SIGNING_SECRETS.iter().map(|s| (*s).to_owned()).collect();
    if let Some(var) = std::env::var("COSIGN_KEY")
        .ok()
        .and_then(|k| k.trim().strip_prefix("env://").map(str::to_owned))
        .filter(|v| !v.is_empty())
    {
        all.push(var);
    }
    all
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// What a tool says when it fails: from stderr (else stdout), the last
    /// line that reads as an error (`docker: Error response from daemon: …`,
    /// `error: …`, `fatal: …`), else the last line that is not boilerplate
    /// (`Run 'docker run --help' for more information`, `Usage: …`). After a
    /// `Caused by:` chain (cargo, anyhow) the last line is the root cause.
    pub fn last_words(&self) -> &str {
        last_words(&self.stderr)
            .or_else(|| last_words(&self.stdout))
            .unwrap_or("(no output)")
    }
}

fn last_words(text: &str) -> Option<&str> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_boilerplate(l))
        .collect();
    if lines.contains(&"Caused by:") {
        return lines.last().copied();
    }
    lines
        .iter()
        .rev()
        .find(|l| reads_as_error(l))
        .or_else(|| lines.last())
        .copied()
}

/// Lines a CLI adds after its real error: docker's `Run 'docker run --help'
/// for more information` (older clients: `See 'docker run --help'.`) and
/// the usage synopsis.
fn is_boilerplate(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    (lower.starts_with("run '") && lower.contains("--help' for more information"))
        || (lower.starts_with("see '") && lower.contains("--help'"))
        || lower.starts_with("usage:")
}

fn reads_as_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ["error:", "docker: error", "fatal:"]
        .iter()
        .any(|p| lower.starts_with(p))
        || lower.contains("error response from daemon")
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
            signing: false,
            deadline: None,
        }
    }

    /// A bound for this call other than its kind's (see [`CallKind`]).
    pub fn deadline(mut self, deadline: Duration) -> Cmd {
        self.deadline = Some(deadline);
        self
    }

    fn kind(&self) -> CallKind {
        CallKind::of(&self.program, &self.args)
    }

    /// This child signs: it keeps the signing secrets every other child is
    /// started without (cosign reads `COSIGN_PASSWORD` and `env://` keys
    /// itself).
    pub fn signing(mut self) -> Cmd {
        self.signing = true;
        self
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

    /// An argument that must never be printed. It is still readable by any
    /// user of the host for the length of the call (`ps`): a token goes on
    /// stdin ([`Cmd::secret_stdin`]) when the tool can read it there.
    #[allow(dead_code)] // no caller left since the webhook URL moved to stdin
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

    /// The names of the variables given with [`Cmd::env`] (for a record of
    /// what a sealed child saw).
    pub fn env_names(&self) -> Vec<String> {
        self.envs.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The arguments as the child receives them (secrets included): for tests.
    #[cfg(test)]
    pub fn argv(&self) -> Vec<&str> {
        self.args.iter().map(|a| a.value.as_str()).collect()
    }

    /// The duct expression: program, args, env, dir and stdin (the secret
    /// and a newline, else nothing). Exit status is ours to judge.
    fn expression(&self) -> duct::Expression {
        let stdin = self.stdin.as_ref().map(|s| format!("{s}\n").into_bytes());
        self.expression_with(stdin)
    }

    fn expression_with(&self, stdin: Option<Vec<u8>>) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, self.args.iter().map(|a| &a.value));
        if self.clear_env {
            expr = expr.full_env(self.envs.iter().map(|(k, v)| (k, v)));
        }
        for (k, v) in &self.envs {
            expr = expr.env(k, v);
        }
        if !self.signing {
            for key in signing_secrets() {
                expr = expr.env_remove(key);
            }
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        expr = match stdin {
            // A child that exits without reading is judged by its status
            // (duct ignores the broken pipe).
            Some(input) => expr.stdin_bytes(input),
            None => expr.stdin_null(),
        };
        // A group of its own: a terminal's Ctrl-C reaches xtask, not the
        // child, and a stuck call is ended with its own children.
        expr.before_spawn(|command| {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
            Ok(())
        })
        .unchecked()
    }

    /// Run a read-only query that takes `input` on stdin (not a secret: use
    /// [`Cmd::secret_stdin`] for one) and returns raw stdout bytes (e.g.
    /// `git cat-file --batch`); fail on a non-zero exit with its words.
    pub fn read_bytes(&self, input: Option<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
        self.echo();
        let (handle, signals_at_start) = self.start(
            self.expression_with(input)
                .stdout_capture()
                .stderr_capture(),
        )?;
        let out = self.wait(&handle, signals_at_start, false)?;
        if !out.status.success() {
            let words = Output {
                status: out.status,
                stdout: String::new(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            bail!(
                "`{self}` failed ({}): {}",
                describe(out.status),
                words.last_words()
            );
        }
        Ok(out.stdout)
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
    /// (The child writes to our stderr itself, so a terminal stays a
    /// terminal: cargo's colours and progress bar survive.)
    pub fn run(&self) -> anyhow::Result<()> {
        self.echo();
        let (handle, signals_at_start) = self.start(self.expression().stdout_to_stderr())?;
        let out = self.wait(&handle, signals_at_start, false)?;
        if !out.status.success() {
            bail!("`{self}` failed ({})", describe(out.status));
        }
        Ok(())
    }

    /// Like [`Cmd::run`], but any Ctrl-C or SIGTERM (see `support::interrupt`)
    /// kills the child and fails at once, so the caller's cleanup runs: for
    /// long steps whose half-done result is thrown away (a compile, an image
    /// build), never for a step that changes a target.
    pub fn run_interruptible(&self) -> anyhow::Result<()> {
        self.echo();
        let (handle, signals_at_start) = self.start(self.expression().stdout_to_stderr())?;
        let out = self.wait(&handle, signals_at_start, true)?;
        if interrupt::requested() {
            bail!("`{}` was stopped", self.program);
        }
        if !out.status.success() {
            bail!("`{self}` failed ({})", describe(out.status));
        }
        Ok(())
    }

    /// Run and capture both streams; a non-zero exit is the caller's to judge.
    pub fn output(&self) -> anyhow::Result<Output> {
        self.echo();
        let (handle, signals_at_start) =
            self.start(self.expression().stdout_capture().stderr_capture())?;
        let out = self.wait(&handle, signals_at_start, false)?;
        Ok(Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run a read-only query and return its trimmed stdout; fail on non-zero
    /// exit with the tool's own words (see [`Output::last_words`]).
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
    /// capturing each (e.g. `docker push`, whose digest line we need).
    pub fn tee(&self) -> anyhow::Result<Output> {
        self.echo();
        let (out_r, out_w) = io::pipe().context("creating a pipe")?;
        let (err_r, err_w) = io::pipe().context("creating a pipe")?;
        // The expression owns the write ends: it must be gone once the child
        // has started, or the readers never see end-of-file.
        let (handle, signals_at_start) =
            self.start(self.expression().stdout_file(out_w).stderr_file(err_w))?;
        let out_thread = std::thread::spawn(move || copy_lines(BufReader::new(out_r)));
        let err_thread = std::thread::spawn(move || copy_lines(BufReader::new(err_r)));
        let out = self.wait(&handle, signals_at_start, false)?;
        Ok(Output {
            status: out.status,
            stdout: out_thread.join().unwrap_or_default(),
            stderr: err_thread.join().unwrap_or_default(),
        })
    }

    /// Start the child, and note how many signals had arrived before it
    /// did: one that lands between the start and the first look (a loaded
    /// machine, a fast child) still ends this call.
    fn start(&self, expression: duct::Expression) -> anyhow::Result<(duct::Handle, u64)> {
        let signals_at_start = interrupt::count();
        let handle = expression.start().map_err(|e| self.spawn_error(e))?;
        Ok((handle, signals_at_start))
    }

    /// Wait for a started child. Its deadline (see [`CallKind`]) and a
    /// signal that arrives while it runs (see `support::interrupt`; any
    /// signal when `any_interrupt`) end it, with its whole process group,
    /// and fail with one line saying so.
    fn wait(
        &self,
        handle: &duct::Handle,
        signals_at_start: u64,
        any_interrupt: bool,
    ) -> anyhow::Result<std::process::Output> {
        let kind = self.kind();
        let limit = self.deadline.unwrap_or_else(|| kind.deadline());
        let started = Instant::now();
        // process_group(0): the child's pid is its group's id.
        let group = handle.pids().first().copied();
        if let Some(g) = group {
            interrupt::track(g);
        }
        // Quick calls are seen as soon as they end: the pause between two
        // looks grows from 1 ms to 20 ms.
        let mut pause = Duration::from_millis(1);
        let result = loop {
            match handle.try_wait() {
                Ok(Some(out)) => break Ok(out.clone()),
                Ok(None) => {}
                Err(e) => break Err(anyhow::anyhow!("waiting for `{self}`: {e}")),
            }
            let why = if (any_interrupt && interrupt::requested())
                || interrupt::ends_call(signals_at_start)
            {
                let signal = if interrupt::terminated() {
                    "SIGTERM"
                } else {
                    "Ctrl-C"
                };
                Some(format!("`{}` was stopped ({signal})", self.program))
            } else if started.elapsed() >= limit {
                Some(format!(
                    "`{self}` did not finish within {limit:?}, the deadline of a {} call, and was ended; if it needs longer, set {}=<seconds>",
                    kind.name().to_ascii_lowercase(),
                    kind.variable()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                end(handle, group);
                break Err(anyhow::anyhow!(why));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        if let Some(g) = group {
            interrupt::untrack(g);
        }
        result
    }
}

/// End a child and everything in its process group: SIGTERM, two seconds
/// to go, then SIGKILL; reaped, so nothing is left behind.
fn end(handle: &duct::Handle, group: Option<u32>) {
    if let Some(g) = group {
        interrupt::signal_group("TERM", g);
        let grace = Instant::now() + Duration::from_secs(2);
        while Instant::now() < grace {
            if matches!(handle.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        interrupt::signal_group("KILL", g);
    }
    let _ = handle.kill();
    let _ = handle.wait();
}

/// Each line to our stderr (indented) as it comes, and all of it captured.
/// Bytes that are not UTF-8 are replaced, never a reason to stop reading.
fn copy_lines(mut reader: impl BufRead) -> String {
    let mut all = String::new();
    let mut sink = io::stderr();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                let _ = writeln!(sink, "  {text}");
                all.push_str(text);
                all.push('\n');
            }
        }
    }
    all
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

    fn failed(stderr: &str) -> Output {
        let status = std::process::Command::new("false")
            .status()
            .expect("`false` runs");
        Output {
            status,
            stdout: String::new(),
            stderr: stderr.to_owned(),
        }
    }

    #[test]
    fn last_words_skip_dockers_boilerplate_for_its_error_line() {
        // docker 28's own output shapes (captured on this machine), and an
        // older client's `See '… --help'.`.
        let cases = [
            (
                "docker: Error response from daemon: No such image: nonexistent-image-xyz:1\n\nRun 'docker run --help' for more information\n",
                "docker: Error response from daemon: No such image: nonexistent-image-xyz:1",
            ),
            (
                "docker: Error response from daemon: driver failed programming external connectivity on endpoint api: Bind for 127.0.0.1:18080 failed: port is already allocated.\nSee 'docker run --help'.\n",
                "docker: Error response from daemon: driver failed programming external connectivity on endpoint api: Bind for 127.0.0.1:18080 failed: port is already allocated.",
            ),
            (
                "unknown flag: --badflag\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information\n",
                "unknown flag: --badflag",
            ),
            (
                "Error response from daemon: No such container: nosuch-xyz\n",
                "Error response from daemon: No such container: nosuch-xyz",
            ),
            (
                "Pulling fs layer\nerror: listen tcp 127.0.0.1:5000: bind: address already in use\nexiting\n",
                "error: listen tcp 127.0.0.1:5000: bind: address already in use",
            ),
            (
                "error: failed to load manifest for workspace member `/tmp/w/api`\nreferenced by workspace at `/tmp/w/Cargo.toml`\n\nCaused by:\n  failed to parse manifest at `/tmp/w/api/Cargo.toml`\n\nCaused by:\n  `workspace.package.version` was not defined\n",
                "`workspace.package.version` was not defined",
            ),
            (
                "The push refers to repository [127.0.0.1:1/x/y]\nfailed to configure transport: error pinging v2 registry: Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused\n",
                "failed to configure transport: error pinging v2 registry: Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
            ),
        ];
        for (stderr, expected) in cases {
            assert_eq!(failed(stderr).last_words(), expected, "{stderr}");
        }
        assert_eq!(failed("").last_words(), "(no output)");
        assert_eq!(
            failed("Run 'docker run --help' for more information\n").last_words(),
            "(no output)",
            "boilerplate alone says nothing"
        );
    }

    /// The real docker CLI and engine: an image that is not here
    /// (`--pull=never`, so nothing is fetched) fails at once, and the
    /// one-line error carries docker's reason, not its `--help` hint.
    #[test]
    fn a_failed_docker_run_names_dockers_reason() {
        let err = Cmd::new("docker")
            .args([
                "run",
                "--rm",
                "--pull=never",
                "xtask-test/surely-absent:0123456789ab",
            ])
            .read()
            .expect_err("no such image")
            .to_string();
        assert!(
            err.contains("exit 125") && err.contains("No such image"),
            "{err}"
        );
        assert!(!err.contains("--help"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    fn gone(pid: &str) -> bool {
        // A killed process reparented to an init that does not reap is a
        // zombie: dead all the same.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    }

    /// A call that hangs (a daemon that never answers) is ended at its
    /// deadline with everything it started, and says which bound to raise.
    #[test]
    fn a_stuck_call_is_ended_at_its_deadline_with_its_whole_group() {
        let dir = std::env::temp_dir().join(format!("xtask-cmd-stuck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pid_file = dir.join("grandchild.pid");
        let script = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
        for run in [
            |c: &Cmd| c.output().map(drop),
            |c: &Cmd| c.run(),
            |c: &Cmd| c.tee().map(drop),
        ] {
            let _ = std::fs::remove_file(&pid_file);
            let cmd = Cmd::new("sh")
                .args(["-c", &script])
                .deadline(Duration::from_millis(400));
            let started = Instant::now();
            let err = run(&cmd).expect_err("ended").to_string();
            assert!(
                err.contains("did not finish within 400ms")
                    && err.contains("XTASK_DEADLINE_TRANSFER"),
                "{err}"
            );
            assert!(started.elapsed() < Duration::from_secs(10), "bounded");
            let pid = std::fs::read_to_string(&pid_file).expect("the grandchild started");
            let pid = pid.trim();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !gone(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(gone(pid), "the grandchild {pid} was left running");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_call_has_a_kind_and_so_a_deadline() {
        let kind = |program: &str, args: &[&str]| Cmd::new(program).args(args.to_vec()).kind();
        assert_eq!(
            kind("docker", &["container", "inspect", "x"]),
            CallKind::Query
        );
        assert_eq!(
            kind("docker", &["version", "--format", "x"]),
            CallKind::Query
        );
        assert_eq!(kind("docker", &["stop", "-t", "30", "x"]), CallKind::Change);
        assert_eq!(kind("docker", &["run", "--detach", "x"]), CallKind::Change);
        assert_eq!(kind("docker", &["push", "x"]), CallKind::Transfer);
        assert_eq!(kind("/usr/bin/curl", &["--config", "-"]), CallKind::Query);
        assert_eq!(kind("cargo", &["build"]), CallKind::Transfer);
        assert_eq!(CallKind::Query.variable(), "XTASK_DEADLINE_QUERY");
        assert!(CallKind::Query.deadline() <= CallKind::Change.deadline());
    }

    #[test]
    fn tee_keeps_lines_that_are_not_utf8_and_a_last_line_without_newline() {
        let out = Cmd::new("sh")
            .args(["-c", r"printf 'caf\351\n'; printf 'no newline' >&2; exit 4"])
            .tee()
            .expect("runs");
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(out.stdout, "caf\u{fffd}\n");
        assert_eq!(out.stderr, "no newline\n");
    }

    #[test]
    fn run_fails_with_the_exit_code_and_env_and_dir_reach_the_child() {
        let dir = std::env::temp_dir();
        let out = Cmd::new("sh")
            .args(["-c", "echo \"$XT_PROBE $(pwd)\""])
            .env("XT_PROBE", "seen")
            .dir(&dir)
            .read()
            .expect("runs");
        let pwd = dir.canonicalize().expect("temp dir");
        assert_eq!(out, format!("seen {}", pwd.display()));
        let err = Cmd::new("sh")
            .args(["-c", "exit 7"])
            .run()
            .expect_err("fails")
            .to_string();
        assert!(err.contains("exit 7"), "{err}");
    }

    /// A Ctrl-C that lands after the child started but before the first
    /// look (a loaded machine) still ends the call. It failed before the
    /// count was taken ahead of the start: the call ran to its end (here
    /// 30 s). Signals are process-wide, so this runs in a child process of
    /// the test binary.
    #[test]
    fn a_signal_between_the_start_and_the_first_look_ends_the_call() {
        const NAME: &str =
            "support::cmd::tests::a_signal_between_the_start_and_the_first_look_ends_the_call";
        if std::env::var_os("XTASK_TEST_SIGNAL_CHILD").is_none() {
            let exe = std::env::current_exe().expect("the test binary");
            let out = std::process::Command::new(exe)
                .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
                .env("XTASK_TEST_SIGNAL_CHILD", "1")
                .output()
                .expect("run the test binary");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
            return;
        }
        interrupt::install().expect("handlers");
        let cmd = Cmd::new("sleep").arg("30");
        let (handle, at) = cmd
            .start(cmd.expression().stdout_capture().stderr_capture())
            .expect("starts");
        signal_hook::low_level::raise(signal_hook::consts::SIGINT).expect("raise");
        let started = Instant::now();
        let err = cmd
            .wait(&handle, at, false)
            .expect_err("the signal ends the call");
        assert!(err.to_string().contains("was stopped (Ctrl-C)"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    }
}
