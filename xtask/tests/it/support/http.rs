//! A minimal HTTP/1.1 client over `std::net`, independent of the code under
//! test (xtask has its own): plain HTTP to loopback only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET url` → (status, body). Panics only on a malformed URL; a connection
/// error is status 0 with the error as the body, so it can be polled.
pub fn http_get(url: &str) -> (u16, String) {
    match http_request("GET", url, &[]) {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, e),
    }
}

/// One request with `Connection: close`; 10 s timeouts.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not an http:// URL"));
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let timeout = Duration::from_secs(10);
    let mut stream =
        TcpStream::connect(authority).map_err(|e| format!("connect {authority}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: xtask-tests\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("write to {authority}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {authority}: {e}"))?;
    parse(&raw, method == "HEAD").ok_or_else(|| format!("malformed HTTP response from {url}"))
}

fn parse(raw: &[u8], head_only: bool) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        String::new()
    } else if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}
