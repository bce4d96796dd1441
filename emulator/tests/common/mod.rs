//! Helpers for the emulator's integration tests: WebSocket clients with deadlines and a small
//! HTTP client for the REST and fault-injection APIs.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webpubsub_emulator::{Config, Emulator};

pub const DEADLINE: Duration = Duration::from_secs(5);
pub const RELIABLE: &str = "json.reliable.webpubsub.azure.v1";
pub const JSON: &str = "json.webpubsub.azure.v1";
pub const HOUR: Duration = Duration::from_secs(3600);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn emulator() -> Emulator {
    Emulator::start(Config::default())
        .await
        .expect("emulator starts")
}

/// Opens a WebSocket offering `protocols`; returns the stream and the echoed subprotocol.
pub async fn try_connect(
    url: &str,
    protocols: &[&str],
) -> Result<(Ws, Option<String>), tungstenite::Error> {
    let mut req = url.into_client_request()?;
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    let (ws, resp) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake within deadline")?;
    let p = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((ws, p))
}

pub async fn connect(url: &str, protocol: &str) -> Ws {
    try_connect(url, &[protocol]).await.expect("connects").0
}

/// Connects and reads the `connected` frame.
pub async fn connect_pubsub(url: &str, protocol: &str) -> (Ws, Value) {
    let mut ws = connect(url, protocol).await;
    let c = recv_json(&mut ws).await;
    assert_eq!(c["event"], "connected", "{c}");
    (ws, c)
}

/// Next data frame (text or binary), skipping control frames.
pub async fn recv(ws: &mut Ws) -> Message {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("frame within deadline")
}

pub async fn recv_json(ws: &mut Ws) -> Value {
    match recv(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("valid JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads frames until one satisfies `pred`; panics at the deadline.
pub async fn recv_until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = recv_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

pub async fn send_text(ws: &mut Ws, s: &str) {
    ws.send(Message::text(s.to_string())).await.expect("send");
}

/// Waits for the connection to end; returns the close code (1006 when no close frame came).
pub async fn expect_close(ws: &mut Ws) -> u16 {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => {
                    return f.map(|f| u16::from(f.code)).unwrap_or(1005);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return 1006,
            }
        }
    })
    .await
    .expect("close within deadline")
}

/// Like [`expect_close`] but also returns the data frames seen before the close.
pub async fn frames_until_close(ws: &mut Ws) -> (Vec<Value>, u16) {
    let mut seen = Vec::new();
    let code = tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)).unwrap_or(1005),
                Some(Ok(Message::Text(t))) => seen.push(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return 1006,
            }
        }
    })
    .await
    .expect("close within deadline");
    (seen, code)
}

pub async fn close_normal(ws: &mut Ws) {
    let _ = ws
        .close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
}

/// Sends `ping` and expects `pong` as the next frame: the connection is alive and served.
pub async fn ping_pong(ws: &mut Ws) {
    send(ws, json!({"type":"ping"})).await;
    assert_eq!(recv_json(ws).await, json!({"type":"pong"}));
}

pub async fn join(ws: &mut Ws, group: &str, ack_id: u64) -> Value {
    send(ws, json!({"type":"joinGroup","group":group,"ackId":ack_id})).await;
    recv_until(ws, |v| v["type"] == "ack" && v["ackId"] == ack_id).await
}

/// An HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends an HTTP request; `auth` adds a REST bearer token for the URL.
pub async fn http(
    emu: &Emulator,
    method: &str,
    path_and_query: &str,
    auth: bool,
    content_type: Option<&str>,
    body: &[u8],
) -> Resp {
    let url = format!("{}{}", emu.endpoint(), path_and_query);
    let mut req = hyper::Request::builder().method(method).uri(&url);
    if auth {
        req = req.header("authorization", format!("Bearer {}", emu.rest_token(&url)));
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(DEADLINE, client.request(req))
        .await
        .expect("response within deadline")
        .expect("HTTP request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// Raw HTTP/1.1 request over a TcpStream, for handshake checks; returns the status code.
pub async fn raw_status(emu: &Emulator, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", emu.port())).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Authenticated request without a body; returns the status code.
pub async fn call(emu: &Emulator, method: &str, path_and_query: &str) -> u16 {
    http(emu, method, path_and_query, true, None, b"")
        .await
        .status
}

/// Authenticated POST of `body` as `content_type`; returns the status code.
pub async fn post(emu: &Emulator, path_and_query: &str, content_type: &str, body: &[u8]) -> u16 {
    http(emu, "POST", path_and_query, true, Some(content_type), body)
        .await
        .status
}

/// The recovery URL for a connection, from its original URL and `connected` frame.
pub fn recovery_url(url: &str, connected: &Value) -> String {
    format!(
        "{url}&awps_connection_id={}&awps_reconnection_token={}",
        connected["connectionId"].as_str().unwrap(),
        connected["reconnectionToken"].as_str().unwrap()
    )
}

/// Asserts that a recovery attempt is upgraded and then closed with 1008.
pub async fn expect_recovery_refused(recovery_url: &str, protocol: &str) {
    let (mut ws, echoed) = try_connect(recovery_url, &[protocol]).await.expect("101");
    assert_eq!(echoed.as_deref(), Some(protocol));
    assert_eq!(expect_close(&mut ws).await, 1008, "recovery refused");
}

/// Polls `cond` until it holds; panics at the deadline.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A WebSocket client that writes frames byte by byte, for frames a well-behaved library
/// refuses to produce (unmasked, reserved opcodes, invalid UTF-8, lying lengths).
pub struct RawWs {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

/// A frame from the emulator, as [`RawWs`] reads it.
#[derive(Debug, PartialEq)]
pub enum RawFrame {
    Text(Value),
    Binary(Vec<u8>),
    /// Close frame with its code (1005 without one).
    Close(u16),
    /// The TCP connection ended without a close frame.
    Eof,
}

impl RawWs {
    /// Upgrades `url` (`ws://127.0.0.1:PORT/...`) offering `protocol`; panics unless 101.
    pub async fn connect(url: &str, protocol: &str) -> RawWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = url.strip_prefix("ws://").expect("ws:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let mut tcp = TcpStream::connect(authority).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    return i + 4;
                }
                let mut chunk = [0u8; 1024];
                let n = tcp.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed during the handshake");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("handshake within deadline");
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..end);
        RawWs { tcp, buf }
    }

    /// Writes one frame: `first` is the FIN/RSV/opcode byte; `len` overrides the announced
    /// payload length.
    pub async fn send_frame(&mut self, first: u8, payload: &[u8], masked: bool, len: Option<u64>) {
        use tokio::io::AsyncWriteExt;
        let len = len.unwrap_or(payload.len() as u64);
        let mask_bit = if masked { 0x80 } else { 0 };
        let mut out = vec![first];
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= u64::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        let key = [0x12, 0x34, 0x56, 0x78];
        if masked {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        self.tcp.write_all(&out).await.unwrap();
    }

    /// Next frame from the emulator (control frames other than close are skipped).
    pub async fn next(&mut self) -> RawFrame {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(f) = self.parse() {
                    return f;
                }
                use tokio::io::AsyncReadExt;
                let mut chunk = vec![0u8; 64 * 1024];
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return RawFrame::Eof,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("frame within deadline")
    }

    fn parse(&mut self) -> Option<RawFrame> {
        loop {
            let b = &self.buf;
            if b.len() < 2 {
                return None;
            }
            let (len, at) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
                126 | 127 => return None,
                n => (u64::from(n), 2),
            };
            let end = at + len as usize;
            if b.len() < end {
                return None;
            }
            let opcode = b[0] & 0x0f;
            let payload = b[at..end].to_vec();
            self.buf.drain(..end);
            return Some(match opcode {
                1 => RawFrame::Text(serde_json::from_slice(&payload).expect("JSON text frame")),
                2 => RawFrame::Binary(payload),
                8 if payload.len() >= 2 => {
                    RawFrame::Close(u16::from_be_bytes([payload[0], payload[1]]))
                }
                8 => RawFrame::Close(1005),
                _ => continue,
            });
        }
    }

    /// Text frames until the close; returns them and the close code (1006 without one).
    pub async fn frames_until_close(&mut self) -> (Vec<Value>, u16) {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                RawFrame::Text(v) => seen.push(v),
                RawFrame::Binary(_) => {}
                RawFrame::Close(code) => return (seen, code),
                RawFrame::Eof => return (seen, 1006),
            }
        }
    }
}
