//! `json.webpubsub.azure.v1` and `json.reliable.webpubsub.azure.v1`: the same JSON messages;
//! the reliable one adds sequence ids and recovery.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::messages::{AckError, DataType, Downstream, Payload, Request};
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
    })
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
            if wire.data.is_none() {
                return Err(DecodeError("message without data".into()));
            }
            let Some(payload) = decode_payload(wire.data_type.as_deref(), wire.data)? else {
                return Ok(Downstream::Ignored);
            };
            return Ok(Downstream::GroupMessage {
                group,
                from_user_id: wire.from_user_id,
                payload,
                sequence_id: wire.sequence_id,
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
