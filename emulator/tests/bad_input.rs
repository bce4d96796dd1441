//! Bad client input never crashes the emulator nor affects other connections.

mod common;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

#[tokio::test]
async fn malformed_messages_close_only_the_offender() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut bystander, _) = connect_pubsub(&url, RELIABLE).await;

    let cases: Vec<(Message, u16)> = vec![
        (Message::text("{not json"), 1007),
        (Message::text(r#"{"type":"teleport"}"#), 1007),
        (Message::text(r#"[1,2]"#), 1007),
        (Message::text(r#"{"type":"joinGroup"}"#), 1007),
        (
            Message::text(r#"{"type":"sendToGroup","group":"g","dataType":"binary","data":"%%%"}"#),
            1007,
        ),
        (
            Message::text(
                r#"{"type":"sendToGroup","group":"g","dataType":"text","data":"x","noEcho":"yes"}"#,
            ),
            1007,
        ),
        (Message::binary(vec![0xff, 0xfe, 0x00]), 1007),
        (Message::text("x".repeat(1024 * 1024 + 1)), 1009),
    ];
    for (i, (msg, code)) in cases.into_iter().enumerate() {
        let (mut ws, _) = connect_pubsub(&url, JSON).await;
        ws.send(msg).await.unwrap();
        let (frames, got) = frames_until_close(&mut ws).await;
        assert_eq!(got, code, "case {i}");
        assert_eq!(frames.len(), 1, "case {i}: {frames:?}");
        assert_eq!(frames[0]["event"], "disconnected", "case {i}");
        assert!(frames[0]["message"].is_string(), "case {i}");
    }
    // A binary frame carrying UTF-8 JSON is accepted.
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    ws.send(Message::binary(
        br#"{"type":"joinGroup","group":"g2","ackId":1}"#.to_vec(),
    ))
    .await
    .unwrap();
    assert_eq!(recv_json(&mut ws).await["success"], true);
    // Invalid group names: BadRequest ack.
    for bad in ["", "   ", &"x".repeat(1025)] {
        send(&mut ws, json!({"type":"joinGroup","group":bad,"ackId":2})).await;
        let ack = recv_json(&mut ws).await;
        assert_eq!(ack["error"]["name"], "BadRequest", "{bad:?}");
    }
    // The bystander is unaffected.
    send(
        &mut ws,
        json!({"type":"sendToGroup","group":"g","dataType":"text","data":"still here"}),
    )
    .await;
    let m = recv_json(&mut bystander).await;
    assert_eq!(m["data"], "still here");
    assert_eq!(m["sequenceId"], 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn exactly_one_ack_per_ack_id_and_null_is_absent() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    send(
        &mut ws,
        json!({"type":"joinGroup","group":"g","ackId":null}),
    )
    .await;
    send(&mut ws, json!({"type":"joinGroup","group":"g","ackId":3})).await;
    send(&mut ws, json!({"type":"ping"})).await;
    let a = recv_json(&mut ws).await;
    assert_eq!(a, json!({"type":"ack","ackId":3,"success":true}));
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"type":"pong"}),
        "no ack for the null ackId"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_can_still_write() {
    // 100 echoed 64 KiB messages (6.5 MB) exceed the socket buffers but not the 8 MiB the
    // emulator queues for a client before it stops reading it: the emulator must keep
    // reading this client while its outbound frames wait.
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let big = "x".repeat(64 * 1024);
    let count = 100u64;
    tokio::time::timeout(DEADLINE * 4, async {
        for i in 0..count {
            let frame =
                json!({"type":"sendToGroup","group":"g","ackId":i,"dataType":"text","data":big});
            ws.send(Message::text(frame.to_string())).await.unwrap();
        }
    })
    .await
    .expect("writes complete although nothing was read");
    let (mut acks, mut messages) = (0, 0);
    while acks < count || messages < count {
        let v = recv_json(&mut ws).await;
        match v["type"].as_str() {
            Some("ack") => {
                assert_eq!(v["ackId"], acks);
                acks += 1;
            }
            Some("message") => messages += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_stops_being_read() {
    // Echoing 1 MB messages to its own group without reading: the emulator stops reading the
    // client once 8 MiB wait for it, so its writes stall instead of the emulator growing.
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let frame =
        json!({"type":"sendToGroup","group":"g","dataType":"text","data":"x".repeat(1_000_000)});
    let frame = frame.to_string();
    let mut accepted = 0;
    while accepted < 100 {
        let write = ws.send(Message::text(frame.clone()));
        match tokio::time::timeout(std::time::Duration::from_secs(1), write).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        }
        accepted += 1;
    }
    // What was accepted sits in the emulator's queue and the kernel's socket buffers.
    assert!((8..60).contains(&accepted), "{accepted} messages accepted");
    emu.shutdown().await;
}

#[tokio::test]
async fn clients_that_never_read_are_cut_at_their_outbound_bounds() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut reader, _) = connect_pubsub(&url, JSON).await;
    let (_deaf, deaf) = connect_pubsub(&url, JSON).await;
    // Reliable and acknowledging ids it was never sent.
    let (mut liar, liar_connected) = connect_pubsub(&url, RELIABLE).await;
    let ids = [&deaf, &liar_connected].map(|c| c["connectionId"].as_str().unwrap().to_string());
    let body = vec![7u8; 1 << 20];
    for _ in 0..40 {
        let path = "/api/hubs/h/groups/g/:send?api-version=1";
        assert_eq!(
            post(&emu, path, "application/octet-stream", &body).await,
            202
        );
        // Fails once the emulator has cut it.
        let ack = json!({"type":"sequenceAck","sequenceId":u64::MAX});
        let _ = liar.send(Message::text(ack.to_string())).await;
        assert_eq!(recv_json(&mut reader).await["dataType"], "binary");
    }
    eventually("both cut", || {
        let live: Vec<String> = emu
            .connections("h")
            .into_iter()
            .map(|c| c.connection_id)
            .collect();
        !live.contains(&ids[0]) && !live.contains(&ids[1])
    })
    .await;
    expect_recovery_refused(&recovery_url(&url, &liar_connected), RELIABLE).await;
    // The reader was unaffected.
    ping_pong(&mut reader).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn protocol_violations_close_with_a_status_and_end_the_session() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut bystander, _) = connect_pubsub(&url, JSON).await;
    // (what, FIN/RSV/opcode byte, payload, masked, announced length, expected close code)
    type Case<'a> = (&'a str, u8, &'a [u8], bool, Option<u64>, u16);
    let cases: Vec<Case> = vec![
        (
            "invalid UTF-8 text",
            0x81,
            &[0x7b, 0xff, 0xfe],
            true,
            None,
            1007,
        ),
        ("reserved data opcode", 0x83, b"x", true, None, 1002),
        ("reserved control opcode", 0x8b, b"", true, None, 1002),
        (
            "unmasked frame",
            0x81,
            br#"{"type":"ping"}"#,
            false,
            None,
            1002,
        ),
        (
            "reserved bit set",
            0xc1,
            br#"{"type":"ping"}"#,
            true,
            None,
            1002,
        ),
        ("continuation first", 0x80, b"x", true, None, 1002),
        (
            "16 MiB frame announced",
            0x82,
            b"",
            true,
            Some(16 << 20),
            1009,
        ),
        (
            "message over 1 MB",
            0x82,
            &[b' '; 1024 * 1024 + 1],
            true,
            None,
            1009,
        ),
    ];
    for (what, first, payload, masked, len, code) in cases {
        let mut ws = RawWs::connect(&url, RELIABLE).await;
        let RawFrame::Text(connected) = ws.next().await else {
            panic!("{what}: no connected frame");
        };
        ws.send_frame(first, payload, masked, len).await;
        let (frames, got) = ws.frames_until_close().await;
        assert_eq!(got, code, "{what}");
        assert_eq!(frames.len(), 1, "{what}: {frames:?}");
        assert_eq!(frames[0]["event"], "disconnected", "{what}");
        // The violation ended the session: it cannot be recovered.
        expect_recovery_refused(&recovery_url(&url, &connected), RELIABLE).await;
    }
    ping_pong(&mut bystander).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_with_1007_and_not_relayed() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut bystander, _) = connect_pubsub(&url, JSON).await;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    for depth in [127, 100_000] {
        let (mut ws, _) = connect_pubsub(&url, JSON).await;
        let frame = format!(
            r#"{{"type":"sendToGroup","group":"g","dataType":"json","data":{}}}"#,
            nested(depth)
        );
        ws.send(Message::text(frame)).await.unwrap();
        let (frames, code) = frames_until_close(&mut ws).await;
        assert_eq!(code, 1007, "{depth}");
        assert_eq!(frames[0]["event"], "disconnected", "{depth}");
    }
    // 126 levels are relayed (the message around them stays within serde_json's limit), and
    // are what the bystander gets first.
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let frame = format!(
        r#"{{"type":"sendToGroup","group":"g","dataType":"json","data":{}}}"#,
        nested(126)
    );
    ws.send(Message::text(frame)).await.unwrap();
    let m = recv_json(&mut bystander).await;
    assert_eq!(m["data"].to_string(), nested(126));
    // REST bodies have the same limit.
    let path = "/api/hubs/h/:send?api-version=1";
    assert_eq!(
        post(&emu, path, "application/json", nested(127).as_bytes()).await,
        400
    );
    assert_eq!(
        post(&emu, path, "application/json", nested(126).as_bytes()).await,
        202
    );
    assert_eq!(
        recv_json(&mut bystander).await["data"].to_string(),
        nested(126)
    );
    emu.shutdown().await;
}
