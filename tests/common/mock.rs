//! A scripted WebSocket "service" for failure cases the emulator does not produce: the test
//! decides every frame. Also raw TCP servers that misbehave during the handshake.
#![allow(dead_code, clippy::result_large_err)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::WAIT;

pub struct MockServer {
    pub url: String,
    conns: mpsc::UnboundedReceiver<MockConn>,
}

pub struct MockConn {
    pub ws: WebSocketStream<TcpStream>,
    /// Path and query of the upgrade request.
    pub target: String,
    /// The upgrade request's `User-Agent`, if any.
    pub user_agent: Option<String>,
}

impl MockServer {
    /// Accepts WebSocket upgrades on 127.0.0.1, echoing the first requested subprotocol.
    pub async fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut target = String::new();
                    let mut user_agent = None;
                    let cb = |req: &Request, mut resp: Response| {
                        target = req.uri().to_string();
                        user_agent = req
                            .headers()
                            .get("User-Agent")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        if let Some(p) = req.headers().get("Sec-WebSocket-Protocol") {
                            let first = p
                                .to_str()
                                .unwrap_or("")
                                .split(',')
                                .next()
                                .unwrap_or("")
                                .trim()
                                .to_string();
                            resp.headers_mut()
                                .insert("Sec-WebSocket-Protocol", first.parse().unwrap());
                        }
                        Ok(resp)
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await {
                        let _ = tx.send(MockConn {
                            ws,
                            target,
                            user_agent,
                        });
                    }
                });
            }
        });
        MockServer {
            url: format!("ws://127.0.0.1:{port}/client/hubs/hub1?access_token=secret"),
            conns,
        }
    }

    pub async fn accept(&mut self) -> MockConn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("a connection within the deadline")
            .expect("server running")
    }

    /// The next connection if one arrives within `d` (to check that none does).
    pub async fn accept_within(&mut self, d: Duration) -> Option<MockConn> {
        tokio::time::timeout(d, self.conns.recv())
            .await
            .ok()
            .flatten()
    }
}

impl MockConn {
    /// Whether the client asked to recover a connection (the recovery URL).
    pub fn is_recovery(&self) -> bool {
        self.target.contains("awps_connection_id=")
    }

    /// Answers the next `ackId` request with `ack` (success, or the named error); returns the
    /// request.
    pub async fn ack_next(&mut self, error: Option<&str>) -> serde_json::Value {
        let req = loop {
            let t = self.recv_text().await.expect("a request");
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v.get("ackId").is_some() {
                break v;
            }
        };
        let id = &req["ackId"];
        let frame = match error {
            None => format!(r#"{{"type":"ack","ackId":{id},"success":true}}"#),
            Some(name) => format!(
                r#"{{"type":"ack","ackId":{id},"success":false,"error":{{"name":"{name}","message":"by the test"}}}}"#
            ),
        };
        self.send(&frame).await;
        req
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn connected(&mut self, id: &str, token: Option<&str>) {
        let frame = match token {
            Some(t) => format!(
                r#"{{"type":"system","event":"connected","connectionId":"{id}","reconnectionToken":"{t}"}}"#
            ),
            None => format!(r#"{{"type":"system","event":"connected","connectionId":"{id}"}}"#),
        };
        self.send(&frame).await;
    }

    /// The next text frame from the client, or None when the client closed.
    pub async fn recv_text(&mut self) -> Option<String> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("frame within deadline")
            {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next text frame whose `type` is `ty`.
    pub async fn recv_type(&mut self, ty: &str) -> serde_json::Value {
        loop {
            let t = self
                .recv_text()
                .await
                .unwrap_or_else(|| panic!("closed while waiting for {ty}"));
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == ty {
                return v;
            }
        }
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            }))
            .await;
    }
}

/// A TCP server answering every request with `response` (raw HTTP), then closing.
pub async fn http_server(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    format!("ws://127.0.0.1:{port}/client/hubs/hub1?access_token=x")
}

/// A TCP server that accepts and immediately closes every connection.
pub async fn closing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    format!("ws://127.0.0.1:{port}/client/hubs/hub1?access_token=x")
}

/// A port nothing listens on.
pub async fn dead_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("ws://127.0.0.1:{port}/client/hubs/hub1?access_token=x")
}

/// A client started against `server`, which answered with `connected` (id `conn1`, the given
/// reconnection token); the `Connected` event is consumed.
pub async fn started_client(
    server: &mut MockServer,
    options: webpubsub_client::ClientOptions,
    token: Option<&str>,
) -> (webpubsub_client::Client, super::Events, MockConn) {
    let (c, mut ev) = super::client_with(server.url.clone(), options);
    let start = tokio::spawn({
        let c = c.clone();
        async move { c.start().await }
    });
    let mut conn = server.accept().await;
    conn.connected("conn1", token).await;
    start.await.unwrap().expect("start");
    match ev.next().await {
        webpubsub_client::Event::Connected { connection_id, .. } => {
            assert_eq!(connection_id, "conn1")
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    (c, ev, conn)
}
