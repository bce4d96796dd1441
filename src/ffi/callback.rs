//! Registering event callbacks: set, replace or remove at any time; registrations survive
//! reconnects and stop/start.

use std::ffi::c_void;

use super::client::ClientEntry;
use super::dispatch::{wps_event_fn, wps_free_fn, Registration};
use super::error::{wps_result, Failure, WPS_ERR_INVALID_ARG};
use super::event::MAX_EVENT_TYPE;
use super::handle::wps_client;
use super::macros::ffi_fn;

fn set(
    c: *mut wps_client,
    event_type: u32,
    func: wps_event_fn,
    user_data: *mut c_void,
    free: wps_free_fn,
) -> wps_result {
    ClientEntry::with(c, |e| {
        if event_type == 0 || event_type > MAX_EVENT_TYPE {
            return Err(Failure::new(
                WPS_ERR_INVALID_ARG,
                format!("unknown event type {event_type}"),
            ));
        }
        let reg = func.map(|f| Registration::new(f, user_data, free));
        e.queue.set_callback(event_type, reg)
    })
}

/// Sets, replaces (same `event_type`) or removes (`callback` NULL) the callback for one event type
/// (`WPS_EVENT_*`). Equivalent to `wps_set_callback_ex` with no `user_data_free`.
///
/// Ownership: `user_data` is passed back verbatim; it must stay valid while the registration
/// can run (until it is replaced/removed and any in-flight invocation returned, or until
/// `wps_client_free` returns; in the hand-over case described there, until the teardown
/// finished on the callback's thread, which `wps_set_callback_ex`'s destructor reports).
/// Thread-safety: any thread, at any time (before or after start).
/// Callback context: may be called from any callback, including to replace itself; the
/// invocation in progress finishes with the old registration.
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_FORKED`,
/// `WPS_ERR_INVALID_ARG` (unknown event type).
#[no_mangle]
pub extern "C" fn wps_set_callback(
    c: *mut wps_client,
    event_type: u32,
    callback: wps_event_fn,
    user_data: *mut c_void,
) -> wps_result {
    ffi_fn!("wps_set_callback", {
        set(c, event_type, callback, user_data, None)
    })
}

/// Like `wps_set_callback`, plus a destructor for `user_data`: `user_data_free(user_data)` is
/// called exactly once, after the last invocation of `callback` with that `user_data` has returned:
/// when the registration is replaced or removed, or when the client is freed (also a deferred
/// free). It runs on an unspecified thread (possibly the caller of set/free), with no library
/// lock held, and, like the callbacks, never after `wps_client_free` returned (except in the
/// hand-over case described there). If this call fails, including with
/// `WPS_ERR_INVALID_HANDLE` because the client is being freed concurrently, or `callback` is
/// NULL, `user_data_free` is not called: the caller keeps ownership.
///
/// Thread-safety and callback context: as `wps_set_callback`.
/// Errors: as `wps_set_callback`.
#[no_mangle]
pub extern "C" fn wps_set_callback_ex(
    c: *mut wps_client,
    event_type: u32,
    callback: wps_event_fn,
    user_data: *mut c_void,
    user_data_free: wps_free_fn,
) -> wps_result {
    ffi_fn!("wps_set_callback_ex", {
        set(c, event_type, callback, user_data, user_data_free)
    })
}
