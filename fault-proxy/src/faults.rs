//! What can go wrong on the wire: the faults of one direction, the set for a proxy, and the
//! seeded random source behind jitter and slicing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to service.
    Upstream,
    /// Service to client.
    Downstream,
    /// Both ways (for setting faults).
    Both,
}

/// Faults applied to the bytes flowing one way. The default passes everything unchanged.
/// Byte counts are per connection and per direction, from the moment the faults were set
/// (or the connection opened, if later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added to every chunk, in milliseconds.
    pub latency_ms: u64,
    /// Random variation of the delay, up to this many milliseconds either way (order is kept).
    pub jitter_ms: u64,
    /// Throughput limit in bytes per second (0: unlimited).
    pub bandwidth_bytes_per_sec: u64,
    /// Splits writes into pieces of about this many bytes (0: no slicing), so that frames
    /// arrive in parts.
    pub slice_bytes: u64,
    /// Random variation of a slice's size, up to this many bytes either way.
    pub slice_variation: u64,
    /// Pause between slices, in microseconds.
    pub slice_delay_us: u64,
    /// Read and discard everything (a half-open connection: the sender sees no error).
    pub blackhole: bool,
    /// Close the connection (FIN both ways) once this many bytes went this way.
    pub limit_bytes: Option<u64>,
    /// Reset the connection (RST both ways) once this many bytes went this way; 0 resets at
    /// the next byte.
    pub reset_after_bytes: Option<u64>,
    /// Delay before an end of stream is passed on, in milliseconds.
    pub slow_close_ms: u64,
}

impl Faults {
    /// Whether nothing is changed.
    pub fn is_clear(&self) -> bool {
        *self == Faults::default()
    }

    /// Checks values that would make the proxy misbehave rather than the network.
    pub fn validate(&self) -> Result<(), String> {
        const DAY_MS: u64 = 86_400_000;
        for (name, ms) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
            ("slow_close_ms", self.slow_close_ms),
        ] {
            if ms > DAY_MS {
                return Err(format!("{name} {ms} is more than a day"));
            }
        }
        if self.slice_delay_us > DAY_MS * 1000 {
            return Err("slice_delay_us is more than a day".into());
        }
        if self.slice_bytes > 0 && self.slice_variation >= self.slice_bytes {
            return Err("slice_variation must be smaller than slice_bytes".into());
        }
        Ok(())
    }
}

/// Everything a proxy applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSet {
    /// Client to service.
    pub upstream: Faults,
    /// Service to client.
    pub downstream: Faults,
    /// New connections are reset as soon as they are accepted (the service looks down).
    pub refuse: bool,
}

impl FaultSet {
    /// The faults of one direction (`Both` reads as upstream).
    pub fn get(&self, direction: Direction) -> Faults {
        match direction {
            Direction::Downstream => self.downstream,
            Direction::Upstream | Direction::Both => self.upstream,
        }
    }

    /// Replaces the faults of `direction` (both for `Both`).
    pub fn set(&mut self, direction: Direction, faults: Faults) {
        if matches!(direction, Direction::Upstream | Direction::Both) {
            self.upstream = faults;
        }
        if matches!(direction, Direction::Downstream | Direction::Both) {
            self.downstream = faults;
        }
    }
}

/// A small seeded generator (splitmix64): the same seed gives the same jitter and slices, so a
/// failing run can be replayed. Not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `base - spread ..= base + spread` (never below 0).
    pub fn around(&mut self, base: u64, spread: u64) -> u64 {
        if spread == 0 {
            return base;
        }
        let offset = self.next_u64() % (2 * spread + 1);
        (base + offset).saturating_sub(spread)
    }
}

/// The delay of one chunk under `faults`.
pub(crate) fn chunk_delay(faults: &Faults, rng: &mut Rng) -> Duration {
    Duration::from_millis(rng.around(faults.latency_ms, faults.jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.around(50, 20)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.around(50, 20)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| (30..=70).contains(&x)));
        assert!(xs.iter().any(|&x| x != xs[0]), "it varies");
        assert_eq!(Rng::new(1).around(3, 10).min(13), Rng::new(1).around(3, 10));
    }

    #[test]
    fn fault_sets_parse_partially_and_refuse_unknown_fields() {
        let f: Faults = serde_json::from_str(r#"{"latency_ms":20}"#).unwrap();
        assert_eq!(f.latency_ms, 20);
        assert!(!f.is_clear());
        assert!(serde_json::from_str::<Faults>(r#"{"latencyms":20}"#).is_err());
        let mut set = FaultSet::default();
        set.set(Direction::Both, f);
        assert_eq!(set.get(Direction::Downstream), f);
        assert!(Faults {
            slice_bytes: 10,
            slice_variation: 10,
            ..Faults::default()
        }
        .validate()
        .is_err());
    }
}
