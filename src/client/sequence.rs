//! Sequence ids of reliable protocols: de-duplication and cumulative `sequenceAck`.

/// Ack at once when this many messages are unacknowledged (the service buffers 1000).
pub const IMMEDIATE_ACK_GAP: u64 = 100;

/// The largest forward jump of a sequence id accepted as part of one session. Ids grow by one
/// per message, so a larger jump (e.g. to 2^64 - 1, after which every real message would look
/// like a duplicate and be dropped) is a broken session, not traffic.
pub const MAX_SEQUENCE_JUMP: u64 = 1 << 32;

/// A sequence id that cannot belong to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Implausible {
    /// The largest id received before.
    pub last: u64,
    /// The id received.
    pub received: u64,
}

impl std::fmt::Display for Implausible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sequence id {} after {} jumps by more than {MAX_SEQUENCE_JUMP}",
            self.received, self.last
        )
    }
}

/// What to do with a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Deliver it (false for a duplicate).
    pub deliver: bool,
    /// Send a `sequenceAck` now instead of waiting for the timer.
    pub ack_now: bool,
}

/// The largest sequence id received and what was acknowledged.
#[derive(Debug, Default, Clone)]
pub struct SequenceTracker {
    last: u64,
    acked: u64,
    dirty: bool,
}

impl SequenceTracker {
    /// Starts over (a new connection; not after a recovery).
    pub fn reset(&mut self) {
        *self = SequenceTracker::default();
    }

    /// The largest sequence id received.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Records a message's sequence id.
    pub fn receive(&mut self, sequence_id: u64) -> Result<Received, Implausible> {
        if sequence_id > self.last.saturating_add(MAX_SEQUENCE_JUMP) {
            return Err(Implausible {
                last: self.last,
                received: sequence_id,
            });
        }
        // Duplicates are dropped but still acknowledged, so the service stops resending.
        self.dirty = true;
        if sequence_id <= self.last {
            return Ok(Received {
                deliver: false,
                ack_now: false,
            });
        }
        self.last = sequence_id;
        Ok(Received {
            deliver: true,
            ack_now: self.last - self.acked > IMMEDIATE_ACK_GAP,
        })
    }

    /// Whether a `sequenceAck` is owed.
    pub fn has_unacked(&self) -> bool {
        self.dirty
    }

    /// The id to acknowledge if anything arrived since the last ack; marks it acknowledged.
    pub fn take_ack(&mut self) -> Option<u64> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.acked = self.last;
        Some(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SequenceTracker {
        fn receive_ok(&mut self, id: u64) -> Received {
            self.receive(id).expect("plausible")
        }
    }

    #[test]
    fn implausible_jumps_are_refused_and_change_nothing() {
        let mut s = SequenceTracker::default();
        assert!(s.receive_ok(1).deliver);
        let e = s.receive(u64::MAX).unwrap_err();
        assert_eq!((e.last, e.received), (1, u64::MAX));
        assert!(e.to_string().contains("18446744073709551615"));
        assert_eq!(s.last(), 1);
        assert!(
            s.receive_ok(2).deliver,
            "the session's next id still counts"
        );
        assert!(
            s.receive_ok(2 + MAX_SEQUENCE_JUMP).deliver,
            "the largest jump allowed"
        );
    }

    #[test]
    fn drops_duplicates_but_reacks() {
        let mut s = SequenceTracker::default();
        assert!(s.receive_ok(1).deliver);
        assert_eq!(s.take_ack(), Some(1));
        assert_eq!(s.take_ack(), None);
        assert!(!s.receive_ok(1).deliver);
        assert_eq!(s.take_ack(), Some(1), "duplicate re-acked");
        assert!(s.receive_ok(2).deliver);
    }

    #[test]
    fn jump_over_300_acks_at_once() {
        let mut s = SequenceTracker::default();
        assert!(!s.receive_ok(1).ack_now);
        assert!(s.receive_ok(302).ack_now);
        assert_eq!(s.take_ack(), Some(302));
        assert!(!s.receive_ok(303).ack_now);
    }

    #[test]
    fn reset_only_on_new_connection() {
        let mut s = SequenceTracker::default();
        s.receive_ok(5);
        s.reset();
        assert_eq!(s.last(), 0);
        assert!(s.receive_ok(1).deliver);
    }
}
