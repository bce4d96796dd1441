//! Connecting, groups and messages against the in-process emulator.

mod common;

use std::time::Duration;

use common::*;
use webpubsub_client::{ConnectionState, DataType, Error, Event, Payload, SendOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reports_connected_with_ids() {
    let emu = emulator().await;
    let (c, mut ev) = client_with(url(&emu, Some("user1"), ROLES), fast_options());
    c.start().await.unwrap();
    match ev.next().await {
        Event::Connected {
            connection_id,
            user_id,
        } => {
            assert_eq!(user_id.as_deref(), Some("user1"));
            assert_eq!(c.connection_id().as_deref(), Some(connection_id.as_str()));
            let conns = emu.connections(HUB);
            assert_eq!(conns.len(), 1);
            assert_eq!(conns[0].connection_id, connection_id);
            assert_eq!(
                conns[0].subprotocol.as_deref(),
                Some("json.reliable.webpubsub.azure.v1")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(c.is_connected());
    assert_eq!(c.start().await, Err(Error::AlreadyStarted));
    c.stop().await.unwrap();
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    assert_eq!(c.state(), ConnectionState::Stopped);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_send_and_receive_every_data_type() {
    let emu = emulator().await;
    let (c, mut ev, _) = connected(url(&emu, Some("u1"), ROLES), fast_options()).await;
    let ok = c.join_group("g1", None).await.unwrap();
    assert!(!ok.duplicated);
    assert_eq!(emu.connections(HUB)[0].groups, vec!["g1".to_string()]);

    let payloads = [
        Payload::text("hello \"world\" ü"),
        Payload::json(r#"{"a":[1,2,{"b":null}]}"#),
        Payload::binary(vec![0u8, 1, 2, 255]),
    ];
    for p in payloads {
        c.send_to_group("g1", p.clone(), SendOptions::default())
            .await
            .unwrap();
        match ev.until("group message", is_group_message).await {
            Event::GroupMessage {
                group,
                from_user_id,
                message,
                sequence_id,
            } => {
                assert_eq!(group, "g1");
                assert_eq!(from_user_id.as_deref(), Some("u1"));
                assert_eq!(message.data_type, p.data_type);
                if p.data_type == DataType::Json {
                    let a: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
                    let b: serde_json::Value = serde_json::from_slice(&p.data).unwrap();
                    assert_eq!(a, b);
                } else {
                    assert_eq!(message.data, p.data);
                }
                assert!(sequence_id.is_some());
            }
            _ => unreachable!(),
        }
    }
    c.leave_group("g1", None).await.unwrap();
    assert!(emu.connections(HUB)[0].groups.is_empty());
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_skips_the_sender_only() {
    let emu = emulator().await;
    let (a, mut ev_a, _) = connected(url(&emu, Some("a"), ROLES), fast_options()).await;
    let (b, mut ev_b, _) = connected(url(&emu, Some("b"), ROLES), fast_options()).await;
    a.join_group("g", None).await.unwrap();
    b.join_group("g", None).await.unwrap();
    let opts = SendOptions {
        no_echo: true,
        ..Default::default()
    };
    a.send_to_group("g", Payload::text("one"), opts)
        .await
        .unwrap();
    a.send_to_group("g", Payload::text("two"), SendOptions::default())
        .await
        .unwrap();
    // b sees both; a sees only the echoed second one.
    for want in ["one", "two"] {
        match ev_b.until("group message", is_group_message).await {
            Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some(want)),
            _ => unreachable!(),
        }
    }
    match ev_a.until("group message", is_group_message).await {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("two")),
        _ => unreachable!(),
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_sends_without_ack_and_arrives_in_order() {
    let emu = emulator().await;
    let (a, _ev_a, _) = connected(url(&emu, Some("a"), ROLES), fast_options()).await;
    let (b, mut ev_b, _) = connected(url(&emu, Some("b"), ROLES), fast_options()).await;
    b.join_group("ff", None).await.unwrap();
    let opts = SendOptions {
        fire_and_forget: true,
        ..Default::default()
    };
    for i in 0..200 {
        let ok = a
            .send_to_group("ff", Payload::text(i.to_string()), opts)
            .await
            .unwrap();
        assert_eq!(ok.ack_id, 0);
    }
    for i in 0..200 {
        match ev_b.until("group message", is_group_message).await {
            Event::GroupMessage { message, .. } => {
                assert_eq!(message.as_str(), Some(i.to_string().as_str()))
            }
            _ => unreachable!(),
        }
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_restart_keeps_the_handler() {
    let emu = emulator().await;
    let (c, mut ev, first) = connected(url(&emu, Some("u"), ROLES), fast_options()).await;
    c.stop().await.unwrap();
    c.stop().await.unwrap(); // idempotent
    assert!(
        matches!(ev.next().await, Event::Disconnected { connection_id: Some(ref id), .. } if *id == first)
    );
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    assert_eq!(
        ev.none_for(Duration::from_millis(200)).await,
        None,
        "one Stopped per start"
    );
    c.start().await.unwrap();
    match ev.next().await {
        Event::Connected { connection_id, .. } => assert_ne!(connection_id, first),
        other => panic!("{other:?}"),
    }
    c.join_group("g", None).await.unwrap();
    c.stop().await.unwrap();
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_while_stopped_fail_fast() {
    let emu = emulator().await;
    let (c, _ev) = client_with(url(&emu, None, ROLES), fast_options());
    let e = c.join_group("g", Some(5)).await.unwrap_err();
    assert_eq!(e, Error::NotConnected { ack_id: Some(5) });
    let e = c
        .send_event("ev", Payload::text("x"), SendOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotConnected { .. }));
    assert!(!c.is_connected());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_are_rejected_before_sending() {
    let emu = emulator().await;
    let (c, _ev, _) = connected(url(&emu, None, ROLES), fast_options()).await;
    assert!(matches!(
        c.join_group("  ", None).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.send_to_group("g", Payload::json("{not json"), SendOptions::default())
            .await,
        Err(Error::InvalidArgument(_))
    ));
    let big = Payload::binary(vec![7u8; 2 << 20]);
    assert!(matches!(
        c.send_to_group("g", big, SendOptions::default()).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    c.stop().await.unwrap();
    emu.shutdown().await;
}

struct PanickyHandler(tokio::sync::mpsc::UnboundedSender<Event>);

impl webpubsub_client::EventHandler for PanickyHandler {
    fn on_event(&self, _client: &webpubsub_client::ClientId, event: Event) {
        let connected = matches!(event, Event::Connected { .. });
        let _ = self.0.send(event);
        if connected {
            panic!("a handler bug");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_does_not_break_the_client() {
    let emu = emulator().await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let c = webpubsub_client::Client::new(
        webpubsub_client::Credential::Url(url(&emu, Some("u"), ROLES)),
        fast_options(),
        std::sync::Arc::new(PanickyHandler(tx)),
    );
    let mut ev = Events { rx };
    c.start().await.unwrap();
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    c.join_group("g", None).await.unwrap();
    c.send_to_group("g", Payload::text("after panic"), SendOptions::default())
        .await
        .unwrap();
    match ev.until("group message", is_group_message).await {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("after panic")),
        _ => unreachable!(),
    }
    c.stop().await.unwrap();
    emu.shutdown().await;
}

/// A subscriber of `group` on the non-reliable protocol: a burst this fast would overflow a
/// reliable receiver's 1000-message service buffer.
async fn plain_subscriber(
    emu: &webpubsub_emulator::Emulator,
    group: &str,
) -> (webpubsub_client::Client, Events) {
    let plain = webpubsub_client::ClientOptions {
        protocol: webpubsub_client::Protocol::Json,
        ..fast_options()
    };
    let (b, ev_b, _) = connected(url(emu, Some("b"), ROLES), plain).await;
    b.join_group(group, None).await.unwrap();
    (b, ev_b)
}

/// Sends "0", "1", ... fire-and-forget.
async fn send_numbered(a: &webpubsub_client::Client, group: &str, count: usize) {
    let ff = SendOptions {
        fire_and_forget: true,
        ..Default::default()
    };
    for i in 0..count {
        a.send_to_group(group, Payload::text(i.to_string()), ff)
            .await
            .unwrap();
    }
}

/// Expects "0", "1", ... as the next group messages, in order.
async fn expect_numbered(ev: &mut Events, count: usize) {
    for i in 0..count {
        match ev.until("group message", is_group_message).await {
            Event::GroupMessage { message, .. } => {
                assert_eq!(message.as_str(), Some(i.to_string().as_str()))
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_fire_and_forget_delivers_everything_in_order() {
    let emu = emulator().await;
    let opts = webpubsub_client::ClientOptions {
        fire_and_forget_buffer: 64,
        ..fast_options()
    };
    let (a, _ev_a, _) = connected(url(&emu, Some("a"), ROLES), opts).await;
    let (b, mut ev_b) = plain_subscriber(&emu, "buf").await;
    send_numbered(&a, "buf", 2000).await;
    // An acked send after them is ordered behind them on the socket.
    a.send_to_group("buf", Payload::text("end"), SendOptions::default())
        .await
        .unwrap();
    expect_numbered(&mut ev_b, 2000).await;
    match ev_b.until("group message", is_group_message).await {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("end")),
        _ => unreachable!(),
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_writes_queued_fire_and_forget_frames_first() {
    let emu = emulator().await;
    // Default options: fire-and-forget sends resolve once queued.
    let (a, _ev_a, _) = connected(url(&emu, Some("a"), ROLES), fast_options()).await;
    let (b, mut ev_b) = plain_subscriber(&emu, "q").await;
    send_numbered(&a, "q", 500).await;
    // Stop right away: the queue is written before the close frame.
    a.stop().await.unwrap();
    expect_numbered(&mut ev_b, 500).await;
    b.stop().await.unwrap();
    emu.shutdown().await;
}
