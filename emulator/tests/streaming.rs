//! Group streaming: start, ordered fragments, acks and nacks, end with and without a user
//! error, idle timeout and keep-alive, refusals, recovery, the publisher's connection ending,
//! and the protobuf subprotocols.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite;

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

async fn start(ws: &mut Ws, group: &str, stream_id: &str, extra: Value) -> Value {
    let mut stream = json!({ "streamId": stream_id });
    if let (Some(s), Value::Object(e)) = (stream.as_object_mut(), extra) {
        s.extend(e);
    }
    send(
        ws,
        json!({"type":"sendToGroup","group":group,"noEcho":false,"stream":stream}),
    )
    .await;
    recv_until(ws, |v| {
        v["streamId"] == stream_id
            && matches!(v["type"].as_str(), Some("streamAck" | "streamClosed"))
    })
    .await
}

async fn fragment(ws: &mut Ws, stream_id: &str, seq: u64, text: &str) {
    send(
        ws,
        json!({"type":"streamData","streamId":stream_id,"streamSequenceId":seq,"dataType":"text","data":text}),
    )
    .await;
}

/// Frames up to and including the first `pong`: a ping round trip shows everything sent before
/// it was handled.
async fn until_pong(ws: &mut Ws) -> Vec<Value> {
    send(ws, json!({"type":"ping"})).await;
    let mut seen = Vec::new();
    loop {
        let v = recv_json(ws).await;
        if v["type"] == "pong" {
            return seen;
        }
        seen.push(v);
    }
}

/// Two connections in group `g`: a publisher (JSON) and a subscriber (`sub_protocol`).
async fn pair(emu: &webpubsub_emulator::Emulator, sub_protocol: &str) -> (Ws, Ws, Value) {
    let url = emu.client_access_url("h", Some("alice"), ROLES, &[], HOUR);
    let (mut publisher, _) = connect_pubsub(&url, JSON).await;
    let sub_url = emu.client_access_url("h", Some("bob"), ROLES, &[], HOUR);
    let (mut sub, connected) = connect_pubsub(&sub_url, sub_protocol).await;
    assert_eq!(join(&mut sub, "g", 1).await["success"], true);
    assert_eq!(join(&mut publisher, "g", 1).await["success"], true);
    (publisher, sub, connected)
}

#[tokio::test]
async fn fragments_reach_the_group_in_order_then_the_terminal_frame() {
    let emu = emulator().await;
    let (mut publisher, mut sub, _) = pair(&emu, RELIABLE).await;
    assert_eq!(
        start(&mut publisher, "g", "s1", json!({"idleTimeoutMs": 15000})).await,
        json!({"type":"streamAck","streamId":"s1","expectedSequenceId":1})
    );
    fragment(&mut publisher, "s1", 1, "chunk-1").await;
    fragment(&mut publisher, "s1", 2, "chunk-2").await;
    send(&mut publisher, json!({"type":"streamEnd","streamId":"s1"})).await;

    let m1 = recv_json(&mut sub).await;
    assert_eq!(
        m1,
        json!({"sequenceId":1,"type":"message","from":"group","group":"g","fromUserId":"alice",
               "dataType":"text","data":"chunk-1",
               "stream":{"streamId":"s1","streamSequenceId":1,"endOfStream":false}})
    );
    assert_eq!(recv_json(&mut sub).await["data"], "chunk-2");
    let end = recv_json(&mut sub).await;
    assert_eq!(
        end["sequenceId"], 3,
        "terminal frames are sequenced like data"
    );
    assert_eq!(end["dataType"], "text");
    assert_eq!(end["data"], "", "terminal frames carry a non-null payload");
    assert_eq!(
        end["stream"],
        json!({"streamId":"s1","streamSequenceId":3,"endOfStream":true})
    );

    // The publisher (echo on) sees its own fragments; its acks never decrease and end at 3;
    // streamClosed has no error.
    let frames = until_pong(&mut publisher).await;
    let acks: Vec<u64> = frames
        .iter()
        .filter(|v| v["type"] == "streamAck")
        .map(|v| v["expectedSequenceId"].as_u64().unwrap())
        .collect();
    assert!(acks.windows(2).all(|w| w[0] <= w[1]), "{acks:?}");
    assert!(acks.iter().all(|a| *a <= 3), "{acks:?}");
    assert_eq!(
        frames
            .iter()
            .filter(|v| v["stream"]["streamId"] == "s1")
            .count(),
        3,
        "{frames:?}"
    );
    assert!(frames.contains(&json!({"type":"streamClosed","streamId":"s1"})));
    emu.shutdown().await;
}

#[tokio::test]
async fn acks_are_batched_non_decreasing_and_complete() {
    let emu = emulator().await;
    let (mut publisher, _sub, _) = pair(&emu, JSON).await;
    assert_eq!(
        start(&mut publisher, "other", "s", json!({})).await["type"],
        "streamAck"
    );
    for seq in 1..=100 {
        fragment(&mut publisher, "s", seq, "x").await;
    }
    // Every fragment is acknowledged in the end, with fewer acks than fragments.
    let mut acks = Vec::new();
    while acks.last() != Some(&101) {
        let v = recv_until(&mut publisher, |v| v["type"] == "streamAck").await;
        acks.push(v["expectedSequenceId"].as_u64().unwrap());
    }
    assert!(acks.windows(2).all(|w| w[0] <= w[1]), "{acks:?}");
    assert!(acks.len() < 100, "batched: {} acks", acks.len());
    emu.shutdown().await;
}

#[tokio::test]
async fn duplicates_are_reacked_and_gaps_nacked_without_relaying() {
    let emu = emulator().await;
    let (mut publisher, mut sub, _) = pair(&emu, JSON).await;
    send(
        &mut publisher,
        json!({"type":"sendToGroup","group":"g","noEcho":true,"stream":{"streamId":"s"}}),
    )
    .await;
    assert_eq!(recv_json(&mut publisher).await["expectedSequenceId"], 1);
    fragment(&mut publisher, "s", 1, "a").await;
    fragment(&mut publisher, "s", 1, "a-again").await;
    fragment(&mut publisher, "s", 3, "c-too-early").await;
    fragment(&mut publisher, "s", 2, "b").await;
    let frames = until_pong(&mut publisher).await;
    assert!(
        frames.contains(&json!({"type":"streamAck","streamId":"s","expectedSequenceId":2})),
        "duplicate re-acked: {frames:?}"
    );
    let nack = frames
        .iter()
        .find(|v| v["type"] == "streamNack")
        .expect("gap nacked");
    assert_eq!(nack["name"], "InvalidSequenceId");
    assert_eq!(nack["expectedSequenceId"], 2);
    assert!(nack["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        frames.iter().all(|v| v["type"] != "message"),
        "noEcho: {frames:?}"
    );
    let expected: Vec<u64> = frames
        .iter()
        .filter_map(|v| v["expectedSequenceId"].as_u64())
        .collect();
    assert!(expected.windows(2).all(|w| w[0] <= w[1]), "{expected:?}");
    let relayed: Vec<Value> = until_pong(&mut sub)
        .await
        .into_iter()
        .map(|v| v["data"].clone())
        .collect();
    assert_eq!(relayed, vec![json!("a"), json!("b")]);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_user_error_reaches_subscribers_and_the_publisher_gets_a_plain_close() {
    let emu = emulator().await;
    let (mut publisher, mut sub, _) = pair(&emu, JSON).await;
    start(&mut publisher, "g", "s", json!({})).await;
    fragment(&mut publisher, "s", 1, "part").await;
    send(
        &mut publisher,
        json!({"type":"streamEnd","streamId":"s","error":{"message":"stream failed","userErrorCode":"APP_42"}}),
    )
    .await;
    assert_eq!(
        recv_until(&mut publisher, |v| v["type"] == "streamClosed").await,
        json!({"type":"streamClosed","streamId":"s"})
    );
    assert_eq!(recv_json(&mut sub).await["data"], "part");
    let end = recv_json(&mut sub).await;
    assert_eq!(
        end["stream"],
        json!({"streamId":"s","streamSequenceId":2,"endOfStream":true,
               "error":{"name":"UserError","message":"stream failed","userErrorCode":"APP_42"}})
    );
    // The id may be used again once closed.
    assert_eq!(
        start(&mut publisher, "g", "s", json!({})).await["type"],
        "streamAck"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn refusals_close_the_stream_not_the_connection() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("u"), &["webpubsub.joinLeaveGroup"], &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let forbidden = start(&mut ws, "g", "s", json!({})).await;
    assert_eq!(forbidden["type"], "streamClosed");
    assert_eq!(forbidden["error"]["name"], "Forbidden");

    let url = emu.client_access_url("h", Some("u"), ROLES, &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    for (id, extra) in [
        ("", json!({})),
        ("t", json!({"idleTimeoutMs": 0})),
        ("t", json!({"idleTimeoutMs": -5})),
        ("t", json!({"idleTimeoutMs": "100"})),
        ("t", json!({"idleTimeoutMs": 86_400_001u64})),
    ] {
        let r = start(&mut ws, "g", id, extra.clone()).await;
        assert_eq!(r["type"], "streamClosed", "{extra}");
        assert_eq!(r["error"]["name"], "BadRequest", "{extra}");
    }
    assert_eq!(
        start(&mut ws, "g", "dup", json!({})).await["type"],
        "streamAck"
    );
    let dup = start(&mut ws, "g", "dup", json!({})).await;
    assert_eq!(dup["error"]["name"], "BadRequest");

    for frame in [
        json!({"type":"streamData","streamId":"nope","streamSequenceId":1,"dataType":"text","data":"x"}),
        json!({"type":"streamData","streamId":"nope"}),
        json!({"type":"streamEnd","streamId":"nope"}),
    ] {
        send(&mut ws, frame).await;
        let r = recv_json(&mut ws).await;
        assert_eq!(r["type"], "streamClosed");
        assert_eq!(r["streamId"], "nope");
        assert_eq!(r["error"]["name"], "StreamNotFound");
    }
    ping_pong(&mut ws).await;

    // A start with a payload and a fragment missing its dataType are malformed frames.
    send(
        &mut ws,
        json!({"type":"streamData","streamId":"dup","streamSequenceId":1,"data":"x"}),
    )
    .await;
    assert_eq!(expect_close(&mut ws).await, 1007);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    send(
        &mut ws,
        json!({"type":"sendToGroup","group":"g","dataType":"text","data":"x","stream":{"streamId":"s"}}),
    )
    .await;
    assert_eq!(expect_close(&mut ws).await, 1007);
    emu.shutdown().await;
}

#[tokio::test]
async fn idle_streams_time_out_and_keep_alives_hold_them_open() {
    let emu = emulator().await;
    let (mut publisher, mut sub, _) = pair(&emu, JSON).await;
    start(&mut publisher, "g", "kept", json!({"idleTimeoutMs": 400})).await;
    // Keep-alives every 100 ms for a second: far past the idle timeout.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(
            &mut publisher,
            json!({"type":"streamData","streamId":"kept"}),
        )
        .await;
    }
    fragment(&mut publisher, "kept", 1, "still open").await;
    assert_eq!(recv_json(&mut sub).await["data"], "still open");

    // Now idle: the publisher gets IdleTimeout, subscribers a terminal IdleTimeout frame.
    let closed = recv_until(&mut publisher, |v| v["type"] == "streamClosed").await;
    assert_eq!(closed["streamId"], "kept");
    assert_eq!(closed["error"]["name"], "IdleTimeout");
    let end = recv_json(&mut sub).await;
    assert_eq!(end["stream"]["endOfStream"], true);
    assert_eq!(end["stream"]["streamSequenceId"], 2);
    assert_eq!(end["stream"]["error"]["name"], "IdleTimeout");
    assert_eq!(end["data"], "");
    emu.shutdown().await;
}

#[tokio::test]
async fn streams_survive_recovery_and_replays_are_not_relayed_twice() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("alice"), ROLES, &[], HOUR);
    let (mut publisher, connected) = connect_pubsub(&url, RELIABLE).await;
    let sub_url = emu.client_access_url("h", Some("bob"), ROLES, &[], HOUR);
    let (mut sub, _) = connect_pubsub(&sub_url, JSON).await;
    assert_eq!(join(&mut sub, "g", 1).await["success"], true);
    start(&mut publisher, "g", "s", json!({})).await;
    fragment(&mut publisher, "s", 1, "one").await;
    assert_eq!(recv_json(&mut sub).await["data"], "one");

    let id = connected["connectionId"].as_str().unwrap();
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/_emulator/hubs/h/connections/{id}/:drop")
        )
        .await,
        204
    );
    assert_eq!(expect_close(&mut publisher).await, 1006);
    let (mut publisher, _) = try_connect(&recovery_url(&url, &connected), &[RELIABLE])
        .await
        .expect("recovers");
    let again = recv_json(&mut publisher).await;
    assert_eq!(
        again["event"], "connected",
        "connected is sent on the recovered socket"
    );
    assert_eq!(again["connectionId"], id);
    // The client replays what it has not seen acknowledged, then goes on.
    fragment(&mut publisher, "s", 1, "one").await;
    fragment(&mut publisher, "s", 2, "two").await;
    send(&mut publisher, json!({"type":"streamEnd","streamId":"s"})).await;
    assert_eq!(
        recv_until(&mut publisher, |v| v["type"] == "streamClosed").await,
        json!({"type":"streamClosed","streamId":"s"})
    );
    assert_eq!(recv_json(&mut sub).await["data"], "two");
    assert_eq!(recv_json(&mut sub).await["stream"]["endOfStream"], true);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_publisher_that_goes_away_cancels_its_streams() {
    let emu = emulator().await;
    let (mut publisher, mut sub, _) = pair(&emu, JSON).await;
    start(&mut publisher, "g", "a", json!({})).await;
    start(&mut publisher, "g", "b", json!({})).await;
    fragment(&mut publisher, "a", 1, "x").await;
    assert_eq!(recv_json(&mut sub).await["data"], "x");
    close_normal(&mut publisher).await;
    let mut ended = Vec::new();
    for _ in 0..2 {
        let end = recv_json(&mut sub).await;
        assert_eq!(end["stream"]["endOfStream"], true);
        assert_eq!(end["stream"]["error"]["name"], "Cancelled");
        ended.push((
            end["stream"]["streamId"].as_str().unwrap().to_string(),
            end["stream"]["streamSequenceId"].as_u64().unwrap(),
        ));
    }
    ended.sort();
    assert_eq!(ended, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    emu.shutdown().await;
}

#[tokio::test]
async fn protobuf_connections_get_no_stream_frames() {
    let emu = emulator().await;
    let (mut publisher, mut sub, _) = pair(&emu, JSON).await;
    let pb_url = emu.client_access_url("h", Some("carol"), ROLES, &[], HOUR);
    let mut pb = connect(&pb_url, "protobuf.webpubsub.azure.v1").await;
    recv(&mut pb).await; // connected
                         // joinGroup { group: "g", ackId: 1 } as protobuf UpstreamMessage field 6.
    let join_pb = [0x32, 0x05, 0x0a, 0x01, b'g', 0x10, 0x01];
    pb.send(tungstenite::Message::binary(join_pb.to_vec()))
        .await
        .unwrap();
    recv(&mut pb).await; // ack
    start(&mut publisher, "g", "s", json!({})).await;
    fragment(&mut publisher, "s", 1, "json only").await;
    assert_eq!(recv_json(&mut sub).await["data"], "json only");
    // A plain group message after the fragment is the next thing the protobuf client gets.
    send(
        &mut publisher,
        json!({"type":"sendToGroup","group":"g","dataType":"text","data":"plain"}),
    )
    .await;
    let next = recv(&mut pb).await;
    assert!(
        next.into_data().windows(5).any(|w| w == b"plain"),
        "the fragment was not relayed to protobuf"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_stream_start_on_protobuf_is_refused_with_a_clear_reason() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("carol"), ROLES, &[], HOUR);
    let mut pb = connect(&url, "protobuf.webpubsub.azure.v1").await;
    recv(&mut pb).await;
    // SendToGroupMessage { group: "g", stream (field 7): {} } in UpstreamMessage field 1.
    let frame = [0x0a, 0x05, 0x0a, 0x01, b'g', 0x3a, 0x00];
    pb.send(tungstenite::Message::binary(frame.to_vec()))
        .await
        .unwrap();
    let reason = tokio::time::timeout(DEADLINE, async {
        loop {
            match pb.next().await {
                Some(Ok(tungstenite::Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.to_string())
                }
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(reason.0, 1007);
    assert!(reason.1.contains("protobuf"), "{}", reason.1);
    emu.shutdown().await;
}
