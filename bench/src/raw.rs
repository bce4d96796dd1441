//! A bare tokio-tungstenite client writing pre-encoded frames: the transport ceiling. It
//! classifies inbound frames by substring, and on the reliable subprotocol recovers a dropped
//! connection at once with `awps_connection_id` + `awps_reconnection_token`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{BenchResult, Counter, WAIT};
use crate::conn::Conn;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;

const FLUSH_EVERY: usize = 64;

#[derive(Default)]
struct Shared {
    received: Counter,
    acks: Counter,
    /// (connectionId, reconnectionToken) from the `connected` system message.
    session: Mutex<(Option<String>, Option<String>)>,
    connected: Counter,
}

pub struct RawConn {
    sink: Arc<tokio::sync::Mutex<Sink>>,
    shared: Arc<Shared>,
    next_ack: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

async fn connect(url: &str, reliable: bool) -> BenchResult<Ws> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    let protocol = if reliable {
        "json.reliable.webpubsub.azure.v1"
    } else {
        "json.webpubsub.azure.v1"
    };
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    // Nagle off, as every client measured here does: with it, a frame written while an
    // earlier one is unacknowledged waits for the TCP ack, which through a latency proxy
    // costs the raw client a round trip per window.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .map_err(|e| format!("raw connect: {e}"))?;
    Ok(ws)
}

fn string_field(v: &serde_json::Value, name: &str) -> Option<String> {
    v.get(name).and_then(|s| s.as_str()).map(String::from)
}

fn classify(shared: &Shared, text: &str) {
    if text.contains(r#""type":"message""#) {
        shared.received.hit();
    } else if text.contains(r#""type":"ack""#) {
        shared.acks.hit();
    } else if text.contains(r#""event":"connected""#) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            *shared.session.lock().unwrap() = (
                string_field(&v, "connectionId"),
                string_field(&v, "reconnectionToken"),
            );
        }
        shared.connected.hit();
    }
}

fn recovery_url(url: &str, shared: &Shared) -> Option<String> {
    let (Some(id), Some(token)) = shared.session.lock().unwrap().clone() else {
        return None;
    };
    Some(format!(
        "{url}&awps_connection_id={id}&awps_reconnection_token={token}"
    ))
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    sink: Arc<tokio::sync::Mutex<Sink>>,
    shared: Arc<Shared>,
    url: String,
    reliable: bool,
) {
    loop {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(t) = frame {
                classify(&shared, t.as_str());
            }
        }
        // The connection ended: recover once on the reliable subprotocol.
        let Some(target) = reliable.then(|| recovery_url(&url, &shared)).flatten() else {
            return;
        };
        match connect(&target, true).await {
            Ok(ws) => {
                let (s, r) = ws.split();
                *sink.lock().await = s;
                stream = r;
            }
            Err(_) => return,
        }
    }
}

impl RawConn {
    async fn write(&self, frames: impl Iterator<Item = Message>) -> BenchResult<()> {
        let mut sink = self.sink.lock().await;
        for (i, frame) in frames.enumerate() {
            if (i + 1) % FLUSH_EVERY == 0 {
                sink.send(frame).await
            } else {
                sink.feed(frame).await
            }
            .map_err(|e| format!("raw send: {e}"))?;
        }
        sink.flush().await.map_err(|e| format!("raw flush: {e}"))
    }

    fn frame(&self, group: &str, data: &str, ack_id: Option<u64>) -> Message {
        let ack = ack_id
            .map(|a| format!(r#","ackId":{a}"#))
            .unwrap_or_default();
        Message::text(format!(
            r#"{{"type":"sendToGroup","group":"{group}","dataType":"text","data":"{data}"{ack}}}"#
        ))
    }

    fn ack_id(&self) -> u64 {
        self.next_ack.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Conn for RawConn {
    async fn open(url: &str, reliable: bool) -> BenchResult<Self> {
        let ws = connect(url, reliable).await?;
        let (sink, stream) = ws.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let shared = Arc::new(Shared::default());
        let reader = tokio::spawn(read_loop(
            stream,
            sink.clone(),
            shared.clone(),
            url.to_string(),
            reliable,
        ));
        shared
            .connected
            .wait_for(1, WAIT, "connected message")
            .await?;
        Ok(RawConn {
            sink,
            shared,
            next_ack: AtomicU64::new(0),
            reader,
        })
    }

    fn received(&self) -> &Counter {
        &self.shared.received
    }

    fn connection_id(&self) -> Option<String> {
        self.shared.session.lock().unwrap().0.clone()
    }

    async fn join(&self, group: &str) -> BenchResult<()> {
        let target = self.shared.acks.get() + 1;
        let frame = format!(
            r#"{{"type":"joinGroup","group":"{group}","ackId":{}}}"#,
            self.ack_id()
        );
        self.write(std::iter::once(Message::text(frame))).await?;
        self.shared.acks.wait_for(target, WAIT, "join ack").await
    }

    async fn send(&self, group: &str, data: &str, acked: bool) -> BenchResult<()> {
        if !acked {
            return self
                .write(std::iter::once(self.frame(group, data, None)))
                .await;
        }
        let target = self.shared.acks.get() + 1;
        let frame = self.frame(group, data, Some(self.ack_id()));
        self.write(std::iter::once(frame)).await?;
        self.shared.acks.wait_for(target, WAIT, "ack").await
    }

    async fn send_burst(&self, group: &str, data: &str, count: usize) -> BenchResult<()> {
        let frame = self.frame(group, data, None);
        self.write(std::iter::repeat(frame).take(count)).await
    }

    async fn send_window(
        &self,
        group: &str,
        data: &str,
        count: usize,
        window: usize,
    ) -> BenchResult<()> {
        let base = self.shared.acks.get();
        let mut sent = 0u64;
        while (sent as usize) < count {
            let acked = self.shared.acks.get() - base;
            let room = (window as u64)
                .saturating_sub(sent - acked)
                .min(count as u64 - sent);
            if room == 0 {
                self.shared
                    .acks
                    .wait_for(base + acked + 1, WAIT, "acks")
                    .await?;
                continue;
            }
            let frames: Vec<Message> = (0..room)
                .map(|_| self.frame(group, data, Some(self.ack_id())))
                .collect();
            self.write(frames.into_iter()).await?;
            sent += room;
        }
        self.shared
            .acks
            .wait_for(base + count as u64, WAIT, "acks")
            .await
    }

    async fn close(self) {
        let _ = self.sink.lock().await.close().await;
        self.reader.abort();
    }
}
