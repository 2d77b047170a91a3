//! HAProxy, the reverse proxy in front of an environment's releases: the
//! configuration file it starts from, and its runtime API (the "stats
//! socket", a plain-text TCP protocol) through which the release in each of
//! its two server slots, their weights and their drain are changed with no
//! reload, so no client connection to the proxy is ever closed.
//!
//! Runtime API commands used (HAProxy 2.6 management guide, section 9.3):
//! `set server <backend>/<server> addr <ip> port <port>`,
//! `set server <backend>/<server> state ready|drain|maint`,
//! `set server <backend>/<server> weight <w>`, `show stat` (CSV). One line
//! may carry several commands separated by `;`: the switch is one line, one
//! connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// The backend holding the release slots, and the two slots.
pub const BACKEND: &str = "release";
/// Inside the proxy container: where users' requests arrive (published on the
/// environment's port), and the runtime API (published on an ephemeral
/// loopback port of the host).
pub const HTTP_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9999;
/// Where the configuration lives in the container: the official image's
/// path, so that image and the one `cargo xtask proxy build` makes are run
/// the same way.
pub const CONFIG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";
/// The weight of a slot that takes all the traffic.
pub const FULL: u8 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn parse(name: &str) -> Option<Slot> {
        match name {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }
}

/// What one slot holds, for the configuration file: the release
/// container's name (resolved by Docker's DNS when the proxy starts, so a
/// `docker restart` of the proxy, or of the engine, finds the release by
/// name whatever its address) and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotConfig {
    pub container: Option<String>,
    pub weight: u8,
}

/// The configuration file. Everything a zero-drop switch needs is here:
/// health checks every second on both slots, and a request whose connection
/// to a release fails (a release stopping) is retried on the other slot
/// (`retry-on conn-failure empty-response`, `option redispatch`).
pub fn config(a: &SlotConfig, b: &SlotConfig) -> String {
    let server = |slot: Slot, s: &SlotConfig| match &s.container {
        Some(name) => format!(
            "    server {} {name}:{HTTP_PORT} weight {} check init-addr libc,none resolvers docker\n",
            slot.name(),
            s.weight
        ),
        None => format!(
            "    server {} 127.0.0.1:{HTTP_PORT} weight 0 check disabled init-addr none resolvers docker\n",
            slot.name()
        ),
    };
    format!(
        "# Written by cargo xtask (targets/docker/haproxy.rs); changed at run time\n\
         # through the runtime API and rewritten at each switch.\n\
         global\n\
         \x20   stats socket ipv4@0.0.0.0:{ADMIN_PORT} level admin\n\
         \x20   stats timeout 10s\n\
         resolvers docker\n\
         \x20   parse-resolv-conf\n\
         \x20   hold valid 1s\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-keep-alive 60s\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   retry-on conn-failure empty-response\n\
         \x20   default-server inter 1s fastinter 100ms downinter 100ms fall 2 rise 1\n\
         frontend web\n\
         \x20   bind :{HTTP_PORT}\n\
         \x20   default_backend {BACKEND}\n\
         backend {BACKEND}\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /health\n\
         \x20   http-check expect status 200\n\
         {}{}",
        server(Slot::A, a),
        server(Slot::B, b)
    )
}

/// A client of one proxy's runtime API.
pub struct Admin {
    pub addr: SocketAddr,
}

/// One slot, as `show stat` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotStat {
    pub slot: Slot,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, `UP 1/2`…
    pub status: String,
    pub weight: u32,
    /// Requests in flight on it (`scur`).
    pub current: u32,
    /// The address it sends to (`addr`), `ip:port`.
    pub addr: String,
}

impl Admin {
    /// Send one line (commands separated by `;`) and read the answer to the
    /// end (the socket closes after one line in non-interactive mode).
    /// Any line of the answer that is not empty is an error for a `set`
    /// command: success prints nothing, or an informational line for
    /// `set server … addr` ("IP changed from …").
    pub fn send(&self, line: &str) -> anyhow::Result<String> {
        eprintln!(
            "$ echo '{line}' | nc {} {}",
            self.addr.ip(),
            self.addr.port()
        );
        self.ask(line)
    }

    /// [`Admin::send`] without printing it: for the read-only polls.
    pub fn ask(&self, line: &str) -> anyhow::Result<String> {
        let timeout = Duration::from_secs(5);
        let mut stream = TcpStream::connect_timeout(&self.addr, timeout)
            .with_context(|| format!("connecting to the proxy's runtime API on {}", self.addr))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .with_context(|| format!("reading the proxy's answer to `{line}`"))?;
        Ok(answer)
    }

    /// `set …` commands: fail with the proxy's own words when it refused one.
    pub fn set(&self, commands: &[String]) -> anyhow::Result<()> {
        let answer = self.send(&commands.join("; "))?;
        let refusal = answer
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.contains("changed") && !l.starts_with("no need"));
        if let Some(said) = refusal {
            bail!("the proxy refused `{}`: {said}", commands.join("; "));
        }
        Ok(())
    }

    pub fn stats(&self) -> anyhow::Result<Vec<SlotStat>> {
        let answer = self.ask("show stat")?;
        parse_stat(&answer)
    }

    pub fn slot(&self, slot: Slot) -> anyhow::Result<SlotStat> {
        self.stats()?
            .into_iter()
            .find(|s| s.slot == slot)
            .with_context(|| format!("the proxy has no server {BACKEND}/{}", slot.name()))
    }
}

pub fn set_addr(slot: Slot, ip: &str) -> String {
    format!(
        "set server {BACKEND}/{} addr {ip} port {HTTP_PORT}",
        slot.name()
    )
}

pub fn set_state(slot: Slot, state: &str) -> String {
    format!("set server {BACKEND}/{} state {state}", slot.name())
}

pub fn set_weight(slot: Slot, weight: u8) -> String {
    format!("set server {BACKEND}/{} weight {weight}", slot.name())
}

/// `show stat` is CSV whose first line names the columns (`# pxname,svname,…`).
fn parse_stat(csv: &str) -> anyhow::Result<Vec<SlotStat>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .with_context(|| {
            format!(
                "the proxy's `show stat` is not CSV: {}",
                csv.lines().next().unwrap_or("(nothing)")
            )
        })?;
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .with_context(|| format!("the proxy's `show stat` has no `{name}` column"))
    };
    let (px, sv, scur, status, weight, addr) = (
        col("pxname")?,
        col("svname")?,
        col("scur")?,
        col("status")?,
        col("weight")?,
        col("addr")?,
    );
    let mut slots = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(px) != Some(&BACKEND) {
            continue;
        }
        let Some(slot) = f.get(sv).and_then(|s| Slot::parse(s)) else {
            continue;
        };
        let num = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        slots.push(SlotStat {
            slot,
            status: f.get(status).copied().unwrap_or_default().to_owned(),
            weight: num(weight),
            current: num(scur),
            addr: f.get(addr).copied().unwrap_or_default().to_owned(),
        });
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_each_slot_by_container_and_keeps_an_empty_slot_disabled() {
        let text = config(
            &SlotConfig {
                container: Some("api-staging-1".to_owned()),
                weight: FULL,
            },
            &SlotConfig {
                container: None,
                weight: 0,
            },
        );
        assert!(text.contains(
            "server a api-staging-1:8080 weight 100 check init-addr libc,none resolvers docker\n"
        ));
        assert!(text.contains(
            "server b 127.0.0.1:8080 weight 0 check disabled init-addr none resolvers docker\n"
        ));
        assert!(text.contains("stats socket ipv4@0.0.0.0:9999 level admin"));
        assert!(text.contains("retry-on conn-failure empty-response"));
    }

    #[test]
    fn show_stat_is_read_by_column_name() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,\n\
web,FRONTEND,,,0,1,262124,1,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\
release,a,0,0,2,3,,10,0,0,,0,,0,0,0,0,UP,100,1,0,0,0,5,0,,1,3,1,,10,,2,0,,1,L7OK,200,1,0,10,0,0,0,0,,,,10,0,0,,,,,0,OK,,0,0,1,1,,,,Layer7 check passed,,2,3,4,,,,172.18.0.5:8080,\n\
release,b,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,0,1,0,0,0,5,5,,1,3,2,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:8080,\n\
release,BACKEND,0,0,2,3,26213,10,0,0,0,0,,0,0,0,0,UP,100,1,0,,0,5,0,,1,3,0,,10,,1,0,,1,,,,0,10,0,0,0,0,,,,10,0,0,0,0,0,0,0,,,0,0,1,1,,,,,,,,,,,,,,\n";
        let slots = parse_stat(csv).expect("parsed");
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].slot, Slot::A);
        assert_eq!(slots[0].status, "UP");
        assert_eq!(slots[0].weight, 100);
        assert_eq!(slots[0].current, 2);
        assert_eq!(slots[0].addr, "172.18.0.5:8080");
        assert_eq!(slots[1].status, "MAINT");
        assert!(parse_stat("Unknown command.\n").is_err());
    }
}
