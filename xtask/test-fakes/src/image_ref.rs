//! Image references parsed like go-containerregistry `pkg/name`
//! (google/go-containerregistry pkg/name/{ref.go,digest.go,tag.go,repository.go,registry.go}),
//! which is what cosign uses (`name.ParseReference` in sigstore/cosign
//! cmd/cosign/cli/verify/verify.go).

const DEFAULT_REGISTRY: &str = "index.docker.io";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    /// Repository path inside the registry, with Docker Hub's implicit `library/`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: Option<String>,
}

fn err(s: &str) -> String {
    format!("could not parse reference: {s}")
}

fn is_registry(part: &str) -> bool {
    part.contains('.') || part.contains(':') || part == "localhost"
}

fn valid_chars(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.chars().all(allowed)
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        let (base, digest) = match s.split_once('@') {
            Some((b, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| err(s))?;
                if hex.len() != 64 || !valid_chars(hex, |c| matches!(c, '0'..='9' | 'a'..='f')) {
                    return Err(err(s));
                }
                (b, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is the part after the last ':' that follows the last '/'.
        let last_slash = base.rfind('/').map_or(0, |i| i + 1);
        let (repo_part, tag) = match base[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&base[..at], Some(base[at + 1..].to_string()))
            }
            None => (base, None),
        };
        if let Some(t) = &tag {
            let ok_first = t
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_first
                || t.len() > 128
                || !valid_chars(t, |c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
                })
            {
                return Err(err(s));
            }
        }
        let (registry, repo) = match repo_part.split_once('/') {
            Some((first, rest)) if is_registry(first) => (first.to_string(), rest.to_string()),
            _ => (DEFAULT_REGISTRY.to_string(), repo_part.to_string()),
        };
        if registry.is_empty()
            || !valid_chars(&registry, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
            })
        {
            return Err(err(s));
        }
        // go-containerregistry: repository is 2..=255 of [a-z0-9_-./].
        if repo.len() < 2
            || repo.len() > 255
            || !valid_chars(&repo, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | '/')
            })
            || repo.split('/').any(str::is_empty)
        {
            return Err(err(s));
        }
        let repository = if registry == DEFAULT_REGISTRY && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository` (go-containerregistry `Repository.Name()`).
    pub fn context_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// go-containerregistry `Reference.Name()`: a digest reference drops its tag.
    pub fn name(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.context_name()),
            (None, Some(t)) => format!("{}:{t}", self.context_name()),
            (None, None) => format!("{}:latest", self.context_name()),
        }
    }

    /// go-containerregistry `Registry.Scheme()`: plain HTTP for loopback names.
    pub fn scheme(&self) -> &'static str {
        let host = self.registry.split(':').next().unwrap_or("");
        if host == "localhost"
            || host.starts_with("127.")
            || self.registry.starts_with("[::1]")
            || host.ends_with(".local")
            || host.ends_with(".localhost")
        {
            "http"
        } else {
            "https"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_digest_pinned_with_tag() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/api:abc@sha256:{HEX}")).expect("valid");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "api");
        assert_eq!(r.tag.as_deref(), Some("abc"));
        assert_eq!(r.name(), format!("127.0.0.1:5000/api@sha256:{HEX}"));
        assert_eq!(r.scheme(), "http");
    }

    #[test]
    fn docker_hub_gets_library() {
        let r = ImageRef::parse("ubuntu:22.04").expect("valid");
        assert_eq!(r.context_name(), "index.docker.io/library/ubuntu");
        assert_eq!(r.scheme(), "https");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPPER/case",
            "a:b:c",
            "repo@sha256:abc",
            "repo@md5:0000",
            "re po",
            "x//y",
            "repo:-tag",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
