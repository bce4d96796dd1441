//! The offline queue: operations made before the first connection or while reconnecting wait
//! in order with their ack ids, a full queue refuses or waits, stop cancels what is queued.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use common::mock::{self, MockServer};
use common::*;
use webpubsub_client::{
    AckOk, ClientOptions, ConnectionState, Error, Event, OfflineQueue, Payload, SendOptions,
};

type Op = Pin<Box<dyn Future<Output = Result<AckOk, Error>> + Send>>;

fn queued(max_messages: usize, max_bytes: usize) -> ClientOptions {
    ClientOptions {
        offline_queue: Some(OfflineQueue {
            max_messages,
            max_bytes,
        }),
        ..fast_options()
    }
}

/// Polls `op` once (which hands it to the engine) and returns it.
async fn handed_over(mut op: Op) -> Op {
    std::future::poll_fn(|cx| {
        assert!(op.as_mut().poll(cx).is_pending(), "completed at once");
        std::task::Poll::Ready(())
    })
    .await;
    op
}

fn send(c: &webpubsub_client::Client, group: &'static str, text: String) -> Op {
    let c = c.clone();
    Box::pin(async move {
        c.send_to_group(group, Payload::text(text), SendOptions::default())
            .await
    })
}

fn fire(c: &webpubsub_client::Client, group: &'static str, text: String) -> Op {
    let c = c.clone();
    Box::pin(async move {
        let opts = SendOptions {
            fire_and_forget: true,
            ..SendOptions::default()
        };
        c.send_to_group(group, Payload::text(text), opts).await
    })
}

/// Waits (within `WAIT`) until the engine has taken `n` operations into its queue.
async fn until_queued(c: &webpubsub_client::Client, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.stats().queued_messages < n {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", c.stats());
        tokio::task::yield_now().await;
    }
}

/// The group messages `m0` .. `m{n-1}` arrive in order, and nothing after them.
async fn receive_in_order_once(rx: &mut Events, n: usize) {
    for i in 0..n {
        match rx.until("group message", is_group_message).await {
            Event::GroupMessage { message, .. } => {
                assert_eq!(message.as_str(), Some(format!("m{i}").as_str()))
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(
        rx.none_for(Duration::from_millis(200)).await,
        None,
        "each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_before_start_go_out_in_order_once_connected() {
    let emu = emulator().await;
    let (rx, mut rx_ev, _) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    rx.join_group("q", None).await.unwrap();
    let (c, mut ev) = client_with(url(&emu, Some("s"), ROLES), queued(100, 0));
    let mut ops = Vec::new();
    for i in 0..10 {
        ops.push(handed_over(send(&c, "q", format!("m{i}"))).await);
    }
    assert_eq!(c.state(), ConnectionState::Stopped);
    assert_eq!(c.stats().inflight_acks, 10);
    // The engine takes them into its queue (the statistic follows within the deadline).
    until_queued(&c, 10).await;
    assert!(c.stats().queued_bytes >= 10 * 2);
    c.start().await.unwrap();
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    let ids: Vec<u64> = futures_util::future::join_all(ops)
        .await
        .into_iter()
        .map(|r| r.unwrap().ack_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ack ids kept: {ids:?}");
    receive_in_order_once(&mut rx_ev, 10).await;
    assert_eq!(c.stats().queued_messages, 0);
    c.stop().await.unwrap();
    rx.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_queue_a_send_before_start_is_not_connected_acked_or_not() {
    let (c, _ev) = client_with(
        "ws://127.0.0.1:9/client/hubs/h?access_token=t".into(),
        fast_options(),
    );
    let r = c
        .send_to_group("g", Payload::text("x"), SendOptions::default())
        .await;
    assert!(matches!(r, Err(Error::NotConnected { .. })), "{r:?}");
    let r = fire(&c, "g", "x".into()).await;
    assert!(matches!(r, Err(Error::NotConnected { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_waits_up_to_the_ack_timeout_then_fails() {
    let opts = ClientOptions {
        ack_timeout: Duration::from_millis(300),
        ..queued(2, 0)
    };
    let (c, _ev) = client_with("ws://127.0.0.1:9/client/hubs/h?access_token=t".into(), opts);
    // Fire-and-forget sends take room in the same queue.
    let a = handed_over(send(&c, "g", "a".into())).await;
    let b = handed_over(fire(&c, "g", "b".into())).await;
    let started = tokio::time::Instant::now();
    let third = send(&c, "g", "c".into()).await;
    // Room frees only when `a` or `b` reaches its own ack timeout, a few milliseconds before
    // the third call's wait for room ends; whether the engine notices that first decides
    // between the two outcomes. Either way the call waited its timeout and did not succeed:
    // it found no room (QueueFull), or took the freed room and timed out in the queue.
    assert!(
        matches!(third, Err(Error::QueueFull(_)) | Err(Error::Timeout { .. })),
        "{third:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    for r in [a.await, b.await] {
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    }
    assert_eq!(c.stats().queued_messages, 0);
    // A byte limit: an operation larger than it is refused at once.
    let (small, _sev) = client_with(
        "ws://127.0.0.1:9/client/hubs/h?access_token=t".into(),
        queued(10, 4),
    );
    let started = tokio::time::Instant::now();
    let big = send(&small, "g", "12345".into()).await;
    assert!(matches!(big, Err(Error::QueueFull(_))), "{big:?}");
    let big = fire(&small, "g", "12345".into()).await;
    assert!(matches!(big, Err(Error::QueueFull(_))), "{big:?}");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_what_is_queued() {
    let (c, _ev) = client_with(
        "ws://127.0.0.1:9/client/hubs/h?access_token=t".into(),
        queued(2, 0),
    );
    let a = handed_over(send(&c, "g", "a".into())).await;
    let b = handed_over(fire(&c, "g", "b".into())).await;
    // Stop completes what is queued with Stopped (WPS_ERR_CANCELLED in C), long before the
    // operations' ack timeout.
    c.stop().await.unwrap();
    assert!(matches!(a.await, Err(Error::Stopped { .. })));
    assert!(matches!(b.await, Err(Error::Stopped { .. })));
    assert_eq!(c.stats().queued_messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_queued_before_start_times_out_with_its_ack_timeout_and_frees_its_room() {
    let opts = ClientOptions {
        ack_timeout: Duration::from_millis(100),
        ..queued(1, 0)
    };
    let (c, _ev) = client_with("ws://127.0.0.1:9/client/hubs/h?access_token=t".into(), opts);
    // Room for one: each finds it (a leaked slot would make the next one QueueFull).
    for op in [send(&c, "g", "x".into()), fire(&c, "g", "y".into())] {
        let r = tokio::time::timeout(WAIT, op)
            .await
            .expect("bounded by the ack timeout");
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    }
    assert_eq!(c.stats().queued_messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_while_reconnecting_are_queued_and_sent_once_on_the_new_connection() {
    let mut server = MockServer::start().await;
    let (c, mut ev) = client_with(server.url.clone(), queued(100, 0));
    let start = tokio::spawn({
        let c = c.clone();
        async move { c.start().await }
    });
    let mut conn = server.accept().await;
    conn.connected("conn1", Some("tok1")).await;
    start.await.unwrap().unwrap();
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    // The service ends the session: no recovery, a new connection follows.
    conn.close(1008, "bye").await;
    ev.until("disconnected", |e| matches!(e, Event::Disconnected { .. }))
        .await;
    let mut ops = Vec::new();
    for i in 0..5 {
        ops.push(handed_over(send(&c, "g", format!("r{i}"))).await);
    }
    let mut conn2 = server.accept().await;
    assert!(!conn2.is_recovery());
    conn2.connected("conn2", Some("tok2")).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let v = conn2.ack_next(None).await;
        seen.push(v["data"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["r0", "r1", "r2", "r3", "r4"]);
    for r in futures_util::future::join_all(ops).await {
        r.unwrap();
    }
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_sends_before_start_are_queued_in_order_with_acked_ones() {
    let emu = emulator().await;
    let (rx, mut rx_ev, _) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    rx.join_group("ff", None).await.unwrap();
    let (c, mut ev) = client_with(url(&emu, Some("s"), ROLES), queued(100, 0));
    // Fire-and-forget and acked sends alternate; all wait in one queue.
    let mut ops = Vec::new();
    for i in 0..10 {
        let text = format!("m{i}");
        let op = if i % 2 == 0 {
            fire(&c, "ff", text)
        } else {
            send(&c, "ff", text)
        };
        ops.push(handed_over(op).await);
    }
    until_queued(&c, 10).await;
    assert_eq!(c.state(), ConnectionState::Stopped);
    c.start().await.unwrap();
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    let results = futures_util::future::join_all(ops).await;
    for (i, r) in results.into_iter().enumerate() {
        let ok = r.unwrap_or_else(|e| panic!("send {i}: {e}"));
        assert_eq!(ok.ack_id == 0, i % 2 == 0, "send {i}: {ok:?}");
    }
    receive_in_order_once(&mut rx_ev, 10).await;
    assert_eq!(c.stats().queued_messages, 0);
    c.stop().await.unwrap();
    rx.stop().await.unwrap();
    emu.shutdown().await;
}

/// A client with the offline queue, connected to `server`, whose connection then drops
/// (recoverable); `n` fire-and-forget sends (`f0`, `f1`, ...) are handed over while it recovers.
async fn fire_while_recovering(
    server: &mut MockServer,
    n: usize,
) -> (webpubsub_client::Client, Events, Vec<Op>) {
    let (c, mut ev, mut conn) = mock::started_client(server, queued(100, 0), Some("tok1")).await;
    conn.close(1011, "gone").await;
    ev.until("recovering", |e| matches!(e, Event::Recovering { .. }))
        .await;
    let mut ops = Vec::new();
    for i in 0..n {
        ops.push(handed_over(fire(&c, "g", format!("f{i}"))).await);
    }
    (c, ev, ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_sends_during_a_failed_recovery_go_out_on_the_new_connection() {
    let mut server = MockServer::start().await;
    let (c, mut ev, ops) = fire_while_recovering(&mut server, 5).await;
    // The service refuses the recovery: the session is lost and a new connection follows.
    let mut recovery = server.accept().await;
    assert!(recovery.is_recovery());
    recovery.close(1008, "no such session").await;
    ev.until("session lost", |e| matches!(e, Event::SessionLost { .. }))
        .await;
    let mut conn2 = loop {
        let next = server.accept().await;
        if !next.is_recovery() {
            break next;
        }
    };
    conn2.connected("conn2", Some("tok2")).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let v = conn2.recv_type("sendToGroup").await;
        assert!(v.get("ackId").is_none(), "fire-and-forget: {v}");
        seen.push(v["data"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["f0", "f1", "f2", "f3", "f4"]);
    for r in futures_util::future::join_all(ops).await {
        r.unwrap();
    }
    assert_eq!(c.stats().queued_messages, 0);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_sends_during_a_recovery_go_out_once_the_service_accepts_it() {
    let mut server = MockServer::start().await;
    let (c, mut ev, ops) = fire_while_recovering(&mut server, 3).await;
    let mut recovery = server.accept().await;
    assert!(recovery.is_recovery());
    // The client asks first; the frames follow the service's answer.
    recovery.recv_type("ping").await;
    recovery.send(r#"{"type":"pong"}"#).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let v = recovery.recv_type("sendToGroup").await;
        seen.push(v["data"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["f0", "f1", "f2"]);
    ev.until("recovered", |e| matches!(e, Event::Recovered { .. }))
        .await;
    for r in futures_util::future::join_all(ops).await {
        r.unwrap();
    }
    c.stop().await.unwrap();
}
