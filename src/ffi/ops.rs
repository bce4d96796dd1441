//! Group and event operations: blocking calls that wait for the service's ack, and `_async`
//! twins that report exactly one completion.

use std::cell::Cell;
use std::ffi::{c_char, c_void};

use crate::client::{Room, SendOptions};
use crate::protocol::{DataType, Payload};

use super::client::ClientEntry;
use super::dispatch::wps_event_fn;
use super::error::{
    wps_result, Failure, WPS_ERR_INVALID_ARG, WPS_ERR_INVALID_UTF8, WPS_ERR_PAYLOAD_TOO_LARGE,
};
use super::event::{
    data_type_from, Completed, WPS_OP_JOIN_GROUP, WPS_OP_LEAVE_GROUP, WPS_OP_SEND_EVENT,
    WPS_OP_SEND_TO_GROUP,
};
use super::handle::wps_client;
use super::macros::{bytes_arg, ffi_fn, str_arg, write_opt};
use super::pending::Completion;

/// Do not deliver the message back to the sending connection (send-to-group only).
pub const WPS_SEND_NO_ECHO: u32 = 1;
/// No ack on the wire; `*out_ack_id` is 0. The call returns once the frame is written to the
/// connection's ordered send queue (see `wps_options_set_fire_and_forget_buffer`); with the
/// offline queue on (`wps_options_set_offline_queue`), a send made while not connected waits
/// there and returns once written on the new connection.
pub const WPS_SEND_FIRE_AND_FORGET: u32 = 2;

const ALL_SEND_FLAGS: u32 = WPS_SEND_NO_ECHO | WPS_SEND_FIRE_AND_FORGET;

/// The largest ack id a caller may choose (2^63 - 1). Ids the library allocates are above
/// every id a caller used and may be passed again to retry; any other larger id is refused
/// with `WPS_ERR_INVALID_ARG`.
pub const WPS_MAX_ACK_ID: u64 = 9_223_372_036_854_775_807u64;

const _: () = assert!(WPS_MAX_ACK_ID == crate::client::MAX_ACK_ID);

/// The outcome the engine reports for an acked operation.
pub(super) fn acked(r: Result<crate::client::AckOk, crate::Error>) -> Result<Completed, Failure> {
    r.map(|ok| Completed::Ack {
        duplicated: ok.duplicated,
    })
    .map_err(Failure::from)
}

thread_local! {
    /// Whether the last blocking acked operation on this thread succeeded as `Duplicate`.
    static LAST_ACK_DUPLICATE: Cell<bool> = const { Cell::new(false) };
}

/// Remembers for `wps_last_ack_duplicate` how a blocking acked operation ended.
pub(super) fn record_duplicate(outcome: Result<Completed, Failure>) -> Result<(), Failure> {
    let duplicate = matches!(outcome, Ok(Completed::Ack { duplicated: true }));
    // At thread exit the slot may be gone already; the answer is then simply not kept.
    let _ = LAST_ACK_DUPLICATE.try_with(|d| d.set(duplicate));
    outcome.map(drop)
}

/// Whether the last blocking acked operation (`wps_join_group`, `wps_leave_group`,
/// `wps_send_to_group`, `wps_send_event` without `WPS_SEND_FIRE_AND_FORGET`) that this thread
/// made returned `WPS_OK` because the service answered `Duplicate`: the ack id had already
/// succeeded, so the operation took effect once, earlier (typically a retry with an id whose
/// first answer was lost). False after any other outcome, and before the first such call.
/// Async operations report the same in `wps_event.is_duplicate`.
///
/// Thread-safety: per thread; only those four blocking calls change it.
/// Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_last_ack_duplicate() -> bool {
    ffi_fn!("wps_last_ack_duplicate", {
        LAST_ACK_DUPLICATE.try_with(Cell::get).unwrap_or(false)
    })
}

/// Which ack id an operation uses: 0 allocates a fresh one; an id above `WPS_MAX_ACK_ID` that
/// this client did not allocate is refused before anything is queued.
pub(super) fn resolve_ack_id(e: &ClientEntry, ack_id: u64) -> Result<u64, Failure> {
    e.client
        .ack_id_for((ack_id != 0).then_some(ack_id))
        .map_err(Failure::from)
}

/// How an operation gets room in the offline queue: blocking calls wait for room (up to the
/// ack timeout); async calls take it now or fail with `WPS_ERR_QUEUE_FULL` (no completion
/// follows then).
pub(super) fn room_for(
    e: &ClientEntry,
    asynchronous: bool,
    bytes: usize,
    ack_id: u64,
) -> Result<Room, Failure> {
    if !asynchronous {
        return Ok(Room::Wait);
    }
    e.client
        .reserve_offline(bytes)
        .map(Room::Held)
        .map_err(|err| Failure::from(err.with_ack_id(ack_id)))
}

/// A validated payload.
///
/// # Safety
/// `data` is NULL (with len 0) or has `len` readable bytes for the duration of the call.
pub(crate) unsafe fn payload(
    e: &ClientEntry,
    data: *const u8,
    len: usize,
    data_type: u32,
) -> Result<Payload, Failure> {
    let Some(dt) = data_type_from(data_type) else {
        return Err(Failure::new(
            WPS_ERR_INVALID_ARG,
            format!("unknown data type {data_type}"),
        ));
    };
    if len > e.max_message_size {
        return Err(Failure::new(
            WPS_ERR_PAYLOAD_TOO_LARGE,
            format!(
                "payload of {len} bytes exceeds the maximum message size of {} bytes",
                e.max_message_size
            ),
        ));
    }
    // SAFETY: per this function's contract.
    let bytes = unsafe { bytes_arg(data, len, "data") }?;
    if matches!(dt, DataType::Text | DataType::Json) {
        if let Err(err) = std::str::from_utf8(bytes) {
            return Err(Failure::new(
                WPS_ERR_INVALID_UTF8,
                format!(
                    "text/json data is not valid UTF-8 (at byte {})",
                    err.valid_up_to()
                ),
            ));
        }
    }
    Ok(Payload {
        data_type: dt,
        data: bytes.to_vec(),
    })
}

fn send_options(flags: u32, ack_id: u64, allow_no_echo: bool) -> Result<SendOptions, Failure> {
    if flags & !ALL_SEND_FLAGS != 0 {
        return Err(Failure::new(
            WPS_ERR_INVALID_ARG,
            format!("unknown send flags 0x{flags:x}"),
        ));
    }
    if !allow_no_echo && flags & WPS_SEND_NO_ECHO != 0 {
        return Err(Failure::new(
            WPS_ERR_INVALID_ARG,
            "WPS_SEND_NO_ECHO applies to wps_send_to_group only",
        ));
    }
    let fire_and_forget = flags & WPS_SEND_FIRE_AND_FORGET != 0;
    if fire_and_forget && ack_id != 0 {
        return Err(Failure::new(
            WPS_ERR_INVALID_ARG,
            "a fire-and-forget send has no ack id; pass 0",
        ));
    }
    Ok(SendOptions {
        ack_id: None,
        no_echo: flags & WPS_SEND_NO_ECHO != 0,
        fire_and_forget,
    })
}

/// An accepted operation: the group its completion names (when one is owed), its ack id and
/// the future that performs it.
type Accepted<F> = (Option<String>, u64, F);

#[derive(Clone, Copy)]
enum GroupOp {
    Join,
    Leave,
}

impl GroupOp {
    fn op(self) -> u32 {
        match self {
            GroupOp::Join => WPS_OP_JOIN_GROUP,
            GroupOp::Leave => WPS_OP_LEAVE_GROUP,
        }
    }

    fn what(self) -> &'static str {
        match self {
            GroupOp::Join => "join group",
            GroupOp::Leave => "leave group",
        }
    }
}

/// Validates a group operation and returns its future; writes `*out_ack_id` once accepted.
/// For an `_async` call (`asynchronous`) the group is kept for the completion and room in the
/// offline queue is taken now.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
unsafe fn group_op(
    e: &ClientEntry,
    kind: GroupOp,
    group: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
    asynchronous: bool,
) -> Result<
    Accepted<impl std::future::Future<Output = Result<Completed, Failure>> + Send + 'static>,
    Failure,
> {
    // SAFETY: per this function's contract.
    let group = unsafe { str_arg(group, "group") }?.to_owned();
    let id = resolve_ack_id(e, ack_id)?;
    // An async operation takes its room in the offline queue now, or fails at once.
    let room = room_for(e, asynchronous, group.len(), id)?;
    // SAFETY: per this function's contract.
    unsafe { write_opt(out_ack_id, id) };
    let client = e.client.clone();
    let kept = asynchronous.then(|| group.clone());
    let fut = async move {
        acked(match kind {
            GroupOp::Join => client.join_group_with(&group, Some(id), room).await,
            GroupOp::Leave => client.leave_group_with(&group, Some(id), room).await,
        })
    };
    Ok((kept, id, fut))
}

/// A blocking group operation.
///
/// # Safety
/// As for `group_op`.
unsafe fn group_blocking(
    c: *mut wps_client,
    kind: GroupOp,
    group: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ClientEntry::with(c, |e| {
        // SAFETY: forwarded under the caller's contract.
        let (_, _, fut) = unsafe { group_op(e, kind, group, ack_id, out_ack_id, false) }?;
        record_duplicate(e.wait(kind.what(), None, fut))
    })
}

/// Joins `group` and blocks until the service acks (retrying with the same ack id per the
/// message retry policy). `ack_id` 0 allocates a new id; non-zero retries an id returned
/// earlier (the service deduplicates it: a `Duplicate` ack is success).
///
/// Ownership: `group` (NUL-terminated UTF-8) is copied. `*out_ack_id` (may be NULL) receives the
/// ack id whenever the request was accepted, also when the call then fails, so it can be retried.
/// Thread-safety: any thread. Callback context: may be called from any callback (it delays this
/// client's next events until it returns).
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_UTF8`, `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_FORKED`,
/// `WPS_ERR_NOT_CONNECTED`, `WPS_ERR_TIMEOUT`, `WPS_ERR_CONNECTION`, `WPS_ERR_ACK_*` (service
/// error name in `wps_last_error_name()`), `WPS_ERR_CANCELLED` (stopped or freed meanwhile),
/// `WPS_ERR_INVALID_STATE` (called on one of the library's runtime threads, i.e. from the log
/// callback, where waiting would stall the engine; nothing is sent).
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_join_group(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_join_group", {
        // SAFETY: forwarded under this function's contract.
        unsafe { group_blocking(c, GroupOp::Join, group, ack_id, out_ack_id) }
    })
}

/// Leaves `group`; blocking, with the same conventions as `wps_join_group`.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_leave_group(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_leave_group", {
        // SAFETY: forwarded under this function's contract.
        unsafe { group_blocking(c, GroupOp::Leave, group, ack_id, out_ack_id) }
    })
}

/// # Safety
/// As for `wps_join_group`.
unsafe fn group_op_async(
    c: *mut wps_client,
    kind: GroupOp,
    group: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ClientEntry::with(c, |e| {
        // SAFETY: forwarded under the caller's contract.
        let (group, id, fut) = unsafe { group_op(e, kind, group, ack_id, out_ack_id, true) }?;
        let done = Completion::new(kind.op(), kind.what(), group, id, on_complete, op_context);
        e.spawn_op(done, fut)
    })
}

/// Joins `group` without blocking. When it returns `WPS_OK`, exactly one `WPS_EVENT_ACK` event
/// (`op == WPS_OP_JOIN_GROUP`, with `ack_id`, `result`, `error_name`, `is_duplicate`, `group`,
/// `op_context`) follows: to `on_complete(op_context, ev)` if `on_complete` is not NULL, else to
/// the callback registered for `WPS_EVENT_ACK`. It runs in the client's ordered event stream
/// (poll mode: inside `wps_client_dispatch`); stop and free complete it with `WPS_ERR_CANCELLED`.
/// When it returns an error, no completion follows.
///
/// Ownership: `group` is copied; `op_context` is passed back verbatim.
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: argument and handle errors as `wps_join_group`.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_join_group_async(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_join_group_async", {
        // SAFETY: forwarded under this function's contract.
        unsafe {
            group_op_async(
                c,
                GroupOp::Join,
                group,
                ack_id,
                on_complete,
                op_context,
                out_ack_id,
            )
        }
    })
}

/// Leaves `group` without blocking; completion as for `wps_join_group_async`
/// (`op == WPS_OP_LEAVE_GROUP`).
///
/// # Safety
/// `group` is NULL or NUL-terminated; `out_ack_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_leave_group_async(
    c: *mut wps_client,
    group: *const c_char,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    ffi_fn!("wps_leave_group_async", {
        // SAFETY: forwarded under this function's contract.
        unsafe {
            group_op_async(
                c,
                GroupOp::Leave,
                group,
                ack_id,
                on_complete,
                op_context,
                out_ack_id,
            )
        }
    })
}

#[derive(Clone, Copy)]
enum SendOp {
    ToGroup,
    Event,
}

impl SendOp {
    fn op(self) -> u32 {
        match self {
            SendOp::ToGroup => WPS_OP_SEND_TO_GROUP,
            SendOp::Event => WPS_OP_SEND_EVENT,
        }
    }

    fn what(self) -> &'static str {
        match self {
            SendOp::ToGroup => "send to group",
            SendOp::Event => "send event",
        }
    }
}

/// A send's arguments as the C caller passed them.
struct SendArgs {
    name: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    flags: u32,
    ack_id: u64,
    out_ack_id: *mut u64,
}

/// Validates a send and returns its future; writes `*out_ack_id` once accepted. For an
/// `_async` call (`asynchronous`) the group is kept for the completion and room in the offline
/// queue is taken now.
///
/// # Safety
/// `a.name` is NULL or NUL-terminated; `a.data` has `a.len` readable bytes (or is NULL with
/// len 0); `a.out_ack_id` is NULL or writable.
unsafe fn send_op(
    e: &ClientEntry,
    kind: SendOp,
    a: &SendArgs,
    asynchronous: bool,
) -> Result<
    Accepted<impl std::future::Future<Output = Result<Completed, Failure>> + Send + 'static>,
    Failure,
> {
    // SAFETY: per this function's contract.
    let name = unsafe {
        match kind {
            SendOp::ToGroup => str_arg(a.name, "group"),
            SendOp::Event => str_arg(a.name, "event_name"),
        }
    }?
    .to_owned();
    let mut opts = send_options(a.flags, a.ack_id, matches!(kind, SendOp::ToGroup))?;
    // SAFETY: per this function's contract.
    let payload = unsafe { payload(e, a.data, a.len, a.data_type) }?;
    let id = if opts.fire_and_forget {
        0
    } else {
        resolve_ack_id(e, a.ack_id)?
    };
    if id != 0 {
        opts.ack_id = Some(id);
    }
    // An async send (acked or fire-and-forget) takes its room in the offline queue now, or
    // fails at once.
    let room = room_for(e, asynchronous, payload.data.len(), id)?;
    // SAFETY: per this function's contract.
    unsafe { write_opt(a.out_ack_id, id) };
    let client = e.client.clone();
    let kept = (asynchronous && matches!(kind, SendOp::ToGroup)).then(|| name.clone());
    let fut = async move {
        acked(match kind {
            SendOp::ToGroup => client.send_to_group_with(&name, payload, opts, room).await,
            SendOp::Event => client.send_event_with(&name, payload, opts, room).await,
        })
    };
    Ok((kept, id, fut))
}

/// A blocking send.
///
/// # Safety
/// As for `send_op`.
unsafe fn send_blocking(c: *mut wps_client, kind: SendOp, a: SendArgs) -> wps_result {
    ClientEntry::with(c, |e| {
        // SAFETY: forwarded under the caller's contract.
        let (_, _, fut) = unsafe { send_op(e, kind, &a, false) }?;
        record_duplicate(e.wait(kind.what(), None, fut))
    })
}

/// An async send with one completion.
///
/// # Safety
/// As for `send_op`.
unsafe fn send_async(
    c: *mut wps_client,
    kind: SendOp,
    a: SendArgs,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
) -> wps_result {
    ClientEntry::with(c, |e| {
        if a.flags & WPS_SEND_FIRE_AND_FORGET == 0 {
            let done = |group, id| {
                Completion::new(kind.op(), kind.what(), group, id, on_complete, op_context)
            };
            // SAFETY: forwarded under the caller's contract.
            return unsafe { send_acked_async(e, kind, &a, done) };
        }
        // SAFETY: forwarded under the caller's contract.
        let (group, id, fut) = unsafe { send_op(e, kind, &a, true) }?;
        let done = Completion::new(kind.op(), kind.what(), group, id, on_complete, op_context);
        e.spawn_op(done, fut)
    })
}

/// An acked async send: checked and accepted here, completed by the engine where its ack is
/// decoded (no task per operation; see `Client::acked_then`). Nothing can fail once the
/// operation is accepted except through its completion.
///
/// # Safety
/// As for `send_op`.
unsafe fn send_acked_async(
    e: &ClientEntry,
    kind: SendOp,
    a: &SendArgs,
    completion: impl FnOnce(Option<String>, u64) -> Completion,
) -> Result<(), Failure> {
    // SAFETY: per this function's contract.
    let name = unsafe {
        match kind {
            SendOp::ToGroup => str_arg(a.name, "group"),
            SendOp::Event => str_arg(a.name, "event_name"),
        }
    }?;
    let opts = send_options(a.flags, a.ack_id, matches!(kind, SendOp::ToGroup))?;
    // SAFETY: per this function's contract.
    let payload = unsafe { payload(e, a.data, a.len, a.data_type) }?;
    let id = resolve_ack_id(e, a.ack_id)?;
    let group = matches!(kind, SendOp::ToGroup).then_some(name);
    let frame = e
        .client
        .acked_send_frame(group, name, &payload, id, opts.no_echo)
        .map_err(Failure::from)?;
    let Room::Held(slot) = room_for(e, true, payload.data.len(), id)? else {
        unreachable!("async operations take their room at once");
    };
    let guard = e.begin_completion(completion(group.map(str::to_owned), id))?;
    // SAFETY: per this function's contract.
    unsafe { write_opt(a.out_ack_id, id) };
    let done = Box::new(move |r| guard.complete(acked(r)));
    e.client
        .acked_then(id, frame, payload.data.len(), slot, done);
    Ok(())
}

/// Sends `data` (`len` bytes, `data_type` `WPS_DATA_*`) to `group` and blocks until the service
/// acks, or, with `WPS_SEND_FIRE_AND_FORGET`, until the frame is queued for writing. `flags`:
/// `WPS_SEND_NO_ECHO`, `WPS_SEND_FIRE_AND_FORGET` (then `ack_id` must be 0). Text and JSON data
/// must be UTF-8. Ack ids, retries and `*out_ack_id` as for `wps_join_group`.
///
/// Ownership: `group` and `data` are copied. Thread-safety: any thread.
/// Callback context: may be called from any callback, including a group-message callback.
/// Errors: as `wps_join_group`, plus `WPS_ERR_INVALID_ARG` (unknown data type or flags),
/// `WPS_ERR_INVALID_UTF8` (text/json data), `WPS_ERR_PAYLOAD_TOO_LARGE`.
/// NULL: `data` may be NULL when `len` is 0.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `data` has `len` readable bytes; `out_ack_id` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn wps_send_to_group(
    c: *mut wps_client,
    group: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    flags: u32,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    let a = SendArgs {
        name: group,
        data,
        len,
        data_type,
        flags,
        ack_id,
        out_ack_id,
    };
    ffi_fn!("wps_send_to_group", {
        // SAFETY: forwarded under this function's contract.
        unsafe { send_blocking(c, SendOp::ToGroup, a) }
    })
}

/// Sends a custom event `event_name` with `data` to the service's upstream handler and blocks
/// until acked; conventions as `wps_send_to_group` (`WPS_SEND_NO_ECHO` is rejected here).
///
/// # Safety
/// `event_name` is NULL or NUL-terminated; `data` has `len` readable bytes; `out_ack_id` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wps_send_event(
    c: *mut wps_client,
    event_name: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    flags: u32,
    ack_id: u64,
    out_ack_id: *mut u64,
) -> wps_result {
    let a = SendArgs {
        name: event_name,
        data,
        len,
        data_type,
        flags,
        ack_id,
        out_ack_id,
    };
    ffi_fn!("wps_send_event", {
        // SAFETY: forwarded under this function's contract.
        unsafe { send_blocking(c, SendOp::Event, a) }
    })
}

/// `wps_send_to_group` without blocking; completion as for `wps_join_group_async`
/// (`op == WPS_OP_SEND_TO_GROUP`).
///
/// # Safety
/// As for `wps_send_to_group`.
#[no_mangle]
pub unsafe extern "C" fn wps_send_to_group_async(
    c: *mut wps_client,
    group: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    flags: u32,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    let a = SendArgs {
        name: group,
        data,
        len,
        data_type,
        flags,
        ack_id,
        out_ack_id,
    };
    ffi_fn!("wps_send_to_group_async", {
        // SAFETY: forwarded under this function's contract.
        unsafe { send_async(c, SendOp::ToGroup, a, on_complete, op_context) }
    })
}

/// `wps_send_event` without blocking; completion as for `wps_join_group_async`
/// (`op == WPS_OP_SEND_EVENT`).
///
/// # Safety
/// As for `wps_send_event`.
#[no_mangle]
pub unsafe extern "C" fn wps_send_event_async(
    c: *mut wps_client,
    event_name: *const c_char,
    data: *const u8,
    len: usize,
    data_type: u32,
    flags: u32,
    ack_id: u64,
    on_complete: wps_event_fn,
    op_context: *mut c_void,
    out_ack_id: *mut u64,
) -> wps_result {
    let a = SendArgs {
        name: event_name,
        data,
        len,
        data_type,
        flags,
        ack_id,
        out_ack_id,
    };
    ffi_fn!("wps_send_event_async", {
        // SAFETY: forwarded under this function's contract.
        unsafe { send_async(c, SendOp::Event, a, on_complete, op_context) }
    })
}
