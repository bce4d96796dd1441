//! `protobuf.webpubsub.azure.v1` and `protobuf.reliable.webpubsub.azure.v1`: one
//! `UpstreamMessage` / `DownstreamMessage` per binary frame, written and read by hand (the
//! schema is small and stable, so no code generator is needed).
//!
//! JSON payloads travel as `json_data` (field 4 of `MessageData`), which keeps their type for
//! JSON subscribers; `invoke` has no protobuf form.

use super::messages::{AckError, DataType, Downstream, Payload, Request};
use super::{Codec, DecodeError, EncodeError, Frame, FrameRef};

/// `protobuf.webpubsub.azure.v1`
pub const PROTOBUF_SUBPROTOCOL: &str = "protobuf.webpubsub.azure.v1";
/// `protobuf.reliable.webpubsub.azure.v1`
pub const PROTOBUF_RELIABLE_SUBPROTOCOL: &str = "protobuf.reliable.webpubsub.azure.v1";

/// The protobuf subprotocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtobufCodec {
    reliable: bool,
}

impl ProtobufCodec {
    /// The reliable variant when `reliable`.
    pub fn new(reliable: bool) -> ProtobufCodec {
        ProtobufCodec { reliable }
    }
}

impl Codec for ProtobufCodec {
    fn subprotocol(&self) -> &'static str {
        if self.reliable {
            PROTOBUF_RELIABLE_SUBPROTOCOL
        } else {
            PROTOBUF_SUBPROTOCOL
        }
    }

    fn is_reliable(&self) -> bool {
        self.reliable
    }

    fn encode(&self, request: &Request<'_>) -> Result<Frame, EncodeError> {
        encode(request).map(Frame::Binary)
    }

    fn decode(&self, frame: FrameRef<'_>) -> Result<Downstream, DecodeError> {
        match frame {
            FrameRef::Binary(b) => decode(b),
            FrameRef::Text(_) => Err(DecodeError("text frame on a protobuf subprotocol".into())),
        }
    }
}

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

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_u64(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, VARINT);
    put_varint(out, v);
}

/// Writes a length-delimited sub-message built by `body`.
fn put_message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    put_bytes(out, field, &inner);
}

fn message_data(payload: &Payload) -> Result<Vec<u8>, EncodeError> {
    let field = match payload.data_type {
        DataType::Text => {
            payload.checked_text()?;
            1
        }
        DataType::Binary => 2,
        DataType::Protobuf => 3,
        DataType::Json => {
            payload.checked_json()?;
            4
        }
    };
    let mut out =
        Vec::with_capacity(payload.data.len() + 1 + varint_len(payload.data.len() as u64));
    put_bytes(&mut out, field, &payload.data);
    Ok(out)
}

/// Encodes one request as a serialized `UpstreamMessage`.
pub fn encode(request: &Request<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    match *request {
        Request::JoinGroup { group, ack_id } | Request::LeaveGroup { group, ack_id } => {
            let field = if matches!(request, Request::JoinGroup { .. }) {
                6
            } else {
                7
            };
            put_message(&mut out, field, |m| {
                put_bytes(m, 1, group.as_bytes());
                if let Some(id) = ack_id {
                    put_u64(m, 2, id);
                }
            });
        }
        Request::SendToGroup {
            group,
            payload,
            ack_id,
            no_echo,
        } => {
            let data = message_data(payload)?;
            put_message(&mut out, 1, |m| {
                put_bytes(m, 1, group.as_bytes());
                if let Some(id) = ack_id {
                    put_u64(m, 2, id);
                }
                put_bytes(m, 3, &data);
                put_u64(m, 4, u64::from(no_echo));
            });
        }
        Request::Event {
            event,
            payload,
            ack_id,
        } => {
            let data = message_data(payload)?;
            put_message(&mut out, 5, |m| {
                put_bytes(m, 1, event.as_bytes());
                put_bytes(m, 2, &data);
                if let Some(id) = ack_id {
                    put_u64(m, 3, id);
                }
            });
        }
        Request::SequenceAck { sequence_id } => {
            put_message(&mut out, 8, |m| put_u64(m, 1, sequence_id));
        }
        Request::Ping => put_message(&mut out, 9, |_| {}),
        Request::Invoke { .. } | Request::CancelInvocation { .. } => {
            return Err(EncodeError::Unsupported(
                "invoke is not available on the protobuf subprotocols".into(),
            ))
        }
        Request::StreamStart { .. }
        | Request::StreamData { .. }
        | Request::StreamKeepAlive { .. }
        | Request::StreamEnd { .. } => {
            return Err(EncodeError::Unsupported(
                "group streaming is not available on the protobuf subprotocols (no field numbers are published for it)".into(),
            ))
        }
        Request::SetGroupState { .. }
        | Request::SubscribeGroupState { .. }
        | Request::UnsubscribeGroupState { .. } => {
            return Err(EncodeError::Unsupported(
                "group state is not available on the protobuf subprotocols (no field numbers are published for it)".into(),
            ))
        }
    }
    Ok(out)
}

/// One decoded field value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterates the fields of one message, rejecting truncated input.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err(DecodeError("truncated varint".into()));
            };
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError("truncated field".into()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError("bad field number".into()))?;
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| DecodeError("bad length".into()))?;
                Value::Bytes(self.take(n)?)
            }
            FIXED64 => {
                self.take(8)?;
                Value::Fixed
            }
            FIXED32 => {
                self.take(4)?;
                Value::Fixed
            }
            other => return Err(DecodeError(format!("unsupported wire type {other}"))),
        };
        Ok(Some((field, value)))
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf }
}

fn string(b: &[u8], what: &str) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError(format!("{what} is not UTF-8")))
}

/// Decodes one serialized `DownstreamMessage`.
pub fn decode(buf: &[u8]) -> Result<Downstream, DecodeError> {
    let mut f = fields(buf);
    let mut result = Downstream::Ignored;
    while let Some((n, v)) = f.next_field()? {
        let Value::Bytes(inner) = v else { continue };
        result = match n {
            1 => decode_ack(inner)?,
            2 => decode_data(inner)?,
            3 => decode_system(inner)?,
            4 => Downstream::Pong,
            _ => result,
        };
    }
    Ok(result)
}

fn decode_ack(buf: &[u8]) -> Result<Downstream, DecodeError> {
    let (mut ack_id, mut success, mut error) = (None, false, None);
    let mut f = fields(buf);
    while let Some((n, v)) = f.next_field()? {
        match (n, v) {
            (1, Value::Varint(id)) => ack_id = Some(id),
            (2, Value::Varint(b)) => success = b != 0,
            (3, Value::Bytes(e)) => {
                let (mut name, mut message) = (String::new(), String::new());
                let mut ef = fields(e);
                while let Some((n, v)) = ef.next_field()? {
                    match (n, v) {
                        (1, Value::Bytes(b)) => name = string(b, "error name")?,
                        (2, Value::Bytes(b)) => message = string(b, "error message")?,
                        _ => {}
                    }
                }
                error = Some(AckError { name, message });
            }
            _ => {}
        }
    }
    Ok(Downstream::Ack {
        ack_id: ack_id.unwrap_or(0),
        success,
        error,
    })
}

fn decode_message_data(buf: &[u8]) -> Result<Option<Payload>, DecodeError> {
    let mut payload = None;
    let mut f = fields(buf);
    while let Some((n, v)) = f.next_field()? {
        let Value::Bytes(b) = v else { continue };
        let data_type = match n {
            1 => DataType::Text,
            2 => DataType::Binary,
            3 => DataType::Protobuf,
            4 => DataType::Json,
            _ => continue,
        };
        if matches!(data_type, DataType::Text | DataType::Json) && std::str::from_utf8(b).is_err() {
            return Err(DecodeError("text data is not UTF-8".into()));
        }
        payload = Some(Payload {
            data_type,
            data: b.to_vec(),
        });
    }
    Ok(payload)
}

fn decode_data(buf: &[u8]) -> Result<Downstream, DecodeError> {
    let (mut from, mut group, mut payload, mut sequence_id) = (None, None, None, None);
    let mut f = fields(buf);
    while let Some((n, v)) = f.next_field()? {
        match (n, v) {
            (1, Value::Bytes(b)) => from = Some(string(b, "from")?),
            (2, Value::Bytes(b)) => group = Some(string(b, "group")?),
            (3, Value::Bytes(b)) => payload = decode_message_data(b)?,
            (4, Value::Varint(s)) => sequence_id = Some(s),
            _ => {}
        }
    }
    let Some(payload) = payload else {
        // No data, or only a data kind this client does not know.
        return Ok(Downstream::Ignored);
    };
    match from.as_deref() {
        Some(f) if f.eq_ignore_ascii_case("group") => Ok(Downstream::GroupMessage {
            group: group.ok_or_else(|| DecodeError("group message without group".into()))?,
            from_user_id: None,
            payload,
            sequence_id,
            stream: None,
        }),
        Some(f) if f.eq_ignore_ascii_case("server") => Ok(Downstream::ServerMessage {
            payload,
            sequence_id,
        }),
        _ => Ok(Downstream::Ignored),
    }
}

fn decode_system(buf: &[u8]) -> Result<Downstream, DecodeError> {
    let mut result = Downstream::Ignored;
    let mut f = fields(buf);
    while let Some((n, v)) = f.next_field()? {
        let Value::Bytes(inner) = v else { continue };
        match n {
            1 => {
                let (mut id, mut user, mut token) = (None, None, None);
                let mut cf = fields(inner);
                while let Some((n, v)) = cf.next_field()? {
                    match (n, v) {
                        (1, Value::Bytes(b)) => id = Some(string(b, "connectionId")?),
                        (2, Value::Bytes(b)) => user = Some(string(b, "userId")?),
                        (3, Value::Bytes(b)) => token = Some(string(b, "reconnectionToken")?),
                        _ => {}
                    }
                }
                result = Downstream::Connected {
                    connection_id: id
                        .ok_or_else(|| DecodeError("connected without connectionId".into()))?,
                    user_id: user.filter(|u| !u.is_empty()),
                    reconnection_token: token.filter(|t| !t.is_empty()),
                };
            }
            2 => {
                let mut reason = None;
                let mut df = fields(inner);
                while let Some((n, v)) = df.next_field()? {
                    if let (2, Value::Bytes(b)) = (n, v) {
                        reason = Some(string(b, "reason")?);
                    }
                }
                result = Downstream::Disconnected { message: reason };
            }
            _ => {}
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests;
