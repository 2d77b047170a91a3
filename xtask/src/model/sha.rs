//! `GitSha`: the only way a commit is named anywhere in the release flow.

use std::fmt;
use std::str::FromStr;

/// A full git commit SHA: exactly 40 lowercase hex characters.
///
/// Floating tags (`latest`, `v1.2`), short SHAs, uppercase, and anything with
/// shell or path characters are refused here, once, at the edge.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct GitSha(String);

impl GitSha {
    /// The 12-character short tag pushed beside the full one.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GitSha {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let trimmed = s.trim();
        if trimmed != s && is_sha(trimmed) {
            anyhow::bail!(
                "`{trimmed}` comes with {}: strip it (a SHA read from a file keeps the file's line ending; `$(git rev-parse HEAD)` or `tr -d '[:space:]'` gives the bare SHA)",
                describe_whitespace(s, trimmed)
            );
        }
        let shown = printable(s);
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                anyhow::bail!(
                    "`{shown}` has uppercase hex: git SHAs are lowercase, use `{}`",
                    s.to_ascii_lowercase()
                );
            }
            return Ok(GitSha(s.to_owned()));
        }
        if !s.is_empty() && s.len() < 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!(
                "`{shown}` is {} hex characters, a release is named by the full 40-character SHA: run `git rev-parse {shown}`",
                s.len()
            );
        }
        anyhow::bail!(
            "`{shown}` is not a git SHA: releases are named only by a full 40-character lowercase commit SHA (no floating tags like `latest`); run `git rev-parse HEAD`"
        )
    }
}

impl fmt::Display for GitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitSha({})", self.0)
    }
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Name the whitespace around a SHA, the way a user can find it.
fn describe_whitespace(s: &str, trimmed: &str) -> String {
    let (lead, trail) = s.split_once(trimmed).unwrap_or(("", ""));
    // (what it is, whether it is one thing: "a …")
    let name = |ws: &str| match ws {
        "\n" => ("newline (\\n)", true),
        "\r\n" => ("Windows line ending (\\r\\n)", true),
        "\r" => ("carriage return (\\r, from a Windows line ending)", true),
        ws if ws.contains(['\n', '\r']) => ("line breaks", false),
        _ => ("whitespace", false),
    };
    let one = |side: &str, ws: &str| match name(ws) {
        (what, true) => format!("a {side} {what}"),
        (what, false) => format!("{side} {what}"),
    };
    match (lead.is_empty(), trail.is_empty()) {
        (true, _) => one("trailing", trail),
        (false, true) => one("leading", lead),
        (false, false) => format!("leading {} and trailing {}", name(lead).0, name(trail).0),
    }
}

/// Echo user input back in an error without letting control characters or
/// a megabyte of junk through.
pub fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn accepts_full_lowercase_sha_and_shortens_to_twelve() {
        let sha: GitSha = SHA.parse().expect("valid");
        assert_eq!(sha.as_str(), SHA);
        assert_eq!(sha.short(), "0123456789ab");
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        let cases = [
            ("latest", "floating"),
            ("v1.2", "floating"),
            ("0123456789ab", "12 hex characters"),
            (&SHA[..39], "39 hex characters"),
            ("0123456789ABCDEF0123456789abcdef01234567", "uppercase"),
            ("$(touch /tmp/x)", "not a git SHA"),
            ("../x", "not a git SHA"),
            ("", "not a git SHA"),
            ("0123456789abcdef0123456789abcdef012345678", "not a git SHA"),
            ("0123456789abcdef0123456789abcdef0123456g", "not a git SHA"),
        ];
        for (input, why) in cases {
            let err = input.parse::<GitSha>().expect_err(input).to_string();
            assert!(err.contains(why), "{input}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn whitespace_around_a_sha_is_named_and_refused() {
        let cases = [
            (format!("{SHA}\n"), "a trailing newline (\\n)"),
            (
                format!("{SHA}\r\n"),
                "a trailing Windows line ending (\\r\\n)",
            ),
            (format!("{SHA}\r"), "a trailing carriage return"),
            (format!("{SHA} "), "comes with trailing whitespace"),
            (format!(" {SHA}"), "leading whitespace"),
            (
                format!("\t{SHA}\n"),
                "leading whitespace and trailing newline",
            ),
            (format!("{SHA}\n\n"), "trailing line breaks"),
        ];
        for (input, named) in cases {
            let err = input.parse::<GitSha>().expect_err(&input).to_string();
            assert!(err.contains(named), "{input:?}: {err}");
            assert!(err.contains(&format!("`{SHA}`")), "{input:?}: {err}");
            assert!(err.contains("strip it"), "{input:?}: {err}");
            assert!(!err.contains(['\n', '\r']), "one line: {err:?}");
        }
        // Whitespace around something that is not a SHA: the usual reason.
        let err = "latest\n"
            .parse::<GitSha>()
            .expect_err("latest")
            .to_string();
        assert!(err.contains("not a git SHA"), "{err}");
    }

    #[test]
    fn printable_hides_control_characters_and_truncates() {
        assert_eq!(printable("a\nb"), "a?b");
        assert_eq!(printable(&"x".repeat(100)).chars().count(), 81);
    }
}
