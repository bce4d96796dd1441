//! The data-plane REST API used by server SDKs (`/api/...`).
// Handlers return ready-made error responses; their size does not matter on this path.
#![allow(clippy::result_large_err)]

use crate::auth;
use crate::filter::Filter;
use crate::hub::Hub;
use crate::protocol::{self, Origin, Payload};
use crate::roles::Permission;
use crate::service::Service;
use crate::session::{Delivery, Session};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// JSON error body `{code, message}` with `x-ms-error-code`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-ms-error-code", code),
        ],
        body,
    )
        .into_response()
}

/// Checks the bearer token: HS256 with the access key, `aud` path equal to the request path.
pub fn authorize(svc: &Service, authorization: Option<&str>, path: &str) -> Result<(), Response> {
    let unauthorized = |m: &str| Err(error_response(StatusCode::UNAUTHORIZED, "Unauthorized", m));
    let Some(token) = authorization.and_then(|h| {
        let h = h.trim();
        h.get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map(|_| &h[7..])
    }) else {
        return unauthorized("Missing bearer token.");
    };
    match auth::verify(&svc.access_key, token).and_then(|c| auth::check_audience(&c, path)) {
        Ok(()) => Ok(()),
        Err(e) => unauthorized(&e.to_string()),
    }
}

/// A parsed REST request.
pub struct RestRequest<'a> {
    pub method: &'a Method,
    /// Raw request path.
    pub path: &'a str,
    /// Percent-decoded, non-empty path segments.
    pub segments: &'a [String],
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

impl RestRequest<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn status(s: StatusCode) -> Response {
    s.into_response()
}

fn bad(msg: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

fn not_found(msg: &str) -> Response {
    error_response(StatusCode::NOT_FOUND, "NotFound", msg)
}

fn exists(b: bool) -> Response {
    status(if b {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

/// A connection selector built from `excluded` and `filter`.
struct Selector {
    excluded: Vec<String>,
    filter: Option<Filter>,
}

impl Selector {
    fn from(req: &RestRequest<'_>) -> Result<Selector, Response> {
        let filter = match req.q("filter").filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(Filter::parse(f).map_err(|e| bad(&format!("Invalid filter: {e}")))?),
            None => None,
        };
        Ok(Selector {
            excluded: req.all("excluded"),
            filter,
        })
    }

    fn keep(&self, s: &Session) -> bool {
        !self.excluded.contains(&s.id) && self.filter.as_ref().map_or(true, |f| f.matches(s))
    }
}

fn payload(req: &RestRequest<'_>) -> Result<Payload, Response> {
    let ct = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    Payload::from_http(ct, req.body.clone()).map_err(|e| bad(&e))
}

fn group_ok(g: &str) -> Result<(), Response> {
    if protocol::valid_group_name(g) {
        Ok(())
    } else {
        Err(bad(&format!("Invalid group name '{g}'.")))
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// Handles `/api/...` (already authorized, except for the health check).
pub fn handle(svc: &Service, req: RestRequest<'_>) -> Response {
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    if let ["api", "health"] = seg.as_slice() {
        return status(StatusCode::OK);
    }
    let ["api", "hubs", hub_name, rest @ ..] = seg.as_slice() else {
        return not_found("Unknown operation.");
    };
    if !crate::connection::valid_hub_name(hub_name) {
        return bad("Invalid hub name.");
    }
    // REST calls never create a hub: an unknown one behaves as an empty one.
    let hub = svc.hubs.find_or_empty(hub_name);
    let close_reason = || req.q("reason").unwrap_or("").to_string();
    match (m, rest) {
        ("POST", [":send"]) => {
            let sel = tri!(Selector::from(&req));
            let d = Delivery::new(&Origin::Server, tri!(payload(&req)));
            hub.publish_all(&d, &|s| sel.keep(s));
            status(StatusCode::ACCEPTED)
        }
        ("POST", ["connections", id, ":send"]) => {
            let d = Delivery::new(&Origin::Server, tri!(payload(&req)));
            if let Some(s) = hub.get(id) {
                hub.publish_connection(&s, &d);
            }
            status(StatusCode::ACCEPTED)
        }
        ("POST", ["users", user, ":send"]) => {
            let sel = tri!(Selector::from(&req));
            let d = Delivery::new(&Origin::Server, tri!(payload(&req)));
            hub.publish_user(user, &d, &|s| sel.keep(s));
            status(StatusCode::ACCEPTED)
        }
        ("POST", ["groups", group, ":send"]) => {
            tri!(group_ok(group));
            let sel = tri!(Selector::from(&req));
            let d = Delivery::new(
                &Origin::Group {
                    group,
                    from_user_id: None,
                },
                tri!(payload(&req)),
            );
            hub.publish_group(group, &d, &|s| sel.keep(s));
            status(StatusCode::ACCEPTED)
        }
        ("DELETE", ["connections", id]) => {
            if let Some(s) = hub.get(id) {
                hub.close_session(&s, &close_reason());
            }
            status(StatusCode::NO_CONTENT)
        }
        ("POST", [":closeConnections"]) => {
            close_all(&hub, hub.sessions(), &req.all("excluded"), &close_reason());
            status(StatusCode::NO_CONTENT)
        }
        ("POST", ["groups", group, ":closeConnections"]) => {
            tri!(group_ok(group));
            close_all(
                &hub,
                hub.group_sessions(group),
                &req.all("excluded"),
                &close_reason(),
            );
            status(StatusCode::NO_CONTENT)
        }
        ("POST", ["users", user, ":closeConnections"]) => {
            close_all(
                &hub,
                hub.user_sessions(user),
                &req.all("excluded"),
                &close_reason(),
            );
            status(StatusCode::NO_CONTENT)
        }
        ("HEAD", ["connections", id]) => exists(hub.get(id).is_some()),
        ("HEAD", ["groups", group]) => exists(hub.group_exists(group)),
        ("HEAD", ["users", user]) => exists(hub.user_exists(user)),
        ("PUT", ["groups", group, "connections", id]) => {
            tri!(group_ok(group));
            match hub.get(id) {
                Some(s) => {
                    hub.join(&s, group);
                    status(StatusCode::OK)
                }
                None => not_found(&format!("Connection '{id}' not found.")),
            }
        }
        ("DELETE", ["groups", group, "connections", id]) => {
            tri!(group_ok(group));
            if let Some(s) = hub.get(id) {
                hub.leave(&s, group);
            }
            status(StatusCode::NO_CONTENT)
        }
        ("DELETE", ["connections", id, "groups"]) => {
            if let Some(s) = hub.get(id) {
                hub.leave_all(&s);
            }
            status(StatusCode::NO_CONTENT)
        }
        ("PUT", ["users", user, "groups", group]) => {
            tri!(group_ok(group));
            for s in hub.user_sessions(user) {
                hub.join(&s, group);
            }
            status(StatusCode::OK)
        }
        ("DELETE", ["users", user, "groups", group]) => {
            tri!(group_ok(group));
            for s in hub.user_sessions(user) {
                hub.leave(&s, group);
            }
            status(StatusCode::NO_CONTENT)
        }
        ("DELETE", ["users", user, "groups"]) => {
            for s in hub.user_sessions(user) {
                hub.leave_all(&s);
            }
            status(StatusCode::NO_CONTENT)
        }
        ("POST", [op @ (":addToGroups" | ":removeFromGroups")]) => {
            groups_by_filter(&hub, &req.body, *op == ":addToGroups")
        }
        ("GET", ["groups", group, "connections"]) => list_group(svc, &hub, group, &req),
        (method @ ("PUT" | "DELETE" | "HEAD"), ["permissions", perm, "connections", id]) => {
            let Some(perm) = Permission::parse(perm) else {
                return bad(&format!("Unknown permission '{perm}'."));
            };
            let target = req.q("targetName").filter(|t| !t.is_empty());
            if let Some(t) = target {
                tri!(group_ok(t));
            }
            let Some(s) = hub.get(id) else {
                return not_found(&format!("Connection '{id}' not found."));
            };
            match method {
                "PUT" => {
                    s.update_permissions(|p| p.grant(perm, target));
                    status(StatusCode::OK)
                }
                "DELETE" => {
                    s.update_permissions(|p| p.revoke(perm, target));
                    status(StatusCode::NO_CONTENT)
                }
                _ => exists(s.permissions().check(perm, target)),
            }
        }
        ("POST", [":generateToken"]) => {
            let minutes = match req.q("minutesToExpire").map(str::parse::<u64>) {
                None => 60,
                Some(Ok(m)) if m >= 1 => m,
                Some(_) => return bad("minutesToExpire must be a positive integer."),
            };
            let Some(ttl) = minutes
                .checked_mul(60)
                .filter(|s| auth::expiry(*s).is_some())
            else {
                return bad(
                    "minutesToExpire is too large: the token would expire after the year 9999.",
                );
            };
            let roles = req.all("role");
            let groups = req.all("group");
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            let token = auth::client_token(
                &svc.access_key,
                &svc.endpoint,
                &hub.name,
                req.q("userId").filter(|u| !u.is_empty()),
                &roles,
                &groups,
                Duration::from_secs(ttl),
            );
            json(StatusCode::OK, serde_json::json!({ "token": token }))
        }
        _ => not_found("Unknown operation."),
    }
}

fn json(s: StatusCode, v: serde_json::Value) -> Response {
    (s, [("content-type", "application/json")], v.to_string()).into_response()
}

fn close_all(hub: &Hub, sessions: Vec<Arc<Session>>, excluded: &[String], reason: &str) {
    for s in sessions {
        if !excluded.iter().any(|e| *e == s.id) {
            hub.close_session(&s, reason);
        }
    }
}

fn groups_by_filter(hub: &Hub, body: &Bytes, add: bool) -> Response {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(&format!("Body is not valid JSON: {e}")),
    };
    let Some(groups) = v.get("groups").and_then(|g| g.as_array()) else {
        return bad("Body needs a 'groups' array.");
    };
    let groups: Vec<String> = groups
        .iter()
        .filter_map(|g| g.as_str().map(String::from))
        .collect();
    for g in &groups {
        tri!(group_ok(g));
    }
    let filter = match v
        .get("filter")
        .and_then(|f| f.as_str())
        .filter(|f| !f.trim().is_empty())
    {
        Some(f) => Some(tri!(
            Filter::parse(f).map_err(|e| bad(&format!("Invalid filter: {e}")))
        )),
        None => None,
    };
    for s in hub.sessions() {
        if filter.as_ref().map_or(true, |f| f.matches(&s)) {
            for g in &groups {
                if add {
                    hub.join(&s, g);
                } else {
                    hub.leave(&s, g);
                }
            }
        }
    }
    status(StatusCode::OK)
}

fn list_group(svc: &Service, hub: &Hub, group: &str, req: &RestRequest<'_>) -> Response {
    let page = req
        .q("maxpagesize")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    let top = req.q("top").and_then(|v| v.parse::<usize>().ok());
    let start = req
        .q("continuationToken")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let all = hub.group_sessions(group);
    let end_all = top.map_or(all.len(), |t| t.min(all.len()));
    let end = (start + page).min(end_all);
    let value: Vec<serde_json::Value> = all
        .get(start.min(end)..end)
        .unwrap_or(&[])
        .iter()
        .map(|s| match &s.user_id {
            Some(u) => serde_json::json!({ "connectionId": s.id, "userId": u }),
            None => serde_json::json!({ "connectionId": s.id }),
        })
        .collect();
    let mut body = serde_json::json!({ "value": value });
    if end < end_all {
        let mut link = format!(
            "{}{}?continuationToken={end}&maxpagesize={page}",
            svc.endpoint, req.path
        );
        if let Some(t) = top {
            link.push_str(&format!("&top={t}"));
        }
        body["nextLink"] = serde_json::Value::String(link);
    }
    json(StatusCode::OK, body)
}
