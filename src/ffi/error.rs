//! Result codes, their names and descriptions, and the thread-local detail of the last failure.
//!
//! Codes are grouped in stable ranges and never renumbered or reused:
//! 0 success, 100-199 caller errors, 200-299 transient failures, 300-399 connection set-up,
//! 400-499 service ack errors, 500-599 lifecycle, 900-999 internal.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::OnceLock;

use super::macros::boundary;
use crate::error::Error;

/// The return type of every fallible `wps_*` function: `WPS_OK` (0) or a `WPS_ERR_*` code.
#[allow(non_camel_case_types)]
pub type wps_result = i32;

/// Success.
pub const WPS_OK: wps_result = 0;

/// A required pointer argument was NULL.
pub const WPS_ERR_NULL_ARG: wps_result = 100;
/// An argument has an unknown enum value, a flag outside the defined set, or a value out of range.
pub const WPS_ERR_INVALID_ARG: wps_result = 101;
/// A string argument is not valid UTF-8.
pub const WPS_ERR_INVALID_UTF8: wps_result = 102;
/// The client handle was freed or never existed.
pub const WPS_ERR_INVALID_HANDLE: wps_result = 103;
/// The call is not valid in the client's current state (e.g. start while started).
pub const WPS_ERR_INVALID_STATE: wps_result = 104;
/// The caller's buffer is too small; the needed size was reported.
pub const WPS_ERR_BUFFER_TOO_SMALL: wps_result = 105;
/// The client access URL cannot be parsed or has the wrong scheme.
pub const WPS_ERR_INVALID_URL: wps_result = 106;
/// The message is larger than the configured maximum message size.
pub const WPS_ERR_PAYLOAD_TOO_LARGE: wps_result = 107;
/// The feature is not supported by this build (e.g. a protobuf subprotocol).
pub const WPS_ERR_UNSUPPORTED: wps_result = 108;

/// No ack (or `connected` message, or invoke response) arrived in time. Retry with the same ack id.
pub const WPS_ERR_TIMEOUT: wps_result = 200;
/// The operation needs a connection and there is none right now.
pub const WPS_ERR_NOT_CONNECTED: wps_result = 201;
/// The transport failed (DNS, TCP, TLS, WebSocket); the outcome of an operation is unknown.
pub const WPS_ERR_CONNECTION: wps_result = 202;
/// The offline queue (`wps_options_set_offline_queue`) has no room: returned at once by
/// `_async` calls; blocking calls return it when no room appeared within their timeout.
/// Nothing was sent.
pub const WPS_ERR_QUEUE_FULL: wps_result = 203;
/// The group stream is over (ended, aborted, closed by the service with an error, broken by
/// a protocol violation, or lost with a connection that could not be recovered); the reason
/// is in `wps_last_error_name()` and `wps_last_error_message()`.
pub const WPS_ERR_STREAM_CLOSED: wps_result = 204;

/// The service rejected the WebSocket upgrade with an HTTP status other than 401.
pub const WPS_ERR_HANDSHAKE: wps_result = 300;
/// The service answered the upgrade with HTTP 401: the access token is missing, invalid or expired.
pub const WPS_ERR_UNAUTHORIZED: wps_result = 301;
/// The service sent something that violates the protocol.
pub const WPS_ERR_PROTOCOL: wps_result = 302;
/// The URL provider callback failed or returned an unusable URL.
pub const WPS_ERR_URL_PROVIDER: wps_result = 303;

/// The service answered with an ack error not covered by a more specific code;
/// the name is in `wps_last_error_name()` / `wps_event.error_name`.
pub const WPS_ERR_ACK: wps_result = 400;
/// The service answered `Forbidden`: the connection lacks the role for this operation.
pub const WPS_ERR_ACK_FORBIDDEN: wps_result = 401;
/// The service answered `InternalServerError`. Retrying with the same ack id is allowed.
pub const WPS_ERR_ACK_INTERNAL_SERVER_ERROR: wps_result = 402;
/// The service answered `BadRequest`.
pub const WPS_ERR_ACK_BAD_REQUEST: wps_result = 403;

/// The operation was cancelled because the client was stopped or freed.
pub const WPS_ERR_CANCELLED: wps_result = 500;
/// The client was created before `fork()`; it cannot be used in the child process.
pub const WPS_ERR_FORKED: wps_result = 501;

/// A panic inside the library was caught; the client involved is poisoned (only free works).
pub const WPS_ERR_PANIC: wps_result = 900;
/// An internal invariant failed (e.g. the runtime could not be created).
pub const WPS_ERR_INTERNAL: wps_result = 901;

/// (code, name, description) for every defined code.
const TABLE: &[(wps_result, &str, &str)] = &[
    (WPS_OK, "WPS_OK\0", "success\0"),
    (
        WPS_ERR_NULL_ARG,
        "WPS_ERR_NULL_ARG\0",
        "a required pointer argument was NULL\0",
    ),
    (
        WPS_ERR_INVALID_ARG,
        "WPS_ERR_INVALID_ARG\0",
        "invalid argument\0",
    ),
    (
        WPS_ERR_INVALID_UTF8,
        "WPS_ERR_INVALID_UTF8\0",
        "string argument is not valid UTF-8\0",
    ),
    (
        WPS_ERR_INVALID_HANDLE,
        "WPS_ERR_INVALID_HANDLE\0",
        "client handle was freed or is unknown\0",
    ),
    (
        WPS_ERR_INVALID_STATE,
        "WPS_ERR_INVALID_STATE\0",
        "call not valid in the client's current state\0",
    ),
    (
        WPS_ERR_BUFFER_TOO_SMALL,
        "WPS_ERR_BUFFER_TOO_SMALL\0",
        "buffer too small\0",
    ),
    (
        WPS_ERR_INVALID_URL,
        "WPS_ERR_INVALID_URL\0",
        "invalid client access URL\0",
    ),
    (
        WPS_ERR_PAYLOAD_TOO_LARGE,
        "WPS_ERR_PAYLOAD_TOO_LARGE\0",
        "message larger than the maximum message size\0",
    ),
    (
        WPS_ERR_UNSUPPORTED,
        "WPS_ERR_UNSUPPORTED\0",
        "not supported by this build\0",
    ),
    (WPS_ERR_TIMEOUT, "WPS_ERR_TIMEOUT\0", "timed out\0"),
    (
        WPS_ERR_NOT_CONNECTED,
        "WPS_ERR_NOT_CONNECTED\0",
        "not connected\0",
    ),
    (
        WPS_ERR_CONNECTION,
        "WPS_ERR_CONNECTION\0",
        "connection failed\0",
    ),
    (
        WPS_ERR_QUEUE_FULL,
        "WPS_ERR_QUEUE_FULL\0",
        "the offline queue is full\0",
    ),
    (
        WPS_ERR_STREAM_CLOSED,
        "WPS_ERR_STREAM_CLOSED\0",
        "the group stream is closed\0",
    ),
    (
        WPS_ERR_HANDSHAKE,
        "WPS_ERR_HANDSHAKE\0",
        "WebSocket handshake rejected by the service\0",
    ),
    (
        WPS_ERR_UNAUTHORIZED,
        "WPS_ERR_UNAUTHORIZED\0",
        "access token missing, invalid or expired (HTTP 401)\0",
    ),
    (
        WPS_ERR_PROTOCOL,
        "WPS_ERR_PROTOCOL\0",
        "protocol violation by the service\0",
    ),
    (
        WPS_ERR_URL_PROVIDER,
        "WPS_ERR_URL_PROVIDER\0",
        "the URL provider failed\0",
    ),
    (
        WPS_ERR_ACK,
        "WPS_ERR_ACK\0",
        "the service rejected the operation\0",
    ),
    (
        WPS_ERR_ACK_FORBIDDEN,
        "WPS_ERR_ACK_FORBIDDEN\0",
        "the service rejected the operation: Forbidden\0",
    ),
    (
        WPS_ERR_ACK_INTERNAL_SERVER_ERROR,
        "WPS_ERR_ACK_INTERNAL_SERVER_ERROR\0",
        "the service rejected the operation: InternalServerError\0",
    ),
    (
        WPS_ERR_ACK_BAD_REQUEST,
        "WPS_ERR_ACK_BAD_REQUEST\0",
        "the service rejected the operation: BadRequest\0",
    ),
    (
        WPS_ERR_CANCELLED,
        "WPS_ERR_CANCELLED\0",
        "cancelled because the client was stopped or freed\0",
    ),
    (
        WPS_ERR_FORKED,
        "WPS_ERR_FORKED\0",
        "client was created before fork() and cannot be used in the child\0",
    ),
    (
        WPS_ERR_PANIC,
        "WPS_ERR_PANIC\0",
        "internal panic caught; the client is poisoned\0",
    ),
    (WPS_ERR_INTERNAL, "WPS_ERR_INTERNAL\0", "internal error\0"),
];

fn lookup(code: wps_result) -> Option<&'static (wps_result, &'static str, &'static str)> {
    TABLE.iter().find(|(c, _, _)| *c == code)
}

/// Whether a failure with this code may succeed when tried again unchanged (same ack id).
pub(crate) fn is_retryable(code: wps_result) -> bool {
    matches!(
        code,
        WPS_ERR_TIMEOUT
            | WPS_ERR_NOT_CONNECTED
            | WPS_ERR_CONNECTION
            | WPS_ERR_ACK_INTERNAL_SERVER_ERROR
    )
}

/// The result code for an engine error.
pub(crate) fn code_of(err: &Error) -> wps_result {
    match err {
        Error::InvalidArgument(_) => WPS_ERR_INVALID_ARG,
        Error::InvalidUrl(_) => WPS_ERR_INVALID_URL,
        Error::NotConnected { .. } => WPS_ERR_NOT_CONNECTED,
        Error::Timeout { .. } => WPS_ERR_TIMEOUT,
        Error::Ack { name, .. } => ack_code(name),
        Error::Connection { .. } => WPS_ERR_CONNECTION,
        Error::HandshakeRejected { status: 401 } => WPS_ERR_UNAUTHORIZED,
        Error::HandshakeRejected { .. } => WPS_ERR_HANDSHAKE,
        Error::Stopped { .. } => WPS_ERR_CANCELLED,
        Error::AlreadyStarted => WPS_ERR_INVALID_STATE,
        Error::Protocol(_) => WPS_ERR_PROTOCOL,
        Error::UrlProvider(_) => WPS_ERR_URL_PROVIDER,
        Error::PayloadTooLarge { .. } => WPS_ERR_PAYLOAD_TOO_LARGE,
        Error::QueueFull(_) => WPS_ERR_QUEUE_FULL,
        Error::StreamRefused { name, .. } => ack_code(name),
        Error::StreamClosed { .. } => WPS_ERR_STREAM_CLOSED,
    }
}

/// The result code for a service ack error name.
pub(crate) fn ack_code(name: &str) -> wps_result {
    match name {
        "Forbidden" => WPS_ERR_ACK_FORBIDDEN,
        "InternalServerError" => WPS_ERR_ACK_INTERNAL_SERVER_ERROR,
        "BadRequest" => WPS_ERR_ACK_BAD_REQUEST,
        _ => WPS_ERR_ACK,
    }
}

/// The service's error name carried by an engine error, if any.
pub(crate) fn service_error_name(err: &Error) -> Option<&str> {
    match err {
        Error::Ack { name, .. }
        | Error::StreamRefused { name, .. }
        | Error::StreamClosed { name, .. } => Some(name.as_str()),
        _ => None,
    }
}

/// A failure as the C surface reports it: code, message, optional service error name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: wps_result,
    pub message: String,
    pub error_name: Option<String>,
}

impl Failure {
    pub fn new(code: wps_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            error_name: None,
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure::from(&err)
    }
}

impl From<&Error> for Failure {
    fn from(err: &Error) -> Failure {
        Failure {
            code: code_of(err),
            message: err.to_string(),
            error_name: service_error_name(err).map(str::to_owned),
        }
    }
}

struct LastError {
    message: Option<CString>,
    name: Option<CString>,
}

thread_local! {
    /// This thread's last error, allocated at its first failure and freed by a thread-specific
    /// data destructor ([`free_last_error`]) when the thread exits. A plain pointer without a
    /// destructor of its own stays usable while the thread exits, where `wps_*` calls can
    /// still come from `atexit` handlers and other thread-specific data destructors.
    static LAST_ERROR: Cell<*mut LastError> = const { Cell::new(std::ptr::null_mut()) };
}

/// The key whose destructor frees a thread's [`LastError`].
fn last_error_key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a live local; the destructor is a plain function.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(free_last_error)) };
        (rc == 0).then_some(key)
    })
}

/// Frees a thread's last error at thread exit.
unsafe extern "C" fn free_last_error(p: *mut c_void) {
    let p = p.cast::<LastError>();
    let _ = LAST_ERROR.try_with(|cell| {
        if cell.get() == p {
            cell.set(std::ptr::null_mut());
        }
    });
    // SAFETY: `p` came from Box::into_raw in `fail` and was registered for this thread only;
    // the thread-specific value is cleared before this destructor runs, so it runs once.
    drop(unsafe { Box::from_raw(p) });
}

/// Runs `f` on this thread's last error, creating it if `create`; `None` if there is none.
fn with_last_error<R>(create: bool, f: impl FnOnce(&mut LastError) -> R) -> Option<R> {
    LAST_ERROR
        .try_with(|cell| {
            let mut p = cell.get();
            if p.is_null() {
                let key = last_error_key().filter(|_| create)?;
                p = Box::into_raw(Box::new(LastError {
                    message: None,
                    name: None,
                }));
                // SAFETY: a valid key; the value is this thread's own allocation.
                if unsafe { libc::pthread_setspecific(key, p.cast()) } != 0 {
                    // SAFETY: just allocated above and not registered anywhere.
                    drop(unsafe { Box::from_raw(p) });
                    return None;
                }
                cell.set(p);
            }
            // SAFETY: `p` is this thread's own LastError, used by this thread only, and no
            // other reference to it is alive (callers never hold one across calls).
            Some(f(unsafe { &mut *p }))
        })
        .ok()
        .flatten()
}

/// NUL-terminated copy of `s`; interior NULs are replaced so the text is never lost.
pub(crate) fn to_cstring(s: &str) -> CString {
    // One allocation, with room for the terminator, in the usual case of no interior NUL.
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    CString::new(bytes)
        .or_else(|_| CString::new(s.replace('\0', "\u{FFFD}")))
        .unwrap_or_default()
}

/// Records `failure` as this thread's last error and returns its code.
pub(crate) fn fail(failure: Failure) -> wps_result {
    with_last_error(true, |last| {
        last.message = Some(to_cstring(&failure.message));
        last.name = failure.error_name.as_deref().map(to_cstring);
    });
    failure.code
}

/// Shorthand for `fail(Failure::new(code, message))`.
pub(crate) fn fail_with(code: wps_result, message: impl Into<String>) -> wps_result {
    fail(Failure::new(code, message))
}

/// Converts an operation outcome into a result code, recording the failure detail.
pub(crate) fn report<T>(outcome: Result<T, Failure>) -> wps_result {
    match outcome {
        Ok(_) => WPS_OK,
        Err(f) => fail(f),
    }
}

/// A static, NUL-terminated description of a result code.
///
/// Ownership: the returned string is static; never free it.
/// Lifetime: valid for the life of the process.
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: none; unknown codes return "unknown result code". Never returns NULL.
#[no_mangle]
pub extern "C" fn wps_result_str(result: i32) -> *const c_char {
    let text = lookup(result).map_or("unknown result code\0", |(_, _, d)| d);
    text.as_ptr().cast()
}

/// The symbolic name of a result code, e.g. `"WPS_ERR_TIMEOUT"`.
///
/// Ownership: the returned string is static; never free it.
/// Lifetime: valid for the life of the process.
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: none; unknown codes return "WPS_ERR_UNKNOWN". Never returns NULL.
#[no_mangle]
pub extern "C" fn wps_result_name(result: i32) -> *const c_char {
    let text = lookup(result).map_or("WPS_ERR_UNKNOWN\0", |(_, n, _)| n);
    text.as_ptr().cast()
}

/// Whether trying the same call again unchanged (with the same ack id) may succeed:
/// true for `WPS_ERR_TIMEOUT`, `WPS_ERR_NOT_CONNECTED`, `WPS_ERR_CONNECTION` and
/// `WPS_ERR_ACK_INTERNAL_SERVER_ERROR`; false for everything else, including unknown codes.
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_result_is_retryable(result: i32) -> bool {
    is_retryable(result)
}

/// The detail message of the last failed `wps_*` call on this thread, or NULL if no call on this
/// thread has failed yet.
///
/// Ownership: owned by the library; never free it.
/// Lifetime: valid until the next failing `wps_*` call on the same thread (at least until the
/// next `wps_*` call on this thread).
/// Thread-safety: per thread; other threads' failures never change it.
/// Callback context: may be called from any callback.
/// Also works during thread and process exit (`atexit` handlers, thread-specific data
/// destructors).
#[no_mangle]
pub extern "C" fn wps_last_error_message() -> *const c_char {
    boundary("wps_last_error_message", || {
        with_last_error(false, |last| {
            last.message
                .as_ref()
                .map_or(std::ptr::null(), |m| m.as_ptr())
        })
        .unwrap_or(std::ptr::null())
    })
}

/// The service's error name (e.g. `"Forbidden"`, `"InternalServerError"`) when the last failed
/// `wps_*` call on this thread failed with a service ack error; NULL otherwise.
///
/// Ownership: owned by the library; never free it.
/// Lifetime: valid until the next failing `wps_*` call on the same thread (at least until the
/// next `wps_*` call on this thread).
/// Thread-safety: per thread. Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_last_error_name() -> *const c_char {
    boundary("wps_last_error_name", || {
        with_last_error(false, |last| {
            last.name.as_ref().map_or(std::ptr::null(), |m| m.as_ptr())
        })
        .unwrap_or(std::ptr::null())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn s(p: *const c_char) -> &'static str {
        // SAFETY: the functions under test return static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn c_strings_keep_text_and_replace_interior_nuls() {
        assert_eq!(to_cstring("café").to_str().unwrap(), "café");
        assert_eq!(to_cstring("").to_bytes(), b"");
        assert_eq!(to_cstring("a\0b").to_str().unwrap(), "a\u{FFFD}b");
    }

    #[test]
    fn every_code_has_a_distinct_name_and_text() {
        for (code, name, text) in TABLE {
            assert!(name.ends_with('\0') && text.ends_with('\0'));
            assert_eq!(s(wps_result_name(*code)), name.trim_end_matches('\0'));
            assert_eq!(TABLE.iter().filter(|(c, _, _)| c == code).count(), 1);
        }
        assert_eq!(s(wps_result_name(12345)), "WPS_ERR_UNKNOWN");
        assert_eq!(s(wps_result_str(-1)), "unknown result code");
    }

    #[test]
    fn ack_errors_keep_the_service_name() {
        let err = Error::Ack {
            ack_id: 4,
            name: "Forbidden".into(),
            message: "no".into(),
        };
        assert_eq!(fail(Failure::from(&err)), WPS_ERR_ACK_FORBIDDEN);
        assert_eq!(s(wps_last_error_name()), "Forbidden");
        fail_with(WPS_ERR_TIMEOUT, "slow");
        assert!(wps_last_error_name().is_null());
        assert_eq!(s(wps_last_error_message()), "slow");
    }

    #[test]
    fn handshake_401_is_unauthorized() {
        assert_eq!(
            code_of(&Error::HandshakeRejected { status: 401 }),
            WPS_ERR_UNAUTHORIZED
        );
        assert_eq!(
            code_of(&Error::HandshakeRejected { status: 500 }),
            WPS_ERR_HANDSHAKE
        );
        assert!(is_retryable(WPS_ERR_TIMEOUT));
        assert!(!is_retryable(WPS_ERR_ACK_FORBIDDEN));
    }
}
