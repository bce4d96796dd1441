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
    fn validation_is_clear() {
        assert!(matches!(validate("not a url"), Err(Error::InvalidUrl(_))));
        assert!(matches!(validate("ftp://x/y"), Err(Error::InvalidUrl(_))));
        assert_eq!(validate("https://x/y").unwrap().scheme(), "wss");
        assert_eq!(validate("ws://127.0.0.1:1/a").unwrap().scheme(), "ws");
    }
}
