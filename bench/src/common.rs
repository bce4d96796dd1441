//! What every scenario shares: parameters, JSON output lines, counters with deadlines,
//! percentiles, process statistics and the emulator's drop fault.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub type BenchResult<T> = Result<T, String>;

/// `key=value` arguments with defaults.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(args: &[String]) -> BenchResult<Params> {
        let mut map = HashMap::new();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("argument '{a}' is not key=value"))?;
            map.insert(k.to_string(), v.to_string());
        }
        Ok(Params(map))
    }

    pub fn usize(&self, key: &str, default: usize) -> BenchResult<usize> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{key}={v} is not a count")),
        }
    }

    pub fn list(&self, key: &str, default: &[usize]) -> BenchResult<Vec<usize>> {
        match self.0.get(key) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.parse()
                        .map_err(|_| format!("{key}={v} is not a list of counts"))
                })
                .collect(),
        }
    }
}

/// Prints one measurement as a JSON line on stdout.
pub fn emit(implementation: &str, metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({"impl": implementation, "metric": metric, "value": value, "unit": unit})
    );
}

pub fn env(name: &str) -> BenchResult<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (bench/run.sh sets it)"))
}

/// Text payload of `size` bytes.
pub fn text_of(size: usize) -> String {
    "x".repeat(size)
}

/// Counts deliveries to one client and remembers when the last one arrived.
#[derive(Default)]
pub struct Counter {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
    notify: Notify,
}

impl Counter {
    pub fn hit(&self) {
        let now = Instant::now();
        *self.last.lock().unwrap() = Some(now);
        self.count.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    pub fn last_arrival(&self) -> Option<Instant> {
        *self.last.lock().unwrap()
    }

    /// Waits until the count reaches `target`, failing after `limit`.
    pub async fn wait_for(&self, target: u64, limit: Duration, what: &str) -> BenchResult<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.get() >= target {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(format!(
                    "{what}: {} of {target} after {limit:?}",
                    self.get()
                ));
            }
        }
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// (VmRSS in KiB, thread count) of this process.
pub fn proc_status() -> BenchResult<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("/proc/self/status has no {name}"))
    };
    Ok((field("VmRSS:")?, field("Threads:")?))
}

/// CLOCK_MONOTONIC in nanoseconds (the clock the drop helper reports).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CLOCK_MONOTONIC time (ns) at which `at` happened.
pub fn instant_ns(at: Instant) -> u64 {
    monotonic_ns().saturating_sub(at.elapsed().as_nanos() as u64)
}

/// Runs `$BENCH_DROP_CMD <connection id>` (the emulator cuts that connection's TCP stream)
/// and returns the CLOCK_MONOTONIC time (ns) at which the drop was requested.
pub fn drop_connection(connection_id: &str) -> BenchResult<u64> {
    let cmd = env("BENCH_DROP_CMD")?;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} '{connection_id}'"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("drop command: {e}"))?;
    if !out.status.success() {
        return Err(format!("drop command failed: {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "drop command printed no time".to_string())
}

pub const WAIT: Duration = Duration::from_secs(60);
