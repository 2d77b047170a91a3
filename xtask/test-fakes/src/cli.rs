//! A small pflag/cobra-style argument parser, so the fakes reject what the
//! real cobra CLIs reject, with the same words (spf13/pflag `flag.go`:
//! "unknown flag: --x", "unknown shorthand flag: 'x' in -x",
//! "flag needs an argument: --x"; spf13/cobra `command.go`: "unknown command").

use std::collections::BTreeMap;

/// One flag the fake accepts.
#[derive(Clone, Copy, Debug)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub takes_value: bool,
}

pub const fn value(long: &'static str) -> FlagSpec {
    FlagSpec {
        long,
        short: None,
        takes_value: true,
    }
}

pub const fn value_short(long: &'static str, short: char) -> FlagSpec {
    FlagSpec {
        long,
        short: Some(short),
        takes_value: true,
    }
}

pub const fn boolean(long: &'static str) -> FlagSpec {
    FlagSpec {
        long,
        short: None,
        takes_value: false,
    }
}

pub const fn boolean_short(long: &'static str, short: char) -> FlagSpec {
    FlagSpec {
        long,
        short: Some(short),
        takes_value: false,
    }
}

/// Flags and positional arguments, in the order given.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Long flag name -> values (booleans hold "true"/"false").
    pub flags: BTreeMap<String, Vec<String>>,
    /// Long flag names in the order they were first seen.
    pub order: Vec<String>,
    pub positionals: Vec<String>,
}

impl Parsed {
    /// The last value given for a flag (pflag: the last one wins).
    pub fn last(&self, long: &str) -> Option<&str> {
        self.flags
            .get(long)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn is_set(&self, long: &str) -> bool {
        self.flags.contains_key(long)
    }

    /// A boolean flag's value (absent = false).
    pub fn bool(&self, long: &str) -> bool {
        self.last(long) == Some("true")
    }
}

fn parse_bool(flag: &str, raw: &str) -> Result<String, String> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok("true".into()),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok("false".into()),
        _ => Err(format!(
            "invalid argument \"{raw}\" for \"{flag}\" flag: strconv.ParseBool: parsing \"{raw}\": invalid syntax"
        )),
    }
}

/// Parses `args` against `specs` the way pflag does (interspersed flags,
/// `--flag=value`, `--flag value`, `-f value`, `-fvalue`, `--` ends flags).
pub fn parse(args: &[String], specs: &[FlagSpec]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    let record = |out: &mut Parsed, long: &str, v: String| {
        if !out.flags.contains_key(long) {
            out.order.push(long.to_string());
        }
        out.flags.entry(long.to_string()).or_default().push(v);
    };
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            out.positionals.extend(args[i + 1..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(spec) = specs.iter().find(|s| s.long == name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            if spec.takes_value {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return Err(format!("flag needs an argument: --{name}")),
                        }
                    }
                };
                record(&mut out, spec.long, v);
            } else {
                let v = match inline {
                    Some(v) => parse_bool(&format!("--{name}"), &v)?,
                    None => "true".to_string(),
                };
                record(&mut out, spec.long, v);
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            let body: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < body.len() {
                let c = body[j];
                let Some(spec) = specs.iter().find(|s| s.short == Some(c)) else {
                    return Err(format!("unknown shorthand flag: '{c}' in {arg}"));
                };
                if spec.takes_value {
                    let rest: String = body[j + 1..].iter().collect();
                    let v = if let Some(r) = rest.strip_prefix('=') {
                        r.to_string()
                    } else if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return Err(format!("flag needs an argument: '{c}' in -{c}")),
                        }
                    };
                    record(&mut out, spec.long, v);
                    break;
                }
                let rest: String = body[j + 1..].iter().collect();
                if let Some(r) = rest.strip_prefix('=') {
                    let v = parse_bool(&format!("-{c}"), r)?;
                    record(&mut out, spec.long, v);
                    break;
                }
                record(&mut out, spec.long, "true".into());
                j += 1;
            }
        } else {
            out.positionals.push(arg.clone());
        }
        i += 1;
    }
    Ok(out)
}

/// Fails with pflag's "unknown flag" for any flag not in `allowed`
/// (used after parsing with the union of all commands' flags).
pub fn only_allowed(parsed: &Parsed, allowed: &[&str]) -> Result<(), String> {
    for name in &parsed.order {
        if !allowed.contains(&name.as_str()) {
            return Err(format!("unknown flag: --{name}"));
        }
    }
    Ok(())
}
