//! The structured records every task ends with: one JSON object per record,
//! written as a file and, with `--json`, as the last line on stdout.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 UTC, second precision: `2026-11-23T10:00:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

pub fn from_unix(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs).map_or_else(|_| secs.to_string(), rfc3339)
}

/// Seconds with millisecond resolution, as a JSON number.
pub fn seconds(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Write `record` to `path` (pretty, with a trailing newline), creating folders.
pub fn write_file(path: &Path, record: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(record)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The record as one line on stdout (see [`print_text`] for a closed pipe).
pub fn print_line(record: &impl serde::Serialize) -> anyhow::Result<()> {
    print_text(serde_json::to_string(record)?)
}

/// A line on stdout. A reader that went away (`cargo xtask history | head -1`)
/// is not an error: Rust ignores SIGPIPE, so the write fails with EPIPE
/// (where `println!` would panic); the task goes on and exits 0, its output
/// simply unread.
pub fn print_text(line: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{line}").and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// GitHub step outputs (`$GITHUB_OUTPUT`) and job summary (`$GITHUB_STEP_SUMMARY`), when set.
pub fn github(outputs: &[(&str, &str)], summary: &str) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        for (k, v) in outputs {
            writeln!(file, "{k}={v}")?;
        }
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{summary}")?;
    }
    Ok(())
}
