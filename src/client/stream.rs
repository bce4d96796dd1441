//! Group streams this client publishes: the application's handle ([`GroupStream`]) and the
//! engine's record of each open stream (`OutStreams`).
//!
//! A stream opens with a `sendToGroup` carrying stream metadata, answered by `streamAck`
//! (expected id 1) or `streamClosed`. Fragments `streamData` 1, 2, ... follow; the service
//! acknowledges them cumulatively with `streamAck`, and refuses one out of order with
//! `streamNack` and the id it expects, from which the publisher sends again. `streamEnd`
//! ends the stream (with the application's error when aborted) and `streamClosed` confirms.
//!
//! Every fragment is kept until acknowledged, which is what bounds a stream's memory: a
//! write waits while the unacknowledged bytes would exceed the stream buffer
//! (back-pressure), and the kept fragments are sent again after a recovery and after a nack.
//! An idle stream gets keep-alive frames well inside its idle timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::command::Command;
use super::Client;
use crate::error::Error;
use crate::protocol::{Payload, Request, StreamUserError};

/// The idle timeout the service applies when the stream does not ask for one.
pub const SERVICE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How many streams one client may have open at once.
pub const MAX_OPEN_STREAMS: usize = 1024;

/// How to open a group stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// The stream id; `None` generates a UUID.
    pub stream_id: Option<String>,
    /// Do not deliver the stream back to this connection.
    pub no_echo: bool,
    /// The idle timeout asked of the service; `None` = the service's default (300 s).
    /// Keep-alive frames go out while the stream is idle, so it stays open as long as the
    /// handle does.
    pub idle_timeout: Option<Duration>,
}

/// What the handle and the engine share about one stream.
pub(crate) struct StreamShared {
    book: Mutex<Book>,
    /// Woken when bytes are acknowledged or the stream closes.
    room: Notify,
    /// [`super::ClientOptions::stream_buffer`].
    limit: usize,
}

#[derive(Default)]
struct Book {
    /// Payload bytes written and not yet acknowledged.
    unacked_bytes: usize,
    /// Fragments written and not yet acknowledged.
    unacked_count: usize,
    /// The id of the next fragment.
    next_seq: u64,
    /// `end` or `abort` was called.
    ended: bool,
    /// Why the stream is over, once it is.
    closed: Option<Error>,
}

impl StreamShared {
    fn new(limit: usize) -> StreamShared {
        StreamShared {
            book: Mutex::new(Book {
                next_seq: 1,
                ..Book::default()
            }),
            room: Notify::new(),
            limit,
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases acknowledged fragments and wakes the writer.
    fn release(&self, count: usize, bytes: usize) {
        if count == 0 {
            return;
        }
        let mut b = self.book();
        b.unacked_count = b.unacked_count.saturating_sub(count);
        b.unacked_bytes = b.unacked_bytes.saturating_sub(bytes);
        drop(b);
        self.room.notify_waiters();
    }

    /// Marks the stream over (the first reason stays) and wakes the writer.
    fn close(&self, error: Error) {
        let mut b = self.book();
        if b.closed.is_none() {
            b.closed = Some(error);
        }
        drop(b);
        self.room.notify_waiters();
    }

    fn closed(&self) -> Option<Error> {
        self.book().closed.clone()
    }
}

fn closed(name: &str, message: impl Into<String>) -> Error {
    Error::StreamClosed {
        name: name.to_string(),
        message: message.into(),
    }
}

/// A request about a stream, from its handle to the engine.
pub(crate) enum StreamCommand {
    /// Register the stream and write its start.
    Open {
        /// The stream id.
        stream_id: String,
        /// The encoded start (`sendToGroup` with stream metadata).
        frame: Message,
        /// Shared with the handle.
        shared: Arc<StreamShared>,
        /// How often keep-alive frames go out while the stream is idle.
        keep_alive: Duration,
        /// Answered on `streamAck` (expected id 1) or the refusal.
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// One fragment, in order.
    Write {
        /// The stream id.
        stream_id: String,
        /// Its `streamSequenceId`.
        seq: u64,
        /// The encoded `streamData`.
        frame: Message,
        /// Payload bytes (counted against the stream buffer).
        bytes: usize,
    },
    /// `streamEnd`, normal or with the application's error.
    End {
        /// The stream id.
        stream_id: String,
        /// The encoded `streamEnd`.
        frame: Message,
        /// Answered on `streamClosed`; `None` when nobody waits (a dropped handle).
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
}

/// A group stream being published. Writes are ordered; `end` or `abort` finishes it.
/// Dropping an open stream aborts it.
pub struct GroupStream {
    client: Client,
    id: String,
    shared: Arc<StreamShared>,
    /// Writes, `end` and `abort` take turns, in call order.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupStream").field("id", &self.id).finish()
    }
}

impl Client {
    /// Opens a group stream; returns once the service accepted it (`streamAck` 1). A refusal
    /// is [`Error::StreamRefused`] with the service's error name. Needs a connection.
    pub async fn open_stream(
        &self,
        group: &str,
        opts: StreamOptions,
    ) -> Result<GroupStream, Error> {
        self.check_process()?;
        super::check_name("group", group)?;
        let stream_id = match opts.stream_id {
            Some(id) => {
                super::check_name("stream id", &id)?;
                id
            }
            None => generated_id(),
        };
        let idle_timeout_ms = match opts.idle_timeout {
            None => None,
            Some(d) => Some(
                u32::try_from(d.as_millis())
                    .ok()
                    .filter(|&ms| ms > 0)
                    .ok_or_else(|| {
                        Error::InvalidArgument(
                            "the stream idle timeout must be 1 ms to 2^32-1 ms".into(),
                        )
                    })?,
            ),
        };
        let frame = self.encode(&Request::StreamStart {
            group,
            stream_id: &stream_id,
            idle_timeout_ms,
            no_echo: opts.no_echo,
        })?;
        let idle = opts.idle_timeout.unwrap_or(SERVICE_IDLE_TIMEOUT);
        // Three keep-alives per idle timeout: one lost to a slow write still leaves two.
        let keep_alive = (idle / 3).clamp(Duration::from_millis(10), Duration::from_secs(60));
        let shared = Arc::new(StreamShared::new(self.options().stream_buffer));
        let (tx, rx) = oneshot::channel();
        self.command(Command::Stream(StreamCommand::Open {
            stream_id: stream_id.clone(),
            frame,
            shared: shared.clone(),
            keep_alive,
            reply: tx,
        }))?;
        rx.await.unwrap_or(Err(Error::Stopped { ack_id: None }))?;
        Ok(GroupStream {
            client: self.clone(),
            id: stream_id,
            shared,
            turn: tokio::sync::Mutex::new(()),
        })
    }
}

impl GroupStream {
    /// The stream id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Writes one fragment. Returns once the fragment is in the engine's ordered send queue;
    /// waits only while the stream's unacknowledged bytes would exceed the stream buffer.
    /// Cancelling the wait (dropping the future) sends nothing.
    pub async fn write(&self, payload: Payload) -> Result<(), Error> {
        let _turn = self.turn.lock().await;
        let bytes = payload.data.len();
        let seq = {
            let b = self.shared.book();
            if let Some(e) = &b.closed {
                return Err(e.clone());
            }
            if b.ended {
                return Err(closed("Ended", "the stream was ended"));
            }
            b.next_seq
        };
        let frame = self.client.encode(&Request::StreamData {
            stream_id: &self.id,
            sequence_id: seq,
            payload: &payload,
        })?;
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut b = self.shared.book();
                if let Some(e) = &b.closed {
                    return Err(e.clone());
                }
                if b.unacked_count == 0 || b.unacked_bytes + bytes <= self.shared.limit {
                    b.next_seq += 1;
                    b.unacked_count += 1;
                    b.unacked_bytes += bytes;
                    drop(b);
                    let cmd = StreamCommand::Write {
                        stream_id: self.id.clone(),
                        seq,
                        frame,
                        bytes,
                    };
                    return self.send(cmd);
                }
            }
            notified.await;
        }
    }

    /// Ends the stream; returns when the service confirmed (`streamClosed`).
    pub async fn end(&self) -> Result<(), Error> {
        self.finish(None).await
    }

    /// Ends the stream with the application's error (`UserError` to subscribers); returns
    /// when the service confirmed.
    pub async fn abort(
        &self,
        message: Option<&str>,
        user_error_code: Option<&str>,
    ) -> Result<(), Error> {
        self.finish(Some(StreamUserError {
            message,
            user_error_code,
        }))
        .await
    }

    async fn finish(&self, error: Option<StreamUserError<'_>>) -> Result<(), Error> {
        let _turn = self.turn.lock().await;
        {
            let mut b = self.shared.book();
            if let Some(e) = &b.closed {
                return Err(e.clone());
            }
            if b.ended {
                return Err(closed("Ended", "the stream was ended"));
            }
            b.ended = true;
        }
        let frame = self.client.encode(&Request::StreamEnd {
            stream_id: &self.id,
            error,
        })?;
        let (tx, rx) = oneshot::channel();
        self.send(StreamCommand::End {
            stream_id: self.id.clone(),
            frame,
            reply: Some(tx),
        })?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self
                .shared
                .closed()
                .unwrap_or_else(|| closed("Stopped", "the client stopped"))),
        }
    }

    fn send(&self, cmd: StreamCommand) -> Result<(), Error> {
        self.client.command(Command::Stream(cmd))
    }

    /// Whether the stream is over (ended, aborted or failed).
    pub fn is_closed(&self) -> bool {
        self.shared.closed().is_some()
    }
}

impl GroupStream {
    /// Aborts an open stream without waiting for the service (the handle is going away):
    /// writes waiting for room fail at once with `StreamClosed` (`name`).
    pub(crate) fn abandon(&self, name: &str, message: &str) {
        let open = {
            let mut b = self.shared.book();
            let open = b.closed.is_none() && !b.ended;
            b.ended = true;
            open
        };
        self.shared.close(closed(name, message));
        if !open {
            return;
        }
        let error = StreamUserError {
            message: Some(message),
            user_error_code: None,
        };
        if let Ok(frame) = self.client.encode(&Request::StreamEnd {
            stream_id: &self.id,
            error: Some(error),
        }) {
            let _ = self.send(StreamCommand::End {
                stream_id: self.id.clone(),
                frame,
                reply: None,
            });
        }
    }
}

impl Drop for GroupStream {
    fn drop(&mut self) {
        self.abandon(
            "Dropped",
            "the publisher dropped the stream without ending it",
        );
    }
}

/// A version 4 UUID for a stream opened without an id. Stream ids need only be unique among
/// one connection's open streams; the process-wide generator of the reconnect jitter (a
/// counter mixed with the clock) gives that without a dependency on the OS's random source.
fn generated_id() -> String {
    let mut rng = super::retry::Rng::from_global();
    let (hi, lo) = (rng.next_u64(), rng.next_u64());
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Who waits for the answer to an open or an end.
type Reply = oneshot::Sender<Result<(), Error>>;

/// One fragment kept until acknowledged.
struct Fragment {
    seq: u64,
    frame: Message,
    bytes: usize,
}

/// The engine's record of one open stream.
struct OutStream {
    shared: Arc<StreamShared>,
    /// Until the start is acknowledged.
    open_reply: Option<oneshot::Sender<Result<(), Error>>>,
    /// Unacknowledged fragments, in order.
    unacked: VecDeque<Fragment>,
    /// The service's next expected id (every fragment below it is acknowledged).
    expected: u64,
    /// The id after the last fragment written by the application.
    next_seq: u64,
    /// The queued `streamEnd` and who waits for `streamClosed`.
    end: Option<(Message, Option<Reply>)>,
    /// When a frame of this stream was last written.
    last_write: Instant,
    keep_alive: Duration,
    /// The id the last nack made the stream resend from (a second nack for the same id,
    /// caused by frames already in flight, resends nothing).
    rewound_to: Option<u64>,
}

impl OutStream {
    fn opened(&self) -> bool {
        self.open_reply.is_none()
    }

    /// Drops fragments below `expected` and releases their room.
    fn trim(&mut self, expected: u64) {
        let (mut count, mut bytes) = (0, 0);
        while self.unacked.front().is_some_and(|f| f.seq < expected) {
            if let Some(f) = self.unacked.pop_front() {
                count += 1;
                bytes += f.bytes;
            }
        }
        self.expected = self.expected.max(expected);
        self.shared.release(count, bytes);
    }

    /// Every frame to send again, in order: unacknowledged fragments, then the end.
    fn replay(&self) -> Vec<Message> {
        let mut frames: Vec<Message> = self.unacked.iter().map(|f| f.frame.clone()).collect();
        if let Some((end, _)) = &self.end {
            frames.push(end.clone());
        }
        frames
    }

    fn fail(self, error: Error) {
        if let Some(reply) = self.open_reply {
            let _ = reply.send(Err(error.clone()));
        }
        if let Some((_, Some(reply))) = self.end {
            let _ = reply.send(Err(error.clone()));
        }
        self.shared.close(error);
    }
}

/// What an inbound stream control message asks of the engine.
#[derive(Default)]
pub(crate) struct Reaction {
    /// Frames to write, in order.
    pub frames: Vec<Message>,
    /// A protocol violation to log.
    pub violation: Option<String>,
}

/// The open streams of one client, by id.
#[derive(Default)]
pub(crate) struct OutStreams {
    streams: HashMap<String, OutStream>,
}

impl OutStreams {
    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The shortest keep-alive period of the open streams.
    pub fn keep_alive_period(&self) -> Option<Duration> {
        self.streams.values().map(|s| s.keep_alive).min()
    }

    /// Registers a stream; returns its start frame to write, or answers the refusal.
    pub fn open(
        &mut self,
        stream_id: String,
        frame: Message,
        shared: Arc<StreamShared>,
        keep_alive: Duration,
        reply: oneshot::Sender<Result<(), Error>>,
    ) -> Option<Message> {
        let refusal = if self.streams.contains_key(&stream_id) {
            Some(Error::InvalidArgument(format!(
                "a stream with id '{stream_id}' is already open on this client"
            )))
        } else if self.streams.len() >= MAX_OPEN_STREAMS {
            Some(Error::InvalidArgument(format!(
                "{MAX_OPEN_STREAMS} streams are already open on this client"
            )))
        } else {
            None
        };
        if let Some(e) = refusal {
            let _ = reply.send(Err(e));
            return None;
        }
        self.streams.insert(
            stream_id,
            OutStream {
                shared,
                open_reply: Some(reply),
                unacked: VecDeque::new(),
                expected: 1,
                next_seq: 1,
                end: None,
                last_write: Instant::now(),
                keep_alive,
                rewound_to: None,
            },
        );
        Some(frame)
    }

    /// Records a fragment; returns it to write now when `connected`.
    pub fn write(
        &mut self,
        stream_id: &str,
        seq: u64,
        frame: Message,
        bytes: usize,
        connected: bool,
    ) -> Option<Message> {
        let s = self.streams.get_mut(stream_id)?;
        s.next_seq = seq + 1;
        s.unacked.push_back(Fragment {
            seq,
            frame: frame.clone(),
            bytes,
        });
        (connected && s.opened()).then(|| {
            s.last_write = Instant::now();
            frame
        })
    }

    /// Records the end; returns it to write now when `connected`.
    pub fn end(
        &mut self,
        stream_id: &str,
        frame: Message,
        reply: Option<oneshot::Sender<Result<(), Error>>>,
        connected: bool,
    ) -> Option<Message> {
        let Some(s) = self.streams.get_mut(stream_id) else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(closed("Closed", "the stream is already closed")));
            }
            return None;
        };
        s.end = Some((frame.clone(), reply));
        (connected && s.opened()).then(|| {
            s.last_write = Instant::now();
            frame
        })
    }

    /// `streamAck`: the start is accepted (expected 1 before the start was acknowledged), or
    /// fragments below `expected` are.
    pub fn on_ack(&mut self, stream_id: &str, expected: u64) -> Reaction {
        let Some(s) = self.streams.get_mut(stream_id) else {
            return Reaction::default();
        };
        if !s.opened() {
            if expected == 1 {
                if let Some(reply) = s.open_reply.take() {
                    if reply.send(Ok(())).is_err() {
                        // The caller stopped waiting: nobody holds a handle, so end it.
                        return self.abandon(stream_id);
                    }
                }
                return Reaction::default();
            }
            return self.violation(stream_id, expected);
        }
        if expected < s.expected || expected > s.next_seq {
            return self.violation(stream_id, expected);
        }
        s.trim(expected);
        if s.rewound_to.is_some_and(|r| expected > r) {
            s.rewound_to = None;
        }
        Reaction::default()
    }

    /// `streamNack`: fragments below `expected` are accepted; the rest go out again, from
    /// `expected`.
    pub fn on_nack(&mut self, stream_id: &str, expected: u64) -> Reaction {
        let Some(s) = self.streams.get_mut(stream_id) else {
            return Reaction::default();
        };
        if !s.opened() {
            // A start answered with a nack for id 1 is accepted all the same.
            return self.on_ack(stream_id, expected);
        }
        if expected < s.expected || expected > s.next_seq {
            return self.violation(stream_id, expected);
        }
        s.trim(expected);
        if s.rewound_to == Some(expected) {
            return Reaction::default();
        }
        s.rewound_to = Some(expected);
        s.last_write = Instant::now();
        Reaction {
            frames: s.unacked.iter().map(|f| f.frame.clone()).collect(),
            violation: None,
        }
    }

    /// `streamClosed`: the stream is over, normally or with the service's error.
    pub fn on_closed(&mut self, stream_id: &str, error: Option<crate::protocol::AckError>) {
        let Some(mut s) = self.streams.remove(stream_id) else {
            return;
        };
        // An end sent again after a recovery finds no stream when the service had already
        // ended it (its `streamClosed` was lost with the old socket): the end took effect.
        let error = error.filter(|e| !(e.name == "StreamNotFound" && s.end.is_some()));
        match error {
            None => {
                let all = s.unacked.len();
                let bytes = s.unacked.iter().map(|f| f.bytes).sum();
                s.shared.release(all, bytes);
                if let Some(reply) = s.open_reply.take() {
                    let _ = reply.send(Err(closed(
                        "Closed",
                        "the service closed the stream before accepting it",
                    )));
                }
                if let Some((_, Some(reply))) = s.end.take() {
                    let _ = reply.send(Ok(()));
                }
                s.shared.close(closed("Ended", "the stream was ended"));
            }
            Some(e) if !s.opened() => s.fail(Error::StreamRefused {
                name: e.name,
                message: e.message,
            }),
            Some(e) => s.fail(Error::StreamClosed {
                name: e.name,
                message: e.message,
            }),
        }
    }

    /// Frames to send on a recovered connection: each accepted stream's unacknowledged
    /// fragments and queued end, stream by stream.
    pub fn replay(&mut self) -> Vec<Message> {
        let now = Instant::now();
        let mut frames = Vec::new();
        for s in self.streams.values_mut().filter(|s| s.opened()) {
            s.rewound_to = None;
            s.last_write = now;
            frames.extend(s.replay());
        }
        frames
    }

    /// Fails the streams whose start is not acknowledged yet (the connection dropped: the
    /// service may or may not have the stream).
    pub fn fail_opening(&mut self, error: &Error) {
        let ids: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.opened())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(s) = self.streams.remove(&id) {
                s.fail(error.clone());
            }
        }
    }

    /// Fails every stream (the connection is lost for good, or the client stops).
    pub fn fail_all(&mut self, error: &Error) {
        for (_, s) in self.streams.drain() {
            s.fail(error.clone());
        }
    }

    /// Ids of accepted streams due a keep-alive (idle for their keep-alive period), marked
    /// as written now.
    pub fn keep_alives_due(&mut self, now: Instant) -> Vec<String> {
        self.streams
            .iter_mut()
            .filter(|(_, s)| s.opened() && s.end.is_none())
            .filter(|(_, s)| now.duration_since(s.last_write) >= s.keep_alive)
            .map(|(id, s)| {
                s.last_write = now;
                id.clone()
            })
            .collect()
    }

    /// Closes a stream after a protocol violation; returns the `streamEnd` to write.
    fn violation(&mut self, stream_id: &str, got: u64) -> Reaction {
        let Some(s) = self.streams.remove(stream_id) else {
            return Reaction::default();
        };
        let message = format!(
            "invalid sequence id {got} in an ack; expected {} to {}",
            s.expected, s.next_seq
        );
        s.fail(closed("ProtocolViolation", message.clone()));
        Reaction {
            frames: vec![end_frame(stream_id, &message, "ProtocolViolation")],
            violation: Some(format!("stream {stream_id}: {message}")),
        }
    }

    /// Ends a stream whose opener stopped waiting.
    fn abandon(&mut self, stream_id: &str) -> Reaction {
        let Some(s) = self.streams.remove(stream_id) else {
            return Reaction::default();
        };
        let message = "the publisher stopped waiting for the stream to open";
        s.fail(closed("Abandoned", message));
        Reaction {
            frames: vec![end_frame(stream_id, message, "Abandoned")],
            violation: None,
        }
    }
}

/// A `streamEnd` with an error, encoded as JSON (streams exist only on JSON protocols).
fn end_frame(stream_id: &str, message: &str, code: &str) -> Message {
    use crate::protocol::Codec;
    let request = Request::StreamEnd {
        stream_id,
        error: Some(StreamUserError {
            message: Some(message),
            user_error_code: Some(code),
        }),
    };
    match crate::protocol::json::JsonCodec::new(false).encode(&request) {
        Ok(f) => super::frame_to_message(f),
        Err(_) => Message::text(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(
        t: &mut OutStreams,
        id: &str,
    ) -> (Arc<StreamShared>, oneshot::Receiver<Result<(), Error>>) {
        let shared = Arc::new(StreamShared::new(100));
        let (tx, rx) = oneshot::channel();
        assert!(t
            .open(
                id.into(),
                Message::text("start"),
                shared.clone(),
                Duration::from_secs(1),
                tx
            )
            .is_some());
        (shared, rx)
    }

    fn write(t: &mut OutStreams, shared: &StreamShared, id: &str, seq: u64) -> Option<Message> {
        let mut b = shared.book();
        b.next_seq = seq + 1;
        b.unacked_count += 1;
        b.unacked_bytes += 10;
        drop(b);
        t.write(id, seq, Message::text(format!("f{seq}")), 10, true)
    }

    #[test]
    fn the_start_ack_opens_and_acks_release_room() {
        let mut t = OutStreams::default();
        let (shared, mut rx) = open(&mut t, "s");
        assert!(t.on_ack("s", 1).frames.is_empty());
        assert!(rx.try_recv().unwrap().is_ok());
        for seq in 1..=3 {
            assert!(write(&mut t, &shared, "s", seq).is_some());
        }
        assert_eq!(shared.book().unacked_bytes, 30);
        t.on_ack("s", 3);
        assert_eq!(shared.book().unacked_bytes, 10);
        assert_eq!(shared.book().unacked_count, 1);
    }

    #[test]
    fn a_nack_rewinds_once_per_expected_id() {
        let mut t = OutStreams::default();
        let (shared, _rx) = open(&mut t, "s");
        t.on_ack("s", 1);
        for seq in 1..=4 {
            write(&mut t, &shared, "s", seq);
        }
        let r = t.on_nack("s", 2);
        let texts: Vec<String> = r
            .frames
            .iter()
            .map(|m| m.to_text().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["f2", "f3", "f4"]);
        assert!(
            t.on_nack("s", 2).frames.is_empty(),
            "frames in flight cause no second resend"
        );
        t.on_ack("s", 5);
        assert_eq!(shared.book().unacked_count, 0);
    }

    #[test]
    fn an_ack_out_of_range_is_a_protocol_violation() {
        let mut t = OutStreams::default();
        let (shared, _rx) = open(&mut t, "s");
        t.on_ack("s", 1);
        write(&mut t, &shared, "s", 1);
        let r = t.on_ack("s", 7);
        assert!(r.violation.is_some());
        assert_eq!(r.frames.len(), 1);
        assert!(r.frames[0].to_text().unwrap().contains("ProtocolViolation"));
        assert!(
            matches!(shared.closed(), Some(Error::StreamClosed { name, .. }) if name == "ProtocolViolation")
        );
        assert!(t.is_empty());
    }

    #[test]
    fn a_refused_start_and_a_failed_stream_report_the_service_error() {
        let mut t = OutStreams::default();
        let (_shared, mut rx) = open(&mut t, "s");
        t.on_closed(
            "s",
            Some(crate::protocol::AckError {
                name: "Forbidden".into(),
                message: "no".into(),
            }),
        );
        assert!(
            matches!(rx.try_recv().unwrap(), Err(Error::StreamRefused { name, .. }) if name == "Forbidden")
        );
        let (shared, _rx) = open(&mut t, "s");
        t.on_ack("s", 1);
        let (tx, mut end_rx) = oneshot::channel();
        t.end("s", Message::text("end"), Some(tx), true);
        t.on_closed(
            "s",
            Some(crate::protocol::AckError {
                name: "IdleTimeout".into(),
                message: String::new(),
            }),
        );
        assert!(
            matches!(end_rx.try_recv().unwrap(), Err(Error::StreamClosed { name, .. }) if name == "IdleTimeout")
        );
        assert!(shared.closed().is_some());
    }

    #[test]
    fn recovery_replays_unacked_fragments_and_the_end_in_order() {
        let mut t = OutStreams::default();
        let (shared, _rx) = open(&mut t, "s");
        t.on_ack("s", 1);
        for seq in 1..=3 {
            write(&mut t, &shared, "s", seq);
        }
        t.on_ack("s", 2);
        t.end("s", Message::text("end"), None, false);
        let texts: Vec<String> = t
            .replay()
            .iter()
            .map(|m| m.to_text().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["f2", "f3", "end"]);
        let (_s2, mut rx2) = open(&mut t, "t");
        t.fail_opening(&closed("ConnectionLost", "x"));
        assert!(rx2.try_recv().unwrap().is_err());
        assert!(!t.is_empty(), "accepted streams survive");
        t.fail_all(&closed("ConnectionLost", "x"));
        assert!(t.is_empty() && shared.closed().is_some());
    }
}
