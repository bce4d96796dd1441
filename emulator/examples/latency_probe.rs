//! Per-request latency of a running emulator, measured with a minimal client so the figures
//! are mostly the emulator's and the kernel's: one thread, blocking sockets, pre-encoded frames.
//!
//! `WPS_CONNECTION_STRING=Endpoint=...;AccessKey=...; cargo run --release -p webpubsub-emulator
//! --example latency_probe [-- COUNT]`
//!
//! A publisher and a subscriber (joined to the group) on `json.webpubsub.azure.v1`:
//! - `acked`: sendToGroup with an ackId, time until the publisher reads its ack (the
//!   subscriber's copy is read afterwards);
//! - `delivery`: sendToGroup without an ackId, time until the subscriber reads the message;
//! - `ping`: a `ping` message, time until the `pong` (the emulator's shortest request).
//!
//! Prints p50/p90/p99 in microseconds and the request rate of each phase.

use std::net::TcpStream;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{client, Message, WebSocket};
use webpubsub_emulator::{client_access_url_for, parse_connection_string};

type Ws = WebSocket<TcpStream>;

const GROUP: &str = "probe";
const WARM_UP: usize = 500;

fn connection_string() -> (String, String) {
    let cs = std::env::var("WPS_CONNECTION_STRING")
        .expect("set WPS_CONNECTION_STRING=Endpoint=http://127.0.0.1:PORT;AccessKey=KEY;");
    parse_connection_string(&cs)
}

fn connect(url: &str) -> Ws {
    let mut req = url.into_client_request().expect("url");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "json.webpubsub.azure.v1".parse().unwrap(),
    );
    let host = req.uri().authority().expect("host").as_str().to_string();
    let tcp = TcpStream::connect(host).expect("tcp connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (ws, _) = client(req, tcp).expect("websocket handshake");
    ws
}

/// Reads frames until one contains `needle`.
fn read_until(ws: &mut Ws, needle: &str) {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) if t.as_str().contains(needle) => return,
            _ => {}
        }
    }
}

fn send(ws: &mut Ws, frame: &str) {
    ws.send(Message::text(frame)).expect("send");
}

fn report(name: &str, mut samples: Vec<f64>, elapsed: Duration) {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p / 100.0).round() as usize];
    println!(
        "{name:<9} p50 {:6.1} us  p90 {:6.1} us  p99 {:6.1} us  ({:.0} req/s)",
        at(50.0),
        at(90.0),
        at(99.0),
        samples.len() as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|c| c.parse().expect("COUNT"))
        .unwrap_or(20_000);
    let (endpoint, key) = connection_string();
    let hub = format!("probe{}", std::process::id());
    let roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
    let url = client_access_url_for(
        &endpoint,
        &key,
        &hub,
        None,
        &roles,
        &[],
        Duration::from_secs(3600),
    );
    let mut sub = connect(&url);
    let mut publisher = connect(&url);
    read_until(&mut sub, "\"connected\"");
    read_until(&mut publisher, "\"connected\"");
    send(
        &mut sub,
        &format!(r#"{{"type":"joinGroup","group":"{GROUP}","ackId":1}}"#),
    );
    read_until(&mut sub, "\"ack\"");

    let data = "x".repeat(64);
    let plain =
        format!(r#"{{"type":"sendToGroup","group":"{GROUP}","dataType":"text","data":"{data}"}}"#);
    let mut ack_id = 0u64;
    let mut acked = |publisher: &mut Ws, sub: &mut Ws| {
        ack_id += 1;
        let t = Instant::now();
        send(
            publisher,
            &format!(
                r#"{{"type":"sendToGroup","group":"{GROUP}","dataType":"text","data":"{data}","ackId":{ack_id}}}"#
            ),
        );
        read_until(publisher, "\"ack\"");
        let rtt = t.elapsed();
        read_until(sub, "\"message\"");
        rtt.as_secs_f64() * 1e6
    };
    for _ in 0..WARM_UP {
        acked(&mut publisher, &mut sub);
    }
    measure("acked", count, || acked(&mut publisher, &mut sub));
    measure("delivery", count, || {
        let t = Instant::now();
        send(&mut publisher, &plain);
        read_until(&mut sub, "\"message\"");
        t.elapsed().as_secs_f64() * 1e6
    });
    measure("ping", count, || {
        let t = Instant::now();
        send(&mut publisher, r#"{"type":"ping"}"#);
        read_until(&mut publisher, "\"pong\"");
        t.elapsed().as_secs_f64() * 1e6
    });
}

/// Runs `once` (which returns one sample in µs) `count` times and reports the percentiles.
fn measure(name: &str, count: usize, mut once: impl FnMut() -> f64) {
    let start = Instant::now();
    let samples: Vec<f64> = (0..count).map(|_| once()).collect();
    report(name, samples, start.elapsed());
}
