//! Group streams end to end against the emulator (publisher and receiver), the receiver's
//! gap and duplicate detection and the publisher's rewind against a scripted service, and
//! group state with its renewal after a reconnect.

mod common;

use std::time::Duration;

use common::mock::{started_client, MockServer};
use common::*;
use serde_json::json;
use webpubsub_client::{ClientOptions, Error, Event, Payload, StreamOptions};

/// The next stream frame, skipping other events.
async fn next_frame(ev: &mut Events) -> Event {
    ev.until("a stream frame", |e| matches!(e, Event::StreamFrame { .. }))
        .await
}

/// The fragments' texts until the terminal frame, and the terminal frame.
async fn read_stream(ev: &mut Events) -> (Vec<String>, Vec<u64>, Event) {
    let mut texts = Vec::new();
    let mut ids = Vec::new();
    loop {
        let e = next_frame(ev).await;
        let Event::StreamFrame {
            message,
            stream_sequence_id,
            end_of_stream,
            ..
        } = &e
        else {
            unreachable!()
        };
        if *end_of_stream {
            return (texts, ids, e);
        }
        texts.push(message.as_str().unwrap().to_string());
        ids.push(*stream_sequence_id);
    }
}

fn terminal_error(e: &Event) -> Option<(String, Option<String>)> {
    match e {
        Event::StreamFrame {
            end_of_stream: true,
            error,
            ..
        } => error
            .as_ref()
            .map(|e| (e.name.clone(), e.user_error_code.clone())),
        other => panic!("expected a terminal stream frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reaches_a_subscriber_in_order_and_ends() {
    let emu = emulator().await;
    let (sub, mut sub_ev, _) = connected(url(&emu, Some("bob"), ROLES), fast_options()).await;
    sub.join_group("g", None).await.unwrap();
    let (publisher, _pub_ev, _) = connected(url(&emu, Some("alice"), ROLES), fast_options()).await;
    let stream = publisher
        .open_stream("g", StreamOptions::default())
        .await
        .expect("the service accepts the stream");
    assert_eq!(stream.id().len(), 36, "a generated UUID");
    for i in 1..=200 {
        stream
            .write(Payload::text(format!("part {i}")))
            .await
            .unwrap();
    }
    stream.end().await.expect("streamClosed confirms the end");
    let (texts, ids, last) = read_stream(&mut sub_ev).await;
    assert_eq!(texts.len(), 200);
    assert_eq!(texts[0], "part 1");
    assert_eq!(texts[199], "part 200");
    assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
    assert_eq!(terminal_error(&last), None);
    match &last {
        Event::StreamFrame {
            stream_id,
            stream_sequence_id,
            from_user_id,
            group,
            ..
        } => {
            assert_eq!(stream_id, stream.id());
            assert_eq!(*stream_sequence_id, 201);
            assert_eq!(from_user_id.as_deref(), Some("alice"));
            assert_eq!(group, "g");
        }
        _ => unreachable!(),
    }
    // An ended stream takes nothing more.
    let late = stream.write(Payload::text("late")).await;
    assert!(
        matches!(late, Err(Error::StreamClosed { ref name, .. }) if name == "Ended"),
        "{late:?}"
    );
    assert!(matches!(
        stream.end().await,
        Err(Error::StreamClosed { .. })
    ));
    // Binary and JSON fragments keep their type.
    let s2 = publisher
        .open_stream(
            "g",
            StreamOptions {
                stream_id: Some("typed".into()),
                ..StreamOptions::default()
            },
        )
        .await
        .unwrap();
    s2.write(Payload::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    s2.write(Payload::json(r#"{"k":[1,2]}"#)).await.unwrap();
    s2.end().await.unwrap();
    match next_frame(&mut sub_ev).await {
        Event::StreamFrame {
            message, stream_id, ..
        } => {
            assert_eq!(stream_id, "typed");
            assert_eq!(message, Payload::binary(vec![0u8, 1, 2, 255]));
        }
        _ => unreachable!(),
    }
    match next_frame(&mut sub_ev).await {
        Event::StreamFrame { message, .. } => {
            assert_eq!(message.data_type, webpubsub_client::DataType::Json);
            let v: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
            assert_eq!(v, json!({"k":[1,2]}));
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_reaches_subscribers_as_a_user_error_and_refusals_carry_the_service_error() {
    let emu = emulator().await;
    let (sub, mut sub_ev, _) = connected(url(&emu, Some("bob"), ROLES), fast_options()).await;
    sub.join_group("g", None).await.unwrap();
    let (publisher, _e, _) = connected(url(&emu, Some("alice"), ROLES), fast_options()).await;
    let s = publisher
        .open_stream("g", StreamOptions::default())
        .await
        .unwrap();
    s.write(Payload::text("one")).await.unwrap();
    s.abort(Some("disk full"), Some("E42")).await.unwrap();
    let (texts, _, last) = read_stream(&mut sub_ev).await;
    assert_eq!(texts, ["one"]);
    assert_eq!(
        terminal_error(&last),
        Some(("UserError".to_string(), Some("E42".to_string())))
    );
    assert!(matches!(
        s.write(Payload::text("x")).await,
        Err(Error::StreamClosed { .. })
    ));

    // Two open streams with one id on one client: refused before anything is sent.
    let _a = publisher
        .open_stream(
            "g",
            StreamOptions {
                stream_id: Some("same".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dup = publisher
        .open_stream(
            "g",
            StreamOptions {
                stream_id: Some("same".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(dup, Err(Error::InvalidArgument(_))), "{dup:?}");

    // Without the permission to send to the group the service refuses the stream.
    let (limited, _e2, _) = connected(
        url(&emu, Some("carol"), &["webpubsub.joinLeaveGroup"]),
        fast_options(),
    )
    .await;
    let refused = limited.open_stream("g", StreamOptions::default()).await;
    assert!(
        matches!(refused, Err(Error::StreamRefused { ref name, .. }) if name == "Forbidden"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_acks_beyond_the_stream_buffer() {
    let emu = emulator().await;
    let opts = ClientOptions {
        stream_buffer: 1000,
        ..fast_options()
    };
    let (publisher, _e, pub_id) = connected(url(&emu, Some("alice"), ROLES), opts).await;
    let s = publisher
        .open_stream("g", StreamOptions::default())
        .await
        .unwrap();
    // The service's acks now reach the publisher a second late.
    assert!(emu.delay_connection(HUB, &pub_id, Duration::from_millis(1000)));
    let fragment = || Payload::binary(vec![7u8; 100]);
    for _ in 0..10 {
        s.write(fragment()).await.unwrap();
    }
    // 1000 bytes are unacknowledged: the next write waits for an ack.
    let blocked = tokio::time::timeout(Duration::from_millis(300), s.write(fragment())).await;
    assert!(blocked.is_err(), "the 11th write must wait for room");
    tokio::time::timeout(WAIT, s.write(fragment()))
        .await
        .expect("the write completes once acks arrive")
        .unwrap();
    assert!(emu.delay_connection(HUB, &pub_id, Duration::ZERO));
    s.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_published_across_a_drop_arrives_complete_in_order_once() {
    let emu = emulator().await;
    let (sub, mut sub_ev, _) = connected(url(&emu, Some("bob"), ROLES), fast_options()).await;
    sub.join_group("g", None).await.unwrap();
    let (publisher, mut pub_ev, pub_id) =
        connected(url(&emu, Some("alice"), ROLES), fast_options()).await;
    let s = publisher
        .open_stream("g", StreamOptions::default())
        .await
        .unwrap();
    for i in 1..=1000u32 {
        s.write(Payload::text(i.to_string())).await.unwrap();
        if i == 400 {
            assert!(emu.drop_connection(HUB, &pub_id));
        }
    }
    s.end().await.expect("the end goes out after the recovery");
    pub_ev
        .until("Recovered", |e| matches!(e, Event::Recovered { .. }))
        .await;
    let (texts, ids, last) = read_stream(&mut sub_ev).await;
    assert_eq!(terminal_error(&last), None);
    assert_eq!(
        ids,
        (1..=1000).collect::<Vec<u64>>(),
        "complete, in order, once"
    );
    assert_eq!(texts.last().map(String::as_str), Some("1000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_hold_an_idle_stream_open_and_idle_receivers_time_out() {
    let emu = emulator().await;
    let sub_opts = ClientOptions {
        stream_idle_timeout: Duration::from_millis(400),
        ..fast_options()
    };
    let (sub, mut sub_ev, _) = connected(url(&emu, Some("bob"), ROLES), sub_opts).await;
    sub.join_group("g", None).await.unwrap();
    let (publisher, _e, _) = connected(url(&emu, Some("alice"), ROLES), fast_options()).await;
    let s = publisher
        .open_stream(
            "g",
            StreamOptions {
                // Keep-alives every 300 ms: a 600 ms margin for a busy machine.
                idle_timeout: Some(Duration::from_millis(900)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.write(Payload::text("first")).await.unwrap();
    // The receiver hears nothing for longer than its own idle timeout and ends the stream
    // with its own terminal frame; keep-alives hold the publisher's stream open meanwhile.
    let (texts, _, last) = read_stream(&mut sub_ev).await;
    assert_eq!(texts, ["first"]);
    assert_eq!(
        terminal_error(&last).map(|e| e.0).as_deref(),
        Some("IdleTimeout")
    );
    // The idle period under test (over two of the service's idle timeouts), not a wait for
    // an event: nothing is written on the stream meanwhile.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        !s.is_closed(),
        "keep-alives held the stream open past 2 idle timeouts"
    );
    s.write(Payload::text("second")).await.unwrap();
    s.end().await.expect("still open after being idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lost_fails_open_streams_and_ends_received_ones() {
    let emu = emulator().await;
    let (sub, mut sub_ev, sub_id) = connected(url(&emu, Some("bob"), ROLES), fast_options()).await;
    sub.join_group("g", None).await.unwrap();
    let (publisher, mut pub_ev, pub_id) =
        connected(url(&emu, Some("alice"), ROLES), fast_options()).await;
    let s = publisher
        .open_stream("g", StreamOptions::default())
        .await
        .unwrap();
    s.write(Payload::text("a")).await.unwrap();
    match next_frame(&mut sub_ev).await {
        Event::StreamFrame {
            end_of_stream: false,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // The subscriber's session ends without recovery: the rest of the stream cannot reach it.
    assert!(emu.expire_connection(HUB, &sub_id));
    let last = next_frame(&mut sub_ev).await;
    assert_eq!(
        terminal_error(&last).map(|e| e.0).as_deref(),
        Some("SessionLost")
    );
    // The publisher's session ends too: its stream fails, and says why.
    assert!(emu.expire_connection(HUB, &pub_id));
    pub_ev
        .until("SessionLost", |e| matches!(e, Event::SessionLost { .. }))
        .await;
    // Streams fail before the lost connection's Disconnected is reported.
    pub_ev
        .until("Disconnected", |e| matches!(e, Event::Disconnected { .. }))
        .await;
    let r = s.write(Payload::text("b")).await;
    assert!(
        matches!(r, Err(Error::StreamClosed { ref name, .. }) if name == "ConnectionLost"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_reports_gaps_and_repeats_instead_of_merging_them() {
    let mut server = MockServer::start().await;
    let (_client, mut ev, mut conn) =
        started_client(&mut server, fast_options(), Some("tok")).await;
    let frame = |id: &str, seq: u64, end: bool, text: &str, sid: u64| {
        json!({"type":"message","from":"group","group":"g","fromUserId":"u","dataType":"text",
               "data":text,"sequenceId":sid,
               "stream":{"streamId":id,"streamSequenceId":seq,"endOfStream":end}})
        .to_string()
    };
    conn.send(&frame("a", 1, false, "a1", 1)).await;
    conn.send(&frame("a", 2, false, "a2", 2)).await;
    conn.send(&frame("a", 4, false, "a4", 3)).await;
    conn.send(&frame("a", 5, true, "", 4)).await;
    conn.send(&frame("b", 1, false, "b1", 5)).await;
    conn.send(&frame("b", 1, false, "b1 again", 6)).await;
    conn.send(&frame("c", 1, false, "c1", 7)).await;
    conn.send(&frame("c", 2, true, "", 8)).await;
    let (texts, _, last) = read_stream(&mut ev).await;
    assert_eq!(texts, ["a1", "a2"]);
    assert_eq!(
        terminal_error(&last).map(|e| e.0).as_deref(),
        Some("SequenceGap")
    );
    let (texts, _, last) = read_stream(&mut ev).await;
    assert_eq!(texts, ["b1"]);
    assert_eq!(
        terminal_error(&last).map(|e| e.0).as_deref(),
        Some("Duplicate")
    );
    // Nothing more of a or b: the next stream frame is c's.
    let (texts, _, last) = read_stream(&mut ev).await;
    assert_eq!(texts, ["c1"]);
    assert_eq!(terminal_error(&last), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_makes_the_publisher_send_again_from_the_expected_id() {
    let mut server = MockServer::start().await;
    let (client, _ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    let opening = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .open_stream(
                    "g",
                    StreamOptions {
                        stream_id: Some("s".into()),
                        ..Default::default()
                    },
                )
                .await
        }
    });
    let start = conn.recv_type("sendToGroup").await;
    assert_eq!(start["stream"]["streamId"], "s");
    conn.send(r#"{"type":"streamAck","streamId":"s","expectedSequenceId":1}"#)
        .await;
    let s = opening.await.unwrap().expect("open");
    for i in 1..=3 {
        s.write(Payload::text(format!("f{i}"))).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = conn.recv_type("streamData").await;
        seen.push(d["streamSequenceId"].as_u64().unwrap());
    }
    assert_eq!(seen, [1, 2, 3]);
    conn.send(
        r#"{"type":"streamNack","streamId":"s","expectedSequenceId":2,"error":{"name":"InvalidSequenceId"}}"#,
    )
    .await;
    let mut again = Vec::new();
    for _ in 0..2 {
        let d = conn.recv_type("streamData").await;
        again.push((
            d["streamSequenceId"].as_u64().unwrap(),
            d["data"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(again, [(2, "f2".to_string()), (3, "f3".to_string())]);
    // An ack outside the range of written fragments is a protocol violation: the stream
    // closes and tells the service why.
    conn.send(r#"{"type":"streamAck","streamId":"s","expectedSequenceId":9}"#)
        .await;
    let end = conn.recv_type("streamEnd").await;
    assert_eq!(end["error"]["userErrorCode"], "ProtocolViolation");
    let r = s.write(Payload::text("x")).await;
    assert!(
        matches!(r, Err(Error::StreamClosed { ref name, .. }) if name == "ProtocolViolation"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_state_snapshots_updates_and_renewal_after_a_reconnect() {
    let emu = emulator().await;
    let (watcher, mut w_ev, w_id) = connected(url(&emu, Some("bob"), ROLES), fast_options()).await;
    watcher.subscribe_group_state("room", None).await.unwrap();
    match w_ev
        .until("a snapshot", |e| matches!(e, Event::GroupState { .. }))
        .await
    {
        Event::GroupState {
            group,
            snapshot,
            items_json,
        } => {
            assert_eq!(group, "room");
            assert!(snapshot);
            assert_eq!(items_json, "[]");
        }
        _ => unreachable!(),
    }
    let (alice, _a_ev, alice_id) = connected(url(&emu, Some("alice"), ROLES), fast_options()).await;
    alice.join_group("room", None).await.unwrap();
    alice
        .set_group_state("room", Some(r#"{"status":"typing"}"#), None)
        .await
        .unwrap();
    let update = w_ev
        .until("an update", |e| matches!(e, Event::GroupState { .. }))
        .await;
    let Event::GroupState {
        snapshot,
        items_json,
        ..
    } = update
    else {
        unreachable!()
    };
    assert!(!snapshot);
    let items: serde_json::Value = serde_json::from_str(&items_json).unwrap();
    assert_eq!(items[0]["connectionId"], alice_id);
    assert_eq!(items[0]["state"], json!({"status":"typing"}));
    // A state that is not an object of strings is refused before anything is sent; a
    // connection outside the group is refused by the service.
    let bad = alice
        .set_group_state("room", Some(r#"{"n":1}"#), None)
        .await;
    assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{bad:?}");
    let outside = watcher
        .set_group_state("room", Some(r#"{"k":"v"}"#), None)
        .await;
    assert!(
        matches!(outside, Err(Error::Ack { ref name, .. }) if name == "BadRequest"),
        "{outside:?}"
    );
    // The watcher's session ends; on its new connection the subscription is renewed and a
    // fresh snapshot (with alice's state) arrives.
    assert!(emu.expire_connection(HUB, &w_id));
    w_ev.until("Connected", |e| matches!(e, Event::Connected { .. }))
        .await;
    let renewed = w_ev
        .until("a snapshot", |e| {
            matches!(e, Event::GroupState { snapshot: true, .. })
        })
        .await;
    let Event::GroupState { items_json, .. } = renewed else {
        unreachable!()
    };
    assert!(items_json.contains(&alice_id), "{items_json}");
    // Clearing is an update without state; unsubscribing stops updates.
    alice.set_group_state("room", None, None).await.unwrap();
    let cleared = w_ev
        .until("an update", |e| matches!(e, Event::GroupState { .. }))
        .await;
    let Event::GroupState { items_json, .. } = cleared else {
        unreachable!()
    };
    let items: serde_json::Value = serde_json::from_str(&items_json).unwrap();
    assert!(items[0].get("state").is_none(), "{items_json}");
    watcher.unsubscribe_group_state("room", None).await.unwrap();
    alice
        .set_group_state("room", Some(r#"{"status":"away"}"#), None)
        .await
        .unwrap();
    // Alice's own ack came back after the service handled the change: had the watcher still
    // been subscribed, its update would be queued before anything sent now.
    watcher.join_group("probe", None).await.unwrap();
    alice
        .send_to_group("probe", Payload::text("after"), Default::default())
        .await
        .unwrap();
    let next = w_ev
        .until("the probe", |e| {
            matches!(e, Event::GroupState { .. } | Event::GroupMessage { .. })
        })
        .await;
    assert!(
        matches!(next, Event::GroupMessage { .. }),
        "no update after unsubscribing: {next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_stream_frames_neither_break_the_connection_nor_leak_through() {
    let mut server = MockServer::start().await;
    let (_client, mut ev, mut conn) =
        started_client(&mut server, fast_options(), Some("tok")).await;
    // Control messages for streams the client never opened, ids at the top of the range,
    // a stream frame with a bogus terminal id: each is ignored or ends only its stream.
    for frame in [
        r#"{"type":"streamAck","streamId":"nope","expectedSequenceId":18446744073709551615}"#,
        r#"{"type":"streamNack","streamId":"nope","expectedSequenceId":0,"error":{"name":"X"}}"#,
        r#"{"type":"streamClosed","streamId":"nope","error":{"name":"Forbidden","message":"m"}}"#,
        r#"{"type":"message","from":"group","group":"g","dataType":"text","data":"top","sequenceId":1,
           "stream":{"streamId":"h","streamSequenceId":18446744073709551615,"endOfStream":false}}"#,
        r#"{"type":"message","from":"group","group":"g","dataType":"text","data":"again","sequenceId":2,
           "stream":{"streamId":"h","streamSequenceId":18446744073709551615,"endOfStream":false}}"#,
        r#"{"type":"groupStateUpdate","group":"g","items":[]}"#,
        r#"{"type":"message","from":"group","group":"g","dataType":"text","data":"plain","sequenceId":3}"#,
    ] {
        conn.send(&frame.replace('\n', "")).await;
    }
    let (texts, _, last) = read_stream(&mut ev).await;
    assert_eq!(texts, ["top"]);
    assert_eq!(
        terminal_error(&last).map(|e| e.0).as_deref(),
        Some("Duplicate")
    );
    // The connection still works: the plain message after them arrives.
    match ev
        .until("the plain message", |e| {
            matches!(e, Event::GroupMessage { .. })
        })
        .await
    {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("plain")),
        _ => unreachable!(),
    }
}
