//! Pure codecs for the Web PubSub client subprotocols: message types in, WebSocket frames out
//! and back. No I/O, no runtime; every function here is deterministic.

pub mod base64;
pub mod json;
pub mod messages;
pub mod protobuf;

pub use json::JsonCodec;
pub use messages::{
    AckError, DataType, Downstream, Payload, Request, StreamError, StreamInfo, StreamUserError,
};
pub use protobuf::ProtobufCodec;

/// One WebSocket data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (always UTF-8).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// A borrowed WebSocket data frame, as received.
#[derive(Debug, Clone, Copy)]
pub enum FrameRef<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

/// Why a request could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// Text data was not UTF-8, or JSON data was not a valid non-null JSON value.
    InvalidPayload(String),
    /// The data type cannot be carried by this subprotocol.
    Unsupported(String),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::InvalidPayload(m) => write!(f, "invalid payload: {m}"),
            EncodeError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

/// A frame the service sent that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client subprotocol: encodes upstream requests and decodes downstream frames.
pub trait Codec: Send + Sync + 'static {
    /// The `Sec-WebSocket-Protocol` value.
    fn subprotocol(&self) -> &'static str;
    /// Whether the subprotocol carries sequence ids and supports recovery.
    fn is_reliable(&self) -> bool;
    /// Encodes one request into one frame.
    fn encode(&self, request: &Request<'_>) -> Result<Frame, EncodeError>;
    /// Decodes one frame. Unknown message kinds decode to [`Downstream::Ignored`].
    fn decode(&self, frame: FrameRef<'_>) -> Result<Downstream, DecodeError>;
}

/// Either codec, chosen by the client's protocol option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyCodec {
    /// The JSON subprotocols.
    Json(JsonCodec),
    /// The protobuf subprotocols.
    Protobuf(ProtobufCodec),
}

impl Codec for AnyCodec {
    fn subprotocol(&self) -> &'static str {
        match self {
            AnyCodec::Json(c) => c.subprotocol(),
            AnyCodec::Protobuf(c) => c.subprotocol(),
        }
    }

    fn is_reliable(&self) -> bool {
        match self {
            AnyCodec::Json(c) => c.is_reliable(),
            AnyCodec::Protobuf(c) => c.is_reliable(),
        }
    }

    fn encode(&self, request: &Request<'_>) -> Result<Frame, EncodeError> {
        match self {
            AnyCodec::Json(c) => c.encode(request),
            AnyCodec::Protobuf(c) => c.encode(request),
        }
    }

    fn decode(&self, frame: FrameRef<'_>) -> Result<Downstream, DecodeError> {
        match self {
            AnyCodec::Json(c) => c.decode(frame),
            AnyCodec::Protobuf(c) => c.decode(frame),
        }
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// xorshift64*: deterministic pseudo-random bytes for the no-panic checks.
    fn bytes(seed: &mut u64, max: usize) -> Vec<u8> {
        let mut next = || {
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let len = (next() as usize) % max;
        (0..len).map(|_| next() as u8).collect()
    }

    #[test]
    fn decoders_never_panic_on_garbage() {
        let codecs = [
            AnyCodec::Json(JsonCodec::new(true)),
            AnyCodec::Protobuf(ProtobufCodec::new(true)),
        ];
        let mut seed = 0x1234_5678_9abc_def1u64;
        for i in 0..20_000 {
            let b = bytes(&mut seed, 64);
            for c in &codecs {
                let _ = c.decode(FrameRef::Binary(&b));
                if let Ok(t) = std::str::from_utf8(&b) {
                    let _ = c.decode(FrameRef::Text(t));
                }
            }
            // Mutations of valid frames reach deeper paths.
            let valid = [
                &br#"{"type":"message","from":"group","group":"g","dataType":"binary","data":"AQID","sequenceId":3}"#[..],
                &[0x12, 0x12, 0x0a, 0x06, b's', b'e', b'r', b'v', b'e', b'r', 0x1a, 0x05, 0x0a, 0x03, b'x', b'y', b'z', 0x20, 0xb9, 0x60][..],
            ];
            for v in valid {
                let mut m = v.to_vec();
                let pos = (i * 7) % m.len();
                m[pos] = b.first().copied().unwrap_or(0);
                m.truncate(m.len() - (i % 3));
                for c in &codecs {
                    let _ = c.decode(FrameRef::Binary(&m));
                }
            }
        }
    }
}
