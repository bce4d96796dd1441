//! The client engine and its public API.

mod ack;
mod actor;
pub mod backlog;
mod command;
pub mod event;
mod groups;
mod invoke;
mod keepalive;
pub mod offline;
pub mod options;
pub(crate) mod provider_pool;
mod proxy;
pub mod retry;
mod sequence;
pub mod state;
pub mod stats;
pub mod stream;
pub(crate) mod stream_rx;
mod transport;
pub mod url;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use crate::error::Error;
use crate::protocol::{AnyCodec, Codec, EncodeError, Frame, Payload, Request};

pub use backlog::Backlog;
use command::{Command, Outbound, OutboundKind};
pub use event::{ClientId, Event, EventHandler};
pub use offline::OfflineQueue;
pub use options::{ClientCert, ClientOptions, Protocol};
pub use provider_pool::PROVIDER_THREADS;
pub use retry::{RetryMode, RetryPolicy};
pub use state::ConnectionState;
pub use stats::Stats;
pub use stream::{GroupStream, StreamOptions};
pub(crate) use transport::user_agent;

/// For `crate::fuzzing`: parses an upgrade response (with a fixed key and subprotocol).
#[cfg(fuzzing)]
pub(crate) fn fuzz_upgrade_response(data: &[u8]) -> Result<Option<usize>, Error> {
    transport::check_upgrade_response(data, "dGhlIHNhbXBsZSBub25jZQ==", "json.webpubsub.azure.v1")
}

/// For `crate::fuzzing`: checks a proxy's answer to `CONNECT`.
#[cfg(fuzzing)]
pub(crate) fn fuzz_connect_response(data: &[u8]) -> Result<(), Error> {
    proxy::check_connect_response(data)
}

/// For `crate::fuzzing`: parses a proxy URL.
#[cfg(fuzzing)]
pub(crate) fn fuzz_proxy_url(text: &str) -> Result<(), Error> {
    proxy::Proxy::parse(text).map(drop)
}

/// Where the client access URL comes from.
#[derive(Clone)]
pub enum Credential {
    /// A fixed client access URL (`ws://` or `wss://`, with `access_token`).
    Url(String),
    /// Called for every new connection (start, reconnect) to get a fresh client access URL.
    Provider(Arc<dyn Fn() -> Result<String, String> + Send + Sync>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Url(u) => f.debug_tuple("Url").field(&crate::log::redact(u)).finish(),
            Credential::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// Per-send options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// The ack id to use; `None` allocates a new one. Reuse an id from an error to retry
    /// idempotently.
    pub ack_id: Option<u64>,
    /// Do not deliver the message back to this connection (send-to-group only).
    pub no_echo: bool,
    /// No ack on the wire; resolves once the frame is queued for writing (see
    /// [`ClientOptions::fire_and_forget_buffer`]).
    pub fire_and_forget: bool,
}

/// A successful acked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOk {
    /// The ack id the operation used (0 for fire-and-forget).
    pub ack_id: u64,
    /// The service had already processed this ack id (`Duplicate`): the operation took effect
    /// once, earlier.
    pub duplicated: bool,
}

/// The largest ack id a caller may pass (2^63 - 1). Automatic ids are allocated above every
/// id a caller used, so at least 2^63 automatic ids remain: more than a process can allocate
/// (at a billion a second, 292 years), which is why the allocator never wraps.
pub const MAX_ACK_ID: u64 = i64::MAX as u64;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// State the engine task publishes and the handles read.
pub(crate) struct Shared {
    pub(crate) state: state::StateCell,
    pub(crate) connection_id: Mutex<Option<String>>,
    pub(crate) groups: groups::GroupRegistry,
    /// Groups whose state this client subscribed to, to be resubscribed on a new connection.
    pub(crate) group_states: groups::GroupRegistry,
    pub(crate) counters: stats::Counters,
    next_ack_id: AtomicU64,
}

impl Shared {
    pub(crate) fn next_ack_id(&self) -> u64 {
        self.next_ack_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn frame_to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::Text(t.into()),
        Frame::Binary(b) => Message::Binary(b.into()),
    }
}

/// A Web PubSub client. Cheap to clone; all clones drive the same connection. The engine task
/// ends when the last clone is dropped (closing the connection).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    id: ClientId,
    pid: u32,
    /// Shared with the engine task.
    options: Arc<ClientOptions>,
    codec: AnyCodec,
    shared: Arc<Shared>,
    cmd_tx: actor::InboxSender,
    next_invocation_id: AtomicU64,
    /// Fire-and-forget frames accepted but not yet written.
    buffered: Arc<std::sync::atomic::AtomicUsize>,
    /// The offline queue's accounting, when it is on.
    offline: Option<Arc<offline::OfflineRoom>>,
}

/// One acked operation in flight, counted in the statistics until dropped.
struct Inflight(Arc<Shared>);

impl Inflight {
    fn new(shared: &Arc<Shared>) -> Inflight {
        stats::bump(&shared.counters.inflight_acks);
        Inflight(shared.clone())
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0
            .counters
            .inflight_acks
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How an acked operation gets room in the offline queue when no connection is usable.
pub(crate) enum Room {
    /// Wait for room up to `ack_timeout` (blocking callers, the Rust API).
    Wait,
    /// Already decided by the caller ([`Client::reserve_offline`]): a slot, or none needed.
    /// Retries that find no connection take room at once or fail with `QueueFull`.
    Held(Option<offline::OfflineSlot>),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.inner.id.0)
            .field("state", &self.state())
            .field("connection_id", &self.connection_id())
            .finish()
    }
}

impl Client {
    /// A client that reports events to `handler`. Nothing connects until [`Client::start`].
    /// The engine task runs on the shared runtime ([`crate::runtime`]).
    pub fn new(
        credential: Credential,
        options: ClientOptions,
        handler: Arc<dyn EventHandler>,
    ) -> Client {
        let id = ClientId(NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed));
        let shared = Arc::new(Shared {
            state: state::StateCell::new(ConnectionState::Stopped),
            connection_id: Mutex::new(None),
            groups: groups::GroupRegistry::default(),
            group_states: groups::GroupRegistry::default(),
            counters: stats::Counters::default(),
            next_ack_id: AtomicU64::new(1),
        });
        let (cmd_tx, cmd_rx) = actor::inbox();
        let codec = options.protocol.codec();
        let options = Arc::new(options);
        let offline = options.offline_queue.map(offline::OfflineRoom::new);
        let actor = actor::Actor::new(
            id,
            credential,
            options.clone(),
            handler,
            shared.clone(),
            cmd_rx,
        );
        let run = Box::new(actor).run();
        crate::wps_log!(
            Verbose,
            "client {}: engine task state is {} bytes",
            id.0,
            std::mem::size_of_val(&run)
        );
        crate::runtime::spawn(run);
        Client {
            inner: Arc::new(Inner {
                id,
                pid: crate::runtime::current_pid(),
                options,
                codec,
                shared,
                cmd_tx,
                next_invocation_id: AtomicU64::new(1),
                buffered: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
                offline,
            }),
        }
    }

    /// A client whose events arrive on the returned channel.
    pub fn with_channel(
        credential: Credential,
        options: ClientOptions,
    ) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = Client::new(credential, options, Arc::new(event::ChannelHandler(tx)));
        (client, rx)
    }

    /// This client's id (as passed to the event handler).
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    /// The options the client was created with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The current state of the connection state machine.
    pub fn state(&self) -> ConnectionState {
        self.inner.shared.state.get()
    }

    fn check_process(&self) -> Result<(), Error> {
        if crate::runtime::forked_since(self.inner.pid) {
            return Err(Error::connection(
                "this client was created before the process forked and cannot be used",
            ));
        }
        Ok(())
    }

    fn command(&self, cmd: Command) -> Result<(), Error> {
        self.inner
            .cmd_tx
            .send(cmd)
            .map_err(|_| Error::Stopped { ack_id: None })
    }

    /// Connects; resolves when the socket is open and the `connected` message arrived (at most
    /// `start_timeout`). A failed first connection attempt is returned, not retried.
    /// `AlreadyStarted` if a session is running.
    pub async fn start(&self) -> Result<(), Error> {
        self.check_process()?;
        let (tx, rx) = oneshot::channel();
        self.command(Command::Start(tx))?;
        rx.await.unwrap_or(Err(Error::Stopped { ack_id: None }))
    }

    /// Stops: cancels recovery, reconnects and pending operations (they fail with `Stopped`),
    /// closes with 1000, then reports `Disconnected` and `Stopped`. Idempotent.
    pub async fn stop(&self) -> Result<(), Error> {
        self.check_process()?;
        let (tx, rx) = oneshot::channel();
        if self.command(Command::Stop(tx)).is_err() {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }

    /// A snapshot of the client's counters and state (a few relaxed atomic loads).
    pub fn stats(&self) -> Stats {
        self.inner.shared.counters.snapshot(self.state())
    }

    /// Whether a connection is currently established (not recovering).
    pub fn is_connected(&self) -> bool {
        self.state() == ConnectionState::Connected
    }

    /// The current connection id, if connected.
    pub fn connection_id(&self) -> Option<String> {
        self.inner
            .shared
            .connection_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Allocates a fresh ack id.
    pub fn next_ack_id(&self) -> u64 {
        self.inner.shared.next_ack_id()
    }

    /// The caller's ack id (later automatic ids are allocated above it, so they never
    /// collide with it), or a fresh one. A caller's id must be at most [`MAX_ACK_ID`] or one
    /// this client allocated earlier (a retry): automatic ids must always have room above
    /// every id a caller chose.
    pub(crate) fn ack_id_for(&self, given: Option<u64>) -> Result<u64, Error> {
        let next = &self.inner.shared.next_ack_id;
        match given {
            Some(id) if id > MAX_ACK_ID && id >= next.load(Ordering::Relaxed) => {
                Err(Error::InvalidArgument(format!(
                    "ack id {id} is above the largest ack id a caller may choose \
                     ({MAX_ACK_ID}) and was not allocated by this client"
                )))
            }
            Some(id) => {
                next.fetch_max(id.saturating_add(1), Ordering::Relaxed);
                Ok(id)
            }
            None => Ok(self.next_ack_id()),
        }
    }

    fn encode(&self, request: &Request<'_>) -> Result<Message, Error> {
        let frame = self.inner.codec.encode(request).map_err(|e| match e {
            EncodeError::InvalidPayload(m) | EncodeError::Unsupported(m) => {
                Error::InvalidArgument(m)
            }
        })?;
        let size = match &frame {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        };
        let limit = self.inner.options.max_message_size;
        if size > limit {
            return Err(Error::PayloadTooLarge { size, limit });
        }
        Ok(frame_to_message(frame))
    }

    /// Room in the offline queue for an operation of `bytes` payload bytes, taken now: `None`
    /// when none is needed (the queue is off, or the client is connected), `QueueFull` when
    /// there is none.
    pub(crate) fn reserve_offline(
        &self,
        bytes: usize,
    ) -> Result<Option<offline::OfflineSlot>, Error> {
        match &self.inner.offline {
            Some(room) if !self.is_connected() => room.reserve_now(bytes).map(Some),
            _ => Ok(None),
        }
    }

    /// Room in the offline queue, waiting for it up to `ack_timeout` when the queue is full.
    async fn wait_for_room(&self, bytes: usize) -> Result<Option<offline::OfflineSlot>, Error> {
        match &self.inner.offline {
            Some(room) if !self.is_connected() => room
                .reserve_within(bytes, self.inner.options.ack_timeout)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Sends an acked operation, retrying per `message_retry` with the same ack id.
    async fn acked(
        &self,
        ack_id: u64,
        frame: Message,
        bytes: usize,
        room: Room,
    ) -> Result<AckOk, Error> {
        let _inflight = Inflight::new(&self.inner.shared);
        let backoff = retry::Backoff::new(self.inner.options.message_retry.clone());
        // Retries of an operation that took its room up front do not wait for room either.
        let waits = matches!(room, Room::Wait);
        let result = self
            .acked_with_retries(ack_id, frame, bytes, Some(room), waits, backoff)
            .await;
        self.record_outcome(&result);
        result
    }

    /// Counts how an acked operation ended.
    fn record_outcome(&self, result: &Result<AckOk, Error>) {
        let counters = &self.inner.shared.counters;
        match result {
            Ok(ok) => {
                stats::bump(&counters.acks_ok);
                if ok.duplicated {
                    stats::bump(&counters.duplicates);
                }
            }
            Err(_) => stats::bump(&counters.acks_failed),
        }
    }

    /// Attempts an acked operation until it succeeds or fails for good. `first` is the room
    /// of the first attempt (`None`: take it as a retry does); later attempts wait for room
    /// when `waits`, else take it at once or fail with `QueueFull`.
    async fn acked_with_retries(
        &self,
        ack_id: u64,
        frame: Message,
        bytes: usize,
        mut first: Option<Room>,
        waits: bool,
        mut backoff: retry::Backoff,
    ) -> Result<AckOk, Error> {
        loop {
            let slot = match first.take() {
                Some(Room::Held(slot)) => Ok(slot),
                Some(Room::Wait) => self.wait_for_room(bytes).await,
                None if waits => self.wait_for_room(bytes).await,
                None => self.reserve_offline(bytes),
            }
            .map_err(|e| e.with_ack_id(ack_id))?;
            let (tx, rx) = oneshot::channel();
            self.command(self.acked_command(ack_id, frame.clone(), tx.into(), slot))
                .map_err(|e| e.with_ack_id(ack_id))?;
            let result = rx.await.unwrap_or(Err(Error::Stopped {
                ack_id: Some(ack_id),
            }));
            let error = match result {
                Ok(ok) => return Ok(ok),
                Err(e) => e.with_ack_id(ack_id),
            };
            let Some(delay) = self.retry_delay(ack_id, &error, &mut backoff) else {
                return Err(error);
            };
            self.pause_before_retry(ack_id, delay).await?;
        }
    }

    /// The engine command of one attempt; the engine enforces the deadline (no timer per
    /// operation on this side).
    fn acked_command(
        &self,
        ack_id: u64,
        frame: Message,
        reply: command::AckReply,
        slot: Option<offline::OfflineSlot>,
    ) -> Command {
        let deadline = tokio::time::Instant::now() + self.inner.options.ack_timeout;
        Command::Send(Outbound {
            frame,
            kind: OutboundKind::Acked {
                ack_id,
                reply,
                deadline,
            },
            slot,
        })
    }

    /// After a failed attempt: the delay before the next one (counted and logged), or `None`
    /// when the error is final.
    fn retry_delay(
        &self,
        ack_id: u64,
        error: &Error,
        backoff: &mut retry::Backoff,
    ) -> Option<Duration> {
        // `NotConnected` comes from a client that is not started: nothing connects again
        // unless the application starts it, so waiting for a retry would not help.
        if !error.is_retryable() || matches!(error, Error::NotConnected { .. }) {
            return None;
        }
        // A client that is not started (an operation queued offline before `start` timed
        // out) does not connect by itself: waiting for a retry would not help.
        if self.state() == ConnectionState::Stopped {
            return None;
        }
        let delay = backoff.next_delay()?;
        stats::bump(&self.inner.shared.counters.retries);
        crate::wps_log!(
            Info,
            "client {}: retrying ack id {} in {:?} after: {}",
            self.inner.id.0,
            ack_id,
            delay,
            error
        );
        Some(delay)
    }

    /// Waits `delay`, or fails with `Stopped` when the client stops meanwhile.
    async fn pause_before_retry(&self, ack_id: u64, delay: Duration) -> Result<(), Error> {
        let stopped = self.inner.shared.state.wait_for(ConnectionState::Stopped);
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stopped => Err(Error::Stopped { ack_id: Some(ack_id) }),
        }
    }

    /// An acked operation whose outcome goes to `done` exactly once, called by the engine
    /// where the outcome is decided (the ack decoded, the deadline passed, the session ended):
    /// no task runs per operation. Only an attempt that fails in a way worth retrying (per
    /// `message_retry`) continues in a task. `slot` is the operation's room in the offline
    /// queue, taken by the caller; retries take theirs at once or fail with `QueueFull`.
    /// `done` runs on an engine thread and must not block; if the engine goes away without
    /// an outcome, `done` is dropped uncalled (its owner's `Drop` reports that).
    pub(crate) fn acked_then(
        &self,
        ack_id: u64,
        frame: Message,
        bytes: usize,
        slot: Option<offline::OfflineSlot>,
        done: Box<dyn FnOnce(Result<AckOk, Error>) + Send + Sync>,
    ) {
        let inflight = Inflight::new(&self.inner.shared);
        let client = self.clone();
        let retry_frame = frame.clone();
        let finish = move |client: &Client, result: Result<AckOk, Error>| {
            client.record_outcome(&result);
            drop(inflight);
            done(result);
        };
        let reply = command::AckReply::Call(Box::new(move |result| {
            let error = match result {
                Ok(ok) => return finish(&client, Ok(ok)),
                Err(e) => e.with_ack_id(ack_id),
            };
            let mut backoff = retry::Backoff::new(client.inner.options.message_retry.clone());
            let Some(delay) = client.retry_delay(ack_id, &error, &mut backoff) else {
                return finish(&client, Err(error));
            };
            crate::runtime::spawn(async move {
                let result = match client.pause_before_retry(ack_id, delay).await {
                    Err(e) => Err(e),
                    Ok(()) => {
                        client
                            .acked_with_retries(ack_id, retry_frame, bytes, None, false, backoff)
                            .await
                    }
                };
                finish(&client, result);
            });
        }));
        // A refused command drops the reply uncalled (see above): the engine is gone.
        let _ = self.command(self.acked_command(ack_id, frame, reply, slot));
    }

    /// The frame of an acked `sendToGroup` (with `group`) or `event` (named `event`), checked
    /// and encoded as by the awaited forms, for [`Client::acked_then`].
    pub(crate) fn acked_send_frame(
        &self,
        group: Option<&str>,
        event: &str,
        payload: &Payload,
        ack_id: u64,
        no_echo: bool,
    ) -> Result<Message, Error> {
        self.check_process()?;
        let request = match group {
            Some(group) => {
                check_name("group", group)?;
                Request::SendToGroup {
                    group,
                    payload,
                    ack_id: Some(ack_id),
                    no_echo,
                }
            }
            None => {
                check_name("event", event)?;
                Request::Event {
                    event,
                    payload,
                    ack_id: Some(ack_id),
                }
            }
        };
        self.encode(&request)
    }

    /// Writes a frame without an ack; resolves once it is flushed to the socket (or handed
    /// to the fire-and-forget buffer). With the offline queue on and no usable connection the
    /// frame takes room in the queue (`room`, as for acked operations) and waits there, in
    /// order with the other operations, for a connection, at most `ack_timeout`.
    async fn fire_and_forget(
        &self,
        frame: Message,
        bytes: usize,
        room: Room,
    ) -> Result<AckOk, Error> {
        let connected = self.is_connected();
        let limit = self.inner.options.fire_and_forget_buffer;
        if connected && limit > 0 {
            if let Some(slot) = command::BufferSlot::try_take(&self.inner.buffered, limit) {
                self.command(Command::Send(Outbound {
                    frame,
                    kind: OutboundKind::Buffered { slot },
                    slot: None,
                }))?;
                return Ok(AckOk {
                    ack_id: 0,
                    duplicated: false,
                });
            }
        }
        let slot = match room {
            Room::Held(slot) => slot,
            Room::Wait => self.wait_for_room(bytes).await?,
        };
        // While connected the engine writes at once (or fails the connection when the write
        // stalls), so no deadline is needed; a queued write waits at most `ack_timeout`, and
        // the engine enforces it (so a frame is never written after its caller gave up).
        let deadline = (!connected || slot.is_some())
            .then(|| tokio::time::Instant::now() + self.inner.options.ack_timeout);
        let (tx, rx) = oneshot::channel();
        self.command(Command::Send(Outbound {
            frame,
            kind: OutboundKind::FireAndForget {
                reply: tx,
                deadline,
            },
            slot,
        }))?;
        match rx.await {
            Err(_) if self.state() == ConnectionState::Stopped => {
                Err(Error::Stopped { ack_id: None })
            }
            Err(_) => Err(Error::connection(
                "the connection failed before the message was written",
            )),
            Ok(r) => r.map(|()| AckOk {
                ack_id: 0,
                duplicated: false,
            }),
        }
    }

    /// Joins a group; acked. The group is rejoined after a reconnect once this succeeded.
    pub async fn join_group(&self, group: &str, ack_id: Option<u64>) -> Result<AckOk, Error> {
        self.join_group_with(group, ack_id, Room::Wait).await
    }

    pub(crate) async fn join_group_with(
        &self,
        group: &str,
        ack_id: Option<u64>,
        room: Room,
    ) -> Result<AckOk, Error> {
        self.check_process()?;
        check_name("group", group)?;
        let id = self.ack_id_for(ack_id)?;
        let frame = self.encode(&Request::JoinGroup {
            group,
            ack_id: Some(id),
        })?;
        let ok = self.acked(id, frame, group.len(), room).await?;
        self.inner.shared.groups.joined(group);
        Ok(ok)
    }

    /// Leaves a group; acked.
    pub async fn leave_group(&self, group: &str, ack_id: Option<u64>) -> Result<AckOk, Error> {
        self.leave_group_with(group, ack_id, Room::Wait).await
    }

    pub(crate) async fn leave_group_with(
        &self,
        group: &str,
        ack_id: Option<u64>,
        room: Room,
    ) -> Result<AckOk, Error> {
        self.check_process()?;
        check_name("group", group)?;
        let id = self.ack_id_for(ack_id)?;
        let frame = self.encode(&Request::LeaveGroup {
            group,
            ack_id: Some(id),
        })?;
        let ok = self.acked(id, frame, group.len(), room).await?;
        self.inner.shared.groups.left(group);
        Ok(ok)
    }

    /// Sends a message to a group (acked unless `fire_and_forget`).
    pub async fn send_to_group(
        &self,
        group: &str,
        payload: Payload,
        opts: SendOptions,
    ) -> Result<AckOk, Error> {
        self.send_to_group_with(group, payload, opts, Room::Wait)
            .await
    }

    pub(crate) async fn send_to_group_with(
        &self,
        group: &str,
        payload: Payload,
        opts: SendOptions,
        room: Room,
    ) -> Result<AckOk, Error> {
        self.check_process()?;
        check_name("group", group)?;
        if opts.fire_and_forget {
            let frame = self.encode(&Request::SendToGroup {
                group,
                payload: &payload,
                ack_id: None,
                no_echo: opts.no_echo,
            })?;
            return self.fire_and_forget(frame, payload.data.len(), room).await;
        }
        let id = self.ack_id_for(opts.ack_id)?;
        let frame = self.encode(&Request::SendToGroup {
            group,
            payload: &payload,
            ack_id: Some(id),
            no_echo: opts.no_echo,
        })?;
        let bytes = payload.data.len();
        self.acked(id, frame, bytes, room).await
    }

    /// Sets this connection's state in a group (a JSON object of strings), or clears it with
    /// `None`; acked. Subscribers of the group's state receive the change.
    pub async fn set_group_state(
        &self,
        group: &str,
        state_json: Option<&str>,
        ack_id: Option<u64>,
    ) -> Result<AckOk, Error> {
        self.set_group_state_with(group, state_json, ack_id, Room::Wait)
            .await
    }

    pub(crate) async fn set_group_state_with(
        &self,
        group: &str,
        state_json: Option<&str>,
        ack_id: Option<u64>,
        room: Room,
    ) -> Result<AckOk, Error> {
        self.check_process()?;
        check_name("group", group)?;
        let id = self.ack_id_for(ack_id)?;
        let frame = self.encode(&Request::SetGroupState {
            group,
            state_json,
            ack_id: Some(id),
        })?;
        let bytes = state_json.map_or(0, str::len);
        self.acked(id, frame, bytes, room).await
    }

    /// Subscribes to a group's state; acked, then a snapshot arrives as
    /// [`Event::GroupState`], followed by updates. The subscription is renewed on a new
    /// connection once this succeeded.
    pub async fn subscribe_group_state(
        &self,
        group: &str,
        ack_id: Option<u64>,
    ) -> Result<AckOk, Error> {
        self.group_state_subscription_with(group, true, ack_id, Room::Wait)
            .await
    }

    /// Ends a subscription to a group's state; acked.
    pub async fn unsubscribe_group_state(
        &self,
        group: &str,
        ack_id: Option<u64>,
    ) -> Result<AckOk, Error> {
        self.group_state_subscription_with(group, false, ack_id, Room::Wait)
            .await
    }

    pub(crate) async fn group_state_subscription_with(
        &self,
        group: &str,
        subscribe: bool,
        ack_id: Option<u64>,
        room: Room,
    ) -> Result<AckOk, Error> {
        self.check_process()?;
        check_name("group", group)?;
        let id = self.ack_id_for(ack_id)?;
        let request = if subscribe {
            Request::SubscribeGroupState {
                group,
                ack_id: Some(id),
            }
        } else {
            Request::UnsubscribeGroupState {
                group,
                ack_id: Some(id),
            }
        };
        let frame = self.encode(&request)?;
        let ok = self.acked(id, frame, group.len(), room).await?;
        if subscribe {
            self.inner.shared.group_states.joined(group);
        } else {
            self.inner.shared.group_states.left(group);
        }
        Ok(ok)
    }

    /// Sends a custom event to the upstream (acked unless `fire_and_forget`).
    pub async fn send_event(
        &self,
        event: &str,
        payload: Payload,
        opts: SendOptions,
    ) -> Result<AckOk, Error> {
        self.send_event_with(event, payload, opts, Room::Wait).await
    }

    pub(crate) async fn send_event_with(
        &self,
        event: &str,
        payload: Payload,
        opts: SendOptions,
        room: Room,
    ) -> Result<AckOk, Error> {
        self.check_process()?;
        check_name("event", event)?;
        if opts.fire_and_forget {
            let frame = self.encode(&Request::Event {
                event,
                payload: &payload,
                ack_id: None,
            })?;
            return self.fire_and_forget(frame, payload.data.len(), room).await;
        }
        let id = self.ack_id_for(opts.ack_id)?;
        let frame = self.encode(&Request::Event {
            event,
            payload: &payload,
            ack_id: Some(id),
        })?;
        let bytes = payload.data.len();
        self.acked(id, frame, bytes, room).await
    }

    /// Invokes an upstream event and waits for its response (`timeout` defaults to
    /// `ack_timeout`). On timeout a `cancelInvocation` is sent. Not retried.
    pub async fn invoke_event(
        &self,
        event: &str,
        payload: Payload,
        timeout: Option<Duration>,
    ) -> Result<Payload, Error> {
        self.check_process()?;
        check_name("event", event)?;
        let id = self
            .inner
            .next_invocation_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let frame = self.encode(&Request::Invoke {
            invocation_id: &id,
            event,
            payload: Some(&payload),
        })?;
        let (tx, rx) = oneshot::channel();
        self.command(Command::Invoke {
            id: id.clone(),
            frame,
            reply: tx,
        })?;
        let wait = timeout.unwrap_or(self.inner.options.ack_timeout);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Stopped { ack_id: None }),
            Err(_) => {
                if let Ok(cancel) = self.encode(&Request::CancelInvocation { invocation_id: &id }) {
                    let _ = self.command(Command::CancelInvoke { id, frame: cancel });
                }
                Err(Error::Timeout { ack_id: None })
            }
        }
    }
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(Error::InvalidArgument(format!("the {what} name is empty")));
    }
    if name.len() > 1024 {
        return Err(Error::InvalidArgument(format!(
            "the {what} name is longer than 1024 bytes"
        )));
    }
    Ok(())
}
