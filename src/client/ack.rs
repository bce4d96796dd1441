//! Tracks operations waiting for their `ack`.

use std::collections::HashMap;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::command::AckReply;
use super::AckOk;
use crate::error::Error;
use crate::protocol::AckError;

/// Who waits for an ack.
pub enum AckWaiter {
    /// A caller of an operation.
    User(AckReply),
    /// The engine's own rejoin of a group, or renewal of a group-state subscription, after
    /// a reconnect.
    Rejoin(Rejoin),
}

/// What the engine renews on a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejoin {
    /// The group.
    pub group: String,
    /// A group-state subscription rather than a membership.
    pub group_state: bool,
}

impl Rejoin {
    /// Rejoining `group`.
    pub fn group(group: impl Into<String>) -> Rejoin {
        Rejoin {
            group: group.into(),
            group_state: false,
        }
    }
}

/// One operation sent and not yet acknowledged.
pub struct PendingAck {
    /// Position in send order (kept when the same ack id is registered again by a retry).
    order: u64,
    /// The frame, kept so it can be sent again (same ack id) after a recovery.
    pub frame: Message,
    /// Who to tell.
    pub waiter: AckWaiter,
    /// When the operation times out.
    pub deadline: Option<Instant>,
}

/// The result of an ack that the engine itself must act on.
pub enum Settled {
    /// A user's operation was resolved (nothing more to do).
    User,
    /// A rejoin finished.
    Rejoin {
        /// What was renewed.
        rejoin: Rejoin,
        /// Its outcome.
        result: Result<AckOk, Error>,
    },
    /// No one waited for this ack id (timed out earlier, or unknown).
    Unknown,
}

/// ack id -> waiter.
#[derive(Default)]
pub struct AckTracker {
    pending: HashMap<u64, PendingAck>,
    next_order: u64,
}

/// Interprets an `ack`: `Duplicate` is success (the operation already took effect).
pub fn ack_result(ack_id: u64, success: bool, error: Option<AckError>) -> Result<AckOk, Error> {
    if success {
        return Ok(AckOk {
            ack_id,
            duplicated: false,
        });
    }
    match error {
        Some(e) if e.name == "Duplicate" => Ok(AckOk {
            ack_id,
            duplicated: true,
        }),
        Some(e) => Err(Error::Ack {
            ack_id,
            name: e.name,
            message: e.message,
        }),
        None => Err(Error::Ack {
            ack_id,
            name: "Unknown".into(),
            message: "the service rejected the operation without an error detail".into(),
        }),
    }
}

impl AckTracker {
    /// Registers a waiter; a previous waiter for the same id (an earlier attempt) is replaced
    /// and its place in send order kept.
    pub fn insert(
        &mut self,
        ack_id: u64,
        frame: Message,
        waiter: AckWaiter,
        deadline: Option<Instant>,
    ) {
        let order = match self.pending.get(&ack_id) {
            Some(p) => p.order,
            None => {
                self.next_order += 1;
                self.next_order
            }
        };
        self.pending.insert(
            ack_id,
            PendingAck {
                order,
                frame,
                waiter,
                deadline,
            },
        );
    }

    /// Forgets the engine's own rejoins (a new connection registers them afresh).
    pub fn drop_rejoins(&mut self) {
        self.pending
            .retain(|_, p| !matches!(p.waiter, AckWaiter::Rejoin(_)));
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Resolves the waiter of `ack_id`.
    pub fn settle(&mut self, ack_id: u64, result: Result<AckOk, Error>) -> Settled {
        match self.pending.remove(&ack_id) {
            Some(PendingAck {
                waiter: AckWaiter::User(tx),
                ..
            }) => {
                tx.send(result);
                Settled::User
            }
            Some(PendingAck {
                waiter: AckWaiter::Rejoin(rejoin),
                ..
            }) => Settled::Rejoin { rejoin, result },
            None => Settled::Unknown,
        }
    }

    /// Fails every waiter (connection lost without recovery, or stop). Returns the rejoins that
    /// were pending, with their error.
    pub fn fail_all(&mut self, error: &Error) -> Vec<(Rejoin, Error)> {
        let mut rejoins = Vec::new();
        for (id, p) in self.pending.drain() {
            let e = error.clone().with_ack_id(id);
            match p.waiter {
                AckWaiter::User(tx) => tx.send(Err(e)),
                AckWaiter::Rejoin(r) => rejoins.push((r, e)),
            }
        }
        rejoins
    }

    /// Frames of the operations still waiting, to be sent (again) on a recovered or new
    /// connection (call [`AckTracker::prune`] first): the engine's rejoins first, then the
    /// application's operations in the order they were first sent.
    pub fn frames_to_resend(&self) -> Vec<Message> {
        let mut waiting: Vec<&PendingAck> = self.pending.values().collect();
        waiting.sort_unstable_by_key(|p| (matches!(p.waiter, AckWaiter::User(_)), p.order));
        waiting.into_iter().map(|p| p.frame.clone()).collect()
    }

    /// Fails operations past their deadline with `Timeout`, drops those whose caller went
    /// away, and returns the rejoins past their deadline.
    pub fn prune(&mut self) -> Vec<(Rejoin, Error)> {
        let now = Instant::now();
        let expired_ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.deadline.is_some_and(|d| d <= now)
                    || matches!(&p.waiter, AckWaiter::User(tx) if tx.is_closed())
            })
            .map(|(id, _)| *id)
            .collect();
        let mut rejoins = Vec::new();
        for id in expired_ids {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            let timeout = Error::Timeout { ack_id: Some(id) };
            match p.waiter {
                AckWaiter::User(tx) => tx.send(Err(timeout)),
                AckWaiter::Rejoin(r) => rejoins.push((r, timeout)),
            }
        }
        rejoins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn frame() -> Message {
        Message::text("{}")
    }

    #[test]
    fn duplicate_is_success() {
        let r = ack_result(
            1,
            false,
            Some(AckError {
                name: "Duplicate".into(),
                message: "m".into(),
            }),
        );
        assert_eq!(
            r,
            Ok(AckOk {
                ack_id: 1,
                duplicated: true
            })
        );
        let r = ack_result(
            6,
            false,
            Some(AckError {
                name: "Forbidden".into(),
                message: "no".into(),
            }),
        );
        assert!(matches!(r, Err(Error::Ack { ack_id: 6, ref name, .. }) if name == "Forbidden"));
    }

    #[test]
    fn settle_fail_and_prune() {
        let mut t = AckTracker::default();
        let (tx, mut rx) = oneshot::channel();
        t.insert(1, frame(), AckWaiter::User(tx.into()), None);
        let (tx2, rx2) = oneshot::channel();
        t.insert(2, frame(), AckWaiter::User(tx2.into()), None);
        drop(rx2);
        assert!(t.prune().is_empty());
        assert_eq!(t.frames_to_resend().len(), 1, "closed waiter pruned");
        assert!(matches!(
            t.settle(1, ack_result(1, true, None)),
            Settled::User
        ));
        assert_eq!(rx.try_recv().unwrap().unwrap().ack_id, 1);
        t.insert(3, frame(), AckWaiter::Rejoin(Rejoin::group("g")), None);
        let rejoins = t.fail_all(&Error::Stopped { ack_id: None });
        assert_eq!(rejoins.len(), 1);
        assert_eq!(rejoins[0].1, Error::Stopped { ack_id: Some(3) });
        assert!(t.is_empty());
    }
}
