//! The JSON subprotocols: parsing of client (upstream) messages and encoding of service
//! (downstream) messages. Optional fields are omitted rather than written as `null`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};

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
    /// Serialized JSON text of the value.
    Json(String),
    Binary(Bytes),
    Protobuf(Bytes),
}

impl Payload {
    /// Lowercase `dataType` name.
    pub fn data_type(&self) -> &'static str {
        match self {
            Payload::Text(_) => "text",
            Payload::Json(_) => "json",
            Payload::Binary(_) => "binary",
            Payload::Protobuf(_) => "protobuf",
        }
    }

    /// The JSON fragment written as `data`.
    pub fn data_json(&self) -> String {
        match self {
            Payload::Text(s) => Value::String(s.clone()).to_string(),
            Payload::Json(s) => s.clone(),
            Payload::Binary(b) | Payload::Protobuf(b) => {
                Value::String(STANDARD.encode(b)).to_string()
            }
        }
    }

    /// Raw bytes as forwarded to an upstream handler or a simple client.
    pub fn raw_bytes(&self) -> Bytes {
        match self {
            Payload::Text(s) | Payload::Json(s) => Bytes::copy_from_slice(s.as_bytes()),
            Payload::Binary(b) | Payload::Protobuf(b) => b.clone(),
        }
    }

    /// HTTP content type for this payload.
    pub fn content_type(&self) -> &'static str {
        match self {
            Payload::Text(_) => "text/plain; charset=utf-8",
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
pub enum Upstream {
    JoinGroup {
        group: String,
        ack_id: Option<u64>,
    },
    LeaveGroup {
        group: String,
        ack_id: Option<u64>,
    },
    SendToGroup {
        group: String,
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
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name).filter(|v| !v.is_null())
}

fn string(m: &Map<String, Value>, name: &'static str) -> Result<String, ProtocolError> {
    match field(m, name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ProtocolError::Field(name)),
    }
}

fn ack_id(m: &Map<String, Value>) -> Result<Option<u64>, ProtocolError> {
    match field(m, "ackId") {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(ProtocolError::Field("ackId")),
    }
}

fn payload(m: &Map<String, Value>) -> Result<Payload, ProtocolError> {
    let data_type = match field(m, "dataType") {
        None => "json".to_string(),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(ProtocolError::Field("dataType")),
    };
    let data = field(m, "data").ok_or(ProtocolError::Field("data"))?;
    match data_type.as_str() {
        "json" => Ok(Payload::Json(data.to_string())),
        "text" => data
            .as_str()
            .map(|s| Payload::Text(s.to_string()))
            .ok_or(ProtocolError::Field("data")),
        "binary" | "protobuf" => {
            let b = data
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or(ProtocolError::Field("data"))?;
            Ok(if data_type == "binary" {
                Payload::Binary(Bytes::from(b))
            } else {
                Payload::Protobuf(Bytes::from(b))
            })
        }
        _ => Err(ProtocolError::Field("dataType")),
    }
}

/// Parses one client message (text of a text frame, or UTF-8 of a binary frame).
pub fn parse_upstream(text: &str) -> Result<Upstream, ProtocolError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let Value::Object(m) = v else {
        return Err(ProtocolError::NotObject);
    };
    let ty = string(&m, "type")?;
    match ty.to_ascii_lowercase().as_str() {
        "joingroup" => Ok(Upstream::JoinGroup {
            group: string(&m, "group")?,
            ack_id: ack_id(&m)?,
        }),
        "leavegroup" => Ok(Upstream::LeaveGroup {
            group: string(&m, "group")?,
            ack_id: ack_id(&m)?,
        }),
        "sendtogroup" => {
            if field(&m, "stream").is_some() {
                return Err(ProtocolError::Field("stream"));
            }
            let no_echo = match field(&m, "noEcho") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(ProtocolError::Field("noEcho")),
            };
            Ok(Upstream::SendToGroup {
                group: string(&m, "group")?,
                data: payload(&m)?,
                no_echo,
                ack_id: ack_id(&m)?,
            })
        }
        "event" => Ok(Upstream::Event {
            event: string(&m, "event")?,
            data: payload(&m)?,
            ack_id: ack_id(&m)?,
        }),
        "sequenceack" => Ok(Upstream::SequenceAck {
            sequence_id: field(&m, "sequenceId")
                .and_then(Value::as_u64)
                .ok_or(ProtocolError::Field("sequenceId"))?,
        }),
        "ping" => Ok(Upstream::Ping),
        "invoke" => Ok(Upstream::Invoke {
            invocation_id: string(&m, "invocationId")?,
            event: string(&m, "event")?,
            data: if field(&m, "data").is_some() {
                Some(payload(&m)?)
            } else {
                None
            },
        }),
        "cancelinvocation" => Ok(Upstream::CancelInvocation {
            invocation_id: string(&m, "invocationId")?,
        }),
        _ => Err(ProtocolError::UnknownType(ty)),
    }
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
    Value::String(s.to_string()).to_string()
}

/// `ack` frame; `error` is `(name, message)`.
pub fn encode_ack(ack_id: u64, error: Option<(&str, &str)>) -> String {
    match error {
        None => format!(r#"{{"type":"ack","ackId":{ack_id},"success":true}}"#),
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
            s.push_str(&quote(group));
            if let Some(u) = from_user_id {
                s.push_str(r#","fromUserId":"#);
                s.push_str(&quote(u));
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
        Payload::Text(s) | Payload::Json(s) => s.len(),
        Payload::Binary(b) | Payload::Protobuf(b) => b.len() * 4 / 3 + 4,
    }
}

/// Splices `"sequenceId":N` in front of an encoded object without re-serialising it.
pub fn with_sequence_id(body: &str, sequence_id: u64) -> String {
    let mut s = String::with_capacity(body.len() + 24);
    s.push_str("{\"sequenceId\":");
    s.push_str(itoa(sequence_id).as_str());
    s.push(',');
    s.push_str(&body[1..]);
    s
}

fn itoa(n: u64) -> String {
    n.to_string()
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
                data: Payload::Text("x".into()),
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
