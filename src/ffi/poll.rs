//! Poll mode: the application runs its client's callbacks on its own thread.

use std::ffi::c_int;
use std::time::Duration;

use super::blocking::refuse_on_engine_thread;
use super::client::ClientEntry;
use super::dispatch::Mode;
use super::error::{fail_with, wps_result, WPS_ERR_INVALID_STATE};
use super::handle::{self, wps_client};
use super::macros::{ffi_fn, write_opt};

/// The descriptor of a `WPS_DISPATCH_POLL` client: readable (level-triggered) while events are
/// pending; call `wps_client_dispatch` when it is. Do not read, write or close it; remove it from
/// your event loop before `wps_client_free`, which closes it.
///
/// Returns -1 (with the reason in `wps_last_error_message()`) for a thread-mode client, NULL,
/// freed or inherited handles.
/// Thread-safety: any thread. Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_client_get_fd(c: *const wps_client) -> c_int {
    ffi_fn!("wps_client_get_fd", {
        match handle::lookup(c) {
            Ok(e) => match e.queue.raw_fd() {
                Some(fd) => fd,
                None => {
                    fail_with(
                        WPS_ERR_INVALID_STATE,
                        "the client is not in WPS_DISPATCH_POLL mode",
                    );
                    -1
                }
            },
            Err(f) => {
                super::error::fail(f);
                -1
            }
        }
    })
}

/// Runs up to `max_events` pending callbacks (0 = all pending) of a `WPS_DISPATCH_POLL` client
/// on the calling thread, in order. Waits up to `timeout_ms` for the first event (0 = do not
/// wait). `*out_dispatched` (may be NULL) receives the number of events delivered.
///
/// Thread-safety: any thread; concurrent calls for one client run one after the other (events
/// are never delivered concurrently). Callback context: inside a callback of the same client it
/// delivers nothing (events never nest) and returns `WPS_OK`; a `wps_client_free` made from a
/// callback completes inside this call.
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_FORKED`,
/// `WPS_ERR_INVALID_STATE` (thread-mode client; or a timeout > 0 on one of the library's runtime
/// threads, i.e. from the log callback, where waiting would stall the engine).
///
/// # Safety
/// `out_dispatched` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_client_dispatch(
    c: *mut wps_client,
    max_events: u32,
    timeout_ms: u32,
    out_dispatched: *mut u32,
) -> wps_result {
    ffi_fn!("wps_client_dispatch", {
        // SAFETY: NULL or writable per the contract.
        unsafe { write_opt(out_dispatched, 0) };
        ClientEntry::with(c, |e| {
            if e.queue.mode() != Mode::Poll {
                return Err(super::error::Failure::new(
                    WPS_ERR_INVALID_STATE,
                    "the client is not in WPS_DISPATCH_POLL mode",
                ));
            }
            if timeout_ms > 0 {
                refuse_on_engine_thread("wps_client_dispatch with a timeout")?;
            }
            let queue = e.queue.clone();
            let n = queue.dispatch(
                max_events as usize,
                Duration::from_millis(u64::from(timeout_ms)),
            );
            // SAFETY: NULL or writable per the contract.
            unsafe { write_opt(out_dispatched, u32::try_from(n).unwrap_or(u32::MAX)) };
            Ok(())
        })
    })
}
