//! One WebSocket: a writer task drains the connection's outbound queue in batches while the
//! reader keeps reading client frames (so a client that is slow to read never stops us from
//! reading it); on exit the reader decides whether the session ends or stays recoverable.

use crate::dispatch::{on_message, on_read_error, Flow};
use crate::hub::Hub;
use crate::service::Service;
use crate::session::{Control, Half, Link, Outbound, Session, WINDOW_GRACE};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

/// Frames written per flush at most.
const WRITE_BATCH: usize = 256;
/// How long to wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Completes a refused recovery: close with `code` right after the upgrade.
pub async fn reject(mut ws: WebSocket, code: u16, reason: &str) {
    let frame = close_frame(code, reason);
    if ws.send(frame).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }))
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

/// How the writer ended.
enum WriterEnd {
    /// It sent a close frame.
    Closed,
    /// Cut, failed, or its queue was closed.
    Stopped,
}

/// Serves one upgraded WebSocket of session `s` until it ends.
pub async fn run(
    svc: Arc<Service>,
    hub: Arc<Hub>,
    s: Arc<Session>,
    ws: WebSocket,
    rx: UnboundedReceiver<Outbound>,
    link: Arc<Link>,
    generation: u64,
) {
    let (sink, mut stream) = ws.split();
    let (done_tx, mut done_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, rx, link.clone(), done_tx));
    let mut violation: Option<String> = None;
    let fired = link.fired(Half::Reader);
    tokio::pin!(fired);
    let exit = loop {
        let backlogged = link.is_backlogged();
        let stalled = link.stall_end();
        tokio::select! {
            biased;
            _ = &mut fired => break Exit::Gone,
            end = &mut done_rx => {
                if let Ok(WriterEnd::Closed) = end {
                    // Read (bounded) until the client answers our close frame.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(m)) = stream.next().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
                break match violation.take() {
                    Some(reason) => Exit::Violation(reason),
                    None => Exit::Gone,
                };
            }
            _ = link.drained(), if backlogged => {}
            // More than the reliable window was written and not acknowledged.
            _ = link.window_overflowed(), if violation.is_none() => {
                let reason = "Reliable message buffer overflowed";
                s.send(Control::Disconnected(reason));
                hub.end_session(&s, reason, Some(Outbound::Close(1008, "buffer overflow".into())));
                violation = Some(reason.to_string());
            }
            // `:stall`: the client's frames wait in the socket until the stall ends.
            _ = async {
                match stalled {
                    Some(end) => tokio::time::sleep_until(end.into()).await,
                    None => link.stall_requested().await,
                }
            } => {}
            msg = stream.next(), if violation.is_none() && !backlogged && stalled.is_none() => {
                let flow = match msg {
                    None => break Exit::Gone,
                    Some(Err(e)) => match on_read_error(&e) {
                        Some(flow) => flow,
                        None => break Exit::Gone,
                    },
                    Some(Ok(m)) => on_message(&svc, &hub, &s, m).await,
                };
                match flow {
                    Flow::Continue => {}
                    Flow::ClientClosed(code) => break Exit::ClientClosed(code),
                    Flow::Close(code, reason) => {
                        // Queued frames (acks etc.) go first, then `disconnected`, then close.
                        s.send(Control::Disconnected(&reason));
                        if !s.close_transport(code, &reason) {
                            break Exit::Violation(reason);
                        }
                        violation = Some(reason);
                    }
                }
            }
        }
    };
    drop(stream);
    // Dropping the transport closes the writer's queue; it finishes and drops its half.
    s.detach(generation);
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
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

type Sink = SplitSink<WebSocket, Message>;

async fn write_loop(
    mut sink: Sink,
    mut rx: UnboundedReceiver<Outbound>,
    link: Arc<Link>,
    done: oneshot::Sender<WriterEnd>,
) {
    let end = tokio::select! {
        biased;
        _ = link.fired(Half::Writer) => WriterEnd::Stopped,
        // A client that does not read would keep a queued close frame (and everything before
        // it) waiting forever.
        _ = async {
            link.close_requested().await;
            // The close frame waits behind `:delay` and `:stall` like any frame: the grace
            // starts once it may go out.
            tokio::time::sleep(link.delay()).await;
            while let Some(end) = link.stall_end() {
                tokio::time::sleep_until(end.into()).await;
            }
            tokio::time::sleep(CLOSE_GRACE).await;
        } => WriterEnd::Stopped,
        end = drain(&mut sink, &mut rx, &link) => end,
    };
    let _ = done.send(end);
}

async fn drain(sink: &mut Sink, rx: &mut UnboundedReceiver<Outbound>, link: &Link) -> WriterEnd {
    let mut held = Held::default();
    loop {
        let Some(first) = held.next(rx, link).await else {
            if link.is_fired() {
                return WriterEnd::Stopped;
            }
            // The session let go of this transport: complete a client-initiated close
            // handshake if there is one (or say goodbye), then stop.
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
            return WriterEnd::Stopped;
        };
        let mut next = Some(first);
        let (mut written, mut bytes) = (0, 0);
        while let Some(cmd) = next.take() {
            bytes += cmd.cost();
            let r = match cmd {
                Outbound::Text(t) => sink.feed(Message::Text(t)).await,
                Outbound::Binary(b) => sink.feed(Message::Binary(b)).await,
                Outbound::Sequenced(seq, body) => {
                    if !link.window_open(seq) && !link.is_overflowed() {
                        // The window is full: what was written must reach the client before
                        // it can acknowledge anything.
                        if sink.flush().await.is_err() {
                            return WriterEnd::Stopped;
                        }
                        link.window_opened(seq, WINDOW_GRACE).await;
                    }
                    if link.is_overflowed() {
                        // The reader ends the session with 1008.
                        Ok(())
                    } else {
                        let r = sink.feed(body.frame(seq)).await;
                        link.sent(seq);
                        r
                    }
                }
                Outbound::Close(code, reason) => {
                    return match sink.send(close_frame(code, &reason)).await {
                        Ok(()) => WriterEnd::Closed,
                        Err(_) => WriterEnd::Stopped,
                    };
                }
                Outbound::Cut => return WriterEnd::Stopped,
            };
            if r.is_err() {
                return WriterEnd::Stopped;
            }
            written += 1;
            if written < WRITE_BATCH {
                next = held.ready(rx, link);
            }
        }
        if sink.flush().await.is_err() {
            return WriterEnd::Stopped;
        }
        // Counted once written, so a client that does not read keeps its reader paused.
        link.popped(bytes);
    }
}

/// Frames the writer has taken off the queue but may not write yet: `:delay` gives each a
/// release time (so a delay shifts the stream without limiting its rate), `:stall` holds them
/// all. Without either, frames pass straight through.
#[derive(Default)]
struct Held {
    frames: VecDeque<(Instant, Outbound)>,
    /// The queue was closed: only what is held is left.
    closed: bool,
}

impl Held {
    fn hold(&mut self, o: Outbound, link: &Link) {
        self.frames.push_back((Instant::now() + link.delay(), o));
    }

    /// When the first held frame may go out.
    fn due(&self, link: &Link) -> Option<Instant> {
        let (release, _) = self.frames.front()?;
        Some(match link.stall_end() {
            Some(end) => end.max(*release),
            None => *release,
        })
    }

    /// Takes the first held frame if it may go out now.
    fn pop_due(&mut self, link: &Link) -> Option<Outbound> {
        if self.due(link)? > Instant::now() {
            return None;
        }
        self.frames.pop_front().map(|(_, o)| o)
    }

    /// The next frame to write, once it may go out; `None` when the queue is closed and
    /// nothing is held.
    async fn next(
        &mut self,
        rx: &mut UnboundedReceiver<Outbound>,
        link: &Link,
    ) -> Option<Outbound> {
        loop {
            if self.frames.is_empty() {
                if self.closed {
                    return None;
                }
                let o = rx.recv().await?;
                if !link.is_holding() {
                    return Some(o);
                }
                self.hold(o, link);
            }
            if let Some(o) = self.pop_due(link) {
                return Some(o);
            }
            let due = self.due(link)?;
            // Frames queued meanwhile get their release time when they are queued.
            tokio::select! {
                biased;
                r = rx.recv(), if !self.closed => match r {
                    Some(o) => self.hold(o, link),
                    None => self.closed = true,
                },
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
    }

    /// A further frame for the current batch, if one may go out now.
    fn ready(&mut self, rx: &mut UnboundedReceiver<Outbound>, link: &Link) -> Option<Outbound> {
        if self.frames.is_empty() {
            let o = rx.try_recv().ok()?;
            if !link.is_holding() {
                return Some(o);
            }
            self.hold(o, link);
        }
        self.pop_due(link)
    }
}
