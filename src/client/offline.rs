//! The offline queue's bound: room for operations made while no connection is usable
//! (before the first connection, while recovering, while reconnecting). Each such operation
//! holds an `OfflineSlot` from the moment it is handed to the engine until its frame is
//! written or the operation ends; a full queue refuses new ones (async callers) or makes them
//! wait for room (blocking callers, up to their timeout).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Error;

/// Limits of the offline queue (see [`crate::ClientOptions::offline_queue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineQueue {
    /// At most this many operations wait for a connection (at least 1).
    pub max_messages: usize,
    /// At most this many payload bytes wait (the data of sends, the group name of joins and
    /// leaves); 0 means no byte limit beyond `max_messages`.
    pub max_bytes: usize,
}

#[derive(Default)]
struct Used {
    messages: usize,
    bytes: usize,
}

/// The shared accounting of one client's offline queue.
pub(crate) struct OfflineRoom {
    limits: OfflineQueue,
    used: Mutex<Used>,
    freed: Notify,
}

impl OfflineRoom {
    pub(crate) fn new(limits: OfflineQueue) -> Arc<OfflineRoom> {
        Arc::new(OfflineRoom {
            limits,
            used: Mutex::new(Used::default()),
            freed: Notify::new(),
        })
    }

    fn try_take(self: &Arc<Self>, bytes: usize) -> Option<OfflineSlot> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let fits_bytes = self.limits.max_bytes == 0 || used.bytes + bytes <= self.limits.max_bytes;
        if used.messages >= self.limits.max_messages || !fits_bytes {
            return None;
        }
        used.messages += 1;
        used.bytes += bytes;
        Some(OfflineSlot {
            room: self.clone(),
            bytes,
        })
    }

    fn full(&self, bytes: usize) -> Error {
        Error::QueueFull(format!(
            "the offline queue is full ({} messages, {} bytes at most) and this operation of \
             {bytes} bytes does not fit",
            self.limits.max_messages, self.limits.max_bytes
        ))
    }

    /// A slot for an operation of `bytes` payload bytes: at once, or `QueueFull`.
    pub(crate) fn reserve_now(self: &Arc<Self>, bytes: usize) -> Result<OfflineSlot, Error> {
        self.try_take(bytes).ok_or_else(|| self.full(bytes))
    }

    /// A slot, waiting for room at most `limit`; `QueueFull` after that (or at once when the
    /// operation is larger than the byte limit itself).
    pub(crate) async fn reserve_within(
        self: &Arc<Self>,
        bytes: usize,
        limit: Duration,
    ) -> Result<OfflineSlot, Error> {
        if self.limits.max_bytes != 0 && bytes > self.limits.max_bytes {
            return Err(self.full(bytes));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release in between is not missed.
            freed.as_mut().enable();
            if let Some(slot) = self.try_take(bytes) {
                return Ok(slot);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(self.full(bytes));
            }
        }
    }
}

/// Room held in the offline queue; released on drop.
pub(crate) struct OfflineSlot {
    room: Arc<OfflineRoom>,
    bytes: usize,
}

impl Drop for OfflineSlot {
    fn drop(&mut self) {
        {
            let mut used = self.room.used.lock().unwrap_or_else(|p| p.into_inner());
            used.messages -= 1;
            used.bytes -= self.bytes;
        }
        self.room.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_bytes_are_bounded_and_released_on_drop() {
        let room = OfflineRoom::new(OfflineQueue {
            max_messages: 2,
            max_bytes: 10,
        });
        let a = room.reserve_now(4).unwrap();
        assert!(matches!(room.reserve_now(7), Err(Error::QueueFull(_))));
        let b = room.reserve_now(6).unwrap();
        assert!(matches!(room.reserve_now(0), Err(Error::QueueFull(_))));
        drop(a);
        let _c = room.reserve_now(4).unwrap();
        drop(b);
    }

    #[tokio::test]
    async fn a_waiter_gets_room_when_a_slot_is_released_and_times_out_otherwise() {
        let room = OfflineRoom::new(OfflineQueue {
            max_messages: 1,
            max_bytes: 0,
        });
        let held = room.reserve_now(1).unwrap();
        let r = room.reserve_within(1, Duration::from_millis(20)).await;
        assert!(matches!(r, Err(Error::QueueFull(_))));
        let waiter = tokio::spawn({
            let room = room.clone();
            async move {
                room.reserve_within(1, Duration::from_secs(10))
                    .await
                    .is_ok()
            }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap());
        // Larger than the byte limit: refused at once.
        let small = OfflineRoom::new(OfflineQueue {
            max_messages: 5,
            max_bytes: 3,
        });
        assert!(matches!(
            small.reserve_within(4, Duration::from_secs(10)).await,
            Err(Error::QueueFull(_))
        ));
    }
}
