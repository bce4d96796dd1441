//! `invoke` / `invokeResponse` and `cancelInvocation` on timeout.

mod common;

use std::time::Duration;

use common::mock::{started_client, MockServer};
use common::*;
use webpubsub_client::{Error, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_returns_the_response_payload() {
    let mut server = MockServer::start().await;
    let (c, _ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.invoke_event("echo", Payload::text("ping"), None).await }
    });
    let req = conn.recv_type("invoke").await;
    assert_eq!(req["target"], "event");
    assert_eq!(req["event"], "echo");
    assert_eq!(req["dataType"], "text");
    assert_eq!(req["data"], "ping");
    let id = req["invocationId"].as_str().unwrap().to_string();
    conn.send(&format!(
        r#"{{"type":"invokeResponse","invocationId":"{id}","success":true,"dataType":"json","data":{{"pong":1}}}}"#
    ))
    .await;
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply, Payload::json(r#"{"pong":1}"#));

    let call = tokio::spawn({
        let c = c.clone();
        async move { c.invoke_event("echo", Payload::text("x"), None).await }
    });
    let req = conn.recv_type("invoke").await;
    let id = req["invocationId"].as_str().unwrap().to_string();
    conn.send(&format!(
        r#"{{"type":"invokeResponse","invocationId":"{id}","success":false,"error":{{"name":"BadRequest","message":"oops"}}}}"#
    ))
    .await;
    let e = call.await.unwrap().unwrap_err();
    assert!(
        matches!(e, Error::Ack { ref name, ref message, .. } if name == "BadRequest" && message == "oops")
    );
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_timeout_sends_cancel_invocation() {
    let mut server = MockServer::start().await;
    let (c, _ev, mut conn) = started_client(&mut server, fast_options(), Some("tok")).await;
    let call = tokio::spawn({
        let c = c.clone();
        async move {
            c.invoke_event("slow", Payload::text("x"), Some(Duration::from_millis(200)))
                .await
        }
    });
    let req = conn.recv_type("invoke").await;
    let cancel = conn.recv_type("cancelInvocation").await;
    assert_eq!(cancel["invocationId"], req["invocationId"]);
    assert_eq!(call.await.unwrap(), Err(Error::Timeout { ack_id: None }));
    c.stop().await.unwrap();
}
