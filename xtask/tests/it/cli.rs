//! The CLI as a careless operator meets it: output piped into `head`, a SHA
//! read from a file with its line ending.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use crate::support::*;

/// A ledger of `n` complete staging deploys, one JSON line each.
fn ledger_of(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let sha = format!("{i:040x}");
        let line = serde_json::json!({
            "record": "deploy",
            "id": format!("r{i}"),
            "status": "complete",
            "environment": "staging",
            "target": "docker",
            "image_sha": sha,
            "image_digest": format!("sha256:{}", "ab".repeat(32)),
            "repository": "localhost:5000/shipyard/api-staging",
            "image_ref": format!("localhost:5000/shipyard/api-staging:{sha}"),
            "previous_sha": null,
            "previous_release": null,
            "signature_status": "unverified",
            "signature_reason": "cosign not found",
            "initiated_by": "ci",
            "deployment_ref": null,
            "url": null,
            "config": null,
            "verified": {"health": true, "sha": true},
            "started_at": "2026-11-23T10:00:00Z",
            "duration_sec": 0.5,
            "at": "2026-11-23T10:00:01Z",
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

/// `cargo xtask history --env staging | head -1`: the reader leaves after
/// one line; xtask's next write meets a closed pipe (EPIPE, since Rust
/// ignores SIGPIPE). That is the reader's choice, not an error: exit 0, no
/// panic, no error line.
#[test]
fn history_into_a_pipe_closed_after_one_line_exits_zero() {
    let dir = TempDir::new("history-pipe");
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("ledger")).expect("ledger dir");
    // Far more than a pipe buffer (64 KiB), so xtask is still writing when
    // the reader leaves.
    std::fs::write(state.join("ledger/staging.jsonl"), ledger_of(3000)).expect("ledger");
    for json in [false, true] {
        let mut args = vec!["history", "--env", "staging"];
        if json {
            args.push("--json");
        }
        let mut child = Xtask::at(dir.path(), &args)
            .env("XTASK_STATE_DIR", &state)
            .spawn();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("read one line");
        drop(stdout); // `head -1` exits
        let status = poll_until(Duration::from_secs(30), || {
            child.try_wait().expect("try_wait")
        });
        let Some(status) = status else {
            let _ = child.kill();
            panic!("xtask {args:?} still runs 30 s after its reader left");
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        assert!(
            first.contains(&format!("{:040x}", 2999)[..12]),
            "newest first: {first}"
        );
        assert_eq!(status.code(), Some(0), "{args:?}: {status}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

/// A SHA read from a file keeps its line ending (`$(…)` strips `\n` but not
/// the `\r` of a Windows file; a workflow output or `xargs` can keep both).
/// Refused before anything runs, in one line that names what to strip.
#[test]
fn a_sha_with_its_line_ending_is_refused_naming_it() {
    let dir = TempDir::new("sha-newline");
    let sha = "0123456789abcdef0123456789abcdef01234567";
    for (input, named) in [
        (format!("{sha}\n"), "trailing newline"),
        (format!("{sha}\r"), "trailing carriage return"),
        (format!("{sha}\r\n"), "trailing Windows line ending"),
    ] {
        let run = Xtask::at(dir.path(), &["deploy", &input, "--env", "staging"])
            .env("XTASK_STATE_DIR", dir.join("state"))
            .run();
        run.expect_code(2);
        let line = run.single_error();
        assert!(
            line.contains(named) && line.contains("strip it") && line.contains(sha),
            "{input:?}: {line}"
        );
        assert!(
            !run.stderr.contains('\r'),
            "no raw CR echoed: {:?}",
            run.stderr
        );
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{:?}", run.stderr);
        assert!(!dir.join("state").exists(), "nothing ran");
    }
}
