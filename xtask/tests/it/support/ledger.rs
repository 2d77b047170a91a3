//! Synthetic ledgers: lines shaped exactly like the ones the engine writes
//! (docs/log-schema.md), with the times a test chooses, for the edge cases a
//! real run cannot produce on demand (a clock going backwards, a torn line).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time")
        .format(&Rfc3339)
        .expect("formats")
}

pub fn unix(rfc3339: &str) -> i64 {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .unwrap_or_else(|e| panic!("`{rfc3339}` is not RFC 3339: {e}"))
        .unix_timestamp()
}

/// One release at one status.
pub struct Line<'a> {
    pub record: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub sha: &'a str,
    pub previous_sha: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub started: i64,
    pub at: i64,
    pub repository: &'a str,
}

impl Line<'_> {
    pub fn json(&self) -> Value {
        let mut v = json!({
            "record": self.record,
            "id": self.id,
            "status": self.status,
            "environment": "staging",
            "target": "docker",
            "image_sha": self.sha,
            "image_digest": format!("sha256:{}", "ab".repeat(32)),
            "repository": self.repository,
            "image_ref": format!("{}:{}@sha256:{}", self.repository, self.sha, "ab".repeat(32)),
            "previous_sha": self.previous_sha,
            "previous_release": null,
            "signature_status": "unverified",
            "signature_reason": "cosign not found",
            "initiated_by": "tests",
            "deployment_ref": null,
            "url": null,
            "config": null,
            "verified": {"health": self.status == "complete", "sha": self.status == "complete"},
            "started_at": rfc3339(self.started),
            "duration_sec": (self.at - self.started) as f64,
            "at": rfc3339(self.at),
        });
        if self.record == "rollback" {
            v["new_sha"] = json!(self.sha);
            v["reason"] = json!(self.reason.unwrap_or("manual"));
        }
        v
    }
}

/// Append lines (each a JSON object, or raw text for a torn one) to the
/// ledger of staging under `state`.
pub fn append(state: &Path, lines: &[Result<Value, &str>]) {
    let dir = state.join("ledger");
    std::fs::create_dir_all(&dir).expect("ledger dir");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("staging.jsonl"))
        .expect("open ledger");
    for line in lines {
        match line {
            Ok(v) => writeln!(file, "{v}"),
            Err(raw) => writeln!(file, "{raw}"),
        }
        .expect("write ledger");
    }
}
