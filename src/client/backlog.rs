//! The bound on delivered-but-not-yet-handled messages. A handler that queues events for
//! later (the C API's poll mode and callback threads) shares a [`Backlog`] with the engine:
//! it counts each queued message in and out, and the engine stops reading the socket while
//! the backlog is full. The service then sees no sequence acks beyond what was read, its own
//! flow control applies (it buffers, and past its limit it ends the session with 1008, which
//! the client reports as a lost session), and the client's memory stays bounded: nothing is
//! dropped silently and nothing grows without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Messages queued for the application and not yet handled.
pub struct Backlog {
    max_messages: usize,
    max_bytes: usize,
    messages: AtomicUsize,
    bytes: AtomicUsize,
    room: Notify,
}

impl Backlog {
    /// A backlog of at most `max_messages` messages and `max_bytes` payload bytes (0: no byte
    /// limit); `max_messages` 0 is taken as 1.
    pub fn new(max_messages: usize, max_bytes: usize) -> Arc<Backlog> {
        Arc::new(Backlog {
            max_messages: max_messages.max(1),
            max_bytes,
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            room: Notify::new(),
        })
    }

    /// A message of `bytes` payload bytes was queued.
    pub fn added(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// A queued message of `bytes` payload bytes was handled (or dropped at teardown).
    pub fn removed(&self, bytes: usize) {
        let was_full = self.is_full();
        self.messages.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if was_full && !self.is_full() {
            self.room.notify_waiters();
        }
    }

    /// Whether the engine must stop reading.
    pub fn is_full(&self) -> bool {
        self.messages.load(Ordering::Acquire) >= self.max_messages
            || (self.max_bytes != 0 && self.bytes.load(Ordering::Acquire) >= self.max_bytes)
    }

    /// Messages and bytes queued now.
    pub fn len(&self) -> (usize, usize) {
        (
            self.messages.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }

    /// Resolves once the backlog has room.
    pub async fn room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a release in between is not missed.
            room.as_mut().enable();
            if !self.is_full() {
                return;
            }
            room.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_at_either_limit_and_room_wakes_the_waiter() {
        let b = Backlog::new(2, 10);
        b.added(3);
        assert!(!b.is_full());
        b.added(3);
        assert!(b.is_full(), "two messages");
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.room().await }
        });
        tokio::task::yield_now().await;
        b.removed(3);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        b.added(8);
        assert!(b.is_full(), "11 bytes");
        assert_eq!(b.len(), (2, 11));
    }
}
