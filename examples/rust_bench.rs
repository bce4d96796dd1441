//! Throughput of the Rust API against an in-process emulator, next to a raw tokio-tungstenite
//! client sending the same frames (the upper bound for any client on this machine).
//!
//! `cargo run --release -p webpubsub-client --example rust_bench [messages]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use webpubsub_client::{
    Client, ClientOptions, Credential, Event, EventHandler, Payload, SendOptions,
};

struct Ignore;
impl EventHandler for Ignore {
    fn on_event(&self, _: &webpubsub_client::ClientId, _: Event) {}
}

/// Operations in flight at once in the pipelined runs.
const WINDOW: usize = 256;
const GROUP: &str = "bench";

fn payload() -> Payload {
    Payload::text("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn client(url: &str) -> Client {
    let c = Client::new(
        Credential::Url(url.to_string()),
        ClientOptions::default(),
        Arc::new(Ignore),
    );
    c.start().await.expect("start");
    c
}

async fn sequential(c: &Client, n: usize, opts: SendOptions) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        c.send_to_group(GROUP, payload(), opts).await.expect("send");
    }
    rate(n, t.elapsed())
}

async fn pipelined(c: &Client, n: usize, opts: SendOptions) -> f64 {
    let t = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for _ in 0..n {
        if inflight.len() >= WINDOW {
            let r: Result<_, webpubsub_client::Error> = inflight.next().await.unwrap();
            r.expect("send");
        }
        inflight.push(c.send_to_group(GROUP, payload(), opts));
    }
    while let Some(r) = inflight.next().await {
        r.expect("send");
    }
    rate(n, t.elapsed())
}

/// The same fire-and-forget frames written by a bare tokio-tungstenite client.
async fn raw(url: &str, n: usize, flush_each: bool) -> f64 {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "json.reliable.webpubsub.azure.v1".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("raw connect");
    ws.next().await; // `connected`
    let frame = format!(
        r#"{{"type":"sendToGroup","group":"{GROUP}","dataType":"text","data":"{}","noEcho":false}}"#,
        payload().as_str().unwrap()
    );
    let t = Instant::now();
    for _ in 0..n {
        if flush_each {
            ws.send(Message::text(frame.clone())).await.unwrap();
        } else {
            ws.feed(Message::text(frame.clone())).await.unwrap();
        }
    }
    ws.flush().await.unwrap();
    let r = rate(n, t.elapsed());
    let _ = ws.close(None).await;
    r
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    // The emulator gets its own runtime so it does not compete with the client's scheduler.
    let emu_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emu = emu_rt
        .block_on(webpubsub_emulator::Emulator::start(
            webpubsub_emulator::Config::default(),
        ))
        .expect("emulator");
    let url = emu.client_access_url(
        "bench",
        Some("bench"),
        &["webpubsub.sendToGroup"],
        &[],
        Duration::from_secs(3600),
    );
    let acked_n = n / 5;
    // Callers run as tasks on the client's runtime (as async Rust code would), except the
    // "blocking caller" line, where a plain thread waits for each send (as a C caller does).
    let blocking_ff_seq = {
        let c = webpubsub_client::runtime::block_on({
            let url = url.clone();
            async move { client(&url).await }
        });
        let ff = SendOptions {
            fire_and_forget: true,
            ..Default::default()
        };
        let m = n / 5;
        let t = Instant::now();
        for _ in 0..m {
            let c = c.clone();
            webpubsub_client::runtime::block_on(async move {
                c.send_to_group(GROUP, payload(), ff).await.expect("send")
            });
        }
        let r = rate(m, t.elapsed());
        webpubsub_client::runtime::block_on(async move { c.stop().await.unwrap() });
        r
    };
    // The same blocking caller without the fire-and-forget buffer (each send waits until its
    // frame is written to the socket).
    let blocking_ff_write_through = {
        let c = webpubsub_client::runtime::block_on({
            let url = url.clone();
            async move {
                let opts = ClientOptions {
                    fire_and_forget_buffer: 0,
                    ..ClientOptions::default()
                };
                let c = Client::new(Credential::Url(url), opts, Arc::new(Ignore));
                c.start().await.expect("start");
                c
            }
        });
        let ff = SendOptions {
            fire_and_forget: true,
            ..Default::default()
        };
        let t = Instant::now();
        for _ in 0..n {
            let c = c.clone();
            webpubsub_client::runtime::block_on(async move {
                c.send_to_group(GROUP, payload(), ff).await.expect("send")
            });
        }
        let r = rate(n, t.elapsed());
        webpubsub_client::runtime::block_on(async move { c.stop().await.unwrap() });
        r
    };
    let task = webpubsub_client::runtime::spawn(async move {
        let c = client(&url).await;
        let ff = SendOptions {
            fire_and_forget: true,
            ..Default::default()
        };
        // Warm-up.
        pipelined(&c, 2_000, ff).await;
        let raw_seq = raw(&url, n, true).await;
        let raw_pipe = raw(&url, n, false).await;
        let ff_seq = sequential(&c, n, ff).await;
        let ff_pipe = pipelined(&c, n, ff).await;
        let ack_seq = sequential(&c, acked_n, SendOptions::default()).await;
        let ack_pipe = pipelined(&c, acked_n, SendOptions::default()).await;
        println!(
            "messages: {n} fire-and-forget, {acked_n} acked; 64-byte text payload; window {WINDOW}"
        );
        println!("raw tokio-tungstenite, send+flush each : {raw_seq:>10.0} msg/s");
        println!("raw tokio-tungstenite, feed, one flush : {raw_pipe:>10.0} msg/s");
        println!("fire-and-forget, sequential            : {ff_seq:>10.0} msg/s ({:.0}% of raw send+flush)", 100.0 * ff_seq / raw_seq);
        println!(
            "fire-and-forget, pipelined             : {ff_pipe:>10.0} msg/s ({:.0}% of raw feed)",
            100.0 * ff_pipe / raw_pipe
        );
        println!("fire-and-forget, blocking caller       : {blocking_ff_seq:>10.0} msg/s");
        println!(
            "  same, fire_and_forget_buffer = 0     : {blocking_ff_write_through:>10.0} msg/s"
        );
        println!("acked, sequential                      : {ack_seq:>10.0} msg/s");
        println!("acked, pipelined                       : {ack_pipe:>10.0} msg/s");
        c.stop().await.unwrap();
    });
    webpubsub_client::runtime::block_on(async move { task.await.unwrap() });
    emu_rt.block_on(emu.shutdown());
}
