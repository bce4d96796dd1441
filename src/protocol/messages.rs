//! Message types of the client protocol, independent of how they are encoded.

use std::fmt;

/// The kind of a message's data, as `dataType` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// UTF-8 text, a JSON string on the wire.
    Text,
    /// A JSON value (not `null`), spliced into the frame as JSON.
    Json,
    /// Raw bytes, base64 on the JSON wire.
    Binary,
    /// A serialized `google.protobuf.Any`, base64 on the JSON wire.
    Protobuf,
}

impl DataType {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::Json => "json",
            DataType::Binary => "binary",
            DataType::Protobuf => "protobuf",
        }
    }

    /// Parses a wire name in any letter case (.NET writes `"Text"`).
    pub fn parse(name: &str) -> Option<DataType> {
        [
            DataType::Text,
            DataType::Json,
            DataType::Binary,
            DataType::Protobuf,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message body: text/json carry the UTF-8 text of the value, binary/protobuf raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// How `data` is to be interpreted.
    pub data_type: DataType,
    /// Text (UTF-8) for text/json, raw bytes for binary/protobuf.
    pub data: Vec<u8>,
}

impl Payload {
    /// A text payload.
    pub fn text(text: impl Into<String>) -> Payload {
        Payload {
            data_type: DataType::Text,
            data: text.into().into_bytes(),
        }
    }

    /// A JSON payload given as JSON text (validated when sent).
    pub fn json(json_text: impl Into<String>) -> Payload {
        Payload {
            data_type: DataType::Json,
            data: json_text.into().into_bytes(),
        }
    }

    /// A binary payload.
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Payload {
        Payload {
            data_type: DataType::Binary,
            data: bytes.into(),
        }
    }

    /// The data as text, if it is valid UTF-8 (always true for received text/json).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

impl Payload {
    /// The text of a text payload, checked to be UTF-8.
    pub fn checked_text(&self) -> Result<&str, super::EncodeError> {
        std::str::from_utf8(&self.data)
            .map_err(|_| super::EncodeError::InvalidPayload("text data is not UTF-8".into()))
    }

    /// The JSON text of a json payload, validated once and trimmed: a single JSON value
    /// other than `null`.
    pub fn checked_json(&self) -> Result<&str, super::EncodeError> {
        use super::EncodeError::InvalidPayload;
        let text = std::str::from_utf8(&self.data)
            .map_err(|_| InvalidPayload("json data is not UTF-8".into()))?;
        let raw: &serde_json::value::RawValue = serde_json::from_str(text)
            .map_err(|e| InvalidPayload(format!("json data is not valid JSON: {e}")))?;
        let value = raw.get();
        if value == "null" {
            return Err(InvalidPayload("json data must not be null".into()));
        }
        Ok(value)
    }
}

/// A message from the client to the service.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// `joinGroup`
    JoinGroup {
        /// Group name.
        group: &'a str,
        /// Ack id; `None` = no ack requested.
        ack_id: Option<u64>,
    },
    /// `leaveGroup`
    LeaveGroup {
        /// Group name.
        group: &'a str,
        /// Ack id; `None` = no ack requested.
        ack_id: Option<u64>,
    },
    /// `sendToGroup`
    SendToGroup {
        /// Group name.
        group: &'a str,
        /// The message.
        payload: &'a Payload,
        /// Ack id; `None` = fire-and-forget.
        ack_id: Option<u64>,
        /// Exclude this connection from delivery.
        no_echo: bool,
    },
    /// `event` (custom upstream event)
    Event {
        /// Event name.
        event: &'a str,
        /// The message.
        payload: &'a Payload,
        /// Ack id; `None` = fire-and-forget.
        ack_id: Option<u64>,
    },
    /// `sequenceAck` (reliable subprotocols): the largest sequence id received.
    SequenceAck {
        /// Cumulative sequence id.
        sequence_id: u64,
    },
    /// `ping`
    Ping,
    /// `invoke` of an upstream event, answered by `invokeResponse`.
    Invoke {
        /// Client-chosen invocation id.
        invocation_id: &'a str,
        /// Upstream event name.
        event: &'a str,
        /// Optional request body.
        payload: Option<&'a Payload>,
    },
    /// `cancelInvocation`
    CancelInvocation {
        /// The invocation to cancel.
        invocation_id: &'a str,
    },
    /// `sendToGroup` with `stream` metadata and no payload: opens a group stream, answered by
    /// `streamAck` with expected id 1 (or `streamClosed`).
    StreamStart {
        /// Target group.
        group: &'a str,
        /// Stream id, unique among the connection's open streams.
        stream_id: &'a str,
        /// Idle timeout asked of the service; `None` = its default (300,000 ms).
        idle_timeout_ms: Option<u32>,
        /// Exclude this connection from delivery.
        no_echo: bool,
    },
    /// `streamData` carrying fragment `sequence_id` (1, 2, ...).
    StreamData {
        /// The stream.
        stream_id: &'a str,
        /// `streamSequenceId`.
        sequence_id: u64,
        /// The fragment.
        payload: &'a Payload,
    },
    /// `streamData` with only `streamId`: resets the stream's idle timer.
    StreamKeepAlive {
        /// The stream.
        stream_id: &'a str,
    },
    /// `streamEnd`, with the application's error when the stream is aborted.
    StreamEnd {
        /// The stream.
        stream_id: &'a str,
        /// `error.message` / `error.userErrorCode` of an aborted stream; `None` = normal end.
        error: Option<StreamUserError<'a>>,
    },
    /// `setGroupState`; `state_json` is a JSON object of strings, `None` clears the state.
    SetGroupState {
        /// The group.
        group: &'a str,
        /// The state, as JSON object text.
        state_json: Option<&'a str>,
        /// Ack id; `None` = no ack requested.
        ack_id: Option<u64>,
    },
    /// `subscribeGroupState`: answered by an ack, then a `groupStateSnapshot`.
    SubscribeGroupState {
        /// The group.
        group: &'a str,
        /// Ack id; `None` = no ack requested.
        ack_id: Option<u64>,
    },
    /// `unsubscribeGroupState`
    UnsubscribeGroupState {
        /// The group.
        group: &'a str,
        /// Ack id; `None` = no ack requested.
        ack_id: Option<u64>,
    },
}

/// The application error a publisher aborts its stream with.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamUserError<'a> {
    /// Human readable detail.
    pub message: Option<&'a str>,
    /// The application's own code.
    pub user_error_code: Option<&'a str>,
}

/// The `stream` object of a group message carrying a stream fragment or terminal frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream.
    pub stream_id: String,
    /// The fragment's id; on the terminal frame, the next id the stream would have had.
    pub stream_sequence_id: u64,
    /// Whether this is the terminal frame.
    pub end_of_stream: bool,
    /// On a terminal frame of a failed stream: why.
    pub error: Option<StreamError>,
}

/// Why a stream ended in error (`UserError`, `IdleTimeout`, `Cancelled`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// Error name.
    pub name: String,
    /// Human readable detail.
    pub message: Option<String>,
    /// The publisher's own code (`UserError` only).
    pub user_error_code: Option<String>,
}

/// The `error` object of a negative `ack` or `invokeResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// Error name such as `Forbidden` or `Duplicate`.
    pub name: String,
    /// Human readable detail.
    pub message: String,
}

/// A message from the service to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downstream {
    /// `ack`
    Ack {
        /// Echo of the request's ack id.
        ack_id: u64,
        /// Whether the operation succeeded.
        success: bool,
        /// Present when `success` is false.
        error: Option<AckError>,
    },
    /// `message` with `from: "group"`.
    GroupMessage {
        /// Group the message was sent to.
        group: String,
        /// User id of the publisher, if any.
        from_user_id: Option<String>,
        /// The message.
        payload: Payload,
        /// Reliable subprotocols only.
        sequence_id: Option<u64>,
        /// Present when the message is a fragment or the terminal frame of a group stream.
        stream: Option<StreamInfo>,
    },
    /// `message` with `from: "server"`.
    ServerMessage {
        /// The message.
        payload: Payload,
        /// Reliable subprotocols only.
        sequence_id: Option<u64>,
    },
    /// `system` / `connected`
    Connected {
        /// The connection id.
        connection_id: String,
        /// The user id, if the connection has one.
        user_id: Option<String>,
        /// Reliable subprotocols only.
        reconnection_token: Option<String>,
    },
    /// `system` / `disconnected`
    Disconnected {
        /// The reason given by the service.
        message: Option<String>,
    },
    /// `pong`
    Pong,
    /// `invokeResponse`
    InvokeResponse {
        /// The invocation this answers.
        invocation_id: String,
        /// Whether the invocation succeeded.
        success: bool,
        /// Response body, if any.
        payload: Option<Payload>,
        /// Present on failure.
        error: Option<AckError>,
    },
    /// `streamAck`: every fragment below `expected_sequence_id` is accepted.
    StreamAck {
        /// The stream.
        stream_id: String,
        /// The next fragment id the service expects.
        expected_sequence_id: u64,
    },
    /// `streamNack`: a fragment was refused; the stream stays open.
    StreamNack {
        /// The stream.
        stream_id: String,
        /// `InvalidSequenceId` or `TransientError`.
        name: String,
        /// Detail, if any.
        message: Option<String>,
        /// The next fragment id the service expects.
        expected_sequence_id: u64,
    },
    /// `streamClosed`: the stream is over (normally, or with `error`).
    StreamClosed {
        /// The stream.
        stream_id: String,
        /// Why it was closed, when not normally.
        error: Option<AckError>,
    },
    /// `groupStateSnapshot` (`snapshot`) or `groupStateUpdate`.
    GroupState {
        /// The group.
        group: String,
        /// Whether this is the full state (after a subscribe) rather than a change.
        snapshot: bool,
        /// The items as a JSON array text:
        /// `[{"connectionId","userId"?,"state"?,"updatedAt"}]`.
        items_json: String,
    },
    /// A frame this client does not know (new types, system events, `from` values): ignored.
    Ignored,
}

impl Downstream {
    /// For messages that only an established connection can carry (data, acks, invoke
    /// responses), what they are; `None` for those the service may send before `connected`.
    pub fn needs_connection(&self) -> Option<&'static str> {
        match self {
            Downstream::Ack { .. } => Some("an ack"),
            Downstream::GroupMessage { .. } => Some("a group message"),
            Downstream::ServerMessage { .. } => Some("a server message"),
            Downstream::InvokeResponse { .. } => Some("an invoke response"),
            Downstream::StreamAck { .. }
            | Downstream::StreamNack { .. }
            | Downstream::StreamClosed { .. } => Some("a stream control message"),
            Downstream::GroupState { .. } => Some("a group state message"),
            Downstream::Connected { .. }
            | Downstream::Disconnected { .. }
            | Downstream::Pong
            | Downstream::Ignored => None,
        }
    }
}
