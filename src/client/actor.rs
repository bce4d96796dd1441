//! The engine task: one per client, owning the WebSocket. It runs the connection state machine
//! (connect, recovery, reconnect, stop), resolves acks, de-duplicates sequence ids, sends
//! `sequenceAck`s and pings, and hands events to the application's handler.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::ack::AckTracker;
use super::command::{Command, Outbound, OutboundKind};
use super::invoke::InvokeTracker;
use super::retry::Backoff;
use super::sequence::SequenceTracker;
use super::state::ConnectionState;
use super::stats;
use super::transport::Socket;
use super::{Credential, Shared};
use crate::client::{ClientId, ClientOptions, Event, EventHandler};
use crate::error::Error;
use crate::protocol::{AnyCodec, Codec};
use crate::wps_log;

mod connect;
mod inbox;
mod socket;
mod streams;

pub(crate) use inbox::{inbox, Inbox, InboxSender};

use socket::close_gracefully;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Frames written before one flush when many operations are queued at once.
const WRITE_BATCH: usize = 128;
/// How long a stop waits for the service to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a connection must stay usable before it counts as proven: only then does the
/// reconnect backoff start over, and only then does a later drop begin a new recovery episode
/// (with a fresh `recovery_timeout` and an immediate first attempt). A service that accepts
/// and then drops every connection therefore meets the retry policy's delays and limits
/// instead of an immediate retry per drop.
pub(super) const PROVEN_AFTER: Duration = Duration::from_secs(5);
/// Recoveries that may start at once within one episode when a recovered connection worked
/// and then dropped again before it proved itself: a short series of drops (a load balancer
/// moving connections, a flaky hop) is recovered without waiting, while a service that
/// answers and then drops every connection meets `recovery_interval` after these few.
pub(super) const QUICK_RECOVERIES: u32 = 3;

/// One recovery episode: from the drop of a proven connection until a recovered connection
/// proves itself again, or until the deadline.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecoveryEpisode {
    /// `recovery_timeout` after the drop that started the episode.
    pub(super) deadline: Instant,
    /// The earliest start of the next attempt (attempts are `recovery_interval` apart).
    pub(super) next_attempt: Instant,
    /// The connection was proven when it dropped (then a failed recovery reconnects at once).
    pub(super) after_proven: bool,
    /// Immediate recoveries left for drops of a recovered, working connection
    /// (see [`QUICK_RECOVERIES`]).
    pub(super) quick_left: u32,
}

/// The result of running something while still serving commands.
enum Guarded<T> {
    Done(T),
    /// Stop was requested (or every client handle was dropped).
    Stopped,
}

/// Why one socket stopped being driven.
enum DriveEnd {
    Stop,
    /// The service closed the socket (with this code, if any).
    Closed {
        code: Option<u16>,
        reason: String,
    },
    /// The transport failed or ended without a close frame.
    Failed(String),
    /// No inbound frame within the keep-alive timeout.
    Dead,
    /// The `connected` message did not arrive in time, or the service broke the protocol
    /// before it.
    NotReady(Error),
    /// The connection cannot go on and recovering it would bring the same condition back
    /// (an inbound message over the size limit, a frame that breaks the WebSocket protocol, a
    /// broken sequence): the session is abandoned, closed with `close`.
    Fatal {
        reason: String,
        close: CloseCode,
    },
}

/// How a connection (including its recoveries) ended.
enum ConnEnd {
    Stopped,
    /// Lost. `connected` is false when the `connected` message never arrived; `proven` is
    /// true when the connection had stayed usable for [`PROVEN_AFTER`].
    Lost {
        connected: bool,
        proven: bool,
        error: Error,
    },
}

pub(crate) struct Actor {
    id: ClientId,
    credential: Credential,
    options: Arc<ClientOptions>,
    codec: AnyCodec,
    handler: Arc<dyn EventHandler>,
    shared: Arc<Shared>,
    cmd_rx: Inbox,
    acks: AckTracker,
    invokes: InvokeTracker,
    /// Operations waiting for a usable connection.
    queue: VecDeque<Outbound>,
    /// Commands taken off the channel while batching writes, handled next.
    deferred: VecDeque<Command>,
    seq: SequenceTracker,
    tls: Option<Arc<rustls::ClientConfig>>,
    stop_waiters: Vec<oneshot::Sender<()>>,
    start_reply: Option<oneshot::Sender<Result<(), Error>>>,
    /// Whether `Connected` was reported in this session (then `Stopped` ends it).
    session_connected: bool,
    url: Option<url::Url>,
    connection_id: Option<String>,
    reconnection_token: Option<String>,
    last_disconnected: Option<String>,
    /// Close reason of the first drop of the current loss episode (kept across recovery
    /// attempts until traffic flows again).
    loss_reason: Option<String>,
    /// The current recovery episode, if a drop started one that has not ended.
    episode: Option<RecoveryEpisode>,
    /// When the current socket became usable (`connected` arrived, or the service answered
    /// on a recovered socket); `None` until then.
    usable_since: Option<Instant>,
    /// Why the engine ended the session by itself (retries exhausted, reconnect off).
    give_up: Option<String>,
    /// Reused list of fire-and-forget senders waiting for a flush.
    written: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Buffer slots of fire-and-forget frames fed since the last flush.
    buffered: Vec<super::command::BufferSlot>,
    /// A URL provider call that timed out (or outlived a stop) and has not returned yet.
    late_provider: Option<oneshot::Receiver<super::provider_pool::Outcome>>,
    /// `Recovering` was reported and neither `Recovered` nor the end of the connection
    /// followed yet.
    recovering_reported: bool,
    /// When the last unanswered ping was written (for the round-trip statistic).
    ping_sent_at: Option<Instant>,
    /// The handler's bound on messages not yet handled (see `EventHandler::backlog`).
    backlog: Option<Arc<super::backlog::Backlog>>,
    /// Group streams this client publishes.
    out_streams: super::stream::OutStreams,
    /// Group streams this client receives.
    rx_streams: super::stream_rx::RxStreams,
}

impl Actor {
    pub(crate) fn new(
        id: ClientId,
        credential: Credential,
        options: Arc<ClientOptions>,
        handler: Arc<dyn EventHandler>,
        shared: Arc<Shared>,
        cmd_rx: Inbox,
    ) -> Actor {
        let codec = options.protocol.codec();
        let backlog = handler.backlog();
        let rx_streams = super::stream_rx::RxStreams::new(
            options.stream_from_start_only,
            options.stream_idle_timeout,
            options.max_receive_streams,
        );
        Actor {
            id,
            credential,
            options,
            codec,
            handler,
            shared,
            cmd_rx,
            acks: AckTracker::default(),
            invokes: InvokeTracker::default(),
            queue: VecDeque::new(),
            deferred: VecDeque::new(),
            seq: SequenceTracker::default(),
            tls: None,
            stop_waiters: Vec::new(),
            start_reply: None,
            session_connected: false,
            url: None,
            connection_id: None,
            reconnection_token: None,
            last_disconnected: None,
            loss_reason: None,
            episode: None,
            usable_since: None,
            give_up: None,
            written: Vec::new(),
            buffered: Vec::new(),
            late_provider: None,
            recovering_reported: false,
            ping_sent_at: None,
            backlog,
            out_streams: super::stream::OutStreams::default(),
            rx_streams,
        }
    }

    /// Serves sessions until every client handle is gone. Takes the engine boxed: an async
    /// fn keeps its by-value arguments twice in its state, and this state lives as long as
    /// the client.
    pub(crate) async fn run(mut self: Box<Self>) {
        while let Some(reply) = self.idle().await {
            let id = self.id.0;
            let session = Box::pin(self.session(reply));
            wps_log!(
                Verbose,
                "client {}: session state is {} bytes",
                id,
                std::mem::size_of_val(&*session)
            );
            session.await;
            if self.cmd_rx.is_closed() && self.deferred.is_empty() {
                break;
            }
        }
        wps_log!(Verbose, "client {} engine task ends", self.id.0);
    }

    /// Waits for `start` while stopped. With the offline queue on, acked operations and the
    /// fire-and-forget sends that took room in it wait here (under their deadlines) for the
    /// first connection.
    async fn idle(&mut self) -> Option<oneshot::Sender<Result<(), Error>>> {
        loop {
            let cmd = match self.deferred.pop_front() {
                Some(c) => c,
                None if self.queue.is_empty() => self.cmd_rx.recv().await?,
                None => {
                    let period = self.housekeeping_period();
                    match tokio::time::timeout(period, self.cmd_rx.recv()).await {
                        Ok(cmd) => cmd?,
                        Err(_) => {
                            self.housekeeping();
                            continue;
                        }
                    }
                }
            };
            match cmd {
                Command::Start(reply) => return Some(reply),
                Command::Stop(reply) => {
                    let queued = std::mem::take(&mut self.queue);
                    self.publish_queue();
                    for o in queued {
                        o.reject(Error::Stopped { ack_id: None });
                    }
                    let _ = reply.send(());
                }
                Command::Send(o)
                    if self.options.offline_queue.is_some()
                        && (o.slot.is_some() || matches!(o.kind, OutboundKind::Acked { .. })) =>
                {
                    let c = &self.shared.counters;
                    stats::bump(&c.queued_messages);
                    stats::add(&c.queued_bytes, frame_len(&o.frame) as u64);
                    self.queue.push_back(o);
                }
                Command::Send(o) => o.reject(Error::NotConnected { ack_id: None }),
                Command::Stream(cmd) => self.stream_command_waiting(cmd),
                Command::Invoke { reply, .. } => {
                    let _ = reply.send(Err(Error::NotConnected { ack_id: None }));
                }
                Command::CancelInvoke { .. } => {}
            }
        }
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.state.set(state);
    }

    /// Publishes the size of the queue of operations waiting for a connection.
    pub(super) fn publish_queue(&self) {
        let bytes: usize = self.queue.iter().map(|o| frame_len(&o.frame)).sum();
        let c = &self.shared.counters;
        c.queued_messages.store(
            self.queue.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        c.queued_bytes
            .store(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts an operation frame written to the socket.
    pub(super) fn count_sent(&self, frame: &tokio_tungstenite::tungstenite::Message) {
        let c = &self.shared.counters;
        stats::bump(&c.messages_sent);
        stats::add(&c.bytes_sent, frame_len(frame) as u64);
    }

    fn emit(&self, event: Event) {
        let handler = &self.handler;
        let id = &self.id;
        // A panicking handler must not take the connection down with it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.on_event(id, event)))
            .is_err()
        {
            wps_log!(Error, "client {}: the event handler panicked", self.id.0);
        }
    }

    /// One session: from `start` to `Stopped`.
    async fn session(&mut self, start_reply: oneshot::Sender<Result<(), Error>>) {
        self.start_reply = Some(start_reply);
        self.session_connected = false;
        let mut backoff = Backoff::with_jitter(
            self.options.reconnect_retry.clone(),
            self.options.reconnect_jitter_percent,
            super::retry::Rng::from_global(),
        );
        let start_deadline = Instant::now() + self.options.start_timeout;
        // Why the session ends without a stop request, reported with `Stopped`.
        let mut give_up: Option<String> = None;
        loop {
            self.set_state(ConnectionState::Connecting);
            let starting = self.start_reply.is_some();
            let deadline = if starting {
                start_deadline
            } else {
                Instant::now() + self.options.connect_timeout
            };
            let opened = match Box::pin(self.open_new(deadline)).await {
                Guarded::Stopped => break,
                Guarded::Done(r) => r,
            };
            let end = match opened {
                Ok(socket) => {
                    self.seq.reset();
                    self.loss_reason = None;
                    self.connection_id = None;
                    self.reconnection_token = None;
                    self.last_disconnected = None;
                    Box::pin(self.run_connection(socket, deadline)).await
                }
                Err(error) => ConnEnd::Lost {
                    connected: false,
                    proven: false,
                    error,
                },
            };
            match end {
                ConnEnd::Stopped => break,
                ConnEnd::Lost {
                    connected,
                    proven,
                    error,
                } => {
                    if let Some(reply) = self.start_reply.take() {
                        wps_log!(Warning, "client {}: start failed: {}", self.id.0, error);
                        let _ = reply.send(Err(error.clone()));
                        Box::pin(self.end_session(error)).await;
                        return;
                    }
                    if !connected {
                        wps_log!(Warning, "client {}: reconnect failed: {}", self.id.0, error);
                    }
                    if !self.options.auto_reconnect {
                        give_up = Some(format!(
                            "connection lost and auto-reconnect is off: {error}"
                        ));
                        break;
                    }
                    if proven {
                        backoff.reset();
                    }
                    let Some(delay) = backoff.next_reconnect_delay() else {
                        let reason = format!(
                            "reconnect retries exhausted ({} retries): {error}",
                            self.options.reconnect_retry.max_retries
                        );
                        wps_log!(Warning, "client {}: {}", self.id.0, reason);
                        give_up = Some(reason);
                        break;
                    };
                    if delay.is_zero() {
                        continue;
                    }
                    self.set_state(ConnectionState::Disconnected);
                    // Boxed (as the rarely taken paths below): the state of a session that is
                    // connected and idle stays small.
                    let pause = Box::pin(self.guard(tokio::time::sleep(delay)));
                    if let Guarded::Stopped = pause.await {
                        break;
                    }
                }
            }
        }
        if let Some(reply) = self.start_reply.take() {
            let _ = reply.send(Err(Error::Stopped { ack_id: None }));
        }
        self.give_up = give_up;
        Box::pin(self.end_session(Error::Stopped { ack_id: None })).await;
    }

    /// Fails everything still waiting, reports `Stopped` if the session had connected, and
    /// answers `stop` callers.
    async fn end_session(&mut self, error: Error) {
        self.set_state(ConnectionState::Stopping);
        let fail = match error {
            Error::Stopped { .. } => Error::Stopped { ack_id: None },
            _ => Error::NotConnected { ack_id: None },
        };
        self.acks.fail_all(&fail);
        self.invokes.fail_all(&fail);
        self.end_streams(
            &stream_closed("Stopped", "the client stopped"),
            "Stopped",
            "the client stopped before the stream ended",
        );
        let queued = std::mem::take(&mut self.queue);
        self.publish_queue();
        for o in queued {
            o.reject(fail.clone());
        }
        self.connection_id = None;
        self.reconnection_token = None;
        *self
            .shared
            .connection_id
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.set_state(ConnectionState::Stopped);
        if self.session_connected {
            self.session_connected = false;
            wps_log!(Info, "client {}: stopped", self.id.0);
            let reason = self.give_up.take();
            self.emit(Event::Stopped { reason });
        }
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    /// How often operation deadlines are checked: a quarter of the ack timeout, between
    /// 10 ms and 1 s. An ack timeout is reported at most this much late.
    pub(super) fn housekeeping_period(&self) -> Duration {
        (self.options.ack_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Fails operations past their deadline (queued or sent) and reports expired rejoins.
    pub(super) fn housekeeping(&mut self) {
        let now = Instant::now();
        let queued = std::mem::take(&mut self.queue);
        let mut expired = Vec::new();
        for o in queued {
            if o.abandoned() {
                continue;
            }
            if o.is_expired(now) {
                expired.push(o);
            } else {
                self.queue.push_back(o);
            }
        }
        // The queue's size is published before the expired callers hear of it.
        self.publish_queue();
        for o in expired {
            let _ = o.expire(now);
        }
        for (rejoin, error) in self.acks.prune() {
            self.rejoin_failed(rejoin, error);
        }
    }

    /// Runs `fut` while serving commands: sends are queued, `stop` interrupts.
    async fn guard<F: Future>(&mut self, fut: F) -> Guarded<F::Output> {
        tokio::pin!(fut);
        let period = self.housekeeping_period();
        let mut housekeeping = tokio::time::interval_at(Instant::now() + period, period);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(cmd) = self.deferred.pop_front() {
                if self.command_while_waiting(cmd) {
                    return Guarded::Stopped;
                }
                continue;
            }
            let waiting = !self.queue.is_empty() || !self.acks.is_empty();
            tokio::select! {
                out = &mut fut => return Guarded::Done(out),
                _ = housekeeping.tick(), if waiting => self.housekeeping(),
                cmd = self.cmd_rx.recv() => {
                    let stop = match cmd {
                        None => true,
                        Some(cmd) => self.command_while_waiting(cmd),
                    };
                    if stop {
                        return Guarded::Stopped;
                    }
                }
            }
        }
    }

    /// Handles a command while no connection is usable. Returns true for stop.
    fn command_while_waiting(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Stop(reply) => {
                self.stop_waiters.push(reply);
                true
            }
            Command::Start(reply) => {
                let _ = reply.send(Err(Error::AlreadyStarted));
                false
            }
            Command::Send(o) => {
                self.enqueue(o);
                false
            }
            Command::Stream(cmd) => {
                self.stream_command_waiting(cmd);
                false
            }
            Command::Invoke { reply, .. } => {
                let _ = reply.send(Err(Error::NotConnected { ack_id: None }));
                false
            }
            Command::CancelInvoke { .. } => false,
        }
    }

    /// Puts an operation in the queue of those waiting for a usable connection.
    pub(super) fn enqueue(&mut self, o: Outbound) {
        // Callers that timed out are dropped now and then, not on every push.
        if self.queue.len() >= 1024 && self.queue.len().is_power_of_two() {
            self.queue.retain(|o| !o.abandoned());
            self.publish_queue();
        }
        let c = &self.shared.counters;
        stats::bump(&c.queued_messages);
        stats::add(&c.queued_bytes, frame_len(&o.frame) as u64);
        self.queue.push_back(o);
    }

    /// Whether `o` must wait in the queue although a socket is open: the socket is a recovery
    /// the service has not accepted yet, and `o` (or one queued before it) is a
    /// fire-and-forget frame from the offline queue. A refused recovery would lose such a
    /// frame, which no ack would bring back; acked frames are tracked and sent again.
    pub(super) fn holds_back(&self, o: &Outbound) -> bool {
        self.usable_since.is_none()
            && (!self.queue.is_empty()
                || (o.slot.is_some() && !matches!(o.kind, OutboundKind::Acked { .. })))
    }

    /// Drives a new connection and its recoveries until it is lost for good or stopped.
    async fn run_connection(&mut self, socket: Socket, ready_deadline: Instant) -> ConnEnd {
        let mut socket = socket;
        let mut ready = false;
        self.usable_since = None;
        self.episode = None;
        self.recovering_reported = false;
        loop {
            let end = Box::pin(self.drive(&mut socket, &mut ready, ready_deadline)).await;
            let mut fatal = false;
            let (code, reason) = match end {
                DriveEnd::Stop => {
                    Box::pin(close_gracefully(&mut socket, CloseCode::Normal)).await;
                    // A `disconnected` message the service sent without closing is no reason
                    // for a stop the application asked for.
                    self.last_disconnected = None;
                    if ready {
                        self.report_disconnected(None, Some(Error::Stopped { ack_id: None }));
                    }
                    return ConnEnd::Stopped;
                }
                DriveEnd::NotReady(error) => {
                    Box::pin(close_gracefully(&mut socket, CloseCode::Normal)).await;
                    return ConnEnd::Lost {
                        connected: false,
                        proven: false,
                        error,
                    };
                }
                DriveEnd::Fatal { reason, close } => {
                    wps_log!(Error, "client {}: {}", self.id.0, reason);
                    Box::pin(close_gracefully(&mut socket, close)).await;
                    fatal = true;
                    (None, reason)
                }
                DriveEnd::Closed { code, reason } => (code, reason),
                DriveEnd::Failed(reason) => (None, reason),
                DriveEnd::Dead => (
                    None,
                    "no frame received within the keep-alive timeout".to_string(),
                ),
            };
            wps_log!(
                Warning,
                "client {}: connection {} lost (code {:?}): {}",
                self.id.0,
                self.connection_id.as_deref().unwrap_or("-"),
                code,
                reason
            );
            // The lost socket's descriptor goes now, not when a recovery succeeds: recovery
            // can take many seconds, and after a service restart every client recovers at once.
            drop(socket);
            if !ready {
                let message = match code {
                    Some(c) => format!(
                        "the service closed the connection ({c}) before `connected`: {reason}"
                    ),
                    None => format!("the connection failed before `connected`: {reason}"),
                };
                return ConnEnd::Lost {
                    connected: false,
                    proven: false,
                    error: Error::connection(message),
                };
            }
            let proven = self.is_proven();
            let was_usable = self.usable_since.is_some();
            self.usable_since = None;
            let recoverable = !fatal
                && self.codec.is_reliable()
                && self.connection_id.is_some()
                && self.reconnection_token.is_some()
                && code != Some(1008);
            if self.loss_reason.is_none() && !reason.is_empty() {
                self.loss_reason = Some(reason.clone());
            }
            if recoverable {
                self.out_streams.fail_opening(&stream_closed(
                    "ConnectionLost",
                    "the connection dropped before the service accepted the stream",
                ));
                let now = Instant::now();
                match &mut self.episode {
                    Some(episode) if !proven => {
                        // The episode goes on (same deadline). A recovered connection that
                        // worked is retried at once while quick recoveries are left; one that
                        // never worked keeps the `recovery_interval` spacing.
                        if was_usable && episode.quick_left > 0 {
                            episode.quick_left -= 1;
                            episode.next_attempt = now;
                        }
                    }
                    _ => {
                        self.episode = Some(RecoveryEpisode {
                            deadline: now + self.options.recovery_timeout,
                            next_attempt: now,
                            after_proven: proven,
                            quick_left: QUICK_RECOVERIES,
                        });
                    }
                }
                self.set_state(ConnectionState::Recovering);
                if !self.recovering_reported {
                    self.recovering_reported = true;
                    if let Some(id) = self.connection_id.clone() {
                        wps_log!(Info, "client {}: recovering {}", self.id.0, id);
                        self.emit(Event::Recovering { connection_id: id });
                    }
                }
                match Box::pin(self.recover()).await {
                    Guarded::Stopped => {
                        self.recovering_reported = false;
                        self.report_disconnected(None, Some(Error::Stopped { ack_id: None }));
                        return ConnEnd::Stopped;
                    }
                    Guarded::Done(Some(new_socket)) => {
                        socket = new_socket;
                        wps_log!(
                            Info,
                            "client {}: recovery socket open, waiting for the service",
                            self.id.0
                        );
                        continue;
                    }
                    Guarded::Done(None) => {
                        wps_log!(Warning, "client {}: recovery failed", self.id.0);
                    }
                }
            }
            let proven = proven || self.episode.take().is_some_and(|e| e.after_proven);
            self.recovering_reported = false;
            if self.codec.is_reliable() {
                let why = if fatal {
                    reason.clone()
                } else if code == Some(1008) {
                    match self.last_disconnected.as_deref().filter(|m| !m.is_empty()) {
                        Some(m) => format!("the service ended the session (1008): {m}"),
                        None => format!("the service ended the session (1008): {reason}"),
                    }
                } else if recoverable {
                    "recovery did not succeed before the recovery timeout".to_string()
                } else {
                    format!("the session cannot be recovered: {reason}")
                };
                self.report_session_lost(why);
            }
            let fallback = self
                .loss_reason
                .take()
                .or_else(|| (!reason.is_empty()).then_some(reason));
            // With auto-reconnect the operations still waiting for an ack go out again on
            // the next connection, in their order; otherwise the session ends and they fail.
            let lost = (!self.options.auto_reconnect)
                .then(|| Error::connection("the connection was lost before the ack arrived"));
            self.report_disconnected(fallback, lost);
            return ConnEnd::Lost {
                connected: true,
                proven,
                error: Error::connection("connection lost"),
            };
        }
    }

    /// Whether the current socket has been usable for [`PROVEN_AFTER`].
    fn is_proven(&self) -> bool {
        self.usable_since
            .is_some_and(|since| since.elapsed() >= PROVEN_AFTER)
    }

    /// The service answered on the current socket: it is usable from now on. On a recovered
    /// socket this is the moment recovery succeeded (a refused recovery is a socket that
    /// opens and is closed with 1008, not a recovery).
    pub(super) fn mark_usable(&mut self) {
        if self.usable_since.is_some() {
            return;
        }
        self.usable_since = Some(Instant::now());
        if self.shared.state.get() == ConnectionState::Recovering {
            wps_log!(Info, "client {}: recovered", self.id.0);
            self.set_state(ConnectionState::Connected);
            stats::bump(&self.shared.counters.recoveries);
            if std::mem::take(&mut self.recovering_reported) {
                if let Some(id) = self.connection_id.clone() {
                    self.emit(Event::Recovered { connection_id: id });
                }
            }
        }
    }

    /// Reports that the current reliable session ended without recovery (before its
    /// `Disconnected`).
    fn report_session_lost(&mut self, reason: String) {
        let Some(connection_id) = self.connection_id.clone() else {
            return;
        };
        let last_sequence_id = self.seq.last();
        stats::bump(&self.shared.counters.session_losses);
        wps_log!(
            Warning,
            "client {}: session {} lost after sequence id {}: {}",
            self.id.0,
            connection_id,
            last_sequence_id,
            reason
        );
        self.emit(Event::SessionLost {
            connection_id,
            last_sequence_id,
            reason,
        });
    }

    /// Reports the loss of the current connection. With `fail` the operations waiting for an
    /// ack fail with it; without, they stay pending, to be sent again on the next connection
    /// (the engine's own rejoins are dropped: the next connection rejoins afresh).
    fn report_disconnected(&mut self, fallback: Option<String>, fail: Option<Error>) {
        self.set_state(ConnectionState::Disconnected);
        // Fire-and-forget writes queued during the failed recovery fail now (their callers
        // may wait without a timer), unless they hold room in the offline queue; acked
        // operations stay queued under their ack timeout.
        let queued = std::mem::take(&mut self.queue);
        for o in queued {
            let acked = matches!(o.kind, OutboundKind::Acked { .. });
            if !acked && o.slot.is_none() {
                o.reject(Error::connection(
                    "the connection was lost before the message was written",
                ));
            } else {
                self.queue.push_back(o);
            }
        }
        self.publish_queue();
        let lost = match fail {
            Some(error) => {
                // Rejoins cut short by the loss are not reported: the session is over.
                let _ = self.acks.fail_all(&error);
                error
            }
            None => {
                self.acks.drop_rejoins();
                Error::connection("the connection was lost before the response arrived")
            }
        };
        self.invokes.fail_all(&lost);
        if matches!(lost, Error::Stopped { .. }) {
            self.end_streams(
                &stream_closed("Stopped", "the client stopped"),
                "Stopped",
                "the client stopped before the stream ended",
            );
        } else {
            self.end_streams(
                &stream_closed(
                    "ConnectionLost",
                    "the connection was lost and could not be recovered",
                ),
                "SessionLost",
                "the connection was lost without recovery: the rest of the stream cannot arrive",
            );
        }
        *self
            .shared
            .connection_id
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let message = self.last_disconnected.take().or(fallback);
        let connection_id = self.connection_id.take();
        self.emit(Event::Disconnected {
            connection_id,
            message,
        });
        self.reconnection_token = None;
    }
}

fn stream_closed(name: &str, message: &str) -> Error {
    Error::StreamClosed {
        name: name.to_string(),
        message: message.to_string(),
    }
}

/// The size of a frame's payload in bytes.
pub(super) fn frame_len(frame: &tokio_tungstenite::tungstenite::Message) -> usize {
    use tokio_tungstenite::tungstenite::Message;
    match frame {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}
