//! Process-wide logging with Azure SDK levels.
//!
//! Off by default. `AZURE_LOG_LEVEL` or `WPS_LOG` (`error`, `warning`, `info`, `verbose`)
//! turns on logging to stderr; [`set_logger`] installs a callback instead. Values of
//! `access_token` and `awps_reconnection_token` are always redacted.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, RwLock};
use std::time::{Duration, Instant};

/// Log severity, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Failures.
    Error = 1,
    /// Unexpected but handled situations (drops, retries).
    Warning = 2,
    /// Lifecycle: connect, recovery, reconnect, stop.
    Info = 3,
    /// Everything, including frames.
    Verbose = 4,
}

impl Level {
    /// Parses the Azure SDK level names (any case); also accepts `warn`, `debug`, `trace`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warning" | "warn" => Some(Level::Warning),
            "info" => Some(Level::Info),
            "verbose" | "debug" | "trace" => Some(Level::Verbose),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Verbose => "verbose",
        }
    }
}

/// A log sink.
pub type LogFn = Arc<dyn Fn(Level, &str) + Send + Sync>;

static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static SINK: RwLock<Option<LogFn>> = RwLock::new(None);
static ENV_INIT: Once = Once::new();

/// Threads in [`set_logger`] waiting for calls of the replaced sink to return.
static DRAIN_WAITERS: AtomicUsize = AtomicUsize::new(0);
static DRAIN_LOCK: Mutex<()> = Mutex::new(());
static DRAINED: Condvar = Condvar::new();
/// The longest [`set_logger`] waits for calls of the replaced sink still running elsewhere.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

thread_local! {
    /// Whether this thread is inside a sink call (which must not wait for itself).
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

fn init_from_env() {
    ENV_INIT.call_once(|| {
        let level = ["AZURE_LOG_LEVEL", "WPS_LOG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find_map(|v| Level::parse(&v));
        if let Some(level) = level {
            let stderr: LogFn = Arc::new(|level, msg| {
                eprintln!("[webpubsub-client {}] {}", level.as_str(), msg);
            });
            let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
            if sink.is_none() {
                *sink = Some(stderr);
                MAX_LEVEL.store(level as u8, Ordering::Relaxed);
            }
        }
    });
}

/// Installs `sink` for messages at `max_level` and above (`None` turns logging off).
///
/// Returns once calls of the replaced sink on other threads have returned (at most 5 s), so
/// whatever the old sink uses can be released afterwards.
pub fn set_logger(sink: Option<LogFn>, max_level: Level) {
    init_from_env();
    let old = {
        let mut guard = SINK.write().unwrap_or_else(|p| p.into_inner());
        let level = if sink.is_some() { max_level as u8 } else { 0 };
        MAX_LEVEL.store(level, Ordering::Relaxed);
        std::mem::replace(&mut *guard, sink)
    };
    if let Some(old) = old {
        if !IN_SINK.with(Cell::get) {
            wait_until_unused(&old);
        }
    }
}

/// Marks this thread as inside a sink call until dropped (also when the sink unwinds).
struct InSink(bool);

impl InSink {
    fn enter() -> InSink {
        InSink(IN_SINK.with(|s| s.replace(true)))
    }
}

impl Drop for InSink {
    fn drop(&mut self) {
        IN_SINK.with(|s| s.set(self.0));
    }
}

/// Waits until `old` is referenced only by the caller: every call that cloned it returned.
fn wait_until_unused(old: &LogFn) {
    DRAIN_WAITERS.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut guard = DRAIN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    while Arc::strong_count(old) > 1 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        guard = DRAINED
            .wait_timeout(guard, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    drop(guard);
    DRAIN_WAITERS.fetch_sub(1, Ordering::SeqCst);
}

/// Changes the level of the installed sink.
pub fn set_level(max_level: Level) {
    init_from_env();
    if SINK.read().map(|s| s.is_some()).unwrap_or(false) {
        MAX_LEVEL.store(max_level as u8, Ordering::Relaxed);
    }
}

/// Whether a message at `level` would be logged.
#[inline]
pub fn enabled(level: Level) -> bool {
    init_from_env();
    (level as u8) <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Logs a message (redacting tokens) if `level` is enabled.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let text = redact(&args.to_string());
    let sink = SINK.read().ok().and_then(|s| s.clone());
    if let Some(sink) = sink {
        {
            let _in_sink = InSink::enter();
            sink(level, &text);
        }
        drop(sink);
        // Pairs with the fence in `wait_until_unused`: either it sees the count drop, or this
        // sees its waiter and wakes it.
        fence(Ordering::SeqCst);
        if DRAIN_WAITERS.load(Ordering::SeqCst) > 0 {
            let _guard = DRAIN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            DRAINED.notify_all();
        }
    }
}

/// Logs with `format!` syntax: `wps_log!(Info, "connected {}", id)`.
#[macro_export]
macro_rules! wps_log {
    ($level:ident, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::log($crate::log::Level::$level, format_args!($($arg)+));
        }
    };
}

/// Query parameters whose values are secrets, compared after percent-decoding the key and
/// ignoring ASCII case (the service decodes `access%5Ftoken` to `access_token`, so a log must
/// treat both spellings alike).
const SECRET_KEYS: [&str; 2] = ["access_token", "awps_reconnection_token"];

/// Characters that end a query key or value in log text (URLs, headers, JSON strings).
fn is_delimiter(c: u8) -> bool {
    matches!(c, b'&' | b'?' | b'#' | b'"' | b'\'' | b';' | b',') || c.is_ascii_whitespace()
}

/// Whether `key` (as written, possibly percent-encoded) names a secret parameter.
fn is_secret_key(key: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            key[i],
            key.get(i + 1).copied().and_then(hex),
            key.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    SECRET_KEYS
        .iter()
        .any(|k| k.as_bytes().eq_ignore_ascii_case(&decoded))
}

/// Replaces the values of `access_token` and `awps_reconnection_token` (in any case, with any
/// percent-encoding of the key) with `REDACTED`.
pub fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    // Bytes before `copied` are already in `out` (only built once a secret is found).
    let mut copied = 0;
    let mut key_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_delimiter(b) {
            key_start = i + 1;
        } else if b == b'=' {
            let value_start = i + 1;
            let value_end = bytes[value_start..]
                .iter()
                .position(|&c| is_delimiter(c))
                .map_or(bytes.len(), |p| value_start + p);
            if value_end > value_start && is_secret_key(&bytes[key_start..i]) {
                // Delimiters and '=' are ASCII, so these are char boundaries.
                out.push_str(&text[copied..value_start]);
                out.push_str("REDACTED");
                copied = value_end;
            }
            i = value_end;
            key_start = value_end;
            continue;
        }
        i += 1;
    }
    if copied == 0 {
        return text.to_owned();
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_both_tokens() {
        let u = "wss://h/client/hubs/h?access_token=abc.def&awps_connection_id=c1&awps_reconnection_token=xyz";
        assert_eq!(
            redact(u),
            "wss://h/client/hubs/h?access_token=REDACTED&awps_connection_id=c1&awps_reconnection_token=REDACTED"
        );
        assert_eq!(redact("no secrets"), "no secrets");
        assert_eq!(redact("ACCESS_TOKEN=x y"), "ACCESS_TOKEN=REDACTED y");
    }

    #[test]
    fn redacts_percent_encoded_keys_and_leaves_lookalikes() {
        assert_eq!(
            redact("ws://h/?access%5Ftoken=abc&x=1"),
            "ws://h/?access%5Ftoken=REDACTED&x=1"
        );
        assert_eq!(
            redact("GET /c?%61ccess%5fTOKEN=abc#f"),
            "GET /c?%61ccess%5fTOKEN=REDACTED#f"
        );
        assert_eq!(
            redact("awps%5Freconnection%5Ftoken=t1 and access_token=t2"),
            "awps%5Freconnection%5Ftoken=REDACTED and access_token=REDACTED"
        );
        // Names that only end or start like a secret are not secrets.
        assert_eq!(redact("my_access_token=v"), "my_access_token=v");
        assert_eq!(redact("access_token_hint=v"), "access_token_hint=v");
        assert_eq!(redact("access_token="), "access_token=");
        assert_eq!(redact("é=1&access_token=é"), "é=1&access_token=REDACTED");
    }

    #[test]
    fn levels_parse() {
        assert_eq!(Level::parse("Warning"), Some(Level::Warning));
        assert_eq!(Level::parse("verbose"), Some(Level::Verbose));
        assert_eq!(Level::parse("nope"), None);
    }
}
