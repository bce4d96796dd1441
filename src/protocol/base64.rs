//! Standard, padded base64 as the JSON subprotocols use for `binary` and `protobuf` data.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Appends the base64 form of `data` to `out`.
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let len = base64::encoded_len(data.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    // The buffer was sized with the engine's own length formula, so this cannot fail.
    let written = STANDARD.encode_slice(data, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// Decodes standard base64 (padding required, as the service writes it).
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text)
        .map_err(|e| format!("invalid base64 data: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut out = b"x".to_vec();
        encode_into(&[1, 2, 3], &mut out);
        assert_eq!(out, b"xAQID");
        assert_eq!(decode("AQID").unwrap(), vec![1, 2, 3]);
        assert!(decode("A").is_err());
    }
}
