//! Command line: `api`, `api healthcheck [--url URL]`, `api --version`, `api --help`.
//! Hand-parsed: four shapes do not justify an argument parser in the shipped binary.

use std::ffi::OsString;

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server (no arguments).
    Serve,
    /// Check `/health` once; `None` means the default URL.
    Healthcheck {
        /// `--url URL`.
        url: Option<String>,
    },
    /// `--version` / `-V`.
    Version,
    /// `--help` / `-h`.
    Help,
}

/// Usage text for `--help` and for argument errors.
pub const USAGE: &str = "\
Usage:
  api                          serve HTTP (configured by API_* environment variables)
  api healthcheck [--url URL]  exit 0 when URL answers 200, else 1
                               (default http://127.0.0.1:${API_PORT:-8080}/health)
  api --version                print version, git SHA and build time
  api --help                   print this help

Environment:
  API_PORT                 port to listen on (default 8080)
  API_BIND                 IP address to listen on (default 0.0.0.0)
  API_LOG                  log filter: a level, then target=level pairs (default info)
  API_SHUTDOWN_GRACE_SECS  seconds in-flight requests get after SIGTERM/SIGINT (default 25)";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let args: Vec<String> = args
        .into_iter()
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| format!("argument {arg:?} is not UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => Ok(Command::Serve),
        ["--version" | "-V"] => Ok(Command::Version),
        ["--help" | "-h" | "help"] => Ok(Command::Help),
        ["healthcheck"] => Ok(Command::Healthcheck { url: None }),
        ["healthcheck", "--url", url] => Ok(Command::Healthcheck {
            url: Some((*url).to_owned()),
        }),
        ["healthcheck", rest @ ..] => {
            match rest.iter().find_map(|arg| arg.strip_prefix("--url=")) {
                Some(url) if rest.len() == 1 => Ok(Command::Healthcheck {
                    url: Some(url.to_owned()),
                }),
                _ => Err(format!("healthcheck takes only --url URL, got {rest:?}")),
            }
        }
        [other, ..] => Err(format!("unknown argument {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_each_shape() {
        assert_eq!(parse_strs(&[]), Ok(Command::Serve));
        assert_eq!(parse_strs(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_strs(&["-h"]), Ok(Command::Help));
        assert_eq!(
            parse_strs(&["healthcheck"]),
            Ok(Command::Healthcheck { url: None })
        );
        let url = Some("http://127.0.0.1:1/health".to_owned());
        assert_eq!(
            parse_strs(&["healthcheck", "--url", "http://127.0.0.1:1/health"]),
            Ok(Command::Healthcheck { url: url.clone() })
        );
        assert_eq!(
            parse_strs(&["healthcheck", "--url=http://127.0.0.1:1/health"]),
            Ok(Command::Healthcheck { url })
        );
    }

    #[test]
    fn rejects_the_rest() {
        assert!(parse_strs(&["serve"]).is_err());
        assert!(parse_strs(&["healthcheck", "--url"]).is_err());
        assert!(parse_strs(&["healthcheck", "--verbose"]).is_err());
        assert!(parse_strs(&["--version", "extra"]).is_err());
    }
}
