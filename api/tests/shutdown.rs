//! Graceful shutdown of the real binary, signalled with the `kill` command.
//!
//! How a request is held in flight without a debug route: the client opens a fresh
//! connection and sends the request head without its final blank line. hyper has then
//! started the connection's first request, so at shutdown it finishes that request
//! (with keep-alive off) instead of dropping the connection the way it drops idle
//! keep-alive ones; the test decides when the request completes by sending the last
//! `\r\n`. Before signalling, the test checks in /proc/net/tcp that the server has
//! really accepted the connection (not merely the kernel's backlog), so the request is
//! genuinely the server's. Completing a held `GET /readiness` after SIGTERM shows
//! readiness reading 503 during the drain; a held `GET /health` shows work in flight
//! still finishing with 200.

mod common;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::{Binary, accepted, poll, read_reply};

/// Opens a connection and sends `GET path` up to, not including, the end of the head.
fn held_request(server: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {server}\r\n").expect("send the request head");
    let client_port = stream.local_addr().expect("local addr").port();
    poll("the server to accept the held connection", || {
        accepted(server.port(), client_port).then_some(())
    });
    stream
}

/// Waits until the server no longer accepts connections: it has run its shutdown
/// signal handler (which clears readiness first) and closed the listener.
fn wait_until_listener_closed(server: SocketAddr) {
    poll("the listener to close", || {
        TcpStream::connect(server).is_err().then_some(())
    });
}

#[test]
fn sigterm_drains_requests_in_flight_with_readiness_503_then_exits_0() {
    let mut server = Binary::start(&[("API_SHUTDOWN_GRACE_SECS", "20")]);
    let mut readiness = held_request(server.addr, "/readiness");
    let mut health = held_request(server.addr, "/health");

    server.signal("TERM");
    wait_until_listener_closed(server.addr);
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "exited with requests in flight"
    );

    readiness
        .write_all(b"\r\n")
        .expect("finish the readiness request");
    let reply = read_reply(&mut readiness);
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.body, r#"{"status":"not ready"}"#);
    assert_eq!(reply.header("connection"), Some("close"));

    health
        .write_all(b"\r\n")
        .expect("finish the health request");
    let reply = read_reply(&mut health);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, r#"{"status":"ok"}"#);

    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "clean exit after the drain");
    server.wait_for_line("the SIGTERM line", |l| l.contains(r#""signal":"SIGTERM""#));
    server.wait_for_line("the 503 request line", |l| {
        l.contains(r#""route":"/readiness","status":503"#)
    });
    server.wait_for_line("the stop line", |l| {
        l.contains("stopped: all requests finished")
    });
}

#[test]
fn past_the_grace_period_it_exits_1() {
    let mut server = Binary::start(&[("API_SHUTDOWN_GRACE_SECS", "1")]);
    let _stuck = held_request(server.addr, "/health");

    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit();
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "left before the grace period ended"
    );
    assert_eq!(status.code(), Some(1));
    server.wait_for_line("the grace line", |l| {
        l.contains("grace period of 1s elapsed")
    });
}

#[test]
fn sigint_stops_an_idle_server_with_exit_0() {
    let mut server = Binary::start(&[]);
    assert_eq!(common::get(server.addr, "/readiness").status, 200);
    server.signal("INT");
    assert_eq!(server.wait_exit().code(), Some(0));
    server.wait_for_line("the SIGINT line", |l| l.contains(r#""signal":"SIGINT""#));
}
