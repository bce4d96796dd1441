//! Each fault against a TCP echo server on 127.0.0.1, in process and through the control API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use wps_fault_proxy::{control, Direction, FaultProxy, Faults};

const WAIT: Duration = Duration::from_secs(10);

/// An echo server: every byte read is written back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn proxied() -> (FaultProxy, TcpStream) {
    let proxy = FaultProxy::start(echo_server().await, 42).await.unwrap();
    let conn = TcpStream::connect(proxy.addr()).await.unwrap();
    (proxy, conn)
}

/// Reads exactly `n` bytes within the deadline.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("bytes within the deadline")
        .expect("read");
    buf
}

/// Reads until the stream ends or fails; returns the bytes and how it ended.
async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(WAIT, s.read(&mut buf))
            .await
            .expect("an end within the deadline")
        {
            Ok(0) => return (all, Ok(())),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => return (all, Err(e)),
        }
    }
}

#[tokio::test]
async fn without_faults_bytes_pass_unchanged_and_are_counted() {
    let (proxy, mut s) = proxied().await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).await.unwrap();
    assert_eq!(read_n(&mut s, data.len()).await, data);
    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.live), (1, 1));
    assert_eq!(stats.bytes_upstream, 100_000);
    assert_eq!(stats.bytes_downstream, 100_000);
}

#[tokio::test]
async fn latency_delays_each_way_and_keeps_order_under_jitter() {
    let (proxy, mut s) = proxied().await;
    proxy.set(
        Direction::Both,
        Faults {
            latency_ms: 40,
            jitter_ms: 30,
            ..Faults::default()
        },
    );
    let started = Instant::now();
    for i in 0..50u8 {
        s.write_all(&[i]).await.unwrap();
    }
    assert_eq!(read_n(&mut s, 50).await, (0..50).collect::<Vec<u8>>());
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_blackhole_swallows_bytes_until_cleared() {
    let (proxy, mut s) = proxied().await;
    proxy.set(
        Direction::Upstream,
        Faults {
            blackhole: true,
            ..Faults::default()
        },
    );
    s.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        timeout(Duration::from_millis(200), s.read(&mut buf))
            .await
            .is_err(),
        "nothing comes back from a half-open connection"
    );
    proxy
        .wait_for(WAIT, |s| s.bytes_dropped >= 4)
        .await
        .expect("the bytes reached the blackhole");
    proxy.clear();
    s.write_all(b"kept").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"kept");
}

#[tokio::test]
async fn reset_after_bytes_passes_exactly_that_many_then_resets() {
    let (proxy, mut s) = proxied().await;
    proxy.set(
        Direction::Downstream,
        Faults {
            reset_after_bytes: Some(1000),
            ..Faults::default()
        },
    );
    s.write_all(&[7u8; 5000]).await.unwrap();
    let (got, end) = read_to_end(&mut s).await;
    assert_eq!(got.len(), 1000);
    assert_eq!(
        end.expect_err("a reset, not an end of stream").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    assert_eq!(proxy.stats().resets, 1);
}

#[tokio::test]
async fn limit_bytes_closes_cleanly_after_that_many() {
    let (proxy, mut s) = proxied().await;
    proxy.set(
        Direction::Downstream,
        Faults {
            limit_bytes: Some(300),
            ..Faults::default()
        },
    );
    s.write_all(&[1u8; 1000]).await.unwrap();
    let (got, end) = read_to_end(&mut s).await;
    assert_eq!(got.len(), 300);
    assert!(end.is_ok(), "an end of stream: {end:?}");
}

#[tokio::test]
async fn slicing_and_bandwidth_deliver_everything_slower() {
    let (proxy, mut s) = proxied().await;
    proxy.set(
        Direction::Downstream,
        Faults {
            slice_bytes: 100,
            slice_variation: 50,
            slice_delay_us: 1000,
            bandwidth_bytes_per_sec: 200_000,
            ..Faults::default()
        },
    );
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let started = Instant::now();
    s.write_all(&data).await.unwrap();
    assert_eq!(read_n(&mut s, data.len()).await, data);
    // 50 kB at 200 kB/s: at least a quarter of a second.
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_bandwidth_limit_does_not_hold_back_small_pieces_below_it() {
    // 50 kB in 100-byte pieces at 12.5 MB/s: 4 ms of the limit. Waiting for the millisecond
    // timer before each of the 500 pieces would take about half a second.
    let (proxy, mut s) = proxied().await;
    proxy.set(
        Direction::Downstream,
        Faults {
            slice_bytes: 100,
            bandwidth_bytes_per_sec: 12_500_000,
            ..Faults::default()
        },
    );
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 11) as u8).collect();
    let started = Instant::now();
    s.write_all(&data).await.unwrap();
    assert_eq!(read_n(&mut s, data.len()).await, data);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refuse_resets_new_connections_and_reset_all_cuts_live_ones() {
    let (proxy, mut live) = proxied().await;
    // A round trip first: the proxy has taken this connection in before refusing new ones.
    live.write_all(b"in").await.unwrap();
    assert_eq!(read_n(&mut live, 2).await, b"in");
    proxy.set_refuse(true);
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    let (got, _) = read_to_end(&mut refused).await;
    assert!(got.is_empty());
    assert_eq!(proxy.stats().refused, 1);
    // The connection made before is unaffected, until every live connection is reset.
    live.write_all(b"ok").await.unwrap();
    assert_eq!(read_n(&mut live, 2).await, b"ok");
    assert_eq!(proxy.reset_all(), 1);
    let (_, end) = read_to_end(&mut live).await;
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
}

/// One HTTP/1.1 request to the control API; the status and body of the answer.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (raw, _) = read_to_end(&mut s).await;
    let text = String::from_utf8(raw).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn the_control_api_sets_reads_and_clears_faults() {
    let proxy = Arc::new(FaultProxy::start(echo_server().await, 1).await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let serve = axum::serve(listener, control::router(proxy.clone()));
    tokio::spawn(async move { serve.await });
    let (status, _) = http(api, "POST", "/faults/downstream", r#"{"latency_ms":25}"#).await;
    assert_eq!(status, 200);
    assert_eq!(proxy.faults().downstream.latency_ms, 25);
    assert_eq!(proxy.faults().upstream.latency_ms, 0);
    let (status, body) = http(api, "POST", "/faults/sideways", "{}").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(api, "POST", "/faults/both", r#"{"latency":1}"#).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let (status, body) = http(api, "GET", "/faults", "").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""latency_ms":25"#), "{body}");
    let (_, _) = http(api, "POST", "/refuse", "").await;
    assert!(proxy.faults().refuse);
    let (status, _) = http(api, "DELETE", "/faults", "").await;
    assert_eq!(status, 200);
    assert!(proxy.faults().downstream.is_clear() && !proxy.faults().refuse);
    let (status, body) = http(api, "POST", "/reset", "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"connections":0}"#));
    let (status, body) = http(api, "GET", "/stats", "").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""accepted":0"#), "{body}");
}
