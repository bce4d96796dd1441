//! Client lifecycle: create, start, stop, free, and state getters.

use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{Client, Credential};

use super::blocking::Closing;
use super::dispatch::{wps_event_fn, wps_free_fn, EventQueue};
use super::error::{
    fail, fail_with, report, wps_result, Failure, WPS_ERR_BUFFER_TOO_SMALL, WPS_ERR_INTERNAL,
    WPS_ERR_INVALID_URL, WPS_ERR_NOT_CONNECTED, WPS_ERR_NULL_ARG, WPS_OK,
};
use super::event::{Completed, WPS_OP_START, WPS_OP_STOP};
use super::handle::{self, wps_client};
use super::macros::{ffi_fn, non_null, panic_message, str_arg, try_ffi, write_opt};
use super::options::wps_options;
use super::pending::Completion;
use super::provider::{wps_url_provider_fn, ProviderCell};

pub(crate) use super::entry::ClientEntry;
use super::entry::{free, start_limit, stop_limit, QueueHandler};

/// Checks a client access URL before anything connects.
fn check_url(url: &str) -> Result<Option<&'static str>, Failure> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Failure::new(
            WPS_ERR_INVALID_URL,
            format!("malformed client access URL: {e}"),
        )
    })?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(Failure::new(
            WPS_ERR_INVALID_URL,
            format!(
                "client access URL scheme must be ws or wss, not {}",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().map_or(true, str::is_empty) {
        return Err(Failure::new(
            WPS_ERR_INVALID_URL,
            "client access URL has no host",
        ));
    }
    let has_token = parsed.query_pairs().any(|(k, _)| k == "access_token");
    Ok((!has_token).then_some(" (the client access URL has no access_token parameter)"))
}

fn create(
    credential: Credential,
    provider: Option<Arc<ProviderCell>>,
    hint: Option<&'static str>,
    opts: *const wps_options,
    out: *mut *mut wps_client,
) -> Result<(), Failure> {
    let defaults = wps_options::default();
    // SAFETY: `opts` is NULL or a live builder per the caller's contract.
    let o = unsafe { opts.as_ref() }.unwrap_or(&defaults);
    let id = handle::allocate_id();
    let g = handle::globals();
    let backlog = crate::client::Backlog::new(o.backlog_messages, o.backlog_bytes);
    let queue = EventQueue::new(id, o.mode, &g.pool, Some(backlog)).map_err(|e| {
        Failure::new(
            WPS_ERR_INTERNAL,
            format!("cannot create the poll descriptor: {e}"),
        )
    })?;
    let rt = catch_unwind(crate::runtime::handle).map_err(|p| {
        Failure::new(
            WPS_ERR_INTERNAL,
            format!("cannot start the runtime: {}", panic_message(p.as_ref())),
        )
    })?;
    let client = Client::new(
        credential,
        o.engine.clone(),
        Arc::new(QueueHandler(queue.clone())),
    );
    let entry = Arc::new(ClientEntry {
        id,
        client,
        queue,
        rt,
        closing: Closing::new(),
        poisoned: AtomicBool::new(false),
        provider,
        shutdown_timeout: o.shutdown_timeout,
        start_timeout: o.engine.start_timeout,
        max_message_size: o.engine.max_message_size,
        unauthorized_hint: hint,
    });
    let h = handle::register(entry);
    // SAFETY: `out` is non-NULL (checked by the caller) and writable per the contract.
    unsafe { out.write(h) };
    Ok(())
}

/// Creates a client for a fixed client access URL (`ws://` or `wss://`, normally carrying an
/// `access_token`). Nothing connects until `wps_client_start`.
///
/// Ownership: `client_access_url` and `opts` are copied (`opts` may be freed right after);
/// `*out` receives a handle the caller owns; release it with `wps_client_free`.
/// Thread-safety: any thread. Callback context: may be called from a callback.
/// Errors: `WPS_ERR_NULL_ARG` (url or out NULL), `WPS_ERR_INVALID_UTF8`, `WPS_ERR_INVALID_URL`
/// (malformed, not ws/wss, no host). A URL without `access_token` is accepted (the service
/// decides; expect `WPS_ERR_UNAUTHORIZED` from start). `*out` is written only on success.
/// NULL: `opts` may be NULL (defaults).
///
/// # Safety
/// `client_access_url` is NULL or NUL-terminated; `opts` is NULL or a live builder; `out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_client_new(
    client_access_url: *const c_char,
    opts: *const wps_options,
    out: *mut *mut wps_client,
) -> wps_result {
    ffi_fn!("wps_client_new", {
        non_null!(out, "out");
        // SAFETY: NULL or NUL-terminated per the contract.
        let url = try_ffi!(unsafe { str_arg(client_access_url, "client_access_url") });
        let hint = try_ffi!(check_url(url));
        report(create(
            Credential::Url(url.to_owned()),
            None,
            hint,
            opts,
            out,
        ))
    })
}

/// Creates a client whose client access URL comes from `provider`, called for every new
/// connection (start, reconnect) like the SDKs' credential / negotiate callback. Equivalent to
/// `wps_client_new_with_provider_ex` without a destructor.
///
/// Ownership: `provider_user_data` is borrowed until the provider's last call returned: no call
/// starts after `wps_client_free` returned, and that free lets a running call return first,
/// unless the call outlives the shutdown timeout (see `wps_client_free`; use
/// `wps_client_new_with_provider_ex` to be told when it returned). `opts` is copied; `*out`
/// receives a handle the caller owns.
/// Thread-safety: any thread. Callback context: may be called from a callback.
/// The provider runs on a library thread that may block (not a runtime I/O thread), never
/// concurrently for one client.
/// Errors: `WPS_ERR_NULL_ARG` (provider or out NULL). `*out` is written only on success.
///
/// # Safety
/// `provider` must be safe to call as documented for `wps_url_provider_fn`; `opts` is NULL or
/// a live builder; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_client_new_with_provider(
    provider: wps_url_provider_fn,
    provider_user_data: *mut c_void,
    opts: *const wps_options,
    out: *mut *mut wps_client,
) -> wps_result {
    ffi_fn!("wps_client_new_with_provider", {
        // SAFETY: forwarded under this function's contract.
        unsafe { new_with_provider(provider, provider_user_data, None, opts, out) }
    })
}

/// Like `wps_client_new_with_provider`, plus `provider_user_data_free`, called exactly once
/// after the provider's last call has returned, with no library lock held: during
/// `wps_client_free` (also a deferred one), or, when a provider call is still running at the end
/// of the shutdown timeout, on the provider's thread when that call returns (after free
/// returned). Not called when this function fails.
///
/// # Safety
/// As for `wps_client_new_with_provider`.
#[no_mangle]
pub unsafe extern "C" fn wps_client_new_with_provider_ex(
    provider: wps_url_provider_fn,
    provider_user_data: *mut c_void,
    provider_user_data_free: wps_free_fn,
    opts: *const wps_options,
    out: *mut *mut wps_client,
) -> wps_result {
    ffi_fn!("wps_client_new_with_provider_ex", {
        // SAFETY: forwarded under this function's contract.
        unsafe {
            new_with_provider(
                provider,
                provider_user_data,
                provider_user_data_free,
                opts,
                out,
            )
        }
    })
}

/// # Safety
/// As for `wps_client_new_with_provider`.
unsafe fn new_with_provider(
    provider: wps_url_provider_fn,
    user_data: *mut c_void,
    user_data_free: wps_free_fn,
    opts: *const wps_options,
    out: *mut *mut wps_client,
) -> wps_result {
    non_null!(out, "out");
    let Some(func) = provider else {
        return fail_with(WPS_ERR_NULL_ARG, "provider is NULL");
    };
    let cell = ProviderCell::new(func, user_data, user_data_free);
    let for_engine = cell.clone();
    let credential = Credential::Provider(Arc::new(move || for_engine.call()));
    let created = create(credential, Some(cell.clone()), None, opts, out);
    if created.is_err() {
        // The caller keeps ownership of user_data on failure: drop the destructor unrun.
        cell.forget_user_data_free();
    }
    report(created)
}

/// Connects and blocks until the client is connected (the `connected` message arrived), the
/// connection fails, or `timeout_ms` passes (0 = the default start timeout, 30000 ms). On
/// timeout the attempt is stopped and `WPS_ERR_TIMEOUT` is returned.
///
/// Thread-safety: any thread. Callback context: may be called from any callback (it waits for
/// the network, not for callbacks).
/// Errors: `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_NULL_ARG`, `WPS_ERR_FORKED`,
/// `WPS_ERR_INVALID_STATE` (already started; or called on one of the library's runtime threads,
/// i.e. from the log callback), `WPS_ERR_UNAUTHORIZED` (401),
/// `WPS_ERR_HANDSHAKE`, `WPS_ERR_CONNECTION`, `WPS_ERR_TIMEOUT`, `WPS_ERR_URL_PROVIDER`,
/// `WPS_ERR_CANCELLED` (freed meanwhile). Details in `wps_last_error_message()`.
#[no_mangle]
pub extern "C" fn wps_client_start(c: *mut wps_client, timeout_ms: u32) -> wps_result {
    ffi_fn!("wps_client_start", {
        ClientEntry::with(c, |e| {
            let limit = start_limit(e, timeout_ms);
            e.queue.start_session();
            // The outer bound only guards against a runtime that stopped making progress.
            e.wait(
                "start",
                Some(limit + Duration::from_secs(5)),
                e.start_future(limit),
            )
        })
    })
}

/// Like `wps_client_start` but returns at once; the outcome arrives as one `WPS_EVENT_ACK`
/// event with `op == WPS_OP_START` (to `on_complete(op_context, ev)` when `on_complete` is not
/// NULL, else to the callback registered for `WPS_EVENT_ACK`).
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_NULL_ARG`, `WPS_ERR_FORKED`; when it returns
/// `WPS_OK` exactly one completion follows, otherwise none.
#[no_mangle]
pub extern "C" fn wps_client_start_async(
    c: *mut wps_client,
    timeout_ms: u32,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
) -> wps_result {
    ffi_fn!("wps_client_start_async", {
        ClientEntry::with(c, |e| {
            let fut = e.start_future(start_limit(e, timeout_ms));
            e.spawn_op(
                Completion::new(WPS_OP_START, "start", None, 0, on_complete, op_context),
                async move { fut.await.map(|()| Completed::Unit) },
            )
        })
    })
}

/// Stops the client: cancels recovery, reconnects and pending operations (they fail with
/// `WPS_ERR_CANCELLED`), closes the connection, and then delivers `WPS_EVENT_DISCONNECTED` (if
/// connected) and `WPS_EVENT_STOPPED`. Blocks until stopped or `timeout_ms` passes (0 = the
/// shutdown timeout, default 5000 ms). Idempotent; the client can be started again.
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_NULL_ARG`, `WPS_ERR_FORKED`, `WPS_ERR_TIMEOUT`
/// (still stopping in the background), `WPS_ERR_INVALID_STATE` (called on one of the library's
/// runtime threads, i.e. from the log callback; use `wps_client_stop_async` there).
#[no_mangle]
pub extern "C" fn wps_client_stop(c: *mut wps_client, timeout_ms: u32) -> wps_result {
    ffi_fn!("wps_client_stop", {
        ClientEntry::with(c, |e| {
            let limit = stop_limit(e, timeout_ms);
            e.wait(
                "stop",
                Some(limit + Duration::from_secs(5)),
                e.stop_future(limit),
            )
        })
    })
}

/// Like `wps_client_stop` but returns at once; the outcome arrives as one `WPS_EVENT_ACK` event
/// with `op == WPS_OP_STOP` (routing as for `wps_client_start_async`).
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_NULL_ARG`, `WPS_ERR_FORKED`.
#[no_mangle]
pub extern "C" fn wps_client_stop_async(
    c: *mut wps_client,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
) -> wps_result {
    ffi_fn!("wps_client_stop_async", {
        ClientEntry::with(c, |e| {
            let fut = e.stop_future(e.shutdown_timeout);
            e.spawn_op(
                Completion::new(WPS_OP_STOP, "stop", None, 0, on_complete, op_context),
                async move { fut.await.map(|()| Completed::Unit) },
            )
        })
    })
}

/// Frees a client. NULL, a freed handle and (in a forked child) an inherited handle are
/// no-ops. The handle is invalid as soon as the call starts: concurrent and later calls return
/// `WPS_ERR_INVALID_HANDLE` (an `_async` call or `wps_set_callback*` racing with the free is
/// either refused so, or accepted and then completed or destroyed before free returns), and calls
/// blocked on another thread return `WPS_ERR_CANCELLED`. The URL provider is not called again.
///
/// The teardown closes the connection, lets a running URL provider call and a callback of this
/// client running on another thread return, and completes every accepted `_async` operation
/// (`WPS_ERR_CANCELLED` unless it finished). Then, on the calling thread, it delivers what is
/// still owed: operation completions, `WPS_EVENT_DISCONNECTED` and `WPS_EVENT_STOPPED` (also in
/// poll mode, without a further `wps_client_dispatch`; queued messages are dropped), and runs
/// every `user_data_free` destructor once. After free returns, no callback or destructor of this
/// client runs or will run, except in the hand-over cases below.
///
/// Bounded: the waits for the connection, the provider and other threads' callbacks together
/// last at most the shutdown timeout (`wps_options_set_shutdown_timeout_ms`, default 5000 ms);
/// only the calling thread's own delivery of what is owed comes on top. What cannot be waited
/// for is handed over instead of waited for:
/// - Inside one of this client's own callbacks the teardown is deferred: it runs on that thread
///   right after the callback returns (in poll mode, inside that `wps_client_dispatch`).
/// - A callback of this client running on another thread is not waited for when that thread
///   itself waits, through `wps_client_free` calls of its own, for the calling thread (callbacks
///   or URL providers of different clients freeing each other, in cycles of any length), nor
///   past the shutdown timeout. The rest of the teardown is then handed to that thread and runs
///   there right after that callback returns: its completions, `DISCONNECTED`, `STOPPED` and
///   destructors come after free returned, on that thread. This is the only way a callback of
///   this client can run after free returned. Free from inside any callback therefore never
///   waits for another client's callback longer than the shutdown timeout, and never in a cycle.
/// - A URL provider call still running at the end of the shutdown timeout (or on a thread that
///   waits for the calling thread) is not waited for: its result is discarded, and the
///   `provider_user_data_free` of `wps_client_new_with_provider_ex` runs when it returns.
///
/// - On one of the library's runtime threads (from the log callback) it cannot wait at all: the
///   teardown then runs on a thread of its own and finishes after free returned.
///
/// Thread-safety: any thread, also from `atexit` handlers and thread-specific data destructors.
/// Calling it while holding a lock your callbacks take delays it up to the shutdown timeout and
/// hands the teardown over as above.
#[no_mangle]
pub extern "C" fn wps_client_free(c: *mut wps_client) {
    ffi_fn!("wps_client_free", {
        if c.is_null() {
            return;
        }
        let entry = match handle::unregister(c) {
            Ok(entry) => entry,
            Err(f) => {
                crate::wps_log!(Verbose, "wps_client_free: {}", f.message);
                return;
            }
        };
        free(entry);
    })
}

/// Whether the client currently has an established connection (false while recovering or
/// reconnecting, and for NULL, freed or inherited handles).
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_client_is_connected(c: *const wps_client) -> bool {
    ffi_fn!("wps_client_is_connected", {
        handle::lookup(c).is_ok_and(|e| e.client.is_connected())
    })
}

/// Copies the current connection id (NUL-terminated) into `buf`.
///
/// Ownership: `buf` is the caller's. `*out_len` (may be NULL) receives the size needed
/// including the NUL, also when the buffer is too small.
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_NULL_ARG` (client, or buf with cap > 0), `WPS_ERR_INVALID_HANDLE`,
/// `WPS_ERR_FORKED`, `WPS_ERR_NOT_CONNECTED`, `WPS_ERR_BUFFER_TOO_SMALL` (nothing written to buf).
///
/// # Safety
/// `buf` is NULL or has `cap` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_client_get_connection_id(
    c: *const wps_client,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> wps_result {
    ffi_fn!("wps_client_get_connection_id", {
        if buf.is_null() && cap > 0 {
            return fail_with(WPS_ERR_NULL_ARG, "buf is NULL but cap is not 0");
        }
        let entry = try_ffi!(handle::lookup(c));
        let Some(id) = entry.client.connection_id() else {
            return fail_with(WPS_ERR_NOT_CONNECTED, "the client has no connection");
        };
        let needed = id.len() + 1;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_opt(out_len, needed) };
        if cap < needed {
            return fail(Failure::new(
                WPS_ERR_BUFFER_TOO_SMALL,
                format!("connection id needs {needed} bytes, buffer has {cap}"),
            ));
        }
        // SAFETY: buf has cap >= needed writable bytes; the source is a live String.
        unsafe {
            std::ptr::copy_nonoverlapping(id.as_ptr(), buf.cast(), id.len());
            *buf.add(id.len()) = 0;
        }
        WPS_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_connecting() {
        assert_eq!(
            check_url("not a url").unwrap_err().code,
            WPS_ERR_INVALID_URL
        );
        assert_eq!(
            check_url("http://h/client/hubs/x?access_token=t")
                .unwrap_err()
                .code,
            WPS_ERR_INVALID_URL
        );
        assert!(check_url("ws://127.0.0.1:1/client/hubs/x?access_token=t")
            .unwrap()
            .is_none());
        assert!(check_url("wss://h/client/hubs/x").unwrap().is_some());
    }
}
