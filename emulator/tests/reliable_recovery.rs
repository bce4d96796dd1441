//! Reliable subprotocol: sequence ids, sequenceAck, recovery replay, 1008 on failed recovery,
//! buffer overflow, and the fault-injection API.

mod common;
use common::*;
use serde_json::json;

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

async fn publish(ws: &mut Ws, group: &str, text: &str) {
    send(
        ws,
        json!({"type":"sendToGroup","group":group,"dataType":"text","data":text}),
    )
    .await;
}

#[tokio::test]
async fn recovery_after_drop_replays_unacked_messages_in_order() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("sub"), ROLES, &[], HOUR);
    let (mut sub, connected) = connect_pubsub(&url, RELIABLE).await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    assert_eq!(join(&mut sub, "g", 1).await["success"], true);
    send(
        &mut sub,
        json!({"type":"sendToGroup","group":"other","ackId":7,"dataType":"text","data":"x"}),
    )
    .await;
    assert_eq!(recv_json(&mut sub).await["success"], true);
    let pub_url = emu.client_access_url("h", None, ROLES, &[], HOUR);
    let (mut publisher, _) = connect_pubsub(&pub_url, JSON).await;

    for i in 1..=3 {
        publish(&mut publisher, "g", &format!("m{i}")).await;
    }
    for i in 1..=3u64 {
        let m = recv_json(&mut sub).await;
        assert_eq!(m["sequenceId"], i);
        assert_eq!(m["data"], format!("m{i}"));
    }
    send(&mut sub, json!({"type":"sequenceAck","sequenceId":2})).await;
    // Round trip through the connection so the sequenceAck is processed before the drop.
    send(&mut sub, json!({"type":"ping"})).await;
    assert_eq!(recv_json(&mut sub).await["type"], "pong");

    // Drop the transport through the HTTP fault API.
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/_emulator/hubs/h/connections/{id}/:drop")
        )
        .await,
        204
    );
    assert_eq!(
        expect_close(&mut sub).await,
        1006,
        "cut without a close frame"
    );
    // Still listed (recoverable) and still in its group.
    let r = http(
        &emu,
        "GET",
        "/_emulator/hubs/h/connections",
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let listed = r.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let me = listed
        .iter()
        .find(|c| c["connectionId"] == id.as_str())
        .expect("listed");
    assert_eq!(me["groups"], json!(["g"]));
    assert_eq!(me["userId"], "sub");
    assert_eq!(me["subprotocol"], RELIABLE);

    // Messages published during the outage are buffered.
    for i in 4..=5 {
        publish(&mut publisher, "g", &format!("m{i}")).await;
    }
    send(&mut publisher, json!({"type":"ping"})).await;
    recv_until(&mut publisher, |v| v["type"] == "pong").await;

    // The access token in the recovery URL is not checked (it may have expired): corrupt it.
    let stale = format!("{url}x");
    let (mut sub, again) = connect_pubsub(&recovery_url(&stale, &connected), RELIABLE).await;
    assert_eq!(again["connectionId"], id.as_str());
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let m = recv_json(&mut sub).await;
        replayed.push((
            m["sequenceId"].as_u64().unwrap(),
            m["data"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        replayed,
        vec![
            (3, "m3".to_string()),
            (4, "m4".to_string()),
            (5, "m5".to_string())
        ]
    );
    // Live messages continue the sequence; the group membership survived.
    publish(&mut publisher, "g", "m6").await;
    let m = recv_json(&mut sub).await;
    assert_eq!(
        (m["sequenceId"].as_u64(), m["data"].as_str()),
        (Some(6), Some("m6"))
    );
    // The ackId cache survived the recovery.
    send(
        &mut sub,
        json!({"type":"sendToGroup","group":"other","ackId":7,"dataType":"text","data":"x"}),
    )
    .await;
    assert_eq!(recv_json(&mut sub).await["error"]["name"], "Duplicate");
    emu.shutdown().await;
}

#[tokio::test]
async fn failed_recovery_is_101_then_1008() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut ws, connected) = connect_pubsub(&url, RELIABLE).await;
    let id = connected["connectionId"].as_str().unwrap();

    // Wrong reconnection token.
    let bad = format!("{url}&awps_connection_id={id}&awps_reconnection_token=nope");
    let (mut r, p) = try_connect(&bad, &[RELIABLE])
        .await
        .expect("handshake succeeds");
    assert_eq!(p.as_deref(), Some(RELIABLE));
    assert_eq!(expect_close(&mut r).await, 1008);

    // Expire: the live socket is cut and the session forgotten.
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/_emulator/hubs/h/connections/{id}/:expire")
        )
        .await,
        204
    );
    assert_eq!(expect_close(&mut ws).await, 1006);
    assert!(emu.connections("h").is_empty());
    expect_recovery_refused(&recovery_url(&url, &connected), RELIABLE).await;

    // Unknown connection in the fault API.
    assert_eq!(
        call(&emu, "POST", "/_emulator/hubs/h/connections/nope/:drop").await,
        404
    );
    let r = http(
        &emu,
        "POST",
        "/_emulator/hubs/h/connections/nope/:drop",
        false,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn client_close_1000_ends_the_session() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut ws, connected) = connect_pubsub(&url, RELIABLE).await;
    close_normal(&mut ws).await;
    let _ = expect_close(&mut ws).await;
    expect_recovery_refused(&recovery_url(&url, &connected), RELIABLE).await;
    assert!(emu.connections("h").is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn fault_close_sends_the_requested_code() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut ws, connected) = connect_pubsub(&url, RELIABLE).await;
    let id = connected["connectionId"].as_str().unwrap();
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/_emulator/hubs/h/connections/{id}/:close?code=4001&reason=bye")
        )
        .await,
        204
    );
    let (frames, code) = frames_until_close(&mut ws).await;
    assert_eq!(
        frames,
        vec![json!({"type":"system","event":"disconnected","message":"bye"})]
    );
    assert_eq!(code, 4001);
    // A non-1000/1008 close leaves the reliable session recoverable.
    let (mut ws, again) = connect_pubsub(&recovery_url(&url, &connected), RELIABLE).await;
    assert_eq!(again["connectionId"], connected["connectionId"]);
    assert!(emu.close_connection("h", id, 1000, "done"));
    let (frames, code) = frames_until_close(&mut ws).await;
    assert_eq!(
        frames,
        vec![json!({"type":"system","event":"disconnected","message":"done"})]
    );
    assert_eq!(code, 1000);
    // A 1000 close ends the session.
    expect_recovery_refused(&recovery_url(&url, &connected), RELIABLE).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn buffer_overflow_closes_with_1008() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &["g"], HOUR);
    let (mut sub, connected) = connect_pubsub(&url, RELIABLE).await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    // Never acknowledge; 1001 messages overflow the 1000-message buffer.
    let body = b"x".to_vec();
    for _ in 0..1001 {
        assert_eq!(
            post(
                &emu,
                "/api/hubs/h/groups/g/:send?api-version=2024-12-01",
                "text/plain",
                &body
            )
            .await,
            202
        );
    }
    let (frames, code) = frames_until_close(&mut sub).await;
    assert_eq!(code, 1008);
    assert_eq!(
        frames.len(),
        1001,
        "1000 messages then the disconnected frame"
    );
    assert_eq!(frames[999]["sequenceId"], 1000);
    assert_eq!(frames[1000]["event"], "disconnected");
    assert!(emu.connections("h").iter().all(|c| c.connection_id != id));
    expect_recovery_refused(&recovery_url(&url, &connected), RELIABLE).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn buffer_byte_limit_closes_with_1008() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &["g"], HOUR);
    let (mut sub, _) = connect_pubsub(&url, RELIABLE).await;
    // Never acknowledged: each frame is 1 MiB plus its envelope, so the 16th exceeds 16 MiB.
    let body = vec![b'x'; 1024 * 1024];
    for _ in 0..17 {
        assert_eq!(
            post(&emu, "/api/hubs/h/groups/g/:send", "text/plain", &body).await,
            202
        );
    }
    let (frames, code) = frames_until_close(&mut sub).await;
    assert_eq!(code, 1008);
    assert_eq!(
        frames.len(),
        15 + 1,
        "15 messages then the disconnected frame"
    );
    assert_eq!(frames[14]["sequenceId"], 15);
    assert_eq!(frames[15]["event"], "disconnected");
    assert!(emu.connections("h").is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn acked_messages_keep_the_buffer_small() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &["g"], HOUR);
    let (mut sub, _) = connect_pubsub(&url, RELIABLE).await;
    for round in 0..3u64 {
        for _ in 0..600 {
            assert_eq!(
                post(
                    &emu,
                    "/api/hubs/h/groups/g/:send",
                    "application/json",
                    b"{\"a\":1}"
                )
                .await,
                202
            );
        }
        let mut last = 0;
        for _ in 0..600 {
            last = recv_json(&mut sub).await["sequenceId"].as_u64().unwrap();
        }
        assert_eq!(last, (round + 1) * 600);
        send(&mut sub, json!({"type":"sequenceAck","sequenceId":last})).await;
        send(&mut sub, json!({"type":"ping"})).await;
        assert_eq!(recv_json(&mut sub).await["type"], "pong");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn fault_close_refuses_codes_that_must_not_be_sent() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut ws, connected) = connect_pubsub(&url, RELIABLE).await;
    let id = connected["connectionId"].as_str().unwrap();
    for code in [1005, 1006, 1015, 1004, 1014, 2000, 999, 5000, 0] {
        let path = format!("/_emulator/hubs/h/connections/{id}/:close?code={code}");
        assert_eq!(call(&emu, "POST", &path).await, 400, "{code}");
        assert!(!emu.close_connection("h", id, code, "x"), "{code}");
    }
    // Nothing was sent: the connection is untouched.
    ping_pong(&mut ws).await;
    for code in [1001, 1011, 1013, 3000, 4999] {
        assert!(faults_accept(&emu, id, code).await, "{code}");
    }
    emu.shutdown().await;
}

/// Whether the fault API accepts `code` (a bad request answers 400 before any lookup).
async fn faults_accept(emu: &webpubsub_emulator::Emulator, id: &str, code: u16) -> bool {
    let path = format!("/_emulator/hubs/h/connections/{id}x/:close?code={code}");
    call(emu, "POST", &path).await == 404
}

/// A burst far larger than the 1000-message window reaches a subscriber that acknowledges
/// every 100 messages as it reads: the emulator's writer waits for acknowledgements instead of
/// counting what is still queued for it against the window, so nobody is cut off.
#[tokio::test]
async fn a_burst_queued_for_the_writer_does_not_overflow_an_acking_subscriber() {
    const BURST: u64 = 20_000;
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut sub, _) = connect_pubsub(&url, RELIABLE).await;
    let (mut publisher, _) = connect_pubsub(&url, JSON).await;
    let burst = tokio::spawn(async move {
        for i in 0..BURST {
            publish(&mut publisher, "g", &i.to_string()).await;
        }
        // The pong follows every published message: all of them were handled.
        send(&mut publisher, json!({"type":"ping"})).await;
        recv_until(&mut publisher, |v| v["type"] == "pong").await;
        publisher
    });
    for seq in 1..=BURST {
        let m = recv_json(&mut sub).await;
        assert_eq!(m["sequenceId"], seq, "{m}");
        assert_eq!(m["data"], (seq - 1).to_string());
        if seq % 100 == 0 {
            send(&mut sub, json!({"type":"sequenceAck","sequenceId":seq})).await;
        }
    }
    let _publisher = tokio::time::timeout(DEADLINE * 4, burst)
        .await
        .expect("the burst is published")
        .unwrap();
    ping_pong(&mut sub).await;
    assert_eq!(emu.connections("h").len(), 2, "nobody was cut off");
    emu.shutdown().await;
}
