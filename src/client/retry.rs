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
    let mut rng = Rng::from_global();
    jitter(d, 50, &mut rng)
}

/// `d` shortened by a random share of up to `percent` % of it: uniform over
/// `[d * (1 - percent/100), d]`, so jitter never makes a delay longer than the policy's.
pub fn jitter(d: Duration, percent: u32, rng: &mut Rng) -> Duration {
    let percent = percent.min(100);
    if percent == 0 || d.is_zero() {
        return d;
    }
    // A fraction in [0, 1] with a resolution of 1/10000.
    let frac = (rng.next_u64() % 10_001) as f64 / 10_000.0;
    d.mul_f64(1.0 - f64::from(percent) / 100.0 * frac)
}

/// SplitMix64: small, fast, and reproducible from a seed (tests use fixed seeds).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator seeded from a process-wide sequence mixed with the clock, so clients
    /// created together still draw different delays.
    pub fn from_global() -> Rng {
        use std::sync::atomic::{AtomicU64, Ordering};
        static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut r = Rng(STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Counts attempts of one retry sequence; reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    /// The immediate first attempt of [`Backoff::next_reconnect_delay`] was taken.
    immediate_taken: bool,
    /// Jitter in percent applied to every delay (0: the policy's own `jitter` flag decides).
    jitter_percent: u32,
    rng: Rng,
}

impl Backoff {
    /// A fresh sequence under `policy` (jittered over [delay/2, delay] if `policy.jitter`).
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff::with_jitter(policy, 0, Rng::from_global())
    }

    /// A fresh sequence under `policy` whose delays are shortened by a random share of up to
    /// `jitter_percent` % (0..=100; see [`jitter`]), drawn from `rng`. With 0 the policy's
    /// own `jitter` flag applies (50 %). With jitter, the immediate first attempt of
    /// [`Backoff::next_reconnect_delay`] waits a random `[0, delay * jitter_percent/100]`
    /// instead, so clients dropped together do not all come back at the same instant.
    pub fn with_jitter(policy: RetryPolicy, jitter_percent: u32, rng: Rng) -> Backoff {
        let jitter_percent = match jitter_percent.min(100) {
            0 if policy.jitter => 50,
            p => p,
        };
        let policy = RetryPolicy {
            jitter: false,
            ..policy
        };
        Backoff {
            policy,
            attempt: 0,
            immediate_taken: false,
            jitter_percent,
            rng,
        }
    }

    /// The delay before the next attempt, or `None` when the policy is exhausted.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.attempt = self.attempt.saturating_add(1);
        let d = self.policy.delay_for(self.attempt)?;
        Some(jitter(d, self.jitter_percent, &mut self.rng))
    }

    /// For a lost connection: zero the first time (a connection that worked is tried again
    /// at once; with jitter, after a random share of the first delay), then the policy's
    /// delays; `None` when the policy is exhausted. Only [`Backoff::reset`] gives back the
    /// immediate attempt, so a service that drops every new connection meets the policy's
    /// delays and its limit.
    pub fn next_reconnect_delay(&mut self) -> Option<Duration> {
        if !self.immediate_taken {
            self.immediate_taken = true;
            if self.jitter_percent == 0 {
                return Some(Duration::ZERO);
            }
            let spread = self
                .policy
                .delay
                .min(self.policy.max_delay)
                .mul_f64(f64::from(self.jitter_percent) / 100.0);
            return Some(spread - jitter(spread, 100, &mut self.rng));
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
    fn jittered_delays_are_reproducible_and_within_the_percent() {
        let policy = RetryPolicy {
            max_retries: u32::MAX,
            ..RetryPolicy::reconnect_default()
        };
        let seq = |seed| {
            let mut b = Backoff::with_jitter(policy.clone(), 20, Rng::seeded(seed));
            (0..12)
                .map(|_| b.next_reconnect_delay().unwrap())
                .collect::<Vec<_>>()
        };
        let a = seq(7);
        assert_eq!(a, seq(7), "the same seed gives the same sequence");
        assert_ne!(a, seq(8), "another seed gives another sequence");
        // The immediate attempt waits at most 20 % of the first delay.
        assert!(a[0] <= Duration::from_millis(200), "{:?}", a[0]);
        // Then each delay lies in [80 %, 100 %] of the undithered one: 1, 2, 4, 8, 16, 30, 30..
        let plain = [1u64, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30];
        for (d, p) in a[1..].iter().zip(plain) {
            let p = Duration::from_secs(p);
            assert!(*d <= p && *d >= p.mul_f64(0.8), "{d:?} vs {p:?}");
        }
        assert!(
            a[6..].iter().any(|d| *d != a[6]),
            "capped delays still vary"
        );
        // 0 % keeps the policy exact; 100 % spreads over [0, d].
        let mut b = Backoff::with_jitter(policy.clone(), 0, Rng::seeded(1));
        let exact: Vec<_> = (0..4).map(|_| b.next_reconnect_delay().unwrap()).collect();
        assert_eq!(exact, [0, 1, 2, 4].map(Duration::from_secs).to_vec());
        let mut b = Backoff::with_jitter(policy, 100, Rng::seeded(3));
        b.next_reconnect_delay();
        for _ in 0..50 {
            assert!(b.next_delay().unwrap() <= Duration::from_secs(30));
        }
    }

    #[test]
    fn unlimited_retries_never_run_out() {
        let mut b = Backoff::new(RetryPolicy {
            max_retries: u32::MAX,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            jitter: false,
        });
        for _ in 0..100_000 {
            assert_eq!(b.next_delay(), Some(Duration::from_millis(1)));
        }
        b.attempt = u32::MAX - 1;
        for _ in 0..3 {
            assert_eq!(
                b.next_delay(),
                Some(Duration::from_millis(1)),
                "no wrap-around"
            );
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
