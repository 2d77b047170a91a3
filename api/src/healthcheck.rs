//! `api healthcheck [--url URL]`: the image's HEALTHCHECK. A `FROM scratch` image has
//! no curl, so this is a plain HTTP/1.1 GET over a std `TcpStream` with short timeouts.
//! Healthy means the status line says 200.

use std::{
    fmt,
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

/// Connect, write and read each get this long; a Docker HEALTHCHECK's own timeout is longer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// `http://127.0.0.1:${API_PORT:-8080}/health`.
pub fn default_url(api_port: Option<&str>) -> String {
    format!("http://127.0.0.1:{}/health", api_port.unwrap_or("8080"))
}

/// A `http://host:port/path` URL (no https: the check runs beside the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// Parses `http://host[:port][/path]`; port defaults to 80 and path to `/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("unsupported URL {url:?}: expected http://host:port/path"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("bad port {port:?} in URL {url:?}"))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("no host in URL {url:?}"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// The status code `target` answers a GET with.
pub fn status_of(target: &Target) -> io::Result<u16> {
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: api-healthcheck\r\nConnection: close\r\n\r\n",
        target.path, target.host, target.port
    )?;
    // At most 1 KiB of status line, so a misbehaving peer cannot make the check buffer forever.
    let mut status_line = String::new();
    BufReader::new(stream.take(1024)).read_line(&mut status_line)?;
    // "HTTP/1.1 200 OK"
    let mut parts = status_line.split_ascii_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|code| code.parse().ok()),
    ) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => Ok(code),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP status line: {status_line:?}"),
        )),
    }
}

/// Runs the check and prints one line; true when healthy.
pub fn run(url: &str) -> bool {
    let target = match Target::parse(url) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("healthcheck: {message}");
            return false;
        }
    };
    match status_of(&target) {
        Ok(200) => {
            println!("healthcheck: {target} answered 200");
            true
        }
        Ok(code) => {
            eprintln!("healthcheck: {target} answered {code}, expected 200");
            false
        }
        Err(error) => {
            eprintln!("healthcheck: {target}: {error}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let target = Target::parse("http://127.0.0.1:8080/health").expect("valid");
        assert_eq!(
            target,
            Target {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/health".into()
            }
        );
        let target = Target::parse("http://example.test").expect("valid");
        assert_eq!(target.to_string(), "http://example.test:80/");
        let target = Target::parse("http://[::1]:9000/health").expect("valid");
        assert_eq!(target.to_string(), "http://[::1]:9000/health");
        assert!(Target::parse("https://x/health").is_err());
        assert!(Target::parse("http://:80/").is_err());
        assert!(Target::parse("http://x:port/").is_err());
    }

    #[test]
    fn default_url_follows_api_port() {
        assert_eq!(default_url(None), "http://127.0.0.1:8080/health");
        assert_eq!(default_url(Some("9000")), "http://127.0.0.1:9000/health");
    }
}
