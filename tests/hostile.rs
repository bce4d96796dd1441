//! A scripted, hostile service: each test plays exact frames to the client and checks what it
//! does in return, frame by frame. Covers reconnect and recovery pacing, rejoin and retry
//! traffic, ordering across a reconnect, and malformed or out-of-bounds service messages.

mod common;

use std::time::Duration;

use common::mock::{started_client, MockConn, MockServer};
use common::*;
use futures_util::future::join_all;
use tokio::time::Instant;
use webpubsub_client::{
    ClientOptions, Error, Event, Payload, Protocol, RetryMode, RetryPolicy, SendOptions,
};

fn fixed(max_retries: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        mode: RetryMode::Fixed,
        delay: Duration::from_millis(delay_ms),
        max_delay: Duration::from_millis(delay_ms),
        jitter: false,
    }
}

async fn stopped_reason(ev: &mut Events) -> Option<String> {
    match ev
        .until("Stopped", |e| matches!(e, Event::Stopped { .. }))
        .await
    {
        Event::Stopped { reason } => reason,
        _ => unreachable!(),
    }
}

/// Sends a fire-and-forget `marker` event and checks that it is the next frame the service
/// reads: nothing (a repeat, a retry) went out in between.
async fn marker_is_next(c: &webpubsub_client::Client, conn: &mut MockConn, what: &str) {
    let marker = SendOptions {
        fire_and_forget: true,
        ..SendOptions::default()
    };
    c.send_event("marker", Payload::text("m"), marker)
        .await
        .unwrap();
    let next: serde_json::Value = serde_json::from_str(&conn.recv_text().await.unwrap()).unwrap();
    assert_eq!(next["event"], "marker", "{what}: {next}");
}

/// Waits for the next connection and answers with `connected`.
async fn accept_connected(server: &mut MockServer, id: &str, token: Option<&str>) -> MockConn {
    let mut conn = server.accept().await;
    conn.connected(id, token).await;
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_closing_every_connection_with_1008_meets_the_retry_policy() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        reconnect_retry: fixed(3, 150),
        ..fast_options()
    };
    let (_c, mut ev, mut conn) = started_client(&mut server, opts, Some("tok")).await;
    conn.close(1008, "go away").await;
    // After the loss: one immediate attempt, then three retries 150 ms apart; every one of
    // them connects and is closed again at once, so none may reset the backoff.
    let mut opened = Vec::new();
    for n in 0..4 {
        let mut c = accept_connected(&mut server, &format!("c{n}"), Some("tok")).await;
        assert!(!c.is_recovery(), "1008 rules out recovery");
        opened.push(Instant::now());
        c.close(1008, "go away").await;
    }
    let reason = stopped_reason(&mut ev)
        .await
        .expect("a give-up is reported");
    assert!(reason.contains("reconnect retries exhausted"), "{reason}");
    assert!(
        server
            .accept_within(Duration::from_millis(400))
            .await
            .is_none(),
        "no connection after the client gave up"
    );
    for pair in opened.windows(2).skip(1) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(140),
            "retries are spaced by the policy's delay: {:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_drops_right_after_opening_pace_recovery_then_reconnect() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        recovery_timeout: Duration::from_millis(1000),
        recovery_interval: Duration::from_millis(200),
        ..fast_options()
    };
    let (_c, mut ev, conn) = started_client(&mut server, opts, Some("tok")).await;
    drop(conn);
    // Every recovery socket opens and is dropped before the service says anything: none of
    // them is a recovery, and the episode keeps its one deadline.
    let started = Instant::now();
    let mut recoveries = 0;
    let fresh = loop {
        let c = server.accept().await;
        if !c.is_recovery() {
            break c;
        }
        recoveries += 1;
        drop(c);
    };
    let took = started.elapsed();
    assert!(
        (3..=6).contains(&recoveries),
        "attempts 200 ms apart within 1 s: {recoveries}"
    );
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // One Recovering for the whole episode, then the session is lost (timed out).
    match ev.next().await {
        Event::Recovering { connection_id } => assert_eq!(connection_id, "conn1"),
        other => panic!("expected Recovering, got {other:?}"),
    }
    match ev.next().await {
        Event::SessionLost { reason, .. } => assert!(reason.contains("timeout"), "{reason}"),
        other => panic!("expected SessionLost, got {other:?}"),
    }
    match ev.next().await {
        Event::Disconnected { connection_id, .. } => {
            assert_eq!(connection_id.as_deref(), Some("conn1"))
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let mut fresh = fresh;
    fresh.connected("conn2", Some("tok2")).await;
    match ev.next().await {
        Event::Connected { connection_id, .. } => assert_eq!(connection_id, "conn2"),
        other => panic!("expected Connected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_series_of_drops_is_recovered_at_once_then_paced() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        recovery_timeout: Duration::from_secs(20),
        recovery_interval: Duration::from_secs(2),
        ..fast_options()
    };
    let (_c, mut ev, conn) = started_client(&mut server, opts, Some("tok")).await;
    drop(conn);
    // Each recovery works (the service answers), then drops again at once: the first drop
    // and three more are recovered without waiting, the next one waits for the interval.
    let mut waits = Vec::new();
    let mut dropped = Instant::now();
    for _ in 0..5 {
        let mut rec = server.accept().await;
        waits.push(dropped.elapsed());
        assert!(rec.is_recovery());
        rec.recv_type("ping").await;
        rec.send(r#"{"type":"pong"}"#).await;
        ev.until("Recovered", |e| matches!(e, Event::Recovered { .. }))
            .await;
        drop(rec);
        dropped = Instant::now();
    }
    for (n, wait) in waits[..4].iter().enumerate() {
        assert!(
            *wait < Duration::from_secs(1),
            "recovery {n} starts at once: {waits:?}"
        );
    }
    assert!(
        waits[4] >= Duration::from_millis(1500),
        "then recovery_interval apart: {waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_socket_counts_only_once_the_service_answers() {
    let mut server = MockServer::start().await;
    let (c, mut ev, conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    drop(conn);
    let mut rec = server.accept().await;
    assert!(rec.is_recovery());
    // The client asks the service to confirm the session with a ping.
    let ping = rec.recv_type("ping").await;
    assert_eq!(ping["type"], "ping");
    assert!(
        !c.is_connected(),
        "not recovered before the service answered"
    );
    // The engine handles frames in order: once the message after the pong is delivered, the
    // pong has marked the session recovered.
    rec.send(r#"{"type":"pong"}"#).await;
    rec.send(
        r#"{"type":"message","from":"server","dataType":"text","data":"after","sequenceId":1}"#,
    )
    .await;
    match ev.next().await {
        Event::Recovering { connection_id } => assert_eq!(connection_id, "conn1"),
        other => panic!("expected Recovering, got {other:?}"),
    }
    match ev.next().await {
        Event::Recovered { connection_id } => assert_eq!(connection_id, "conn1"),
        other => panic!("expected Recovered before the message, got {other:?}"),
    }
    match ev.next().await {
        Event::ServerMessage { message, .. } => assert_eq!(message.as_str(), Some("after")),
        other => panic!("expected the message, not {other:?}: no CONNECTED after a recovery"),
    }
    assert!(c.is_connected(), "recovered once the service answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_is_rejoined_once_after_a_reconnect() {
    let mut server = MockServer::start().await;
    let (c, mut ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    for g in ["g", "h"] {
        let join = {
            let c = c.clone();
            tokio::spawn(async move { c.join_group(g, None).await })
        };
        conn.ack_next(None).await;
        join.await.unwrap().unwrap();
    }
    conn.close(1008, "reconnect please").await;
    let mut conn2 = accept_connected(&mut server, "conn2", Some("tok2")).await;
    ev.until("Connected", |e| matches!(e, Event::Connected { .. }))
        .await;
    let first = conn2.ack_next(None).await;
    let second = conn2.ack_next(None).await;
    let groups = [&first["group"], &second["group"]];
    assert_eq!(groups, ["g", "h"]);
    assert_eq!(first["type"], "joinGroup");
    // A marker after the rejoins: the next frame on the wire must be it, not a repeat.
    marker_is_next(&c, &mut conn2, "each rejoin sent once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_negative_acks_fail_at_once_and_internal_errors_are_retried() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        message_retry: fixed(3, 50),
        ..fast_options()
    };
    let (c, _ev, mut conn) = started_client(&mut server, opts, Some("tok")).await;
    for name in ["Forbidden", "BadRequest"] {
        let started = Instant::now();
        let send = {
            let c = c.clone();
            tokio::spawn(async move {
                c.send_to_group("g", Payload::text("x"), SendOptions::default())
                    .await
            })
        };
        conn.ack_next(Some(name)).await;
        match send.await.unwrap() {
            Err(Error::Ack { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(45),
            "no retry delay"
        );
    }
    // InternalServerError is retried with the same ack id.
    let send = {
        let c = c.clone();
        tokio::spawn(async move {
            c.send_to_group("g", Payload::text("y"), SendOptions::default())
                .await
        })
    };
    let first = conn.ack_next(Some("InternalServerError")).await;
    let retry = conn.ack_next(None).await;
    assert_eq!(first["ackId"], retry["ackId"]);
    assert!(send.await.unwrap().is_ok());
    // Nothing else went out: the next frame is the marker.
    marker_is_next(&c, &mut conn, "no further retry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_pending_at_a_reconnect_go_out_again_in_their_order() {
    let mut server = MockServer::start().await;
    let (c, _ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    let sends = {
        let c = c.clone();
        tokio::spawn(async move {
            let sends = (0..20).map(|i| {
                let c = c.clone();
                async move {
                    c.send_to_group("g", Payload::text(format!("{i}")), SendOptions::default())
                        .await
                }
            });
            join_all(sends).await
        })
    };
    let mut before = Vec::new();
    for _ in 0..20 {
        let v: serde_json::Value = serde_json::from_str(&conn.recv_text().await.unwrap()).unwrap();
        before.push((v["ackId"].as_u64().unwrap(), v["data"].clone()));
    }
    // No acks; the service ends the session, so the client reconnects (no recovery).
    conn.close(1008, "session over").await;
    let mut conn2 = accept_connected(&mut server, "conn2", Some("tok2")).await;
    let mut after = Vec::new();
    for _ in 0..20 {
        let v = conn2.ack_next(None).await;
        after.push((v["ackId"].as_u64().unwrap(), v["data"].clone()));
    }
    assert_eq!(after, before, "same frames, same order");
    for r in sends.await.unwrap() {
        assert!(r.is_ok(), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnection_token_too_long_for_a_url_skips_recovery() {
    let mut server = MockServer::start().await;
    let huge = "t".repeat(100 * 1024);
    let (_c, mut ev, conn) = started_client(&mut server, fast_options(), Some(&huge)).await;
    drop(conn);
    let next = server.accept().await;
    assert!(!next.is_recovery(), "a new connection, at once");
    // Recovery starts, the URL cannot carry the token: the session is lost.
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::SessionLost { .. }));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_ends_the_session_without_recovery() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        max_inbound_message_size: 4096,
        ..fast_options()
    };
    let (_c, mut ev, mut conn) = started_client(&mut server, opts, Some("tok")).await;
    let big = format!(
        r#"{{"type":"message","from":"server","dataType":"text","data":"{}","sequenceId":1}}"#,
        "x".repeat(8192)
    );
    conn.send(&big).await;
    let next = server.accept().await;
    assert!(
        !next.is_recovery(),
        "recovery would replay the same message"
    );
    match ev.next().await {
        Event::SessionLost { reason, .. } => assert!(reason.contains("inbound limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match ev.next().await {
        Event::Disconnected { message, .. } => {
            let m = message.unwrap_or_default();
            assert!(m.contains("over the inbound limit"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_sequence_id_ends_the_session_and_the_next_one_works() {
    let mut server = MockServer::start().await;
    let (_c, mut ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    let msg = |seq: u64, text: &str| {
        format!(
            r#"{{"type":"message","from":"server","dataType":"text","data":"{text}","sequenceId":{seq}}}"#
        )
    };
    conn.send(&msg(1, "one")).await;
    conn.send(&msg(u64::MAX, "bogus")).await;
    let mut conn2 = server.accept().await;
    assert!(!conn2.is_recovery());
    conn2.connected("conn2", Some("tok2")).await;
    conn2.send(&msg(1, "fresh")).await;
    let mut seen = Vec::new();
    loop {
        match ev.next().await {
            Event::ServerMessage { message, .. } => {
                let text = message.as_str().unwrap().to_owned();
                let done = text == "fresh";
                seen.push(text);
                if done {
                    break;
                }
            }
            Event::Disconnected { message, .. } => {
                let m = message.unwrap_or_default();
                assert!(m.contains("sequence id 18446744073709551615"), "{m}");
                seen.push("disconnected".into());
            }
            Event::Connected { .. } => seen.push("connected".into()),
            Event::SessionLost {
                last_sequence_id, ..
            } => seen.push(format!("lost after {last_sequence_id}")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["one", "lost after 1", "disconnected", "connected", "fresh"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_before_connected_fail_start_clearly() {
    let cases = [
        (
            r#"{"type":"system","event":"connected","userId":"u"}"#,
            "connectionId",
        ),
        (
            r#"{"type":"message","from":"server","dataType":"text","data":"early"}"#,
            "before `connected`",
        ),
    ];
    for (frame, expected) in cases {
        let mut server = MockServer::start().await;
        let (c, mut ev) = client_with(server.url.clone(), fast_options());
        let start = {
            let c = c.clone();
            tokio::spawn(async move { c.start().await })
        };
        let mut conn = server.accept().await;
        conn.send(frame).await;
        let started = Instant::now();
        match start.await.unwrap() {
            Err(Error::Protocol(m)) => assert!(m.contains(expected), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2), "not a timeout");
        assert!(
            ev.none_for(Duration::from_millis(100)).await.is_none(),
            "nothing delivered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_names_the_application_and_the_library() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        user_agent: Some("gateway/2.1".into()),
        ..fast_options()
    };
    let (c, _ev) = client_with(server.url.clone(), opts);
    let start = {
        let c = c.clone();
        tokio::spawn(async move { c.start().await })
    };
    let mut conn = server.accept().await;
    let ua = conn.user_agent.clone().expect("a User-Agent header");
    let own = concat!("webpubsub-client/", env!("CARGO_PKG_VERSION"));
    assert!(ua.starts_with(&format!("gateway/2.1 {own} (")), "{ua}");
    conn.connected("conn1", None).await;
    start.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_ids_at_the_top_of_the_range_are_refused_and_allocation_goes_on() {
    let emu = emulator().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        ..fast_options()
    };
    let (c, _ev, _id) = connected(url(&emu, Some("u"), ROLES), opts).await;
    for bad in [u64::MAX, u64::MAX - 1, webpubsub_client::MAX_ACK_ID + 1] {
        let e = c.join_group("g", Some(bad)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
    let top = webpubsub_client::MAX_ACK_ID;
    let ok = c.join_group("g", Some(top)).await.unwrap();
    assert_eq!((ok.ack_id, ok.duplicated), (top, false));
    // Allocated ids continue above the caller's and are not answered as duplicates.
    for _ in 0..3 {
        let ok = c
            .send_to_group("g", Payload::text("x"), SendOptions::default())
            .await
            .unwrap();
        assert!(ok.ack_id > top && !ok.duplicated, "{ok:?}");
    }
    let again = c.join_group("g", Some(top)).await.unwrap();
    assert!(again.duplicated, "a retry of the same id is a Duplicate");
}
