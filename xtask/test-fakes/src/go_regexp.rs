//! cosign's `--certificate-identity-regexp` and
//! `--certificate-oidc-issuer-regexp`, matched as cosign matches them: Go's
//! `regexp.Compile(pattern)` then `regex.MatchString(san)`, unanchored
//! (sigstore/cosign pkg/cosign/verify.go, `CheckCertificatePolicy`).
//!
//! `regex-lite` has the same RE2 syntax and semantics for what identity
//! patterns use: unanchored `is_match`, `^`/`$` at the ends of the text only
//! (no multi-line unless `(?m)`), `.` not matching `\n`, ASCII `\d \w \s`,
//! `(?i)`, `{n,m}`, classes. Where it is narrower than Go (no `\pL` Unicode
//! classes, no `\Q…\E`), the pattern is refused, never silently mismatched.

pub use regex_lite::Regex;

/// Compile like Go's `regexp.Compile`; the error starts as Go's does.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| {
        let why = e.to_string().replace('\n', " ");
        format!("error parsing regexp: {why}: `{pattern}`")
    })
}

#[cfg(test)]
mod tests {
    use super::compile;

    fn m(pattern: &str, text: &str) -> bool {
        compile(pattern).expect("valid pattern").is_match(text)
    }

    #[test]
    fn matches_like_go_match_string() {
        let ci = "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main";
        assert!(m(r"^https://github\.com/org/repo/.*$", ci));
        assert!(!m(
            r"^https://github\.com/org/repo/.*$",
            "https://github.com/evil/repo/x"
        ));
        // Unanchored, as MatchString: a pattern without ^…$ matches inside.
        assert!(m("ci@example", "me-ci@example.com"));
        assert!(m(r"github\.com/org/", ci));
        assert!(m(r"^(a|bc)+[0-9]{2,3}$", "abcbc123"));
        assert!(!m(r"^(a|bc)+[0-9]{2,3}$", "abcbc1"));
        assert!(m(r"^[^@]+@example\.com$", "x@example.com"));
        assert!(m("", "anything"));
        assert!(m("^(a*)*$", "aaaa"));
        // `$` is the end of the text, not before a trailing newline (Go and
        // RE2; Perl and PCRE would match).
        assert!(!m("main$", "refs/heads/main\n"));
        // `.` does not match a newline unless (?s).
        assert!(!m("^a.b$", "a\nb"));
        assert!(m("(?s)^a.b$", "a\nb"));
        assert!(m("(?i)^HTTPS://GITHUB", ci));
        // \d is ASCII only in Go: an Arabic-Indic digit is not one.
        assert!(!m(r"^\d$", "\u{0663}"));
    }

    #[test]
    fn refuses_what_go_refuses_or_it_cannot_match_like_go() {
        for bad in ["(", "a)", "*a", "[a", "a{2,1}", r"\p{Greek}", r"\Qa.b\E"] {
            let err = compile(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} compiled"));
            assert!(err.starts_with("error parsing regexp: "), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
