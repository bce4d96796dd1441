//! Serving one open socket: commands, inbound frames, acks, sequence acks, keep-alive, and the
//! writes that go with them.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::streams::StreamControl;
use super::{Actor, DriveEnd, CLOSE_GRACE, WRITE_BATCH};
use crate::client::ack::{self, AckWaiter, Rejoin, Settled};
use crate::client::command::{Command, Outbound, OutboundKind};
use crate::client::frame_to_message;
use crate::client::keepalive::KeepAlive;
use crate::client::state::ConnectionState;
use crate::client::stats;
use crate::client::transport::Socket;
use crate::client::Event;
use crate::error::Error;
use crate::protocol::{Codec, Downstream, FrameRef, Request};
use crate::wps_log;

impl Actor {
    /// Serves one socket: commands, inbound frames, sequence acks, keep-alive.
    ///
    /// This future is what an idle connected client keeps in memory, so it holds only small
    /// state: one timer, and writes (rare while idle) run in boxed futures of their own.
    pub(super) async fn drive(
        &mut self,
        socket: &mut Socket,
        ready: &mut bool,
        ready_deadline: Instant,
    ) -> DriveEnd {
        let mut keep = KeepAlive::new(
            self.options.keep_alive_interval,
            self.options.keep_alive_timeout,
        );
        // Housekeeping (sequenceAck, pruning acks) runs only while there is something to do,
        // so idle connections do not wake up every second.
        let tick_period = if self.codec.is_reliable() {
            self.options.sequence_ack_interval
        } else {
            Duration::from_secs(1)
        }
        .min(self.housekeeping_period())
        .max(Duration::from_millis(10));
        // When the next housekeeping pass is due (None: nothing waits for one).
        let mut tick_at: Option<Instant> = None;
        // A ping written on an earlier socket is never answered.
        self.ping_sent_at = None;
        if *ready {
            // A recovered connection: a ping first, so that the service confirms the session
            // with its answer even when it has nothing else to send; then what was not
            // acknowledged (same ack ids; the service answers Duplicate for what it already
            // did), then what was queued.
            let limit = self.write_timeout();
            let catch_up = async {
                self.ping_sent_at = Some(Instant::now());
                self.write_now(socket, Request::Ping).await?;
                self.after_ready(socket).await
            };
            match Box::pin(tokio::time::timeout(limit, catch_up)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return e,
                Err(_) => return self.stalled_writes(limit),
            }
        }
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        // One timer serves keep-alive, the `connected` deadline and housekeeping: it is set to
        // the earliest of them, checks on every expiry what is due, and re-arms itself. It
        // lives across iterations (re-arming one per command would cost a timer registration
        // per message) and may fire early, because inbound frames move the keep-alive
        // deadline later.
        let next_wakeup = |keep: &KeepAlive, tick_at: Option<Instant>, ready: bool| {
            let mut at = keep.next_wakeup().unwrap_or(far);
            if let Some(t) = tick_at {
                at = at.min(t);
            }
            if !ready {
                at = at.min(ready_deadline);
            }
            at
        };
        let timer = tokio::time::sleep_until(next_wakeup(&keep, tick_at, *ready));
        tokio::pin!(timer);
        // The application's backlog of messages: while it is full the socket is not read.
        let backlog = self.backlog.clone();
        let mut paused = false;
        loop {
            if let Some(cmd) = self.deferred.pop_front() {
                if let Some(end) = self.command(socket, cmd, *ready).await {
                    return end;
                }
                continue;
            }
            let streams = !self.out_streams.is_empty() || !self.rx_streams.is_empty();
            if tick_at.is_none()
                && (self.seq.has_unacked()
                    || !self.acks.is_empty()
                    || !self.queue.is_empty()
                    || streams)
            {
                let mut period = tick_period;
                if streams {
                    if let Some(p) = self.out_streams.keep_alive_period() {
                        period = period.min(p / 2);
                    }
                    if !self.rx_streams.is_empty() {
                        period = period.min(self.rx_streams.check_period());
                    }
                    period = period.max(Duration::from_millis(5));
                }
                let at = Instant::now() + period;
                tick_at = Some(at);
                if at < timer.deadline() {
                    timer.as_mut().reset(at);
                }
            }
            let full = backlog.as_ref().is_some_and(|b| b.is_full());
            if full != paused {
                paused = full;
                if paused {
                    wps_log!(
                        Warning,
                        "client {}: the application's backlog is full; not reading the socket \
                         until it handles messages",
                        self.id.0
                    );
                } else {
                    // Not reading was our choice, not the peer's silence.
                    keep.on_inbound();
                }
            }
            tokio::select! {
                cmd = self.cmd_rx.recv() => {
                    let Some(cmd) = cmd else { return DriveEnd::Stop };
                    if let Some(end) = self.command(socket, cmd, *ready).await {
                        return end;
                    }
                }
                _ = async {
                    if let Some(b) = &backlog {
                        b.room().await
                    }
                }, if paused => {}
                frame = socket.next(), if !paused => {
                    keep.on_inbound();
                    let frame = match frame {
                        None => return DriveEnd::Failed("the connection ended without a close frame".into()),
                        Some(Err(e)) => return self.read_failed(e),
                        Some(Ok(m)) => m,
                    };
                    let end = match frame {
                        Message::Text(t) => {
                            stats::add(&self.shared.counters.bytes_received, t.len() as u64);
                            self.on_frame(socket, FrameRef::Text(t.as_str()), ready).await
                        }
                        Message::Binary(b) => {
                            stats::add(&self.shared.counters.bytes_received, b.len() as u64);
                            self.on_frame(socket, FrameRef::Binary(&b), ready).await
                        }
                        Message::Close(c) => {
                            let (code, reason) = match c {
                                Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                                None => (None, String::new()),
                            };
                            // Complete the closing handshake (best effort).
                            let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, socket.flush())).await;
                            return DriveEnd::Closed { code, reason };
                        }
                        _ => None,
                    };
                    if let Some(end) = end {
                        return end;
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if !*ready && now >= ready_deadline {
                        return DriveEnd::NotReady(Error::Timeout { ack_id: None });
                    }
                    if tick_at.is_some_and(|t| now >= t) {
                        tick_at = None;
                        if let Some(id) = self.seq.take_ack() {
                            let ack = Request::SequenceAck { sequence_id: id };
                            if let Err(e) = Box::pin(self.write_now(socket, ack)).await {
                                return e;
                            }
                        }
                        self.housekeeping();
                        if *ready {
                            if let Some(end) = self.stream_housekeeping(socket).await {
                                return end;
                            }
                        }
                    }
                    if keep.is_dead(now) && !paused {
                        return DriveEnd::Dead;
                    }
                    if keep.ping_due(now) {
                        if self.ping_sent_at.is_none() {
                            self.ping_sent_at = Some(now);
                        }
                        if let Err(e) = Box::pin(self.write_now(socket, Request::Ping)).await {
                            return e;
                        }
                    }
                    timer.as_mut().reset(next_wakeup(&keep, tick_at, *ready));
                }
            }
        }
    }

    /// Why reading failed. A message over the inbound limit, or a frame that breaks the
    /// WebSocket protocol, ends the session: recovering would have the service replay it.
    fn read_failed(&self, e: tungstenite::Error) -> DriveEnd {
        use tungstenite::error::ProtocolError as P;
        let (what, close) = match &e {
            tungstenite::Error::Capacity(_) => (
                "a message over the inbound limit (see max_inbound_message_size)",
                CloseCode::Size,
            ),
            tungstenite::Error::Utf8(_) => ("a text frame that is not UTF-8", CloseCode::Invalid),
            tungstenite::Error::Protocol(
                P::ResetWithoutClosingHandshake | P::SendAfterClosing | P::ReceivedAfterClosing,
            ) => return DriveEnd::Failed(e.to_string()),
            tungstenite::Error::Protocol(_) => (
                "a frame that breaks the WebSocket protocol",
                CloseCode::Protocol,
            ),
            _ => return DriveEnd::Failed(e.to_string()),
        };
        DriveEnd::Fatal {
            reason: format!(
                "the service sent {what} ({e}): the session is abandoned, since recovering it \
                 would replay the same message"
            ),
            close,
        }
    }

    /// Encodes and writes one engine-originated request (sequenceAck, ping).
    pub(super) async fn write_now(
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
        self.send_frame(socket, frame).await
    }

    /// Writes and flushes one frame, failing the connection when the write stalls.
    async fn send_frame(&self, socket: &mut Socket, frame: Message) -> Result<(), DriveEnd> {
        let limit = self.write_timeout();
        match tokio::time::timeout(limit, socket.send(frame)).await {
            Ok(r) => r.map_err(|e| DriveEnd::Failed(e.to_string())),
            Err(_) => Err(stalled(limit)),
        }
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
            Command::Send(o) if self.holds_back(&o) => {
                self.enqueue(o);
                None
            }
            cmd @ (Command::Send(_) | Command::Stream(_)) => {
                // A peer that stops reading fills the socket buffers; do not wait forever.
                let limit = self.write_timeout();
                let batch = Box::pin(tokio::time::timeout(limit, self.write_batch(socket, cmd)));
                match batch.await {
                    Ok(r) => r.err(),
                    Err(_) => Some(self.stalled_writes(limit)),
                }
            }
            Command::Invoke { id, frame, reply } => {
                self.invokes.insert(id, reply);
                self.count_sent(&frame);
                Box::pin(self.send_frame(socket, frame)).await.err()
            }
            Command::CancelInvoke { id, frame } => {
                self.invokes.settle(&id, false, None, None);
                Box::pin(self.send_frame(socket, frame)).await.err()
            }
        }
    }

    /// Ends the connection after a stalled write, failing the writes it held.
    pub(super) fn stalled_writes(&mut self, limit: Duration) -> DriveEnd {
        let end = stalled(limit);
        if let DriveEnd::Failed(msg) = &end {
            self.complete_written(&Err(msg.clone()));
        }
        end
    }

    pub(super) fn write_timeout(&self) -> Duration {
        if self.options.keep_alive_timeout.is_zero() {
            Duration::from_secs(120)
        } else {
            self.options.keep_alive_timeout
        }
    }

    /// Writes `first` (a send or a stream command) and whatever other sends and stream
    /// commands are already queued on the channel, then flushes once.
    async fn write_batch(&mut self, socket: &mut Socket, first: Command) -> Result<(), DriveEnd> {
        let mut result = match first {
            Command::Send(o) => self.feed(socket, o).await,
            Command::Stream(c) => self.feed_stream(socket, c).await,
            other => {
                self.deferred.push_back(other);
                Ok(())
            }
        };
        let mut n = 1;
        while result.is_ok() && n < WRITE_BATCH {
            match self.cmd_rx.try_recv() {
                Ok(Command::Send(o)) if self.holds_back(&o) => self.enqueue(o),
                Ok(Command::Send(o)) => {
                    result = self.feed(socket, o).await;
                    n += 1;
                }
                Ok(Command::Stream(c)) => {
                    result = self.feed_stream(socket, c).await;
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
        self.complete_written(&result);
        result.map_err(DriveEnd::Failed)
    }

    /// Tells the fire-and-forget callers of the frames fed since the last flush how it went.
    pub(super) fn complete_written(&mut self, result: &Result<(), String>) {
        self.buffered.clear();
        for w in self.written.drain(..) {
            let _ = w.send(result.clone().map_err(Error::connection));
        }
    }

    /// Feeds one operation's frame (no flush); acked ones are tracked, fire-and-forget ones
    /// wait in `written` for the flush.
    async fn feed(&mut self, socket: &mut Socket, o: Outbound) -> Result<(), String> {
        if o.abandoned() {
            return Ok(());
        }
        self.count_sent(&o.frame);
        // Written: the operation leaves the offline queue (its ack is tracked from here on).
        drop(o.slot);
        let frame = match o.kind {
            OutboundKind::Acked {
                ack_id,
                reply,
                deadline,
            } => {
                self.acks.insert(
                    ack_id,
                    o.frame.clone(),
                    AckWaiter::User(reply),
                    Some(deadline),
                );
                o.frame
            }
            OutboundKind::FireAndForget { reply, .. } => {
                self.written.push(reply);
                o.frame
            }
            OutboundKind::Buffered { slot } => {
                self.buffered.push(slot);
                o.frame
            }
        };
        socket.feed(frame).await.map_err(|e| e.to_string())
    }

    /// After `connected` (or a recovery): resend unacknowledged frames, then the queue.
    async fn after_ready(&mut self, socket: &mut Socket) -> Result<(), DriveEnd> {
        self.housekeeping();
        for frame in self.acks.frames_to_resend() {
            self.count_sent(&frame);
            socket
                .feed(frame)
                .await
                .map_err(|e| DriveEnd::Failed(e.to_string()))?;
        }
        // Streams that survived a recovery: what the service did not acknowledge goes out
        // again (it acknowledges repeats and keeps its place).
        for frame in self.out_streams.replay() {
            self.count_sent(&frame);
            socket
                .feed(frame)
                .await
                .map_err(|e| DriveEnd::Failed(e.to_string()))?;
        }
        self.write_queue(socket).await
    }

    /// Writes the queue in order, up to the first operation the socket must not take yet
    /// (see `holds_back`), and flushes.
    async fn write_queue(&mut self, socket: &mut Socket) -> Result<(), DriveEnd> {
        let queued: Vec<Outbound> = self.queue.drain(..).collect();
        self.publish_queue();
        let mut result = Ok(());
        for o in queued {
            if result.is_ok() && !self.holds_back(&o) {
                result = self.feed(socket, o).await;
            } else {
                self.queue.push_back(o);
            }
        }
        if !self.queue.is_empty() {
            self.publish_queue();
        }
        if result.is_ok() {
            result = socket.flush().await.map_err(|e| e.to_string());
        }
        self.complete_written(&result);
        result.map_err(DriveEnd::Failed)
    }

    /// Reports a rejoin (or a renewed group-state subscription) that failed. A failed
    /// subscription renewal is reported as a failed rejoin of its group, with a message that
    /// says so.
    pub(super) fn rejoin_failed(&mut self, rejoin: Rejoin, error: Error) {
        let Rejoin { group, group_state } = rejoin;
        if group_state {
            wps_log!(
                Warning,
                "client {}: renewing the group-state subscription of {} failed: {}",
                self.id.0,
                group,
                error
            );
            self.shared.group_states.left(&group);
            let error = Error::Protocol(format!(
                "renewing the group-state subscription failed: {error}"
            ));
            self.emit(Event::RejoinGroupFailed { group, error });
            return;
        }
        wps_log!(
            Warning,
            "client {}: rejoining group failed: {}",
            self.id.0,
            error
        );
        self.shared.groups.left(&group);
        self.emit(Event::RejoinGroupFailed { group, error });
    }

    /// Registers a `joinGroup` for every recorded group on a new connection; `after_ready`
    /// sends them, first, with whatever else waits for an ack.
    /// Group-state subscriptions are renewed the same way, after the rejoins.
    fn rejoin_groups(&mut self) {
        let deadline = Instant::now() + self.options.ack_timeout;
        let groups = if self.options.auto_rejoin_groups {
            self.shared.groups.snapshot()
        } else {
            Vec::new()
        };
        let renewals = groups.into_iter().map(Rejoin::group).chain(
            self.shared
                .group_states
                .snapshot()
                .into_iter()
                .map(|group| Rejoin {
                    group,
                    group_state: true,
                }),
        );
        for rejoin in renewals.collect::<Vec<_>>() {
            let ack_id = self.shared.next_ack_id();
            let request = if rejoin.group_state {
                Request::SubscribeGroupState {
                    group: &rejoin.group,
                    ack_id: Some(ack_id),
                }
            } else {
                Request::JoinGroup {
                    group: &rejoin.group,
                    ack_id: Some(ack_id),
                }
            };
            let frame = match self.codec.encode(&request) {
                Ok(f) => frame_to_message(f),
                Err(e) => {
                    self.rejoin_failed(rejoin, Error::InvalidArgument(e.to_string()));
                    continue;
                }
            };
            self.acks
                .insert(ack_id, frame, AckWaiter::Rejoin(rejoin), Some(deadline));
        }
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
            Err(e) if !*ready => {
                // The first message must be a valid `connected`: without it nothing works.
                return Some(DriveEnd::NotReady(Error::Protocol(format!(
                    "the service's message before `connected` is invalid: {e}"
                ))));
            }
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
        if !*ready {
            if let Some(kind) = msg.needs_connection() {
                return Some(DriveEnd::NotReady(Error::Protocol(format!(
                    "the service sent {kind} before `connected`"
                ))));
            }
        }
        if *ready && !matches!(msg, Downstream::Disconnected { .. }) {
            // Traffic flows: any earlier loss is over, and a recovered socket is usable.
            self.loss_reason = None;
            let held = self.usable_since.is_none() && !self.queue.is_empty();
            self.mark_usable();
            if held {
                // What waited for the service to accept the recovery goes out now.
                let limit = self.write_timeout();
                match Box::pin(tokio::time::timeout(limit, self.write_queue(socket))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(e),
                    Err(_) => return Some(self.stalled_writes(limit)),
                }
            }
        }
        match msg {
            Downstream::Ack {
                ack_id,
                success,
                error,
            } => {
                let result = ack::ack_result(ack_id, success, error);
                if let Settled::Rejoin {
                    rejoin,
                    result: Err(e),
                } = self.acks.settle(ack_id, result)
                {
                    self.rejoin_failed(rejoin, e);
                }
            }
            Downstream::GroupMessage {
                group,
                from_user_id,
                payload,
                sequence_id,
                stream,
            } => {
                match self.accept_sequence(socket, sequence_id).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(end) => return Some(end),
                }
                if let Some(info) = stream {
                    self.on_stream_frame(group, from_user_id, payload, sequence_id, info);
                    return None;
                }
                stats::bump(&self.shared.counters.messages_received);
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
                match self.accept_sequence(socket, sequence_id).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(end) => return Some(end),
                }
                stats::bump(&self.shared.counters.messages_received);
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
                self.loss_reason = None;
                self.mark_usable();
                wps_log!(Info, "client {}: connected as {}", self.id.0, connection_id);
                self.connection_id = Some(connection_id.clone());
                *self
                    .shared
                    .connection_id
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(connection_id.clone());
                self.set_state(ConnectionState::Connected);
                self.session_connected = true;
                stats::bump(&self.shared.counters.connects);
                self.emit(Event::Connected {
                    connection_id,
                    user_id,
                });
                if let Some(reply) = self.start_reply.take() {
                    let _ = reply.send(Ok(()));
                }
                self.rejoin_groups();
                let limit = self.write_timeout();
                match Box::pin(tokio::time::timeout(limit, self.after_ready(socket))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(e),
                    Err(_) => return Some(self.stalled_writes(limit)),
                }
            }
            Downstream::Disconnected { message } => {
                // Keep the first reason of a loss: a refused recovery adds its own
                // ("cannot be recovered"), which says less than the original one.
                if self.last_disconnected.is_none() {
                    self.last_disconnected = message;
                }
            }
            Downstream::Pong => {
                if let Some(sent) = self.ping_sent_at.take() {
                    let rtt = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    self.shared
                        .counters
                        .last_ping_rtt_us
                        .store(rtt.max(1), std::sync::atomic::Ordering::Relaxed);
                }
            }
            Downstream::Ignored => {}
            // Control messages for streams this client does not have are ignored.
            Downstream::StreamAck {
                stream_id,
                expected_sequence_id,
            } => {
                let control = StreamControl::Ack(expected_sequence_id);
                return self.on_stream_control(socket, &stream_id, control).await;
            }
            Downstream::StreamNack {
                stream_id,
                name,
                message,
                expected_sequence_id,
            } => {
                wps_log!(
                    Info,
                    "client {}: stream {} refused a fragment ({}: {}); sending again from {}",
                    self.id.0,
                    stream_id,
                    name,
                    message.as_deref().unwrap_or(""),
                    expected_sequence_id
                );
                let control = StreamControl::Nack(expected_sequence_id);
                return self.on_stream_control(socket, &stream_id, control).await;
            }
            Downstream::StreamClosed { stream_id, error } => {
                let control = StreamControl::Closed(error);
                return self.on_stream_control(socket, &stream_id, control).await;
            }
            Downstream::GroupState {
                group,
                snapshot,
                items_json,
            } => self.emit(Event::GroupState {
                group,
                snapshot,
                items_json,
            }),
            Downstream::InvokeResponse {
                invocation_id,
                success,
                payload,
                error,
            } => self.invokes.settle(&invocation_id, success, payload, error),
        }
        None
    }

    /// Records a sequence id: `Ok(false)` drops a duplicate; an id that cannot belong to this
    /// session ends it. 0 (which the protocol never uses) counts as no id, as the official
    /// clients treat it.
    async fn accept_sequence(
        &mut self,
        socket: &mut Socket,
        sequence_id: Option<u64>,
    ) -> Result<bool, DriveEnd> {
        let Some(id) = sequence_id.filter(|&id| id != 0 && self.codec.is_reliable()) else {
            return Ok(true);
        };
        let r = self.seq.receive(id).map_err(|e| DriveEnd::Fatal {
            reason: format!("{e}: the session's sequence is broken, so it is abandoned"),
            close: CloseCode::Protocol,
        })?;
        if r.ack_now {
            if let Some(ack) = self.seq.take_ack() {
                let request = Request::SequenceAck { sequence_id: ack };
                if Box::pin(self.write_now(socket, request)).await.is_err() {
                    // The read side will report the failure.
                    return Ok(r.deliver);
                }
            }
        }
        Ok(r.deliver)
    }
}

/// A write that made no progress: the peer stopped reading (or vanished).
fn stalled(limit: Duration) -> DriveEnd {
    DriveEnd::Failed(format!(
        "writing to the socket made no progress for {limit:?}"
    ))
}

/// Sends a close frame with `code` and waits briefly for the service's answer.
pub(super) async fn close_gracefully(socket: &mut Socket, code: CloseCode) {
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(Some(frame))).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}
