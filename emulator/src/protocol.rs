//! The JSON subprotocols: parsing of client (upstream) messages and encoding of service
//! (downstream) messages. Optional fields are omitted rather than written as `null`.

use crate::fields::{self, Fields};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// `json.webpubsub.azure.v1`
pub const JSON_V1: &str = "json.webpubsub.azure.v1";
/// `json.reliable.webpubsub.azure.v1`
pub const JSON_RELIABLE_V1: &str = "json.reliable.webpubsub.azure.v1";
/// Largest accepted client message.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A message payload, independent of how it travels.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Text(String),
    /// Text kept as the JSON string literal (quoted, escaped) a JSON client sent, so fan-out to
    /// JSON clients copies it instead of escaping it again.
    JsonText(String),
    /// Serialized JSON text of the value.
    Json(String),
    Binary(Bytes),
    Protobuf(Bytes),
}

impl Payload {
    /// Lowercase `dataType` name.
    pub fn data_type(&self) -> &'static str {
        match self {
            Payload::Text(_) | Payload::JsonText(_) => "text",
            Payload::Json(_) => "json",
            Payload::Binary(_) => "binary",
            Payload::Protobuf(_) => "protobuf",
        }
    }

    /// The JSON fragment written as `data`.
    pub fn data_json(&self) -> Cow<'_, str> {
        match self {
            Payload::Text(s) => Cow::Owned(quote(s)),
            Payload::JsonText(s) | Payload::Json(s) => Cow::Borrowed(s),
            Payload::Binary(b) | Payload::Protobuf(b) => {
                Cow::Owned(format!("\"{}\"", STANDARD.encode(b)))
            }
        }
    }

    /// The text of a text or JSON payload (`None` for binary ones).
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Payload::Text(s) | Payload::Json(s) => Some(Cow::Borrowed(s)),
            Payload::JsonText(lit) => Some(Cow::Owned(
                serde_json::from_str::<String>(lit).unwrap_or_default(),
            )),
            Payload::Binary(_) | Payload::Protobuf(_) => None,
        }
    }

    /// Raw bytes as forwarded to an upstream handler or a simple client.
    pub fn raw_bytes(&self) -> Bytes {
        match self {
            Payload::Binary(b) | Payload::Protobuf(b) => b.clone(),
            _ => Bytes::from(self.text().unwrap_or_default().into_owned()),
        }
    }

    /// HTTP content type for this payload.
    pub fn content_type(&self) -> &'static str {
        match self {
            Payload::Text(_) | Payload::JsonText(_) => "text/plain; charset=utf-8",
            Payload::Json(_) => "application/json; charset=utf-8",
            Payload::Binary(_) => "application/octet-stream",
            Payload::Protobuf(_) => "application/x-protobuf",
        }
    }

    /// Builds a payload from an HTTP body by its media type. `Err` explains a rejected body.
    pub fn from_http(content_type: Option<&str>, body: Bytes) -> Result<Payload, String> {
        let media = content_type
            .unwrap_or("application/octet-stream")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "text/plain" => String::from_utf8(body.to_vec())
                .map(Payload::Text)
                .map_err(|_| "text/plain body is not valid UTF-8".to_string()),
            "application/json" => {
                if fields::nesting_exceeds(&body, fields::MAX_DATA_DEPTH) {
                    return Err(format!(
                        "application/json body is nested deeper than {} levels",
                        fields::MAX_DATA_DEPTH
                    ));
                }
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|e| format!("application/json body is not valid JSON: {e}"))?;
                if v.is_null() {
                    // Client parsers require non-null `data` for json messages.
                    return Err("application/json body must not be null".to_string());
                }
                Ok(Payload::Json(v.to_string()))
            }
            "application/octet-stream" | "" => Ok(Payload::Binary(body)),
            "application/x-protobuf" => Ok(Payload::Protobuf(body)),
            other => Err(format!("unsupported Content-Type '{other}'")),
        }
    }
}

/// A parsed client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream<'a> {
    JoinGroup {
        group: Cow<'a, str>,
        ack_id: Option<u64>,
    },
    LeaveGroup {
        group: Cow<'a, str>,
        ack_id: Option<u64>,
    },
    SendToGroup {
        group: Cow<'a, str>,
        data: Payload,
        no_echo: bool,
        ack_id: Option<u64>,
    },
    Event {
        event: String,
        data: Payload,
        ack_id: Option<u64>,
    },
    SequenceAck {
        sequence_id: u64,
    },
    Ping,
    Invoke {
        invocation_id: String,
        event: String,
        data: Option<Payload>,
    },
    CancelInvocation {
        invocation_id: String,
    },
    /// `sendToGroup` carrying `stream` metadata and no payload: opens a group stream.
    StreamStart {
        group: Cow<'a, str>,
        stream_id: String,
        /// `idleTimeoutMs` as sent (checked by the stream registry, which answers a bad
        /// value with `streamClosed`).
        idle_timeout_ms: Option<Value>,
        no_echo: bool,
    },
    /// `streamData`: a fragment, or a keep-alive when `fragment` is `None`.
    StreamData {
        stream_id: Cow<'a, str>,
        fragment: Option<(u64, Payload)>,
    },
    /// `streamEnd`, with the publisher's error when it aborts the stream.
    StreamEnd {
        stream_id: String,
        error: Option<UserError>,
    },
    /// `setGroupState`; `state` is the JSON object as sent, `None` clears.
    SetGroupState {
        group: Cow<'a, str>,
        state: Option<Value>,
        ack_id: Option<u64>,
    },
    SubscribeGroupState {
        group: Cow<'a, str>,
        ack_id: Option<u64>,
    },
    UnsubscribeGroupState {
        group: Cow<'a, str>,
        ack_id: Option<u64>,
    },
}

/// The application error a publisher ends its stream with (relayed as `UserError`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserError {
    pub message: Option<String>,
    pub user_error_code: Option<String>,
}

/// Why a client message could not be accepted; every variant closes the connection (1007).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("message is not valid JSON: {0}")]
    Json(String),
    #[error("message is not a JSON object")]
    NotObject,
    #[error("unknown message type '{0}'")]
    UnknownType(String),
    #[error("invalid field '{0}'")]
    Field(&'static str),
    #[error("{0} is not available on the protobuf subprotocols: no field numbers are published for it; use a JSON subprotocol")]
    NotOnProtobuf(&'static str),
}

fn required(v: Option<Cow<'_, str>>, name: &'static str) -> Result<String, ProtocolError> {
    v.map(Cow::into_owned).ok_or(ProtocolError::Field(name))
}

fn required_group<'a>(v: Option<Cow<'a, str>>) -> Result<Cow<'a, str>, ProtocolError> {
    v.ok_or(ProtocolError::Field("group"))
}

fn payload(w: &Fields<'_>) -> Result<Payload, ProtocolError> {
    let raw = w.data.ok_or(ProtocolError::Field("data"))?;
    let data_type = w.data_type.as_deref().unwrap_or("json");
    if data_type.eq_ignore_ascii_case("json") {
        Ok(Payload::Json(raw.to_string()))
    } else if data_type.eq_ignore_ascii_case("text") {
        // A raw value starting with a quote is a valid JSON string literal.
        if raw.starts_with('"') {
            Ok(Payload::JsonText(raw.to_string()))
        } else {
            Err(ProtocolError::Field("data"))
        }
    } else if data_type.eq_ignore_ascii_case("binary") || data_type.eq_ignore_ascii_case("protobuf")
    {
        let text: Cow<'_, str> =
            serde_json::from_str(raw).map_err(|_| ProtocolError::Field("data"))?;
        let bytes = Bytes::from(
            STANDARD
                .decode(text.as_bytes())
                .map_err(|_| ProtocolError::Field("data"))?,
        );
        Ok(if data_type.eq_ignore_ascii_case("binary") {
            Payload::Binary(bytes)
        } else {
            Payload::Protobuf(bytes)
        })
    } else {
        Err(ProtocolError::Field("dataType"))
    }
}

/// Parses one client message (text of a text frame, or UTF-8 of a binary frame).
pub fn parse_upstream(text: &str) -> Result<Upstream<'_>, ProtocolError> {
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => ProtocolError::NotObject,
            Err(e) => ProtocolError::Json(e.to_string()),
        });
    }
    let w = fields::parse(text).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let ty = w.ty.as_deref().ok_or(ProtocolError::Field("type"))?;
    let is = |name: &str| ty.eq_ignore_ascii_case(name);
    if is("joinGroup") || is("leaveGroup") {
        let group = required_group(w.group)?;
        return Ok(if is("joinGroup") {
            Upstream::JoinGroup {
                group,
                ack_id: w.ack_id,
            }
        } else {
            Upstream::LeaveGroup {
                group,
                ack_id: w.ack_id,
            }
        });
    }
    if is("sendToGroup") {
        if let Some(stream) = w.stream {
            return stream_start(&w, stream);
        }
        return Ok(Upstream::SendToGroup {
            data: payload(&w)?,
            group: required_group(w.group)?,
            no_echo: w.no_echo.unwrap_or(false),
            ack_id: w.ack_id,
        });
    }
    if is("event") {
        return Ok(Upstream::Event {
            data: payload(&w)?,
            event: required(w.event, "event")?,
            ack_id: w.ack_id,
        });
    }
    if is("sequenceAck") {
        return Ok(Upstream::SequenceAck {
            sequence_id: w.sequence_id.ok_or(ProtocolError::Field("sequenceId"))?,
        });
    }
    if is("ping") {
        return Ok(Upstream::Ping);
    }
    if is("invoke") {
        return Ok(Upstream::Invoke {
            data: if w.data.is_some() {
                Some(payload(&w)?)
            } else {
                None
            },
            invocation_id: required(w.invocation_id, "invocationId")?,
            event: required(w.event, "event")?,
        });
    }
    if is("cancelInvocation") {
        return Ok(Upstream::CancelInvocation {
            invocation_id: required(w.invocation_id, "invocationId")?,
        });
    }
    if is("streamData") {
        let stream_id = w
            .stream_id
            .clone()
            .ok_or(ProtocolError::Field("streamId"))?;
        // The sequence id, dataType and data come together or not at all (a keep-alive).
        let fragment = match (w.stream_sequence_id, &w.data_type, w.data) {
            (None, None, None) => None,
            (Some(seq), Some(_), Some(_)) => Some((seq, payload(&w)?)),
            (None, ..) => return Err(ProtocolError::Field("streamSequenceId")),
            (_, None, _) => return Err(ProtocolError::Field("dataType")),
            (_, _, None) => return Err(ProtocolError::Field("data")),
        };
        return Ok(Upstream::StreamData {
            stream_id,
            fragment,
        });
    }
    if is("streamEnd") {
        return Ok(Upstream::StreamEnd {
            error: w.error.map(user_error).transpose()?,
            stream_id: required(w.stream_id, "streamId")?,
        });
    }
    if is("setGroupState") {
        let state = match w.state {
            None => None,
            Some(raw) => Some(
                serde_json::from_str::<Value>(raw).map_err(|_| ProtocolError::Field("state"))?,
            ),
        };
        return Ok(Upstream::SetGroupState {
            group: required_group(w.group)?,
            state,
            ack_id: w.ack_id,
        });
    }
    if is("subscribeGroupState") || is("unsubscribeGroupState") {
        let (group, ack_id) = (required_group(w.group)?, w.ack_id);
        return Ok(if is("subscribeGroupState") {
            Upstream::SubscribeGroupState { group, ack_id }
        } else {
            Upstream::UnsubscribeGroupState { group, ack_id }
        });
    }
    Err(ProtocolError::UnknownType(ty.to_string()))
}

/// A stream start: `stream` is an object with a string `streamId`, and the frame carries no
/// payload.
fn stream_start<'a>(w: &Fields<'a>, stream: &str) -> Result<Upstream<'a>, ProtocolError> {
    if w.data.is_some() || w.data_type.is_some() {
        return Err(ProtocolError::Field("data"));
    }
    let Ok(Value::Object(mut meta)) = serde_json::from_str::<Value>(stream) else {
        return Err(ProtocolError::Field("stream"));
    };
    let Some(Value::String(stream_id)) = meta.remove("streamId") else {
        return Err(ProtocolError::Field("stream.streamId"));
    };
    Ok(Upstream::StreamStart {
        group: w.group.clone().ok_or(ProtocolError::Field("group"))?,
        stream_id,
        idle_timeout_ms: meta.remove("idleTimeoutMs").filter(|v| !v.is_null()),
        no_echo: w.no_echo.unwrap_or(false),
    })
}

/// `streamEnd.error`: an object of optional strings `message` and `userErrorCode`.
fn user_error(raw: &str) -> Result<UserError, ProtocolError> {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(raw) else {
        return Err(ProtocolError::Field("error"));
    };
    let text = |key: &str| match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ProtocolError::Field("error")),
    };
    Ok(UserError {
        message: text("message")?,
        user_error_code: text("userErrorCode")?,
    })
}

/// Whether a group name is acceptable: 1..=1024 chars, not whitespace only.
pub fn valid_group_name(group: &str) -> bool {
    let n = group.chars().count();
    (1..=1024).contains(&n) && !group.chars().all(char::is_whitespace)
}

/// Whether a user event name is acceptable (`^[a-z][a-z0-9_.-]{0,127}$`, case-insensitive).
pub fn valid_event_name(event: &str) -> bool {
    let mut chars = event.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && event.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Appends `s` as a JSON string literal: copied as is when nothing needs escaping (the same
/// text `quote` produces), escaped by serde otherwise.
fn push_quoted(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&quote(s));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// Appends the decimal digits of `n`.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
}

/// `ack` frame; `error` is `(name, message)`.
pub fn encode_ack(ack_id: u64, error: Option<(&str, &str)>) -> String {
    match error {
        None => {
            let mut s = String::with_capacity(56);
            s.push_str(r#"{"type":"ack","ackId":"#);
            push_u64(&mut s, ack_id);
            s.push_str(r#","success":true}"#);
            s
        }
        Some((name, message)) => format!(
            r#"{{"type":"ack","ackId":{ack_id},"success":false,"error":{{"name":{},"message":{}}}}}"#,
            quote(name),
            quote(message)
        ),
    }
}

/// `system/connected` frame.
pub fn encode_connected(
    connection_id: &str,
    user_id: Option<&str>,
    reconnection_token: Option<&str>,
) -> String {
    let mut s = format!(
        r#"{{"type":"system","event":"connected","connectionId":{}"#,
        quote(connection_id)
    );
    if let Some(u) = user_id {
        s.push_str(&format!(r#","userId":{}"#, quote(u)));
    }
    if let Some(t) = reconnection_token {
        s.push_str(&format!(r#","reconnectionToken":{}"#, quote(t)));
    }
    s.push('}');
    s
}

/// `system/disconnected` frame.
pub fn encode_disconnected(message: &str) -> String {
    format!(
        r#"{{"type":"system","event":"disconnected","message":{}}}"#,
        quote(message)
    )
}

/// `pong` frame.
pub fn encode_pong() -> String {
    r#"{"type":"pong"}"#.to_string()
}

/// Where a data message comes from.
pub enum Origin<'a> {
    Group {
        group: &'a str,
        from_user_id: Option<&'a str>,
    },
    Server,
}

/// `message` frame without `sequenceId` (see [`with_sequence_id`]).
pub fn encode_message(origin: &Origin<'_>, data: &Payload) -> String {
    let mut s = String::with_capacity(96 + data_len_hint(data));
    match origin {
        Origin::Group {
            group,
            from_user_id,
        } => {
            s.push_str(r#"{"type":"message","from":"group","group":"#);
            push_quoted(&mut s, group);
            if let Some(u) = from_user_id {
                s.push_str(r#","fromUserId":"#);
                push_quoted(&mut s, u);
            }
        }
        Origin::Server => s.push_str(r#"{"type":"message","from":"server""#),
    }
    s.push_str(r#","dataType":""#);
    s.push_str(data.data_type());
    s.push_str(r#"","data":"#);
    s.push_str(&data.data_json());
    s.push('}');
    s
}

fn data_len_hint(p: &Payload) -> usize {
    match p {
        Payload::Text(s) | Payload::JsonText(s) | Payload::Json(s) => s.len(),
        Payload::Binary(b) | Payload::Protobuf(b) => b.len() * 4 / 3 + 4,
    }
}

/// Splices `"sequenceId":N` in front of an encoded object without re-serialising it.
pub fn with_sequence_id(body: &str, sequence_id: u64) -> String {
    let mut s = String::with_capacity(body.len() + 24);
    s.push_str("{\"sequenceId\":");
    push_u64(&mut s, sequence_id);
    s.push(',');
    s.push_str(&body[1..]);
    s
}

/// `invokeResponse` frame.
pub fn encode_invoke_response(
    invocation_id: &str,
    result: Result<Option<&Payload>, (&str, &str)>,
) -> String {
    let id = quote(invocation_id);
    match result {
        Ok(None) => format!(r#"{{"type":"invokeResponse","invocationId":{id},"success":true}}"#),
        Ok(Some(p)) => format!(
            r#"{{"type":"invokeResponse","invocationId":{id},"success":true,"dataType":"{}","data":{}}}"#,
            p.data_type(),
            p.data_json()
        ),
        Err((name, message)) => format!(
            r#"{{"type":"invokeResponse","invocationId":{id},"success":false,"error":{{"name":{},"message":{}}}}}"#,
            quote(name),
            quote(message)
        ),
    }
}

/// `streamAck`: every fragment below `expected` is accepted.
pub fn encode_stream_ack(stream_id: &str, expected: u64) -> String {
    let mut s = String::with_capacity(64 + stream_id.len());
    s.push_str(r#"{"type":"streamAck","streamId":"#);
    push_quoted(&mut s, stream_id);
    s.push_str(r#","expectedSequenceId":"#);
    push_u64(&mut s, expected);
    s.push('}');
    s
}

/// `streamNack`: the fragment was not accepted; `expected` is the next id wanted.
pub fn encode_stream_nack(stream_id: &str, name: &str, message: &str, expected: u64) -> String {
    format!(
        r#"{{"type":"streamNack","streamId":{},"name":{},"message":{},"expectedSequenceId":{expected}}}"#,
        quote(stream_id),
        quote(name),
        quote(message)
    )
}

/// `streamClosed`, with `(name, message)` when the stream ended in error.
pub fn encode_stream_closed(stream_id: &str, error: Option<(&str, &str)>) -> String {
    match error {
        None => format!(
            r#"{{"type":"streamClosed","streamId":{}}}"#,
            quote(stream_id)
        ),
        Some((name, message)) => format!(
            r#"{{"type":"streamClosed","streamId":{},"error":{{"name":{},"message":{}}}}}"#,
            quote(stream_id),
            quote(name),
            quote(message)
        ),
    }
}

/// The terminal error of a stream as subscribers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamError {
    pub name: &'static str,
    pub message: Option<String>,
    pub user_error_code: Option<String>,
}

/// The `stream` object of a group message carrying a stream fragment or terminal frame.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMeta<'a> {
    pub stream_id: &'a str,
    pub stream_sequence_id: u64,
    pub end_of_stream: bool,
    pub error: Option<&'a StreamError>,
}

/// A group `message` frame (no `sequenceId`) carrying stream metadata.
pub fn encode_stream_message(origin: &Origin<'_>, data: &Payload, meta: &StreamMeta<'_>) -> String {
    let mut s = encode_message(origin, data);
    s.pop(); // the closing brace
    s.push_str(r#","stream":{"streamId":"#);
    push_quoted(&mut s, meta.stream_id);
    s.push_str(r#","streamSequenceId":"#);
    push_u64(&mut s, meta.stream_sequence_id);
    s.push_str(if meta.end_of_stream {
        r#","endOfStream":true"#
    } else {
        r#","endOfStream":false"#
    });
    if let Some(e) = meta.error {
        s.push_str(r#","error":{"name":"#);
        push_quoted(&mut s, e.name);
        if let Some(m) = &e.message {
            s.push_str(r#","message":"#);
            push_quoted(&mut s, m);
        }
        if let Some(c) = &e.user_error_code {
            s.push_str(r#","userErrorCode":"#);
            push_quoted(&mut s, c);
        }
        s.push('}');
    }
    s.push_str("}}");
    s
}

/// One connection's state in a group, as `groupStateSnapshot` / `groupStateUpdate` list it.
pub struct GroupStateItem<'a> {
    pub connection_id: &'a str,
    pub user_id: Option<&'a str>,
    /// Serialized JSON object; `None` for a cleared state.
    pub state: Option<&'a str>,
    pub updated_at: u64,
}

/// `groupStateSnapshot` (`snapshot`) or `groupStateUpdate`.
pub fn encode_group_state(snapshot: bool, group: &str, items: &[GroupStateItem<'_>]) -> String {
    let mut s = String::from(if snapshot {
        r#"{"type":"groupStateSnapshot","group":"#
    } else {
        r#"{"type":"groupStateUpdate","group":"#
    });
    push_quoted(&mut s, group);
    s.push_str(r#","items":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"connectionId":"#);
        push_quoted(&mut s, item.connection_id);
        if let Some(u) = item.user_id {
            s.push_str(r#","userId":"#);
            push_quoted(&mut s, u);
        }
        if let Some(state) = item.state {
            s.push_str(r#","state":"#);
            s.push_str(state);
        }
        s.push_str(r#","updatedAt":"#);
        push_u64(&mut s, item.updated_at);
        s.push('}');
    }
    s.push_str("]}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_frames() {
        let m = parse_upstream(r#"{"type": "joinGroup", "group": "g1", "ackId": 0}"#).unwrap();
        assert_eq!(
            m,
            Upstream::JoinGroup {
                group: "g1".into(),
                ack_id: Some(0)
            }
        );
        let m = parse_upstream(
            r#"{"type":"sendToGroup","group":"g","ackId":null,"noEcho":true,"dataType":"Text","data":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Upstream::SendToGroup {
                group: "g".into(),
                data: Payload::JsonText(r#""x""#.into()),
                no_echo: true,
                ack_id: None
            }
        );
        let m = parse_upstream(r#"{"type":"event","event":"e","data":{"a":1}}"#).unwrap();
        assert!(matches!(
            m,
            Upstream::Event {
                data: Payload::Json(_),
                ..
            }
        ));
        assert!(matches!(
            parse_upstream(r#"{"type":"nope"}"#),
            Err(ProtocolError::UnknownType(_))
        ));
        assert!(matches!(parse_upstream("{"), Err(ProtocolError::Json(_))));
        assert!(parse_upstream(
            r#"{"type":"sendToGroup","group":"g","dataType":"binary","data":"!!"}"#
        )
        .is_err());
    }

    #[test]
    fn http_bodies_by_media_type() {
        let p = |ct: &str, b: &'static [u8]| Payload::from_http(Some(ct), Bytes::from_static(b));
        assert_eq!(
            p("text/plain; charset=utf-8", b"hi"),
            Ok(Payload::Text("hi".into()))
        );
        assert_eq!(
            p("Application/JSON", br#"{"a": 1}"#),
            Ok(Payload::Json(r#"{"a":1}"#.into()))
        );
        assert!(p("application/json", b"{").is_err());
        assert!(p("application/json", b"null").is_err());
        assert_eq!(
            p("application/octet-stream", b"\x01"),
            Ok(Payload::Binary(Bytes::from_static(b"\x01")))
        );
        assert!(p("image/png", b"x").is_err());
    }

    #[test]
    fn escaped_text_is_kept_and_unescaped_on_demand() {
        let m =
            parse_upstream(r#"{"type":"event","event":"e","dataType":"text","data":"a\"b\u00e9"}"#)
                .unwrap();
        let Upstream::Event { data, .. } = m else {
            panic!()
        };
        assert_eq!(data.data_json(), r#""a\"b\u00e9""#);
        assert_eq!(data.text().unwrap(), "a\"bé");
        assert_eq!(&data.raw_bytes()[..], "a\"bé".as_bytes());
        let body = encode_message(&Origin::Server, &data);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"], "a\"bé");
        assert!(
            parse_upstream(r#"{"type":"event","event":"e","dataType":"text","data":5}"#).is_err()
        );
        assert!(parse_upstream(r#"{"type":"sendToGroup","group":"g","data":null}"#).is_err());
        assert!(matches!(
            parse_upstream("[1]"),
            Err(ProtocolError::NotObject)
        ));
        assert!(matches!(
            parse_upstream(r#"{"type":"PING","group":null}"#),
            Ok(Upstream::Ping)
        ));
    }

    #[test]
    fn fast_encoders_match_serde() {
        for n in [0, 7, 10, 99, 12345, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
            let v: Value = serde_json::from_str(&encode_ack(n, None)).unwrap();
            assert_eq!(v["ackId"], n);
            assert_eq!(v["success"], true);
        }
        for text in [
            "g",
            "",
            "a b/é",
            "q\"q",
            "back\\slash",
            "tab\tnl\n\u{1}",
            "\u{7f}",
        ] {
            let mut s = String::new();
            push_quoted(&mut s, text);
            assert_eq!(s, quote(text));
        }
    }

    #[test]
    fn encodes_without_nulls() {
        assert_eq!(
            encode_connected("c", None, None),
            r#"{"type":"system","event":"connected","connectionId":"c"}"#
        );
        let body = encode_message(
            &Origin::Server,
            &Payload::Binary(Bytes::from_static(&[1, 2, 3])),
        );
        assert_eq!(
            body,
            r#"{"type":"message","from":"server","dataType":"binary","data":"AQID"}"#
        );
        let v: Value = serde_json::from_str(&with_sequence_id(&body, 7)).unwrap();
        assert_eq!(v["sequenceId"], 7);
        assert_eq!(v["data"], "AQID");
    }
}
