//! Routes every request by path: client endpoint, REST data plane, fault injection.

use crate::auth::percent_decode;
use crate::connection;
use crate::faults;
use crate::rest::{self, authorize, error_response, RestRequest};
use crate::server::Handshake;
use crate::service::Service;
use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderValue, Request, StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;

/// Largest accepted REST body.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Decoded query parameters, in order (repeated names kept).
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// `503` with `Retry-After` (whole seconds, rounded up) until `until`.
fn unavailable(until: Instant) -> Response {
    let wait = until.saturating_duration_since(Instant::now());
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "The service is restarting.",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// Serves one request.
pub async fn dispatch(svc: Arc<Service>, req: Request<Body>) -> Response {
    let handshake = req
        .extensions()
        .get::<Handshake>()
        .cloned()
        .unwrap_or_else(Handshake::none);
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let first = segments.first().map(|s| s.to_ascii_lowercase());
    // A restart with downtime: the service is down, its fault API is not (tests drive it).
    if first.as_deref() != Some("_emulator") {
        if let Some(until) = svc.down.pending() {
            return unavailable(until);
        }
    }
    match first.as_deref() {
        Some("client") => {
            let hub = match segments.as_slice() {
                [_, h, hub] if h.eq_ignore_ascii_case("hubs") => Some(hub.clone()),
                [_] => None,
                _ => return error_response(StatusCode::NOT_FOUND, "NotFound", "Unknown path."),
            };
            connection::handle(svc, hub, req, handshake).await
        }
        Some("api") | Some("_emulator") => {
            let public = matches!(segments.as_slice(), [a, h] if a == "api" && h == "health");
            if !public {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                // Before the body is read: an unauthenticated client cannot make us read one.
                if let Err(r) = authorize(&svc, auth, &path) {
                    return r;
                }
                handshake.authenticated();
            }
            let query = query_pairs(req.uri());
            let (parts, body) = req.into_parts();
            let body =
                match tokio::time::timeout(svc.limits.body_read_timeout, to_bytes(body, MAX_BODY))
                    .await
                {
                    Ok(Ok(b)) => b,
                    Ok(Err(_)) => {
                        return error_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "PayloadTooLarge",
                            "Request body too large.",
                        )
                    }
                    Err(_) => {
                        return error_response(
                            StatusCode::REQUEST_TIMEOUT,
                            "RequestTimeout",
                            "The request body did not arrive in time.",
                        )
                    }
                };
            if first.as_deref() == Some("api") {
                rest::handle(
                    &svc,
                    RestRequest {
                        method: &parts.method,
                        path: &path,
                        segments: &segments,
                        query: &query,
                        headers: &parts.headers,
                        body,
                    },
                )
            } else {
                faults::handle(&svc, &parts.method, &segments, &query)
            }
        }
        _ => error_response(StatusCode::NOT_FOUND, "NotFound", "Unknown path."),
    }
}
