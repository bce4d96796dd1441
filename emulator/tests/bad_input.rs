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
    // 400 echoed 64 KiB messages (~26 MB) exceed the socket buffers: the emulator must keep
    // reading this client while its outbound frames wait.
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let big = "x".repeat(64 * 1024);
    tokio::time::timeout(DEADLINE * 4, async {
        for i in 0..400u64 {
            let frame =
                json!({"type":"sendToGroup","group":"g","ackId":i,"dataType":"text","data":big});
            ws.send(Message::text(frame.to_string())).await.unwrap();
        }
    })
    .await
    .expect("writes complete although nothing was read");
    let (mut acks, mut messages) = (0, 0);
    while acks < 400 || messages < 400 {
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
    send(&mut bystander, json!({"type":"ping"})).await;
    assert_eq!(recv_json(&mut bystander).await["type"], "pong");
    emu.shutdown().await;
}
