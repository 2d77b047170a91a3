//! A small client for the OCI distribution API (distribution/distribution
//! `docs/spec/api.md`, the "Docker Registry HTTP API V2"), over plain HTTP/1.1
//! to a loopback registry: what the fake cosign needs to read and write
//! signatures and attestations where the real one puts them.
//!
//! - manifests: `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`; a GET
//!   or HEAD without a full Accept header makes distribution 2.8 answer 404
//!   for OCI manifests, so [`MANIFEST_ACCEPT`] is always sent.
//! - blobs: `GET /v2/<name>/blobs/<digest>`; uploads as `POST
//!   /v2/<name>/blobs/uploads/` (202 + `Location`) then `PUT
//!   <location>&digest=<digest>` with the bytes (201).
//!
//! Only `http://` to 127.0.0.0/8, `localhost` or `[::1]`: the only
//! registries the tests run (go-containerregistry `name.Registry.Scheme()`
//! picks plain HTTP for exactly those names too).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

/// A manifest as the registry serves it.
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

pub struct Registry {
    /// `host:port`.
    host: String,
}

impl Registry {
    /// The registry of an image reference's `registry` part; loopback only.
    pub fn new(host: &str) -> Result<Registry, String> {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = name == "localhost" || name.starts_with("127.") || name == "[::1]";
        if !loopback {
            return Err(format!(
                "fake cosign: only a loopback registry can be reached from the tests, not {host}"
            ));
        }
        Ok(Registry {
            host: host.to_owned(),
        })
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        let url = format!("http://{}{path}", self.host);
        let mut stream =
            TcpStream::connect(&self.host).map_err(|e| format!("{method} {url}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .map_err(|e| format!("{method} {url}: {e}"))?;
        parse_response(&raw).map_err(|e| format!("{method} {url}: {e}"))
    }

    /// The manifest at `reference` (tag or digest), `None` on 404.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Manifest>, String> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self.request("GET", &path, &[("Accept", MANIFEST_ACCEPT)], b"")?;
        match r.status {
            200 => Ok(Some(Manifest {
                digest: r
                    .header("Docker-Content-Digest")
                    .map_or_else(|| sha256_digest(&r.body), str::to_owned),
                media_type: r.header("Content-Type").unwrap_or(OCI_MANIFEST).to_owned(),
                bytes: r.body,
            })),
            404 => Ok(None),
            s => Err(self.unexpected("GET", &path, s, &r)),
        }
    }

    pub fn blob(&self, repo: &str, digest: &str) -> Result<Option<Vec<u8>>, String> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let r = self.request("GET", &path, &[], b"")?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            // distribution redirects to storage only for some drivers; the
            // filesystem one serves the bytes itself.
            s => Err(self.unexpected("GET", &path, s, &r)),
        }
    }

    /// Upload `bytes` as a blob (skipped when the registry has it); its digest.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, String> {
        let digest = sha256_digest(bytes);
        let exists = format!("/v2/{repo}/blobs/{digest}");
        if self.request("HEAD", &exists, &[], b"")?.status == 200 {
            return Ok(digest);
        }
        let start = format!("/v2/{repo}/blobs/uploads/");
        let r = self.request("POST", &start, &[], b"")?;
        if r.status != 202 {
            return Err(self.unexpected("POST", &start, r.status, &r));
        }
        let location = r
            .header("Location")
            .ok_or_else(|| format!("POST {start}: no Location header"))?;
        // Absolute (`http://host/v2/…`) or relative: keep the path and query.
        let path = match location.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_owned(),
            None => location.to_owned(),
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let put = format!("{path}{sep}digest={digest}");
        let r = self.request(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )?;
        if r.status != 201 {
            return Err(self.unexpected("PUT", &put, r.status, &r));
        }
        Ok(digest)
    }

    /// PUT a manifest under `reference` (a tag); its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self.request("PUT", &path, &[("Content-Type", media_type)], bytes)?;
        if r.status != 201 {
            return Err(self.unexpected("PUT", &path, r.status, &r));
        }
        Ok(r.header("Docker-Content-Digest")
            .map_or_else(|| sha256_digest(bytes), str::to_owned))
    }

    /// DELETE a manifest by digest (removes every tag on it).
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), String> {
        let path = format!("/v2/{repo}/manifests/{digest}");
        let r = self.request("DELETE", &path, &[], b"")?;
        match r.status {
            202 | 200 => Ok(()),
            s => Err(self.unexpected("DELETE", &path, s, &r)),
        }
    }

    fn unexpected(&self, method: &str, path: &str, status: u16, r: &Response) -> String {
        format!(
            "{method} http://{}{path}: unexpected status code {status}: {}",
            self.host,
            r.text()
        )
    }
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header in the answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_answers() {
        let r =
            parse_response(b"HTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nok")
                .expect("parses");
        assert_eq!(
            (r.status, r.header("location"), &r.body[..]),
            (201, Some("/x"), &b"ok"[..])
        );
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn only_loopback_registries() {
        assert!(Registry::new("127.0.0.1:5000").is_ok());
        assert!(Registry::new("localhost:5000").is_ok());
        assert!(Registry::new("ghcr.io").is_err());
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
