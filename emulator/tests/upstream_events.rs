//! Upstream CloudEvents: connect (blocking, may override identity), user events and invoke,
//! connected/disconnected notifications, headers and signature.

mod common;
use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use webpubsub_emulator::{Config, Emulator};

struct Seen {
    event: String,
    path: String,
    headers: HeaderMap,
    body: bytes::Bytes,
}

async fn handler(tx: mpsc::UnboundedSender<Seen>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    let req_is_options = req.method() == axum::http::Method::OPTIONS;
    let headers = req.headers().clone();
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
    let event = if req_is_options {
        "OPTIONS".to_string()
    } else {
        headers["ce-eventname"].to_str().unwrap().to_string()
    };
    let user = headers
        .get("ce-userid")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let _ = tx.send(Seen {
        event: event.clone(),
        path,
        headers,
        body: body.clone(),
    });
    match event.as_str() {
        "OPTIONS" => (StatusCode::OK, [("webhook-allowed-origin", "*")]).into_response(),
        "connect" if user.as_deref() == Some("blocked") => {
            (StatusCode::FORBIDDEN, "not you").into_response()
        }
        "connect" if user.as_deref() == Some("simple") => StatusCode::NO_CONTENT.into_response(),
        "message" => {
            let mut reply = b"got:".to_vec();
            reply.extend_from_slice(&body);
            (StatusCode::OK, [("content-type", "text/plain")], reply).into_response()
        }
        "connect" => (
            StatusCode::OK,
            [("content-type", "application/json")],
            json!({"userId":"fromUpstream","groups":["ug"],"roles":["webpubsub.joinLeaveGroup"]})
                .to_string(),
        )
            .into_response(),
        "echo" => {
            let mut reply = b"pong:".to_vec();
            reply.extend_from_slice(&body);
            (StatusCode::OK, [("content-type", "text/plain")], reply).into_response()
        }
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>, event: &str) -> Seen {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let s = rx.recv().await.expect("handler alive");
            if s.event == event {
                return s;
            }
        }
    })
    .await
    .expect("upstream event within deadline")
}

const KEY: &str = "upstream-test-key-0123456789abcdefghijkl";

/// Starts the recording handler and an emulator that forwards to it.
async fn setup() -> (Emulator, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move |req: Request<Body>| handler(tx.clone(), req));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let emu = Emulator::start(Config {
        access_key: KEY.into(),
        upstream: Some(format!("http://127.0.0.1:{port}/up/{{hub}}/{{event}}")),
        ..Config::default()
    })
    .await
    .unwrap();
    (emu, rx)
}

#[tokio::test]
async fn connect_rejection_and_simple_client_message_events() {
    let (emu, mut rx) = setup().await;
    // A non-ASCII user id travels as UTF-8 bytes in ce-userId.
    let jose = emu.client_access_url("h", Some("José"), &[], &[], HOUR);
    let (_ws, c) = connect_pubsub(&jose, JSON).await;
    assert_eq!(
        c["userId"], "fromUpstream",
        "accepted; the handler set its own user id"
    );
    let ev = next(&mut rx, "connect").await;
    assert_eq!(ev.headers["ce-userid"].as_bytes(), "José".as_bytes());

    let blocked = emu.client_access_url("h", Some("blocked"), &[], &[], HOUR);
    match try_connect(&blocked, &[JSON]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        emu.connections("h").len(),
        1,
        "only the accepted connection"
    );

    let url = emu.client_access_url("h", Some("simple"), &[], &[], HOUR);
    let (mut ws, p) = try_connect(&url, &[]).await.unwrap();
    assert_eq!(p, None);
    send_text(&mut ws, "hello").await;
    match recv(&mut ws).await {
        tokio_tungstenite::tungstenite::Message::Text(t) => assert_eq!(t.as_str(), "got:hello"),
        other => panic!("{other:?}"),
    }
    let ev = next(&mut rx, "message").await;
    assert_eq!(ev.headers["ce-type"], "azure.webpubsub.user.message");
    assert_eq!(&ev.body[..], b"hello");
    emu.shutdown().await;
}

#[tokio::test]
async fn cloud_events_reach_the_handler_and_answers_reach_the_client() {
    let (emu, mut rx) = setup().await;
    let key = KEY;
    let url = emu.client_access_url("Hub1", Some("tokenUser"), &[], &[], HOUR);
    let (mut ws, connected) = connect_pubsub(&format!("{url}&custom=1"), RELIABLE).await;
    assert_eq!(
        connected["userId"], "fromUpstream",
        "connect handler overrides userId"
    );
    let id = connected["connectionId"].as_str().unwrap().to_string();

    let validation = next(&mut rx, "OPTIONS").await;
    assert_eq!(validation.path, "/up/Hub1/validate");
    assert_eq!(validation.headers["ce-awpsversion"], "1.0");
    assert!(validation.headers.contains_key("webhook-request-origin"));
    let connect = next(&mut rx, "connect").await;
    assert_eq!(connect.path, "/up/Hub1/connect");
    let h = &connect.headers;
    assert_eq!(h["ce-type"], "azure.webpubsub.sys.connect");
    assert_eq!(h["ce-specversion"], "1.0");
    assert_eq!(h["ce-awpsversion"], "1.0");
    assert_eq!(h["ce-hub"], "Hub1");
    assert_eq!(h["ce-connectionid"], id.as_str());
    assert_eq!(h["ce-userid"], "tokenUser");
    assert!(h.contains_key("webhook-request-origin"));
    assert!(h.contains_key("ce-time") && h.contains_key("ce-id") && h.contains_key("ce-source"));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(id.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        h["ce-signature"].to_str().unwrap(),
        format!("sha256={expected}")
    );
    let body: serde_json::Value = serde_json::from_slice(&connect.body).unwrap();
    assert_eq!(body["claims"]["sub"], json!(["tokenUser"]));
    assert_eq!(body["query"]["custom"], json!(["1"]));
    assert!(body["query"].get("access_token").is_none());
    assert_eq!(body["subprotocols"], json!([RELIABLE]));

    let connected_ev = next(&mut rx, "connected").await;
    assert_eq!(connected_ev.headers["ce-userid"], "fromUpstream");
    let info = emu.connections("Hub1");
    assert_eq!(info[0].groups, vec!["ug"], "connect handler groups joined");

    // A user event whose handler answers: server message first, then the ack.
    send(
        &mut ws,
        json!({"type":"event","event":"echo","ackId":1,"dataType":"text","data":"hi"}),
    )
    .await;
    let m = recv_json(&mut ws).await;
    assert_eq!(m["from"], "server");
    assert_eq!(m["dataType"], "text");
    assert_eq!(m["data"], "pong:hi");
    assert_eq!(m["sequenceId"], 1);
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"type":"ack","ackId":1,"success":true})
    );
    let ev = next(&mut rx, "echo").await;
    assert_eq!(ev.headers["ce-type"], "azure.webpubsub.user.echo");
    assert!(ev.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(&ev.body[..], b"hi");

    // JSON data is posted as application/json.
    send(
        &mut ws,
        json!({"type":"event","event":"plain","data":{"k":[1]}}),
    )
    .await;
    let ev = next(&mut rx, "plain").await;
    assert!(ev.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&ev.body).unwrap(),
        json!({"k":[1]})
    );

    // A failing handler: InternalServerError ack with a message; the retry re-invokes it.
    for _ in 0..2 {
        send(
            &mut ws,
            json!({"type":"event","event":"fail","ackId":2,"dataType":"text","data":"x"}),
        )
        .await;
        let ack = recv_json(&mut ws).await;
        assert_eq!(ack["error"]["name"], "InternalServerError");
        assert!(ack["error"]["message"].is_string());
    }

    // invoke maps the handler response into invokeResponse.
    send(&mut ws, json!({"type":"invoke","invocationId":"7","target":"event","event":"echo","dataType":"text","data":"q"})).await;
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"type":"invokeResponse","invocationId":"7","success":true,"dataType":"text","data":"pong:q"})
    );

    close_normal(&mut ws).await;
    let ev = next(&mut rx, "disconnected").await;
    assert_eq!(ev.headers["ce-connectionid"], id.as_str());
    let body: serde_json::Value = serde_json::from_slice(&ev.body).unwrap();
    assert!(body["reason"].is_string());
    emu.shutdown().await;
}
