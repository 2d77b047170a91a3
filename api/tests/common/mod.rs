//! Test helpers: a raw HTTP/1.1 client over std `TcpStream`, the library's `serve()` on a
//! background runtime, the real binary as a child process, and polling with a deadline.
#![allow(dead_code)] // each test file uses a subset

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Calls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub fn poll<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    poll_for(DEADLINE, what, check)
}

/// Calls `check` until it returns `Some`, failing the test after `limit`.
pub fn poll_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Parses a complete response that ends where the connection closed.
    pub fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {text:?}"));
        let mut lines = head.lines();
        let status_line = lines.next().expect("a status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }
}

/// Reads a response until the server closes the connection.
pub fn read_reply(stream: &mut TcpStream) -> Reply {
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("set timeout");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    Reply::parse(&raw)
}

/// `METHOD path` with `Connection: close`.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    read_reply(&mut stream)
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path)
}

/// `GET path`, or `None` while nothing answers it completely (e.g. a container starting
/// behind docker's port proxy, which accepts and then closes).
pub fn try_get(addr: SocketAddr, path: &str) -> Option<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let complete = raw.starts_with(b"HTTP/1.") && raw.windows(4).any(|w| w == b"\r\n\r\n");
    complete.then(|| Reply::parse(&raw))
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `api::serve` on `127.0.0.1:0` in a background runtime; shut down on drop.
pub struct InProcess {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl InProcess {
    pub fn start() -> Self {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx
                    .send(listener.local_addr()?)
                    .expect("test is waiting for the address");
                let config = api::Config {
                    shutdown_grace: Duration::from_secs(5),
                    ..api::Config::default()
                };
                api::serve(config, listener, async {
                    let _ = shutdown_rx.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv_timeout(DEADLINE).expect("server bound a port");
        Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Triggers the shutdown future and returns what `serve` returned.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> std::io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("server thread did not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// The real `api` binary, serving on `127.0.0.1` with a kernel-chosen port; killed on drop.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
}

impl Binary {
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
            .env("API_PORT", "0")
            .env("API_BIND", "127.0.0.1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the api binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut binary = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            seen: Vec::new(),
        };
        let listening = binary.wait_for_line("the startup line", |line| {
            line.contains(r#""message":"listening""#)
        });
        let listening: serde_json::Value =
            serde_json::from_str(&listening).expect("startup line is JSON");
        binary.addr = listening["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("startup line has addr");
        binary
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `TERM`) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
        assert!(status.expect("run kill").success(), "kill -{signal} failed");
    }

    /// Waits for a stdout line matching `pred` and returns it.
    pub fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| pred(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no stdout line with {what}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        poll("the api process to exit", || {
            self.child.try_wait().expect("try_wait")
        })
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True once the server process has accepted the connection from `client_port` to
/// `server_port`: the kernel lists a socket for a connection still waiting in the
/// accept queue with inode 0, and gives it an inode when `accept()` takes it.
pub fn accepted(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).any(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let port = |field: &str| {
            field
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
        };
        fields.len() > 9
            && port(fields[1]) == Some(server_port)
            && port(fields[2]) == Some(client_port)
            && fields[9] != "0"
    })
}
