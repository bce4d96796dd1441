//! Protobuf subprotocols: connected frame, join/ack, group data with sequence ids, ping/pong,
//! mixed JSON/protobuf groups, recovery.

mod common;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PB_RELIABLE: &str = "protobuf.reliable.webpubsub.azure.v1";
const PB: &str = "protobuf.webpubsub.azure.v1";
const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

fn len_field(field: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut v = vec![(field << 3) | 2, body.len() as u8];
    v.extend_from_slice(body);
    v
}

fn join_frame(group: &str, ack_id: u8) -> Vec<u8> {
    let mut inner = len_field(1, group.as_bytes());
    inner.extend_from_slice(&[0x10, ack_id]);
    len_field(6, &inner)
}

fn send_text_frame(group: &str, text: &str) -> Vec<u8> {
    let mut inner = len_field(1, group.as_bytes());
    inner.extend(len_field(3, &len_field(1, text.as_bytes())));
    len_field(1, &inner)
}

async fn recv_binary(ws: &mut Ws) -> Vec<u8> {
    match recv(ws).await {
        Message::Binary(b) => b.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn protobuf_reliable_round_trip_with_json_peers() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("pbuser"), ROLES, &[], HOUR);
    let (mut pb, p) = try_connect(&url, &[PB_RELIABLE]).await.unwrap();
    assert_eq!(p.as_deref(), Some(PB_RELIABLE));
    let connected = recv_binary(&mut pb).await;
    assert_eq!(connected[0], 0x1a, "system message");
    let info = emu.connections("h");
    assert_eq!(info[0].subprotocol.as_deref(), Some(PB_RELIABLE));
    let id = info[0].connection_id.clone();
    assert!(contains(&connected, id.as_bytes()));
    assert!(contains(&connected, b"pbuser"));

    pb.send(Message::binary(join_frame("g", 1))).await.unwrap();
    assert_eq!(
        recv_binary(&mut pb).await,
        vec![0x0a, 0x04, 0x08, 0x01, 0x10, 0x01]
    );
    pb.send(Message::binary(vec![0x4a, 0x00])).await.unwrap();
    assert_eq!(recv_binary(&mut pb).await, vec![0x22, 0x00], "pong");

    // JSON publisher -> protobuf subscriber (sequence id 1).
    let (mut js, _) =
        connect_pubsub(&emu.client_access_url("h", None, ROLES, &[], HOUR), JSON).await;
    assert_eq!(join(&mut js, "g", 1).await["success"], true);
    send(
        &mut js,
        json!({"type":"sendToGroup","group":"g","dataType":"text","data":"xyz","noEcho":true}),
    )
    .await;
    let mut expected = vec![0x12, 0x13];
    expected.extend(len_field(1, b"group"));
    expected.extend(len_field(2, b"g"));
    expected.extend(len_field(3, &len_field(1, b"xyz")));
    expected.extend([0x20, 0x01]);
    assert_eq!(recv_binary(&mut pb).await, expected);

    // Protobuf publisher -> JSON subscriber.
    pb.send(Message::binary(send_text_frame("g", "from pb")))
        .await
        .unwrap();
    let m = recv_until(&mut js, |v| v["type"] == "message").await;
    assert_eq!(
        m,
        json!({"type":"message","from":"group","group":"g","fromUserId":"pbuser","dataType":"text","data":"from pb"})
    );

    // Recovery on the protobuf reliable subprotocol replays the unacknowledged message.
    let token_at = connected.len() - 1 - connected.iter().rev().position(|b| *b == 0x1a).unwrap();
    let token = String::from_utf8(connected[token_at + 2..].to_vec()).unwrap();
    assert!(emu.drop_connection("h", &id));
    assert_eq!(expect_close(&mut pb).await, 1006);
    let rec = format!("{url}&awps_connection_id={id}&awps_reconnection_token={token}");
    let (mut pb, _) = try_connect(&rec, &[PB_RELIABLE]).await.unwrap();
    assert_eq!(recv_binary(&mut pb).await[0], 0x1a, "connected again");
    let replay = recv_binary(&mut pb).await;
    assert!(
        replay.ends_with(&[0x20, 0x01]),
        "original sequence id 1: {replay:?}"
    );
    let own = recv_binary(&mut pb).await;
    assert!(
        own.ends_with(&[0x20, 0x02]),
        "echo of its own message, sequence id 2"
    );

    // Text frames are invalid on protobuf.
    pb.send(Message::text("{}")).await.unwrap();
    assert_eq!(expect_close(&mut pb).await, 1003);
    emu.shutdown().await;
}

#[tokio::test]
async fn protobuf_non_reliable_gets_no_sequence_ids() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &["g"], HOUR);
    let (mut pb, p) = try_connect(&url, &[PB]).await.unwrap();
    assert_eq!(p.as_deref(), Some(PB));
    let connected = recv_binary(&mut pb).await;
    assert_eq!(connected[0], 0x1a);
    assert_eq!(
        post(
            &emu,
            "/api/hubs/h/:send",
            "application/octet-stream",
            &[1, 2, 3]
        )
        .await,
        202
    );
    let mut expected = vec![0x12, 0x0f];
    expected.extend(len_field(1, b"server"));
    expected.extend(len_field(3, &len_field(2, &[1, 2, 3])));
    assert_eq!(recv_binary(&mut pb).await, expected);
    // Garbage is a protocol violation (1007), preceded by a protobuf disconnected message.
    pb.send(Message::binary(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let disconnected = recv_binary(&mut pb).await;
    assert_eq!(&disconnected[..2], &[0x1a, disconnected.len() as u8 - 2]);
    assert_eq!(expect_close(&mut pb).await, 1007);
    emu.shutdown().await;
}
