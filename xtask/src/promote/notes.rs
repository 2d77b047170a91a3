//! Release notes from commit subjects: grouped by conventional-commit type
//! (`feat(api)!: …`) when any subject follows it, else one list. No I/O.

use super::git::Commit;

/// Section titles, in the order they are printed.
const SECTIONS: &[(&str, &str)] = &[
    ("feat", "Features"),
    ("fix", "Fixes"),
    ("perf", "Performance"),
    ("revert", "Reverts"),
    ("refactor", "Refactoring"),
    ("docs", "Documentation"),
    ("test", "Tests"),
    ("build", "Build"),
    ("ci", "CI"),
    ("chore", "Chores"),
    ("style", "Style"),
];

/// `type(scope)!: description` → (type, breaking, description); `None` for
/// a subject that does not follow the convention or names an unknown type.
fn conventional(subject: &str) -> Option<(&'static str, bool, &str)> {
    let (head, description) = subject.split_once(": ")?;
    let (head, breaking) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let kind = match head.split_once('(') {
        Some((kind, scope)) if scope.ends_with(')') && !scope.contains('(') => kind,
        Some(_) => return None,
        None => head,
    };
    let kind = kind.to_ascii_lowercase();
    let (kind, _) = SECTIONS.iter().find(|(k, _)| *k == kind)?;
    let description = description.trim();
    (!description.is_empty()).then_some((*kind, breaking, description))
}

/// Markdown notes: a header naming the image, then the changes since
/// `previous` (a tag name, or `None` for the first release).
pub fn render(header: &str, previous: Option<&str>, commits: &[Commit]) -> String {
    let mut out = format!("{header}\n\n");
    match previous {
        Some(p) => out.push_str(&format!("Changes since {p}:\n")),
        None => out.push_str("Changes (first release):\n"),
    }
    if commits.is_empty() {
        out.push_str(
            "\n- no commits since then (the same code, released again under a new version)\n",
        );
        return out;
    }
    let line = |c: &Commit, text: &str, breaking: bool| {
        let short = c.sha.get(..12).unwrap_or(&c.sha);
        let mark = if breaking { "**breaking:** " } else { "" };
        format!("- {mark}{text} ({short})\n")
    };
    let parsed: Vec<_> = commits
        .iter()
        .map(|c| (c, conventional(&c.subject)))
        .collect();
    if parsed.iter().all(|(_, p)| p.is_none()) {
        out.push('\n');
        for (c, _) in &parsed {
            out.push_str(&line(c, &c.subject, false));
        }
        return out;
    }
    for (kind, title) in SECTIONS {
        let items: Vec<String> = parsed
            .iter()
            .filter_map(|(c, p)| match p {
                Some((k, breaking, d)) if k == kind => Some(line(c, d, *breaking)),
                _ => None,
            })
            .collect();
        if !items.is_empty() {
            out.push_str(&format!("\n## {title}\n\n{}", items.concat()));
        }
    }
    let other: Vec<String> = parsed
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(c, _)| line(c, &c.subject, false))
        .collect();
    if !other.is_empty() {
        out.push_str(&format!("\n## Other\n\n{}", other.concat()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(n: u8, subject: &str) -> Commit {
        Commit {
            sha: format!("{n:02x}").repeat(20),
            subject: subject.to_owned(),
        }
    }

    #[test]
    fn conventional_subjects_are_grouped_by_type_the_rest_under_other() {
        let notes = render(
            "# v1.2.0",
            Some("v1.1.0"),
            &[
                commit(1, "fix(api): health answers during shutdown"),
                commit(2, "feat!: /version reports the build time"),
                commit(3, "Merge-free housekeeping"),
                commit(4, "feat(xtask): release task"),
            ],
        );
        assert_eq!(
            notes,
            "# v1.2.0\n\nChanges since v1.1.0:\n\
             \n## Features\n\n- **breaking:** /version reports the build time (020202020202)\n- release task (040404040404)\n\
             \n## Fixes\n\n- health answers during shutdown (010101010101)\n\
             \n## Other\n\n- Merge-free housekeeping (030303030303)\n"
        );
    }

    #[test]
    fn without_any_conventional_subject_it_is_one_list() {
        let notes = render("# v0.1.0", None, &[commit(1, "Add x"), commit(2, "wip: y")]);
        assert_eq!(
            notes,
            "# v0.1.0\n\nChanges (first release):\n\n- Add x (010101010101)\n- wip: y (020202020202)\n"
        );
    }

    #[test]
    fn what_is_not_conventional() {
        for s in [
            "feat:no space",
            "feat(: x",
            "unknown: x",
            "feat: ",
            "feat(a)(b): x",
        ] {
            assert_eq!(conventional(s), None, "{s}");
        }
        assert_eq!(conventional("FIX(x)!: y"), Some(("fix", true, "y")));
    }
}
