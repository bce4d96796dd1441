//! Messages from [`super::Client`] handles to the engine task.

use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use super::invoke::InvokeResult;
use super::AckOk;
use crate::error::Error;

/// A request to the engine task.
pub enum Command {
    /// Begin a session.
    Start(oneshot::Sender<Result<(), Error>>),
    /// End the session; answered once stopped.
    Stop(oneshot::Sender<()>),
    /// Write a frame.
    Send(Outbound),
    /// Send an `invoke` and route its `invokeResponse`.
    Invoke {
        /// The invocation id.
        id: String,
        /// The encoded `invoke`.
        frame: Message,
        /// Where the response goes.
        reply: oneshot::Sender<InvokeResult>,
    },
    /// Open, write to or end a group stream.
    Stream(super::stream::StreamCommand),
    /// Forget an invocation and tell the service (`cancelInvocation`).
    CancelInvoke {
        /// The invocation id.
        id: String,
        /// The encoded `cancelInvocation`.
        frame: Message,
    },
}

/// One frame to write, with who waits for what.
pub struct Outbound {
    /// The encoded frame.
    pub frame: Message,
    /// What completes the operation.
    pub kind: OutboundKind,
    /// Room in the offline queue, held until the frame is written or the operation ends.
    pub slot: Option<super::offline::OfflineSlot>,
}

/// Who hears how an acked operation ended.
pub enum AckReply {
    /// A caller awaiting the outcome.
    Waiting(oneshot::Sender<Result<AckOk, Error>>),
    /// A function the engine calls with the outcome where it is decided (the ack decoded, the
    /// deadline passed, the session ended), so that an operation nobody awaits costs no task.
    /// It must not block.
    Call(Box<dyn FnOnce(Result<AckOk, Error>) + Send + Sync>),
}

impl AckReply {
    /// Delivers the outcome.
    pub fn send(self, outcome: Result<AckOk, Error>) {
        match self {
            AckReply::Waiting(tx) => {
                let _ = tx.send(outcome);
            }
            AckReply::Call(f) => f(outcome),
        }
    }

    /// Whether nobody waits any more (a caller that gave up); a function always waits.
    pub fn is_closed(&self) -> bool {
        match self {
            AckReply::Waiting(tx) => tx.is_closed(),
            AckReply::Call(_) => false,
        }
    }
}

impl From<oneshot::Sender<Result<AckOk, Error>>> for AckReply {
    fn from(tx: oneshot::Sender<Result<AckOk, Error>>) -> AckReply {
        AckReply::Waiting(tx)
    }
}

/// What completes an outbound operation.
pub enum OutboundKind {
    /// The service's `ack`.
    Acked {
        /// The ack id in the frame.
        ack_id: u64,
        /// Receives the ack, or `Timeout` from the engine once `deadline` passed.
        reply: AckReply,
        /// When the engine gives up waiting for the ack.
        deadline: tokio::time::Instant,
    },
    /// Being written to the socket.
    FireAndForget {
        /// Told once the frame is flushed.
        reply: oneshot::Sender<Result<(), Error>>,
        /// For a frame handed over while no connection was usable: when the engine gives up
        /// waiting for one (`Timeout`). `None` for a frame written at once.
        deadline: Option<tokio::time::Instant>,
    },
    /// Fire-and-forget already reported as done to its caller; holds a slot of the client's
    /// fire-and-forget buffer until the frame is flushed or dropped.
    Buffered {
        /// Released on drop.
        slot: BufferSlot,
    },
}

impl Outbound {
    /// Completes the operation with an error without sending it.
    pub fn reject(self, error: Error) {
        match self.kind {
            OutboundKind::Acked { ack_id, reply, .. } => {
                reply.send(Err(error.with_ack_id(ack_id)));
            }
            OutboundKind::FireAndForget { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            OutboundKind::Buffered { .. } => {}
        }
    }

    /// An operation past its deadline: fail it with `Timeout` and return `None`.
    pub fn expire(self, now: tokio::time::Instant) -> Option<Outbound> {
        if self.is_expired(now) {
            self.reject(Error::Timeout { ack_id: None });
            None
        } else {
            Some(self)
        }
    }

    /// Whether an operation's deadline (acked, or fire-and-forget waiting for a connection)
    /// has passed.
    pub fn is_expired(&self, now: tokio::time::Instant) -> bool {
        match &self.kind {
            OutboundKind::Acked { deadline, .. } => *deadline <= now,
            OutboundKind::FireAndForget {
                deadline: Some(deadline),
                ..
            } => *deadline <= now,
            _ => false,
        }
    }

    /// Whether the caller stopped waiting (its timeout elapsed).
    pub fn abandoned(&self) -> bool {
        match &self.kind {
            OutboundKind::Acked { reply, .. } => reply.is_closed(),
            OutboundKind::FireAndForget { reply, .. } => reply.is_closed(),
            OutboundKind::Buffered { .. } => false,
        }
    }
}

/// One frame counted against the fire-and-forget buffer; the count drops with it.
pub struct BufferSlot(pub(crate) std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl BufferSlot {
    /// Takes a slot if fewer than `limit` are taken.
    pub fn try_take(
        count: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
        limit: usize,
    ) -> Option<BufferSlot> {
        use std::sync::atomic::Ordering;
        if count.fetch_add(1, Ordering::AcqRel) < limit {
            Some(BufferSlot(count.clone()))
        } else {
            count.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

impl Drop for BufferSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn buffer_slots_are_bounded_and_released_on_drop() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = BufferSlot::try_take(&count, 2).unwrap();
        let b = BufferSlot::try_take(&count, 2).unwrap();
        assert!(BufferSlot::try_take(&count, 2).is_none());
        assert_eq!(count.load(Ordering::SeqCst), 2);
        drop(a);
        let c = BufferSlot::try_take(&count, 2).unwrap();
        drop((b, c));
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
