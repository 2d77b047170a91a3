//! The same [`Counts`] asked of a Prometheus server (PromQL over its HTTP
//! API, `GET /api/v1/query`) instead of scraping the releases, for an
//! environment that has one. Each release is named by a label selector
//! (`"canary": "job=\"api\",slot=\"canary\""`). The counters are read raw,
//! summed by `status` and by `le`, so the windows and the p99 are computed
//! exactly as for a direct scrape (`window.rs`).

use std::time::Duration;

use anyhow::{Context, bail};

use super::exposition::{Counts, PROBE_ROUTES};
use crate::support::http;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// `http://prometheus:9090` (plain HTTP: the xtask's client has no TLS).
    pub url: String,
    /// Label matchers that select the canary's series, and the stable's.
    pub canary: String,
    pub stable: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Canary,
    Stable,
}

impl Server {
    pub fn check(&self) -> anyhow::Result<()> {
        http::split_url(&self.url).with_context(|| {
            format!(
                "analysis.prometheus.url `{}`: give the server's http:// URL",
                self.url
            )
        })?;
        for (key, sel) in [("canary", &self.canary), ("stable", &self.stable)] {
            if sel.trim().is_empty() || sel.contains(['{', '}']) {
                bail!(
                    "analysis.prometheus.{key} `{sel}`: give label matchers without braces, e.g. job=\"api\",slot=\"{key}\""
                );
            }
        }
        if self.canary == self.stable {
            bail!(
                "analysis.prometheus: canary and stable select the same series; give each its own matchers"
            );
        }
        Ok(())
    }

    pub fn counts(&self, side: Side) -> anyhow::Result<Counts> {
        let sel = match side {
            Side::Canary => &self.canary,
            Side::Stable => &self.stable,
        };
        let probes = PROBE_ROUTES.join("|");
        let by_status = self.query(&format!(
            "sum by (status) (http_requests_total{{{sel},route!~\"{probes}\"}})"
        ))?;
        let by_le = self.query(&format!(
            "sum by (le) (http_request_duration_seconds_bucket{{{sel},route!~\"{probes}\"}})"
        ))?;
        counts_of(&by_status, &by_le)
    }

    fn query(&self, promql: &str) -> anyhow::Result<Vec<(String, f64)>> {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.url.trim_end_matches('/'),
            encode(promql)
        );
        let r = http::get(&url, Duration::from_secs(5))?;
        if r.status != 200 {
            bail!(
                "Prometheus answered {} to `{promql}`: {}",
                r.status,
                r.body.trim()
            );
        }
        vector(&r.body).with_context(|| format!("Prometheus' answer to `{promql}`"))
    }
}

/// `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.5"},"value":[1700000000,"12"]}]}}`
/// → `[("0.5", 12.0)]` (the one label a `sum by` keeps).
fn vector(body: &str) -> anyhow::Result<Vec<(String, f64)>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        status: String,
        data: Option<Data>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        #[serde(rename = "resultType")]
        result_type: String,
        result: Vec<Sample>,
    }
    #[derive(serde::Deserialize)]
    struct Sample {
        metric: std::collections::BTreeMap<String, String>,
        value: (f64, String),
    }
    let a: Answer = serde_json::from_str(body).context("not a Prometheus API answer")?;
    let data = match (a.status.as_str(), a.data) {
        ("success", Some(d)) if d.result_type == "vector" => d,
        _ => bail!("not a successful instant vector"),
    };
    data.result
        .into_iter()
        .map(|s| {
            let label = s.metric.into_values().next().unwrap_or_default();
            let v: f64 = s
                .value
                .1
                .parse()
                .with_context(|| format!("the value `{}`", s.value.1))?;
            Ok((label, v))
        })
        .collect()
}

fn counts_of(by_status: &[(String, f64)], by_le: &[(String, f64)]) -> anyhow::Result<Counts> {
    let mut c = Counts::default();
    for (status, v) in by_status {
        c.requests += v;
        if status.starts_with('5') {
            c.errors += v;
        }
    }
    let mut buckets = by_le
        .iter()
        .map(|(le, v)| {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()
                    .with_context(|| format!("a bucket bound `{le}`"))?
            };
            Ok((le, *v))
        })
        .collect::<anyhow::Result<Vec<(f64, f64)>>>()?;
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    c.buckets = buckets;
    Ok(c)
}

/// Percent-encode a query parameter (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_instant_vectors_into_counts() {
        let status = vector(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"status":"200"},"value":[1700000000.1,"75"]},
            {"metric":{"status":"503"},"value":[1700000000.1,"25"]}]}}"#,
        )
        .expect("vector");
        let le = vector(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"le":"+Inf"},"value":[1,"100"]},
            {"metric":{"le":"0.5"},"value":[1,"100"]},
            {"metric":{"le":"0.1"},"value":[1,"60"]}]}}"#,
        )
        .expect("vector");
        let c = counts_of(&status, &le).expect("counts");
        assert_eq!((c.requests, c.errors), (100.0, 25.0));
        assert_eq!(
            c.buckets,
            vec![(0.1, 60.0), (0.5, 100.0), (f64::INFINITY, 100.0)]
        );
    }

    #[test]
    fn errors_and_bad_settings_are_refused() {
        assert!(
            vector(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#).is_err()
        );
        assert!(vector("<html>").is_err());
        let mut s = Server {
            url: "http://127.0.0.1:9090".into(),
            canary: "slot=\"canary\"".into(),
            stable: "slot=\"stable\"".into(),
        };
        assert!(s.check().is_ok());
        s.stable = "{slot=\"stable\"}".into();
        assert!(s.check().is_err());
        s.url = "https://p".into();
        assert!(s.check().is_err());
        assert_eq!(encode("a{b=\"c\"} 1"), "a%7Bb%3D%22c%22%7D%201");
    }

    /// A stand-in Prometheus on a loopback port: it answers the two
    /// queries a side needs, and records what it was asked.
    #[test]
    fn asks_the_server_for_raw_counters_by_status_and_by_le() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut asked = Vec::new();
            for _ in 0..2 {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).expect("read");
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = if head.contains("sum%20by%20%28status%29") {
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"status":"200"},"value":[1,"30"]},{"metric":{"status":"500"},"value":[1,"10"]}]}}"#
                } else {
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.05"},"value":[1,"40"]},{"metric":{"le":"+Inf"},"value":[1,"40"]}]}}"#
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(answer.as_bytes()).expect("write");
                asked.push(head.lines().next().unwrap_or_default().to_owned());
            }
            asked
        });
        let s = Server {
            url: format!("http://127.0.0.1:{port}"),
            canary: "job=\"api\",slot=\"canary\"".into(),
            stable: "job=\"api\",slot=\"stable\"".into(),
        };
        let c = s.counts(Side::Canary).expect("counts");
        assert_eq!((c.requests, c.errors), (40.0, 10.0));
        assert_eq!(c.buckets, vec![(0.05, 40.0), (f64::INFINITY, 40.0)]);
        let asked = server.join().expect("server");
        assert!(
            asked[0].starts_with("GET /api/v1/query?query=sum%20by%20%28status%29%20%28http_requests_total%7Bjob%3D%22api%22%2Cslot%3D%22canary%22%2Croute%21~%22%2Fhealth%7C"),
            "{asked:?}"
        );
        assert!(
            asked[1].contains("http_request_duration_seconds_bucket"),
            "{asked:?}"
        );
    }
}
