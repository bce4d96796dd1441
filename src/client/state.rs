//! The connection state machine's states.

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Never started, or the last connection was lost (reconnect pending / backoff).
    Disconnected,
    /// Opening a new connection.
    Connecting,
    /// Connected (the `connected` message arrived).
    Connected,
    /// Re-establishing a dropped reliable connection (same connection id).
    Recovering,
    /// `stop` is in progress.
    Stopping,
    /// Stopped (initial state too).
    Stopped,
}

impl ConnectionState {
    /// True while a session runs (between a successful `start` and `Stopped`).
    pub fn is_active(self) -> bool {
        !matches!(self, ConnectionState::Stopped)
    }
}
