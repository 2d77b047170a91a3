//! State kept by the fakes in a directory named by an environment variable,
//! and the `calls.log` every invocation appends to.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state directory from `var`; the error text is what the fake prints.
pub fn dir_from_env(var: &str, tool: &str) -> Result<PathBuf, String> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            let dir = PathBuf::from(v);
            fs::create_dir_all(&dir)
                .map_err(|e| format!("fake {tool}: cannot create {var}={}: {e}", dir.display()))?;
            Ok(fs::canonicalize(&dir).unwrap_or(dir))
        }
        _ => Err(format!("fake {tool}: {var} is not set")),
    }
}

/// Appends one line (a JSON value) to `dir/file`.
pub fn append_line(dir: &Path, file: &str, line: &serde_json::Value) -> Result<(), String> {
    let path = dir.join(file);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    // One write call per line so concurrent appenders do not interleave.
    let text = format!("{line}\n");
    f.write_all(text.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Reads a JSON state file; a missing file is `default`.
pub fn read_json(path: &Path, default: serde_json::Value) -> Result<serde_json::Value, String> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("corrupt state file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default),
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

/// Writes a JSON state file atomically (temp file + rename).
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", path.display()))
}

/// FNV-1a 64: a stable, dependency-free fingerprint for names and versions
/// (not a security hash; the fakes only need equality).
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A 64-hex-character fingerprint (four chained FNV rounds), shaped like the
/// sha256 hex the real tools print.
pub fn hex64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    let mut seed = bytes.to_vec();
    for round in 0u8..4 {
        seed.push(round);
        out.push_str(&format!("{:016x}", fnv64(&seed)));
    }
    out
}
