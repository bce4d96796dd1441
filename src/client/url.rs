//! Client access URLs: validation and the recovery URL.

use crate::error::Error;

/// Query parameter naming the connection to recover.
pub const CONNECTION_ID_PARAM: &str = "awps_connection_id";
/// Query parameter carrying the reconnection token.
pub const RECONNECTION_TOKEN_PARAM: &str = "awps_reconnection_token";

/// Checks that `url` is a usable client access URL (`ws://` or `wss://` with a host).
/// `http(s)://` is accepted and mapped to `ws(s)://`.
pub fn validate(url: &str) -> Result<url::Url, Error> {
    let mut parsed = url::Url::parse(url.trim())
        .map_err(|e| Error::InvalidUrl(format!("{e}: {}", crate::log::redact(url))))?;
    let scheme = match parsed.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(Error::InvalidUrl(format!(
                "unsupported scheme {other:?} (expected ws:// or wss://)"
            )))
        }
    };
    if parsed.scheme() != scheme {
        // Both schemes are "special", so set_scheme cannot fail between them.
        let _ = parsed.set_scheme(scheme);
    }
    if parsed.host_str().map(str::is_empty).unwrap_or(true) {
        return Err(Error::InvalidUrl("the URL has no host".into()));
    }
    Ok(parsed)
}

/// The original URL (with its possibly expired `access_token`) plus the recovery parameters,
/// replacing any that are already present.
pub fn recovery_url(original: &url::Url, connection_id: &str, token: &str) -> url::Url {
    let kept: Vec<(String, String)> = original
        .query_pairs()
        .filter(|(k, _)| k != CONNECTION_ID_PARAM && k != RECONNECTION_TOKEN_PARAM)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut url = original.clone();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair(CONNECTION_ID_PARAM, connection_id);
        q.append_pair(RECONNECTION_TOKEN_PARAM, token);
    }
    url
}

/// The `exp` claim (seconds since the Unix epoch) of the URL's `access_token`, if it is a JWT.
/// Read without verification, only to explain failures.
pub fn token_expiry(url: &url::Url) -> Option<u64> {
    use base64::Engine;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_url_appends_and_replaces() {
        let u = validate("wss://h.example/client/hubs/Hub1?access_token=AAA").unwrap();
        let r = recovery_url(&u, "conn1", "tok/1+=");
        assert_eq!(
            r.as_str(),
            "wss://h.example/client/hubs/Hub1?access_token=AAA&awps_connection_id=conn1&awps_reconnection_token=tok%2F1%2B%3D"
        );
        let again = recovery_url(&r, "conn2", "t2");
        assert_eq!(
            again.as_str(),
            "wss://h.example/client/hubs/Hub1?access_token=AAA&awps_connection_id=conn2&awps_reconnection_token=t2"
        );
    }

    #[test]
    fn reads_the_token_expiry() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.sig",
            b64.encode("{}"),
            b64.encode(r#"{"exp":1700000000}"#)
        );
        let u = validate(&format!("ws://h/client/hubs/x?access_token={token}")).unwrap();
        assert_eq!(token_expiry(&u), Some(1_700_000_000));
        let u = validate("ws://h/client/hubs/x?access_token=opaque").unwrap();
        assert_eq!(token_expiry(&u), None);
    }

    #[test]
    fn validation_is_clear() {
        assert!(matches!(validate("not a url"), Err(Error::InvalidUrl(_))));
        assert!(matches!(validate("ftp://x/y"), Err(Error::InvalidUrl(_))));
        assert_eq!(validate("https://x/y").unwrap().scheme(), "wss");
        assert_eq!(validate("ws://127.0.0.1:1/a").unwrap().scheme(), "ws");
    }
}
