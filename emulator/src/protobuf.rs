//! The protobuf subprotocols (`protobuf.webpubsub.azure.v1`, `protobuf.reliable...`): a small
//! hand-written codec for the few messages of the Web PubSub schema.

use crate::fields;
use crate::protocol::{Payload, ProtocolError, Upstream};
use bytes::Bytes;

/// `protobuf.webpubsub.azure.v1`
pub const PROTOBUF_V1: &str = "protobuf.webpubsub.azure.v1";
/// `protobuf.reliable.webpubsub.azure.v1`
pub const PROTOBUF_RELIABLE_V1: &str = "protobuf.reliable.webpubsub.azure.v1";

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_u64(out: &mut Vec<u8>, field: u32, v: u64) {
    put_tag(out, field, VARINT);
    put_varint(out, v);
}

/// One decoded field.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
}

fn bad(what: &'static str) -> ProtocolError {
    ProtocolError::Field(what)
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtocolError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(bad("varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(bad("length"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Next `(field number, value)`, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, ProtocolError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = u32::try_from(tag >> 3).map_err(|_| bad("tag"))?;
        let value = match (tag & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => {
                self.take(8)?;
                Value::Other
            }
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                Value::Bytes(self.take(n)?)
            }
            FIXED32 => {
                self.take(4)?;
                Value::Other
            }
            _ => return Err(bad("wire type")),
        };
        Ok(Some((field, value)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, ProtocolError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.field()? {
        out.push(f);
    }
    Ok(out)
}

fn string(b: &[u8], what: &'static str) -> Result<String, ProtocolError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad(what))
}

fn message_data(buf: &[u8]) -> Result<Payload, ProtocolError> {
    let mut payload = None;
    for (n, v) in fields(buf)? {
        payload = match (n, v) {
            (1, Value::Bytes(b)) => Some(Payload::Text(string(b, "text_data")?)),
            (2, Value::Bytes(b)) => Some(Payload::Binary(Bytes::copy_from_slice(b))),
            (3, Value::Bytes(b)) => Some(Payload::Protobuf(Bytes::copy_from_slice(b))),
            (4, Value::Bytes(b)) => {
                if fields::nesting_exceeds(b, fields::MAX_DATA_DEPTH) {
                    return Err(bad("json_data"));
                }
                let v: serde_json::Value =
                    serde_json::from_slice(b).map_err(|_| bad("json_data"))?;
                Some(Payload::Json(v.to_string()))
            }
            _ => payload,
        };
    }
    payload.ok_or(bad("data"))
}

/// Parses one `UpstreamMessage`.
pub fn parse_upstream(buf: &[u8]) -> Result<Upstream<'static>, ProtocolError> {
    let mut result = None;
    for (n, v) in fields(buf)? {
        let Value::Bytes(inner) = v else { continue };
        result = Some(match n {
            1 => {
                let (mut group, mut ack_id, mut data, mut no_echo) = (None, None, None, false);
                for (f, v) in fields(inner)? {
                    match (f, v) {
                        (1, Value::Bytes(b)) => group = Some(string(b, "group")?),
                        (2, Value::Varint(a)) => ack_id = Some(a),
                        (3, Value::Bytes(b)) => data = Some(message_data(b)?),
                        (4, Value::Varint(e)) => no_echo = e != 0,
                        (7, _) => return Err(ProtocolError::NotOnProtobuf("Group streaming")),
                        _ => {}
                    }
                }
                Upstream::SendToGroup {
                    group: group.unwrap_or_default().into(),
                    data: data.ok_or(bad("data"))?,
                    no_echo,
                    ack_id,
                }
            }
            5 => {
                let (mut event, mut data, mut ack_id) = (None, None, None);
                for (f, v) in fields(inner)? {
                    match (f, v) {
                        (1, Value::Bytes(b)) => event = Some(string(b, "event")?),
                        (2, Value::Bytes(b)) => data = Some(message_data(b)?),
                        (3, Value::Varint(a)) => ack_id = Some(a),
                        (5, _) => return Err(bad("stream")),
                        _ => {}
                    }
                }
                Upstream::Event {
                    event: event.ok_or(bad("event"))?,
                    data: data.ok_or(bad("data"))?,
                    ack_id,
                }
            }
            6 | 7 => {
                let (mut group, mut ack_id) = (String::new(), None);
                for (f, v) in fields(inner)? {
                    match (f, v) {
                        (1, Value::Bytes(b)) => group = string(b, "group")?,
                        (2, Value::Varint(a)) => ack_id = Some(a),
                        _ => {}
                    }
                }
                if n == 6 {
                    Upstream::JoinGroup {
                        group: group.into(),
                        ack_id,
                    }
                } else {
                    Upstream::LeaveGroup {
                        group: group.into(),
                        ack_id,
                    }
                }
            }
            8 => {
                let mut sequence_id = 0;
                for (f, v) in fields(inner)? {
                    if let (1, Value::Varint(s)) = (f, v) {
                        sequence_id = s;
                    }
                }
                Upstream::SequenceAck { sequence_id }
            }
            9 => Upstream::Ping,
            _ => continue,
        });
    }
    result.ok_or_else(|| ProtocolError::UnknownType("protobuf message".into()))
}

/// `MessageData` for a payload. JSON goes as `text_data` (the service's documented mapping).
fn encode_message_data(data_type: &str, raw: &[u8]) -> Vec<u8> {
    let field = match data_type {
        "binary" => 2,
        "protobuf" => 3,
        _ => 1,
    };
    let mut out = Vec::with_capacity(raw.len() + 6);
    put_bytes(&mut out, field, raw);
    out
}

/// The fields of a `DataMessage` without `sequence_id` (see [`encode_data`]).
pub fn encode_data_inner(group: Option<&str>, data_type: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 32);
    match group {
        Some(g) => {
            put_bytes(&mut out, 1, b"group");
            put_bytes(&mut out, 2, g.as_bytes());
        }
        None => put_bytes(&mut out, 1, b"server"),
    }
    put_bytes(&mut out, 3, &encode_message_data(data_type, raw));
    out
}

/// `DownstreamMessage{data_message}` from [`encode_data_inner`] plus an optional sequence id.
pub fn encode_data(inner: &[u8], sequence_id: Option<u64>) -> Bytes {
    let mut seq = Vec::new();
    if let Some(s) = sequence_id {
        put_u64(&mut seq, 4, s);
    }
    let mut out = Vec::with_capacity(inner.len() + seq.len() + 6);
    put_tag(&mut out, 2, LEN);
    put_varint(&mut out, (inner.len() + seq.len()) as u64);
    out.extend_from_slice(inner);
    out.extend_from_slice(&seq);
    Bytes::from(out)
}

/// `DownstreamMessage{ack_message}`.
pub fn encode_ack(ack_id: u64, error: Option<(&str, &str)>) -> Bytes {
    let mut ack = Vec::new();
    put_u64(&mut ack, 1, ack_id);
    put_u64(&mut ack, 2, u64::from(error.is_none()));
    if let Some((name, message)) = error {
        let mut e = Vec::new();
        put_bytes(&mut e, 1, name.as_bytes());
        put_bytes(&mut e, 2, message.as_bytes());
        put_bytes(&mut ack, 3, &e);
    }
    let mut out = Vec::new();
    put_bytes(&mut out, 1, &ack);
    Bytes::from(out)
}

fn system(inner_field: u32, inner: &[u8]) -> Bytes {
    let mut sys = Vec::new();
    put_bytes(&mut sys, inner_field, inner);
    let mut out = Vec::new();
    put_bytes(&mut out, 3, &sys);
    Bytes::from(out)
}

/// `DownstreamMessage{system_message{connected_message}}`.
pub fn encode_connected(
    connection_id: &str,
    user_id: Option<&str>,
    reconnection_token: Option<&str>,
) -> Bytes {
    let mut c = Vec::new();
    put_bytes(&mut c, 1, connection_id.as_bytes());
    if let Some(u) = user_id {
        put_bytes(&mut c, 2, u.as_bytes());
    }
    if let Some(t) = reconnection_token {
        put_bytes(&mut c, 3, t.as_bytes());
    }
    system(1, &c)
}

/// `DownstreamMessage{system_message{disconnected_message}}` (reason is field 2).
pub fn encode_disconnected(reason: &str) -> Bytes {
    let mut d = Vec::new();
    put_bytes(&mut d, 2, reason.as_bytes());
    system(2, &d)
}

/// `DownstreamMessage{pong_message}`.
pub fn encode_pong() -> Bytes {
    Bytes::from_static(&[0x22, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .flat_map(|t| {
                if let Some(q) = t.strip_prefix('"') {
                    q.trim_end_matches('"').as_bytes().to_vec()
                } else {
                    vec![u8::from_str_radix(t, 16).unwrap()]
                }
            })
            .collect()
    }

    #[test]
    fn upstream_vectors_from_the_spec() {
        assert_eq!(
            parse_upstream(&hex("32 07 0a 05 67 72 6f 75 70")).unwrap(),
            Upstream::JoinGroup {
                group: "group".into(),
                ack_id: None
            }
        );
        assert_eq!(
            parse_upstream(&hex(r#"32 0b 0a 05 "group" 10 e5 d8 02"#)).unwrap(),
            Upstream::JoinGroup {
                group: "group".into(),
                ack_id: Some(44133)
            }
        );
        assert_eq!(
            parse_upstream(&hex(r#"0a 10 0a 05 "group" 1a 05 0a 03 "xzy" 20 00"#)).unwrap(),
            Upstream::SendToGroup {
                group: "group".into(),
                data: Payload::Text("xzy".into()),
                no_echo: false,
                ack_id: None
            }
        );
        assert_eq!(
            parse_upstream(&hex("42 04 08 c0 c4 07")).unwrap(),
            Upstream::SequenceAck {
                sequence_id: 123456
            }
        );
        assert_eq!(
            parse_upstream(&hex(r#"2a 0e 0a 05 "event" 12 05 0a 03 "xzy""#)).unwrap(),
            Upstream::Event {
                event: "event".into(),
                data: Payload::Text("xzy".into()),
                ack_id: None
            }
        );
        assert_eq!(parse_upstream(&hex("4a 00")).unwrap(), Upstream::Ping);
        assert!(parse_upstream(&hex("32 07 0a 09")).is_err(), "truncated");
        assert!(parse_upstream(&[]).is_err(), "empty");
    }

    #[test]
    fn downstream_vectors_from_the_spec() {
        assert_eq!(&encode_ack(123, None)[..], &hex("0a 04 08 7b 10 01")[..]);
        assert_eq!(
            &encode_ack(123, Some(("Forbidden", "message")))[..],
            &hex(r#"0a 1a 08 7b 10 00 1a 14 0a 09 "Forbidden" 12 07 "message""#)[..]
        );
        let inner = encode_data_inner(Some("groupName"), "text", b"xyz");
        assert_eq!(
            &encode_data(&inner, Some(12345))[..],
            &hex(r#"12 1c 0a 05 "group" 12 09 "groupName" 1a 05 0a 03 "xyz" 20 b9 60"#)[..]
        );
        let inner = encode_data_inner(None, "text", b"xyz");
        assert_eq!(
            &encode_data(&inner, Some(12345))[..],
            &hex(r#"12 12 0a 06 "server" 1a 05 0a 03 "xyz" 20 b9 60"#)[..]
        );
        assert_eq!(
            &encode_connected("connection", Some("user"), Some("rec"))[..],
            &hex(r#"1a 19 0a 17 0a 0a "connection" 12 04 "user" 1a 03 "rec""#)[..]
        );
        assert_eq!(
            &encode_disconnected("msg")[..],
            &hex(r#"1a 07 12 05 12 03 "msg""#)[..]
        );
    }
}
