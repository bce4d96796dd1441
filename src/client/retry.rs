//! Retry policies for operations (message retry) and new connections (reconnect retry).

use std::time::Duration;

/// How the delay grows between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// The same `delay` before every retry.
    Fixed,
    /// `delay * 2^(attempt-1)`, capped at `max_delay`.
    Exponential,
}

/// When and how often to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Fixed or exponential growth.
    pub mode: RetryMode,
    /// The first delay (and every delay in fixed mode).
    pub delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Spread each delay randomly over [delay/2, delay] so many clients do not retry in step.
    pub jitter: bool,
}

impl RetryPolicy {
    /// Default for operations: 3 retries, exponential from 0.8 s, at most 120 s.
    pub fn message_default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            mode: RetryMode::Exponential,
            delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(120),
            jitter: false,
        }
    }

    /// Default for new connections: unlimited retries, exponential from 1 s, at most 30 s.
    pub fn reconnect_default() -> RetryPolicy {
        RetryPolicy {
            max_retries: u32::MAX,
            mode: RetryMode::Exponential,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter: false,
        }
    }

    /// The delay before retry number `attempt` (1-based), or `None` when retries are used up.
    pub fn delay_for(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt > self.max_retries {
            return None;
        }
        let base = match self.mode {
            RetryMode::Fixed => self.delay,
            RetryMode::Exponential => {
                let shift = (attempt - 1).min(31);
                self.delay
                    .checked_mul(1u32 << shift)
                    .unwrap_or(self.max_delay)
            }
        };
        let capped = base.min(self.max_delay);
        Some(if self.jitter {
            jittered(capped)
        } else {
            capped
        })
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::message_default()
    }
}

/// A value in [d/2, d], from a cheap process-local generator (no cryptographic need).
fn jittered(d: Duration) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let frac = (x % 1001) as f64 / 1000.0;
    d.mul_f64(0.5 + 0.5 * frac)
}

/// Counts attempts of one retry sequence; reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    /// The immediate first attempt of [`Backoff::next_reconnect_delay`] was taken.
    immediate_taken: bool,
}

impl Backoff {
    /// A fresh sequence under `policy`.
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            policy,
            attempt: 0,
            immediate_taken: false,
        }
    }

    /// The delay before the next attempt, or `None` when the policy is exhausted.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.attempt = self.attempt.saturating_add(1);
        self.policy.delay_for(self.attempt)
    }

    /// For a lost connection: zero the first time (a connection that worked is tried again
    /// at once), then the policy's delays; `None` when the policy is exhausted. Only
    /// [`Backoff::reset`] gives back the immediate attempt, so a service that drops every new
    /// connection meets the policy's delays and its limit.
    pub fn next_reconnect_delay(&mut self) -> Option<Duration> {
        if !self.immediate_taken {
            self.immediate_taken = true;
            return Some(Duration::ZERO);
        }
        self.next_delay()
    }

    /// Start over (after a successful attempt).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.immediate_taken = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_and_caps() {
        let p = RetryPolicy::message_default();
        let ms: Vec<u128> = (1..=3)
            .map(|a| p.delay_for(a).unwrap().as_millis())
            .collect();
        assert_eq!(ms, vec![800, 1600, 3200]);
        assert_eq!(p.delay_for(4), None, "3 retries only");
        let p = RetryPolicy {
            max_retries: 100,
            ..RetryPolicy::reconnect_default()
        };
        assert_eq!(p.delay_for(50), Some(Duration::from_secs(30)));
    }

    #[test]
    fn fixed_and_jitter_stay_in_range() {
        let p = RetryPolicy {
            max_retries: 5,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter: true,
        };
        for a in 1..=5 {
            let d = p.delay_for(a).unwrap();
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }

    #[test]
    fn backoff_resets() {
        let mut b = Backoff::new(RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::reconnect_default()
        });
        assert_eq!(b.next_delay(), Some(Duration::from_secs(1)));
        assert_eq!(b.next_delay(), Some(Duration::from_secs(2)));
        assert_eq!(b.next_delay(), None);
        b.reset();
        assert_eq!(b.next_delay(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn reconnects_once_at_once_then_back_off_until_reset() {
        let mut b = Backoff::new(RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::reconnect_default()
        });
        let delays: Vec<_> = std::iter::from_fn(|| b.next_reconnect_delay()).collect();
        assert_eq!(
            delays,
            [0, 1, 2].map(Duration::from_secs).to_vec(),
            "one immediate attempt, then the policy, then exhausted"
        );
        b.reset();
        assert_eq!(b.next_reconnect_delay(), Some(Duration::ZERO));
    }
}
