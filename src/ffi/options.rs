//! `wps_options`: the opaque options builder. New options are new setters, never a layout change.
//!
//! A builder is a plain heap object, like rustls-ffi's and hyper's builders, not a checked
//! handle: it is short-lived and owned by one piece of code. Not thread-safe (use one per thread
//! or lock around it); free it exactly once with `wps_options_free` (a check stored inside it
//! could not make a double free safe: reading it would already touch freed memory).
//! `wps_client_new*` copies it, so it may be freed or reused right after.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::{ClientOptions, Protocol, RetryMode, RetryPolicy};

use super::dispatch::{Mode, WPS_DISPATCH_POLL, WPS_DISPATCH_THREAD};
use super::error::{report, wps_result, Failure, WPS_ERR_INVALID_ARG, WPS_OK};
use super::macros::{boundary, ffi_fn, non_null, str_arg};

/// `json.reliable.webpubsub.azure.v1` (default): recovery without loss after a drop.
pub const WPS_PROTOCOL_JSON_RELIABLE: u32 = 1;
/// `json.webpubsub.azure.v1`: no recovery; a drop means a new connection.
pub const WPS_PROTOCOL_JSON: u32 = 2;
/// `protobuf.reliable.webpubsub.azure.v1`: binary frames, recovery like JSON reliable.
pub const WPS_PROTOCOL_PROTOBUF_RELIABLE: u32 = 3;
/// `protobuf.webpubsub.azure.v1`: binary frames, no recovery.
pub const WPS_PROTOCOL_PROTOBUF: u32 = 4;

/// The same delay before every retry.
pub const WPS_RETRY_FIXED: u32 = 1;
/// `delay * 2^(attempt-1)`, capped at the maximum delay.
pub const WPS_RETRY_EXPONENTIAL: u32 = 2;
/// `max_retries` of `wps_options_set_reconnect_retry` / `wps_options_set_message_retry`
/// meaning "retry forever" (`UINT32_MAX`).
pub const WPS_RETRY_UNLIMITED: u32 = u32::MAX;

/// Opaque options builder.
pub struct wps_options {
    pub(crate) engine: ClientOptions,
    pub(crate) mode: Mode,
    pub(crate) shutdown_timeout: Duration,
    /// Bound on messages waiting for dispatch (see `wps_options_set_event_queue_limit`).
    pub(crate) backlog_messages: usize,
    pub(crate) backlog_bytes: usize,
}

/// Default bound on messages waiting for dispatch.
pub const WPS_DEFAULT_EVENT_QUEUE_MESSAGES: usize = 10_000;
/// Default bound on the payload bytes of messages waiting for dispatch (32 MiB).
pub const WPS_DEFAULT_EVENT_QUEUE_BYTES: usize = 32 * 1024 * 1024;

impl Default for wps_options {
    fn default() -> wps_options {
        wps_options {
            engine: ClientOptions::default(),
            mode: Mode::Thread,
            shutdown_timeout: Duration::from_secs(5),
            backlog_messages: WPS_DEFAULT_EVENT_QUEUE_MESSAGES,
            backlog_bytes: WPS_DEFAULT_EVENT_QUEUE_BYTES,
        }
    }
}

/// Largest `wps_options_set_max_message_size`: a message of this size may be buffered whole.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// Largest socket buffer: read chunks are allocated at this size per runtime thread.
const MAX_SOCKET_BUFFER: usize = 16 * 1024 * 1024;

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn invalid(message: String) -> Failure {
    Failure::new(WPS_ERR_INVALID_ARG, message)
}

fn positive_ms(v: u32, what: &str) -> Result<Duration, Failure> {
    if v == 0 {
        return Err(invalid(format!("{what} must be > 0")));
    }
    Ok(ms(v))
}

/// A size in `1..=max` bytes.
fn size_in_range(v: usize, max: usize, what: &str) -> Result<usize, Failure> {
    if v == 0 || v > max {
        return Err(invalid(format!(
            "{what} must be between 1 and {max} bytes, got {v}"
        )));
    }
    Ok(v)
}

fn flag(v: u32, what: &str) -> Result<bool, Failure> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Failure::new(
            WPS_ERR_INVALID_ARG,
            format!("{what} must be 0 or 1, got {v}"),
        )),
    }
}

fn retry_policy(
    max_retries: u32,
    mode: u32,
    delay_ms: u32,
    max_delay_ms: u32,
) -> Result<RetryPolicy, Failure> {
    let mode = match mode {
        WPS_RETRY_FIXED => RetryMode::Fixed,
        WPS_RETRY_EXPONENTIAL => RetryMode::Exponential,
        other => {
            return Err(Failure::new(
                WPS_ERR_INVALID_ARG,
                format!(
                    "unknown retry mode {other} (use WPS_RETRY_FIXED or WPS_RETRY_EXPONENTIAL)"
                ),
            ))
        }
    };
    if max_delay_ms < delay_ms {
        return Err(Failure::new(
            WPS_ERR_INVALID_ARG,
            format!("max_delay_ms ({max_delay_ms}) is smaller than delay_ms ({delay_ms})"),
        ));
    }
    Ok(RetryPolicy {
        max_retries,
        mode,
        delay: ms(delay_ms),
        max_delay: ms(max_delay_ms),
        jitter: false,
    })
}

/// Creates an options builder holding the documented defaults.
///
/// Ownership: `*out` receives a new builder the caller owns; free it with `wps_options_free`.
/// Thread-safety: any thread. Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `out` is NULL (nothing is allocated).
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn wps_options_new(out: *mut *mut wps_options) -> wps_result {
    ffi_fn!("wps_options_new", {
        non_null!(out, "out");
        let o = Box::into_raw(Box::default());
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.write(o) };
        WPS_OK
    })
}

/// Frees an options builder. NULL is a no-op.
///
/// Ownership: takes the builder; it must not be used afterwards and must not be freed twice.
/// Thread-safety: not concurrently with other uses of the same builder.
///
/// # Safety
/// `o` is NULL or a pointer from `wps_options_new` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn wps_options_free(o: *mut wps_options) {
    ffi_fn!("wps_options_free", {
        if !o.is_null() {
            // SAFETY: a pointer from Box::into_raw in wps_options_new, freed once per contract.
            drop(unsafe { Box::from_raw(o) });
        }
    })
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { str_arg(p, name) }.map(Some)
}

/// The body of every setter: the panic boundary, the NULL check, then `f` on the builder
/// (validation failures are reported and leave the builder unchanged).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`, not used concurrently.
unsafe fn set(
    o: *mut wps_options,
    name: &str,
    f: impl FnOnce(&mut wps_options) -> Result<(), Failure>,
) -> wps_result {
    boundary(name, || {
        non_null!(o, "options");
        // SAFETY: non-NULL and exclusively ours for the call per the contract.
        let o = unsafe { &mut *o };
        report(f(o))
    })
}

/// Selects the subprotocol: `WPS_PROTOCOL_JSON_RELIABLE` (default), `WPS_PROTOCOL_JSON`,
/// `WPS_PROTOCOL_PROTOBUF_RELIABLE` or `WPS_PROTOCOL_PROTOBUF` (protobuf: no `from_user_id` on
/// group messages, `wps_invoke_event` unsupported).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_protocol(
    o: *mut wps_options,
    protocol: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_protocol", |o| {
            o.engine.protocol = match protocol {
                WPS_PROTOCOL_JSON_RELIABLE => Protocol::JsonReliable,
                WPS_PROTOCOL_JSON => Protocol::Json,
                WPS_PROTOCOL_PROTOBUF_RELIABLE => Protocol::ProtobufReliable,
                WPS_PROTOCOL_PROTOBUF => Protocol::Protobuf,
                other => return Err(invalid(format!("unknown protocol {other}"))),
            };
            Ok(())
        })
    }
}

/// Whether to open a new connection when a connection is lost and cannot be recovered
/// (0 or 1; default 1).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_auto_reconnect(
    o: *mut wps_options,
    enabled: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_auto_reconnect", |o| {
            o.engine.auto_reconnect = flag(enabled, "enabled")?;
            Ok(())
        })
    }
}

/// Whether to rejoin the groups this client joined after a new connection (0 or 1;
/// default 1). Failures are reported as `WPS_EVENT_REJOIN_GROUP_FAILED`.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_auto_rejoin_groups(
    o: *mut wps_options,
    enabled: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_auto_rejoin_groups", |o| {
            o.engine.auto_rejoin_groups = flag(enabled, "enabled")?;
            Ok(())
        })
    }
}

/// How long one attempt of an operation waits for its ack (default 30000 ms; must be > 0).
/// Every duration option takes milliseconds as `uint32_t`, so the longest is about 49 days.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_ack_timeout_ms(
    o: *mut wps_options,
    timeout_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_ack_timeout_ms", |o| {
            o.engine.ack_timeout = positive_ms(timeout_ms, "ack timeout")?;
            Ok(())
        })
    }
}

/// Retry policy of join, leave, send-to-group and send-event, always with the same ack id
/// (default 3 retries, `WPS_RETRY_EXPONENTIAL`, 800 ms, at most 120000 ms).
/// `max_retries` any value (0 disables retries); `mode` `WPS_RETRY_FIXED` or
/// `WPS_RETRY_EXPONENTIAL`; `max_delay_ms` must be >= `delay_ms`.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_message_retry(
    o: *mut wps_options,
    max_retries: u32,
    mode: u32,
    delay_ms: u32,
    max_delay_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_message_retry", |o| {
            o.engine.message_retry = retry_policy(max_retries, mode, delay_ms, max_delay_ms)?;
            Ok(())
        })
    }
}

/// Retry policy of new connections after a loss (default unlimited, `WPS_RETRY_EXPONENTIAL`,
/// 1000 ms, at most 30000 ms, as the official clients). `max_retries` =
/// `WPS_RETRY_UNLIMITED` (`UINT32_MAX`) retries forever; 0 gives up after the first failed
/// new connection. Ranges as for `wps_options_set_message_retry`. Spread the delays with
/// `wps_options_set_reconnect_jitter`.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_reconnect_retry(
    o: *mut wps_options,
    max_retries: u32,
    mode: u32,
    delay_ms: u32,
    max_delay_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_reconnect_retry", |o| {
            o.engine.reconnect_retry = retry_policy(max_retries, mode, delay_ms, max_delay_ms)?;
            Ok(())
        })
    }
}

/// Reconnect jitter in percent (0..100; default 0, the exact delays of
/// `wps_options_set_reconnect_retry`). With p > 0 each reconnect delay d becomes a random
/// value in `[d * (1 - p/100), d]` (never longer than the policy's), and the immediate
/// reconnect after a working connection is lost waits a random `[0, delay_ms * p/100]`, so
/// thousands of clients dropped together do not reconnect in step. 100 is "full jitter".
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` above 100 (the builder
/// is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_reconnect_jitter(
    o: *mut wps_options,
    percent: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_reconnect_jitter", |o| {
            if percent > 100 {
                return Err(invalid(format!(
                    "the reconnect jitter is a percentage (0..100), got {percent}"
                )));
            }
            o.engine.reconnect_jitter_percent = percent;
            Ok(())
        })
    }
}

/// How long to keep trying to recover a dropped reliable connection before opening a new
/// one (default 30000 ms; any value, 0 opens a new connection at once).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_recovery_timeout_ms(
    o: *mut wps_options,
    timeout_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_recovery_timeout_ms", |o| {
            o.engine.recovery_timeout = ms(timeout_ms);
            Ok(())
        })
    }
}

/// Keep-alive: `interval_ms` between pings (default 20000; 0 = off) and `timeout_ms` without
/// any inbound frame after which the connection counts as dead (default 120000; must be > 0).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_keep_alive(
    o: *mut wps_options,
    interval_ms: u32,
    timeout_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_keep_alive", |o| {
            o.engine.keep_alive_timeout = positive_ms(timeout_ms, "keep-alive timeout")?;
            o.engine.keep_alive_interval = ms(interval_ms);
            Ok(())
        })
    }
}

/// How long one WebSocket connect attempt (TCP, TLS, upgrade) may take (default 30000 ms;
/// must be > 0).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_connect_timeout_ms(
    o: *mut wps_options,
    timeout_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_connect_timeout_ms", |o| {
            o.engine.connect_timeout = positive_ms(timeout_ms, "connect timeout")?;
            Ok(())
        })
    }
}

/// How long one call of the URL provider (`wps_client_new_with_provider`) may take (default
/// 10000 ms; must be > 0), counted from when a provider thread takes it. Provider calls of
/// every client in the process run on 4 shared library threads (a slow provider does not cost
/// a thread per client); waiting for one is bounded by the connect timeout. A call that does
/// not return in time fails that connection attempt with `WPS_ERR_URL_PROVIDER` and the
/// reconnect policy decides what follows. Its late result is discarded. The next attempt of the same
/// client first waits (within the same bound) for the late call to return, so the provider is
/// never called concurrently for one client.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for 0 (the builder is
/// unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_url_provider_timeout_ms(
    o: *mut wps_options,
    timeout_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_url_provider_timeout_ms", |o| {
            o.engine.url_provider_timeout = positive_ms(timeout_ms, "URL provider timeout")?;
            Ok(())
        })
    }
}

/// Largest message this client sends (default 1048576 bytes, the service's limit for client
/// messages; 1 to 67108864): larger sends fail with `WPS_ERR_PAYLOAD_TOO_LARGE` before anything
/// is sent. Inbound messages have their own limit, `wps_options_set_max_inbound_message_size`.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_max_message_size(
    o: *mut wps_options,
    bytes: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_max_message_size", |o| {
            o.engine.max_message_size =
                size_in_range(bytes, MAX_MESSAGE_SIZE, "the maximum message size")?;
            Ok(())
        })
    }
}

/// The bound on everything `wps_client_free` waits for (the connection to close, a running URL
/// provider call, a callback running on another thread; see there), and the default of
/// `wps_client_stop(c, 0)` (default 5000 ms; must be > 0).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_shutdown_timeout_ms(
    o: *mut wps_options,
    timeout_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_shutdown_timeout_ms", |o| {
            o.shutdown_timeout = positive_ms(timeout_ms, "shutdown timeout")?;
            Ok(())
        })
    }
}

/// Where callbacks run: `WPS_DISPATCH_THREAD` (default; the library's shared callback
/// threads) or `WPS_DISPATCH_POLL` (inside `wps_client_dispatch` on your thread, woken by
/// `wps_client_get_fd`).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_dispatch_mode(
    o: *mut wps_options,
    mode: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_dispatch_mode", |o| {
            o.mode = match mode {
                WPS_DISPATCH_THREAD => Mode::Thread,
                WPS_DISPATCH_POLL => Mode::Poll,
                other => return Err(invalid(format!("unknown dispatch mode {other}"))),
            };
            Ok(())
        })
    }
}

/// Socket buffer sizes in bytes (each 1 to 16777216): `read_bytes` is how much is read from the
/// network at once (default 4096; an idle connection keeps no read buffer), `write_bytes` how
/// much outbound data is gathered before it is written (default 16384). Larger messages are
/// still read and written whole.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_socket_buffers(
    o: *mut wps_options,
    read_bytes: usize,
    write_bytes: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_socket_buffers", |o| {
            let read = size_in_range(read_bytes, MAX_SOCKET_BUFFER, "read_bytes")?;
            let write = size_in_range(write_bytes, MAX_SOCKET_BUFFER, "write_bytes")?;
            o.engine.read_buffer_size = read;
            o.engine.write_buffer_size = write;
            Ok(())
        })
    }
}

/// Sequence ack period on reliable protocols: how often received sequence ids are acknowledged
/// to the service (default 1000 ms; must be > 0).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range,
/// with a message naming the bound (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_sequence_ack_interval_ms(
    o: *mut wps_options,
    interval_ms: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_sequence_ack_interval_ms", |o| {
            o.engine.sequence_ack_interval = positive_ms(interval_ms, "sequence ack interval")?;
            Ok(())
        })
    }
}

/// Proxy for connections, `"SCHEME://[user:password@]host[:port]"` (percent-encode special
/// characters in the credentials): `http://` (HTTP CONNECT, port 80 by default; also when no
/// scheme is given), `https://` (HTTP CONNECT over TLS to the proxy, port 443, its certificate
/// checked against the same roots as the service's, including `wps_options_set_ca_file`),
/// `socks5://` (SOCKS5, port 1080, the service's name resolved by this client) or
/// `socks5h://` (SOCKS5, the name resolved by the proxy). Credentials go in
/// `Proxy-Authorization: Basic` for HTTP proxies and as SOCKS5 user/password (RFC 1929).
/// `""` connects directly; NULL (the default) uses `HTTPS_PROXY` (for `wss://`) or
/// `HTTP_PROXY` (for `ws://`), then `ALL_PROXY` (each upper or lower case), honouring
/// `NO_PROXY`; loopback addresses never use a proxy from the environment. A malformed or
/// unsupported proxy URL fails the connection attempt with `WPS_ERR_INVALID_ARG`.
///
/// Ownership: `proxy` is copied. Thread-safety: not concurrently with other uses of the builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_UTF8`.
///
/// # Safety
/// `o` is NULL or a live builder; `proxy` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_proxy(
    o: *mut wps_options,
    proxy: *const c_char,
) -> wps_result {
    // SAFETY: `o` and `proxy` are forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_proxy", |o| {
            o.engine.proxy = opt_str(proxy, "proxy")?.map(str::to_owned);
            Ok(())
        })
    }
}

/// Fire-and-forget buffering (default 1024 frames): a `WPS_SEND_FIRE_AND_FORGET` send made while
/// connected returns as soon as its frame is in the client's ordered send queue, with up to
/// `frames` such frames waiting to be written; past that, sends wait for the writes (back
/// pressure). The queue survives a recovery (frames not yet written go out on the recovered
/// connection) and `wps_client_stop` writes it before closing; a write failure is not reported
/// to the sender, as on the wire. 0 makes every fire-and-forget send wait until its frame is
/// written to the socket (about ten times slower for a single sending thread). Any value is
/// valid; each waiting frame holds its message, so the memory is bounded by `frames` times the
/// maximum message size.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL.
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_fire_and_forget_buffer(
    o: *mut wps_options,
    frames: u32,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_fire_and_forget_buffer", |o| {
            o.engine.fire_and_forget_buffer = frames as usize;
            Ok(())
        })
    }
}

/// Bounds the messages (`WPS_EVENT_GROUP_MESSAGE`, `WPS_EVENT_SERVER_MESSAGE`) received and
/// not yet handled: waiting for `wps_client_dispatch` in poll mode, or for a busy callback
/// thread. Default `WPS_DEFAULT_EVENT_QUEUE_MESSAGES` (10,000) messages and
/// `WPS_DEFAULT_EVENT_QUEUE_BYTES` (32 MiB) of payload; `max_bytes` 0 means no byte limit.
/// At the bound the client stops reading its socket until the application handles messages:
/// nothing is dropped, and memory stays bounded. The service then holds what it has not
/// delivered (its own flow control); a reliable session whose receiver stays behind is ended
/// by the service (close 1008), which the client reports as `WPS_EVENT_SESSION_LOST` once the
/// application dispatches again, followed by a new connection. Lifecycle events and operation
/// completions are not counted (each accepted operation has exactly one completion).
/// While reading is paused no ack is read either: a blocking call made from a callback while
/// the bound is reached waits until its ack timeout (`WPS_ERR_TIMEOUT`), then the queue drains.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL, `WPS_ERR_INVALID_ARG` if `max_messages` is 0.
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_event_queue_limit(
    o: *mut wps_options,
    max_messages: usize,
    max_bytes: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_event_queue_limit", |o| {
            if max_messages == 0 {
                return Err(invalid(
                    "max_messages must be at least 1 (the bound cannot be turned off)".into(),
                ));
            }
            o.backlog_messages = max_messages;
            o.backlog_bytes = max_bytes;
            Ok(())
        })
    }
}

/// Turns on the offline queue: acked operations (sends, events, joins, leaves) made while no
/// connection is usable (before `wps_client_start` and the first connection, while recovering,
/// while reconnecting) wait in order with their ack ids and are sent once connected; their
/// acks then complete them, and nothing is sent twice (a resend after a drop uses the same ack
/// id; `Duplicate` is success). `WPS_SEND_FIRE_AND_FORGET` sends made then wait in the same
/// queue, in the same order, under the same bounds and ack timeout, and complete (`WPS_OK`) once
/// written on the new connection. At most `max_messages` operations and `max_bytes` payload bytes
/// (data of sends, group name of joins and leaves; 0: no byte limit) wait. When the queue is
/// full, `_async` calls fail at once with `WPS_ERR_QUEUE_FULL` (no completion follows) and
/// blocking calls wait for room up to the ack timeout, then return `WPS_ERR_QUEUE_FULL`.
/// `wps_client_stop` completes queued operations with `WPS_ERR_CANCELLED`. An operation
/// queued before `wps_client_start` still has its ack timeout. `max_messages` 0 (default)
/// turns the queue off: operations made before start fail with `WPS_ERR_NOT_CONNECTED`, and
/// fire-and-forget sends waiting for a reconnect fail when it does not recover the session.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL.
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_offline_queue(
    o: *mut wps_options,
    max_messages: usize,
    max_bytes: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_offline_queue", |o| {
            o.engine.offline_queue = (max_messages > 0).then_some(crate::client::OfflineQueue {
                max_messages,
                max_bytes,
            });
            Ok(())
        })
    }
}

/// Adds the PEM root certificates in the file at `path` (NUL-terminated UTF-8) to the system
/// store for `wss://` connections. The file is read when a connection first needs it; clients
/// using the same file (or none) share the parsed certificates, which are read again only once
/// no client holds them. NULL removes a previously set file.
///
/// Ownership: `path` is copied. Thread-safety: not concurrently with other uses of the builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_UTF8`.
///
/// # Safety
/// `o` is NULL or a live builder; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_ca_file(
    o: *mut wps_options,
    path: *const c_char,
) -> wps_result {
    // SAFETY: `o` and `path` are forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_ca_file", |o| {
            o.engine.ca_file = opt_str(path, "path")?.map(PathBuf::from);
            Ok(())
        })
    }
}

/// TLS client certificate for mutual TLS on `wss://`: `cert_pem_file` holds the PEM
/// certificate chain (the client's certificate first, then any intermediates) and
/// `key_pem_file` its PEM private key (PKCS#8, PKCS#1 or SEC1; not encrypted). Both files
/// are read and checked now (parsed, and the key must belong to the certificate); the
/// connection presents the certificate when the server asks for one. Both NULL removes a
/// previously set certificate.
///
/// Ownership: the paths are not kept (the contents are). Thread-safety: not concurrently with
/// other uses of the builder. Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_UTF8`; `WPS_ERR_INVALID_ARG`
/// when only one path is given, a file is missing or unreadable, holds no certificate or no
/// key, or the key does not fit the certificate, with a message naming the file (the builder
/// is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder; each path is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_client_cert(
    o: *mut wps_options,
    cert_pem_file: *const c_char,
    key_pem_file: *const c_char,
) -> wps_result {
    // SAFETY: `o` and the paths are forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_client_cert", |o| {
            let cert = opt_str(cert_pem_file, "cert_pem_file")?;
            let key = opt_str(key_pem_file, "key_pem_file")?;
            o.engine.client_cert = match (cert, key) {
                (None, None) => None,
                (Some(c), Some(k)) => Some(std::sync::Arc::new(
                    crate::client::ClientCert::load(c.as_ref(), k.as_ref())
                        .map_err(Failure::from)?,
                )),
                _ => {
                    return Err(invalid(
                        "give both cert_pem_file and key_pem_file (or neither)".into(),
                    ))
                }
            };
            Ok(())
        })
    }
}

/// Largest message accepted from the service (default 2097152 bytes; 1 to 67108864). The
/// service may wrap a message of its 1 MB maximum in a larger frame (group and user names,
/// base64 of binary data sent through REST), hence the default above the send limit of
/// `wps_options_set_max_message_size`. A larger inbound message ends the session: it is
/// reported in `WPS_EVENT_DISCONNECTED`'s `message` and the client reconnects without
/// recovery, since recovery would replay the same message. The bound is on memory: a message
/// takes room only as it arrives.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for values out of range
/// (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_max_inbound_message_size(
    o: *mut wps_options,
    bytes: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_max_inbound_message_size", |o| {
            o.engine.max_inbound_message_size =
                size_in_range(bytes, MAX_MESSAGE_SIZE, "the maximum inbound message size")?;
            Ok(())
        })
    }
}

/// The application's name and version, sent in front of the library's own `User-Agent`
/// (`webpubsub-client/<version> (<os>; <arch>)`) on every connection, e.g. `"gateway/2.1"`.
/// NULL or `""` sends the library's alone (the default).
///
/// Ownership: `app` is copied. Thread-safety: not concurrently with other uses of the builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_UTF8`; `WPS_ERR_INVALID_ARG`
/// unless printable ASCII of at most 256 bytes (the builder is unchanged on error).
///
/// # Safety
/// `o` is NULL or a live builder; `app` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_user_agent(
    o: *mut wps_options,
    app: *const c_char,
) -> wps_result {
    // SAFETY: `o` and `app` are forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_user_agent", |o| {
            let app = opt_str(app, "app")?.filter(|a| !a.is_empty());
            if let Some(a) = app {
                if a.len() > 256 {
                    return Err(invalid("the user agent is longer than 256 bytes".into()));
                }
                crate::client::user_agent(Some(a)).map_err(Failure::from)?;
            }
            o.engine.user_agent = app.map(str::to_owned);
            Ok(())
        })
    }
}

/// Group streams this client publishes: at most `max_unacked_bytes` payload bytes per stream
/// written and not yet acknowledged by the service (default 1 MiB). A `wps_stream_write` that
/// would go beyond waits for acks (back-pressure, bounded by its timeout); a single fragment
/// larger than the limit is accepted when nothing else is unacknowledged. These fragments are
/// what a recovery or a `streamNack` sends again.
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for 0.
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_stream_buffer(
    o: *mut wps_options,
    max_unacked_bytes: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_stream_buffer", |o| {
            if max_unacked_bytes == 0 {
                return Err(invalid("the stream buffer must be at least 1 byte".into()));
            }
            o.engine.stream_buffer = max_unacked_bytes;
            Ok(())
        })
    }
}

/// Receive streams only from their first fragment: a stream first seen mid-way (joined late)
/// is ignored until its end instead of being delivered from where it was first seen.
pub const WPS_STREAM_FROM_START_ONLY: u32 = 1;

/// How this client receives group streams (`WPS_EVENT_STREAM`): `flags`
/// (`WPS_STREAM_FROM_START_ONLY`), the per-stream idle timeout `idle_timeout_ms` after which a
/// stream with no frame ends with the client's own `IdleTimeout` terminal frame (0 = default,
/// 300000 ms), and `max_streams` received at once (0 = default, 4096; a new stream beyond it
/// ends the least recently active one with `TooManyStreams`).
///
/// Thread-safety: not concurrently with other uses of the same builder.
/// Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` if `o` is NULL; `WPS_ERR_INVALID_ARG` for unknown flags.
///
/// # Safety
/// `o` is NULL or a live builder from `wps_options_new`.
#[no_mangle]
pub unsafe extern "C" fn wps_options_set_stream_receive(
    o: *mut wps_options,
    flags: u32,
    idle_timeout_ms: u32,
    max_streams: usize,
) -> wps_result {
    // SAFETY: `o` is forwarded under this function's own contract.
    unsafe {
        set(o, "wps_options_set_stream_receive", |o| {
            if flags & !WPS_STREAM_FROM_START_ONLY != 0 {
                return Err(invalid(format!("unknown stream receive flags 0x{flags:x}")));
            }
            let defaults = ClientOptions::default();
            o.engine.stream_from_start_only = flags & WPS_STREAM_FROM_START_ONLY != 0;
            o.engine.stream_idle_timeout = if idle_timeout_ms == 0 {
                defaults.stream_idle_timeout
            } else {
                ms(idle_timeout_ms)
            };
            o.engine.max_receive_streams = if max_streams == 0 {
                defaults.max_receive_streams
            } else {
                max_streams
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    #[test]
    fn setters_validate_and_keep_the_builder_on_error() {
        let mut o = ptr::null_mut();
        // SAFETY: valid out pointer; the builder is used on this thread and freed once.
        unsafe {
            assert_eq!(wps_options_new(&mut o), WPS_OK);
            assert_eq!(wps_options_set_protocol(o, 99), WPS_ERR_INVALID_ARG);
            assert_eq!(wps_options_set_protocol(o, WPS_PROTOCOL_JSON), WPS_OK);
            assert_eq!((*o).engine.protocol, Protocol::Json);
            assert_eq!(wps_options_set_auto_reconnect(o, 2), WPS_ERR_INVALID_ARG);
            assert!((*o).engine.auto_reconnect);
            assert_eq!(
                wps_options_set_message_retry(o, 1, 7, 1, 2),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!(
                wps_options_set_message_retry(o, 1, WPS_RETRY_FIXED, 5, 2),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!(
                wps_options_set_message_retry(o, 1, WPS_RETRY_FIXED, 5, 5),
                WPS_OK
            );
            assert_eq!((*o).engine.message_retry.max_retries, 1);
            assert_eq!(
                wps_options_set_reconnect_jitter(o, 101),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!((*o).engine.reconnect_jitter_percent, 0);
            assert_eq!(wps_options_set_reconnect_jitter(o, 25), WPS_OK);
            assert_eq!((*o).engine.reconnect_jitter_percent, 25);
            assert_eq!(
                wps_options_set_reconnect_retry(o, WPS_RETRY_UNLIMITED, WPS_RETRY_FIXED, 5, 5),
                WPS_OK
            );
            assert_eq!((*o).engine.reconnect_retry.max_retries, u32::MAX);
            assert_eq!(
                wps_options_set_url_provider_timeout_ms(o, 0),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!(wps_options_set_url_provider_timeout_ms(o, 250), WPS_OK);
            assert_eq!((*o).engine.url_provider_timeout, Duration::from_millis(250));
            assert_eq!(wps_options_set_dispatch_mode(o, WPS_DISPATCH_POLL), WPS_OK);
            assert_eq!((*o).mode, Mode::Poll);
            assert_eq!(
                wps_options_set_socket_buffers(o, 0, 10),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!(wps_options_set_socket_buffers(o, 4096, 8192), WPS_OK);
            assert_eq!((*o).engine.write_buffer_size, 8192);
            for too_big in [usize::MAX / 2, usize::MAX, MAX_SOCKET_BUFFER + 1] {
                assert_eq!(
                    wps_options_set_socket_buffers(o, too_big, 10),
                    WPS_ERR_INVALID_ARG
                );
                assert_eq!(
                    wps_options_set_max_message_size(o, too_big.max(MAX_MESSAGE_SIZE + 1)),
                    WPS_ERR_INVALID_ARG
                );
            }
            assert_eq!(
                wps_options_set_socket_buffers(o, MAX_SOCKET_BUFFER, MAX_SOCKET_BUFFER),
                WPS_OK
            );
            assert_eq!(
                wps_options_set_shutdown_timeout_ms(o, 0),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!(
                wps_options_set_client_cert(o, c"/nonexistent/c.pem".as_ptr(), ptr::null()),
                WPS_ERR_INVALID_ARG
            );
            assert_eq!(
                wps_options_set_client_cert(
                    o,
                    c"/nonexistent/c.pem".as_ptr(),
                    c"/nonexistent/k.pem".as_ptr()
                ),
                WPS_ERR_INVALID_ARG
            );
            assert!((*o).engine.client_cert.is_none());
            assert_eq!(
                wps_options_set_client_cert(o, ptr::null(), ptr::null()),
                WPS_OK
            );
            assert_eq!(wps_options_set_proxy(o, c"".as_ptr()), WPS_OK);
            assert_eq!((*o).engine.proxy.as_deref(), Some(""));
            assert_eq!(wps_options_set_proxy(o, ptr::null()), WPS_OK);
            assert_eq!((*o).engine.proxy, None);
            assert_eq!(
                wps_options_set_ack_timeout_ms(ptr::null_mut(), 1),
                super::super::error::WPS_ERR_NULL_ARG
            );
            wps_options_free(o);
            wps_options_free(ptr::null_mut());
        }
    }
}
