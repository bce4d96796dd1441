//! What a client reports to its application.

use crate::error::Error;
use crate::protocol::Payload;

/// Identifies a client in events (unique within the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// The client's events: the six the protocol defines, then the recovery and session-lost
/// signals.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new connection is established (not fired after a recovery).
    Connected {
        /// The connection id the service assigned.
        connection_id: String,
        /// The user id, if the connection has one.
        user_id: Option<String>,
    },
    /// A connection was lost and not recovered, or the client was stopped.
    Disconnected {
        /// The lost connection's id, if it had connected.
        connection_id: Option<String>,
        /// The reason from the service's last `disconnected` message, or a local reason.
        message: Option<String>,
    },
    /// The client stopped (user stop, reconnect off or retries exhausted); last, once per start.
    Stopped {
        /// Why the client stopped by itself (reconnect retries exhausted, or a lost connection
        /// with auto-reconnect off); `None` after a stop the application requested.
        reason: Option<String>,
    },
    /// A message from the server (REST or upstream handler).
    ServerMessage {
        /// The message.
        message: Payload,
        /// Sequence id on reliable protocols.
        sequence_id: Option<u64>,
    },
    /// A message sent to a group this client joined.
    GroupMessage {
        /// The group.
        group: String,
        /// The publisher's user id, if any.
        from_user_id: Option<String>,
        /// The message.
        message: Payload,
        /// Sequence id on reliable protocols.
        sequence_id: Option<u64>,
    },
    /// Rejoining a group on a new connection failed.
    RejoinGroupFailed {
        /// The group.
        group: String,
        /// Why.
        error: Error,
    },
    /// A reliable connection dropped and recovery starts (once per recovery episode, not per
    /// attempt). Not raised for `stop`, close 1008, non-reliable protocols, or a connection
    /// without reconnection token.
    Recovering {
        /// The id of the connection being recovered.
        connection_id: String,
    },
    /// The service accepted the session on a new socket: the recovery succeeded. No second
    /// `Connected` follows.
    Recovered {
        /// The recovered connection's id (unchanged).
        connection_id: String,
    },
    /// A reliable session ended without recovery (recovery refused or timed out, close 1008,
    /// buffer overflow, a broken session): messages addressed to this client after
    /// `last_sequence_id` and before the next `Connected` may be lost. Raised before the
    /// `Disconnected` of that connection.
    SessionLost {
        /// The lost connection's id.
        connection_id: String,
        /// The largest sequence id received on the session (0 when none arrived).
        last_sequence_id: u64,
        /// Why the session could not be recovered.
        reason: String,
    },
    /// One frame of a group stream, in order per `(group, stream_id)`. The last frame of a
    /// stream has `end_of_stream` set (its payload may be empty) and, when the stream failed,
    /// `error`: the service's (`UserError`, `IdleTimeout`, `Cancelled`, ...) or the client's
    /// own (`SequenceGap`, `Duplicate`, `IdleTimeout`, `SessionLost`, `Stopped`,
    /// `TooManyStreams`). After the last frame no other frame of that stream is reported.
    StreamFrame {
        /// The group.
        group: String,
        /// The publisher's user id, if any.
        from_user_id: Option<String>,
        /// The fragment (empty on a terminal frame without data).
        message: Payload,
        /// Connection-level sequence id on reliable protocols.
        sequence_id: Option<u64>,
        /// The stream.
        stream_id: String,
        /// The fragment's id within the stream (1, 2, ...); on the terminal frame, the id
        /// after the last fragment.
        stream_sequence_id: u64,
        /// Whether this is the stream's last frame.
        end_of_stream: bool,
        /// Why the stream failed (terminal frames only).
        error: Option<crate::protocol::StreamError>,
    },
    /// A group-state snapshot (after a subscribe) or update.
    GroupState {
        /// The group.
        group: String,
        /// Whether this is the full state rather than a change.
        snapshot: bool,
        /// The records as a JSON array:
        /// `[{"connectionId","userId"?,"state"?,"updatedAt"}]` (no `state`: cleared).
        items_json: String,
    },
}

/// Receives a client's events.
pub trait EventHandler: Send + Sync + 'static {
    /// Called from the engine task, in order. Must not block; queue and return.
    fn on_event(&self, client: &ClientId, event: Event);

    /// The bound of this handler's queue of messages not yet handled, if it has one: the
    /// engine stops reading the socket while it is full (see [`crate::Backlog`]). `None`
    /// (the default) for a handler that does not queue.
    fn backlog(&self) -> Option<std::sync::Arc<super::backlog::Backlog>> {
        None
    }
}

/// Forwards events into an unbounded channel (used by [`crate::Client::with_channel`]).
pub(crate) struct ChannelHandler(pub tokio::sync::mpsc::UnboundedSender<Event>);

impl EventHandler for ChannelHandler {
    fn on_event(&self, _client: &ClientId, event: Event) {
        let _ = self.0.send(event);
    }
}
