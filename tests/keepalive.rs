//! Keep-alive: pings are sent, and a peer that stops answering is detected.

mod common;

use std::time::Duration;

use common::mock::{started_client, MockServer};
use common::*;
use webpubsub_client::{ClientOptions, Event, Protocol};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_sent_and_a_silent_peer_is_declared_dead() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        auto_reconnect: false,
        keep_alive_interval: Duration::from_millis(100),
        keep_alive_timeout: Duration::from_millis(600),
        ..fast_options()
    };
    let (_c, mut ev, mut conn) = started_client(&mut server, opts, None).await;
    // The client pings; the peer reads but never writes again (half-open from the
    // client's point of view: TCP stays up, nothing arrives).
    let ping = conn.recv_type("ping").await;
    assert_eq!(ping, serde_json::json!({"type":"ping"}));
    conn.recv_type("ping").await;
    match ev.next().await {
        Event::Disconnected {
            connection_id,
            message,
        } => {
            assert_eq!(connection_id.as_deref(), Some("conn1"));
            assert!(message.unwrap_or_default().contains("keep-alive"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_keep_a_quiet_connection_alive() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        auto_reconnect: false,
        keep_alive_interval: Duration::from_millis(100),
        keep_alive_timeout: Duration::from_millis(400),
        ..fast_options()
    };
    let (c, mut ev, mut conn) = started_client(&mut server, opts, None).await;
    // Answer 12 pings (well past the 400 ms timeout in total).
    for _ in 0..12 {
        conn.recv_type("ping").await;
        conn.send(r#"{"type":"pong"}"#).await;
    }
    assert!(c.is_connected());
    assert_eq!(ev.drain(), vec![]);
    c.stop().await.unwrap();
}

/// Sends 60 KiB fire-and-forget messages to a server that never reads after `connected`,
/// until a send fails; returns that error once the client reported `Disconnected` and
/// `Stopped`.
async fn send_into_a_stalled_peer(fire_and_forget_buffer: usize) -> webpubsub_client::Error {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        auto_reconnect: false,
        keep_alive_interval: Duration::from_millis(100),
        keep_alive_timeout: Duration::from_millis(500),
        fire_and_forget_buffer,
        ..fast_options()
    };
    let (c, mut ev, _conn) = started_client(&mut server, opts, None).await;
    let chunk = webpubsub_client::Payload::binary(vec![7u8; 60 * 1024]);
    let ff = webpubsub_client::SendOptions {
        fire_and_forget: true,
        ..Default::default()
    };
    let mut failed = None;
    for _ in 0..4000 {
        if let Err(e) = c.send_to_group("g", chunk.clone(), ff).await {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("sending into a full socket eventually fails");
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    tokio::time::timeout(WAIT, c.stop())
        .await
        .expect("stop returns")
        .unwrap();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_does_not_hang_the_client() {
    // Each fire-and-forget send waits for its socket write, which stalls.
    let e = send_into_a_stalled_peer(0).await;
    assert!(
        matches!(e, webpubsub_client::Error::Connection { .. }),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_fire_and_forget_sends_fail_once_a_stalled_peer_is_given_up() {
    // Default buffering: sends return once queued, until the queue is full and the write
    // that should drain it stalls past the keep-alive timeout.
    let e = send_into_a_stalled_peer(ClientOptions::default().fire_and_forget_buffer).await;
    assert!(
        matches!(
            e,
            webpubsub_client::Error::Connection { .. }
                | webpubsub_client::Error::NotConnected { .. }
                | webpubsub_client::Error::Stopped { .. }
        ),
        "{e:?}"
    );
}
