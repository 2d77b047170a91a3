//! `Repository`: where images live, and which of them an environment accepts.

use std::fmt;
use std::str::FromStr;

use crate::model::sha::printable;

/// An image repository name as docker spells it: `[host[:port]/]path`, no tag,
/// no digest. Parsed with the grammar of distribution's `reference` package
/// (lowercase path components separated by `/`, each `[a-z0-9]+([._-][a-z0-9]+)*`).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Repository(String);

/// Which of the two configured repositories a value is. Production takes only
/// `Canonical`; a staging build can never be promoted by re-tagging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryKind {
    Canonical,
    Staging,
}

impl Repository {
    /// The registry host (with port) when the name has one, as docker decides:
    /// the first component is a host if it has a `.` or `:` or is `localhost`.
    pub fn host(&self) -> Option<&str> {
        let (first, _) = self.0.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }

    /// The path after the host, as used in `/v2/<path>/manifests/<ref>`.
    #[cfg(test)]
    pub fn path(&self) -> &str {
        match self.host() {
            Some(host) => &self.0[host.len() + 1..],
            None => &self.0,
        }
    }

    /// A registry on this machine: docker talks plain HTTP to it (127.0.0.0/8
    /// is insecure by default) and so must `docker manifest inspect`.
    pub fn is_loopback(&self) -> bool {
        self.host().is_some_and(|h| {
            let name = h.rsplit_once(':').map_or(h, |(name, _)| name);
            name == "localhost" || name.starts_with("127.") || name == "[::1]"
        })
    }
}

impl FromStr for Repository {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "`{}` is not an image repository ({why}): expected `host[:port]/path/name`, e.g. `ghcr.io/acme/api` or `localhost:5000/acme/api`, with no tag or digest",
                printable(s)
            )
        };
        if s.is_empty() || s.len() > 255 {
            return Err(bad("empty or longer than 255 characters"));
        }
        if s.contains('@') {
            return Err(bad("it has a digest"));
        }
        let mut parts = s.split('/');
        let first = parts.next().unwrap_or_default();
        let first_is_host =
            s.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
        if first_is_host {
            let (name, port) = match first.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (first, None),
            };
            let host_ok = !name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if !host_ok {
                return Err(bad("bad registry host"));
            }
            if let Some(port) = port
                && port.parse::<u16>().map_or(true, |p| p == 0)
            {
                return Err(bad("bad port or a tag"));
            }
        } else if !path_component_ok(first) {
            return Err(bad(if first.contains(':') {
                "it has a tag"
            } else {
                "bad path component"
            }));
        }
        let mut components = 0;
        for part in parts {
            if !path_component_ok(part) {
                return Err(bad(if part.contains(':') {
                    "it has a tag"
                } else {
                    "bad path component"
                }));
            }
            components += 1;
        }
        if first_is_host && components == 0 {
            return Err(bad("no path after the host"));
        }
        Ok(Repository(s.to_owned()))
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*` from distribution's reference grammar.
fn path_component_ok(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Repository({})", self.0)
    }
}

impl fmt::Display for RepositoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepositoryKind::Canonical => "canonical",
            RepositoryKind::Staging => "staging",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_registry_names() {
        for ok in [
            "ghcr.io/acme/api",
            "ghcr.io/acme/api-staging",
            "localhost:5000/shipyard/api",
            "127.0.0.1:41234/t/api",
            "docker.io/library/nginx",
            "acme/api",
            "a__b/c.d/e--f",
        ] {
            let repo: Repository = ok.parse().expect(ok);
            assert_eq!(repo.to_string(), ok);
        }
    }

    #[test]
    fn refuses_malformed_names_in_one_line() {
        for bad in [
            "",
            "ghcr.io/Acme/api",
            "ghcr.io/acme/api:latest",
            "ghcr.io/acme/api@sha256:00",
            "ghcr.io/",
            "ghcr.io/acme//api",
            "localhost:99999/api",
            "api:latest",
            "-acme/api",
            "acme/api-",
            "acme/a$(x)",
            "acme/api/../x",
            "acme api",
        ] {
            let err = bad.parse::<Repository>().expect_err(bad).to_string();
            assert!(err.contains("not an image repository"), "{bad}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn knows_host_path_and_loopback() {
        let r: Repository = "127.0.0.1:5000/t/api".parse().expect("valid");
        assert_eq!(r.host(), Some("127.0.0.1:5000"));
        assert_eq!(r.path(), "t/api");
        assert!(r.is_loopback());
        let r: Repository = "ghcr.io/acme/api".parse().expect("valid");
        assert!(!r.is_loopback());
        let r: Repository = "acme/api".parse().expect("valid");
        assert_eq!(r.host(), None);
        assert_eq!(r.path(), "acme/api");
    }
}
