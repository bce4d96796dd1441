//! Client endpoint handshake: authentication, hub resolution, subprotocol echo, simple clients.

mod common;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

fn status_of(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_tokens_get_401_before_upgrade() {
    let emu = emulator().await;
    let base = format!("ws://127.0.0.1:{}/client/hubs/h", emu.port());
    let e = try_connect(&base, &[JSON]).await.unwrap_err();
    assert_eq!(status_of(e), 401, "missing token");
    let good = emu.client_access_url("h", None, &[], &[], HOUR);
    let e = try_connect(&format!("{good}x"), &[JSON]).await.unwrap_err();
    assert_eq!(status_of(e), 401, "bad signature");
    let other_hub = emu
        .client_access_url("other", None, &[], &[], HOUR)
        .replace("/hubs/other", "/hubs/h");
    let e = try_connect(&other_hub, &[JSON]).await.unwrap_err();
    assert_eq!(status_of(e), 401, "audience of another hub");
}

#[tokio::test]
async fn hub_in_query_bearer_header_and_lenient_audience() {
    let emu = emulator().await;
    let url = emu.client_access_url("Chat", Some("u"), &[], &[], HOUR);
    let token = url.split("access_token=").nth(1).unwrap().to_string();
    // /client/?hub= form with the same token.
    let q = format!(
        "ws://127.0.0.1:{}/client/?hub=Chat&access_token={token}",
        emu.port()
    );
    let (_ws, c) = connect_pubsub(&q, JSON).await;
    assert_eq!(c["userId"], "u");
    // Authorization header instead of the query parameter.
    let mut req = format!("ws://127.0.0.1:{}/client/hubs/Chat", emu.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", JSON.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(recv_json(&mut ws).await["event"], "connected");
    // A token minted for 127.0.0.1 works through "localhost" (path-only audience check).
    let via_localhost = format!(
        "ws://localhost:{}/client/hubs/Chat?access_token={}",
        emu.port(),
        token
    );
    assert!(try_connect(&via_localhost, &[RELIABLE]).await.is_ok());
    assert_eq!(emu.connections("chat").len(), 3);
}

#[tokio::test]
async fn non_websocket_or_missing_hub_is_400() {
    let emu = emulator().await;
    let s = raw_status(&emu, "GET /client/hubs/h HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(s, 400);
    let url = format!("ws://127.0.0.1:{}/client/", emu.port());
    assert_eq!(
        status_of(try_connect(&url, &[JSON]).await.unwrap_err()),
        400
    );
    let url = emu.client_access_url("h", None, &[], &["   "], HOUR);
    assert_eq!(
        status_of(try_connect(&url, &[JSON]).await.unwrap_err()),
        400,
        "invalid token group"
    );
    let r = http(
        &emu,
        "HEAD",
        "/api/health?api-version=2024-12-01",
        false,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn simple_clients_get_raw_frames() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &["g"], HOUR);
    let (mut simple, p) = try_connect(&url, &[]).await.unwrap();
    assert_eq!(p, None, "no subprotocol echoed");
    let (mut custom, p) = try_connect(&url, &["my.protocol"]).await.unwrap();
    assert_eq!(p.as_deref(), Some("my.protocol"));
    assert_eq!(
        post(
            &emu,
            "/api/hubs/h/groups/g/:send",
            "application/json",
            br#""quoted""#
        )
        .await,
        202
    );
    for ws in [&mut simple, &mut custom] {
        match recv(ws).await {
            Message::Text(t) => assert_eq!(t.as_str(), r#""quoted""#),
            other => panic!("{other:?}"),
        }
    }
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
    match recv(&mut simple).await {
        Message::Binary(b) => assert_eq!(&b[..], &[1, 2, 3]),
        other => panic!("{other:?}"),
    }

    // sendToGroup mode publishes every frame to the group.
    let roles = ["webpubsub.sendToGroup.g"];
    let publisher = emu.client_access_url("h", Some("p"), &roles, &[], HOUR)
        + "&webpubsub_mode=sendToGroup&group=g";
    let (mut publisher, _) = try_connect(&publisher, &[]).await.unwrap();
    let (mut member, _) = connect_pubsub(&url, JSON).await;
    publisher.send(Message::text("raw text")).await.unwrap();
    let m = recv_json(&mut member).await;
    assert_eq!(
        m,
        json!({"type":"message","from":"group","group":"g","fromUserId":"p","dataType":"text","data":"raw text"})
    );

    // sendEvent mode without an upstream handler: the connection is closed (1011).
    simple.send(Message::text("hello")).await.unwrap();
    assert_eq!(expect_close(&mut simple).await, 1011);
}

#[tokio::test]
async fn unknown_webpubsub_subprotocol_is_refused() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &[], HOUR);
    let e = try_connect(&url, &["json.webpubsub.azure.v9"])
        .await
        .unwrap_err();
    assert_eq!(status_of(e), 400);
}

#[tokio::test]
async fn simple_send_to_group_honours_no_echo_and_permissions() {
    let emu = emulator().await;
    let roles = ["webpubsub.sendToGroup"];
    let base = emu.client_access_url("h", None, &roles, &["g"], HOUR);
    let (mut echoing, _) = try_connect(&format!("{base}&webpubsub_mode=sendToGroup&group=g"), &[])
        .await
        .unwrap();
    let (mut quiet, _) = try_connect(
        &format!("{base}&webpubsub_mode=sendToGroup&group=g&noEcho=true"),
        &[],
    )
    .await
    .unwrap();
    let denied = emu.client_access_url("h", None, &[], &[], HOUR);
    let (mut denied, _) = try_connect(&format!("{denied}&webpubsub_mode=sendToGroup&group=g"), &[])
        .await
        .unwrap();
    let text = |m: Message| match m {
        Message::Text(t) => t.as_str().to_string(),
        other => panic!("{other:?}"),
    };
    denied.send(Message::text("not allowed")).await.unwrap();
    quiet.send(Message::text("from quiet")).await.unwrap();
    assert_eq!(text(recv(&mut echoing).await), "from quiet");
    echoing.send(Message::text("from echoing")).await.unwrap();
    assert_eq!(
        text(recv(&mut echoing).await),
        "from echoing",
        "echo by default"
    );
    assert_eq!(
        text(recv(&mut quiet).await),
        "from echoing",
        "noEcho skipped its own"
    );
    assert_eq!(
        post(&emu, "/api/hubs/h/groups/g/:send", "text/plain", b"marker").await,
        202
    );
    assert_eq!(
        text(recv(&mut quiet).await),
        "marker",
        "the denied frame was not published"
    );
    let missing = format!("{base}&webpubsub_mode=sendToGroup");
    assert_eq!(
        status_of(try_connect(&missing, &[]).await.unwrap_err()),
        400
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn refused_handshakes_and_rest_calls_leave_no_hub_behind() {
    let emu = emulator().await;
    let good = emu.client_access_url("h", None, &[], &[], HOUR);
    let token = good.split("access_token=").nth(1).unwrap();
    for i in 0..50 {
        let base = format!("ws://127.0.0.1:{}/client/hubs/random{i}", emu.port());
        // Bad token, token for another hub, no token.
        for url in [
            format!("{base}?access_token=x.y.z"),
            format!("{base}?access_token={token}"),
            base.clone(),
        ] {
            let e = try_connect(&url, &[JSON]).await.unwrap_err();
            assert_eq!(status_of(e), 401);
        }
        // A recovery attempt for a connection that does not exist: 101, then 1008.
        let recovery = format!("{base}?awps_connection_id=c{i}&awps_reconnection_token=t");
        expect_recovery_refused(&recovery, RELIABLE).await;
        // Authenticated REST calls on an unknown hub do not create it either.
        let send = format!("/api/hubs/rest{i}/:send?api-version=1");
        assert_eq!(post(&emu, &send, "text/plain", b"x").await, 202);
        let head = format!("/api/hubs/rest{i}/groups/g?api-version=1");
        assert_eq!(call(&emu, "HEAD", &head).await, 404);
    }
    assert_eq!(emu.hubs(), Vec::<String>::new());
    emu.shutdown().await;
}

#[tokio::test]
async fn a_hub_is_freed_with_its_last_connection() {
    let emu = emulator().await;
    let url = emu.client_access_url("Room", None, &[], &[], HOUR);
    let (mut a, _) = connect_pubsub(&url, JSON).await;
    let (mut b, c) = connect_pubsub(&url, RELIABLE).await;
    assert_eq!(emu.hubs(), vec!["Room".to_string()]);
    close_normal(&mut a).await;
    let _ = expect_close(&mut a).await;
    // A dropped reliable session keeps the hub while it is recoverable.
    let id = c["connectionId"].as_str().unwrap();
    assert!(emu.drop_connection("room", id));
    assert_eq!(expect_close(&mut b).await, 1006);
    eventually("one connection left", || emu.connections("Room").len() == 1).await;
    assert_eq!(emu.hubs(), vec!["Room".to_string()]);
    assert!(emu.expire_connection("room", id));
    eventually("hub freed", || emu.hubs().is_empty()).await;
    // The next connection creates the hub again, under the spelling it uses.
    let url = emu.client_access_url("ROOM", None, &[], &[], HOUR);
    let (_c, _) = connect_pubsub(&url, JSON).await;
    assert_eq!(emu.hubs(), vec!["ROOM".to_string()]);
    emu.shutdown().await;
}
