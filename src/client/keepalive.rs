//! Keep-alive: `ping` periodically; a connection silent for too long is dead.

use std::time::Duration;

use tokio::time::Instant;

/// Liveness of one connection.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Duration,
    timeout: Duration,
    last_inbound: Instant,
    next_ping: Instant,
}

impl KeepAlive {
    /// A fresh connection; `interval == 0` disables pings (the silence timeout still applies
    /// when non-zero).
    pub fn new(interval: Duration, timeout: Duration) -> KeepAlive {
        let now = Instant::now();
        KeepAlive {
            interval,
            timeout,
            last_inbound: now,
            next_ping: now + interval,
        }
    }

    /// Any inbound frame proves the peer alive.
    pub fn on_inbound(&mut self) {
        self.last_inbound = Instant::now();
    }

    /// Whether pings are sent at all.
    pub fn pings_enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// When the engine must wake up next for keep-alive work.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let dead_at = (!self.timeout.is_zero()).then(|| self.last_inbound + self.timeout);
        let ping_at = self.pings_enabled().then_some(self.next_ping);
        match (dead_at, ping_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when nothing arrived for longer than the timeout.
    pub fn is_dead(&self, now: Instant) -> bool {
        !self.timeout.is_zero() && now.duration_since(self.last_inbound) >= self.timeout
    }

    /// True when a ping is due (and schedules the next one).
    pub fn ping_due(&mut self, now: Instant) -> bool {
        if !self.pings_enabled() || now < self.next_ping {
            return false;
        }
        self.next_ping = now + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_and_detects_silence() {
        let mut k = KeepAlive::new(Duration::from_secs(20), Duration::from_secs(120));
        assert!(!k.ping_due(Instant::now()));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(k.ping_due(Instant::now()));
        assert!(!k.ping_due(Instant::now()));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(k.is_dead(Instant::now()));
        k.on_inbound();
        assert!(!k.is_dead(Instant::now()));
    }
}
