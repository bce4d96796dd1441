//! The engine task: one per client, owning the WebSocket. It runs the connection state machine
//! (connect, recovery, reconnect, stop), resolves acks, de-duplicates sequence ids, sends
//! `sequenceAck`s and pings, and hands events to the application's handler.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::ack::{self, AckTracker, AckWaiter, PendingAck, Settled};
use super::command::{Command, Outbound, OutboundKind};
use super::invoke::InvokeTracker;
use super::keepalive::KeepAlive;
use super::retry::Backoff;
use super::sequence::SequenceTracker;
use super::state::ConnectionState;
use super::transport::{self, Socket};
use super::{frame_to_message, url as client_url, Credential, Shared};
use crate::client::{ClientId, ClientOptions, Event, EventHandler};
use crate::error::Error;
use crate::protocol::{Codec, Downstream, FrameRef, JsonCodec, Request};
use crate::wps_log;

/// Frames written before one flush when many operations are queued at once.
const WRITE_BATCH: usize = 128;
/// How long a stop waits for the service to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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
    /// The `connected` message did not arrive in time.
    NotReady(Error),
}

/// How a connection (including its recoveries) ended.
enum ConnEnd {
    Stopped,
    /// Lost. `connected` is false when the `connected` message never arrived.
    Lost {
        connected: bool,
        error: Error,
    },
}

pub(crate) struct Actor {
    id: ClientId,
    credential: Credential,
    options: ClientOptions,
    codec: JsonCodec,
    handler: Arc<dyn EventHandler>,
    shared: Arc<Shared>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
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
}

impl Actor {
    pub(crate) fn new(
        id: ClientId,
        credential: Credential,
        options: ClientOptions,
        handler: Arc<dyn EventHandler>,
        shared: Arc<Shared>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
    ) -> Actor {
        let codec = JsonCodec::new(options.protocol.is_reliable());
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
        }
    }

    /// Serves sessions until every client handle is gone.
    pub(crate) async fn run(mut self) {
        while let Some(reply) = self.idle().await {
            self.session(reply).await;
            if self.cmd_rx.is_closed() && self.deferred.is_empty() {
                break;
            }
        }
        wps_log!(Verbose, "client {} engine task ends", self.id.0);
    }

    /// Waits for `start` while stopped.
    async fn idle(&mut self) -> Option<oneshot::Sender<Result<(), Error>>> {
        loop {
            let cmd = match self.deferred.pop_front() {
                Some(c) => c,
                None => self.cmd_rx.recv().await?,
            };
            match cmd {
                Command::Start(reply) => return Some(reply),
                Command::Stop(reply) => {
                    let _ = reply.send(());
                }
                Command::Send(o) => o.reject(Error::NotConnected { ack_id: None }),
                Command::Invoke { reply, .. } => {
                    let _ = reply.send(Err(Error::NotConnected { ack_id: None }));
                }
                Command::CancelInvoke { .. } => {}
            }
        }
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.state.send_replace(state);
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
        let mut backoff = Backoff::new(self.options.reconnect_retry.clone());
        let start_deadline = Instant::now() + self.options.start_timeout;
        loop {
            self.set_state(ConnectionState::Connecting);
            let starting = self.start_reply.is_some();
            let deadline = if starting {
                start_deadline
            } else {
                Instant::now() + self.options.connect_timeout
            };
            let opened = match self.open_new(deadline).await {
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
                    self.run_connection(socket, deadline).await
                }
                Err(error) => ConnEnd::Lost {
                    connected: false,
                    error,
                },
            };
            match end {
                ConnEnd::Stopped => break,
                ConnEnd::Lost { connected, error } => {
                    if let Some(reply) = self.start_reply.take() {
                        wps_log!(Warning, "client {}: start failed: {}", self.id.0, error);
                        let _ = reply.send(Err(error.clone()));
                        self.end_session(error).await;
                        return;
                    }
                    if connected {
                        backoff.reset();
                    } else {
                        wps_log!(Warning, "client {}: reconnect failed: {}", self.id.0, error);
                    }
                    if !self.options.auto_reconnect {
                        break;
                    }
                    if !connected {
                        let Some(delay) = backoff.next_delay() else {
                            wps_log!(Warning, "client {}: reconnect retries exhausted", self.id.0);
                            break;
                        };
                        self.set_state(ConnectionState::Disconnected);
                        if let Guarded::Stopped = self.guard(tokio::time::sleep(delay)).await {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(reply) = self.start_reply.take() {
            let _ = reply.send(Err(Error::Stopped { ack_id: None }));
        }
        self.end_session(Error::Stopped { ack_id: None }).await;
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
        for o in self.queue.drain(..) {
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
            self.emit(Event::Stopped);
        }
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    /// Runs `fut` while serving commands: sends are queued, `stop` interrupts.
    async fn guard<F: Future>(&mut self, fut: F) -> Guarded<F::Output> {
        tokio::pin!(fut);
        loop {
            if let Some(cmd) = self.deferred.pop_front() {
                if self.command_while_waiting(cmd) {
                    return Guarded::Stopped;
                }
                continue;
            }
            tokio::select! {
                out = &mut fut => return Guarded::Done(out),
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
                self.queue.retain(|o| !o.abandoned());
                self.queue.push_back(o);
                false
            }
            Command::Invoke { reply, .. } => {
                let _ = reply.send(Err(Error::NotConnected { ack_id: None }));
                false
            }
            Command::CancelInvoke { .. } => false,
        }
    }

    /// Gets a client access URL (calling the provider, off the runtime threads).
    async fn fetch_url(&mut self) -> Guarded<Result<url::Url, Error>> {
        match self.credential.clone() {
            Credential::Url(u) => Guarded::Done(client_url::validate(&u)),
            Credential::Provider(f) => {
                let task = tokio::task::spawn_blocking(move || f());
                match self.guard(task).await {
                    Guarded::Stopped => Guarded::Stopped,
                    Guarded::Done(Ok(Ok(u))) => Guarded::Done(client_url::validate(&u)),
                    Guarded::Done(Ok(Err(msg))) => Guarded::Done(Err(Error::connection(format!(
                        "the URL provider failed: {msg}"
                    )))),
                    Guarded::Done(Err(_)) => {
                        Guarded::Done(Err(Error::connection("the URL provider panicked")))
                    }
                }
            }
        }
    }

    fn tls_for(&mut self, url: &url::Url) -> Result<Option<Arc<rustls::ClientConfig>>, Error> {
        if url.scheme() != "wss" {
            return Ok(None);
        }
        if self.tls.is_none() {
            self.tls = Some(transport::tls_config(self.options.ca_file.as_deref())?);
        }
        Ok(self.tls.clone())
    }

    async fn connect(
        &mut self,
        url: &url::Url,
        deadline: Instant,
    ) -> Guarded<Result<Socket, Error>> {
        let tls = match self.tls_for(url) {
            Ok(t) => t,
            Err(e) => return Guarded::Done(Err(e)),
        };
        wps_log!(Info, "client {}: connecting to {}", self.id.0, url.as_str());
        let attempt = tokio::time::timeout_at(
            deadline,
            transport::connect(
                url,
                self.codec.subprotocol(),
                self.options.max_message_size,
                tls,
            ),
        );
        match self.guard(attempt).await {
            Guarded::Stopped => Guarded::Stopped,
            Guarded::Done(Ok(r)) => Guarded::Done(r),
            Guarded::Done(Err(_)) => Guarded::Done(Err(Error::Timeout { ack_id: None })),
        }
    }

    /// Opens a brand-new connection (fresh URL from the credential).
    async fn open_new(&mut self, deadline: Instant) -> Guarded<Result<Socket, Error>> {
        let url = match self.fetch_url().await {
            Guarded::Stopped => return Guarded::Stopped,
            Guarded::Done(Ok(u)) => u,
            Guarded::Done(Err(e)) => return Guarded::Done(Err(e)),
        };
        let r = self.connect(&url, deadline).await;
        self.url = Some(url);
        r
    }

    /// Drives a new connection and its recoveries until it is lost for good or stopped.
    async fn run_connection(&mut self, socket: Socket, ready_deadline: Instant) -> ConnEnd {
        let mut socket = socket;
        let mut ready = false;
        loop {
            let end = self.drive(&mut socket, &mut ready, ready_deadline).await;
            let (code, reason) = match end {
                DriveEnd::Stop => {
                    close_gracefully(&mut socket).await;
                    if ready {
                        self.report_disconnected(None, Error::Stopped { ack_id: None });
                    }
                    return ConnEnd::Stopped;
                }
                DriveEnd::NotReady(error) => {
                    close_gracefully(&mut socket).await;
                    return ConnEnd::Lost {
                        connected: false,
                        error,
                    };
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
            if !ready {
                let message = match code {
                    Some(c) => format!(
                        "the service closed the connection ({c}) before `connected`: {reason}"
                    ),
                    None => format!("the connection failed before `connected`: {reason}"),
                };
                return ConnEnd::Lost {
                    connected: false,
                    error: Error::connection(message),
                };
            }
            let recoverable = self.codec.is_reliable()
                && self.connection_id.is_some()
                && self.reconnection_token.is_some()
                && code != Some(1008);
            if self.loss_reason.is_none() && !reason.is_empty() {
                self.loss_reason = Some(reason.clone());
            }
            if recoverable {
                self.set_state(ConnectionState::Recovering);
                match self.recover().await {
                    Guarded::Stopped => {
                        self.report_disconnected(None, Error::Stopped { ack_id: None });
                        return ConnEnd::Stopped;
                    }
                    Guarded::Done(Some(new_socket)) => {
                        socket = new_socket;
                        self.set_state(ConnectionState::Connected);
                        wps_log!(Info, "client {}: recovered", self.id.0);
                        continue;
                    }
                    Guarded::Done(None) => {
                        wps_log!(Warning, "client {}: recovery failed", self.id.0);
                    }
                }
            }
            let fallback = self
                .loss_reason
                .take()
                .or_else(|| (!reason.is_empty()).then_some(reason));
            let lost = Error::connection("the connection was lost before the ack arrived");
            self.report_disconnected(fallback, lost);
            return ConnEnd::Lost {
                connected: true,
                error: Error::connection("connection lost"),
            };
        }
    }

    /// Reports the loss of the current connection and fails what waited on it.
    fn report_disconnected(&mut self, fallback: Option<String>, lost: Error) {
        self.set_state(ConnectionState::Disconnected);
        for (group, _) in self.acks.fail_all(&lost) {
            // A rejoin cut short by the loss will be retried on the next connection.
            let _ = group;
        }
        self.invokes.fail_all(&lost);
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

    /// Tries the recovery URL every `recovery_interval` for `recovery_timeout`.
    async fn recover(&mut self) -> Guarded<Option<Socket>> {
        let (Some(original), Some(conn), Some(token)) = (
            self.url.clone(),
            self.connection_id.clone(),
            self.reconnection_token.clone(),
        ) else {
            return Guarded::Done(None);
        };
        let url = client_url::recovery_url(&original, &conn, &token);
        let deadline = Instant::now() + self.options.recovery_timeout;
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            attempt += 1;
            let attempt_deadline = deadline.min(Instant::now() + self.options.connect_timeout);
            match self.connect(&url, attempt_deadline).await {
                Guarded::Stopped => return Guarded::Stopped,
                Guarded::Done(Ok(socket)) => return Guarded::Done(Some(socket)),
                Guarded::Done(Err(e)) => {
                    wps_log!(
                        Info,
                        "client {}: recovery attempt {} failed: {}",
                        self.id.0,
                        attempt,
                        e
                    );
                }
            }
            let wait = self.options.recovery_interval;
            let until = deadline.min(Instant::now() + wait);
            if let Guarded::Stopped = self.guard(tokio::time::sleep_until(until)).await {
                return Guarded::Stopped;
            }
        }
        Guarded::Done(None)
    }

    /// Serves one socket: commands, inbound frames, sequence acks, keep-alive.
    async fn drive(
        &mut self,
        socket: &mut Socket,
        ready: &mut bool,
        ready_deadline: Instant,
    ) -> DriveEnd {
        let mut keep = KeepAlive::new(
            self.options.keep_alive_interval,
            self.options.keep_alive_timeout,
        );
        let tick_period = if self.codec.is_reliable() {
            self.options
                .sequence_ack_interval
                .max(Duration::from_millis(10))
        } else {
            Duration::from_secs(1)
        };
        let mut tick = tokio::time::interval_at(Instant::now() + tick_period, tick_period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        if *ready {
            // A recovered connection: resend what was not acknowledged (same ack ids; the
            // service answers Duplicate for what it already did), then what was queued.
            if let Err(e) = self.after_ready(socket).await {
                return e;
            }
        }
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        loop {
            if let Some(cmd) = self.deferred.pop_front() {
                if let Some(end) = self.command(socket, cmd, *ready).await {
                    return end;
                }
                continue;
            }
            let keep_at = keep.next_wakeup().unwrap_or(far);
            let ready_at = if *ready { far } else { ready_deadline };
            tokio::select! {
                cmd = self.cmd_rx.recv() => {
                    let Some(cmd) = cmd else { return DriveEnd::Stop };
                    if let Some(end) = self.command(socket, cmd, *ready).await {
                        return end;
                    }
                }
                frame = socket.next() => {
                    keep.on_inbound();
                    let frame = match frame {
                        None => return DriveEnd::Failed("the connection ended without a close frame".into()),
                        Some(Err(e)) => return DriveEnd::Failed(e.to_string()),
                        Some(Ok(m)) => m,
                    };
                    let end = match frame {
                        Message::Text(t) => self.on_frame(socket, FrameRef::Text(t.as_str()), ready).await,
                        Message::Binary(b) => self.on_frame(socket, FrameRef::Binary(&b), ready).await,
                        Message::Close(c) => {
                            let (code, reason) = match c {
                                Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                                None => (None, String::new()),
                            };
                            // Complete the closing handshake (best effort).
                            let _ = tokio::time::timeout(CLOSE_GRACE, socket.flush()).await;
                            return DriveEnd::Closed { code, reason };
                        }
                        _ => None,
                    };
                    if let Some(end) = end {
                        return end;
                    }
                }
                _ = tick.tick() => {
                    if let Some(id) = self.seq.take_ack() {
                        if let Err(e) = self.write_now(socket, Request::SequenceAck { sequence_id: id }).await {
                            return e;
                        }
                    }
                    for (group, error) in self.acks.prune() {
                        self.rejoin_failed(group, error);
                    }
                }
                _ = tokio::time::sleep_until(keep_at) => {
                    let now = Instant::now();
                    if keep.is_dead(now) {
                        return DriveEnd::Dead;
                    }
                    if keep.ping_due(now) {
                        if let Err(e) = self.write_now(socket, Request::Ping).await {
                            return e;
                        }
                    }
                }
                _ = tokio::time::sleep_until(ready_at) => {
                    return DriveEnd::NotReady(Error::Timeout { ack_id: None });
                }
            }
        }
    }

    /// Encodes and writes one engine-originated request (sequenceAck, ping, rejoin).
    async fn write_now(
        &mut self,
        socket: &mut Socket,
        request: Request<'_>,
    ) -> Result<(), DriveEnd> {
        let frame = match self.codec.encode(&request) {
            Ok(f) => frame_to_message(f),
            Err(e) => {
                wps_log!(
                    Error,
                    "client {}: cannot encode {:?}: {}",
                    self.id.0,
                    request,
                    e
                );
                return Ok(());
            }
        };
        socket
            .send(frame)
            .await
            .map_err(|e| DriveEnd::Failed(e.to_string()))
    }

    /// Handles a command while connected. Returns an end for stop or a write failure.
    async fn command(
        &mut self,
        socket: &mut Socket,
        cmd: Command,
        ready: bool,
    ) -> Option<DriveEnd> {
        if !ready {
            return self.command_while_waiting(cmd).then_some(DriveEnd::Stop);
        }
        match cmd {
            Command::Stop(reply) => {
                self.stop_waiters.push(reply);
                Some(DriveEnd::Stop)
            }
            Command::Start(reply) => {
                let _ = reply.send(Err(Error::AlreadyStarted));
                None
            }
            Command::Send(o) => self.write_batch(socket, o).await.err(),
            Command::Invoke { id, frame, reply } => {
                self.invokes.insert(id, reply);
                socket
                    .send(frame)
                    .await
                    .err()
                    .map(|e| DriveEnd::Failed(e.to_string()))
            }
            Command::CancelInvoke { id, frame } => {
                self.invokes.settle(&id, false, None, None);
                socket
                    .send(frame)
                    .await
                    .err()
                    .map(|e| DriveEnd::Failed(e.to_string()))
            }
        }
    }

    /// Writes `first` and whatever else is already queued on the channel, then flushes once.
    async fn write_batch(&mut self, socket: &mut Socket, first: Outbound) -> Result<(), DriveEnd> {
        let mut written: Vec<oneshot::Sender<Result<(), Error>>> = Vec::new();
        let mut result = self.feed(socket, first, &mut written).await;
        let mut n = 1;
        while result.is_ok() && n < WRITE_BATCH {
            match self.cmd_rx.try_recv() {
                Ok(Command::Send(o)) => {
                    result = self.feed(socket, o, &mut written).await;
                    n += 1;
                }
                Ok(other) => {
                    self.deferred.push_back(other);
                    break;
                }
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = socket.flush().await.map_err(|e| e.to_string());
        }
        match result {
            Ok(()) => {
                for w in written {
                    let _ = w.send(Ok(()));
                }
                Ok(())
            }
            Err(msg) => {
                for w in written {
                    let _ = w.send(Err(Error::connection(msg.clone())));
                }
                Err(DriveEnd::Failed(msg))
            }
        }
    }

    async fn feed(
        &mut self,
        socket: &mut Socket,
        o: Outbound,
        written: &mut Vec<oneshot::Sender<Result<(), Error>>>,
    ) -> Result<(), String> {
        if o.abandoned() {
            return Ok(());
        }
        let frame = match o.kind {
            OutboundKind::Acked { ack_id, reply } => {
                self.acks.insert(
                    ack_id,
                    PendingAck {
                        frame: o.frame.clone(),
                        waiter: AckWaiter::User(reply),
                        deadline: None,
                    },
                );
                o.frame
            }
            OutboundKind::FireAndForget { reply } => {
                written.push(reply);
                o.frame
            }
        };
        socket.feed(frame).await.map_err(|e| e.to_string())
    }

    /// After `connected` (or a recovery): resend unacknowledged frames, then the queue.
    async fn after_ready(&mut self, socket: &mut Socket) -> Result<(), DriveEnd> {
        for frame in self.acks.frames_to_resend() {
            socket
                .feed(frame)
                .await
                .map_err(|e| DriveEnd::Failed(e.to_string()))?;
        }
        let mut written = Vec::new();
        let queued: Vec<Outbound> = self.queue.drain(..).collect();
        for o in queued {
            if let Err(msg) = self.feed(socket, o, &mut written).await {
                for w in written {
                    let _ = w.send(Err(Error::connection(msg.clone())));
                }
                return Err(DriveEnd::Failed(msg));
            }
        }
        let flushed = socket.flush().await.map_err(|e| e.to_string());
        for w in written {
            let _ = w.send(flushed.clone().map_err(Error::connection));
        }
        flushed.map_err(DriveEnd::Failed)
    }

    fn rejoin_failed(&mut self, group: String, error: Error) {
        wps_log!(
            Warning,
            "client {}: rejoining group failed: {}",
            self.id.0,
            error
        );
        self.shared.groups.left(&group);
        self.emit(Event::RejoinGroupFailed { group, error });
    }

    /// Sends `joinGroup` for every recorded group on a new connection.
    async fn rejoin_groups(&mut self, socket: &mut Socket) -> Result<(), DriveEnd> {
        if !self.options.auto_rejoin_groups {
            return Ok(());
        }
        let deadline = Instant::now() + self.options.ack_timeout;
        for group in self.shared.groups.snapshot() {
            let ack_id = self.shared.next_ack_id();
            let frame = match self.codec.encode(&Request::JoinGroup {
                group: &group,
                ack_id: Some(ack_id),
            }) {
                Ok(f) => frame_to_message(f),
                Err(e) => {
                    self.rejoin_failed(group, Error::InvalidArgument(e.to_string()));
                    continue;
                }
            };
            self.acks.insert(
                ack_id,
                PendingAck {
                    frame: frame.clone(),
                    waiter: AckWaiter::Rejoin { group },
                    deadline: Some(deadline),
                },
            );
            socket
                .feed(frame)
                .await
                .map_err(|e| DriveEnd::Failed(e.to_string()))?;
        }
        Ok(())
    }

    /// Handles one inbound data frame.
    async fn on_frame(
        &mut self,
        socket: &mut Socket,
        frame: FrameRef<'_>,
        ready: &mut bool,
    ) -> Option<DriveEnd> {
        let msg = match self.codec.decode(frame) {
            Ok(m) => m,
            Err(e) => {
                // One bad frame does not end a working connection.
                wps_log!(
                    Error,
                    "client {}: ignoring a malformed frame: {}",
                    self.id.0,
                    e
                );
                return None;
            }
        };
        if !matches!(msg, Downstream::Disconnected { .. }) {
            // Traffic flows: any earlier loss is over.
            self.loss_reason = None;
        }
        match msg {
            Downstream::Ack {
                ack_id,
                success,
                error,
            } => {
                let result = ack::ack_result(ack_id, success, error);
                if let Settled::Rejoin {
                    group,
                    result: Err(e),
                } = self.acks.settle(ack_id, result)
                {
                    self.rejoin_failed(group, e);
                }
            }
            Downstream::GroupMessage {
                group,
                from_user_id,
                payload,
                sequence_id,
            } => {
                if !self.accept_sequence(socket, sequence_id).await {
                    return None;
                }
                self.emit(Event::GroupMessage {
                    group,
                    from_user_id,
                    message: payload,
                    sequence_id,
                });
            }
            Downstream::ServerMessage {
                payload,
                sequence_id,
            } => {
                if !self.accept_sequence(socket, sequence_id).await {
                    return None;
                }
                self.emit(Event::ServerMessage {
                    message: payload,
                    sequence_id,
                });
            }
            Downstream::Connected {
                connection_id,
                user_id,
                reconnection_token,
            } => {
                if reconnection_token.is_some() {
                    self.reconnection_token = reconnection_token;
                }
                if *ready {
                    // After a recovery (or a repeat): only the token changes.
                    self.last_disconnected = None;
                    return None;
                }
                *ready = true;
                wps_log!(Info, "client {}: connected as {}", self.id.0, connection_id);
                self.connection_id = Some(connection_id.clone());
                *self
                    .shared
                    .connection_id
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(connection_id.clone());
                self.set_state(ConnectionState::Connected);
                self.session_connected = true;
                self.emit(Event::Connected {
                    connection_id,
                    user_id,
                });
                if let Some(reply) = self.start_reply.take() {
                    let _ = reply.send(Ok(()));
                }
                if let Err(e) = self.rejoin_groups(socket).await {
                    return Some(e);
                }
                if let Err(e) = self.after_ready(socket).await {
                    return Some(e);
                }
            }
            Downstream::Disconnected { message } => {
                // Keep the first reason of a loss: a refused recovery adds its own
                // ("cannot be recovered"), which says less than the original one.
                if self.last_disconnected.is_none() {
                    self.last_disconnected = message;
                }
            }
            Downstream::Pong | Downstream::Ignored => {}
            Downstream::InvokeResponse {
                invocation_id,
                success,
                payload,
                error,
            } => self.invokes.settle(&invocation_id, success, payload, error),
        }
        None
    }

    /// Records a sequence id; false drops a duplicate.
    async fn accept_sequence(&mut self, socket: &mut Socket, sequence_id: Option<u64>) -> bool {
        let Some(id) = sequence_id.filter(|_| self.codec.is_reliable()) else {
            return true;
        };
        let r = self.seq.receive(id);
        if r.ack_now {
            if let Some(ack) = self.seq.take_ack() {
                if self
                    .write_now(socket, Request::SequenceAck { sequence_id: ack })
                    .await
                    .is_err()
                {
                    // The read side will report the failure.
                    return r.deliver;
                }
            }
        }
        r.deliver
    }
}

/// Sends a 1000 close and waits briefly for the service's answer.
async fn close_gracefully(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(Some(frame))).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}
