//! A small backtracking matcher for the RE2 subset that identity regexps use
//! (`^ $ . * + ? {n,m} [...] [^...] ( | ) \d \w \s` and escaped literals).
//! cosign matches `--certificate-identity-regexp` with Go's
//! `regexp.MatchString` (unanchored) in sigstore/cosign pkg/cosign/verify.go;
//! this keeps the fake free of a regex dependency. Unsupported syntax is an
//! error, never a silent mismatch.

#[derive(Debug, Clone)]
enum Atom {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Group(Box<Alt>),
    Start,
    End,
}

#[derive(Debug, Clone)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

type Seq = Vec<Piece>;
type Alt = Vec<Seq>;

pub struct Regex {
    alt: Alt,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    src: &'a str,
}

fn class_escape(c: char) -> Option<(Vec<(char, char)>, bool)> {
    let digits = vec![('0', '9')];
    let word = vec![('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')];
    let space = vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
    match c {
        'd' => Some((digits, false)),
        'D' => Some((digits, true)),
        'w' => Some((word, false)),
        'W' => Some((word, true)),
        's' => Some((space, false)),
        'S' => Some((space, true)),
        _ => None,
    }
}

impl Parser<'_> {
    fn fail(&self, why: &str) -> String {
        format!("error parsing regexp: {why}: `{}`", self.src)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alt(&mut self) -> Result<Alt, String> {
        let mut alt = vec![self.seq()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alt.push(self.seq()?);
        }
        Ok(alt)
    }

    fn seq(&mut self) -> Result<Seq, String> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.pos += 1;
            let atom = match c {
                '(' => {
                    if self.peek() == Some('?') {
                        // Only the non-capturing form `(?:...)`.
                        if self.chars.get(self.pos + 1) == Some(&':') {
                            self.pos += 2;
                        } else {
                            return Err(self.fail("unsupported group flags"));
                        }
                    }
                    let inner = self.alt()?;
                    if self.peek() != Some(')') {
                        return Err(self.fail("missing closing )"));
                    }
                    self.pos += 1;
                    Atom::Group(Box::new(inner))
                }
                '.' => Atom::Any,
                '^' => Atom::Start,
                '$' => Atom::End,
                '[' => self.class()?,
                '\\' => {
                    let e = self.peek().ok_or_else(|| self.fail("trailing backslash"))?;
                    self.pos += 1;
                    match class_escape(e) {
                        Some((ranges, neg)) => Atom::Class(ranges, neg),
                        None if e.is_ascii_alphanumeric() => {
                            return Err(self.fail("unsupported escape"));
                        }
                        None => Atom::Char(e),
                    }
                }
                '*' | '+' | '?' | '{' => {
                    return Err(self.fail("missing argument to repetition operator"));
                }
                other => Atom::Char(other),
            };
            let (min, max) = self.repeat()?;
            seq.push(Piece { atom, min, max });
        }
        Ok(seq)
    }

    fn repeat(&mut self) -> Result<(usize, usize), String> {
        let r = match self.peek() {
            Some('*') => (0, usize::MAX),
            Some('+') => (1, usize::MAX),
            Some('?') => (0, 1),
            Some('{') => {
                let close = self.chars[self.pos..]
                    .iter()
                    .position(|c| *c == '}')
                    .ok_or_else(|| self.fail("missing }"))?;
                let body: String = self.chars[self.pos + 1..self.pos + close].iter().collect();
                let num = |s: &str| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| self.fail("bad repetition"))
                };
                let r = match body.split_once(',') {
                    None => {
                        let n = num(&body)?;
                        (n, n)
                    }
                    Some((a, "")) => (num(a)?, usize::MAX),
                    Some((a, b)) => (num(a)?, num(b)?),
                };
                self.pos += close;
                r
            }
            _ => return Ok((1, 1)),
        };
        self.pos += 1;
        if self.peek() == Some('?') {
            // Lazy and greedy match the same set of strings; MatchString only asks "any match".
            self.pos += 1;
        }
        Ok(r)
    }

    fn class(&mut self) -> Result<Atom, String> {
        let mut neg = false;
        if self.peek() == Some('^') {
            neg = true;
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or_else(|| self.fail("missing closing ]"))?;
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let e = self.peek().ok_or_else(|| self.fail("trailing backslash"))?;
                self.pos += 1;
                if let Some((r, false)) = class_escape(e) {
                    ranges.extend(r);
                    continue;
                }
                e
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']') {
                let hi = self.chars[self.pos + 1];
                self.pos += 2;
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Atom::Class(ranges, neg))
    }
}

impl Regex {
    pub fn new(src: &str) -> Result<Regex, String> {
        let mut p = Parser {
            chars: src.chars().collect(),
            pos: 0,
            src,
        };
        let alt = p.alt()?;
        if p.pos != p.chars.len() {
            return Err(p.fail("unexpected )"));
        }
        Ok(Regex { alt })
    }

    /// Go `regexp.MatchString`: true if the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        (0..=t.len()).any(|start| match_alt(&self.alt, &t, start, &mut |_| true))
    }
}

fn match_alt(alt: &Alt, t: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    alt.iter().any(|seq| match_seq(seq, t, i, k))
}

fn match_seq(seq: &[Piece], t: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(i),
        Some((piece, rest)) => match_piece(piece, 0, t, i, &mut |j| match_seq(rest, t, j, k)),
    }
}

fn match_piece(
    p: &Piece,
    count: usize,
    t: &[char],
    i: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    // Greedy: try one more repetition first, then stop if the minimum is met.
    if count < p.max {
        let more = match_atom(&p.atom, t, i, &mut |j| {
            // An empty repetition cannot make progress; do not loop on it.
            (j != i || count < p.min) && match_piece(p, count + 1, t, j, k)
        });
        if more {
            return true;
        }
    }
    count >= p.min && k(i)
}

fn match_atom(a: &Atom, t: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match a {
        Atom::Char(c) => t.get(i) == Some(c) && k(i + 1),
        Atom::Any => t.get(i).is_some_and(|c| *c != '\n') && k(i + 1),
        Atom::Class(ranges, neg) => {
            t.get(i)
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg)
                && k(i + 1)
        }
        Atom::Group(alt) => match_alt(alt, t, i, k),
        Atom::Start => i == 0 && k(i),
        Atom::End => i == t.len() && k(i),
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p).expect("valid pattern").is_match(s)
    }

    #[test]
    fn matches_like_go_match_string() {
        assert!(m(
            r"^https://github\.com/org/repo/.*$",
            "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main"
        ));
        assert!(!m(
            r"^https://github\.com/org/repo/.*$",
            "https://github.com/evil/repo/x"
        ));
        assert!(m("ci@example", "me-ci@example.com"));
        assert!(m(r"^(a|bc)+[0-9]{2,3}$", "abcbc123"));
        assert!(!m(r"^(a|bc)+[0-9]{2,3}$", "abcbc1"));
        assert!(m(r"^[^@]+@example\.com$", "x@example.com"));
        assert!(m("", "anything"));
        assert!(m("^(a*)*$", "aaaa"));
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["(", "a)", "*a", "[a", r"\p{L}", "(?i)a"] {
            assert!(Regex::new(bad).is_err(), "{bad}");
        }
    }
}
