//! Sequence ids of reliable protocols: de-duplication and cumulative `sequenceAck`.

/// Ack at once when this many messages are unacknowledged (the service buffers 1000).
pub const IMMEDIATE_ACK_GAP: u64 = 100;

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
    #[cfg(test)]
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Records a message's sequence id.
    pub fn receive(&mut self, sequence_id: u64) -> Received {
        // Duplicates are dropped but still acknowledged, so the service stops resending.
        self.dirty = true;
        if sequence_id <= self.last {
            return Received {
                deliver: false,
                ack_now: false,
            };
        }
        self.last = sequence_id;
        Received {
            deliver: true,
            ack_now: self.last - self.acked > IMMEDIATE_ACK_GAP,
        }
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

    #[test]
    fn drops_duplicates_but_reacks() {
        let mut s = SequenceTracker::default();
        assert!(s.receive(1).deliver);
        assert_eq!(s.take_ack(), Some(1));
        assert_eq!(s.take_ack(), None);
        assert!(!s.receive(1).deliver);
        assert_eq!(s.take_ack(), Some(1), "duplicate re-acked");
        assert!(s.receive(2).deliver);
    }

    #[test]
    fn jump_over_300_acks_at_once() {
        let mut s = SequenceTracker::default();
        assert!(!s.receive(1).ack_now);
        assert!(s.receive(302).ack_now);
        assert_eq!(s.take_ack(), Some(302));
        assert!(!s.receive(303).ack_now);
    }

    #[test]
    fn reset_only_on_new_connection() {
        let mut s = SequenceTracker::default();
        s.receive(5);
        s.reset();
        assert_eq!(s.last(), 0);
        assert!(s.receive(1).deliver);
    }
}
