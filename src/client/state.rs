//! The connection state machine's states, and the cell the engine publishes them in.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
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

const STATES: [ConnectionState; 6] = [
    ConnectionState::Disconnected,
    ConnectionState::Connecting,
    ConnectionState::Connected,
    ConnectionState::Recovering,
    ConnectionState::Stopping,
    ConnectionState::Stopped,
];

/// The current state, written by the engine and read by the handles on any thread; waiters
/// are woken on every change. (A few dozen bytes, where a watch channel takes about 300.)
pub(crate) struct StateCell {
    value: AtomicU8,
    changed: Notify,
}

impl StateCell {
    pub(crate) fn new(state: ConnectionState) -> StateCell {
        StateCell {
            value: AtomicU8::new(state as u8),
            changed: Notify::new(),
        }
    }

    pub(crate) fn get(&self) -> ConnectionState {
        STATES[usize::from(self.value.load(Ordering::Acquire))]
    }

    pub(crate) fn set(&self, state: ConnectionState) {
        self.value.store(state as u8, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Resolves once the state is `wanted`.
    pub(crate) async fn wait_for(&self, wanted: ConnectionState) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change in between is not missed.
            changed.as_mut().enable();
            if self.get() == wanted {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_state_round_trips() {
        let cell = StateCell::new(ConnectionState::Stopped);
        for s in STATES {
            cell.set(s);
            assert_eq!(cell.get(), s);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_see_the_change() {
        let cell = Arc::new(StateCell::new(ConnectionState::Connecting));
        let waiter = tokio::spawn({
            let cell = cell.clone();
            async move { cell.wait_for(ConnectionState::Stopped).await }
        });
        cell.set(ConnectionState::Connected);
        cell.set(ConnectionState::Stopped);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was not woken")
            .unwrap();
        // Already there: resolves at once.
        cell.wait_for(ConnectionState::Stopped).await;
    }
}
