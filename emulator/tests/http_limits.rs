//! HTTP-level bounds: request heads and bodies must arrive in time, and the number of
//! connections waiting to authenticate is capped.

mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webpubsub_emulator::{Config, Emulator};

async fn start(config: Config) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

async fn open(emu: &Emulator, first_bytes: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", emu.port())).await.unwrap();
    s.write_all(first_bytes.as_bytes()).await.unwrap();
    s
}

/// Reads until the emulator closes the connection; returns what it sent.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("closed within the deadline");
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response on `s`.
async fn status(s: &mut TcpStream) -> u16 {
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .expect("response within the deadline")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn unfinished_heads_and_idle_connections_are_closed() {
    let timeout = Duration::from_millis(300);
    let emu = start(Config {
        header_read_timeout: timeout,
        ..Config::default()
    })
    .await;
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(open(&emu, "").await);
        conns.push(open(&emu, "GET /client/hubs/h HTTP/1.1\r\nHost: x\r\n").await);
    }
    // A finished request, then silence: an idle keep-alive connection.
    let mut idle = open(&emu, "HEAD /api/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&mut idle).await, 200);
    conns.push(idle);
    for c in &mut conns {
        until_closed(c).await;
    }
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    // The emulator still serves.
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    connect_pubsub(&url, JSON).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn unfinished_bodies_get_408_and_unauthenticated_ones_are_not_read() {
    let timeout = Duration::from_millis(300);
    let emu = start(Config {
        body_read_timeout: timeout,
        ..Config::default()
    })
    .await;
    let path = "/api/hubs/h/:send?api-version=1";
    let token = emu.rest_token(&format!("{}{path}", emu.endpoint()));
    let head = |auth: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain\r\n\
             Content-Length: 100\r\n\r\n0123456789"
        )
    };
    let started = Instant::now();
    let mut s = open(&emu, &head(&format!("Authorization: Bearer {token}\r\n"))).await;
    assert_eq!(status(&mut s).await, 408);
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    until_closed(&mut s).await;
    let mut s = open(&emu, &head("")).await;
    assert_eq!(status(&mut s).await, 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn connections_waiting_to_authenticate_are_capped() {
    let timeout = Duration::from_millis(800);
    let emu = start(Config {
        header_read_timeout: timeout,
        max_pending_handshakes: 4,
        ..Config::default()
    })
    .await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    // Authenticated connections do not count against the cap.
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(connect_pubsub(&url, JSON).await.0);
    }
    // Four silent connections take every place...
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(open(&emu, "").await);
    }
    // ...so the next client is only served once one of them has timed out.
    let started = Instant::now();
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let waited = started.elapsed();
    assert!(waited >= timeout / 2, "served after {waited:?}");
    for s in &mut silent {
        until_closed(s).await;
    }
    ping_pong(&mut ws).await;
    emu.shutdown().await;
}
