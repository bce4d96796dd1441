//! The client's counters: plain atomics the engine task and the handles bump with relaxed
//! ordering (no lock on any path), read together by [`crate::Client::stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::state::ConnectionState;

/// A snapshot of a client's counters (see [`crate::Client::stats`]). Counters only grow
/// during the client's life (they survive stop/start); the `queued_*`, `inflight_acks` and
/// `last_ping_rtt` fields are current values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The connection state at the time of the snapshot.
    pub state: ConnectionState,
    /// Operation frames written to the socket: sends to groups, events, joins, leaves and
    /// invokes, each resend included (the engine's own pings, sequence acks and rejoins are
    /// not counted).
    pub messages_sent: u64,
    /// Group and server messages delivered to the application (duplicates dropped by
    /// sequence id are not counted).
    pub messages_received: u64,
    /// Bytes of the operation frames counted in `messages_sent`.
    pub bytes_sent: u64,
    /// Bytes of every data frame read from the socket.
    pub bytes_received: u64,
    /// Acked operations that succeeded (`Duplicate` included).
    pub acks_ok: u64,
    /// Acked operations that failed for good (after their retries).
    pub acks_failed: u64,
    /// Retries of acked operations (same ack id, after a timeout, a lost connection or
    /// `InternalServerError`).
    pub retries: u64,
    /// Acked operations the service answered with `Duplicate` (counted in `acks_ok` too).
    pub duplicates: u64,
    /// New connections (`Connected` events).
    pub connects: u64,
    /// Successful recoveries (`Recovered` events).
    pub recoveries: u64,
    /// Reliable sessions that ended without recovery (`SessionLost` events).
    pub session_losses: u64,
    /// Operations waiting for a usable connection.
    pub queued_messages: u64,
    /// Frame bytes of the operations in `queued_messages`.
    pub queued_bytes: u64,
    /// Acked operations started and not yet completed (queued, in flight or between retries).
    pub inflight_acks: u64,
    /// Round-trip time of the last answered ping, in microseconds; 0 when unknown.
    pub last_ping_rtt_us: u64,
}

/// The live counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub acks_ok: AtomicU64,
    pub acks_failed: AtomicU64,
    pub retries: AtomicU64,
    pub duplicates: AtomicU64,
    pub connects: AtomicU64,
    pub recoveries: AtomicU64,
    pub session_losses: AtomicU64,
    pub queued_messages: AtomicU64,
    pub queued_bytes: AtomicU64,
    pub inflight_acks: AtomicU64,
    pub last_ping_rtt_us: AtomicU64,
}

/// Adds one to a counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
#[inline]
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, state: ConnectionState) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            state,
            messages_sent: get(&self.messages_sent),
            messages_received: get(&self.messages_received),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            acks_ok: get(&self.acks_ok),
            acks_failed: get(&self.acks_failed),
            retries: get(&self.retries),
            duplicates: get(&self.duplicates),
            connects: get(&self.connects),
            recoveries: get(&self.recoveries),
            session_losses: get(&self.session_losses),
            queued_messages: get(&self.queued_messages),
            queued_bytes: get(&self.queued_bytes),
            inflight_acks: get(&self.inflight_acks),
            last_ping_rtt_us: get(&self.last_ping_rtt_us),
        }
    }
}
