//! Entry points for the fuzz targets in `fuzz/` (compiled only with `--cfg fuzzing`, which
//! `cargo fuzz` sets): every parser that reads what clients and REST callers send. Each must
//! return normally for any input; a panic, a hang or a disagreement between the one-pass
//! scanner and serde is a finding.

use bytes::Bytes;

use crate::auth;
use crate::fields;
use crate::filter::Filter;
use crate::protocol::{self, Payload};

/// JSON client messages: the one-pass scanner must agree with serde wherever it answers, and
/// the full parse must cope with anything.
pub fn client_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(fast) = fields::scan(text) {
        assert_eq!(
            Some(&fast),
            fields::with_serde(text).ok().as_ref(),
            "the scanner and serde disagree on {text:?}"
        );
    }
    let _ = protocol::parse_upstream(text);
}

/// Protobuf client messages.
pub fn protobuf_upstream(data: &[u8]) {
    let _ = crate::protobuf::parse_upstream(data);
}

/// Access tokens (JWT) and the audience paths they are compared with.
pub fn jwt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(claims) = auth::verify("fuzzing-key", &text) {
        let _ = auth::check_audience(&claims, "/client/hubs/h");
        let _ = auth::roles(&claims);
        let _ = auth::user_id(&claims);
        let _ = auth::string_list(&claims, "webpubsub.group");
    }
    let _ = auth::normalized_path(&text);
    // A token signed with the key and valid for an hour verifies, whatever else it claims.
    if let Ok(serde_json::Value::Object(mut claims)) = serde_json::from_slice(data) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        claims.insert("exp".into(), (now + 3600).into());
        claims.remove("nbf");
        let token = auth::sign("fuzzing-key", &serde_json::Value::Object(claims));
        assert!(auth::verify("fuzzing-key", &token).is_ok(), "{token}");
    }
}

/// OData filters, parsed and evaluated.
pub fn odata_filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = Filter::parse(&text) {
        let _ = f.matches_attrs(Some("user"), "conn", &["g1", "g2"]);
        let _ = f.matches_attrs(None, "", &[]);
    }
}

/// REST request bodies, under each content type the data plane accepts.
pub fn rest_body(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    for ct in [
        Some("application/json"),
        Some("text/plain"),
        Some("application/octet-stream"),
        Some("application/x-protobuf"),
        Some("application/json; charset=utf-8"),
        None,
    ] {
        if let Ok(p) = Payload::from_http(ct, body.clone()) {
            let _ = p.data_json();
            let _ = p.text();
        }
    }
}
