//! Network faults from the fault-injection API: `:stall` (silence without a close), `:delay`
//! (every frame late, order and rate kept) and `:restart` (every connection and session lost,
//! optionally with downtime), over HTTP and in process.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use webpubsub_emulator::Emulator;

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

/// Connects to hub `h` in group `g`; returns the socket and the `connected` frame.
async fn member(emu: &Emulator, protocol: &str) -> (Ws, Value) {
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    connect_pubsub(&url, protocol).await
}

fn id(connected: &Value) -> String {
    connected["connectionId"].as_str().unwrap().to_string()
}

/// Asserts that no frame of any kind (pongs included) arrives before `until`.
async fn silent_until(ws: &mut Ws, until: Instant, what: &str) {
    if let Ok(m) = tokio::time::timeout_at(until, ws.next()).await {
        panic!("{what}: got {m:?} during the fault");
    }
}

/// Publishes `text` to group `g` without an ack.
async fn publish(ws: &mut Ws, text: &str) {
    send(
        ws,
        json!({"type":"sendToGroup","group":"g","dataType":"text","data":text,"noEcho":true}),
    )
    .await;
}

async fn server_send(emu: &Emulator, id: &str, text: &str) {
    let path = format!("/api/hubs/h/connections/{id}/:send?api-version=2024-12-01");
    assert_eq!(post(emu, &path, "text/plain", text.as_bytes()).await, 202);
}

fn fault(id: &str, op: &str) -> String {
    format!("/_emulator/hubs/h/connections/{id}/:{op}")
}

#[tokio::test]
async fn stall_holds_both_directions_then_delivers_everything_in_order() {
    const STALL: Duration = Duration::from_millis(700);
    let emu = emulator().await;
    let (mut sub, connected) = member(&emu, RELIABLE).await;
    let sub_id = id(&connected);
    let (mut observer, _) = member(&emu, JSON).await;
    // Both idle: nothing is in flight when the stall starts.
    ping_pong(&mut sub).await;

    let start = Instant::now();
    let path = format!("{}?ms={}", fault(&sub_id, "stall"), STALL.as_millis());
    assert_eq!(call(&emu, "POST", &path).await, 204);
    let stall_end = start + STALL;
    for i in 1..=3 {
        server_send(&emu, &sub_id, &format!("m{i}")).await;
    }
    // The client's frames wait in the socket: its publish does not reach the observer, and
    // its keep-alive ping is not answered.
    publish(&mut sub, "from the stalled client").await;
    sub.send(Message::Ping(b"keep-alive".to_vec().into()))
        .await
        .unwrap();
    send(&mut sub, json!({"type":"ping"})).await;
    silent_until(&mut observer, stall_end, "observer").await;
    silent_until(&mut sub, stall_end, "stalled client").await;

    // Afterwards everything arrives, in order, and the connection was never closed. (The
    // WebSocket pong is written by the reader, so it may come before the held frames.)
    let (mut texts, mut pongs) = (Vec::new(), Vec::new());
    tokio::time::timeout(DEADLINE, async {
        while texts.len() < 4 || pongs.is_empty() {
            match sub.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let data = v["data"].as_str().or(v["type"].as_str()).unwrap();
                    texts.push(data.to_string());
                }
                Some(Ok(Message::Pong(p))) => pongs.push(p.to_vec()),
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("held frames after the stall");
    assert_eq!(texts, ["m1", "m2", "m3", "pong"]);
    assert_eq!(pongs, [b"keep-alive".to_vec()]);
    let seen = recv_json(&mut observer).await;
    assert_eq!(seen["data"], "from the stalled client");
    // The reliable sequence went on as if nothing happened.
    server_send(&emu, &sub_id, "m4").await;
    assert_eq!(recv_json(&mut sub).await["sequenceId"], 4);
    assert_eq!(emu.connections("h").len(), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn stall_in_process_and_a_close_waits_for_its_end() {
    // Longer than the 2 s a queued close frame gets before the connection is cut: the close
    // still arrives, after the stall.
    const STALL: Duration = Duration::from_millis(2300);
    let emu = emulator().await;
    let (mut ws, connected) = member(&emu, JSON).await;
    let cid = id(&connected);
    assert!(!emu.stall_connection("h", "nope", STALL));
    assert!(!emu.stall_connection("h", &cid, Duration::ZERO));
    assert!(!emu.stall_connection("h", &cid, Duration::from_secs(601)));
    ping_pong(&mut ws).await;

    let start = Instant::now();
    assert!(emu.stall_connection("h", &cid, STALL));
    // A shorter stall does not end the longer one.
    assert!(emu.stall_connection("h", &cid, Duration::from_millis(1)));
    assert!(emu.close_connection("h", &cid, 4000, "bye"));
    silent_until(&mut ws, start + STALL, "stalled client").await;
    let (frames, code) = frames_until_close(&mut ws).await;
    assert_eq!(
        frames,
        vec![json!({"type":"system","event":"disconnected","message":"bye"})]
    );
    assert_eq!(code, 4000);
    emu.shutdown().await;
}

#[tokio::test]
async fn stall_and_delay_refuse_bad_durations() {
    let emu = emulator().await;
    let (mut ws, connected) = member(&emu, JSON).await;
    let cid = id(&connected);
    for op in ["stall", "delay"] {
        for q in ["", "?ms=", "?ms=abc", "?ms=-1", "?ms=600001", "?ms=1.5"] {
            let path = format!("{}{q}", fault(&cid, op));
            assert_eq!(call(&emu, "POST", &path).await, 400, "{op}{q}");
        }
        // Valid durations reach the lookup: 404 for an unknown connection.
        for ms in [1, 600_000] {
            let path = format!("{}?ms={ms}", fault("nope", op));
            assert_eq!(call(&emu, "POST", &path).await, 404, "{op} {ms}");
        }
        let path = format!("{}?ms=5", fault(&cid, op));
        let r = http(&emu, "POST", &path, false, None, b"").await;
        assert_eq!(r.status, 401, "{op}");
    }
    assert_eq!(
        call(&emu, "POST", &format!("{}?ms=0", fault(&cid, "stall"))).await,
        400
    );
    assert_eq!(
        call(&emu, "POST", &format!("{}?ms=0", fault("nope", "delay"))).await,
        404
    );
    // Nothing was applied.
    ping_pong(&mut ws).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn delay_shifts_every_frame_without_limiting_the_rate() {
    const DELAY: Duration = Duration::from_millis(300);
    // Sent one per delay, these would take 24 s: far beyond the deadline.
    const COUNT: usize = 80;
    let emu = emulator().await;
    let (mut sub, connected) = member(&emu, RELIABLE).await;
    let sub_id = id(&connected);
    let (mut publisher, _) = member(&emu, JSON).await;
    let path = format!("{}?ms={}", fault(&sub_id, "delay"), DELAY.as_millis());
    assert_eq!(call(&emu, "POST", &path).await, 204);

    let mut sent_at = Vec::new();
    for i in 0..COUNT {
        sent_at.push(Instant::now());
        publish(&mut publisher, &format!("m{i}")).await;
    }
    tokio::time::timeout(DEADLINE, async {
        for (i, at) in sent_at.iter().enumerate() {
            let m = recv_json(&mut sub).await;
            assert_eq!(m["data"], format!("m{i}"), "order kept");
            assert_eq!(m["sequenceId"], i + 1);
            assert!(at.elapsed() >= DELAY, "m{i} came early");
        }
    })
    .await
    .expect("the rate is not limited");
    // Replies are delayed too.
    let ping = Instant::now();
    ping_pong(&mut sub).await;
    assert!(ping.elapsed() >= DELAY);

    // Back to no delay.
    let path = format!("{}?ms=0", fault(&sub_id, "delay"));
    assert_eq!(call(&emu, "POST", &path).await, 204);
    ping_pong(&mut sub).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn delay_in_process_belongs_to_the_transport() {
    // Long enough that a pong within it shows the delay is gone.
    const DELAY: Duration = Duration::from_secs(4);
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, ROLES, &["g"], HOUR);
    let (mut ws, connected) = connect_pubsub(&url, RELIABLE).await;
    let cid = id(&connected);
    assert!(!emu.delay_connection("h", "nope", DELAY));
    assert!(!emu.delay_connection("h", &cid, Duration::from_secs(601)));

    // Set and cleared before anything was sent: nothing is late.
    assert!(emu.delay_connection("h", &cid, DELAY));
    assert!(emu.delay_connection("h", &cid, Duration::ZERO));
    let ping = Instant::now();
    ping_pong(&mut ws).await;
    assert!(ping.elapsed() < DELAY);

    // A recovered connection gets a new socket, without the delay; what was held for the old
    // one is replayed.
    assert!(emu.delay_connection("h", &cid, DELAY));
    server_send(&emu, &cid, "held").await;
    assert!(emu.drop_connection("h", &cid));
    assert_eq!(expect_close(&mut ws).await, 1006);
    // Between two sockets there is nothing to stall or delay: accepted, no effect.
    assert!(emu.stall_connection("h", &cid, DELAY));
    assert!(emu.delay_connection("h", &cid, DELAY));
    let recovered = Instant::now();
    let (mut ws, again) = connect_pubsub(&recovery_url(&url, &connected), RELIABLE).await;
    assert_eq!(again["connectionId"], cid.as_str());
    let m = recv_json(&mut ws).await;
    assert_eq!(
        (m["sequenceId"].as_u64(), m["data"].as_str()),
        (Some(1), Some("held"))
    );
    ping_pong(&mut ws).await;
    assert!(recovered.elapsed() < DELAY);
    emu.shutdown().await;
}

/// Status of a WebSocket handshake that is refused before the upgrade.
async fn refused_status(url: &str) -> u16 {
    match try_connect(url, &[JSON]).await {
        Err(tungstenite::Error::Http(r)) => r.status().as_u16(),
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn restart_loses_every_connection_and_session() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("u"), ROLES, &[], HOUR);
    let (mut a, connected) = connect_pubsub(&url, RELIABLE).await;
    assert_eq!(join(&mut a, "joined", 1).await["success"], true);
    let other_url = emu.client_access_url("other", None, &[], &[], HOUR);
    let (mut b, _) = connect_pubsub(&other_url, JSON).await;
    let (mut simple, _) = try_connect(&other_url, &[]).await.unwrap();
    assert_eq!(emu.hubs(), ["h", "other"]);

    let r = http(&emu, "POST", "/_emulator/:restart", false, None, b"").await;
    assert_eq!(r.status, 401);
    // A token for another fault path does not authorize a restart.
    let other = format!("{}/_emulator/hubs/h/connections", emu.endpoint());
    let token = emu.rest_token(&other);
    let status = http_with_token(&emu, "/_emulator/:restart", &token).await;
    assert_eq!(status, 401);
    ping_pong(&mut a).await;

    assert_eq!(call(&emu, "POST", "/_emulator/:restart").await, 204);
    // Cut like a crash: no close frame.
    assert_eq!(expect_close(&mut a).await, 1006);
    assert_eq!(expect_close(&mut b).await, 1006);
    assert_eq!(expect_close(&mut simple).await, 1006);
    assert!(emu.hubs().is_empty());
    assert!(emu.connections("h").is_empty());
    expect_recovery_refused(&recovery_url(&url, &connected), RELIABLE).await;

    // The listener stayed: a new connection at once, with a new id, no groups, no ack ids.
    let (mut a, again) = connect_pubsub(&url, RELIABLE).await;
    assert_ne!(again["connectionId"], connected["connectionId"]);
    assert_eq!(emu.connections("h")[0].groups, Vec::<String>::new());
    assert_eq!(
        join(&mut a, "joined", 1).await["success"],
        true,
        "not Duplicate"
    );
    assert_eq!(call(&emu, "HEAD", "/api/health").await, 200);

    // In process, the same.
    emu.restart();
    assert_eq!(expect_close(&mut a).await, 1006);
    assert!(emu.connections("h").is_empty());
    emu.shutdown().await;
}

/// POST `path_and_query` with a given bearer token; returns the status.
async fn http_with_token(emu: &Emulator, path_and_query: &str, token: &str) -> u16 {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    let url = format!("{}{path_and_query}", emu.endpoint());
    let req = hyper::Request::post(&url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    tokio::time::timeout(DEADLINE, client.request(req))
        .await
        .expect("response within deadline")
        .expect("HTTP request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn restart_with_downtime_answers_503_until_it_is_over() {
    // Long enough for the checks made while the service is down.
    const DOWN: Duration = Duration::from_secs(2);
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    for q in ["?downMs=", "?downMs=abc", "?downMs=-1", "?downMs=600001"] {
        let path = format!("/_emulator/:restart{q}");
        assert_eq!(call(&emu, "POST", &path).await, 400, "{q}");
    }
    assert!(!emu.restart_with_downtime(Duration::from_secs(601)));
    // Nothing was restarted.
    ping_pong(&mut ws).await;

    let start = Instant::now();
    let path = format!("/_emulator/:restart?downMs={}", DOWN.as_millis());
    assert_eq!(call(&emu, "POST", &path).await, 204);
    assert_eq!(expect_close(&mut ws).await, 1006);
    assert_eq!(refused_status(&url).await, 503);
    let r = http(&emu, "HEAD", "/api/health", false, None, b"").await;
    assert_eq!(r.status, 503);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let send = "/api/hubs/h/:send?api-version=2024-12-01";
    assert_eq!(post(&emu, send, "text/plain", b"x").await, 503);
    // The fault API keeps working while the service is down.
    let list = "/_emulator/hubs/h/connections";
    let r = http(&emu, "GET", list, true, None, b"").await;
    assert_eq!((r.status, r.json()), (200, json!([])));

    // A client retrying gets in once the downtime is over, not before.
    let deadline = start + DEADLINE;
    let mut ws = loop {
        match try_connect(&url, &[JSON]).await {
            Ok((ws, _)) => break ws,
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "still down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(start.elapsed() >= DOWN);
    assert_eq!(recv_json(&mut ws).await["event"], "connected");

    // In process; a restart without downtime ends an earlier one.
    assert!(emu.restart_with_downtime(Duration::from_secs(600)));
    assert_eq!(expect_close(&mut ws).await, 1006);
    assert_eq!(refused_status(&url).await, 503);
    emu.restart();
    let (mut ws, _) = connect_pubsub(&url, JSON).await;
    ping_pong(&mut ws).await;
    emu.shutdown().await;
}
