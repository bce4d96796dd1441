//! `wps_event`, the one public struct, and the owned form events are queued in.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use crate::client::Event;
use crate::protocol::{DataType, Payload};

use super::error::{self, to_cstring, wps_result, Failure, WPS_OK};

/// A new connection is established (not fired after a recovery).
pub const WPS_EVENT_CONNECTED: u32 = 1;
/// A connection was lost and not recovered, or the client was stopped.
pub const WPS_EVENT_DISCONNECTED: u32 = 2;
/// The client stopped; the last event of each start, exactly once.
pub const WPS_EVENT_STOPPED: u32 = 3;
/// A message from the server.
pub const WPS_EVENT_SERVER_MESSAGE: u32 = 4;
/// A message sent to a group this client joined.
pub const WPS_EVENT_GROUP_MESSAGE: u32 = 5;
/// Rejoining a group on a new connection failed.
pub const WPS_EVENT_REJOIN_GROUP_FAILED: u32 = 6;
/// Completion of an `_async` operation (exactly one per accepted operation).
pub const WPS_EVENT_ACK: u32 = 7;

/// A reliable connection dropped and recovery starts: once per recovery episode (not per
/// attempt); `connection_id` set. Not raised for `stop`, close 1008, non-reliable protocols, or
/// a connection without reconnection token.
pub const WPS_EVENT_RECOVERING: u32 = 8;
/// Recovery succeeded: the service accepted the session on a new socket (a socket that opens
/// and is then closed with 1008 is a refusal, not a recovery); `connection_id` set. No second
/// `WPS_EVENT_CONNECTED` follows.
pub const WPS_EVENT_RECOVERED: u32 = 9;
/// A reliable session ended without recovery (recovery refused or timed out, close 1008,
/// the service's buffer overflow, a broken session): messages addressed to this client after
/// `sequence_id` (the last one received; 0 when none) and before the next
/// `WPS_EVENT_CONNECTED` may be lost. `connection_id` is the lost connection's id, `message`
/// says why. Raised before the `WPS_EVENT_DISCONNECTED` of that connection.
pub const WPS_EVENT_SESSION_LOST: u32 = 10;

/// One frame of a group stream: `group`, `from_user_id`, `data_type`/`data`/`data_len` (the
/// fragment; may be empty on the terminal frame), `sequence_id` (connection level, reliable
/// protocols), `stream_id`, `stream_sequence_id`, and `end_of_stream` = 1 on the stream's last
/// frame. A failed stream's last frame has `error_name` (the service's `UserError`,
/// `IdleTimeout`, `Cancelled`, ..., or the client's own `SequenceGap`, `Duplicate`,
/// `IdleTimeout`, `SessionLost`, `Stopped`, `TooManyStreams`), `message` and, for
/// `UserError`, `user_error_code`. Frames of one stream arrive in order; none follows the
/// last one.
pub const WPS_EVENT_STREAM: u32 = 11;
/// A group-state snapshot (`is_snapshot` = 1, after a subscribe) or update: `group`, and
/// `data` = the records as a UTF-8 JSON array
/// `[{"connectionId","userId","state","updatedAt"}]` (`data_type` = `WPS_DATA_JSON`; a record
/// without `state` was cleared).
pub const WPS_EVENT_GROUP_STATE: u32 = 12;

/// Highest event type defined by this version.
pub(crate) const MAX_EVENT_TYPE: u32 = WPS_EVENT_GROUP_STATE;

/// UTF-8 text.
pub const WPS_DATA_TEXT: u32 = 1;
/// JSON text (a JSON value, not `null`).
pub const WPS_DATA_JSON: u32 = 2;
/// Raw bytes.
pub const WPS_DATA_BINARY: u32 = 3;
/// A serialized `google.protobuf.Any`.
pub const WPS_DATA_PROTOBUF: u32 = 4;

/// Operation kinds reported in `wps_event.op` of `WPS_EVENT_ACK` events.
pub const WPS_OP_START: u32 = 1;
/// `wps_client_stop_async`.
pub const WPS_OP_STOP: u32 = 2;
/// `wps_join_group_async`.
pub const WPS_OP_JOIN_GROUP: u32 = 3;
/// `wps_leave_group_async`.
pub const WPS_OP_LEAVE_GROUP: u32 = 4;
/// `wps_send_to_group_async`.
pub const WPS_OP_SEND_TO_GROUP: u32 = 5;
/// `wps_send_event_async`.
pub const WPS_OP_SEND_EVENT: u32 = 6;
/// `wps_invoke_event_async`.
pub const WPS_OP_INVOKE_EVENT: u32 = 7;
/// `wps_set_group_state_async`.
pub const WPS_OP_SET_GROUP_STATE: u32 = 8;
/// `wps_subscribe_group_state_async`.
pub const WPS_OP_SUBSCRIBE_GROUP_STATE: u32 = 9;
/// `wps_unsubscribe_group_state_async`.
pub const WPS_OP_UNSUBSCRIBE_GROUP_STATE: u32 = 10;

/// An event delivered to a callback.
///
/// Ownership: owned by the library. Lifetime: the struct and everything it points to are valid
/// only until the callback returns; copy what you keep. Layout: `struct_size` is first and new
/// fields are only ever appended; check `struct_size` before reading a field added after the
/// version you compiled against. Strings are NUL-terminated UTF-8 or NULL when not applicable.
#[repr(C)]
pub struct wps_event {
    /// `sizeof(wps_event)` of the library that built the event.
    pub struct_size: u32,
    /// One of `WPS_EVENT_*`; ignore values you do not know.
    pub r#type: u32,
    /// CONNECTED, DISCONNECTED (when it had connected), RECOVERING, RECOVERED, SESSION_LOST;
    /// NULL otherwise.
    pub connection_id: *const c_char,
    /// CONNECTED; NULL when the connection has no user.
    pub user_id: *const c_char,
    /// GROUP_MESSAGE, REJOIN_GROUP_FAILED, and ACK of group operations.
    pub group: *const c_char,
    /// GROUP_MESSAGE; NULL when the publisher had no user id.
    pub from_user_id: *const c_char,
    /// `WPS_DATA_*` for messages (and for invoke responses); 0 otherwise.
    pub data_type: u32,
    /// Message payload: raw bytes for binary/protobuf, UTF-8 for text/json. A NUL byte follows
    /// the payload (not counted in `data_len`). NULL when the event has no payload.
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub data_len: usize,
    /// Sequence id on reliable protocols; 0 when absent. SESSION_LOST: the last sequence id
    /// received on the lost session.
    pub sequence_id: u64,
    /// DISCONNECTED and SESSION_LOST reason, or the error text of a failure; NULL otherwise.
    pub message: *const c_char,
    /// The service's error name (e.g. "Forbidden") where one exists; NULL otherwise.
    pub error_name: *const c_char,
    /// ACK: the operation's ack id (0 for fire-and-forget, start, stop, invoke).
    pub ack_id: u64,
    /// ACK: the `op_context` given to the `_async` call.
    pub op_context: *mut c_void,
    /// ACK, REJOIN_GROUP_FAILED: `WPS_OK` or the `WPS_ERR_*` code of the failure.
    pub result: wps_result,
    /// ACK: which operation completed (`WPS_OP_*`); 0 otherwise.
    pub op: u32,
    /// ACK: 1 when the service reported `Duplicate` (the operation took effect earlier), else 0.
    pub is_duplicate: u32,
    /// STREAM: the stream id; NULL otherwise.
    pub stream_id: *const c_char,
    /// STREAM: the fragment's id in the stream (1, 2, ...); on the last frame, the id after
    /// the last fragment.
    pub stream_sequence_id: u64,
    /// STREAM: 1 on the stream's last frame, else 0.
    pub end_of_stream: u32,
    /// STREAM: the publisher's own error code on a `UserError` last frame; NULL otherwise.
    pub user_error_code: *const c_char,
    /// GROUP_STATE: 1 for a snapshot, 0 for an update.
    pub is_snapshot: u32,
}

/// The engine's data type as a `WPS_DATA_*` value.
pub(crate) fn data_type_code(t: DataType) -> u32 {
    match t {
        DataType::Text => WPS_DATA_TEXT,
        DataType::Json => WPS_DATA_JSON,
        DataType::Binary => WPS_DATA_BINARY,
        DataType::Protobuf => WPS_DATA_PROTOBUF,
    }
}

/// A `WPS_DATA_*` value as the engine's data type; `None` for unknown values.
pub(crate) fn data_type_from(code: u32) -> Option<DataType> {
    match code {
        WPS_DATA_TEXT => Some(DataType::Text),
        WPS_DATA_JSON => Some(DataType::Json),
        WPS_DATA_BINARY => Some(DataType::Binary),
        WPS_DATA_PROTOBUF => Some(DataType::Protobuf),
        _ => None,
    }
}

/// An event with owned storage, queued until it is delivered.
///
/// Every event is moved several times on its way to a callback (into the queue, out of it,
/// into the view), so the fields of the events that come in bulk (messages and completions)
/// are kept inline and the rest out of line in [`Rare`].
#[derive(Default)]
pub(crate) struct OwnedEvent {
    pub kind: u32,
    pub data_type: u32,
    pub result: wps_result,
    pub op: u32,
    pub sequence_id: u64,
    pub ack_id: u64,
    pub op_context: usize,
    /// Payload followed by one NUL byte; `None` when the event has no payload.
    pub data: Option<Vec<u8>>,
    pub group: Option<CString>,
    pub from_user_id: Option<CString>,
    pub is_duplicate: bool,
    pub is_snapshot: bool,
    pub rare: Option<Box<Rare>>,
}

/// The fields of connection, failure and stream events.
#[derive(Default)]
pub(crate) struct Rare {
    pub connection_id: Option<CString>,
    pub user_id: Option<CString>,
    pub message: Option<CString>,
    pub error_name: Option<CString>,
    pub stream_id: Option<CString>,
    pub stream_sequence_id: u64,
    pub end_of_stream: bool,
    pub user_error_code: Option<CString>,
}

/// `Some(Box)` of the given rare fields.
fn rare(fields: Rare) -> Option<Box<Rare>> {
    Some(Box::new(fields))
}

/// `s` NUL-terminated in its own allocation (grown by the terminator, not copied); an interior
/// NUL becomes U+FFFD, as in [`to_cstring`].
fn into_c(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| to_cstring(&String::from_utf8_lossy(&e.into_vec())))
}

fn c_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |c| c.as_ptr())
}

fn payload_bytes(p: Payload) -> Vec<u8> {
    let mut data = p.data;
    data.push(0);
    data
}

impl OwnedEvent {
    /// The owned form of an engine event.
    pub fn from_engine(event: Event) -> OwnedEvent {
        match event {
            Event::Connected {
                connection_id,
                user_id,
            } => OwnedEvent {
                kind: WPS_EVENT_CONNECTED,
                rare: rare(Rare {
                    connection_id: Some(into_c(connection_id)),
                    user_id: user_id.map(into_c),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Event::Disconnected {
                connection_id,
                message,
            } => OwnedEvent {
                kind: WPS_EVENT_DISCONNECTED,
                rare: rare(Rare {
                    connection_id: connection_id.map(into_c),
                    message: message.map(into_c),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Event::Stopped { reason } => OwnedEvent {
                kind: WPS_EVENT_STOPPED,
                rare: rare(Rare {
                    message: reason.map(into_c),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Event::ServerMessage {
                message,
                sequence_id,
            } => OwnedEvent {
                kind: WPS_EVENT_SERVER_MESSAGE,
                data_type: data_type_code(message.data_type),
                data: Some(payload_bytes(message)),
                sequence_id: sequence_id.unwrap_or(0),
                ..Default::default()
            },
            Event::GroupMessage {
                group,
                from_user_id,
                message,
                sequence_id,
            } => OwnedEvent {
                kind: WPS_EVENT_GROUP_MESSAGE,
                group: Some(into_c(group)),
                from_user_id: from_user_id.map(into_c),
                data_type: data_type_code(message.data_type),
                data: Some(payload_bytes(message)),
                sequence_id: sequence_id.unwrap_or(0),
                ..Default::default()
            },
            Event::RejoinGroupFailed { group, error } => {
                let failure = Failure::from(&error);
                OwnedEvent {
                    kind: WPS_EVENT_REJOIN_GROUP_FAILED,
                    group: Some(into_c(group)),
                    result: failure.code,
                    ack_id: error.ack_id().unwrap_or(0),
                    rare: rare(Rare {
                        message: Some(into_c(failure.message)),
                        error_name: failure.error_name.map(into_c),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }
            Event::Recovering { connection_id } => OwnedEvent {
                kind: WPS_EVENT_RECOVERING,
                rare: rare(Rare {
                    connection_id: Some(into_c(connection_id)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Event::Recovered { connection_id } => OwnedEvent {
                kind: WPS_EVENT_RECOVERED,
                rare: rare(Rare {
                    connection_id: Some(into_c(connection_id)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Event::SessionLost {
                connection_id,
                last_sequence_id,
                reason,
            } => OwnedEvent {
                kind: WPS_EVENT_SESSION_LOST,
                sequence_id: last_sequence_id,
                rare: rare(Rare {
                    connection_id: Some(into_c(connection_id)),
                    message: Some(into_c(reason)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Event::StreamFrame {
                group,
                from_user_id,
                message,
                sequence_id,
                stream_id,
                stream_sequence_id,
                end_of_stream,
                error,
            } => {
                let (error_name, text, code) = match error {
                    Some(e) => (Some(e.name), e.message, e.user_error_code),
                    None => (None, None, None),
                };
                OwnedEvent {
                    kind: WPS_EVENT_STREAM,
                    group: Some(into_c(group)),
                    from_user_id: from_user_id.map(into_c),
                    data_type: data_type_code(message.data_type),
                    data: Some(payload_bytes(message)),
                    sequence_id: sequence_id.unwrap_or(0),
                    rare: rare(Rare {
                        stream_id: Some(into_c(stream_id)),
                        stream_sequence_id,
                        end_of_stream,
                        error_name: error_name.map(into_c),
                        message: text.map(into_c),
                        user_error_code: code.map(into_c),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }
            Event::GroupState {
                group,
                snapshot,
                items_json,
            } => OwnedEvent {
                kind: WPS_EVENT_GROUP_STATE,
                group: Some(into_c(group)),
                data_type: WPS_DATA_JSON,
                data: Some(payload_bytes(Payload::json(items_json))),
                is_snapshot: snapshot,
                ..Default::default()
            },
        }
    }

    /// The completion of an `_async` operation.
    pub fn completion(
        op: u32,
        group: Option<&str>,
        ack_id: u64,
        op_context: usize,
        outcome: Result<Completed, Failure>,
    ) -> OwnedEvent {
        let mut ev = OwnedEvent {
            kind: WPS_EVENT_ACK,
            group: group.map(to_cstring),
            ack_id,
            op_context,
            op,
            result: WPS_OK,
            ..Default::default()
        };
        match outcome {
            Ok(Completed::Ack { duplicated }) => ev.is_duplicate = duplicated,
            Ok(Completed::Unit) => {}
            Ok(Completed::Payload(p)) => {
                ev.data_type = data_type_code(p.data_type);
                ev.data = Some(payload_bytes(p));
            }
            Err(f) => {
                ev.result = f.code;
                ev.rare = rare(Rare {
                    message: Some(into_c(f.message)),
                    error_name: f.error_name.map(into_c),
                    ..Default::default()
                });
            }
        }
        ev
    }

    /// The C view of this event; valid while `self` is alive and unmoved.
    pub fn as_ffi(&self) -> wps_event {
        let (data, data_len) = match &self.data {
            Some(d) => (d.as_ptr(), d.len() - 1),
            None => (ptr::null(), 0),
        };
        let none = Rare::default();
        let rare = self.rare.as_deref().unwrap_or(&none);
        wps_event {
            struct_size: std::mem::size_of::<wps_event>() as u32,
            r#type: self.kind,
            connection_id: c_ptr(&rare.connection_id),
            user_id: c_ptr(&rare.user_id),
            group: c_ptr(&self.group),
            from_user_id: c_ptr(&self.from_user_id),
            data_type: self.data_type,
            data,
            data_len,
            sequence_id: self.sequence_id,
            message: c_ptr(&rare.message),
            error_name: c_ptr(&rare.error_name),
            ack_id: self.ack_id,
            op_context: self.op_context as *mut c_void,
            result: self.result,
            op: self.op,
            is_duplicate: u32::from(self.is_duplicate),
            stream_id: c_ptr(&rare.stream_id),
            stream_sequence_id: rare.stream_sequence_id,
            end_of_stream: u32::from(rare.end_of_stream),
            user_error_code: c_ptr(&rare.user_error_code),
            is_snapshot: u32::from(self.is_snapshot),
        }
    }
}

/// What a successful `_async` operation produced.
pub(crate) enum Completed {
    /// Start or stop finished.
    Unit,
    /// An acked (or fire-and-forget) operation finished.
    Ack { duplicated: bool },
    /// An invoke returned a response.
    Payload(Payload),
}

/// The completion of a cancelled operation (stop, free, or the runtime going away).
pub(crate) fn cancelled(what: &str) -> Failure {
    Failure::new(
        error::WPS_ERR_CANCELLED,
        format!("{what} cancelled: the client was stopped or freed"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn group_message_view_points_at_owned_data() {
        let ev = OwnedEvent::from_engine(Event::GroupMessage {
            group: "g1".into(),
            from_user_id: None,
            message: Payload {
                data_type: DataType::Binary,
                data: vec![0, 1, 2],
            },
            sequence_id: Some(9),
        });
        let view = ev.as_ffi();
        assert_eq!(view.r#type, WPS_EVENT_GROUP_MESSAGE);
        assert_eq!(view.data_len, 3);
        assert_eq!(view.data_type, WPS_DATA_BINARY);
        assert_eq!(view.sequence_id, 9);
        assert!(view.from_user_id.is_null());
        // SAFETY: the view points into `ev`, which is alive.
        assert_eq!(
            unsafe { CStr::from_ptr(view.group) }.to_str().unwrap(),
            "g1"
        );
        // SAFETY: data_len + 1 bytes are allocated (payload plus NUL).
        assert_eq!(unsafe { *view.data.add(3) }, 0);
        assert_eq!(view.struct_size as usize, std::mem::size_of::<wps_event>());
    }

    #[test]
    fn failed_completion_carries_code_and_service_name() {
        let f = Failure {
            code: error::WPS_ERR_ACK_FORBIDDEN,
            message: "no".into(),
            error_name: Some("Forbidden".into()),
        };
        let ev = OwnedEvent::completion(WPS_OP_JOIN_GROUP, Some("g"), 5, 42, Err(f));
        let view = ev.as_ffi();
        assert_eq!(view.result, error::WPS_ERR_ACK_FORBIDDEN);
        assert_eq!(view.ack_id, 5);
        assert_eq!(view.op_context as usize, 42);
        // SAFETY: the view points into `ev`, which is alive.
        assert_eq!(
            unsafe { CStr::from_ptr(view.error_name) }.to_str().unwrap(),
            "Forbidden"
        );
    }

    #[test]
    fn bulk_events_stay_small_and_rare_fields_reach_the_view() {
        // Messages and completions are moved several times each; a field added inline grows
        // every one of them.
        assert!(std::mem::size_of::<OwnedEvent>() <= 112);
        let ev = OwnedEvent::from_engine(Event::StreamFrame {
            group: "g".into(),
            from_user_id: Some("u".into()),
            message: Payload::text(""),
            sequence_id: None,
            stream_id: "s\0x".into(),
            stream_sequence_id: 4,
            end_of_stream: true,
            error: Some(crate::protocol::StreamError {
                name: "UserError".into(),
                message: Some("cut".into()),
                user_error_code: Some("APP".into()),
            }),
        });
        let view = ev.as_ffi();
        // SAFETY: the view points into `ev`, which is alive.
        let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
        assert_eq!(
            text(view.stream_id),
            "s\u{FFFD}x",
            "an interior NUL is replaced"
        );
        assert_eq!(view.stream_sequence_id, 4);
        assert_eq!(view.end_of_stream, 1);
        assert_eq!(text(view.error_name), "UserError");
        assert_eq!(text(view.message), "cut");
        assert_eq!(text(view.user_error_code), "APP");
        assert_eq!(text(view.from_user_id), "u");
        assert!(view.connection_id.is_null() && view.user_id.is_null());
    }
}
