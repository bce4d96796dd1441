//! Pure codecs for the Web PubSub client subprotocols: message types in, WebSocket frames out
//! and back. No I/O, no runtime; every function here is deterministic.

pub mod base64;
pub mod json;
pub mod messages;
pub mod protobuf;

pub use json::JsonCodec;
pub use messages::{AckError, DataType, Downstream, Payload, Request};
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
