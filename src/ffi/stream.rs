//! Group streams from C: open, write, end, abort, free (`wps_stream_*`).
//!
//! A `wps_stream *` is a registry token like `wps_client *`: a freed or forged handle is
//! `WPS_ERR_INVALID_HANDLE`, never touched memory. Every blocking call is bounded by its
//! `timeout_ms` (0 = the client's ack timeout).

use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{GroupStream, StreamOptions};

use super::client::ClientEntry;
use super::error::{fail_with, report, wps_result, Failure, WPS_ERR_INVALID_ARG, WPS_ERR_PANIC};
use super::handle::{self, wps_client, wps_stream};
use super::macros::{ffi_fn, non_null, record_panic, str_arg, try_ffi};
use super::ops::{payload, WPS_SEND_NO_ECHO};

/// What the C surface keeps for one open stream.
pub(crate) struct StreamEntry {
    client: Arc<ClientEntry>,
    stream: Arc<GroupStream>,
    id: CString,
}

fn limit(entry: &ClientEntry, timeout_ms: u32) -> Duration {
    if timeout_ms == 0 {
        entry.client.options().ack_timeout
    } else {
        Duration::from_millis(u64::from(timeout_ms))
    }
}

/// Runs `f` against the stream behind `s`; a panic inside poisons the stream's client.
fn with_stream(
    s: *const wps_stream,
    f: impl FnOnce(&StreamEntry) -> Result<(), Failure>,
) -> wps_result {
    let entry = try_ffi!(handle::lookup_stream(s));
    if entry.client.poisoned.load(Ordering::Acquire) {
        return fail_with(
            WPS_ERR_PANIC,
            "the stream's client is poisoned by an earlier panic; free it",
        );
    }
    match catch_unwind(AssertUnwindSafe(|| f(&entry))) {
        Ok(outcome) => report(outcome),
        Err(p) => {
            entry.client.poisoned.store(true, Ordering::Release);
            record_panic("a call on a stream (its client is now poisoned)", p);
            WPS_ERR_PANIC
        }
    }
}

/// Opens a group stream on `group` and blocks until the service accepts it (`streamAck`
/// with expected id 1), refuses it, or `timeout_ms` passes (0 = the ack timeout).
/// `stream_id` NULL generates a UUID; `flags` may be `WPS_SEND_NO_ECHO`; `idle_timeout_ms` is
/// asked of the service (0 = its default, 300000 ms): keep-alive frames go out while the
/// stream is idle, so it stays open as long as the handle does. Fragments not acknowledged by
/// the service are kept (at most `wps_options_set_stream_buffer` bytes) and sent again after
/// a recovery or a `streamNack`.
///
/// Ownership: strings are copied; `*out` receives a handle the caller owns: end or abort the
/// stream, then release it with `wps_stream_free` (freeing an open stream aborts it).
/// Thread-safety: any thread. Callback context: may be called from any callback (it delays
/// this client's next events until it returns).
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_UTF8`, `WPS_ERR_INVALID_ARG` (unknown flags,
/// an empty or duplicate stream id, more than 1024 open streams, a protobuf client: streams
/// exist only on the JSON protocols), `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_NOT_CONNECTED`,
/// `WPS_ERR_TIMEOUT`, `WPS_ERR_ACK_*` with the service's error name in
/// `wps_last_error_name()` (e.g. `Forbidden` without the permission to send to the group),
/// `WPS_ERR_STREAM_CLOSED` (the connection dropped before the service answered),
/// `WPS_ERR_CANCELLED`.
///
/// # Safety
/// `group` and `stream_id` are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_stream_open(
    c: *mut wps_client,
    group: *const c_char,
    stream_id: *const c_char,
    flags: u32,
    idle_timeout_ms: u32,
    timeout_ms: u32,
    out: *mut *mut wps_stream,
) -> wps_result {
    ffi_fn!("wps_stream_open", {
        non_null!(out, "out");
        ClientEntry::with(c, |e| {
            // SAFETY: per this function's contract.
            let group = unsafe { str_arg(group, "group") }?.to_owned();
            let stream_id = if stream_id.is_null() {
                None
            } else {
                // SAFETY: per this function's contract.
                Some(unsafe { str_arg(stream_id, "stream_id") }?.to_owned())
            };
            if flags & !WPS_SEND_NO_ECHO != 0 {
                return Err(Failure::new(
                    WPS_ERR_INVALID_ARG,
                    format!("unknown stream flags 0x{flags:x} (only WPS_SEND_NO_ECHO applies)"),
                ));
            }
            let opts = StreamOptions {
                stream_id,
                no_echo: flags & WPS_SEND_NO_ECHO != 0,
                idle_timeout: (idle_timeout_ms != 0)
                    .then(|| Duration::from_millis(u64::from(idle_timeout_ms))),
            };
            let client = e.client.clone();
            let fut = async move {
                client
                    .open_stream(&group, opts)
                    .await
                    .map_err(Failure::from)
            };
            let stream = e.wait("stream open", Some(limit(e, timeout_ms)), fut)?;
            let id = CString::new(stream.id()).map_err(|_| {
                Failure::new(WPS_ERR_INVALID_ARG, "the stream id contains a NUL byte")
            })?;
            let h = handle::register_stream(Arc::new(StreamEntry {
                client: e.clone(),
                stream: Arc::new(stream),
                id,
            }));
            // SAFETY: `out` is non-NULL and writable per the contract.
            unsafe { out.write(h) };
            Ok(())
        })
    })
}

/// Writes one fragment of `len` bytes of `data_type` (`WPS_DATA_*`). Fragments go out in
/// call order. Returns once the fragment is in the client's ordered send queue; blocks only
/// while the stream's unacknowledged bytes would exceed the stream buffer, at most
/// `timeout_ms` (0 = the ack timeout; then `WPS_ERR_TIMEOUT` and nothing is sent).
///
/// Ownership: `data` is copied. Thread-safety: any thread; concurrent writes to one stream
/// are ordered as they take their turn. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_ARG` (unknown data type, invalid JSON),
/// `WPS_ERR_INVALID_UTF8`, `WPS_ERR_PAYLOAD_TOO_LARGE`, `WPS_ERR_INVALID_HANDLE`,
/// `WPS_ERR_TIMEOUT`, `WPS_ERR_STREAM_CLOSED` (with the reason in `wps_last_error_name()`:
/// `Ended`, the service's error such as `IdleTimeout`, `ProtocolViolation`,
/// `ConnectionLost`, `Stopped`, `Freed`), `WPS_ERR_CANCELLED`.
///
/// # Safety
/// `data` is NULL (with `len` 0) or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wps_stream_write(
    s: *mut wps_stream,
    data: *const u8,
    len: usize,
    data_type: u32,
    timeout_ms: u32,
) -> wps_result {
    ffi_fn!("wps_stream_write", {
        with_stream(s, |se| {
            // SAFETY: per this function's contract.
            let p = unsafe { payload(&se.client, data, len, data_type) }?;
            let stream = se.stream.clone();
            let fut = async move { stream.write(p).await.map_err(Failure::from) };
            se.client
                .wait("stream write", Some(limit(&se.client, timeout_ms)), fut)
        })
    })
}

/// Ends the stream and blocks until the service confirms (`streamClosed`) or `timeout_ms`
/// passes (0 = the ack timeout). Subscribers get the terminal frame without error. After
/// it, writes fail with `WPS_ERR_STREAM_CLOSED`.
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_TIMEOUT` (the end still
/// goes out), `WPS_ERR_STREAM_CLOSED` (already ended, or failed: reason in
/// `wps_last_error_name()`), `WPS_ERR_CANCELLED`.
///
/// # Safety
/// `s` is NULL or a handle from `wps_stream_open` (freed or forged ones are detected).
#[no_mangle]
pub unsafe extern "C" fn wps_stream_end(s: *mut wps_stream, timeout_ms: u32) -> wps_result {
    ffi_fn!("wps_stream_end", {
        with_stream(s, |se| {
            let stream = se.stream.clone();
            let fut = async move { stream.end().await.map_err(Failure::from) };
            se.client
                .wait("stream end", Some(limit(&se.client, timeout_ms)), fut)
        })
    })
}

/// Ends the stream with the application's error: subscribers get a terminal frame with
/// `error_name` `UserError`, `message` and `user_error_code` (each may be NULL). Blocks until
/// the service confirms or `timeout_ms` passes (0 = the ack timeout).
///
/// Ownership: strings are copied. Thread-safety and errors: as `wps_stream_end`, plus
/// `WPS_ERR_INVALID_UTF8`.
///
/// # Safety
/// `message` and `user_error_code` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wps_stream_abort(
    s: *mut wps_stream,
    message: *const c_char,
    user_error_code: *const c_char,
    timeout_ms: u32,
) -> wps_result {
    ffi_fn!("wps_stream_abort", {
        with_stream(s, |se| {
            // SAFETY: per this function's contract.
            let message = unsafe { opt_str(message, "message") }?;
            // SAFETY: per this function's contract.
            let code = unsafe { opt_str(user_error_code, "user_error_code") }?;
            let stream = se.stream.clone();
            let fut = async move {
                stream
                    .abort(message.as_deref(), code.as_deref())
                    .await
                    .map_err(Failure::from)
            };
            se.client
                .wait("stream abort", Some(limit(&se.client, timeout_ms)), fut)
        })
    })
}

/// An optional string argument, copied.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn opt_str(p: *const c_char, name: &str) -> Result<Option<String>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: per this function's contract.
    unsafe { str_arg(p, name) }.map(|s| Some(s.to_owned()))
}

/// The stream's id (NUL-terminated UTF-8), valid until `wps_stream_free`; NULL for a NULL,
/// freed or forged handle.
///
/// # Safety
/// `s` is NULL or a handle from `wps_stream_open`.
#[no_mangle]
pub unsafe extern "C" fn wps_stream_get_id(s: *const wps_stream) -> *const c_char {
    ffi_fn!("wps_stream_get_id", {
        match handle::lookup_stream(s) {
            // The registry keeps the entry (and its id) alive until wps_stream_free.
            Ok(entry) => entry.id.as_ptr(),
            Err(_) => std::ptr::null(),
        }
    })
}

/// Releases a stream handle. An open stream is aborted (subscribers get `UserError`); calls
/// blocked on it return `WPS_ERR_STREAM_CLOSED` (`Freed`). NULL and already freed handles are
/// ignored. Freeing the stream's client first is allowed; the stream handle must still be
/// freed.
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
///
/// # Safety
/// `s` is NULL or a handle from `wps_stream_open`.
#[no_mangle]
pub unsafe extern "C" fn wps_stream_free(s: *mut wps_stream) {
    ffi_fn!("wps_stream_free", {
        if let Ok(entry) = handle::unregister_stream(s) {
            entry
                .stream
                .abandon("Freed", "the publisher freed the stream without ending it");
        }
    })
}
