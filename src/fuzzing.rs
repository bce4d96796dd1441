//! Entry points for the fuzz targets in `fuzz/` (compiled only with `--cfg fuzzing`, which
//! `cargo fuzz` sets): every parser that reads bytes from the network or from the user. Each
//! function must return normally for any input; a panic, a hang or a disagreement between two
//! decoders is a finding.

use crate::protocol::{json, protobuf, Codec, FrameRef, JsonCodec, ProtobufCodec};

/// JSON downstream messages: the one-pass reader must agree with serde on every input, and
/// both codecs (reliable or not, text or binary frame) must cope with anything.
pub fn json_downstream(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            json::decode(text),
            json::decode_with_serde(text),
            "the one-pass reader and serde disagree on {text:?}"
        );
        let _ = JsonCodec::new(true).decode(FrameRef::Text(text));
    }
    let _ = JsonCodec::new(false).decode(FrameRef::Binary(data));
}

/// Protobuf downstream messages.
pub fn protobuf_downstream(data: &[u8]) {
    let _ = protobuf::decode(data);
    let _ = ProtobufCodec::new(true).decode(FrameRef::Binary(data));
}

/// The WebSocket upgrade response, as received so far.
pub fn upgrade_response(data: &[u8]) {
    let _ = crate::client::fuzz_upgrade_response(data);
}

/// The HTTP proxy's answer to `CONNECT`.
pub fn proxy_response(data: &[u8]) {
    let _ = crate::client::fuzz_connect_response(data);
}

/// What users pass in: client access URLs (and the recovery URL built from them), proxy URLs,
/// and text that goes through log redaction.
pub fn user_strings(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    if let Ok(url) = crate::client::url::validate(a) {
        let recovery = crate::client::url::recovery_url(&url, b, b);
        let _ = crate::client::url::token_expiry(&recovery);
        let _ = crate::client::url::validate(recovery.as_str());
    }
    let _ = crate::client::fuzz_proxy_url(&text);
    let redacted = crate::log::redact(&text);
    assert!(
        redacted.len() <= text.len() + 8 * text.matches('=').count(),
        "redaction grows text"
    );
}
