//! A fault-injecting HTTP proxy in front of a [`super::Registry`].
//!
//! It forces `Connection: close` on every request, so each connection carries
//! exactly one request whose head it can read, rewrite or refuse; everything
//! else (bodies, responses) is copied through byte for byte. The `Host` header
//! is kept, so the registry's `Location` URLs point back at the proxy. docker
//! pushes to `127.0.0.1:<proxy port>/…` as to any loopback (insecure) registry.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// At most this many connections are handled at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 32;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// One fault. `path` is the repository path (`acme/api`), `tag` a reference.
#[derive(Clone, Debug)]
pub enum ProxyRule {
    /// GET/HEAD of `/v2/<path>/manifests/<tag>` is served as `<instead>`: the
    /// registry answers with another manifest (another digest) than was pushed.
    ServeOtherReference {
        path: String,
        tag: String,
        instead: String,
    },
    /// PUT of `/v2/<path>/manifests/<tag>` is answered `500` (body drained,
    /// nothing forwarded): that tag's push fails, the others go through.
    FailManifestPut { path: String, tag: String },
}

enum Action {
    Forward(String),
    Fail500,
}

impl ProxyRule {
    fn manifest_target(path: &str, tag: &str) -> String {
        format!("/v2/{path}/manifests/{tag}")
    }

    fn action(rules: &[ProxyRule], method: &str, target: &str) -> Action {
        let bare = target.split('?').next().unwrap_or(target);
        for rule in rules {
            match rule {
                ProxyRule::ServeOtherReference { path, tag, instead }
                    if matches!(method, "GET" | "HEAD")
                        && bare == Self::manifest_target(path, tag) =>
                {
                    return Action::Forward(Self::manifest_target(path, instead));
                }
                ProxyRule::FailManifestPut { path, tag }
                    if method == "PUT" && bare == Self::manifest_target(path, tag) =>
                {
                    return Action::Fail500;
                }
                _ => {}
            }
        }
        Action::Forward(target.to_owned())
    }
}

/// A counting semaphore: bounds the handler threads.
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= MAX_CONNECTIONS {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
    }

    fn release(&self) {
        *self.used.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.freed.notify_one();
    }
}

pub struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listen on a free loopback port and forward to `127.0.0.1:<upstream_port>`.
    pub fn start(upstream_port: u16, rules: Vec<ProxyRule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(rules);
        let slots = Arc::new(Slots {
            used: Mutex::new(0),
            freed: Condvar::new(),
        });
        let acceptor = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    slots.acquire();
                    let (rules, seen, slots) = (rules.clone(), seen.clone(), slots.clone());
                    std::thread::spawn(move || {
                        let _ = handle(client, upstream_port, &rules, &seen);
                        slots.release();
                    });
                }
            })
        };
        Proxy {
            port,
            stop,
            seen,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The repository name docker uses through the proxy: `127.0.0.1:<proxy port>/<path>`.
    pub fn repo(&self, path: &str) -> String {
        format!("127.0.0.1:{}/{path}", self.port)
    }

    /// Every request line seen, in order, as `METHOD target` plus
    /// ` → rewritten` or ` → 500 (injected)` when a rule applied.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Read up to the end of the request head; returns (head, bytes read past it).
fn read_head(stream: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("request head over 64 KiB"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn handle(
    mut client: TcpStream,
    upstream_port: u16,
    rules: &[ProxyRule],
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    upstream.set_write_timeout(Some(IO_TIMEOUT))?;
    let log = |line: String| seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);

    let mut first = [0u8; 1];
    if client.peek(&mut first)? == 0 {
        return Ok(());
    }
    if first[0] == 0x16 {
        // A TLS ClientHello: docker tries https first even for an insecure
        // registry. Pass it through untouched; the registry's plain-HTTP
        // answer makes docker fall back to http, as without the proxy.
        log("(TLS handshake, passed through)".to_owned());
        return tunnel(client, upstream, &[]);
    }

    let (head, rest) = read_head(&mut client)?;
    let mut lines = head.trim_end_matches("\r\n").split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    let headers: Vec<&str> = lines
        .filter(|l| {
            let name = l
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            !matches!(
                name.as_str(),
                "connection" | "keep-alive" | "proxy-connection"
            )
        })
        .collect();

    let target = match ProxyRule::action(rules, method, target) {
        Action::Fail500 => {
            log(format!("{method} {target} → 500 (injected)"));
            drain_body(&mut client, &headers, rest.len())?;
            let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected by the test proxy","detail":null}]}"#;
            write!(
                client,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            client.flush()?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Action::Forward(new) if new != target => {
            log(format!("{method} {target} → {new}"));
            new
        }
        Action::Forward(same) => {
            log(format!("{method} {same}"));
            same
        }
    };

    let mut new_head = format!("{method} {target} {version}\r\n");
    for h in &headers {
        new_head.push_str(h);
        new_head.push_str("\r\n");
    }
    new_head.push_str("Connection: close\r\n\r\n");
    let mut initial = new_head.into_bytes();
    initial.extend_from_slice(&rest);
    tunnel(client, upstream, &initial)
}

/// Send `initial` upstream, then copy both ways until the upstream closes.
fn tunnel(mut client: TcpStream, mut upstream: TcpStream, initial: &[u8]) -> io::Result<()> {
    upstream.write_all(initial)?;
    // client → upstream on its own thread (request bodies, TLS records).
    let mut from_client = client.try_clone()?;
    let mut to_upstream = upstream.try_clone()?;
    let forward = std::thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    // upstream → client until the upstream closes (we asked for Connection: close).
    let result = io::copy(&mut upstream, &mut client).map(|_| ());
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = forward.join();
    result
}

/// Read and discard the rest of a `Content-Length` body, so that the client is
/// not reset mid-write and sees the injected response.
fn drain_body(client: &mut TcpStream, headers: &[&str], already: usize) -> io::Result<()> {
    let length: usize = headers
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let remaining = length.saturating_sub(already) as u64;
    io::copy(&mut Read::by_ref(client).take(remaining), &mut io::sink())?;
    Ok(())
}
