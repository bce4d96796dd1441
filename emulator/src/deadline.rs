//! A point in time that fault injection sets and hot paths check: an atomic, so a check
//! while no fault is active costs one load (no clock read, no lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The instant deadlines are counted from (as nanoseconds after it, so they fit an atomic).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// An optional deadline; unset until [`Deadline::extend`] or [`Deadline::set`].
#[derive(Default)]
pub struct Deadline(AtomicU64);

impl Deadline {
    fn encode(t: Instant) -> u64 {
        // 0 means unset; a deadline at the origin itself is in the past anyway.
        u64::try_from(t.saturating_duration_since(origin()).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Moves the deadline to `d` from now, unless it is already later.
    pub fn extend(&self, d: Duration) {
        self.0
            .fetch_max(Self::encode(Instant::now() + d), Ordering::AcqRel);
    }

    /// Sets the deadline to `d` from now (zero: unset).
    pub fn set(&self, d: Duration) {
        let v = if d.is_zero() {
            0
        } else {
            Self::encode(Instant::now() + d)
        };
        self.0.store(v, Ordering::Release);
    }

    /// Whether a deadline was set and not yet found past (one atomic load).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }

    /// The deadline while it is in the future; once past, it is unset.
    pub fn pending(&self) -> Option<Instant> {
        let v = self.0.load(Ordering::Acquire);
        if v == 0 {
            return None;
        }
        let t = origin() + Duration::from_nanos(v);
        if t > Instant::now() {
            return Some(t);
        }
        // Unless it was moved meanwhile.
        let _ = self
            .0
            .compare_exchange(v, 0, Ordering::AcqRel, Ordering::Acquire);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_never_shortens_and_unsets_once_past() {
        let d = Deadline::default();
        assert!(!d.is_set() && d.pending().is_none());
        d.extend(Duration::from_secs(60));
        let later = d.pending().expect("pending");
        d.extend(Duration::from_secs(1));
        assert_eq!(d.pending(), Some(later));
        d.set(Duration::from_secs(1));
        assert!(d.pending().expect("pending") < later);
        d.set(Duration::ZERO);
        assert!(!d.is_set());
        d.set(Duration::from_nanos(1));
        let start = Instant::now();
        while d.pending().is_some() {
            assert!(start.elapsed() < Duration::from_secs(5));
        }
        assert!(!d.is_set());
    }
}
