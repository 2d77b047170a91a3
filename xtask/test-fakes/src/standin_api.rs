//! `standin-api`: a stand-in for the api in the tests' images, NOT the api.
//!
//! The deploy engine, the proxy switch and the canary analysis need a service
//! that answers like the api (`/health`, `/readiness`, `/version` with a
//! given SHA, `/metrics` with the api's own metric names) but that builds in
//! a second and can be made faulty or slow, without a fault switch in the
//! shipped api. The real api is still built and run by the build tests.
//!
//! ```text
//! standin-api --sha <40 hex> [--error-rate F] [--delay-ms N] [--listen ADDR]
//! ```
//!
//! - `--error-rate F` (0..=1): that fraction of the requests to any other path
//!   than the probes (`/health`, `/up`, `/liveness`, `/readiness`,
//!   `/version`, `/metrics`) is answered 500, spread evenly (an error-budget
//!   accumulator, so 0.25 is exactly one in four).
//! - `--delay-ms N`: those requests are answered after N ms.
//! - `--listen ADDR`: default `0.0.0.0:$API_PORT` (8080).
//!
//! HTTP/1.1 with keep-alive, one thread per connection. On SIGTERM or SIGINT
//! `/readiness` turns 503, the listener closes, requests already read are
//! answered, and the process exits within `API_SHUTDOWN_GRACE_SECS` (default
//! 5): as the api does (api/src/lib.rs), so a drain can be tested.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The api's latency buckets (api/src/metrics.rs), in seconds.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const PROBES: [&str; 6] = [
    "/health",
    "/up",
    "/liveness",
    "/readiness",
    "/version",
    "/metrics",
];

struct Settings {
    sha: String,
    error_rate: f64,
    delay: Duration,
    listen: String,
}

#[derive(Default)]
struct Series {
    /// Non-cumulative; the last slot is `+Inf` only.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
}

struct State {
    settings: Settings,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// Error budget: +error_rate per faultable request, an error when ≥ 1.
    budget: Mutex<f64>,
    /// (method, route, status) → latency histogram.
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

fn main() {
    let settings = match parse(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("standin-api: {e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&settings.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("standin-api: cannot listen on {}: {e}", settings.listen);
            std::process::exit(1);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("standin-api: cannot handle signal {signal}: {e}");
            std::process::exit(1);
        }
    }
    let grace = std::env::var("API_SHUTDOWN_GRACE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs);
    let state = Arc::new(State {
        settings,
        draining: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        budget: Mutex::new(0.0),
        series: Mutex::new(BTreeMap::new()),
    });
    eprintln!(
        "standin-api {} listening on {}",
        state.settings.sha, state.settings.listen
    );
    // Non-blocking accept, polled, so a signal is seen within 10 ms.
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("standin-api: {e}");
        std::process::exit(1);
    }
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = state.clone();
                let stop = stop.clone();
                std::thread::spawn(move || serve(stream, &state, &stop));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => eprintln!("standin-api: accept: {e}"),
        }
    }
    state.draining.store(true, Ordering::SeqCst);
    drop(listener);
    let deadline = Instant::now() + grace;
    while state.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("standin-api: stopped");
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let port = std::env::var("API_PORT").unwrap_or_else(|_| "8080".to_owned());
    let mut settings = Settings {
        sha: String::new(),
        error_rate: 0.0,
        delay: Duration::ZERO,
        listen: format!("0.0.0.0:{port}"),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sha" => settings.sha = value,
            "--error-rate" => {
                settings.error_rate = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("--error-rate {value}: expected 0..=1"))?;
            }
            "--delay-ms" => {
                settings.delay = Duration::from_millis(
                    value
                        .parse()
                        .map_err(|_| format!("--delay-ms {value}: expected milliseconds"))?,
                );
            }
            "--listen" => settings.listen = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if settings.sha.len() != 40 || !settings.sha.chars().all(hex) {
        return Err("--sha needs 40 lowercase hex characters".to_owned());
    }
    Ok(settings)
}

/// One connection: requests in a keep-alive loop until the peer closes,
/// sends `Connection: close`, or the process is stopping.
fn serve(stream: TcpStream, state: &State, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Idle between requests: a stopping server closes idle connections.
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        let keep = handle(&line, &mut reader, &mut writer, state);
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep || stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Read the rest of one request, answer it; whether to keep the connection.
fn handle(
    request_line: &str,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    state: &State,
) -> bool {
    let started = Instant::now();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let mut length = 0usize;
    let mut close = false;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return false,
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
    }
    if length > 0 {
        let mut body = vec![0; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return false;
        }
    }
    let (status, content_type, body) = answer(&path, state);
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{}\r\n",
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    );
    let ok = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body.as_bytes()))
        .and_then(|()| writer.flush())
        .is_ok();
    if path != "/metrics" {
        record(state, &method, &path, status, started.elapsed());
    }
    ok && !close
}

fn answer(path: &str, state: &State) -> (u16, &'static str, String) {
    const JSON: &str = "application/json";
    let s = &state.settings;
    match path {
        "/health" | "/up" | "/liveness" => (200, JSON, r#"{"status":"ok"}"#.to_owned()),
        "/readiness" if state.draining.load(Ordering::SeqCst) => {
            (503, JSON, r#"{"status":"draining"}"#.to_owned())
        }
        "/readiness" => (200, JSON, r#"{"status":"ready"}"#.to_owned()),
        "/version" => (
            200,
            JSON,
            format!(
                r#"{{"git_sha":"{}","short_sha":"{}","version":"0.0.0-standin","built_at":"unknown"}}"#,
                s.sha,
                &s.sha[..12]
            ),
        ),
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            exposition(state),
        ),
        _ => {
            if !s.delay.is_zero() {
                std::thread::sleep(s.delay);
            }
            let fail = {
                let mut budget = state.budget.lock().unwrap_or_else(|p| p.into_inner());
                *budget += s.error_rate;
                if *budget >= 1.0 - 1e-9 {
                    *budget -= 1.0;
                    true
                } else {
                    false
                }
            };
            if fail {
                (500, JSON, r#"{"error":"stand-in fault"}"#.to_owned())
            } else {
                (200, JSON, format!(r#"{{"served_by":"{}"}}"#, s.sha))
            }
        }
    }
}

/// Route label: the probes by name, everything else as one template (the
/// api labels by route template too, never by raw path).
fn record(state: &State, method: &str, path: &str, status: u16, took: Duration) {
    let route = if PROBES.contains(&path) {
        path
    } else {
        "/{*rest}"
    };
    let seconds = took.as_secs_f64();
    let slot = BUCKETS
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(BUCKETS.len());
    let mut series = state.series.lock().unwrap_or_else(|p| p.into_inner());
    let one = series
        .entry((method.to_owned(), route.to_owned(), status))
        .or_default();
    one.buckets[slot] += 1;
    one.sum += seconds;
}

fn exposition(state: &State) -> String {
    use std::fmt::Write as _;
    let series = state.series.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    out.push_str("# HELP http_requests_total HTTP requests answered, by method, route template and status.\n# TYPE http_requests_total counter\n");
    for ((method, route, status), one) in series.iter() {
        let total: u64 = one.buckets.iter().sum();
        let _ = writeln!(
            out,
            "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {total}"
        );
    }
    out.push_str("# HELP http_request_duration_seconds Time from request head to response head.\n# TYPE http_request_duration_seconds histogram\n");
    for ((method, route, status), one) in series.iter() {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
        let mut cumulative = 0;
        for (count, le) in one.buckets.iter().zip(BUCKETS) {
            cumulative += count;
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += one.buckets[BUCKETS.len()];
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum{{{labels}}} {}",
            one.sum
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{{labels}}} {cumulative}"
        );
    }
    out
}
