//! The client's statistics move with what happens: sends, receives, acks, retries,
//! duplicates, connects, recoveries, session losses, queue and ping round trip.

mod common;

use std::future::Future;
use std::time::Duration;

use common::mock::{started_client, MockServer};
use common::*;
use webpubsub_client::{ClientOptions, ConnectionState, Event, Payload, SendOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_sends_receives_recoveries_and_session_losses() {
    let emu = emulator().await;
    let (c, mut ev, id) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    let s0 = c.stats();
    assert_eq!(s0.state, ConnectionState::Connected);
    assert_eq!(s0.connects, 1);
    assert_eq!(
        (s0.messages_sent, s0.acks_ok, s0.messages_received),
        (0, 0, 0)
    );
    c.join_group("g", None).await.unwrap();
    for i in 0..5 {
        c.send_to_group("g", Payload::text(format!("m{i}")), SendOptions::default())
            .await
            .unwrap();
    }
    for _ in 0..5 {
        ev.until("group message", is_group_message).await;
    }
    let s1 = c.stats();
    assert_eq!(s1.messages_sent, 6, "one join and five sends");
    assert_eq!(s1.acks_ok, 6);
    assert_eq!(s1.acks_failed, 0);
    assert_eq!(s1.messages_received, 5);
    assert!(s1.bytes_sent > 5 * 2, "{s1:?}");
    assert!(s1.bytes_received > s1.messages_received, "{s1:?}");
    assert_eq!(s1.inflight_acks, 0);
    assert_eq!((s1.queued_messages, s1.queued_bytes), (0, 0));

    // The same ack id again: the service answers Duplicate, a success.
    let dup = c
        .send_to_group(
            "g",
            Payload::text("again"),
            SendOptions {
                ack_id: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(dup.duplicated);
    assert_eq!(c.stats().duplicates, 1);
    assert_eq!(c.stats().acks_ok, 7);

    // A recovered drop, then a lost session.
    assert!(emu.drop_connection(HUB, &id));
    ev.until("recovered", |e| matches!(e, Event::Recovered { .. }))
        .await;
    assert_eq!(c.stats().recoveries, 1);
    assert!(emu.expire_connection(HUB, &id));
    ev.until("connected", |e| matches!(e, Event::Connected { .. }))
        .await;
    let s2 = c.stats();
    assert_eq!(s2.session_losses, 1);
    assert_eq!(s2.connects, 2);
    assert_eq!(s2.recoveries, 1);
    c.stop().await.unwrap();
    assert_eq!(c.stats().state, ConnectionState::Stopped);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_failures_and_the_queue_are_counted() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        recovery_timeout: Duration::from_secs(60),
        ..fast_options()
    };
    let (c, _ev, mut conn) = started_client(&mut server, opts, Some("tok")).await;
    // InternalServerError is retried once, then a final Forbidden fails.
    let send = {
        let c = c.clone();
        tokio::spawn(async move {
            c.send_to_group("g", Payload::text("x"), SendOptions::default())
                .await
        })
    };
    conn.ack_next(Some("InternalServerError")).await;
    conn.ack_next(Some("Forbidden")).await;
    assert!(send.await.unwrap().is_err());
    let s = c.stats();
    assert_eq!((s.retries, s.acks_failed, s.acks_ok), (1, 1, 0));
    assert_eq!(s.messages_sent, 2, "the first send and its retry");

    // Operations made during a recovery are in flight until the recovered socket takes them.
    let (c, mut ev) = (c, _ev);
    drop(conn);
    ev.until("recovering", |e| matches!(e, Event::Recovering { .. }))
        .await;
    let mut pending = Vec::new();
    for i in 0..3 {
        let mut op = Box::pin({
            let c = c.clone();
            async move {
                c.send_to_group("g", Payload::text(format!("q{i}")), SendOptions::default())
                    .await
            }
        });
        // One poll hands the operation to the engine.
        std::future::poll_fn(|cx| {
            let _ = op.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        pending.push(op);
    }
    let s = c.stats();
    assert_eq!(s.inflight_acks, 3);
    assert_eq!(s.state, ConnectionState::Recovering);
    let mut rec = server.accept().await;
    assert!(rec.is_recovery());
    let pending = tokio::spawn(futures_util::future::join_all(pending));
    // The service answers the recovery ping: the queue goes out.
    rec.recv_type("ping").await;
    rec.send(r#"{"type":"pong"}"#).await;
    for _ in 0..3 {
        rec.ack_next(None).await;
    }
    for r in pending.await.unwrap() {
        r.unwrap();
    }
    let s = c.stats();
    assert_eq!((s.queued_messages, s.queued_bytes), (0, 0));
    assert_eq!(s.acks_ok, 3);
    assert_eq!(s.recoveries, 1);
    assert!(s.last_ping_rtt_us > 0);
    c.stop().await.unwrap();
}
