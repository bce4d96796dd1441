//! Recovery of dropped reliable connections: same connection id, no user events, no lost and
//! no duplicated messages.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::mock::{started_client, MockServer};
use common::*;
use std::sync::{Arc, Mutex};
use webpubsub_client::log::{set_logger, Level};
use webpubsub_client::{Event, Payload, SendOptions};

/// Collects the library's log lines (process-wide; tests filter by client id).
fn capture_log() -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    set_logger(
        Some(Arc::new(move |_level, msg: &str| {
            sink.lock().unwrap().push(msg.to_string())
        })),
        Level::Info,
    );
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_during_a_burst_of_1000_loses_and_duplicates_nothing() {
    let log = capture_log();
    let emu = emulator().await;
    let (rx_client, mut rx_ev, rx_id) =
        connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    rx_client.join_group("burst", None).await.unwrap();
    let (tx_client, _tx_ev, _) = connected(url(&emu, Some("s"), ROLES), fast_options()).await;

    let sender = tokio::spawn({
        let tx_client = tx_client.clone();
        async move {
            // Acked sends, 20 in flight at a time, so the burst is fast but each is confirmed.
            let mut set: tokio::task::JoinSet<
                Result<webpubsub_client::AckOk, webpubsub_client::Error>,
            > = tokio::task::JoinSet::new();
            for i in 0..1000u32 {
                if set.len() >= 20 {
                    set.join_next().await.unwrap().unwrap().unwrap();
                }
                let c = tx_client.clone();
                set.spawn(async move {
                    c.send_to_group(
                        "burst",
                        Payload::text(i.to_string()),
                        SendOptions::default(),
                    )
                    .await
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap().unwrap();
            }
        }
    });

    let mut seen = Vec::with_capacity(1000);
    let mut seqs = Vec::with_capacity(1000);
    let mut dropped = false;
    // The lifecycle events of the recovery, with how many messages had arrived before each.
    let mut lifecycle = Vec::new();
    while seen.len() < 1000 {
        match rx_ev.next().await {
            Event::GroupMessage {
                message,
                sequence_id,
                ..
            } => {
                seqs.push(sequence_id.expect("reliable messages carry sequence ids"));
                seen.push(message.as_str().unwrap().parse::<u32>().unwrap());
                if seen.len() == 300 && !dropped {
                    assert!(
                        emu.drop_connection(HUB, &rx_id),
                        "drop the receiver's socket"
                    );
                    dropped = true;
                }
            }
            Event::Recovering { connection_id } => {
                assert_eq!(connection_id, rx_id);
                lifecycle.push(("recovering", seen.len()));
            }
            Event::Recovered { connection_id } => {
                assert_eq!(connection_id, rx_id);
                lifecycle.push(("recovered", seen.len()));
            }
            other => panic!("no other event expected during recovery, got {other:?}"),
        }
    }
    sender.await.unwrap();
    // Exactly one Recovering/Recovered pair, in that order, after the 300th message.
    assert_eq!(lifecycle.len(), 2, "{lifecycle:?}");
    assert_eq!(lifecycle[0].0, "recovering");
    assert_eq!(lifecycle[1].0, "recovered");
    assert!(lifecycle[0].1 >= 300, "{lifecycle:?}");
    let unique: HashSet<u32> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 1000, "every message exactly once");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "delivered in sequence order"
    );
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_eq!(
        rx_client.connection_id().as_deref(),
        Some(rx_id.as_str()),
        "same connection"
    );
    assert!(rx_client.is_connected());
    let recovered = format!("client {}: recovered", rx_client.id().0);
    assert!(
        log.lock().unwrap().iter().any(|l| l.contains(&recovered)),
        "the drop was handled by a recovery"
    );
    // Nothing else (no Disconnected/Connected, no late duplicate).
    assert_eq!(rx_ev.none_for(Duration::from_millis(300)).await, None);
    // Group membership survived the recovery.
    let conns = emu.connections(HUB);
    let me = conns
        .iter()
        .find(|c| c.connection_id == rx_id)
        .expect("still there");
    assert_eq!(me.groups, vec!["burst".to_string()]);
    rx_client.stop().await.unwrap();
    tx_client.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_uses_the_recovery_url_and_deduplicates_by_sequence_id() {
    let mut server = MockServer::start().await;
    let (c, mut ev) = client_with(server.url.clone(), fast_options());
    let start = tokio::spawn({
        let c = c.clone();
        async move { c.start().await }
    });
    let mut conn = server.accept().await;
    assert!(!conn.target.contains("awps_connection_id"));
    conn.connected("conn1", Some("tok1")).await;
    start.await.unwrap().unwrap();
    assert!(
        matches!(ev.next().await, Event::Connected { ref connection_id, .. } if connection_id == "conn1")
    );
    // A repeated `connected` on the same socket does not fire the event again.
    conn.connected("conn1", Some("tok2")).await;
    conn.send(
        r#"{"type":"message","from":"server","dataType":"text","data":"before","sequenceId":1}"#,
    )
    .await;
    match ev.next().await {
        Event::ServerMessage { message, .. } => assert_eq!(message.as_str(), Some("before")),
        other => panic!("{other:?}"),
    }
    let ack = conn.recv_type("sequenceAck").await;
    assert_eq!(ack["sequenceId"], 1);
    drop(conn); // abrupt drop (1006)

    let mut conn = server.accept().await;
    assert!(
        conn.target.contains("access_token=secret"),
        "{}",
        conn.target
    );
    assert!(
        conn.target.contains("awps_connection_id=conn1"),
        "{}",
        conn.target
    );
    assert!(
        conn.target.contains("awps_reconnection_token=tok2"),
        "latest token: {}",
        conn.target
    );
    conn.connected("conn1", Some("tok3")).await;
    conn.send(
        r#"{"type":"message","from":"server","dataType":"text","data":"before","sequenceId":1}"#,
    )
    .await;
    conn.send(
        r#"{"type":"message","from":"server","dataType":"text","data":"after","sequenceId":2}"#,
    )
    .await;
    // Recovering when the drop was seen, Recovered once the service answered on the new
    // socket (before its first message), and no second Connected.
    assert!(
        matches!(ev.next().await, Event::Recovering { ref connection_id } if connection_id == "conn1")
    );
    assert!(
        matches!(ev.next().await, Event::Recovered { ref connection_id } if connection_id == "conn1")
    );
    match ev.next().await {
        Event::ServerMessage {
            message,
            sequence_id,
        } => {
            assert_eq!(message.as_str(), Some("after"));
            assert_eq!(sequence_id, Some(2));
        }
        other => panic!("expected only 'after', got {other:?}"),
    }
    let ack = conn.recv_type("sequenceAck").await;
    assert_eq!(ack["sequenceId"], 2);
    assert!(c.is_connected());
    assert_eq!(c.connection_id().as_deref(), Some("conn1"));
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_acks_are_resent_with_the_same_ack_id_after_recovery() {
    let mut server = MockServer::start().await;
    let (c, mut ev, mut conn) = started_client(&mut server, fast_options(), Some("tok1")).await;
    let join = tokio::spawn({
        let c = c.clone();
        async move { c.join_group("g", Some(42)).await }
    });
    let frame = conn.recv_type("joinGroup").await;
    assert_eq!(frame["ackId"], 42);
    drop(conn); // dropped before the ack
    let mut conn = server.accept().await;
    conn.connected("conn1", Some("tok2")).await;
    let frame = conn.recv_type("joinGroup").await;
    assert_eq!(frame["ackId"], 42, "same ack id after recovery");
    conn.send(r#"{"type":"ack","ackId":42,"success":false,"error":{"name":"Duplicate","message":"done before"}}"#).await;
    let ok = join.await.unwrap().unwrap();
    assert!(ok.duplicated);
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::Recovered { .. }));
    assert_eq!(
        ev.none_for(Duration::from_millis(200)).await,
        None,
        "no other events for a recovery"
    );
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_ack_is_immediate_after_a_jump_over_300() {
    let mut server = MockServer::start().await;
    let opts = webpubsub_client::ClientOptions {
        sequence_ack_interval: Duration::from_secs(3600),
        ..fast_options()
    };
    let (c, _ev, mut conn) = started_client(&mut server, opts, Some("tok1")).await;
    conn.send(r#"{"type":"message","from":"server","dataType":"text","data":"a","sequenceId":1}"#)
        .await;
    conn.send(
        r#"{"type":"message","from":"server","dataType":"text","data":"b","sequenceId":302}"#,
    )
    .await;
    let ack = conn.recv_type("sequenceAck").await;
    assert_eq!(ack["sequenceId"], 302);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_sent_around_a_drop_arrives_once_recovered() {
    let mut server = MockServer::start().await;
    let (c, mut ev, conn) = started_client(&mut server, fast_options(), Some("tok1")).await;
    drop(conn);
    // Whether it is written to the dead socket or queued during recovery, it is sent on the
    // recovered socket with its ack id.
    let op = tokio::spawn({
        let c = c.clone();
        async move {
            c.send_to_group(
                "g",
                Payload::text("around"),
                SendOptions {
                    ack_id: Some(7),
                    ..Default::default()
                },
            )
            .await
        }
    });
    let mut conn = server.accept().await;
    assert!(conn.target.contains("awps_connection_id=conn1"));
    conn.connected("conn1", Some("tok2")).await;
    let frame = conn.recv_type("sendToGroup").await;
    assert_eq!(frame["data"], "around");
    assert_eq!(frame["ackId"], 7);
    conn.send(r#"{"type":"ack","ackId":7,"success":true}"#)
        .await;
    let ok = op.await.unwrap().unwrap();
    assert_eq!(ok.ack_id, 7);
    assert!(!ok.duplicated);
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::Recovered { .. }));
    assert_eq!(ev.none_for(Duration::from_millis(100)).await, None);
    c.stop().await.unwrap();
}
