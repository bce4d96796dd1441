//! The client endpoint: WebSocket handshake (authentication, subprotocol selection, upstream
//! `connect`, recovery) and hand-over of the upgraded socket to its transport task.

use crate::auth;
use crate::hub::Hub;
use crate::protobuf;
use crate::protocol::{self, MAX_MESSAGE_BYTES};
use crate::rest::error_response;
use crate::roles::Permissions;
use crate::router::query_pairs;
use crate::server::Handshake;
use crate::service::Service;
use crate::session::{random_id, Kind, Link, Session, SimpleMode};
use crate::transport::{reject, run};
use crate::upstream::{EventSource, Upstream};
use axum::body::Body;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::mpsc::unbounded_channel;

/// Per-connection read buffer (grows for large messages); small keeps idle connections cheap.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes buffered by the WebSocket writer before it writes to the socket (flushes still write
/// immediately).
const WRITE_BUFFER: usize = 32 * 1024;

/// Hub names accepted by the service.
pub fn valid_hub_name(hub: &str) -> bool {
    let mut chars = hub.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && hub.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "_`,.[]".contains(c))
}

enum Chosen {
    Pubsub(Kind, &'static str),
    Simple(Option<String>),
}

fn choose_subprotocol(requested: &[String]) -> Result<Chosen, &'static str> {
    if requested.iter().any(|p| p == protocol::JSON_RELIABLE_V1) {
        return Ok(Chosen::Pubsub(
            Kind::JsonReliable,
            protocol::JSON_RELIABLE_V1,
        ));
    }
    if requested.iter().any(|p| p == protocol::JSON_V1) {
        return Ok(Chosen::Pubsub(Kind::Json, protocol::JSON_V1));
    }
    if requested
        .iter()
        .any(|p| p == protobuf::PROTOBUF_RELIABLE_V1)
    {
        return Ok(Chosen::Pubsub(
            Kind::ProtobufReliable,
            protobuf::PROTOBUF_RELIABLE_V1,
        ));
    }
    if requested.iter().any(|p| p == protobuf::PROTOBUF_V1) {
        return Ok(Chosen::Pubsub(Kind::Protobuf, protobuf::PROTOBUF_V1));
    }
    if !requested.is_empty() && requested.iter().all(|p| p.contains(".webpubsub.azure.")) {
        return Err("Unsupported Web PubSub subprotocol.");
    }
    Ok(Chosen::Simple(requested.first().cloned()))
}

fn bad_request(msg: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

/// Handles `GET /client/hubs/{hub}` and `GET /client/?hub={hub}`.
pub async fn handle(
    svc: Arc<Service>,
    path_hub: Option<String>,
    req: Request<Body>,
    handshake: Handshake,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    let query = query_pairs(&parts.uri);
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let hub_name = match path_hub.or_else(|| q("hub")) {
        Some(h) if !h.is_empty() => h,
        _ => return bad_request("The hub is missing."),
    };
    if !valid_hub_name(&hub_name) {
        return bad_request("Invalid hub name.");
    }
    let requested: Vec<String> = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|s| s.trim().to_string());
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(_) => return bad_request("Expected a WebSocket upgrade request."),
    };
    let mut upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Refused (1009) as soon as a frame header or the assembled message exceeds the limit,
        // before the payload is read.
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES);
    let chosen = match choose_subprotocol(&requested) {
        Ok(c) => c,
        Err(msg) => return bad_request(msg),
    };

    // Recovery is authenticated by the reconnection token alone, before any token check. It
    // looks the session up without creating anything: no state before authentication.
    if let (Some(cid), Some(token)) = (q("awps_connection_id"), q("awps_reconnection_token")) {
        let found = svc.hubs.find(&hub_name).and_then(|hub| {
            let s = hub.get(&cid).filter(|s| {
                s.reconnection_token.as_deref() == Some(token.as_str())
                    && !s.is_ended()
                    && matches!(chosen, Chosen::Pubsub(ref k, _) if *k == s.kind)
            })?;
            Some((hub, s))
        });
        if let Chosen::Pubsub(_, name) = &chosen {
            upgrade.set_selected_protocol(HeaderValue::from_static(name));
        }
        return match found {
            Some((hub, s)) => {
                log::info!("hub {}: connection {} recovering", hub.name, s.id);
                handshake.authenticated();
                upgrade.on_upgrade(move |ws| recovered(svc, hub, s, ws))
            }
            None => {
                log::info!("hub {hub_name}: recovery of {cid} refused");
                // Still unauthenticated until its close handshake is over.
                let pending = handshake.take();
                upgrade.on_upgrade(|ws| async move {
                    reject(ws, 1008, "The connection cannot be recovered.").await;
                    drop(pending);
                })
            }
        };
    }

    let Some(token) = q("access_token").or(bearer) else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Missing access token.",
        );
    };
    let claims = match auth::verify(&svc.access_key, &token)
        .and_then(|c| auth::check_audience(&c, &format!("/client/hubs/{hub_name}")).map(|_| c))
    {
        Ok(c) => c,
        Err(e) => return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", &e.to_string()),
    };
    handshake.authenticated();
    let mut user_id = auth::user_id(&claims);
    let mut roles = auth::roles(&claims);
    let mut groups = auth::string_list(&claims, "webpubsub.group");
    if let Some(g) = groups.iter().find(|g| !protocol::valid_group_name(g)) {
        return bad_request(&format!("Invalid group name '{g}' in token."));
    }
    let (kind, mut subprotocol) = match chosen {
        Chosen::Pubsub(k, name) => (k, Some(name.to_string())),
        Chosen::Simple(p) => {
            let mode = q("webpubsub_mode").unwrap_or_default().to_ascii_lowercase();
            let mode = match mode.as_str() {
                "" | "sendevent" => SimpleMode::SendEvent,
                "sendtogroup" => match q("group") {
                    Some(g) if protocol::valid_group_name(&g) => SimpleMode::SendToGroup {
                        group: g,
                        no_echo: q("noEcho").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                    },
                    _ => return bad_request("webpubsub_mode=sendToGroup needs a valid 'group'."),
                },
                _ => return bad_request("Unknown webpubsub_mode."),
            };
            (Kind::Simple(mode), p)
        }
    };

    let hub_name = svc.hubs.display_name(&hub_name);
    let id = random_id(16);
    let mut connection_state = None;
    if let Some(up) = &svc.upstream {
        let src = EventSource {
            hub: &hub_name,
            connection_id: &id,
            user_id: user_id.as_deref(),
            subprotocol: subprotocol.as_deref(),
            connection_state: None,
        };
        let forwarded: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "access_token")
            .cloned()
            .collect();
        let answer = match connect_event(up, &src, &claims, &forwarded, &headers, &requested).await
        {
            Ok(a) => a,
            Err(response) => return response,
        };
        if let Some(u) = answer.user_id {
            user_id = u;
        }
        if let Some(r) = answer.roles {
            roles = r;
        }
        groups.extend(answer.groups);
        if let Some(p) = answer.subprotocol {
            subprotocol = Some(p);
        }
        connection_state = answer.connection_state;
    }
    let kind = match subprotocol.as_deref().map(Kind::from_subprotocol) {
        Some(Some(k)) => k,
        // A handler picked a non-PubSub subprotocol: a simple client.
        Some(None) if !matches!(kind, Kind::Simple(_)) => Kind::Simple(SimpleMode::SendEvent),
        _ => kind,
    };
    if let Some(p) = &subprotocol {
        match HeaderValue::from_str(p) {
            Ok(v) => upgrade.set_selected_protocol(v),
            Err(_) => return bad_request("Invalid subprotocol."),
        }
    }
    let session = Arc::new(Session::new(
        id,
        &hub_name,
        user_id,
        kind,
        subprotocol,
        Permissions::from_roles(&roles),
    ));
    *session
        .connection_state
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = connection_state;
    upgrade.on_upgrade(move |ws| opened(svc, session, groups, ws))
}

/// What a `connect` handler's 2xx answer changes.
#[derive(Default)]
struct ConnectAnswer {
    /// `Some(None)`: the handler cleared the user id.
    user_id: Option<Option<String>>,
    /// Replaces the token's roles.
    roles: Option<Vec<String>>,
    /// Joined in addition to the token's groups.
    groups: Vec<String>,
    /// One of the subprotocols the client offered.
    subprotocol: Option<String>,
    connection_state: Option<String>,
}

/// Runs the blocking `connect` event; `Err` is the response refusing the handshake.
async fn connect_event(
    up: &Upstream,
    src: &EventSource<'_>,
    claims: &serde_json::Map<String, serde_json::Value>,
    query: &[(String, String)],
    headers: &[(String, String)],
    requested: &[String],
) -> Result<ConnectAnswer, Response> {
    let r = match up.connect(src, claims, query, headers, requested).await {
        Ok(r) => r,
        Err(e) => {
            log::warn!("connect handler failed: {e}");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return Err(error_response(status, "InternalServerError", &e));
        }
    };
    if !(200..300).contains(&r.status) {
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED);
        let msg = String::from_utf8_lossy(&r.body).into_owned();
        return Err(error_response(status, "ConnectRejected", &msg));
    }
    let mut answer = ConnectAnswer {
        connection_state: r.connection_state.clone(),
        ..Default::default()
    };
    let Ok(serde_json::Value::Object(o)) = serde_json::from_slice(&r.body) else {
        return Ok(answer);
    };
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
    };
    if let Some(u) = o.get("userId").and_then(|v| v.as_str()) {
        answer.user_id = Some(Some(u.to_string()).filter(|u| !u.is_empty()));
    }
    answer.roles = o.get("roles").and_then(strings);
    answer.groups = o
        .get("groups")
        .and_then(strings)
        .unwrap_or_default()
        .into_iter()
        .filter(|g| protocol::valid_group_name(g))
        .collect();
    answer.subprotocol = o
        .get("subprotocol")
        .and_then(|v| v.as_str())
        .filter(|p| requested.iter().any(|r| r == p))
        .map(String::from);
    Ok(answer)
}

async fn opened(svc: Arc<Service>, s: Arc<Session>, groups: Vec<String>, ws: WebSocket) {
    let (tx, rx) = unbounded_channel();
    let link = Arc::new(Link::new(&s));
    let Some(generation) = s.attach(tx, link.clone()) else {
        return;
    };
    let hub = svc.hubs.register(&s.hub, &s);
    for g in &groups {
        hub.join(&s, g);
    }
    log::info!(
        "hub {}: connection {} opened (user {:?}, {:?})",
        hub.name,
        s.id,
        s.user_id,
        s.subprotocol
    );
    if let Some(up) = &svc.upstream {
        up.connected(s.clone());
    }
    run(svc, hub, s, ws, rx, link, generation).await;
}

async fn recovered(svc: Arc<Service>, hub: Arc<Hub>, s: Arc<Session>, ws: WebSocket) {
    let (tx, rx) = unbounded_channel();
    let link = Arc::new(Link::new(&s));
    match s.attach(tx, link.clone()) {
        Some(generation) => run(svc, hub, s, ws, rx, link, generation).await,
        None => reject(ws, 1008, "The connection cannot be recovered.").await,
    }
}
