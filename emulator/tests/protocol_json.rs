//! JSON subprotocols: connected frame, groups, acks, Duplicate, Forbidden, noEcho, ping.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn connected_frame_shape_per_subprotocol() {
    let emu = emulator().await;
    let url = emu.client_access_url("Hub1", Some("user1"), &[], &[], HOUR);
    let (mut ws, p) = try_connect(&url, &[RELIABLE]).await.unwrap();
    assert_eq!(p.as_deref(), Some(RELIABLE));
    let c = recv_json(&mut ws).await;
    assert_eq!(c["type"], "system");
    assert_eq!(c["event"], "connected");
    assert_eq!(c["userId"], "user1");
    assert!(c["connectionId"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(c["reconnectionToken"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    let anon = emu.client_access_url("Hub1", None, &[], &[], HOUR);
    let (mut ws, p) = try_connect(&anon, &[JSON]).await.unwrap();
    assert_eq!(p.as_deref(), Some(JSON));
    let c = recv_json(&mut ws).await;
    let o = c.as_object().unwrap();
    assert!(!o.contains_key("userId"), "{c}");
    assert!(!o.contains_key("reconnectionToken"), "{c}");

    let (_ws, p) = try_connect(&anon, &[JSON, RELIABLE]).await.unwrap();
    assert_eq!(p.as_deref(), Some(RELIABLE), "reliable is preferred");
    assert_eq!(
        emu.connections("hub1").len(),
        3,
        "hub names are case-insensitive"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn join_send_ack_and_duplicate() {
    let emu = emulator().await;
    let roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
    let url = emu.client_access_url("h", Some("alice"), &roles, &[], HOUR);
    let (mut a, _) = connect_pubsub(&url, JSON).await;
    let (mut b, cb) = connect_pubsub(&url, JSON).await;
    assert_eq!(
        join(&mut a, "g1", 0).await,
        json!({"type":"ack","ackId":0,"success":true})
    );
    assert_eq!(join(&mut b, "g1", 1).await["success"], true);

    send(&mut a, json!({"type":"sendToGroup","group":"g1","ackId":2,"dataType":"Text","data":"hi","noEcho":true})).await;
    let ack = recv_json(&mut a).await;
    assert_eq!(ack, json!({"type":"ack","ackId":2,"success":true}));
    let m = recv_json(&mut b).await;
    assert_eq!(
        m,
        json!({"type":"message","from":"group","group":"g1","fromUserId":"alice","dataType":"text","data":"hi"})
    );

    // Same ackId again: Duplicate, not executed.
    send(
        &mut a,
        json!({"type":"sendToGroup","group":"g1","ackId":2,"dataType":"json","data":{"x":1}}),
    )
    .await;
    let dup = recv_json(&mut a).await;
    assert_eq!(dup["success"], false);
    assert_eq!(dup["error"]["name"], "Duplicate");
    assert!(dup["error"]["message"].is_string());

    // Echo on by default; binary round trip; json default dataType.
    send(
        &mut a,
        json!({"type":"sendToGroup","group":"g1","ackId":3,"dataType":"binary","data":"AQID"}),
    )
    .await;
    let m_a = recv_until(&mut a, |v| v["type"] == "message").await;
    assert_eq!(m_a["data"], "AQID");
    assert_eq!(m_a["dataType"], "binary");
    let m_b = recv_json(&mut b).await;
    assert_eq!(m_b["data"], "AQID");
    send(
        &mut b,
        json!({"type":"sendToGroup","group":"g1","data":[1,2]}),
    )
    .await;
    let m = recv_until(&mut a, |v| v["type"] == "message").await;
    assert_eq!(m["dataType"], "json");
    assert_eq!(m["data"], json!([1, 2]));

    // leaveGroup stops delivery.
    send(&mut b, json!({"type":"leaveGroup","group":"g1","ackId":9})).await;
    assert_eq!(
        recv_until(&mut b, |v| v["type"] == "ack").await["success"],
        true
    );
    let info = emu.connections("h");
    let bid = cb["connectionId"].as_str().unwrap();
    assert!(info
        .iter()
        .find(|c| c.connection_id == bid)
        .unwrap()
        .groups
        .is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn forbidden_for_each_role_kind() {
    let emu = emulator().await;
    let cases: &[(&[&str], &str, bool, bool)] = &[
        // roles, group, may join, may send
        (&[], "g", false, false),
        (&["webpubsub.joinLeaveGroup"], "any", true, false),
        (&["webpubsub.sendToGroup"], "any", false, true),
        (
            &["webpubsub.joinLeaveGroup.g1", "webpubsub.sendToGroup.g1"],
            "g1",
            true,
            true,
        ),
        (
            &["webpubsub.joinLeaveGroup.g1", "webpubsub.sendToGroup.g1"],
            "g2",
            false,
            false,
        ),
        (
            &[
                "webpubsub.joinLeaveGroups.chat-*",
                "webpubsub.sendToGroups.room.**",
            ],
            "chat-7",
            true,
            false,
        ),
        (
            &[
                "webpubsub.joinLeaveGroups.chat-*",
                "webpubsub.sendToGroups.room.**",
            ],
            "chat.7",
            false,
            false,
        ),
        (
            &[
                "webpubsub.joinLeaveGroups.chat-*",
                "webpubsub.sendToGroups.room.**",
            ],
            "room.a.b",
            false,
            true,
        ),
    ];
    for (i, (roles, group, may_join, may_send)) in cases.iter().enumerate() {
        let url = emu.client_access_url("h", None, roles, &[], HOUR);
        let (mut ws, _) = connect_pubsub(&url, RELIABLE).await;
        let ack = join(&mut ws, group, 1).await;
        assert_eq!(ack["success"], *may_join, "case {i}: {ack}");
        if !may_join {
            assert_eq!(ack["error"]["name"], "Forbidden");
            assert!(ack["error"]["message"].is_string());
        }
        send(
            &mut ws,
            json!({"type":"sendToGroup","group":group,"ackId":2,"dataType":"text","data":"x"}),
        )
        .await;
        let ack = recv_until(&mut ws, |v| v["type"] == "ack").await;
        assert_eq!(ack["success"], *may_send, "case {i}: {ack}");
        if !may_send {
            assert_eq!(ack["error"]["name"], "Forbidden");
            // A Forbidden ackId is not cached: retrying it is Forbidden again, not Duplicate.
            send(
                &mut ws,
                json!({"type":"sendToGroup","group":group,"ackId":2,"dataType":"text","data":"x"}),
            )
            .await;
            let again = recv_until(&mut ws, |v| v["type"] == "ack").await;
            assert_eq!(again["error"]["name"], "Forbidden");
        }
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn token_groups_are_joined_at_connect() {
    let emu = emulator().await;
    let sender = emu.client_access_url("h", None, &["webpubsub.sendToGroup"], &[], HOUR);
    let member = emu.client_access_url("h", Some("m"), &[], &["news", "sports"], HOUR);
    let (mut m, c) = connect_pubsub(&member, RELIABLE).await;
    let (mut s, _) = connect_pubsub(&sender, JSON).await;
    let id = c["connectionId"].as_str().unwrap();
    let info = emu
        .connections("h")
        .into_iter()
        .find(|x| x.connection_id == id)
        .unwrap();
    assert_eq!(info.groups, vec!["news", "sports"]);
    assert_eq!(info.user_id.as_deref(), Some("m"));
    send(
        &mut s,
        json!({"type":"sendToGroup","group":"sports","dataType":"text","data":"goal"}),
    )
    .await;
    let msg = recv_json(&mut m).await;
    assert_eq!(msg["sequenceId"], 1);
    assert_eq!(msg["group"], "sports");
    assert!(msg.get("fromUserId").is_none(), "anonymous sender: {msg}");
    emu.shutdown().await;
}

#[tokio::test]
async fn ping_gets_pong_and_events_fail_without_upstream() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, RELIABLE).await;
    send(&mut ws, json!({"type":"ping"})).await;
    assert_eq!(recv_json(&mut ws).await, json!({"type":"pong"}));
    send(
        &mut ws,
        json!({"type":"event","event":"ev1","ackId":5,"dataType":"json","data":{"x":1}}),
    )
    .await;
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"type":"ack","ackId":5,"success":false,
               "error":{"name":"InternalServerError","message":"No event handler is configured."}})
    );
    // Without an ackId the event is dropped silently; the next reply is the pong.
    send(&mut ws, json!({"type":"event","event":"ev1","data":1})).await;
    send(&mut ws, json!({"type":"ping"})).await;
    assert_eq!(recv_json(&mut ws).await, json!({"type":"pong"}));
    send(&mut ws, json!({"type":"invoke","invocationId":"1","target":"event","event":"echo","dataType":"text","data":"p"})).await;
    let r = recv_json(&mut ws).await;
    assert_eq!(r["type"], "invokeResponse");
    assert_eq!(r["invocationId"], "1");
    assert_eq!(r["success"], false);
    assert_eq!(r["error"]["name"], "InternalServerError");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_roles_match_adversarial_group_names_quickly() {
    // A backtracking matcher needs over 15 s of CPU per request for this pattern and name.
    let emu = emulator().await;
    let roles = [
        "webpubsub.joinLeaveGroups.*-*-*-*-*",
        "webpubsub.sendToGroups.*-*-*-*-*",
    ];
    let url = emu.client_access_url("h", None, &roles, &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let (mut bystander, _) = connect_pubsub(&url, JSON).await;
    let hostile = format!("{}.", "-".repeat(1023));
    let started = std::time::Instant::now();
    for ack_id in 1..=4u64 {
        let kind = if ack_id % 2 == 0 {
            "sendToGroup"
        } else {
            "joinGroup"
        };
        send(
            &mut ws,
            json!({"type":kind,"group":hostile,"ackId":ack_id,"dataType":"text","data":"x"}),
        )
        .await;
    }
    ping_pong(&mut bystander).await;
    for ack_id in 1..=4u64 {
        let ack = recv_json(&mut ws).await;
        assert_eq!(ack["ackId"], ack_id);
        assert_eq!(ack["error"]["name"], "Forbidden");
    }
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    // The pattern still grants what it describes.
    assert_eq!(join(&mut ws, "a-b-c-d-e", 5).await["success"], true);
    emu.shutdown().await;
}
