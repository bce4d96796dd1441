//! One logical client connection: identity, groups, permissions, and (on the reliable
//! subprotocols) sequence ids, the replay buffer and the ackId dedupe cache. A session outlives
//! its transport while it is recoverable. Frames are encoded here for the session's protocol.

use crate::ack_ids::AckIds;
use crate::deadline::Deadline;
use crate::protobuf;
use crate::protocol::{self, Origin, Payload};
use crate::roles::Permissions;
use crate::streams::Streams;
use axum::extract::ws::{Message, Utf8Bytes};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::collections::{BTreeSet, VecDeque};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The reliable window: data messages written to the client and not yet acknowledged (or,
/// while no transport is attached, buffered for recovery). The writer does not write more
/// than this ahead of the client's `sequenceAck` (flow control: a burst it cannot deliver
/// waits in the outbound queue, whose own bounds apply); a client that leaves the window
/// full for [`WINDOW_GRACE`] is closed with 1008.
pub const MAX_BUFFERED_MESSAGES: usize = 1000;
/// How long the writer waits on a full window for an acknowledgement before the session is
/// closed with 1008. A client acknowledging once a second (the official clients) is cut off
/// when more than a window arrives between two of its acks; one acknowledging from its read
/// loop as it reads never is.
pub const WINDOW_GRACE: Duration = Duration::from_millis(500);
/// Unacknowledged bytes kept for recovery before the connection is closed.
pub const MAX_BUFFERED_BYTES: usize = 16 * 1024 * 1024;

/// Successful ackIds remembered per connection for `Duplicate` answers (oldest forgotten first),
/// so a long-running publisher does not grow the emulator without bound.
pub const MAX_REMEMBERED_ACK_IDS: usize = 100_000;

/// What simple (no subprotocol) clients do with their frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimpleMode {
    SendEvent,
    SendToGroup { group: String, no_echo: bool },
}

/// The connection's protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Simple(SimpleMode),
    Json,
    JsonReliable,
    Protobuf,
    ProtobufReliable,
}

impl Kind {
    /// The PubSub kind for a subprotocol name (`None` for simple clients).
    pub fn from_subprotocol(name: &str) -> Option<Kind> {
        match name {
            protocol::JSON_RELIABLE_V1 => Some(Kind::JsonReliable),
            protocol::JSON_V1 => Some(Kind::Json),
            protobuf::PROTOBUF_RELIABLE_V1 => Some(Kind::ProtobufReliable),
            protobuf::PROTOBUF_V1 => Some(Kind::Protobuf),
            _ => None,
        }
    }
}

/// A command for a connection's writer.
#[derive(Debug)]
pub enum Outbound {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A reliable data message: the body every receiver shares, numbered by the writer.
    Sequenced(u64, Body),
    /// Send a close frame with this code and reason, then end the transport.
    Close(u16, String),
    /// Cut the TCP connection without a close frame (fires the transport's [`Link`] cut
    /// rather than queueing, so it also interrupts a writer blocked on a stuck client).
    Cut,
}

/// Bytes of outbound frames queued for one transport above which its reader stops reading the
/// client (a client that does not read cannot make the emulator queue its own traffic without
/// bound)...
pub const OUTBOUND_PAUSE_BYTES: usize = 8 * 1024 * 1024;
/// ...until the writer has brought the queue down to this.
pub const OUTBOUND_RESUME_BYTES: usize = 2 * 1024 * 1024;
/// Bytes of outbound frames queued for one transport at which the connection is cut: other
/// connections and REST keep sending to a client that does not read.
pub const OUTBOUND_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// What a queued frame counts for beyond its payload (queue node, frame header), so floods of
/// tiny frames are bounded as well.
const FRAME_OVERHEAD: usize = 64;

impl Outbound {
    /// What this command counts for against the outbound bounds.
    pub fn cost(&self) -> usize {
        FRAME_OVERHEAD
            + match self {
                Outbound::Text(t) => t.len(),
                Outbound::Binary(b) => b.len(),
                Outbound::Sequenced(_, body) => body.len(),
                Outbound::Close(_, reason) => reason.len(),
                Outbound::Cut => 0,
            }
    }
}

/// The body of a reliable data message, encoded once and shared by every receiver and every
/// replay: the JSON `message` without its `sequenceId`, or the protobuf `DataMessage` fields.
#[derive(Debug, Clone)]
pub enum Body {
    Json(Utf8Bytes),
    Protobuf(Bytes),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Json(t) => t.len(),
            Body::Protobuf(b) => b.len(),
        }
    }

    /// The frame for one receiver: the body with `sequence_id` added.
    pub fn frame(&self, sequence_id: u64) -> Message {
        match self {
            Body::Json(t) => Message::Text(Utf8Bytes::from(protocol::with_sequence_id(
                t.as_str(),
                sequence_id,
            ))),
            Body::Protobuf(inner) => {
                Message::Binary(protobuf::encode_data(inner, Some(sequence_id)))
            }
        }
    }
}

/// Which half of a transport waits on a [`Link`].
#[derive(Clone, Copy)]
pub enum Half {
    Reader,
    Writer,
}

/// Shared by the session and the two halves of one transport: the cut signal (drop the
/// socket at once), the close request, the bytes in the outbound queue, and the injected
/// network faults. Each half has its own waker slot, so waiting costs an atomic register per
/// poll rather than a lock.
#[derive(Default)]
pub struct Link {
    fired: AtomicBool,
    closing: AtomicBool,
    queued: AtomicUsize,
    /// `:stall`: until then neither half touches the socket.
    stall: Deadline,
    /// `:delay`: nanoseconds added to every frame the writer takes from now on.
    delay: AtomicU64,
    /// The session's highest sequence id written to the socket (shared by its transports).
    sent: Arc<AtomicU64>,
    /// The session's highest acknowledged sequence id (shared by its transports).
    acked: Arc<AtomicU64>,
    /// The window stayed full past [`WINDOW_GRACE`]: the writer writes no more data
    /// messages, and the reader closes the session with 1008.
    overflowed: AtomicBool,
    /// The writer waits on a full window: the queue's backlog is not the client's failure to
    /// read, so the reader keeps reading (it has to, to see the client's `sequenceAck`).
    awaiting_ack: AtomicBool,
    /// Woken when fired and when the queue drains to [`OUTBOUND_RESUME_BYTES`].
    reader: AtomicWaker,
    /// Woken when fired and when a close is requested.
    writer: AtomicWaker,
}

impl Link {
    /// A link for a transport of `s`.
    pub fn new(s: &Session) -> Link {
        Link {
            sent: s.sent.clone(),
            acked: s.acked.clone(),
            ..Link::default()
        }
    }

    /// Counts `cost` bytes put on the queue; returns the new total.
    fn pushed(&self, cost: usize) -> usize {
        self.queued.fetch_add(cost, Ordering::AcqRel) + cost
    }

    /// Counts `cost` bytes taken off the queue by the writer.
    pub fn popped(&self, cost: usize) {
        let before = self.queued.fetch_sub(cost, Ordering::AcqRel);
        if before.saturating_sub(cost) <= OUTBOUND_RESUME_BYTES && before > OUTBOUND_RESUME_BYTES {
            self.reader.wake();
        }
    }

    /// Records that the writer wrote the frame numbered `sequence_id`.
    pub fn sent(&self, sequence_id: u64) {
        self.sent.fetch_max(sequence_id, Ordering::AcqRel);
    }

    /// Whether the data message numbered `sequence_id` fits in the window (and the window
    /// has not overflowed).
    pub fn window_open(&self, sequence_id: u64) -> bool {
        !self.is_overflowed()
            && sequence_id.saturating_sub(self.acked.load(Ordering::Acquire))
                <= MAX_BUFFERED_MESSAGES as u64
    }

    /// Whether the window overflowed (see [`WINDOW_GRACE`]).
    pub fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Waits (the writer, having flushed what it wrote) until an acknowledgement opens the
    /// window for `sequence_id`, at most `grace`; then marks the window overflowed and wakes
    /// the reader to close the session.
    pub async fn window_opened(&self, sequence_id: u64, grace: Duration) {
        self.awaiting_ack.store(true, Ordering::Release);
        self.reader.wake();
        let open = poll_fn(|cx| {
            self.writer.register(cx.waker());
            if self.window_open(sequence_id) || self.is_fired() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        if tokio::time::timeout(grace, open).await.is_err() {
            self.overflowed.store(true, Ordering::Release);
        }
        self.awaiting_ack.store(false, Ordering::Release);
        self.reader.wake();
    }

    /// Wakes a writer waiting on the window (an acknowledgement arrived).
    fn ack_arrived(&self) {
        self.writer.wake();
    }

    /// Completes once the window overflowed (waited on by the reader).
    pub fn window_overflowed(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            self.reader.register(cx.waker());
            if self.is_overflowed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Whether the reader should pause.
    pub fn is_backlogged(&self) -> bool {
        self.queued.load(Ordering::Acquire) > OUTBOUND_PAUSE_BYTES
            && !self.awaiting_ack.load(Ordering::Acquire)
    }

    /// Completes once the queue is at or below [`OUTBOUND_RESUME_BYTES`] (waited on by the
    /// reader).
    pub fn drained(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            self.reader.register(cx.waker());
            if self.queued.load(Ordering::Acquire) <= OUTBOUND_RESUME_BYTES
                || self.awaiting_ack.load(Ordering::Acquire)
            {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.reader.wake();
        self.writer.wake();
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Completes once [`Link::fire`] has been called.
    pub fn fired(&self, half: Half) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            match half {
                Half::Reader => self.reader.register(cx.waker()),
                Half::Writer => self.writer.register(cx.waker()),
            }
            if self.is_fired() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Stops both halves from using the socket for `d` (from now, unless a stall already lasts
    /// longer).
    pub fn stall(&self, d: Duration) {
        self.stall.extend(d);
        // The reader may be waiting for a frame it must now leave in the socket.
        self.reader.wake();
    }

    /// When the current stall ends; `None` when there is none.
    pub fn stall_end(&self) -> Option<Instant> {
        self.stall.pending()
    }

    /// Completes once a stall has been requested (waited on by the reader).
    pub fn stall_requested(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            self.reader.register(cx.waker());
            if self.stall.is_set() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Adds `d` to every frame the writer takes from now on (zero: none).
    pub fn set_delay(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.delay.store(nanos, Ordering::Release);
    }

    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay.load(Ordering::Acquire))
    }

    /// Whether the writer may have to hold frames back (a delay or a stall; atomic loads only).
    pub fn is_holding(&self) -> bool {
        self.delay.load(Ordering::Acquire) != 0 || self.stall.is_set()
    }

    /// Notes that a close frame has been queued.
    fn request_close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.writer.wake();
    }

    /// Completes once a close frame has been queued (waited on by the writer, which gives a
    /// client that does not read only so long to take what is queued before it).
    pub fn close_requested(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            self.writer.register(cx.waker());
            if self.closing.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// A data message encoded once for every receiver; the simple-client frame and the protobuf
/// encodings are built on first use.
pub struct Delivery<'a> {
    json: Utf8Bytes,
    data: Payload,
    group: Option<&'a str>,
    raw: OnceLock<RawFrame>,
    /// `DataMessage` fields without a sequence id.
    protobuf_inner: OnceLock<Bytes>,
    /// The whole frame for non-reliable protobuf receivers.
    protobuf_frame: OnceLock<Bytes>,
}

enum RawFrame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl<'a> Delivery<'a> {
    /// Encodes `data` as a `message` from `origin`.
    pub fn new(origin: &Origin<'a>, data: Payload) -> Delivery<'a> {
        let json = protocol::encode_message(origin, &data);
        Delivery::encoded(origin, data, json)
    }

    /// Encodes a stream fragment or terminal frame for JSON receivers (stream frames reach
    /// no other kind of connection).
    pub fn stream(
        origin: &Origin<'a>,
        data: Payload,
        meta: &protocol::StreamMeta<'_>,
    ) -> Delivery<'a> {
        let json = protocol::encode_stream_message(origin, &data, meta);
        Delivery::encoded(origin, data, json)
    }

    fn encoded(origin: &Origin<'a>, data: Payload, json: String) -> Delivery<'a> {
        let group = match origin {
            Origin::Group { group, .. } => Some(*group),
            Origin::Server => None,
        };
        Delivery {
            json: Utf8Bytes::from(json),
            data,
            group,
            raw: OnceLock::new(),
            protobuf_inner: OnceLock::new(),
            protobuf_frame: OnceLock::new(),
        }
    }

    /// The frame a simple client gets: text for text/JSON, binary otherwise.
    fn raw(&self) -> &RawFrame {
        self.raw.get_or_init(|| match self.data.text() {
            Some(t) => RawFrame::Text(Utf8Bytes::from(t.into_owned())),
            None => RawFrame::Binary(self.data.raw_bytes()),
        })
    }

    fn protobuf_inner(&self) -> &Bytes {
        self.protobuf_inner.get_or_init(|| {
            let raw: &[u8] = match self.raw() {
                RawFrame::Text(t) => t.as_bytes(),
                RawFrame::Binary(b) => b,
            };
            Bytes::from(protobuf::encode_data_inner(
                self.group,
                self.data.data_type(),
                raw,
            ))
        })
    }

    fn protobuf_frame(&self) -> &Bytes {
        self.protobuf_frame
            .get_or_init(|| protobuf::encode_data(self.protobuf_inner(), None))
    }
}

/// A control message, encoded per protocol by [`Session::control`].
pub enum Control<'a> {
    Ack {
        ack_id: u64,
        error: Option<(&'a str, &'a str)>,
    },
    Pong,
    Disconnected(&'a str),
}

struct Transport {
    tx: UnboundedSender<Outbound>,
    link: Arc<Link>,
    generation: u64,
}

impl Transport {
    /// Hands the transport its last command.
    fn finish(self, last: Outbound) -> bool {
        match last {
            Outbound::Cut => {
                self.link.fire();
                true
            }
            close @ Outbound::Close(..) => {
                let queued = self.send(close);
                self.link.request_close();
                queued
            }
            other => self.send(other),
        }
    }

    fn send(&self, o: Outbound) -> bool {
        self.push(o).is_some()
    }

    /// Queues `o`; the bytes now queued, `None` when the transport is gone.
    fn push(&self, o: Outbound) -> Option<usize> {
        let queued = self.link.pushed(o.cost());
        self.tx.send(o).ok().map(|_| queued)
    }
}

struct State {
    transport: Option<Transport>,
    generation: u64,
    next_sequence_id: u64,
    buffer: VecDeque<(u64, Body)>,
    buffered_bytes: usize,
    ack_ids: AckIds,
    ended: bool,
}

impl State {
    /// Marks the session ended, forgets its buffer and lets go of its transport.
    fn end(&mut self) -> Option<Transport> {
        self.ended = true;
        self.buffer.clear();
        self.buffered_bytes = 0;
        self.transport.take()
    }
}

/// Result of offering a data message to a session.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliverOutcome {
    Delivered,
    /// A bound was exceeded: the session has ended (reliable buffer overflow: 1008; outbound
    /// queue over its limit: cut) and must be removed, for this reason.
    Overflow(&'static str),
}

/// One logical connection.
pub struct Session {
    pub id: String,
    pub hub: String,
    pub user_id: Option<String>,
    pub kind: Kind,
    /// Subprotocol echoed in the handshake.
    pub subprotocol: Option<String>,
    pub reconnection_token: Option<String>,
    pub groups: Mutex<BTreeSet<String>>,
    /// Replaced as a whole on every change, so checks run on a snapshot outside the lock.
    permissions: Mutex<Arc<Permissions>>,
    /// `ce-connectionState` set by upstream handlers.
    pub connection_state: Mutex<Option<String>>,
    /// Highest sequence id written to a socket: a `sequenceAck` cannot go beyond it.
    sent: Arc<AtomicU64>,
    /// Highest sequence id acknowledged (clamped to `sent`).
    acked: Arc<AtomicU64>,
    state: Mutex<State>,
    /// Group streams this connection publishes.
    pub streams: Mutex<Streams>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random URL-safe id of `bytes` random bytes.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

impl Session {
    pub fn new(
        id: String,
        hub: &str,
        user_id: Option<String>,
        kind: Kind,
        subprotocol: Option<String>,
        permissions: Permissions,
    ) -> Session {
        let reliable = matches!(kind, Kind::JsonReliable | Kind::ProtobufReliable);
        Session {
            id,
            hub: hub.to_string(),
            user_id,
            kind,
            subprotocol,
            reconnection_token: reliable.then(|| random_id(32)),
            groups: Mutex::new(BTreeSet::new()),
            permissions: Mutex::new(Arc::new(permissions)),
            connection_state: Mutex::new(None),
            sent: Arc::default(),
            acked: Arc::default(),
            state: Mutex::new(State {
                transport: None,
                generation: 0,
                next_sequence_id: 1,
                buffer: VecDeque::new(),
                buffered_bytes: 0,
                ack_ids: AckIds::new(MAX_REMEMBERED_ACK_IDS),
                ended: false,
            }),
            streams: Mutex::default(),
        }
    }

    pub fn is_reliable(&self) -> bool {
        matches!(self.kind, Kind::JsonReliable | Kind::ProtobufReliable)
    }

    pub fn is_protobuf(&self) -> bool {
        matches!(self.kind, Kind::Protobuf | Kind::ProtobufReliable)
    }

    /// A control frame in this session's protocol; `None` for simple clients.
    pub fn control(&self, c: Control<'_>) -> Option<Outbound> {
        if self.is_simple() {
            return None;
        }
        Some(if self.is_protobuf() {
            Outbound::Binary(match c {
                Control::Ack { ack_id, error } => protobuf::encode_ack(ack_id, error),
                Control::Pong => protobuf::encode_pong(),
                Control::Disconnected(reason) => protobuf::encode_disconnected(reason),
            })
        } else {
            Outbound::Text(Utf8Bytes::from(match c {
                Control::Ack { ack_id, error } => protocol::encode_ack(ack_id, error),
                Control::Pong => protocol::encode_pong(),
                Control::Disconnected(reason) => protocol::encode_disconnected(reason),
            }))
        })
    }

    /// Sends a control message now (not buffered, no sequence id).
    pub fn send(&self, c: Control<'_>) {
        if let Some(o) = self.control(c) {
            self.send_control(o);
        }
    }

    pub fn is_simple(&self) -> bool {
        matches!(self.kind, Kind::Simple(_))
    }

    /// The `connected` frame for this session (`None` for simple clients).
    fn connected_frame(&self) -> Option<Outbound> {
        let (user, token) = (self.user_id.as_deref(), self.reconnection_token.as_deref());
        match self.kind {
            Kind::Simple(_) => None,
            Kind::Json | Kind::JsonReliable => Some(Outbound::Text(Utf8Bytes::from(
                protocol::encode_connected(&self.id, user, token),
            ))),
            Kind::Protobuf | Kind::ProtobufReliable => Some(Outbound::Binary(
                protobuf::encode_connected(&self.id, user, token),
            )),
        }
    }

    /// Installs a new transport, replacing (cutting) any previous one. The `connected` frame
    /// goes first, then (reliable) every unacknowledged message in order. `None` when the
    /// session has ended.
    pub fn attach(&self, tx: UnboundedSender<Outbound>, link: Arc<Link>) -> Option<u64> {
        let mut st = lock(&self.state);
        if st.ended {
            return None;
        }
        st.generation += 1;
        let generation = st.generation;
        if let Some(old) = st.transport.take() {
            old.finish(Outbound::Cut);
        }
        let t = Transport {
            tx,
            link,
            generation,
        };
        if let Some(c) = self.connected_frame() {
            t.send(c);
        }
        for (seq, body) in &st.buffer {
            t.send(Outbound::Sequenced(*seq, body.clone()));
        }
        st.transport = Some(t);
        Some(generation)
    }

    /// Removes the transport if it is still `generation`; true when it was current.
    pub fn detach(&self, generation: u64) -> bool {
        let mut st = lock(&self.state);
        match &st.transport {
            Some(t) if t.generation == generation => {
                st.transport = None;
                true
            }
            _ => false,
        }
    }

    /// Whether a transport is attached.
    pub fn is_attached(&self) -> bool {
        lock(&self.state).transport.is_some()
    }

    /// Current transport generation (changes on every attach).
    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    pub fn is_ended(&self) -> bool {
        lock(&self.state).ended
    }

    /// Marks the session ended; true if it was not already. Sends `last` to the transport
    /// (if any) and forgets it.
    pub fn end(&self, last: Option<Outbound>) -> bool {
        let mut st = lock(&self.state);
        let first = !st.ended;
        if let (Some(t), Some(o)) = (st.end(), last) {
            t.finish(o);
        }
        first
    }

    /// Sends a control frame (ack, pong, system) now; not buffered, no sequence id.
    pub fn send_control(&self, frame: Outbound) {
        let st = lock(&self.state);
        if let Some(t) = &st.transport {
            let _ = t.send(frame);
        }
    }

    /// Sends a frame that is not a control answer to this client's own request (a group-state
    /// push), under the outbound bound data messages have: a client that does not read is cut
    /// at [`OUTBOUND_LIMIT_BYTES`].
    pub fn send_bounded(&self, frame: Outbound) -> DeliverOutcome {
        let mut st = lock(&self.state);
        if st.ended {
            return DeliverOutcome::Delivered;
        }
        let queued = st.transport.as_ref().and_then(|t| t.push(frame));
        if queued.is_some_and(|q| q > OUTBOUND_LIMIT_BYTES) {
            if let Some(t) = st.end() {
                t.finish(Outbound::Cut);
            }
            return DeliverOutcome::Overflow("Outbound queue overflowed.");
        }
        DeliverOutcome::Delivered
    }

    /// Sends a close frame through the current transport (the session itself is untouched).
    pub fn close_transport(&self, code: u16, reason: &str) -> bool {
        let mut st = lock(&self.state);
        match st.transport.take() {
            Some(t) => t.finish(Outbound::Close(code, reason.to_string())),
            None => false,
        }
    }

    /// Runs `f` on the current transport's link; false when no transport is attached.
    pub fn with_link(&self, f: impl FnOnce(&Link)) -> bool {
        let st = lock(&self.state);
        match &st.transport {
            Some(t) => {
                f(&t.link);
                true
            }
            None => false,
        }
    }

    /// Cuts the current transport without a close frame.
    pub fn cut_transport(&self) -> bool {
        let mut st = lock(&self.state);
        match st.transport.take() {
            Some(t) => t.finish(Outbound::Cut),
            None => false,
        }
    }

    /// Offers a data message; reliable sessions number and buffer it.
    pub fn deliver(&self, d: &Delivery) -> DeliverOutcome {
        let mut st = lock(&self.state);
        if st.ended {
            return DeliverOutcome::Delivered;
        }
        let frame = match &self.kind {
            Kind::JsonReliable | Kind::ProtobufReliable => {
                let seq = st.next_sequence_id;
                st.next_sequence_id += 1;
                let body = if self.kind == Kind::JsonReliable {
                    Body::Json(d.json.clone())
                } else {
                    Body::Protobuf(d.protobuf_inner().clone())
                };
                st.buffered_bytes += body.len();
                st.buffer.push_back((seq, body.clone()));
                // Attached, the writer enforces the message window on what it writes (see
                // `Link::window_open`); detached, everything buffered waits for recovery.
                let window_full = st.transport.is_none() && st.buffer.len() > MAX_BUFFERED_MESSAGES;
                if window_full || st.buffered_bytes > MAX_BUFFERED_BYTES {
                    if let Some(t) = st.end() {
                        let reason = "Reliable message buffer overflowed";
                        if let Some(o) = self.control(Control::Disconnected(reason)) {
                            t.send(o);
                        }
                        t.finish(Outbound::Close(1008, "buffer overflow".into()));
                    }
                    return DeliverOutcome::Overflow("Reliable message buffer overflowed.");
                }
                Outbound::Sequenced(seq, body)
            }
            Kind::Json => Outbound::Text(d.json.clone()),
            Kind::Protobuf => Outbound::Binary(d.protobuf_frame().clone()),
            Kind::Simple(_) => match d.raw() {
                RawFrame::Text(s) => Outbound::Text(s.clone()),
                RawFrame::Binary(b) => Outbound::Binary(b.clone()),
            },
        };
        let queued = st.transport.as_ref().and_then(|t| t.push(frame));
        if queued.is_some_and(|q| q > OUTBOUND_LIMIT_BYTES) {
            // The client does not read what it is sent: a close frame would wait behind all
            // of it, so the connection is cut.
            if let Some(t) = st.end() {
                t.finish(Outbound::Cut);
            }
            return DeliverOutcome::Overflow("Outbound queue overflowed.");
        }
        DeliverOutcome::Delivered
    }

    /// Cumulative `sequenceAck`: drops every buffered message up to `sequence_id`, but not
    /// beyond what was written to the client (acknowledging more cannot empty the buffer of
    /// messages a client never read).
    pub fn sequence_ack(&self, sequence_id: u64) {
        let sequence_id = sequence_id.min(self.sent.load(Ordering::Acquire));
        self.acked.fetch_max(sequence_id, Ordering::AcqRel);
        let mut st = lock(&self.state);
        if let Some(t) = &st.transport {
            t.link.ack_arrived();
        }
        while let Some((seq, body)) = st.buffer.front() {
            if *seq > sequence_id {
                break;
            }
            let len = body.len();
            st.buffer.pop_front();
            st.buffered_bytes -= len;
        }
    }

    /// Whether `ack_id` already succeeded on this session.
    pub fn is_duplicate(&self, ack_id: u64) -> bool {
        lock(&self.state).ack_ids.contains(ack_id)
    }

    /// Records a successfully executed `ack_id`.
    pub fn remember_ack(&self, ack_id: u64) {
        lock(&self.state).ack_ids.insert(ack_id);
    }

    pub fn group_list(&self) -> Vec<String> {
        lock(&self.groups).iter().cloned().collect()
    }

    /// The current permissions. Wildcard matching on them may take a while for long names, so
    /// callers get a snapshot instead of holding the lock REST grants and revokes need.
    pub fn permissions(&self) -> Arc<Permissions> {
        lock(&self.permissions).clone()
    }

    /// Changes the permissions (REST grant / revoke).
    pub fn update_permissions(&self, change: impl FnOnce(&mut Permissions)) {
        let mut p = lock(&self.permissions);
        change(Arc::make_mut(&mut p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    fn session(kind: Kind) -> Session {
        Session::new("c".into(), "h", None, kind, None, Permissions::default())
    }

    /// Attaches a transport nobody writes out; returns its queue (after `connected`).
    fn attached(s: &Session) -> (Arc<Link>, UnboundedReceiver<Outbound>) {
        let (tx, mut rx) = unbounded_channel();
        let link = Arc::new(Link::new(s));
        s.attach(tx, link.clone()).unwrap();
        if !s.is_simple() {
            rx.try_recv().expect("connected frame");
        }
        (link, rx)
    }

    fn buffered(s: &Session) -> usize {
        lock(&s.state).buffer.len()
    }

    #[tokio::test]
    async fn link_backlog_pauses_until_drained() {
        let link = Arc::new(Link::default());
        link.pushed(OUTBOUND_PAUSE_BYTES + 1);
        assert!(link.is_backlogged());
        let waiter = tokio::spawn({
            let link = link.clone();
            async move { link.drained().await }
        });
        link.popped(OUTBOUND_PAUSE_BYTES + 1 - OUTBOUND_RESUME_BYTES);
        assert!(!link.is_backlogged());
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("drained wakes the reader")
            .unwrap();
        let fired = tokio::spawn({
            let link = link.clone();
            async move { link.fired(Half::Writer).await }
        });
        link.fire();
        tokio::time::timeout(Duration::from_secs(5), fired)
            .await
            .expect("fire wakes waiters")
            .unwrap();
        assert!(link.is_fired());
    }

    #[tokio::test]
    async fn a_queued_close_wakes_the_writer() {
        let s = session(Kind::Json);
        let (link, _rx) = attached(&s);
        let requested = tokio::spawn({
            let link = link.clone();
            async move { link.close_requested().await }
        });
        assert!(s.close_transport(1000, "bye"));
        tokio::time::timeout(Duration::from_secs(5), requested)
            .await
            .expect("close request wakes the writer")
            .unwrap();
    }

    #[test]
    fn ack_id_cache_forgets_the_oldest_beyond_its_limit() {
        let s = session(Kind::Json);
        for id in 0..=MAX_REMEMBERED_ACK_IDS as u64 {
            s.remember_ack(id);
        }
        assert!(!s.is_duplicate(0));
        assert!(s.is_duplicate(1));
        assert!(s.is_duplicate(MAX_REMEMBERED_ACK_IDS as u64));
    }

    #[test]
    fn reliable_delivery_numbers_buffers_and_overflows() {
        let s = session(Kind::JsonReliable);
        let (link, mut rx) = attached(&s);
        let d = Delivery::new(&Origin::Server, Payload::Text("x".into()));
        s.deliver(&d);
        match rx.try_recv() {
            Ok(Outbound::Sequenced(1, body)) => match body.frame(1) {
                Message::Text(t) => {
                    assert!(t
                        .as_str()
                        .starts_with(r#"{"sequenceId":1,"type":"message""#))
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        link.sent(1);
        s.sequence_ack(1);
        assert_eq!(buffered(&s), 0);
        // Queued for the writer but not written: not part of the window.
        for _ in 0..MAX_BUFFERED_MESSAGES + 500 {
            assert_eq!(s.deliver(&d), DeliverOutcome::Delivered);
        }
        assert!(!s.is_ended(), "unwritten messages do not count");
        // The writer may write up to the window past the last ack, not one more.
        let last = 1 + MAX_BUFFERED_MESSAGES as u64;
        for seq in 2..=last {
            assert!(link.window_open(seq), "{seq}");
            link.sent(seq);
        }
        assert!(!link.window_open(last + 1));
    }

    #[tokio::test]
    async fn a_full_window_waits_for_an_ack_then_overflows() {
        let s = Arc::new(session(Kind::JsonReliable));
        let (link, _rx) = attached(&s);
        let d = Delivery::new(&Origin::Server, Payload::Text("x".into()));
        let window = MAX_BUFFERED_MESSAGES as u64;
        for seq in 1..=window + 1 {
            s.deliver(&d);
            if seq <= window {
                link.sent(seq);
            }
        }
        // An acknowledgement while the writer waits opens the window.
        let waiter = tokio::spawn({
            let link = link.clone();
            async move {
                link.window_opened(window + 1, Duration::from_secs(60))
                    .await
            }
        });
        s.sequence_ack(1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the ack wakes the writer")
            .unwrap();
        assert!(!link.is_overflowed());
        assert!(link.window_open(window + 1));
        link.sent(window + 1);
        // No acknowledgement within the grace: overflowed, and nothing more may be written.
        assert!(!link.window_open(window + 2));
        link.window_opened(window + 2, Duration::from_millis(10))
            .await;
        assert!(link.is_overflowed());
        s.sequence_ack(window + 1);
        assert!(!link.window_open(window + 2), "an overflow is final");
        tokio::time::timeout(Duration::from_secs(5), link.window_overflowed())
            .await
            .expect("the reader sees the overflow");
    }

    #[test]
    fn a_writer_waiting_for_an_ack_does_not_pause_the_reader() {
        let link = Link::default();
        link.pushed(OUTBOUND_PAUSE_BYTES + 1);
        assert!(link.is_backlogged());
        link.awaiting_ack.store(true, Ordering::Release);
        assert!(
            !link.is_backlogged(),
            "the reader must see the client's acks"
        );
    }

    #[test]
    fn acks_move_the_window() {
        let s = session(Kind::JsonReliable);
        let (link, _rx) = attached(&s);
        let d = Delivery::new(&Origin::Server, Payload::Text("x".into()));
        let total = 5 * MAX_BUFFERED_MESSAGES as u64;
        for seq in 1..=total {
            assert_eq!(s.deliver(&d), DeliverOutcome::Delivered);
            assert!(link.window_open(seq), "{seq}");
            link.sent(seq);
            if seq % 100 == 0 {
                s.sequence_ack(seq);
            }
        }
        assert_eq!(buffered(&s), 0);
        assert!(!s.is_ended());
    }

    #[test]
    fn detached_sessions_buffer_the_window_then_overflow() {
        let s = session(Kind::JsonReliable);
        let (link, _rx) = attached(&s);
        let d = Delivery::new(&Origin::Server, Payload::Text("x".into()));
        let generation = s.generation();
        assert!(s.detach(generation));
        drop(link);
        for _ in 0..MAX_BUFFERED_MESSAGES {
            assert_eq!(s.deliver(&d), DeliverOutcome::Delivered);
        }
        assert!(matches!(s.deliver(&d), DeliverOutcome::Overflow(_)));
        assert!(s.is_ended());
    }

    #[test]
    fn sequence_ack_cannot_pass_what_was_written() {
        let s = session(Kind::JsonReliable);
        let (link, _rx) = attached(&s);
        let d = Delivery::new(&Origin::Server, Payload::Text("x".into()));
        for _ in 0..5 {
            s.deliver(&d);
        }
        link.sent(2);
        s.sequence_ack(u64::MAX);
        assert_eq!(buffered(&s), 3);
        // Acknowledging everything does not open the window past what was read.
        let limit = 2 + MAX_BUFFERED_MESSAGES as u64;
        assert!(link.window_open(limit));
        assert!(!link.window_open(limit + 1));
    }

    #[test]
    fn receivers_share_one_encoded_body() {
        let body = Payload::Text("y".repeat(1 << 20));
        let d = Delivery::new(&Origin::Server, body);
        let addr = |o: Outbound| match o {
            Outbound::Sequenced(_, Body::Json(t)) | Outbound::Text(t) => t.as_str().as_ptr(),
            Outbound::Sequenced(_, Body::Protobuf(b)) | Outbound::Binary(b) => b.as_ptr(),
            other => panic!("{other:?}"),
        };
        for kind in [
            Kind::JsonReliable,
            Kind::ProtobufReliable,
            Kind::Json,
            Kind::Protobuf,
        ] {
            let (a, b) = (session(kind.clone()), session(kind.clone()));
            let ((_la, mut ra), (_lb, mut rb)) = (attached(&a), attached(&b));
            a.deliver(&d);
            b.deliver(&d);
            let (pa, pb) = (addr(ra.try_recv().unwrap()), addr(rb.try_recv().unwrap()));
            assert_eq!(pa, pb, "{kind:?}");
        }
    }

    #[test]
    fn a_connection_that_does_not_read_is_cut_at_the_outbound_limit() {
        for kind in [
            Kind::Json,
            Kind::Protobuf,
            Kind::Simple(SimpleMode::SendEvent),
        ] {
            let s = session(kind.clone());
            let (link, _rx) = attached(&s);
            let d = Delivery::new(&Origin::Server, Payload::Text("z".repeat(1 << 20)));
            let mut delivered = 0;
            while s.deliver(&d) == DeliverOutcome::Delivered {
                delivered += 1;
                assert!(delivered <= OUTBOUND_LIMIT_BYTES >> 20, "{kind:?}");
            }
            assert!(
                delivered >= (OUTBOUND_LIMIT_BYTES >> 20) - 1,
                "{kind:?}: {delivered}"
            );
            assert!(s.is_ended() && link.is_fired(), "{kind:?}");
        }
    }
}
