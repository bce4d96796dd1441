//! Routes every request by path: client endpoint, REST data plane, fault injection.

use crate::auth::percent_decode;
use crate::connection;
use crate::faults;
use crate::rest::{self, error_response, RestRequest};
use crate::service::Service;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{Request, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use std::sync::Arc;

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

pub fn router(svc: Arc<Service>) -> Router {
    Router::new().fallback(dispatch).with_state(svc)
}

async fn dispatch(State(svc): State<Arc<Service>>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let first = segments.first().map(|s| s.to_ascii_lowercase());
    match first.as_deref() {
        Some("client") => {
            let hub = match segments.as_slice() {
                [_, h, hub] if h.eq_ignore_ascii_case("hubs") => Some(hub.clone()),
                [_] => None,
                _ => return error_response(StatusCode::NOT_FOUND, "NotFound", "Unknown path."),
            };
            connection::handle(svc, hub, req).await
        }
        Some("api") | Some("_emulator") => {
            let query = query_pairs(req.uri());
            let (parts, body) = req.into_parts();
            let body = match to_bytes(body, MAX_BODY).await {
                Ok(b) => b,
                Err(_) => {
                    return error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PayloadTooLarge",
                        "Request body too large.",
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
                let auth = parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                faults::handle(&svc, &parts.method, &segments, &query, auth, &path)
            }
        }
        _ => error_response(StatusCode::NOT_FOUND, "NotFound", "Unknown path."),
    }
}
