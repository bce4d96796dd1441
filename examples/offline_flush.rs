//! Offline-queue throughput: how fast a publisher's queued sends go out once it connects.
//!
//! A reliable subscriber stays connected to an in-process emulator. A publisher with the offline
//! queue on queues `N` sends while it cannot connect, in two situations:
//!
//! * **before start**: the sends are made before `start`;
//! * **while reconnecting**: the service ends the publisher's session (close 1008) while its URL
//!   provider fails (an outage), so the publisher keeps reconnecting; the sends are made then,
//!   and the outage ends.
//!
//! For each, acked sends and fire-and-forget sends are measured separately: the time from the
//! publisher's `Connected` to the last completion (acks, or writes) and to the last delivery at
//! the subscriber, as messages per second. Everything runs in this process on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example offline_flush                # N = 10000, 64-byte messages
//! cargo run --release --example offline_flush -- 50000 256   # N, payload bytes
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use webpubsub_client::{
    Client, ClientId, ClientOptions, ConnectionState, Credential, Event, EventHandler,
    OfflineQueue, Payload, RetryMode, RetryPolicy, SendOptions,
};
use webpubsub_emulator::{Config, Emulator};

const HUB: &str = "offline";
const GROUP: &str = "flush";
const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
const WAIT: Duration = Duration::from_secs(120);

fn options(queue: usize) -> ClientOptions {
    ClientOptions {
        offline_queue: Some(OfflineQueue {
            max_messages: queue,
            max_bytes: 0,
        }),
        ack_timeout: WAIT,
        reconnect_retry: RetryPolicy {
            max_retries: u32::MAX,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(50),
            jitter: false,
        },
        ..ClientOptions::default()
    }
}

/// Events with the time the engine reported them (not when this program got to them).
type Events = UnboundedReceiver<(Instant, Event)>;

struct Stamped(UnboundedSender<(Instant, Event)>);

impl EventHandler for Stamped {
    fn on_event(&self, _client: &ClientId, event: Event) {
        let _ = self.0.send((Instant::now(), event));
    }
}

fn client(credential: Credential, options: ClientOptions) -> (Client, Events) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Client::new(credential, options, Arc::new(Stamped(tx))), rx)
}

/// Waits for an event matching `pred`, at most `WAIT`; returns when it was reported.
async fn until(rx: &mut Events, what: &str, pred: impl Fn(&Event) -> bool) -> Instant {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((at, e))) if pred(&e) => return at,
            Ok(Some(_)) => {}
            _ => panic!("no {what} within {WAIT:?}"),
        }
    }
}

/// Counts `n` group messages at the subscriber; returns when the last one arrived.
async fn deliveries(rx: &mut Events, n: usize) -> Instant {
    let mut last = Instant::now();
    for _ in 0..n {
        last = until(rx, "group message", |e| {
            matches!(e, Event::GroupMessage { .. })
        })
        .await;
    }
    last
}

/// Hands `n` sends to the publisher (each waits in the queue); returns their tasks.
async fn queue_sends(
    publisher: &Client,
    n: usize,
    size: usize,
    fire_and_forget: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let c = publisher.clone();
        let opts = SendOptions {
            fire_and_forget,
            ..SendOptions::default()
        };
        let data = vec![b'x'; size];
        tasks.push(tokio::spawn(async move {
            c.send_to_group(GROUP, Payload::binary(data), opts)
                .await
                .expect("a queued send completes");
        }));
    }
    // Every send is in the engine's queue before the connection comes.
    let deadline = Instant::now() + WAIT;
    while (publisher.stats().queued_messages as usize) < n {
        assert!(Instant::now() < deadline, "queued: {:?}", publisher.stats());
        tokio::task::yield_now().await;
    }
    tasks
}

struct Row {
    situation: &'static str,
    kind: &'static str,
    n: usize,
    to_completions: Duration,
    to_deliveries: Duration,
}

/// A publisher that is about to connect with `tasks` queued, and its events.
struct Queued {
    publisher: Client,
    events: Events,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Measures from the publisher's `Connected` until every queued send completed and the
/// subscriber received all `n`.
async fn measure(
    situation: &'static str,
    fire_and_forget: bool,
    q: &mut Queued,
    subscriber: &mut Events,
    n: usize,
) -> Row {
    let Queued {
        publisher,
        events,
        tasks,
    } = q;
    let connected = until(events, "publisher connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    // The subscriber's receiver moves into a task counting deliveries meanwhile, and comes back
    // with the time of the last one.
    let mut rx = std::mem::replace(subscriber, tokio::sync::mpsc::unbounded_channel().1);
    let delivered = tokio::spawn(async move {
        let at = deliveries(&mut rx, n).await;
        (rx, at)
    });
    for t in tasks.drain(..) {
        t.await.expect("send task");
    }
    let completed = Instant::now();
    let (rx, delivered_at) = delivered.await.expect("delivery task");
    *subscriber = rx;
    assert_eq!(publisher.stats().queued_messages, 0);
    Row {
        situation,
        kind: if fire_and_forget {
            "fire-and-forget"
        } else {
            "acked"
        },
        n,
        to_completions: completed - connected,
        to_deliveries: delivered_at - connected,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(10_000, |a| a.parse().expect("N"));
    let size: usize = args
        .next()
        .map_or(64, |a| a.parse().expect("payload bytes"));
    let emu = Emulator::start(Config::default()).await.expect("emulator");
    let url =
        |user: &str| emu.client_access_url(HUB, Some(user), ROLES, &[], Duration::from_secs(3600));
    let (sub, mut sub_rx) = client(Credential::Url(url("sub")), ClientOptions::default());
    sub.start().await.expect("subscriber starts");
    sub.join_group(GROUP, None).await.expect("join");
    let mut rows = Vec::new();

    for fire_and_forget in [false, true] {
        // Before start.
        let (publisher, events) = client(Credential::Url(url("pub")), options(n));
        let tasks = queue_sends(&publisher, n, size, fire_and_forget).await;
        let start = tokio::spawn({
            let p = publisher.clone();
            async move { p.start().await }
        });
        let mut q = Queued {
            publisher,
            events,
            tasks,
        };
        rows.push(measure("before start", fire_and_forget, &mut q, &mut sub_rx, n).await);
        start.await.unwrap().expect("publisher starts");
        q.publisher.stop().await.unwrap();

        // While reconnecting: an outage of the publisher's URL provider, then its session ends.
        let outage = Arc::new(AtomicBool::new(false));
        let provider = {
            let outage = outage.clone();
            let pub_url = url("pub");
            Credential::Provider(Arc::new(move || {
                if outage.load(Ordering::SeqCst) {
                    Err("outage".to_string())
                } else {
                    Ok(pub_url.clone())
                }
            }))
        };
        let (publisher, mut events) = client(provider, options(n));
        publisher.start().await.expect("publisher starts");
        until(&mut events, "publisher connected", |e| {
            matches!(e, Event::Connected { .. })
        })
        .await;
        outage.store(true, Ordering::SeqCst);
        let id = publisher.connection_id().expect("connected");
        assert!(emu.close_connection(HUB, &id, 1008, "session ended by the example"));
        until(&mut events, "publisher disconnected", |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await;
        assert_ne!(publisher.state(), ConnectionState::Connected);
        let tasks = queue_sends(&publisher, n, size, fire_and_forget).await;
        outage.store(false, Ordering::SeqCst);
        let mut q = Queued {
            publisher,
            events,
            tasks,
        };
        rows.push(
            measure(
                "while reconnecting",
                fire_and_forget,
                &mut q,
                &mut sub_rx,
                n,
            )
            .await,
        );
        q.publisher.stop().await.unwrap();
    }
    sub.stop().await.unwrap();
    emu.shutdown().await;

    println!(
        "Offline queue flush: {n} queued sends of {size} bytes, reliable JSON, one subscriber\n"
    );
    println!(
        "| queued | kind | messages | connected → last completion | msg/s | connected → last delivery | msg/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.1} ms | {:.0} | {:.1} ms | {:.0} |",
            r.situation,
            r.kind,
            r.n,
            r.to_completions.as_secs_f64() * 1e3,
            r.n as f64 / r.to_completions.as_secs_f64(),
            r.to_deliveries.as_secs_f64() * 1e3,
            r.n as f64 / r.to_deliveries.as_secs_f64(),
        );
    }
}
