//! Group state from C: set or clear this connection's state in a group, and subscribe to a
//! group's state (`WPS_EVENT_GROUP_STATE` then carries snapshots and updates). Blocking calls
//! and `_async` twins, with the conventions of `wps_join_group`.

use std::ffi::{c_char, c_void};

use super::client::ClientEntry;
use super::dispatch::wps_event_fn;
use super::error::{wps_result, Failure};
use super::event::{
    Completed, WPS_OP_SET_GROUP_STATE, WPS_OP_SUBSCRIBE_GROUP_STATE, WPS_OP_UNSUBSCRIBE_GROUP_STATE,
};
use super::handle::wps_client;
use super::macros::{ffi_fn, str_arg, write_opt};
use super::ops::{acked, record_duplicate, resolve_ack_id, room_for};
use super::pending::Completion;

#[derive(Clone, Copy)]
enum StateOp {
    Set,
    Subscribe,
    Unsubscribe,
}

impl StateOp {
    fn op(self) -> u32 {
        match self {
            StateOp::Set => WPS_OP_SET_GROUP_STATE,
            StateOp::Subscribe => WPS_OP_SUBSCRIBE_GROUP_STATE,
            StateOp::Unsubscribe => WPS_OP_UNSUBSCRIBE_GROUP_STATE,
        }
    }

    fn what(self) -> &'static str {
        match self {
            StateOp::Set => "set group state",
            StateOp::Subscribe => "subscribe group state",
            StateOp::Unsubscribe => "unsubscribe group state",
        }
    }
}

type Accepted<F> = (Option<String>, u64, F);

/// Validates a group-state operation and returns its future; writes `*out_ack_id` once
/// accepted.
///
/// # Safety
/// `group` and `state_json` are NULL or NUL-terminated; `out_ack_id` is NULL or writable.
unsafe fn state_op(
    e: &ClientEntry,
    kind: StateOp,
    group: *const c_char,
    state_json: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
    asynchronous: bool,
) -> Result<
    Accepted<impl std::future::Future<Output = Result<Completed, Failure>> + Send + 'static>,
    Failure,
> {
    // SAFETY: per this function's contract.
    let group = unsafe { str_arg(group, "group") }?.to_owned();
    let state = if state_json.is_null() {
        None
    } else {
        // SAFETY: per this function's contract.
        Some(unsafe { str_arg(state_json, "state_json") }?.to_owned())
    };
    let id = resolve_ack_id(e, ack_id)?;
    let bytes = group.len() + state.as_ref().map_or(0, String::len);
    let room = room_for(e, asynchronous, bytes, id)?;
    // SAFETY: per this function's contract.
    unsafe { write_opt(out_ack_id, id) };
    let client = e.client.clone();
    let kept = asynchronous.then(|| group.clone());
    let fut = async move {
        acked(match kind {
            StateOp::Set => {
                client
                    .set_group_state_with(&group, state.as_deref(), Some(id), room)
                    .await
            }
            StateOp::Subscribe | StateOp::Unsubscribe => {
                let subscribe = matches!(kind, StateOp::Subscribe);
                client
                    .group_state_subscription_with(&group, subscribe, Some(id), room)
                    .await
            }
        })
    };
    Ok((kept, id, fut))
}

/// # Safety
/// As for `state_op`.
unsafe fn blocking(
    c: *mut wps_client,
    kind: StateOp,
    group: *const c_char,
    state_json: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ClientEntry::with(c, |e| {
        // SAFETY: forwarded under the caller's contract.
        let (_, _, fut) =
            unsafe { state_op(e, kind, group, state_json, ack_id, out_ack_id, false) }?;
        record_duplicate(e.wait(kind.what(), None, fut))
    })
}

/// # Safety
/// As for `state_op`.
#[allow(clippy::too_many_arguments)]
unsafe fn asynchronous(
    c: *mut wps_client,
    kind: StateOp,
    group: *const c_char,
    state_json: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ClientEntry::with(c, |e| {
        // SAFETY: forwarded under the caller's contract.
        let (group, id, fut) =
            unsafe { state_op(e, kind, group, state_json, ack_id, out_ack_id, true) }?;
        let done = Completion::new(kind.op(), kind.what(), group, id, on_complete, op_context);
        e.spawn_op(done, fut)
    })
}

/// Sets this connection's state in `group` (which it must have joined) to `state_json`, a
/// JSON object whose values are strings (at most 64 keys and 4096 bytes), or clears it when
/// `state_json` is NULL; blocks until the service acks. Subscribers of the group's state get
/// the change as a `WPS_EVENT_GROUP_STATE` update. A new connection starts without state.
/// `ack_id` and `*out_ack_id` as for `wps_join_group`.
///
/// Ownership: strings are copied. Thread-safety: any thread. Callback context: may be called
/// from any callback.
/// Errors: as `wps_join_group`, plus `WPS_ERR_INVALID_ARG` for a state that is not a JSON
/// object of strings; the service answers `WPS_ERR_ACK_BAD_REQUEST` when the connection is
/// not in the group.
///
/// # Safety
/// `group` and `state_json` are NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_set_group_state(
    c: *mut wps_client,
    group: *const c_char,
    state_json: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_set_group_state", {
        // SAFETY: forwarded under this function's contract.
        unsafe { blocking(c, StateOp::Set, group, state_json, ack_id, out_ack_id) }
    })
}

/// Subscribes to `group`'s state and blocks until the service acks; a snapshot
/// (`WPS_EVENT_GROUP_STATE`, `is_snapshot` = 1) follows, then updates. The subscription is
/// renewed on every new connection (a fresh snapshot follows); a failed renewal is reported
/// as `WPS_EVENT_REJOIN_GROUP_FAILED` for the group. Conventions as `wps_join_group`.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_subscribe_group_state(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_subscribe_group_state", {
        let none = std::ptr::null();
        // SAFETY: forwarded under this function's contract.
        unsafe { blocking(c, StateOp::Subscribe, group, none, ack_id, out_ack_id) }
    })
}

/// Ends a subscription to `group`'s state; blocking, conventions as `wps_join_group`.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_unsubscribe_group_state(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_unsubscribe_group_state", {
        let none = std::ptr::null();
        // SAFETY: forwarded under this function's contract.
        unsafe { blocking(c, StateOp::Unsubscribe, group, none, ack_id, out_ack_id) }
    })
}

/// `wps_set_group_state` without blocking: exactly one `WPS_EVENT_ACK` completion
/// (`op == WPS_OP_SET_GROUP_STATE`) follows a `WPS_OK` return, routed as for
/// `wps_join_group_async`.
///
/// # Safety
/// `group` and `state_json` are NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_set_group_state_async(
    c: *mut wps_client,
    group: *const c_char,
    state_json: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_set_group_state_async", {
        // SAFETY: forwarded under this function's contract.
        unsafe {
            asynchronous(
                c,
                StateOp::Set,
                group,
                state_json,
                ack_id,
                on_complete,
                op_context,
                out_ack_id,
            )
        }
    })
}

/// `wps_subscribe_group_state` without blocking (`op == WPS_OP_SUBSCRIBE_GROUP_STATE`).
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_subscribe_group_state_async(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_subscribe_group_state_async", {
        let none = std::ptr::null();
        // SAFETY: forwarded under this function's contract.
        unsafe {
            asynchronous(
                c,
                StateOp::Subscribe,
                group,
                none,
                ack_id,
                on_complete,
                op_context,
                out_ack_id,
            )
        }
    })
}

/// `wps_unsubscribe_group_state` without blocking (`op == WPS_OP_UNSUBSCRIBE_GROUP_STATE`).
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_unsubscribe_group_state_async(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_unsubscribe_group_state_async", {
        let none = std::ptr::null();
        // SAFETY: forwarded under this function's contract.
        unsafe {
            asynchronous(
                c,
                StateOp::Unsubscribe,
                group,
                none,
                ack_id,
                on_complete,
                op_context,
                out_ack_id,
            )
        }
    })
}
