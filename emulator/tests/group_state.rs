//! Group state: set and clear, subscribe (ack, then snapshot), updates, leaving and
//! disconnecting clear a state, refusals, unsubscribe.

mod common;
use common::*;
use serde_json::{json, Value};

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

async fn request(ws: &mut Ws, frame: Value) -> Value {
    let ack_id = frame["ackId"].clone();
    send(ws, frame).await;
    recv_until(ws, |v| v["type"] == "ack" && v["ackId"] == ack_id).await
}

async fn set_state(ws: &mut Ws, group: &str, state: Option<Value>, ack_id: u64) -> Value {
    let mut frame = json!({"type":"setGroupState","group":group,"ackId":ack_id});
    if let Some(s) = state {
        frame["state"] = s;
    }
    request(ws, frame).await
}

#[tokio::test]
async fn subscribers_get_a_snapshot_then_updates_and_clears() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("alice"), ROLES, &[], HOUR);
    let (mut alice, ca) = connect_pubsub(&url, JSON).await;
    let alice_id = ca["connectionId"].as_str().unwrap().to_string();
    assert_eq!(join(&mut alice, "room", 1).await["success"], true);
    assert_eq!(
        set_state(&mut alice, "room", Some(json!({"status":"typing"})), 2).await,
        json!({"type":"ack","ackId":2,"success":true})
    );

    let bob_url = emu.client_access_url("h", Some("bob"), ROLES, &[], HOUR);
    let (mut bob, _) = connect_pubsub(&bob_url, RELIABLE).await;
    send(
        &mut bob,
        json!({"type":"subscribeGroupState","group":"room","ackId":1}),
    )
    .await;
    assert_eq!(
        recv_json(&mut bob).await,
        json!({"type":"ack","ackId":1,"success":true}),
        "the ack comes before the snapshot"
    );
    let snapshot = recv_json(&mut bob).await;
    assert_eq!(snapshot["type"], "groupStateSnapshot");
    assert!(
        snapshot.get("sequenceId").is_none(),
        "state frames are not sequenced"
    );
    assert_eq!(snapshot["group"], "room");
    let items = snapshot["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["connectionId"], alice_id.as_str());
    assert_eq!(items[0]["userId"], "alice");
    assert_eq!(items[0]["state"], json!({"status":"typing"}));
    let first = items[0]["updatedAt"].as_u64().unwrap();

    set_state(&mut alice, "room", Some(json!({"status":"idle"})), 3).await;
    let update = recv_json(&mut bob).await;
    assert_eq!(update["type"], "groupStateUpdate");
    assert_eq!(update["items"][0]["state"], json!({"status":"idle"}));
    let second = update["items"][0]["updatedAt"].as_u64().unwrap();
    assert!(second > first, "updatedAt increases: {first} then {second}");

    set_state(&mut alice, "room", None, 4).await;
    let cleared = recv_json(&mut bob).await;
    let item = cleared["items"][0].as_object().unwrap();
    assert_eq!(item["connectionId"], alice_id.as_str());
    assert!(!item.contains_key("state"), "{cleared}");
    assert!(item["updatedAt"].as_u64().unwrap() > second);

    // Leaving the group and disconnecting clear a state too.
    set_state(&mut alice, "room", Some(json!({"status":"here"})), 5).await;
    assert_eq!(
        recv_json(&mut bob).await["items"][0]["state"]["status"],
        "here"
    );
    send(
        &mut alice,
        json!({"type":"leaveGroup","group":"room","ackId":6}),
    )
    .await;
    let left = recv_json(&mut bob).await;
    assert!(left["items"][0].get("state").is_none(), "{left}");

    assert_eq!(join(&mut alice, "room", 7).await["success"], true);
    set_state(&mut alice, "room", Some(json!({"status":"back"})), 8).await;
    assert_eq!(
        recv_json(&mut bob).await["items"][0]["state"]["status"],
        "back"
    );
    close_normal(&mut alice).await;
    let gone = recv_json(&mut bob).await;
    assert_eq!(gone["items"][0]["connectionId"], alice_id.as_str());
    assert!(gone["items"][0].get("state").is_none(), "{gone}");

    // After unsubscribing nothing more arrives.
    assert_eq!(
        request(
            &mut bob,
            json!({"type":"unsubscribeGroupState","group":"room","ackId":2})
        )
        .await["success"],
        true
    );
    let (mut carol, _) = connect_pubsub(&url, JSON).await;
    join(&mut carol, "room", 1).await;
    set_state(&mut carol, "room", Some(json!({"k":"v"})), 2).await;
    ping_pong(&mut bob).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_sets_its_own_state_sees_it_and_a_snapshot_lists_only_states() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("u"), ROLES, &[], HOUR);
    let (mut a, _) = connect_pubsub(&url, JSON).await;
    let (mut b, _) = connect_pubsub(&url, JSON).await;
    join(&mut a, "room", 1).await;
    join(&mut b, "room", 1).await;
    set_state(&mut b, "room", Some(json!({"x":"1"})), 2).await;
    set_state(&mut b, "room", None, 3).await;
    send(
        &mut a,
        json!({"type":"subscribeGroupState","group":"room","ackId":2}),
    )
    .await;
    recv_until(&mut a, |v| v["type"] == "ack").await;
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type":"groupStateSnapshot","group":"room","items":[]})
    );
    set_state(&mut a, "room", Some(json!({"me":"yes"})), 3).await;
    let own = recv_until(&mut a, |v| v["type"] == "groupStateUpdate").await;
    assert_eq!(own["items"][0]["state"], json!({"me":"yes"}));
    emu.shutdown().await;
}

#[tokio::test]
async fn refusals() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("u"), ROLES, &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    let not_member = set_state(&mut ws, "room", Some(json!({"a":"b"})), 1).await;
    assert_eq!(not_member["error"]["name"], "BadRequest");
    join(&mut ws, "room", 2).await;
    let big: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let long = "v".repeat(5000);
    for (i, bad) in [
        json!("text"),
        json!(["a"]),
        json!({"n": 1}),
        Value::Object(big),
        json!({ "k": long }),
    ]
    .into_iter()
    .enumerate()
    {
        let r = set_state(&mut ws, "room", Some(bad.clone()), 10 + i as u64).await;
        assert_eq!(r["success"], false, "{bad}");
        assert_eq!(r["error"]["name"], "BadRequest", "{bad}");
    }
    // Subscribing needs the permission to join the group.
    let limited = emu.client_access_url(
        "h",
        Some("v"),
        &["webpubsub.joinLeaveGroup.allowed"],
        &[],
        HOUR,
    );
    let (mut other, _) = connect_pubsub(&limited, JSON).await;
    let r = request(
        &mut other,
        json!({"type":"subscribeGroupState","group":"room","ackId":1}),
    )
    .await;
    assert_eq!(r["error"]["name"], "Forbidden");
    let ok = request(
        &mut other,
        json!({"type":"subscribeGroupState","group":"allowed","ackId":2}),
    )
    .await;
    assert_eq!(ok["success"], true);
    // A reused ackId is a Duplicate, as for every acked request.
    let dup = request(
        &mut other,
        json!({"type":"subscribeGroupState","group":"allowed","ackId":2}),
    )
    .await;
    assert_eq!(dup["error"]["name"], "Duplicate");
    emu.shutdown().await;
}
