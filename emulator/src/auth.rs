//! HS256 JSON Web Tokens: verification of client and REST tokens, minting of tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated for `exp` and `nbf`.
const CLOCK_SKEW_SECS: i64 = 300;

/// Latest `exp` the emulator mints: 9999-12-31T23:59:59Z, the last date every JWT library can
/// represent.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("invalid token signature")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience does not match")]
    Audience,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signs `claims` with HS256 using the UTF-8 bytes of `key`.
pub fn sign(key: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(hmac(key, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// HMAC-SHA256 of `data` keyed by the UTF-8 bytes of `key`.
pub fn hmac(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies signature, `alg`, `exp` (required) and `nbf`, returning the claims.
pub fn verify(key: &str, token: &str) -> Result<Map<String, Value>, AuthError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header: Value = decode_segment(h)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(AuthError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Signature)?;
    let claims: Value = decode_segment(p)?;
    let Value::Object(claims) = claims else {
        return Err(AuthError::Malformed);
    };
    let now = now_secs();
    match claims.get("exp").and_then(numeric_date) {
        Some(exp) if exp.saturating_add(CLOCK_SKEW_SECS) < now => return Err(AuthError::Expired),
        Some(_) => {}
        None => return Err(AuthError::Malformed),
    }
    if let Some(nbf) = claims.get("nbf").and_then(numeric_date) {
        if nbf.saturating_sub(CLOCK_SKEW_SECS) > now {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok(claims)
}

/// A NumericDate claim; fractions are dropped and values beyond i64 saturate.
fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The `exp` of a token minted now that lives `ttl_secs` (at least one second); `None` when it
/// would fall after [`MAX_NUMERIC_DATE`].
pub fn expiry(ttl_secs: u64) -> Option<i64> {
    let exp = now_secs().checked_add(i64::try_from(ttl_secs.max(1)).ok()?)?;
    (exp <= MAX_NUMERIC_DATE).then_some(exp)
}

fn decode_segment(segment: &str) -> Result<Value, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Canonical path of an audience or request URL, for comparing the two: scheme, authority,
/// query and fragment removed, lowercased, without trailing slash. Escapes of unreserved
/// characters are decoded and every other byte that is not a plain path character is
/// escaped, so equivalent spellings compare equal; an escaped reserved character (`%2F`) stays
/// distinct from the character itself (`/`), so a token for one path segment cannot stand
/// for several.
pub fn normalized_path(url_or_path: &str) -> String {
    let mut rest = url_or_path.trim();
    if let Some(i) = rest.find("://") {
        rest = &rest[i + 3..];
        rest = rest.find('/').map(|j| &rest[j..]).unwrap_or("/");
    }
    if let Some(q) = rest.find(['?', '#']) {
        rest = &rest[..q];
    }
    let bytes = rest.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (b, escaped) = match escape_at(bytes, i) {
            Some(b) => (b, true),
            None => (bytes[i], false),
        };
        i += if escaped { 3 } else { 1 };
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        let path_char = b"!$&'()*+,;=:@/".contains(&b);
        if unreserved || (path_char && !escaped) {
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out.trim_end_matches('/').to_string()
}

/// The byte a valid `%XX` escape at `i` stands for.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    match bytes.get(i..i + 3)? {
        [b'%', a, b] => Some(hex(*a)? * 16 + hex(*b)?),
        _ => None,
    }
}

/// Percent-decodes a URL component (invalid escapes are kept literally).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Checks `aud` against the expected path (path only, case-insensitive).
pub fn check_audience(claims: &Map<String, Value>, expected_path: &str) -> Result<(), AuthError> {
    let aud = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => return Err(AuthError::Audience),
    };
    let expected = normalized_path(expected_path);
    if aud.iter().any(|a| normalized_path(a) == expected) {
        Ok(())
    } else {
        Err(AuthError::Audience)
    }
}

/// Reads a claim that may be a string or an array of strings.
pub fn string_list(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// The user id of a client token: `sub`, else the `nameidentifier` claim.
pub fn user_id(claims: &Map<String, Value>) -> Option<String> {
    const NAME_ID: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
    claims
        .get("sub")
        .or_else(|| claims.get(NAME_ID))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Roles of a client token (`role` or the long .NET claim name).
pub fn roles(claims: &Map<String, Value>) -> Vec<String> {
    const LONG: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
    let mut r = string_list(claims, "role");
    r.extend(string_list(claims, LONG));
    r
}

/// Mints a client access token for `/client/hubs/{hub}`.
pub fn client_token(
    key: &str,
    endpoint: &str,
    hub: &str,
    user_id: Option<&str>,
    roles: &[&str],
    groups: &[&str],
    ttl: Duration,
) -> String {
    let now = now_secs();
    let mut claims = Map::new();
    claims.insert(
        "aud".into(),
        Value::String(format!(
            "{}/client/hubs/{hub}",
            endpoint.trim_end_matches('/')
        )),
    );
    claims.insert("iat".into(), now.into());
    let exp = expiry(ttl.as_secs()).unwrap_or(MAX_NUMERIC_DATE);
    claims.insert("exp".into(), exp.into());
    if let Some(u) = user_id {
        claims.insert("sub".into(), u.into());
    }
    if !roles.is_empty() {
        claims.insert(
            "role".into(),
            roles.iter().map(|s| Value::from(*s)).collect(),
        );
    }
    if !groups.is_empty() {
        claims.insert(
            "webpubsub.group".into(),
            groups.iter().map(|s| Value::from(*s)).collect(),
        );
    }
    sign(key, &Value::Object(claims))
}

/// Mints a REST bearer token whose `aud` is `url` (valid one hour).
pub fn rest_token(key: &str, url: &str) -> String {
    let now = now_secs();
    sign(
        key,
        &serde_json::json!({"aud": url, "iat": now, "exp": now + 3600}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sign_then_verify_round_trips() {
        let t = rest_token("k", "http://x/api/hubs/h/:send?api-version=1");
        let c = verify("k", &t).unwrap();
        assert!(check_audience(&c, "/API/hubs/h/:send/").is_ok());
        assert_eq!(verify("other", &t), Err(AuthError::Signature));
    }

    #[test]
    fn expired_token_is_refused() {
        let t = sign("k", &serde_json::json!({"exp": now_secs() - 400}));
        assert_eq!(verify("k", &t), Err(AuthError::Expired));
        let t = sign("k", &serde_json::json!({"exp": now_secs() - 100}));
        assert!(verify("k", &t).is_ok());
    }

    #[test]
    fn extreme_dates_neither_overflow_nor_pass() {
        for exp in [json!(i64::MAX), json!(1e300), json!(u64::MAX)] {
            let t = sign("k", &json!({"exp": exp, "nbf": i64::MIN}));
            assert!(verify("k", &t).is_ok(), "{exp}");
        }
        let t = sign("k", &json!({"exp": i64::MIN}));
        assert_eq!(verify("k", &t), Err(AuthError::Expired));
        let t = sign("k", &json!({"exp": now_secs() + 60, "nbf": i64::MAX}));
        assert_eq!(verify("k", &t), Err(AuthError::NotYetValid));
        assert_eq!(expiry(u64::MAX), None);
        assert_eq!(expiry(u64::MAX / 60 * 60), None);
        assert!(expiry(100 * 365 * 24 * 3600).is_some());
        let t = client_token("k", "http://h", "hub", None, &[], &[], Duration::MAX);
        assert_eq!(verify("k", &t).unwrap()["exp"], json!(MAX_NUMERIC_DATE));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("user%201"), "user 1");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%2f%"), "A/%");
    }

    #[test]
    fn audience_paths_compare_canonically() {
        let same = |a: &str, b: &str| normalized_path(a) == normalized_path(b);
        assert_eq!(normalized_path("http://h:1/A/b%20c/?x=1"), "/a/b%20c");
        assert!(same("/api/users/user%201", "http://x/API/users/user 1/"));
        assert!(same("/a/%41%7e%2d", "/a/A~-"));
        assert!(same("/a/%c3%a9", "/a/\u{e9}"));
        assert!(same("/a/%3A%5b", "/a/%3a%5B"));
        assert!(same("/client/hubs/h[1]", "/client/hubs/h%5B1%5D"));
        // An escaped separator is not a separator.
        assert!(!same(
            "/api/hubs/h/users/x%2Fgroups%2Fg",
            "/api/hubs/h/users/x/groups/g"
        ));
        assert!(!same("/a/x%3Ay", "/a/x:y"));
    }
}
