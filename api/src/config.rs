//! Configuration: environment variables with the `API_` prefix, read once at start.
//!
//! | Variable                  | Default   | Meaning                                                        |
//! |---------------------------|-----------|----------------------------------------------------------------|
//! | `API_PORT`                | `8080`    | TCP port to listen on (`0` asks the kernel for a free one).    |
//! | `API_BIND`                | `0.0.0.0` | IP address to listen on (IPv4 or IPv6 literal, no host names). |
//! | `API_LOG`                 | `info`    | A level, then `target=level` pairs, e.g. `info,api=debug`.     |
//! | `API_SHUTDOWN_GRACE_SECS` | `25`      | Seconds in-flight requests get after SIGTERM/SIGINT (0-3600).  |
//!
//! Sample:
//!
//! ```sh
//! API_PORT=8080 API_BIND=0.0.0.0 API_LOG=info,api=debug API_SHUTDOWN_GRACE_SECS=25 api
//! ```
//!
//! A set-but-bad value (including an empty one) stops the start: `main` prints the
//! [`ConfigError`] as one line on stderr and exits with code 2 before binding anything.

use std::{
    ffi::OsString,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use tracing_subscriber::filter::Targets;

/// Longest accepted `API_SHUTDOWN_GRACE_SECS`: an hour, well past any orchestrator's kill timeout.
const MAX_GRACE_SECS: u64 = 3600;

/// Everything the service reads from its environment, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `API_BIND`: address to listen on.
    pub bind: IpAddr,
    /// `API_PORT`: port to listen on.
    pub port: u16,
    /// `API_LOG`: which log events are written.
    pub log: LogFilter,
    /// `API_SHUTDOWN_GRACE_SECS`: how long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            log: LogFilter("info".to_owned()),
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads variables through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            bind: read(
                &lookup,
                "API_BIND",
                "an IP address such as 0.0.0.0, 127.0.0.1 or ::",
                |v| v.parse().ok(),
            )?
            .unwrap_or(defaults.bind),
            port: read(
                &lookup,
                "API_PORT",
                "a TCP port number from 0 to 65535",
                |v| v.parse().ok(),
            )?
            .unwrap_or(defaults.port),
            log: read(
                &lookup,
                "API_LOG",
                "a log filter: a level and target=level pairs, such as info or info,api=debug",
                LogFilter::parse,
            )?
            .unwrap_or(defaults.log),
            shutdown_grace: read(
                &lookup,
                "API_SHUTDOWN_GRACE_SECS",
                "whole seconds from 0 to 3600",
                |v| {
                    v.parse()
                        .ok()
                        .filter(|secs| *secs <= MAX_GRACE_SECS)
                        .map(Duration::from_secs)
                },
            )?
            .unwrap_or(defaults.shutdown_grace),
        })
    }

    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// `None` when unset; the parsed value, or an error naming the variable, when set.
fn read<T>(
    lookup: &impl Fn(&str) -> Option<OsString>,
    variable: &'static str,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(raw) = lookup(variable) else {
        return Ok(None);
    };
    let bad = |value: String| ConfigError {
        variable,
        value,
        expected,
    };
    let text = raw
        .into_string()
        .map_err(|raw| bad(raw.to_string_lossy().into_owned()))?;
    parse(&text).map(Some).ok_or_else(|| bad(text))
}

/// A validated log filter: a default level and `target=level` pairs
/// (`tracing_subscriber`'s `Targets`, e.g. `info,api=debug`), kept as text
/// so `Config` compares by what was given. Not `EnvFilter`: its span and
/// field directives need the regex crates, 18% of the release build's
/// compile (72 → 59 unit-seconds) for a syntax nothing here uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    /// `None` for an empty or malformed directive.
    pub fn parse(directive: &str) -> Option<Self> {
        let valid = !directive.trim().is_empty() && directive.parse::<Targets>().is_ok();
        valid.then(|| Self(directive.to_owned()))
    }

    /// The filter, ready to install.
    pub fn to_targets(&self) -> Targets {
        self.0.parse().unwrap_or_default()
    }

    /// The directive as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set environment variable whose value is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name, e.g. `API_PORT`.
    pub variable: &'static str,
    /// The value found (lossy UTF-8).
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = config(&[]).expect("empty environment is valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.addr().to_string(), "0.0.0.0:8080");
        assert_eq!(config.shutdown_grace, Duration::from_secs(25));
        assert_eq!(config.log.as_str(), "info");
    }

    #[test]
    fn reads_every_variable() {
        let config = config(&[
            ("API_PORT", "9000"),
            ("API_BIND", "::1"),
            ("API_LOG", "warn,api=debug"),
            ("API_SHUTDOWN_GRACE_SECS", "3"),
        ])
        .expect("valid values");
        assert_eq!(config.addr().to_string(), "[::1]:9000");
        assert_eq!(config.log.as_str(), "warn,api=debug");
        assert_eq!(config.shutdown_grace, Duration::from_secs(3));
    }

    #[test]
    fn the_log_filter_takes_a_level_and_target_levels() {
        use tracing::Level;
        let filter = LogFilter::parse("warn,api::request=info")
            .expect("valid")
            .to_targets();
        assert!(filter.would_enable("api::request", &Level::INFO));
        assert!(!filter.would_enable("api::request", &Level::DEBUG));
        assert!(!filter.would_enable("api", &Level::INFO));
        assert!(filter.would_enable("hyper", &Level::WARN));
        assert!(!filter.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn names_the_variable_and_value_of_a_bad_setting() {
        for (variable, value) in [
            ("API_PORT", "http"),
            ("API_PORT", "65536"),
            ("API_PORT", "-1"),
            ("API_PORT", ""),
            ("API_BIND", "localhost"),
            ("API_BIND", "0.0.0.0:80"),
            ("API_LOG", "info,api=loud"),
            ("API_LOG", " "),
            ("API_SHUTDOWN_GRACE_SECS", "3601"),
            ("API_SHUTDOWN_GRACE_SECS", "1.5"),
        ] {
            let error = config(&[(variable, value)]).expect_err(value);
            assert_eq!((error.variable, error.value.as_str()), (variable, value));
            let line = error.to_string();
            assert!(
                line.starts_with(&format!("invalid {variable}={value:?}: expected ")),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
    }
}
