//! `invoke`: a request to the upstream event handler that returns its response.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use crate::protocol::Payload;

use super::client::ClientEntry;
use super::dispatch::wps_event_fn;
use super::error::{wps_result, Failure};
use super::event::{Completed, WPS_OP_INVOKE_EVENT};
use super::handle::wps_client;
use super::macros::{ffi_fn, non_null, str_arg};
use super::ops::payload;
use super::pending::Completion;

/// A response payload owned by the caller (from `wps_invoke_event`).
pub struct wps_buffer {
    data_type: u32,
    /// Payload followed by one NUL byte.
    data: Vec<u8>,
}

/// # Safety
/// As for `wps_invoke_event`.
unsafe fn invoke_args(
    e: &ClientEntry,
    event_name: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    timeout_ms: u32,
) -> Result<impl std::future::Future<Output = Result<Payload, Failure>> + Send + 'static, Failure> {
    // SAFETY: per the caller's contract.
    let name = unsafe { str_arg(event_name, "event_name") }?.to_owned();
    // SAFETY: per the caller's contract.
    let payload = unsafe { payload(e, data, len, data_type) }?;
    let timeout = (timeout_ms != 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
    let client = e.client.clone();
    Ok(async move {
        client
            .invoke_event(&name, payload, timeout)
            .await
            .map_err(Failure::from)
    })
}

/// Invokes the upstream event `event_name` with `data` and blocks for its response (at most
/// `timeout_ms`; 0 = the ack timeout).
///
/// Ownership: inputs are copied; on success `*out_response` receives a buffer the caller owns
/// (read it with `wps_buffer_data`/`_len`/`_data_type`, free it with `wps_buffer_free`).
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: as `wps_send_event`; the service's error name is in `wps_last_error_name()`.
///
/// # Safety
/// `event_name` is NULL or NUL-terminated; `data` has `len` readable bytes; `out_response` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_invoke_event(
    c: *mut wps_client,
    event_name: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    timeout_ms: u32,
    out_response: *mut *mut wps_buffer,
) -> wps_result {
    ffi_fn!("wps_invoke_event", {
        non_null!(out_response, "out_response");
        ClientEntry::with(c, |e| {
            // SAFETY: forwarded under this function's contract.
            let fut = unsafe { invoke_args(e, event_name, data, len, data_type, timeout_ms) }?;
            let p = e.wait("invoke event", None, fut)?;
            let mut bytes = p.data;
            bytes.push(0);
            let buf = Box::into_raw(Box::new(wps_buffer {
                data_type: super::event::data_type_code(p.data_type),
                data: bytes,
            }));
            // SAFETY: non-NULL (checked) and writable per the contract.
            unsafe { out_response.write(buf) };
            Ok(())
        })
    })
}

/// `wps_invoke_event` without blocking: one `WPS_EVENT_ACK` completion
/// (`op == WPS_OP_INVOKE_EVENT`) carries the response in `data`/`data_len`/`data_type`.
/// Routing and guarantees as for `wps_join_group_async`.
///
/// # Safety
/// `event_name` is NULL or NUL-terminated; `data` has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wps_invoke_event_async(
    c: *mut wps_client,
    event_name: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    timeout_ms: u32,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
) -> wps_result {
    ffi_fn!("wps_invoke_event_async", {
        ClientEntry::with(c, |e| {
            // SAFETY: forwarded under this function's contract.
            let fut = unsafe { invoke_args(e, event_name, data, len, data_type, timeout_ms) }?;
            e.spawn_op(
                Completion::new(
                    WPS_OP_INVOKE_EVENT,
                    "invoke event",
                    None,
                    0,
                    on_complete,
                    op_context,
                ),
                async move { fut.await.map(Completed::Payload) },
            )
        })
    })
}

/// The bytes of a response buffer (followed by a NUL byte not counted in the length); NULL for
/// a NULL buffer. Valid until `wps_buffer_free`.
///
/// # Safety
/// `b` is NULL or a live buffer from `wps_invoke_event`.
#[no_mangle]
pub unsafe extern "C" fn wps_buffer_data(b: *const wps_buffer) -> *const u8 {
    ffi_fn!("wps_buffer_data", {
        // SAFETY: NULL or live per the contract.
        unsafe { b.as_ref() }.map_or(std::ptr::null(), |b| b.data.as_ptr())
    })
}

/// The length in bytes of a response buffer; 0 for NULL.
///
/// # Safety
/// `b` is NULL or a live buffer from `wps_invoke_event`.
#[no_mangle]
pub unsafe extern "C" fn wps_buffer_len(b: *const wps_buffer) -> usize {
    ffi_fn!("wps_buffer_len", {
        // SAFETY: NULL or live per the contract.
        unsafe { b.as_ref() }.map_or(0, |b| b.data.len() - 1)
    })
}

/// The `WPS_DATA_*` type of a response buffer; 0 for NULL.
///
/// # Safety
/// `b` is NULL or a live buffer from `wps_invoke_event`.
#[no_mangle]
pub unsafe extern "C" fn wps_buffer_data_type(b: *const wps_buffer) -> u32 {
    ffi_fn!("wps_buffer_data_type", {
        // SAFETY: NULL or live per the contract.
        unsafe { b.as_ref() }.map_or(0, |b| b.data_type)
    })
}

/// Frees a response buffer. NULL is a no-op; never free a buffer twice.
///
/// # Safety
/// `b` is NULL or a live buffer from `wps_invoke_event` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn wps_buffer_free(b: *mut wps_buffer) {
    ffi_fn!("wps_buffer_free", {
        if !b.is_null() {
            // SAFETY: from Box::into_raw in wps_invoke_event, freed once per the contract.
            drop(unsafe { Box::from_raw(b) });
        }
    })
}
