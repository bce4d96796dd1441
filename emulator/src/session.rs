//! One logical client connection: identity, groups, permissions, and (on the reliable
//! subprotocols) sequence ids, the replay buffer and the ackId dedupe cache. A session outlives
//! its transport while it is recoverable. Frames are encoded here for the session's protocol.

use crate::ack_ids::AckIds;
use crate::protobuf;
use crate::protocol::{self, Origin, Payload};
use crate::roles::Permissions;
use axum::extract::ws::Utf8Bytes;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::collections::{BTreeSet, VecDeque};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use tokio::sync::mpsc::UnboundedSender;

/// Unacknowledged messages kept for recovery before the connection is closed.
pub const MAX_BUFFERED_MESSAGES: usize = 1000;
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
    /// Send a close frame with this code and reason, then end the transport.
    Close(u16, String),
    /// Cut the TCP connection without a close frame (fires the transport's [`Link`] cut
    /// rather than queueing, so it also interrupts a writer blocked on a stuck client).
    Cut,
}

/// Outbound frames queued for one transport above which its reader stops reading the client
/// (a client that never reads cannot make the emulator queue without bound)...
pub const BACKLOG_HIGH: usize = 65_536;
/// ...until the writer has brought the queue down to this.
pub const BACKLOG_LOW: usize = 16_384;

/// Which half of a transport waits on a [`Link`].
#[derive(Clone, Copy)]
pub enum Half {
    Reader,
    Writer,
}

/// Shared by the session and the two halves of one transport: the cut signal (drop the
/// socket at once) and the size of the outbound queue. Each half has its own waker slot, so
/// waiting costs an atomic register per poll rather than a lock.
#[derive(Default)]
pub struct Link {
    fired: AtomicBool,
    queued: AtomicUsize,
    /// Woken when fired and when the queue drains below [`BACKLOG_LOW`].
    reader: AtomicWaker,
    /// Woken when fired.
    writer: AtomicWaker,
}

impl Link {
    /// Counts a frame put on the queue.
    fn pushed(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` frames taken off the queue by the writer.
    pub fn popped(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) <= BACKLOG_LOW && before > BACKLOG_LOW {
            self.reader.wake();
        }
    }

    /// Whether the reader should pause.
    pub fn is_backlogged(&self) -> bool {
        self.queued.load(Ordering::Acquire) > BACKLOG_HIGH
    }

    /// Completes once the queue is at or below [`BACKLOG_LOW`] (waited on by the reader).
    pub fn drained(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            self.reader.register(cx.waker());
            if self.queued.load(Ordering::Acquire) <= BACKLOG_LOW {
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
}

/// A data message encoded once for every receiver; the simple-client frame and the protobuf
/// body are built on first use.
pub struct Delivery<'a> {
    json: Utf8Bytes,
    data: Payload,
    group: Option<&'a str>,
    raw: OnceLock<RawFrame>,
    protobuf: OnceLock<Vec<u8>>,
}

enum RawFrame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl<'a> Delivery<'a> {
    /// Encodes `data` as a `message` from `origin`.
    pub fn new(origin: &Origin<'a>, data: Payload) -> Delivery<'a> {
        let json = Utf8Bytes::from(protocol::encode_message(origin, &data));
        let group = match origin {
            Origin::Group { group, .. } => Some(*group),
            Origin::Server => None,
        };
        Delivery {
            json,
            data,
            group,
            raw: OnceLock::new(),
            protobuf: OnceLock::new(),
        }
    }

    /// The frame a simple client gets: text for text/JSON, binary otherwise.
    fn raw(&self) -> &RawFrame {
        self.raw.get_or_init(|| match self.data.text() {
            Some(t) => RawFrame::Text(Utf8Bytes::from(t.into_owned())),
            None => RawFrame::Binary(self.data.raw_bytes()),
        })
    }

    fn protobuf_inner(&self) -> &[u8] {
        self.protobuf.get_or_init(|| {
            let raw: &[u8] = match self.raw() {
                RawFrame::Text(t) => t.as_bytes(),
                RawFrame::Binary(b) => b,
            };
            protobuf::encode_data_inner(self.group, self.data.data_type(), raw)
        })
    }
}

/// A frame kept for replay.
#[derive(Clone)]
enum Frame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    fn outbound(&self) -> Outbound {
        match self {
            Frame::Text(t) => Outbound::Text(t.clone()),
            Frame::Binary(b) => Outbound::Binary(b.clone()),
        }
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
            other => self.send(other),
        }
    }

    fn send(&self, o: Outbound) -> bool {
        self.link.pushed();
        self.tx.send(o).is_ok()
    }
}

struct State {
    transport: Option<Transport>,
    generation: u64,
    next_sequence_id: u64,
    buffer: VecDeque<(u64, Frame)>,
    buffered_bytes: usize,
    ack_ids: AckIds,
    ended: bool,
}

/// Result of offering a data message to a session.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliverOutcome {
    Delivered,
    /// The reliable buffer overflowed: the session was closed with 1008 and must be removed.
    Overflow,
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
    state: Mutex<State>,
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
            state: Mutex::new(State {
                transport: None,
                generation: 0,
                next_sequence_id: 1,
                buffer: VecDeque::new(),
                buffered_bytes: 0,
                ack_ids: AckIds::new(MAX_REMEMBERED_ACK_IDS),
                ended: false,
            }),
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
        if let Some(c) = self.connected_frame() {
            link.pushed();
            let _ = tx.send(c);
        }
        for (_, frame) in &st.buffer {
            link.pushed();
            let _ = tx.send(frame.outbound());
        }
        st.transport = Some(Transport {
            tx,
            link,
            generation,
        });
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
        st.ended = true;
        st.buffer.clear();
        st.buffered_bytes = 0;
        if let Some(t) = st.transport.take() {
            if let Some(o) = last {
                t.finish(o);
            }
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

    /// Sends a close frame through the current transport (the session itself is untouched).
    pub fn close_transport(&self, code: u16, reason: &str) -> bool {
        let mut st = lock(&self.state);
        match st.transport.take() {
            Some(t) => t.finish(Outbound::Close(code, reason.to_string())),
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
                let frame = if self.kind == Kind::JsonReliable {
                    Frame::Text(Utf8Bytes::from(protocol::with_sequence_id(
                        d.json.as_str(),
                        seq,
                    )))
                } else {
                    Frame::Binary(protobuf::encode_data(d.protobuf_inner(), Some(seq)))
                };
                st.buffered_bytes += frame.len();
                st.buffer.push_back((seq, frame.clone()));
                if st.buffer.len() > MAX_BUFFERED_MESSAGES || st.buffered_bytes > MAX_BUFFERED_BYTES
                {
                    st.ended = true;
                    st.buffer.clear();
                    st.buffered_bytes = 0;
                    if let Some(t) = st.transport.take() {
                        let reason = "Reliable message buffer overflowed";
                        if let Some(o) = self.control(Control::Disconnected(reason)) {
                            let _ = t.send(o);
                        }
                        let _ = t.send(Outbound::Close(1008, "buffer overflow".into()));
                    }
                    return DeliverOutcome::Overflow;
                }
                frame.outbound()
            }
            Kind::Json => Outbound::Text(d.json.clone()),
            Kind::Protobuf => Outbound::Binary(protobuf::encode_data(d.protobuf_inner(), None)),
            Kind::Simple(_) => match d.raw() {
                RawFrame::Text(s) => Outbound::Text(s.clone()),
                RawFrame::Binary(b) => Outbound::Binary(b.clone()),
            },
        };
        if let Some(t) = &st.transport {
            let _ = t.send(frame);
        }
        DeliverOutcome::Delivered
    }

    /// Cumulative `sequenceAck`: drops every buffered message up to `sequence_id`.
    pub fn sequence_ack(&self, sequence_id: u64) {
        let mut st = lock(&self.state);
        while let Some((seq, frame)) = st.buffer.front() {
            if *seq > sequence_id {
                break;
            }
            let len = frame.len();
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

    fn session(kind: Kind) -> Session {
        Session::new("c".into(), "h", None, kind, None, Permissions::default())
    }

    #[tokio::test]
    async fn link_backlog_pauses_until_drained() {
        let link = Arc::new(Link::default());
        for _ in 0..=BACKLOG_HIGH {
            link.pushed();
        }
        assert!(link.is_backlogged());
        let waiter = tokio::spawn({
            let link = link.clone();
            async move { link.drained().await }
        });
        link.popped(BACKLOG_HIGH + 1 - BACKLOG_LOW);
        assert!(!link.is_backlogged());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("drained wakes the reader")
            .unwrap();
        let fired = tokio::spawn({
            let link = link.clone();
            async move { link.fired(Half::Writer).await }
        });
        link.fire();
        tokio::time::timeout(std::time::Duration::from_secs(5), fired)
            .await
            .expect("fire wakes waiters")
            .unwrap();
        assert!(link.is_fired());
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
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        s.attach(tx, Arc::new(Link::default())).unwrap();
        let d = Delivery::new(&Origin::Server, Payload::Text("x".into()));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Text(t)) if t.as_str().contains("connected")));
        s.deliver(&d);
        match rx.try_recv() {
            Ok(Outbound::Text(t)) => assert!(t
                .as_str()
                .starts_with(r#"{"sequenceId":1,"type":"message""#)),
            other => panic!("{other:?}"),
        }
        s.sequence_ack(1);
        for _ in 0..MAX_BUFFERED_MESSAGES {
            assert_eq!(s.deliver(&d), DeliverOutcome::Delivered);
        }
        assert_eq!(s.deliver(&d), DeliverOutcome::Overflow);
        assert!(s.is_ended());
    }
}
