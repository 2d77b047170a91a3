//! A deliberately tiny HTTP/1.1 GET over `std::net`, for plain-HTTP endpoints
//! on reachable hosts: the service's `/health` and `/version` behind a target,
//! and the local registry's `/v2/` ping. Not a general client: no TLS, no
//! redirects. (Remote registries are read through `docker manifest inspect`,
//! which has docker's TLS and credentials.)

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `http://host[:port]/path` → (host:port, path).
pub fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("`{url}` is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("`{url}` has no host");
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

pub fn get(url: &str, timeout: Duration) -> anyhow::Result<Response> {
    let (authority, path) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let host = authority.strip_suffix(":80").unwrap_or(&authority);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xtask\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading from {authority}"))?;
    parse_response(&raw).with_context(|| format!("the answer of {url}"))
}

/// The head is parsed as bytes and the body de-chunked as bytes; the body is
/// decoded once at the end (lossily: a service that sends invalid UTF-8 gets
/// U+FFFD in its place, never a panic). A body is what `Content-Length` says,
/// else everything up to the close (we ask for `Connection: close`).
fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let split = find(raw, b"\r\n\r\n").context("malformed HTTP response: no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed HTTP status line `{status_line}`"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = Some(
                value
                    .parse::<usize>()
                    .with_context(|| format!("malformed Content-Length `{value}`"))?,
            );
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(length) = length {
        body.get(..length)
            .with_context(|| {
                format!(
                    "the body ended after {} of its {length} bytes (Content-Length)",
                    body.len()
                )
            })?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `Transfer-Encoding: chunked` (RFC 9112 §7.1): `<hex size>[;ext]\r\n<data>\r\n`
/// … `0\r\n`, trailers ignored. A body cut short is an error, not a
/// silently shorter answer.
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").context("the chunked body ended before its last chunk")?;
        let size_line = String::from_utf8_lossy(&rest[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("malformed chunk size line `{size_line}`"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let data = rest.get(..size).with_context(|| {
            format!(
                "a chunk of {size} bytes ended after {} (truncated chunked body)",
                rest.len()
            )
        })?;
        out.extend_from_slice(data);
        rest = rest[size..]
            .strip_prefix(b"\r\n")
            .context("a chunk is not followed by CRLF (truncated or malformed chunked body)")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/health").expect("ok"),
            ("127.0.0.1:8080".into(), "/health".into())
        );
        assert_eq!(
            split_url("http://example.org").expect("ok"),
            ("example.org:80".into(), "/".into())
        );
        assert!(split_url("https://example.org").is_err());
    }

    #[test]
    fn reads_plain_and_chunked_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").expect("ok");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("ok");
        assert_eq!((r.status, r.body.as_str()), (503, "abcde"));
    }

    fn chunked(body: &[u8]) -> anyhow::Result<Response> {
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(body);
        parse_response(&raw)
    }

    #[test]
    fn a_character_split_across_two_chunks_comes_out_whole() {
        // "é" is C3 A9: one byte in each chunk.
        let r = chunked(b"2\r\n{\xC3\r\n2\r\n\xA9}\r\n0\r\n\r\n").expect("ok");
        assert_eq!(r.body, "{é}");
    }

    #[test]
    fn invalid_utf8_in_a_chunk_is_replaced_not_a_panic() {
        let r = chunked(b"3\r\na\xFFb\r\n0\r\n\r\n").expect("ok");
        assert_eq!(r.body, "a\u{fffd}b");
        let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\n\xC3").expect("ok");
        assert_eq!(r.body, "\u{fffd}");
    }

    #[test]
    fn chunk_extensions_and_trailers_are_ignored() {
        let r = chunked(b"3;ext=1\r\nabc\r\n1 ; name=\"v\"\r\nd\r\n0\r\nX-Trailer: t\r\n\r\n")
            .expect("ok");
        assert_eq!(r.body, "abcd");
    }

    #[test]
    fn a_truncated_chunked_body_is_an_error() {
        for cut in [
            &b"5\r\nab"[..],
            b"2\r\nab",
            b"2\r\nab\r\n",
            b"zz\r\nab\r\n0\r\n\r\n",
        ] {
            let err = chunked(cut).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("chunk") && !e.contains('\n')),
                "{:?}: {err:?}",
                String::from_utf8_lossy(cut)
            );
        }
    }

    #[test]
    fn a_body_is_content_length_long_else_up_to_the_close() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\n")
            .expect("ok");
        assert_eq!(r.body, "all of it\n");
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcdef").expect("ok");
        assert_eq!(r.body, "abc");
        let err = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
            .err()
            .expect("short")
            .to_string();
        assert!(err.contains("3 of its 9 bytes"), "{err}");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3").is_err());
    }
}
