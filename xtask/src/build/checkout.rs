//! The commit's tree written out as git stores it: `git ls-tree -r` names
//! every file, `git cat-file --batch` gives its bytes, and xtask writes
//! them. Nothing of git's checkout machinery runs, so nothing outside the
//! commit can change the bytes: no hook (`git worktree add` runs
//! `post-checkout`), no filter or attribute (a smudge filter set through
//! `.git/info/attributes` and `git config`, `ident`, `eol`,
//! `working-tree-encoding`: not even the commit's own `.gitattributes`), no
//! replace ref (`--no-replace-objects`). The user's repository is only
//! read: no worktree is registered in it.

use std::path::{Component, Path};

use anyhow::{Context, bail};

use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;

/// How the checkout was made, for the provenance.
pub const METHOD: &str = "git ls-tree -r + git cat-file --batch (--no-replace-objects, core.hooksPath=/dev/null): the commit's blobs as stored, written by xtask; no hook, filter, attribute or replace ref applies";

/// `git --no-replace-objects -c core.hooksPath=/dev/null -C <repo>`.
fn git(repo: &Path) -> Cmd {
    Cmd::new("git")
        .args([
            "--no-replace-objects",
            "-c",
            "core.hooksPath=/dev/null",
            "-C",
        ])
        .arg(repo.display().to_string())
}

/// `git ls-tree -r -z --full-tree <sha>`: the first command of a checkout.
pub fn list_cmd(repo: &Path, sha: &GitSha) -> Cmd {
    git(repo).args(["ls-tree", "-r", "-z", "--full-tree", sha.as_str()])
}

/// One entry of the commit's tree.
#[derive(Debug, PartialEq)]
struct Entry {
    mode: String,
    object: String,
    path: String,
}

/// `<mode> SP <type> SP <object> TAB <path> NUL`, per `git ls-tree -z`.
fn parse_listing(listing: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let text = std::str::from_utf8(listing)
        .context("git ls-tree printed a path that is not UTF-8: rename it")?;
    text.split('\0')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (meta, path) = line
                .split_once('\t')
                .with_context(|| format!("unreadable `git ls-tree` line `{line}`"))?;
            let mut parts = meta.split(' ');
            let (Some(mode), Some(kind), Some(object)) = (parts.next(), parts.next(), parts.next())
            else {
                bail!("unreadable `git ls-tree` line `{line}`");
            };
            if kind != "blob" {
                bail!(
                    "the commit has a {kind} at `{path}` (a submodule?): a clean build takes only the commit's own files; vendor it or drop it"
                );
            }
            let safe = Path::new(path)
                .components()
                .all(|c| matches!(c, Component::Normal(n) if n != ".git"));
            if !safe {
                bail!("the commit holds a path git should never write: `{path}`");
            }
            Ok(Entry {
                mode: mode.to_owned(),
                object: object.to_owned(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// Split `git cat-file --batch` output into each object's bytes, in order:
/// `<oid> SP <type> SP <size> LF <contents> LF`.
fn split_batch(mut out: &[u8], count: usize) -> anyhow::Result<Vec<&[u8]>> {
    let mut blobs = Vec::with_capacity(count);
    for _ in 0..count {
        let end = out
            .iter()
            .position(|&b| b == b'\n')
            .context("git cat-file --batch ended early")?;
        let header = std::str::from_utf8(&out[..end]).unwrap_or_default();
        let size: usize = match header.split(' ').collect::<Vec<_>>()[..] {
            [_, "blob", size] => size
                .parse()
                .context("git cat-file gave an unreadable size")?,
            _ => bail!("git cat-file --batch answered `{header}` for a blob of the commit"),
        };
        let body = out
            .get(end + 1..end + 1 + size)
            .context("git cat-file --batch ended inside a blob")?;
        blobs.push(body);
        out = out.get(end + 2 + size..).unwrap_or_default();
    }
    Ok(blobs)
}

/// Write the commit's tree into `dest` (which must not exist); returns how
/// many files were written.
pub fn export(repo: &Path, sha: &GitSha, dest: &Path) -> anyhow::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let listing = list_cmd(repo, sha).read_bytes(None)?;
    let entries = parse_listing(&listing)?;
    let input: String = entries.iter().map(|e| format!("{}\n", e.object)).collect();
    let out = git(repo)
        .args(["cat-file", "--batch"])
        .read_bytes(Some(input.into_bytes()))?;
    let blobs = split_batch(&out, entries.len())?;
    std::fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    for (entry, bytes) in entries.iter().zip(blobs) {
        let file = dest.join(&entry.path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let written = match entry.mode.as_str() {
            "120000" => {
                let target = std::str::from_utf8(bytes)
                    .with_context(|| format!("the symlink `{}` is not UTF-8", entry.path))?;
                std::os::unix::fs::symlink(target, &file)
            }
            mode => std::fs::write(&file, bytes).and_then(|()| {
                let bits = if mode == "100755" { 0o755 } else { 0o644 };
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(bits))
            }),
        };
        written.with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_tree_entries_are_read_and_unsafe_ones_refused() {
        let listing = b"100644 blob aaaa\tCargo.toml\x00100755 blob bbbb\tbench/run.sh\x00";
        let got = parse_listing(listing).expect("parses");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].mode, "100755");
        assert_eq!(got[1].path, "bench/run.sh");
        let sub = parse_listing(b"160000 commit cccc\tvendor/x\0").expect_err("submodule");
        assert!(sub.to_string().contains("vendor/x"), "{sub}");
        for bad in [
            &b"100644 blob a\t../x\0"[..],
            b"100644 blob a\tsub/.git/config\0",
        ] {
            assert!(parse_listing(bad).is_err());
        }
    }

    #[test]
    fn a_batch_is_split_into_exact_blob_bytes() {
        let out = b"aaaa blob 3\nab\n\nbbbb blob 0\n\n";
        let blobs = split_batch(out, 2).expect("splits");
        assert_eq!(blobs, [&b"ab\n"[..], b""]);
        assert!(split_batch(b"aaaa missing\n", 1).is_err());
        assert!(split_batch(b"aaaa blob 9\nab\n", 1).is_err());
    }
}
