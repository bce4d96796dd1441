//! Failures produce clear errors: service errors with their name and ack id, handshake
//! rejections with the HTTP status, transport failures, malformed and oversized frames.

mod common;

use std::time::Duration;

use common::mock::{self, started_client, MockServer};
use common::*;
use webpubsub_client::{AckOk, ClientOptions, Error, Event, Payload, Protocol, SendOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_carries_name_message_and_the_same_ack_id() {
    let emu = emulator().await;
    // No roles: joining and sending to a group are forbidden.
    let (c, _ev, _) = connected(url(&emu, Some("u"), &[]), fast_options()).await;
    let err = c.join_group("g", None).await.unwrap_err();
    match &err {
        Error::Ack {
            ack_id,
            name,
            message,
        } => {
            assert_eq!(name, "Forbidden");
            assert!(!message.is_empty());
            assert_eq!(err.ack_id(), Some(*ack_id));
        }
        other => panic!("expected a Forbidden ack, got {other:?}"),
    }
    let err = c
        .send_to_group(
            "g",
            Payload::text("x"),
            SendOptions {
                ack_id: Some(77),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Ack { ack_id: 77, ref name, .. } if name == "Forbidden"));
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_ack_id_is_a_duplicate_success() {
    let emu = emulator().await;
    let (c, mut ev, _) = connected(url(&emu, Some("u"), ROLES), fast_options()).await;
    c.join_group("g", None).await.unwrap();
    let opts = SendOptions {
        ack_id: Some(1000),
        ..Default::default()
    };
    let first = c
        .send_to_group("g", Payload::text("once"), opts)
        .await
        .unwrap();
    assert_eq!(
        first,
        AckOk {
            ack_id: 1000,
            duplicated: false
        }
    );
    let second = c
        .send_to_group("g", Payload::text("once"), opts)
        .await
        .unwrap();
    assert_eq!(
        second,
        AckOk {
            ack_id: 1000,
            duplicated: true
        }
    );
    assert!(
        c.next_ack_id() > 1000,
        "automatic ack ids never collide with given ones"
    );
    // Delivered exactly once.
    ev.until("group message", is_group_message).await;
    c.send_to_group("g", Payload::text("marker"), SendOptions::default())
        .await
        .unwrap();
    match ev.until("group message", is_group_message).await {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("marker")),
        _ => unreachable!(),
    }
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_invalid_url() {
    for bad in [
        "",
        "not a url",
        "ftp://127.0.0.1/client",
        "ws://",
        "mailto:x@y",
    ] {
        let (c, _ev) = client_with(bad.to_string(), fast_options());
        let e = c.start().await.unwrap_err();
        assert!(matches!(e, Error::InvalidUrl(_)), "{bad:?}: {e:?}");
        assert!(!c.is_connected());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bad_or_expired_token_is_401() {
    let emu = emulator().await;
    let base = format!("ws://127.0.0.1:{}/client/hubs/{HUB}", emu.port());
    let good = url(&emu, None, &[]);
    let token = good.split("access_token=").nth(1).unwrap().to_string();
    let mut tampered = token.clone();
    tampered.push('x');
    let expired = expired_token(&emu);
    for u in [
        base.clone(),
        format!("{base}?access_token=garbage"),
        format!("{base}?access_token={tampered}"),
        format!("{base}?access_token={expired}"),
    ] {
        let (c, mut ev) = client_with(u.clone(), fast_options());
        let e = c.start().await.unwrap_err();
        assert_eq!(e, Error::HandshakeRejected { status: 401 }, "{u}");
        assert_eq!(
            ev.none_for(Duration::from_millis(50)).await,
            None,
            "no events for a failed start"
        );
    }
    // The expired token's 401 is explained in the log.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    webpubsub_client::log::set_logger(
        Some(std::sync::Arc::new(move |_, m: &str| {
            sink.lock().unwrap().push(m.to_string())
        })),
        webpubsub_client::log::Level::Error,
    );
    let (c, _ev) = client_with(format!("{base}?access_token={expired}"), fast_options());
    let _ = c.start().await;
    webpubsub_client::log::set_logger(None, webpubsub_client::log::Level::Error);
    let text = lines.lock().unwrap().join("\n");
    assert!(text.contains("access token expired"), "{text}");
    assert!(!text.contains(&expired), "the token itself is never logged");
    emu.shutdown().await;
}

fn expired_token(emu: &webpubsub_emulator::Emulator) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "aud": format!("{}/client/hubs/{HUB}", emu.endpoint()),
        "iat": now - 7200,
        "exp": now - 3600,
    });
    let body = b64.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(emu.access_key().as_bytes()).unwrap();
    mac.update(format!("{header}.{body}").as_bytes());
    let sig = b64.encode(mac.finalize().into_bytes());
    format!("{header}.{body}.{sig}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_before_upgrade_map_to_their_status() {
    let u = mock::http_server(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (c, _ev) = client_with(u, fast_options());
    assert_eq!(
        c.start().await.unwrap_err(),
        Error::HandshakeRejected { status: 403 }
    );
    let u = mock::http_server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    let (c, _ev) = client_with(u, fast_options());
    assert_eq!(
        c.start().await.unwrap_err(),
        Error::HandshakeRejected { status: 200 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_port_and_closed_handshake_are_connection_errors() {
    let (c, _ev) = client_with(mock::dead_port_url().await, fast_options());
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e:?}");
    let (c, _ev) = client_with(mock::closing_server().await, fast_options());
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e:?}");
    // The client can be started again after a failed start.
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_times_out_without_connected_message() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        start_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let (c, _ev) = client_with(server.url.clone(), opts);
    let start = tokio::spawn(async move { c.start().await });
    let _conn = server.accept().await; // never sends `connected`
    let e = start.await.unwrap().unwrap_err();
    assert_eq!(e, Error::Timeout { ack_id: None });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_skipped_and_the_connection_survives() {
    let mut server = MockServer::start().await;
    let (c, mut ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    for junk in [
        "not json",
        "[1,2]",
        r#"{"type":"message","from":"group","dataType":"text","data":"no group"}"#,
        r#"{"type":"message","from":"server","dataType":"binary","data":"!!!"}"#,
        r#"{"type":"ack","success":true}"#,
        r#"{"type":"brandNew","x":1}"#,
    ] {
        conn.send(junk).await;
    }
    conn.send(r#"{"type":"message","from":"server","dataType":"text","data":"still here","sequenceId":1}"#).await;
    match ev.next().await {
        Event::ServerMessage {
            message,
            sequence_id,
        } => {
            assert_eq!(message.as_str(), Some("still here"));
            assert_eq!(sequence_id, Some(1));
        }
        other => panic!("{other:?}"),
    }
    assert!(c.is_connected());
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_inbound_message_fails_the_connection_clearly() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        auto_reconnect: false,
        max_inbound_message_size: 1024,
        ..fast_options()
    };
    let (_c, mut ev, mut conn) = started_client(&mut server, opts, None).await;
    let big = format!(
        r#"{{"type":"message","from":"server","dataType":"text","data":"{}"}}"#,
        "x".repeat(4096)
    );
    let _ = futures_util::SinkExt::send(
        &mut conn.ws,
        tokio_tungstenite::tungstenite::Message::text(big),
    )
    .await;
    match ev.next().await {
        Event::Disconnected {
            connection_id,
            message,
        } => {
            assert_eq!(connection_id.as_deref(), Some("conn1"));
            let m = message.unwrap_or_default();
            assert!(m.contains("over the inbound limit"), "{m}");
            assert!(m.contains("max_inbound_message_size"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    match ev.next().await {
        Event::Stopped { reason } => {
            let r = reason.expect("a stop the engine decided has a reason");
            assert!(r.contains("auto-reconnect is off"), "{r}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_not_echoed_is_a_protocol_error() {
    // A server that answers the upgrade without Sec-WebSocket-Protocol.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tokio_tungstenite::accept_async(tcp).await;
            });
        }
    });
    let (c, _ev) = client_with(
        format!("ws://127.0.0.1:{port}/client/hubs/h?access_token=x"),
        fast_options(),
    );
    let e = c.start().await.unwrap_err();
    assert!(
        matches!(e, Error::Connection { .. } | Error::Protocol(_)),
        "{e:?}"
    );
    assert!(e.to_string().to_lowercase().contains("protocol"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_operations_time_out_after_retries_with_one_ack_id() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        ack_timeout: Duration::from_millis(200),
        ..fast_options() // 2 retries, 50 ms apart
    };
    let (c, _ev, mut conn) = started_client(&mut server, opts, Some("tok")).await;
    let op = tokio::spawn({
        let c = c.clone();
        async move { c.join_group("silent", None).await }
    });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(conn.recv_type("joinGroup").await["ackId"].as_u64().unwrap());
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every attempt reuses the ack id: {ids:?}"
    );
    let e = op.await.unwrap().unwrap_err();
    assert_eq!(
        e,
        Error::Timeout {
            ack_id: Some(ids[0])
        }
    );
    // The caller retries with the returned id and the service now answers Duplicate.
    let first = ids[0];
    let again = tokio::spawn({
        let c = c.clone();
        async move { c.join_group("silent", Some(first)).await }
    });
    let frame = conn.recv_type("joinGroup").await;
    assert_eq!(frame["ackId"].as_u64(), Some(ids[0]));
    conn.send(&format!(
        r#"{{"type":"ack","ackId":{},"success":false,"error":{{"name":"Duplicate","message":"done"}}}}"#,
        ids[0]
    ))
    .await;
    assert_eq!(
        again.await.unwrap().unwrap(),
        AckOk {
            ack_id: ids[0],
            duplicated: true
        }
    );
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_message_a_sender_may_send_reaches_reliable_receivers() {
    let emu = emulator().await;
    let (rx, mut rev, _) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    rx.join_group("big", None).await.unwrap();
    let (tx, _tev, _) = connected(url(&emu, Some("t"), ROLES), fast_options()).await;
    // The size error names the frame size, which gives the envelope's overhead.
    let probe = 1 << 20;
    let overhead = match tx
        .send_to_group(
            "big",
            Payload::text("x".repeat(probe)),
            SendOptions::default(),
        )
        .await
    {
        Err(Error::PayloadTooLarge { size, limit }) => {
            assert_eq!(limit, 1 << 20);
            size - probe
        }
        other => panic!("{other:?}"),
    };
    let largest = (1 << 20) - overhead;
    tx.send_to_group(
        "big",
        Payload::text("y".repeat(largest)),
        SendOptions::default(),
    )
    .await
    .expect("the largest message is accepted by the service");
    tx.send_to_group("big", Payload::text("after"), SendOptions::default())
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while sizes.len() < 2 {
        match rev.next().await {
            Event::GroupMessage { message, .. } => sizes.push(message.as_str().unwrap().len()),
            other => panic!("no loss, no reconnect: {other:?}"),
        }
    }
    assert_eq!(sizes, [largest, 5]);
    rx.stop().await.unwrap();
    tx.stop().await.unwrap();
    emu.shutdown().await;
}
