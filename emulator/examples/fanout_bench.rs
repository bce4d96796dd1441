//! Fan-out benchmark for the emulator.
//!
//! `cargo run --release -p webpubsub-emulator --example fanout_bench [-- --quick]`
//!
//! Runs the emulator in a child process (this program re-executed with `--serve`) so its
//! memory can be read from /proc, then measures with raw WebSocket clients:
//! - one publisher to 1, 10 and 100 subscribers: deliveries per second when the publisher
//!   sends as fast as it can (`json.webpubsub.azure.v1` subscribers: a reliable subscriber
//!   that falls 1000 messages behind is closed by design), and p50/p99 latency at a paced
//!   publish rate of 500 msg/s with reliable subscribers acknowledging every 100 messages;
//! - emulator RSS for 10,000 idle reliable connections.
//!
//! `WPS_CONNECTION_STRING=Endpoint=...;AccessKey=...;` uses a running emulator instead
//! (set `WPS_EMULATOR_PID` as well to report its memory).

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webpubsub_emulator::{client_access_url_for, parse_connection_string, Config, Emulator};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const RELIABLE: &str = "json.reliable.webpubsub.azure.v1";
const JSON: &str = "json.webpubsub.azure.v1";
const HOUR: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(120);

struct Target {
    endpoint: String,
    key: String,
    pid: Option<u32>,
}

impl Target {
    fn url(&self, hub: &str, roles: &[&str], groups: &[&str]) -> String {
        client_access_url_for(&self.endpoint, &self.key, hub, None, roles, groups, HOUR)
    }
}

fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit only read/write the rlimit struct we own.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn connect(url: &str, protocol: &str) -> Ws {
    let mut req = url.into_client_request().expect("url");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .expect("connect");
    // The first frame is `connected`.
    let _ = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("connected frame");
    ws
}

/// Extracts the number after `"key":` or `"key":"` from a frame without a JSON parse.
fn number_after(frame: &str, key: &str) -> Option<u64> {
    let i = frame.find(key)? + key.len();
    let digits: String = frame[i..]
        .chars()
        .skip_while(|c| *c == '"' || *c == ':')
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Reads `expected` data messages, acknowledging sequence ids; returns latencies (µs).
async fn subscribe(mut ws: Ws, expected: usize, base: Instant) -> Vec<u64> {
    let mut lat = Vec::with_capacity(expected);
    let mut last_seq = 0;
    while lat.len() < expected {
        let m = match ws.next().await {
            Some(Ok(m)) => m,
            other => panic!(
                "subscriber connection ended after {} messages: {other:?}",
                lat.len()
            ),
        };
        let Message::Text(t) = m else { continue };
        let t = t.as_str();
        if let Some(seq) = number_after(t, "\"sequenceId\"") {
            last_seq = seq;
        }
        if let Some(sent) = number_after(t, "\"data\"") {
            let now = base.elapsed().as_micros() as u64;
            lat.push(now.saturating_sub(sent));
            if last_seq > 0 && lat.len() % 100 == 0 {
                let ack = format!(r#"{{"type":"sequenceAck","sequenceId":{last_seq}}}"#);
                ws.send(Message::text(ack)).await.expect("ack");
            }
        }
    }
    let _ = ws.close(None).await;
    lat
}

struct Run {
    elapsed: Duration,
    latencies: Vec<u64>,
}

async fn fan_out(
    t: &Target,
    hub: &str,
    protocol: &str,
    subscribers: usize,
    messages: usize,
    pace: Option<Duration>,
) -> Run {
    let base = Instant::now();
    let url = t.url(hub, &[], &["bench"]);
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let ws = connect(&url, protocol).await;
        subs.push(tokio::spawn(subscribe(ws, messages, base)));
    }
    let mut publisher = connect(&t.url(hub, &["webpubsub.sendToGroup"], &[]), JSON).await;
    let start = Instant::now();
    let mut tick = pace.map(tokio::time::interval);
    for _ in 0..messages {
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let now = base.elapsed().as_micros();
        let frame =
            format!(r#"{{"type":"sendToGroup","group":"bench","dataType":"text","data":"{now}"}}"#);
        publisher.feed(Message::text(frame)).await.expect("publish");
        if pace.is_some() {
            publisher.flush().await.expect("flush");
        }
    }
    publisher.flush().await.expect("flush");
    let mut latencies = Vec::with_capacity(subscribers * messages);
    for s in subs {
        latencies.extend(
            tokio::time::timeout(DEADLINE, s)
                .await
                .expect("deliveries in time")
                .unwrap(),
        );
    }
    let elapsed = start.elapsed();
    let _ = publisher.close(None).await;
    latencies.sort_unstable();
    Run { elapsed, latencies }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn idle(t: &Target, count: usize) -> (Option<u64>, Option<u64>) {
    let before = t.pid.and_then(rss_kib);
    let url = Arc::new(t.url("idle", &[], &[]));
    let mut conns = Vec::with_capacity(count);
    let mut pending = futures_util::stream::iter((0..count).map(|_| {
        let url = url.clone();
        async move { connect(&url, RELIABLE).await }
    }))
    .buffer_unordered(64);
    while let Some(ws) = pending.next().await {
        conns.push(ws);
    }
    let after = t.pid.and_then(rss_kib);
    drop(conns);
    (before, after)
}

async fn serve() {
    let emu = Emulator::start(Config::default())
        .await
        .expect("start emulator");
    println!("{}", emu.connection_string());
    std::io::stdout().flush().unwrap();
    // Runs until the parent closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await;
    emu.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    raise_nofile();
    let rt = tokio::runtime::Runtime::new().unwrap();
    if args.iter().any(|a| a == "--serve") {
        rt.block_on(serve());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut child = None;
    let target = match std::env::var("WPS_CONNECTION_STRING") {
        Ok(cs) => {
            let (endpoint, key) = parse_connection_string(&cs);
            let pid = std::env::var("WPS_EMULATOR_PID")
                .ok()
                .and_then(|p| p.parse().ok());
            Target { endpoint, key, pid }
        }
        Err(_) => {
            let mut c = std::process::Command::new(std::env::current_exe().unwrap())
                .arg("--serve")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn emulator process");
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let (endpoint, key) = parse_connection_string(line.trim());
            let pid = Some(c.id());
            child = Some(c);
            Target { endpoint, key, pid }
        }
    };

    let deliveries = if quick { 20_000 } else { 300_000 };
    let paced = if quick { 200 } else { 2_000 };
    let idle_count = if quick { 1_000 } else { 10_000 };
    println!(
        "Emulator fan-out benchmark ({} mode, {} CPUs)\n",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| Subscribers | Published | Delivered | Delivery rate (msg/s) | Burst p50 / p99 (ms) | Paced reliable p50 / p99 (ms) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    rt.block_on(async {
        let t0 = Instant::now();
        for (i, subs) in [1usize, 10, 100].into_iter().enumerate() {
            let messages = deliveries / subs;
            let burst = fan_out(&target, &format!("burst{i}"), JSON, subs, messages, None).await;
            let rate = burst.latencies.len() as f64 / burst.elapsed.as_secs_f64();
            let pace = fan_out(
                &target,
                &format!("paced{i}"),
                RELIABLE,
                subs,
                paced,
                Some(Duration::from_millis(2)),
            )
            .await;
            println!(
                "| {subs} | {messages} | {} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} |",
                burst.latencies.len(),
                rate,
                pct(&burst.latencies, 0.5),
                pct(&burst.latencies, 0.99),
                pct(&pace.latencies, 0.5),
                pct(&pace.latencies, 0.99),
            );
        }
        eprintln!("fan-out runs took {:.1} s", t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let (before, after) = idle(&target, idle_count).await;
        eprintln!("idle connections took {:.1} s", t0.elapsed().as_secs_f64());
        println!();
        println!("| Idle reliable connections | Emulator RSS before (MiB) | RSS with connections (MiB) | Per connection (KiB) |");
        println!("|---:|---:|---:|---:|");
        match (before, after) {
            (Some(b), Some(a)) => println!(
                "| {idle_count} | {:.1} | {:.1} | {:.1} |",
                b as f64 / 1024.0,
                a as f64 / 1024.0,
                (a.saturating_sub(b)) as f64 / idle_count as f64
            ),
            _ => println!("| {idle_count} | n/a | n/a | n/a (set WPS_EMULATOR_PID) |"),
        }
    });
    if let Some(mut c) = child {
        let t0 = Instant::now();
        drop(c.stdin.take());
        let _ = c.wait();
        eprintln!(
            "emulator process exit took {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
}
