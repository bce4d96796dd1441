//! `json.webpubsub.azure.v1` and `json.reliable.webpubsub.azure.v1`: the same JSON messages;
//! the reliable one adds sequence ids and recovery.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::messages::{
    AckError, DataType, Downstream, Payload, Request, StreamError, StreamInfo, StreamUserError,
};
use super::{base64, Codec, DecodeError, EncodeError, Frame, FrameRef};

/// The JSON subprotocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonCodec {
    reliable: bool,
}

/// `json.webpubsub.azure.v1`
pub const JSON_SUBPROTOCOL: &str = "json.webpubsub.azure.v1";
/// `json.reliable.webpubsub.azure.v1`
pub const JSON_RELIABLE_SUBPROTOCOL: &str = "json.reliable.webpubsub.azure.v1";

impl JsonCodec {
    /// `json.reliable.webpubsub.azure.v1` when `reliable`, else `json.webpubsub.azure.v1`.
    pub fn new(reliable: bool) -> JsonCodec {
        JsonCodec { reliable }
    }
}

impl Codec for JsonCodec {
    fn subprotocol(&self) -> &'static str {
        if self.reliable {
            JSON_RELIABLE_SUBPROTOCOL
        } else {
            JSON_SUBPROTOCOL
        }
    }

    fn is_reliable(&self) -> bool {
        self.reliable
    }

    fn encode(&self, request: &Request<'_>) -> Result<Frame, EncodeError> {
        encode(request).map(Frame::Text)
    }

    fn decode(&self, frame: FrameRef<'_>) -> Result<Downstream, DecodeError> {
        // JSON may also arrive in binary frames (UTF-8).
        let text = match frame {
            FrameRef::Text(t) => t,
            FrameRef::Binary(b) => std::str::from_utf8(b)
                .map_err(|_| DecodeError("binary frame is not UTF-8 JSON".into()))?,
        };
        decode(text)
    }
}

/// Builds the frame text directly: strings escaped once, JSON spliced raw, bytes base64 once.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn new(ty: &str, capacity: usize) -> Writer {
        let mut buf = Vec::with_capacity(capacity + 64);
        buf.extend_from_slice(b"{\"type\":\"");
        buf.extend_from_slice(ty.as_bytes());
        buf.push(b'"');
        Writer { buf }
    }

    /// A nested object; its first member is written with [`Writer::first_string`].
    fn object(capacity: usize) -> Writer {
        let mut buf = Vec::with_capacity(capacity + 32);
        buf.push(b'{');
        Writer { buf }
    }

    fn first_string(&mut self, key: &str, value: &str) {
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
        escape_into(value, &mut self.buf);
    }

    fn key(&mut self, key: &str) {
        self.buf.extend_from_slice(b",\"");
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        escape_into(value, &mut self.buf);
    }

    fn number(&mut self, key: &str, value: u64) {
        self.key(key);
        let mut tmp = [0u8; 20];
        self.buf.extend_from_slice(format_u64(value, &mut tmp));
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.key(key);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn payload(&mut self, payload: &Payload) -> Result<(), EncodeError> {
        self.string("dataType", payload.data_type.as_str());
        self.key("data");
        match payload.data_type {
            DataType::Text => escape_into(payload.checked_text()?, &mut self.buf),
            DataType::Json => self
                .buf
                .extend_from_slice(payload.checked_json()?.as_bytes()),
            DataType::Binary | DataType::Protobuf => {
                self.buf.push(b'"');
                base64::encode_into(&payload.data, &mut self.buf);
                self.buf.push(b'"');
            }
        }
        Ok(())
    }

    /// Appends raw JSON text that is already valid (an object built here or checked JSON).
    fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.buf.extend_from_slice(json.as_bytes());
    }

    fn finish(mut self) -> String {
        self.buf.push(b'}');
        // SAFETY: every byte pushed comes from a &str, an escaped &str, validated UTF-8 JSON
        // text, ASCII digits or base64 (ASCII), so the buffer is valid UTF-8.
        unsafe { String::from_utf8_unchecked(self.buf) }
    }
}

fn escape_into(value: &str, out: &mut Vec<u8>) {
    use serde::Serialize;
    // Serialising a &str into a Vec<u8> only fails on I/O errors, which a Vec never has.
    let _ = value.serialize(&mut serde_json::Serializer::new(out));
}

fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Encodes one request as JSON text.
pub fn encode(request: &Request<'_>) -> Result<String, EncodeError> {
    Ok(match *request {
        Request::JoinGroup { group, ack_id } | Request::LeaveGroup { group, ack_id } => {
            let ty = if matches!(request, Request::JoinGroup { .. }) {
                "joinGroup"
            } else {
                "leaveGroup"
            };
            let mut w = Writer::new(ty, group.len());
            w.string("group", group);
            if let Some(id) = ack_id {
                w.number("ackId", id);
            }
            w.finish()
        }
        Request::SendToGroup {
            group,
            payload,
            ack_id,
            no_echo,
        } => {
            let mut w = Writer::new("sendToGroup", group.len() + data_capacity(payload));
            w.string("group", group);
            if let Some(id) = ack_id {
                w.number("ackId", id);
            }
            w.payload(payload)?;
            w.boolean("noEcho", no_echo);
            w.finish()
        }
        Request::Event {
            event,
            payload,
            ack_id,
        } => {
            let mut w = Writer::new("event", event.len() + data_capacity(payload));
            w.string("event", event);
            if let Some(id) = ack_id {
                w.number("ackId", id);
            }
            w.payload(payload)?;
            w.finish()
        }
        Request::SequenceAck { sequence_id } => {
            let mut w = Writer::new("sequenceAck", 0);
            w.number("sequenceId", sequence_id);
            w.finish()
        }
        Request::Ping => Writer::new("ping", 0).finish(),
        Request::Invoke {
            invocation_id,
            event,
            payload,
        } => {
            let cap = payload.map(data_capacity).unwrap_or(0);
            let mut w = Writer::new("invoke", invocation_id.len() + event.len() + cap);
            w.string("invocationId", invocation_id);
            w.string("target", "event");
            w.string("event", event);
            if let Some(p) = payload {
                w.payload(p)?;
            }
            w.finish()
        }
        Request::CancelInvocation { invocation_id } => {
            let mut w = Writer::new("cancelInvocation", invocation_id.len());
            w.string("invocationId", invocation_id);
            w.finish()
        }
        Request::StreamStart {
            group,
            stream_id,
            idle_timeout_ms,
            no_echo,
        } => {
            let mut meta = Writer::object(stream_id.len());
            meta.first_string("streamId", stream_id);
            if let Some(ms) = idle_timeout_ms {
                meta.number("idleTimeoutMs", u64::from(ms));
            }
            let meta = meta.finish();
            let mut w = Writer::new("sendToGroup", group.len() + meta.len());
            w.string("group", group);
            w.boolean("noEcho", no_echo);
            w.raw("stream", &meta);
            w.finish()
        }
        Request::StreamData {
            stream_id,
            sequence_id,
            payload,
        } => {
            let mut w = Writer::new("streamData", stream_id.len() + data_capacity(payload));
            w.string("streamId", stream_id);
            w.number("streamSequenceId", sequence_id);
            w.payload(payload)?;
            w.finish()
        }
        Request::StreamKeepAlive { stream_id } => {
            let mut w = Writer::new("streamData", stream_id.len());
            w.string("streamId", stream_id);
            w.finish()
        }
        Request::StreamEnd { stream_id, error } => {
            let mut w = Writer::new("streamEnd", stream_id.len());
            w.string("streamId", stream_id);
            if let Some(StreamUserError {
                message,
                user_error_code,
            }) = error
            {
                let mut e = Writer::object(16);
                let mut first = true;
                for (key, value) in [("message", message), ("userErrorCode", user_error_code)] {
                    if let Some(v) = value {
                        if first {
                            e.first_string(key, v);
                            first = false;
                        } else {
                            e.string(key, v);
                        }
                    }
                }
                w.raw("error", &e.finish());
            }
            w.finish()
        }
        Request::SetGroupState {
            group,
            state_json,
            ack_id,
        } => {
            let state = state_json.map(checked_state).transpose()?;
            let mut w = Writer::new("setGroupState", group.len() + state.map_or(0, str::len));
            w.string("group", group);
            if let Some(state) = state {
                w.raw("state", state);
            }
            if let Some(id) = ack_id {
                w.number("ackId", id);
            }
            w.finish()
        }
        Request::SubscribeGroupState { group, ack_id }
        | Request::UnsubscribeGroupState { group, ack_id } => {
            let ty = if matches!(request, Request::SubscribeGroupState { .. }) {
                "subscribeGroupState"
            } else {
                "unsubscribeGroupState"
            };
            let mut w = Writer::new(ty, group.len());
            w.string("group", group);
            if let Some(id) = ack_id {
                w.number("ackId", id);
            }
            w.finish()
        }
    })
}

/// A group state must be a JSON object whose values are all strings; its trimmed text.
fn checked_state(json: &str) -> Result<&str, EncodeError> {
    use EncodeError::InvalidPayload;
    let raw: &RawValue = serde_json::from_str(json)
        .map_err(|e| InvalidPayload(format!("group state is not valid JSON: {e}")))?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw.get())
        .map_err(|_| InvalidPayload("group state must be a JSON object".into()))?;
    if !map.values().all(serde_json::Value::is_string) {
        return Err(InvalidPayload(
            "every value of a group state must be a string".into(),
        ));
    }
    Ok(raw.get())
}

fn data_capacity(payload: &Payload) -> usize {
    match payload.data_type {
        DataType::Binary | DataType::Protobuf => payload.data.len().div_ceil(3) * 4 + 2,
        _ => payload.data.len() + payload.data.len() / 8 + 2,
    }
}

/// Every field any downstream message may carry; `null` reads as absent, unknown fields are
/// ignored.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    ack_id: Option<u64>,
    success: Option<bool>,
    error: Option<WireError>,
    #[serde(borrow)]
    from: Option<std::borrow::Cow<'a, str>>,
    group: Option<String>,
    from_user_id: Option<String>,
    #[serde(borrow)]
    data_type: Option<std::borrow::Cow<'a, str>>,
    /// The raw JSON text of `data`.
    #[serde(borrow, default, deserialize_with = "raw_json")]
    data: Option<&'a str>,
    sequence_id: Option<u64>,
    #[serde(borrow)]
    event: Option<std::borrow::Cow<'a, str>>,
    user_id: Option<String>,
    connection_id: Option<String>,
    reconnection_token: Option<String>,
    message: Option<String>,
    invocation_id: Option<String>,
    stream_id: Option<String>,
    expected_sequence_id: Option<u64>,
    name: Option<String>,
    stream: Option<WireStream>,
    /// The raw JSON text of `items` (group state).
    #[serde(borrow, default, deserialize_with = "raw_json")]
    items: Option<&'a str>,
}

/// The `stream` object of a group message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStream {
    /// Kept as a value: the frame is a stream frame only when this is a string...
    stream_id: Option<serde_json::Value>,
    /// ...and this a number.
    stream_sequence_id: Option<serde_json::Value>,
    end_of_stream: Option<bool>,
    error: Option<WireStreamError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStreamError {
    name: Option<String>,
    message: Option<String>,
    user_error_code: Option<String>,
}

impl WireStream {
    fn info(self) -> Option<StreamInfo> {
        let (Some(serde_json::Value::String(stream_id)), Some(seq)) = (
            self.stream_id,
            self.stream_sequence_id
                .as_ref()
                .and_then(serde_json::Value::as_u64),
        ) else {
            return None;
        };
        Some(StreamInfo {
            stream_id,
            stream_sequence_id: seq,
            end_of_stream: self.end_of_stream.unwrap_or(false),
            error: self.error.map(|e| StreamError {
                name: e.name.unwrap_or_else(|| "Unknown".into()),
                message: e.message,
                user_error_code: e.user_error_code,
            }),
        })
    }
}

#[derive(Deserialize)]
struct WireError {
    name: Option<String>,
    message: Option<String>,
}

impl From<WireError> for AckError {
    fn from(e: WireError) -> AckError {
        AckError {
            name: e.name.unwrap_or_else(|| "Unknown".into()),
            message: e.message.unwrap_or_default(),
        }
    }
}

/// A value's raw JSON text (`null` reads as absent).
fn raw_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    Ok(Option::<&'de RawValue>::deserialize(d)?.map(RawValue::get))
}

/// Decodes one downstream JSON message.
pub fn decode(text: &str) -> Result<Downstream, DecodeError> {
    let wire = match scan::scan(text) {
        Some(wire) => wire,
        None => serde_json::from_str::<Wire<'_>>(text)
            .map_err(|e| DecodeError(format!("invalid JSON frame: {e}")))?,
    };
    classify(wire)
}

/// Decodes with serde alone: the reference the one-pass reader must agree with.
#[cfg(any(test, fuzzing))]
pub(crate) fn decode_with_serde(text: &str) -> Result<Downstream, DecodeError> {
    serde_json::from_str::<Wire<'_>>(text)
        .map_err(|e| DecodeError(format!("invalid JSON frame: {e}")))
        .and_then(classify)
}

/// Turns the fields of a downstream message into what it means.
fn classify(wire: Wire<'_>) -> Result<Downstream, DecodeError> {
    let Some(kind) = wire.kind.as_deref() else {
        return Err(DecodeError("message without \"type\"".into()));
    };
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if eq(kind, "ack") {
        let ack_id = wire
            .ack_id
            .ok_or_else(|| DecodeError("ack without ackId".into()))?;
        let success = wire.success.unwrap_or(false);
        return Ok(Downstream::Ack {
            ack_id,
            success,
            error: wire.error.map(AckError::from),
        });
    }
    if eq(kind, "message") {
        let from = wire.from.as_deref().unwrap_or("");
        if eq(from, "group") {
            let group = wire
                .group
                .ok_or_else(|| DecodeError("group message without group".into()))?;
            let stream = wire.stream.and_then(WireStream::info);
            let terminal = stream.as_ref().is_some_and(|s| s.end_of_stream);
            let payload = match (wire.data, terminal) {
                // A terminal stream frame may come without a payload.
                (None, true) => Some(Payload::text("")),
                (None, false) => return Err(DecodeError("message without data".into())),
                (data, _) => decode_payload(wire.data_type.as_deref(), data)?,
            };
            let Some(payload) = payload else {
                return Ok(Downstream::Ignored);
            };
            return Ok(Downstream::GroupMessage {
                group,
                from_user_id: wire.from_user_id,
                payload,
                sequence_id: wire.sequence_id,
                stream,
            });
        }
        if eq(from, "server") {
            if wire.data.is_none() {
                return Err(DecodeError("message without data".into()));
            }
            let Some(payload) = decode_payload(wire.data_type.as_deref(), wire.data)? else {
                return Ok(Downstream::Ignored);
            };
            return Ok(Downstream::ServerMessage {
                payload,
                sequence_id: wire.sequence_id,
            });
        }
        return Ok(Downstream::Ignored);
    }
    if eq(kind, "system") {
        let event = wire.event.as_deref().unwrap_or("");
        if eq(event, "connected") {
            let connection_id = wire
                .connection_id
                .ok_or_else(|| DecodeError("connected without connectionId".into()))?;
            return Ok(Downstream::Connected {
                connection_id,
                user_id: wire.user_id,
                reconnection_token: wire.reconnection_token,
            });
        }
        if eq(event, "disconnected") {
            return Ok(Downstream::Disconnected {
                message: wire.message,
            });
        }
        return Ok(Downstream::Ignored);
    }
    if eq(kind, "pong") {
        return Ok(Downstream::Pong);
    }
    if eq(kind, "invokeResponse") {
        let invocation_id = wire
            .invocation_id
            .ok_or_else(|| DecodeError("invokeResponse without invocationId".into()))?;
        let success = wire
            .success
            .ok_or_else(|| DecodeError("invokeResponse without success".into()))?;
        let payload = decode_payload(wire.data_type.as_deref(), wire.data)?;
        return Ok(Downstream::InvokeResponse {
            invocation_id,
            success,
            payload,
            error: wire.error.map(AckError::from),
        });
    }
    if eq(kind, "streamAck") || eq(kind, "streamNack") {
        let stream_id = wire
            .stream_id
            .ok_or_else(|| DecodeError(format!("{kind} without streamId")))?;
        let expected_sequence_id = wire
            .expected_sequence_id
            .ok_or_else(|| DecodeError(format!("{kind} without expectedSequenceId")))?;
        if eq(kind, "streamAck") {
            return Ok(Downstream::StreamAck {
                stream_id,
                expected_sequence_id,
            });
        }
        return Ok(Downstream::StreamNack {
            stream_id,
            name: wire.name.unwrap_or_else(|| "Unknown".into()),
            message: wire.message,
            expected_sequence_id,
        });
    }
    if eq(kind, "streamClosed") {
        return Ok(Downstream::StreamClosed {
            stream_id: wire
                .stream_id
                .ok_or_else(|| DecodeError("streamClosed without streamId".into()))?,
            error: wire.error.map(AckError::from),
        });
    }
    if eq(kind, "groupStateSnapshot") || eq(kind, "groupStateUpdate") {
        let group = wire
            .group
            .ok_or_else(|| DecodeError(format!("{kind} without group")))?;
        let items = wire.items.unwrap_or("[]");
        if !items.trim_start().starts_with('[') {
            return Err(DecodeError(format!("{kind} items is not an array")));
        }
        return Ok(Downstream::GroupState {
            group,
            snapshot: eq(kind, "groupStateSnapshot"),
            items_json: items.to_string(),
        });
    }
    Ok(Downstream::Ignored)
}

/// A copy of `text` with one byte of spare capacity, so the C surface can append its NUL
/// terminator without reallocating.
fn with_spare_byte(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 1);
    v.extend_from_slice(text.as_bytes());
    v
}

/// The contents of a JSON string token that has no escapes.
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

fn decode_payload(
    data_type: Option<&str>,
    data: Option<&str>,
) -> Result<Option<Payload>, DecodeError> {
    let Some(raw) = data else {
        return Ok(None);
    };
    // An absent dataType means json; an unknown one makes the message ignorable.
    let data_type = match data_type {
        None => DataType::Json,
        Some(name) => match DataType::parse(name) {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    // `raw` is one valid JSON value, so a token between quotes is a single string.
    let data = match data_type {
        DataType::Json => with_spare_byte(raw),
        DataType::Text => match plain_string(raw) {
            Some(text) => with_spare_byte(text),
            None => serde_json::from_str::<String>(raw)
                .map_err(|_| DecodeError("text data is not a JSON string".into()))?
                .into_bytes(),
        },
        DataType::Binary | DataType::Protobuf => {
            let text: std::borrow::Cow<'_, str> = match plain_string(raw) {
                Some(text) => text.into(),
                None => serde_json::from_str(raw)
                    .map_err(|_| DecodeError("binary data is not a JSON string".into()))?,
            };
            base64::decode(&text).map_err(DecodeError)?
        }
    };
    Ok(Some(Payload { data_type, data }))
}

mod scan;

#[cfg(test)]
mod tests;
