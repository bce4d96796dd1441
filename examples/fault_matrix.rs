//! One fault at a time, with figures: a reliable subscriber behind `wps-fault-proxy` receives a
//! paced stream of acked messages from a publisher while one fault hits its connection
//! mid-stream. For each fault it prints what was sent, delivered, lost and duplicated, how many
//! sockets the subscriber opened and how many new connection ids it got, and how long until
//! the stream flowed again; then the process's threads, descriptors and RSS.
//!
//! ```text
//! cargo run --release --example fault_matrix            # every fault, Markdown table
//! cargo run --release --example fault_matrix -- blackhole reset_all
//! ```
//!
//! Everything runs in this process on 127.0.0.1: the emulator, the proxy and both clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use webpubsub_client::{
    Client, ClientOptions, Credential, Event, Payload, RetryMode, RetryPolicy, SendOptions,
};
use webpubsub_emulator::{Config, Emulator};
use wps_fault_proxy::{Direction, FaultProxy, Faults};

const HUB: &str = "matrix";
const GROUP: &str = "stream";
const MESSAGES: usize = 2000;
/// Messages per second the publisher sends (acked, up to `WINDOW` in flight): an outage of up
/// to 5 s stays inside the service's 1,000-message window, so a recovered session loses nothing.
const RATE: u64 = 200;
const WINDOW: usize = 64;
const FAULT_AT: usize = 500;
/// How long a fault lasts unless its row says otherwise.
const FAULT_FOR: Duration = Duration::from_secs(2);

/// What hits the subscriber's connection.
#[derive(Clone, Copy)]
enum Fault {
    Proxy(&'static str, Faults),
    /// Proxy faults held longer than `FAULT_FOR`.
    ProxyFor(&'static str, Faults, Duration),
    ResetAll,
    RefuseThenReset,
    Emulator(&'static str),
}

fn faults() -> Vec<(&'static str, Fault)> {
    let f = Faults::default();
    vec![
        ("none", Fault::Proxy("none", f)),
        (
            "latency_50ms_jitter_20ms",
            Fault::Proxy(
                "both",
                Faults {
                    latency_ms: 50,
                    jitter_ms: 20,
                    ..f
                },
            ),
        ),
        (
            "bandwidth_10kB_s",
            Fault::Proxy(
                "both",
                Faults {
                    bandwidth_bytes_per_sec: 10_000,
                    ..f
                },
            ),
        ),
        (
            "slicer_3_bytes",
            Fault::Proxy(
                "both",
                Faults {
                    slice_bytes: 3,
                    slice_variation: 2,
                    ..f
                },
            ),
        ),
        (
            "blackhole_2s",
            Fault::Proxy(
                "both",
                Faults {
                    blackhole: true,
                    ..f
                },
            ),
        ),
        // Longer than the service's 1,000-message window lasts at this rate: the service ends
        // the session (1008, buffer overflow), as the real one does; what it dropped is lost.
        (
            "blackhole_8s_session_lost",
            Fault::ProxyFor(
                "both",
                Faults {
                    blackhole: true,
                    ..f
                },
                Duration::from_secs(8),
            ),
        ),
        (
            "reset_mid_frame",
            Fault::Proxy(
                "downstream",
                Faults {
                    reset_after_bytes: Some(37),
                    ..f
                },
            ),
        ),
        (
            "close_after_100_bytes",
            Fault::Proxy(
                "downstream",
                Faults {
                    limit_bytes: Some(100),
                    ..f
                },
            ),
        ),
        (
            "slow_close_1s_with_reset",
            Fault::Proxy(
                "both",
                Faults {
                    slow_close_ms: 1000,
                    reset_after_bytes: Some(0),
                    ..f
                },
            ),
        ),
        ("reset_all", Fault::ResetAll),
        ("refuse_2s_after_reset", Fault::RefuseThenReset),
        ("emulator_drop", Fault::Emulator("drop")),
        ("emulator_close_1011", Fault::Emulator("close1011")),
        ("emulator_close_1008", Fault::Emulator("close1008")),
        ("emulator_expire", Fault::Emulator("expire")),
        ("emulator_stall_3s", Fault::Emulator("stall")),
        ("emulator_delay_300ms", Fault::Emulator("delay")),
        ("emulator_restart", Fault::Emulator("restart")),
    ]
}

fn options() -> ClientOptions {
    ClientOptions {
        keep_alive_interval: Duration::from_millis(250),
        keep_alive_timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_secs(1),
        recovery_interval: Duration::from_millis(200),
        recovery_timeout: Duration::from_secs(10),
        reconnect_retry: RetryPolicy {
            max_retries: u32::MAX,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(200),
            jitter: false,
        },
        ..ClientOptions::default()
    }
}

struct Row {
    name: &'static str,
    sent: usize,
    acked: usize,
    delivered: usize,
    lost: usize,
    duplicated: usize,
    out_of_order: usize,
    sockets: u64,
    connections: usize,
    stall_ms: u128,
}

async fn run_one(emu: &Emulator, name: &'static str, fault: Fault, seed: u64) -> Row {
    let upstream: SocketAddr = format!("127.0.0.1:{}", emu.port()).parse().unwrap();
    let proxy = std::sync::Arc::new(FaultProxy::start(upstream, seed).await.unwrap());
    let roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
    let direct = emu.client_access_url(HUB, Some("sub"), &roles, &[], Duration::from_secs(3600));
    let via = direct.replace(
        &format!("127.0.0.1:{}", emu.port()),
        &proxy.addr().to_string(),
    );
    let (sub, mut events) = Client::with_channel(Credential::Url(via), options());
    sub.start().await.expect("subscriber starts");
    let group = format!("{GROUP}-{name}");
    sub.join_group(&group, None).await.unwrap();
    let publisher_url =
        emu.client_access_url(HUB, Some("pub"), &roles, &[], Duration::from_secs(3600));
    let (publisher, _pev) = Client::with_channel(Credential::Url(publisher_url), options());
    publisher.start().await.unwrap();

    let sender = {
        let p = publisher.clone();
        let group = group.clone();
        tokio::spawn(async move {
            let mut window = futures_util::stream::FuturesOrdered::new();
            let mut acked = 0;
            let started = Instant::now();
            for i in 0..MESSAGES {
                tokio::time::sleep_until(
                    started + Duration::from_micros(i as u64 * 1_000_000 / RATE),
                )
                .await;
                let p = p.clone();
                let g = group.clone();
                window.push_back(async move {
                    p.send_to_group(&g, Payload::text(i.to_string()), SendOptions::default())
                        .await
                });
                if window.len() >= WINDOW {
                    if let Some(r) = futures_util::StreamExt::next(&mut window).await {
                        acked += usize::from(r.is_ok());
                    }
                }
            }
            while let Some(r) = futures_util::StreamExt::next(&mut window).await {
                acked += usize::from(r.is_ok());
            }
            acked
        })
    };

    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut order = Vec::new();
    let mut connections = 0;
    let mut faulted_at = None;
    let mut largest_gap = Duration::ZERO;
    let mut last_arrival = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < MESSAGES {
        let next = tokio::time::timeout_at(deadline, events.recv()).await;
        let Ok(Some(event)) = next else { break };
        match event {
            Event::GroupMessage { message, .. } => {
                let i: usize = message.as_str().unwrap().parse().unwrap();
                *seen.entry(i).or_default() += 1;
                order.push(i);
                let now = Instant::now();
                if faulted_at.is_some() {
                    largest_gap = largest_gap.max(now - last_arrival);
                }
                last_arrival = now;
                if i == FAULT_AT && faulted_at.is_none() {
                    faulted_at = Some(now);
                    inject(emu, &proxy, &sub, fault).await;
                    let p = proxy.clone();
                    let lasts = match fault {
                        Fault::ProxyFor(_, _, d) => d,
                        _ => FAULT_FOR,
                    };
                    tokio::spawn(async move {
                        tokio::time::sleep(lasts).await;
                        p.clear();
                    });
                }
            }
            Event::Connected { .. } => connections += 1,
            _ => {}
        }
    }
    proxy.clear();
    let acked = sender.await.unwrap();
    let delivered = seen.len();
    let duplicated = seen.values().map(|n| n - 1).sum();
    let mut firsts = Vec::new();
    let mut once = std::collections::HashSet::new();
    for i in &order {
        if once.insert(*i) {
            firsts.push(*i);
        }
    }
    let out_of_order = firsts.windows(2).filter(|w| w[1] < w[0]).count();
    let sockets = proxy.stats().accepted;
    sub.stop().await.unwrap();
    publisher.stop().await.unwrap();
    Row {
        name,
        sent: MESSAGES,
        acked,
        delivered,
        lost: MESSAGES - delivered,
        duplicated,
        out_of_order,
        sockets,
        connections,
        stall_ms: largest_gap.as_millis(),
    }
}

async fn inject(emu: &Emulator, proxy: &FaultProxy, sub: &Client, fault: Fault) {
    let id = sub.connection_id().unwrap_or_default();
    match fault {
        Fault::Proxy(direction, f) | Fault::ProxyFor(direction, f, _) => {
            let d = match direction {
                "upstream" => Direction::Upstream,
                "downstream" => Direction::Downstream,
                _ => Direction::Both,
            };
            proxy.set(d, f);
        }
        Fault::ResetAll => {
            proxy.reset_all();
        }
        Fault::RefuseThenReset => {
            proxy.set_refuse(true);
            proxy.reset_all();
        }
        Fault::Emulator(kind) => {
            let _ = match kind {
                "drop" => emu.drop_connection(HUB, &id),
                "close1011" => emu.close_connection(HUB, &id, 1011, "fault"),
                "close1008" => emu.close_connection(HUB, &id, 1008, "fault"),
                "stall" => emu.stall_connection(HUB, &id, Duration::from_secs(3)),
                // Kept for the rest of the stream (the socket's every frame arrives 300 ms late).
                "delay" => emu.delay_connection(HUB, &id, Duration::from_millis(300)),
                "restart" => {
                    emu.restart();
                    true
                }
                _ => emu.expire_connection(HUB, &id),
            };
        }
    }
}

/// Threads, open descriptors and RSS (KiB) of this process.
fn resources() -> (usize, usize, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    (field("Threads:") as usize, fds, field("VmRSS:"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let emu = Emulator::start(Config::default()).await.expect("emulator");
    let before = resources();
    println!("| fault | sent | acked | delivered | lost | duplicated | out of order | sockets opened | connection ids | longest gap (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failed = false;
    for (seed, (name, fault)) in faults().into_iter().enumerate() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let r = run_one(&emu, name, fault, seed as u64 + 1).await;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.sent,
            r.acked,
            r.delivered,
            r.lost,
            r.duplicated,
            r.out_of_order,
            r.sockets,
            r.connections,
            r.stall_ms
        );
        // A session that survives must lose and repeat nothing; one the service ends (1008,
        // expire, overflow, restart) may lose what arrived in between, never reorder. Every
        // send is acked (the publisher rides out its own faults).
        let session_kept = r.connections == 1;
        if r.out_of_order > 0
            || r.acked != r.sent
            || (session_kept && (r.lost > 0 || r.duplicated > 0))
        {
            failed = true;
        }
    }
    let after = resources();
    println!();
    println!(
        "process: threads {} -> {}, fds {} -> {}, RSS {} -> {} KiB",
        before.0, after.0, before.1, after.1, before.2, after.2
    );
    emu.shutdown().await;
    if failed {
        eprintln!("fault_matrix: a kept session lost or repeated messages, or an order was broken");
        std::process::exit(1);
    }
}
