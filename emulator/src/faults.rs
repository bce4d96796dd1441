//! Fault injection: inspect connections, cut transports, close with a chosen code, forget
//! sessions, stall or delay a transport, restart the whole service. Used by tests through the
//! HTTP API (`/_emulator/...`) or the in-process API.

use crate::hub::Hub;
use crate::rest::error_response;
use crate::service::Service;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The longest stall, delay or downtime the fault API accepts: a fault outlasting the tests
/// that inject it would only hold connections and memory.
pub const MAX_FAULT_DURATION: Duration = Duration::from_secs(600);

/// What the emulator knows about one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub connection_id: String,
    /// `None` for anonymous connections.
    pub user_id: Option<String>,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// The negotiated subprotocol; `None` for a simple client that offered none.
    pub subprotocol: Option<String>,
}

/// Connections of a hub (live or recoverable).
pub fn connections(svc: &Service, hub: &str) -> Vec<ConnectionInfo> {
    let Some(h) = svc.hubs.find(hub) else {
        return Vec::new();
    };
    h.sessions()
        .into_iter()
        .map(|s| ConnectionInfo {
            connection_id: s.id.clone(),
            user_id: s.user_id.clone(),
            groups: s.group_list(),
            subprotocol: s.subprotocol.clone(),
        })
        .collect()
}

fn find(svc: &Service, hub: &str, id: &str) -> Option<(Arc<Hub>, Arc<crate::session::Session>)> {
    let h = svc.hubs.find(hub)?;
    let s = h.get(id)?;
    Some((h, s))
}

/// Cuts the TCP connection without a close frame; the session stays recoverable (reliable).
pub fn drop_connection(svc: &Service, hub: &str, id: &str) -> bool {
    let Some((_, s)) = find(svc, hub, id) else {
        return false;
    };
    s.cut_transport();
    true
}

/// Whether `code` may be sent in a close frame. 1005, 1006 and 1015 only report what happened
/// locally and must never be sent (RFC 6455 §7.4.1); 1004, 1014 and 1016-2999 have no meaning
/// WebSocket libraries accept (they treat them as a protocol error).
pub fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// Sends the `disconnected` system frame (PubSub clients), then a close frame with `code`.
/// Codes 1000 and 1008, and non-reliable connections, end the session; other codes leave a
/// reliable session recoverable. False when the connection is unknown or `code` may not be
/// sent ([`sendable_close_code`]).
pub fn close_connection(svc: &Service, hub: &str, id: &str, code: u16, reason: &str) -> bool {
    if !sendable_close_code(code) {
        return false;
    }
    let Some((h, s)) = find(svc, hub, id) else {
        return false;
    };
    s.send(crate::session::Control::Disconnected(reason));
    if code == 1000 || code == 1008 || !s.is_reliable() {
        h.end_session(
            &s,
            reason,
            Some(crate::session::Outbound::Close(code, reason.into())),
        );
    } else {
        s.close_transport(code, reason);
    }
    true
}

/// Forgets the session and cuts its transport; the next recovery attempt gets 1008.
pub fn expire_connection(svc: &Service, hub: &str, id: &str) -> bool {
    let Some((h, s)) = find(svc, hub, id) else {
        return false;
    };
    h.end_session(&s, "Session expired.", Some(crate::session::Outbound::Cut));
    true
}

/// Stops reading from and writing to the connection's socket for `d` (1 ms to
/// [`MAX_FAULT_DURATION`]; an ongoing longer stall is kept). Frames to send are held in order.
/// False when the connection is unknown or `d` is out of range; a known connection between
/// two transports is left as it is.
pub fn stall_connection(svc: &Service, hub: &str, id: &str, d: Duration) -> bool {
    if d < Duration::from_millis(1) || d > MAX_FAULT_DURATION {
        return false;
    }
    let Some((_, s)) = find(svc, hub, id) else {
        return false;
    };
    s.with_link(|l| l.stall(d));
    true
}

/// Adds `d` (up to [`MAX_FAULT_DURATION`]; zero: none) to every frame sent from now on to the
/// connection's current transport; a recovered connection starts without it. False when the
/// connection is unknown or `d` is out of range.
pub fn delay_connection(svc: &Service, hub: &str, id: &str, d: Duration) -> bool {
    if d > MAX_FAULT_DURATION {
        return false;
    }
    let Some((_, s)) = find(svc, hub, id) else {
        return false;
    };
    s.with_link(|l| l.set_delay(d));
    true
}

/// Like a crash and restart of the service: every connection is cut without a close frame and
/// every session forgotten (groups, ack ids, replay buffers), so recoveries get 1008. For
/// `down` (up to [`MAX_FAULT_DURATION`]) after it, client and REST requests get 503. False
/// (and nothing done) when `down` is out of range.
pub fn restart(svc: &Service, down: Duration) -> bool {
    if down > MAX_FAULT_DURATION {
        return false;
    }
    // Before the cuts, so that clients reconnecting at once already see the service down.
    svc.down.set(down);
    let lost = end_all(svc, "Service restarted.");
    log::info!("restart: {lost} connections lost");
    true
}

/// Ends every session, cutting its transport without a close frame; returns how many.
pub fn end_all(svc: &Service, reason: &str) -> usize {
    // Every session first, then the cuts: connections opened by clients reconnecting while
    // this runs are not ended.
    let sessions: Vec<_> = svc
        .hubs
        .all()
        .into_iter()
        .flat_map(|h| h.sessions().into_iter().map(move |s| (h.clone(), s)))
        .collect();
    for (h, s) in &sessions {
        h.end_session(s, reason, Some(crate::session::Outbound::Cut));
    }
    sessions.len()
}

/// The `ms` query parameter of `:stall`, `:delay` and `:restart` (`downMs`), within `range`.
fn millis(value: Option<&str>, range: std::ops::RangeInclusive<u64>) -> Option<Duration> {
    let ms: u64 = value?.parse().ok()?;
    range.contains(&ms).then(|| Duration::from_millis(ms))
}

fn bad_millis(name: &str, min: u64) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!(
            "'{name}' must be a whole number of milliseconds from {min} to {}.",
            MAX_FAULT_DURATION.as_millis()
        ),
    )
}

/// `/_emulator/hubs/{hub}/connections[/{id}/:action]` and `/_emulator/:restart` (already
/// authorized).
pub fn handle(
    svc: &Service,
    method: &Method,
    segments: &[String],
    query: &[(String, String)],
) -> Response {
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let q = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let not_found = || error_response(StatusCode::NOT_FOUND, "NotFound", "Connection not found.");
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["_emulator", "hubs", hub, "connections"]) => {
            let list: Vec<serde_json::Value> = connections(svc, hub)
                .into_iter()
                .map(|c| {
                    serde_json::json!({
                        "connectionId": c.connection_id,
                        "userId": c.user_id,
                        "groups": c.groups,
                        "subprotocol": c.subprotocol,
                    })
                })
                .collect();
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                serde_json::Value::Array(list).to_string(),
            )
                .into_response()
        }
        ("POST", ["_emulator", "hubs", hub, "connections", id, ":drop"]) => {
            if drop_connection(svc, hub, id) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                not_found()
            }
        }
        ("POST", ["_emulator", "hubs", hub, "connections", id, ":close"]) => {
            let code =
                match q("code").map(str::parse::<u16>) {
                    None => 1000,
                    Some(Ok(c)) if sendable_close_code(c) => c,
                    Some(_) => return error_response(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "Invalid close code: use 1000-1003, 1007-1013 or 3000-4999 (1005, 1006 \
                         and 1015 are never sent on the wire).",
                    ),
                };
            if close_connection(svc, hub, id, code, q("reason").unwrap_or("")) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                not_found()
            }
        }
        ("POST", ["_emulator", "hubs", hub, "connections", id, ":expire"]) => {
            if expire_connection(svc, hub, id) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                not_found()
            }
        }
        ("POST", ["_emulator", "hubs", hub, "connections", id, op @ (":stall" | ":delay")]) => {
            let stall = *op == ":stall";
            let min = u64::from(stall);
            let max = MAX_FAULT_DURATION.as_millis() as u64;
            let Some(d) = millis(q("ms"), min..=max) else {
                return bad_millis("ms", min);
            };
            let known = if stall {
                stall_connection(svc, hub, id, d)
            } else {
                delay_connection(svc, hub, id, d)
            };
            if known {
                StatusCode::NO_CONTENT.into_response()
            } else {
                not_found()
            }
        }
        ("POST", ["_emulator", ":restart"]) => {
            let max = MAX_FAULT_DURATION.as_millis() as u64;
            let down = match q("downMs") {
                None => Duration::ZERO,
                v @ Some(_) => match millis(v, 0..=max) {
                    Some(d) => d,
                    None => return bad_millis("downMs", 0),
                },
            };
            restart(svc, down);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Unknown emulator operation.",
        ),
    }
}
