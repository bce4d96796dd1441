//! One task per WebSocket: it drains the connection's outbound queue (batched writes) and
//! reads client frames, and decides on exit whether the session ends or stays recoverable.

use crate::dispatch::{on_message, Flow};
use crate::hub::Hub;
use crate::service::Service;
use crate::session::{Control, Outbound, Session};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Frames written per flush at most.
const WRITE_BATCH: usize = 256;
/// How long to wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Completes a refused recovery: close with `code` right after the upgrade.
pub async fn reject(mut ws: WebSocket, code: u16, reason: &str) {
    if send_close(&mut ws, code, reason).await.is_ok() {
        await_close(&mut ws).await;
    }
}

fn close_reason(reason: &str) -> Utf8Bytes {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(&reason[..end])
}

async fn send_close(ws: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    ws.send(Message::Close(Some(CloseFrame {
        code,
        reason: close_reason(reason),
    })))
    .await
}

/// Waits (bounded) for the peer's close frame so ours is not lost to a reset.
async fn await_close(ws: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(m)) = ws.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How a transport ended.
enum Exit {
    /// Dropped, cut, or closed in a way that leaves a reliable session recoverable.
    Gone,
    /// The client closed with this code.
    ClientClosed(u16),
    /// A protocol violation; the session is over.
    Violation(String),
}

pub async fn run(
    svc: Arc<Service>,
    hub: Arc<Hub>,
    s: Arc<Session>,
    mut ws: WebSocket,
    mut rx: UnboundedReceiver<Outbound>,
    generation: u64,
) {
    let exit = loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(first) = cmd else { break Exit::Gone };
                match write_batch(&mut ws, first, &mut rx).await {
                    Written::Ok => {}
                    Written::Closed => { await_close(&mut ws).await; break Exit::Gone }
                    Written::Cut | Written::Failed => break Exit::Gone,
                }
            }
            msg = ws.recv() => {
                let flow = match msg {
                    None | Some(Err(_)) => break Exit::Gone,
                    Some(Ok(m)) => on_message(&svc, &hub, &s, m).await,
                };
                match flow {
                    Flow::Continue => {}
                    Flow::ClientClosed(code) => break Exit::ClientClosed(code),
                    Flow::Close(code, reason) => {
                        // Flush what is queued (acks etc.) before the close frame.
                        while let Ok(o) = rx.try_recv() {
                            match o {
                                Outbound::Text(t) => { let _ = ws.feed(Message::Text(t)).await; }
                                Outbound::Binary(b) => { let _ = ws.feed(Message::Binary(b)).await; }
                                _ => break,
                            }
                        }
                        match s.control(Control::Disconnected(&reason)) {
                            Some(Outbound::Text(t)) => { let _ = ws.feed(Message::Text(t)).await; }
                            Some(Outbound::Binary(b)) => { let _ = ws.feed(Message::Binary(b)).await; }
                            _ => {}
                        }
                        if send_close(&mut ws, code, &reason).await.is_ok() {
                            await_close(&mut ws).await;
                        }
                        break Exit::Violation(reason);
                    }
                }
            }
        }
    };
    drop(ws);
    s.detach(generation);
    if s.is_ended() || s.is_attached() {
        return;
    }
    match exit {
        Exit::ClientClosed(1000) => hub.end_session(&s, "Client closed the connection.", None),
        Exit::Violation(reason) => hub.end_session(&s, &reason, None),
        Exit::Gone | Exit::ClientClosed(_) if s.is_reliable() => {
            log::info!("hub {}: connection {} dropped, recoverable", hub.name, s.id);
            let g = s.generation();
            let window = svc.recovery_window;
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                if !s.is_attached() && s.generation() == g {
                    hub.end_session(&s, "Recovery window elapsed.", None);
                }
            });
        }
        Exit::Gone | Exit::ClientClosed(_) => hub.end_session(&s, "Connection closed.", None),
    }
}

enum Written {
    Ok,
    Closed,
    Cut,
    Failed,
}

async fn write_batch(
    ws: &mut WebSocket,
    first: Outbound,
    rx: &mut UnboundedReceiver<Outbound>,
) -> Written {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(cmd) = next.take() {
        let r = match cmd {
            Outbound::Text(t) => ws.feed(Message::Text(t)).await,
            Outbound::Binary(b) => ws.feed(Message::Binary(b)).await,
            Outbound::Close(code, reason) => {
                let _ = ws.flush().await;
                return match send_close(ws, code, &reason).await {
                    Ok(()) => Written::Closed,
                    Err(_) => Written::Failed,
                };
            }
            Outbound::Cut => return Written::Cut,
        };
        if r.is_err() {
            return Written::Failed;
        }
        written += 1;
        if written < WRITE_BATCH {
            next = rx.try_recv().ok();
        }
    }
    match ws.flush().await {
        Ok(()) => Written::Ok,
        Err(_) => Written::Failed,
    }
}
