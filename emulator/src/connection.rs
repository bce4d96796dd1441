//! The client endpoint: WebSocket handshake (authentication, subprotocol, recovery) and one
//! task per WebSocket that reads client frames and drains the connection's outbound queue.

use crate::auth;
use crate::hub::Hub;
use crate::protobuf;
use crate::protocol::{self, Origin, Payload, ProtocolError, Upstream as Msg, MAX_MESSAGE_BYTES};
use crate::rest::error_response;
use crate::roles::{Permission, Permissions};
use crate::service::Service;
use crate::session::{random_id, Control, Delivery, Kind, Outbound, Session, SimpleMode};
use crate::upstream::EventSource;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::Response;
use futures_util::SinkExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Per-connection read buffer (grows for large messages); small keeps idle connections cheap.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes buffered by the WebSocket writer before it writes to the socket (flushes still write
/// immediately).
const WRITE_BUFFER: usize = 32 * 1024;
/// Frames written per flush at most.
const WRITE_BATCH: usize = 256;
/// How long to wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// WebSocket message limit of the transport; larger client messages up to this size get a
/// clean 1009 close.
const TRANSPORT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

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
pub async fn handle(svc: Arc<Service>, path_hub: Option<String>, req: Request<Body>) -> Response {
    let (mut parts, _body) = req.into_parts();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
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
        .max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE);
    let chosen = match choose_subprotocol(&requested) {
        Ok(c) => c,
        Err(msg) => return bad_request(msg),
    };
    let hub = svc.hubs.hub(&hub_name);

    // Recovery is authenticated by the reconnection token alone, before any token check.
    if let (Some(cid), Some(token)) = (q("awps_connection_id"), q("awps_reconnection_token")) {
        let session = hub.get(&cid).filter(|s| {
            s.reconnection_token.as_deref() == Some(token.as_str())
                && !s.is_ended()
                && matches!(chosen, Chosen::Pubsub(ref k, _) if *k == s.kind)
        });
        if let Chosen::Pubsub(_, name) = &chosen {
            upgrade.set_selected_protocol(HeaderValue::from_static(name));
        }
        return match session {
            Some(s) => {
                log::info!("hub {}: connection {} recovering", hub.name, s.id);
                upgrade.on_upgrade(move |ws| recovered(svc, hub, s, ws))
            }
            None => {
                log::info!("hub {}: recovery of {cid} refused", hub.name);
                upgrade.on_upgrade(|ws| reject(ws, 1008, "The connection cannot be recovered."))
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

    let id = random_id(16);
    let mut connection_state = None;
    if let Some(up) = &svc.upstream {
        let src = EventSource {
            hub: &hub.name,
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
        match up
            .connect(&src, &claims, &forwarded, &headers, &requested)
            .await
        {
            Err(e) => {
                log::warn!("connect handler failed: {e}");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    &e,
                );
            }
            Ok(r) if !(200..300).contains(&r.status) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED);
                let msg = String::from_utf8_lossy(&r.body).into_owned();
                return error_response(status, "ConnectRejected", &msg);
            }
            Ok(r) => {
                connection_state = r.connection_state.clone();
                if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice(&r.body) {
                    if let Some(u) = o.get("userId").and_then(|v| v.as_str()) {
                        user_id = Some(u.to_string()).filter(|u| !u.is_empty());
                    }
                    if let Some(serde_json::Value::Array(a)) = o.get("roles") {
                        roles = a
                            .iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect();
                    }
                    if let Some(serde_json::Value::Array(a)) = o.get("groups") {
                        groups.extend(a.iter().filter_map(|v| v.as_str().map(String::from)));
                        groups.retain(|g| protocol::valid_group_name(g));
                    }
                    if let Some(p) = o.get("subprotocol").and_then(|v| v.as_str()) {
                        if requested.iter().any(|r| r == p) {
                            subprotocol = Some(p.to_string());
                        }
                    }
                }
            }
        }
    }
    let kind = subprotocol
        .as_deref()
        .and_then(Kind::from_subprotocol)
        .unwrap_or(kind);
    if let Some(p) = &subprotocol {
        match HeaderValue::from_str(p) {
            Ok(v) => upgrade.set_selected_protocol(v),
            Err(_) => return bad_request("Invalid subprotocol."),
        }
    }
    let session = Arc::new(Session::new(
        id,
        &hub.name,
        user_id,
        kind,
        subprotocol,
        Permissions::from_roles(&roles),
    ));
    *session
        .connection_state
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = connection_state;
    upgrade.on_upgrade(move |ws| opened(svc, hub, session, groups, ws))
}

async fn opened(
    svc: Arc<Service>,
    hub: Arc<Hub>,
    s: Arc<Session>,
    groups: Vec<String>,
    ws: WebSocket,
) {
    let (tx, rx) = unbounded_channel();
    let Some(generation) = s.attach(tx) else {
        return;
    };
    hub.insert(&s);
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
    run(svc, hub, s, ws, rx, generation).await;
}

async fn recovered(svc: Arc<Service>, hub: Arc<Hub>, s: Arc<Session>, ws: WebSocket) {
    let (tx, rx) = unbounded_channel();
    match s.attach(tx) {
        Some(generation) => run(svc, hub, s, ws, rx, generation).await,
        None => reject(ws, 1008, "The connection cannot be recovered.").await,
    }
}

async fn reject(mut ws: WebSocket, code: u16, reason: &str) {
    if send_close(&mut ws, code, reason).await.is_ok() {
        await_close(&mut ws).await;
    }
}

fn close_reason(reason: &str) -> Utf8Bytes {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(&reason[..end])
}

async fn send_close(ws: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    ws.send(Message::Close(Some(CloseFrame {
        code,
        reason: close_reason(reason),
    })))
    .await
}

/// Waits (bounded) for the peer's close frame so ours is not lost to a reset.
async fn await_close(ws: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(m)) = ws.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How a transport ended.
enum Exit {
    /// Dropped, cut, or closed in a way that leaves a reliable session recoverable.
    Gone,
    /// The client closed with this code.
    ClientClosed(u16),
    /// A protocol violation; the session is over.
    Violation(String),
}

enum Flow {
    Continue,
    Close(u16, String),
    ClientClosed(u16),
}

async fn run(
    svc: Arc<Service>,
    hub: Arc<Hub>,
    s: Arc<Session>,
    mut ws: WebSocket,
    mut rx: UnboundedReceiver<Outbound>,
    generation: u64,
) {
    let exit = loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(first) = cmd else { break Exit::Gone };
                match write_batch(&mut ws, first, &mut rx).await {
                    Written::Ok => {}
                    Written::Closed => { await_close(&mut ws).await; break Exit::Gone }
                    Written::Cut | Written::Failed => break Exit::Gone,
                }
            }
            msg = ws.recv() => {
                let flow = match msg {
                    None | Some(Err(_)) => break Exit::Gone,
                    Some(Ok(m)) => on_message(&svc, &hub, &s, m).await,
                };
                match flow {
                    Flow::Continue => {}
                    Flow::ClientClosed(code) => break Exit::ClientClosed(code),
                    Flow::Close(code, reason) => {
                        // Flush what is queued (acks etc.) before the close frame.
                        while let Ok(o) = rx.try_recv() {
                            match o {
                                Outbound::Text(t) => { let _ = ws.feed(Message::Text(t)).await; }
                                Outbound::Binary(b) => { let _ = ws.feed(Message::Binary(b)).await; }
                                _ => break,
                            }
                        }
                        match s.control(Control::Disconnected(&reason)) {
                            Some(Outbound::Text(t)) => { let _ = ws.feed(Message::Text(t)).await; }
                            Some(Outbound::Binary(b)) => { let _ = ws.feed(Message::Binary(b)).await; }
                            _ => {}
                        }
                        if send_close(&mut ws, code, &reason).await.is_ok() {
                            await_close(&mut ws).await;
                        }
                        break Exit::Violation(reason);
                    }
                }
            }
        }
    };
    drop(ws);
    s.detach(generation);
    if s.is_ended() || s.is_attached() {
        return;
    }
    match exit {
        Exit::ClientClosed(1000) => hub.end_session(&s, "Client closed the connection.", None),
        Exit::Violation(reason) => hub.end_session(&s, &reason, None),
        Exit::Gone | Exit::ClientClosed(_) if s.is_reliable() => {
            log::info!("hub {}: connection {} dropped, recoverable", hub.name, s.id);
            let g = s.generation();
            let window = svc.recovery_window;
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                if !s.is_attached() && s.generation() == g {
                    hub.end_session(&s, "Recovery window elapsed.", None);
                }
            });
        }
        Exit::Gone | Exit::ClientClosed(_) => hub.end_session(&s, "Connection closed.", None),
    }
}

enum Written {
    Ok,
    Closed,
    Cut,
    Failed,
}

async fn write_batch(
    ws: &mut WebSocket,
    first: Outbound,
    rx: &mut UnboundedReceiver<Outbound>,
) -> Written {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(cmd) = next.take() {
        let r = match cmd {
            Outbound::Text(t) => ws.feed(Message::Text(t)).await,
            Outbound::Binary(b) => ws.feed(Message::Binary(b)).await,
            Outbound::Close(code, reason) => {
                let _ = ws.flush().await;
                return match send_close(ws, code, &reason).await {
                    Ok(()) => Written::Closed,
                    Err(_) => Written::Failed,
                };
            }
            Outbound::Cut => return Written::Cut,
        };
        if r.is_err() {
            return Written::Failed;
        }
        written += 1;
        if written < WRITE_BATCH {
            next = rx.try_recv().ok();
        }
    }
    match ws.flush().await {
        Ok(()) => Written::Ok,
        Err(_) => Written::Failed,
    }
}

async fn on_message(svc: &Service, hub: &Arc<Hub>, s: &Arc<Session>, m: Message) -> Flow {
    match m {
        Message::Text(t) => {
            if t.len() > MAX_MESSAGE_BYTES {
                return Flow::Close(1009, "Message too large.".into());
            }
            if s.is_simple() {
                return on_simple(svc, hub, s, Payload::Text(t.as_str().to_string())).await;
            }
            if s.is_protobuf() {
                return Flow::Close(1003, "Text frames are not valid on protobuf.".into());
            }
            on_parsed(svc, hub, s, protocol::parse_upstream(t.as_str())).await
        }
        Message::Binary(b) => {
            if b.len() > MAX_MESSAGE_BYTES {
                return Flow::Close(1009, "Message too large.".into());
            }
            if s.is_simple() {
                return on_simple(svc, hub, s, Payload::Binary(b)).await;
            }
            if s.is_protobuf() {
                return on_parsed(svc, hub, s, protobuf::parse_upstream(&b)).await;
            }
            match std::str::from_utf8(&b) {
                Ok(text) => on_parsed(svc, hub, s, protocol::parse_upstream(text)).await,
                Err(_) => Flow::Close(1007, "Binary frame is not UTF-8 JSON.".into()),
            }
        }
        Message::Close(f) => Flow::ClientClosed(f.map(|f| f.code).unwrap_or(1005)),
        Message::Ping(_) | Message::Pong(_) => Flow::Continue,
    }
}

fn ack(s: &Session, ack_id: Option<u64>, result: Result<(), (&str, String)>) {
    let Some(id) = ack_id else {
        if let Err((name, msg)) = result {
            log::debug!("connection {}: {name}: {msg}", s.id);
        }
        return;
    };
    let error = match &result {
        Ok(()) => {
            s.remember_ack(id);
            None
        }
        Err((name, msg)) => Some((*name, msg.as_str())),
    };
    s.send(Control::Ack { ack_id: id, error });
}

/// Answers a reused successful ackId; true when it was a duplicate.
fn duplicate(s: &Session, ack_id: Option<u64>) -> bool {
    match ack_id {
        Some(id) if s.is_duplicate(id) => {
            let msg = format!("Message with ack-id: {id} has been processed");
            s.send(Control::Ack {
                ack_id: id,
                error: Some(("Duplicate", &msg)),
            });
            true
        }
        _ => false,
    }
}

fn check_group(s: &Session, perm: Permission, group: &str) -> Result<(), (&'static str, String)> {
    if !protocol::valid_group_name(group) {
        return Err(("BadRequest", format!("Invalid group name '{group}'.")));
    }
    if !s.permissions().allows(perm, group) {
        let what = match perm {
            Permission::JoinLeaveGroup => "join or leave",
            Permission::SendToGroup => "send messages to",
        };
        return Err((
            "Forbidden",
            format!("The connection is not authorized to {what} group '{group}'."),
        ));
    }
    Ok(())
}

async fn on_parsed(
    svc: &Service,
    hub: &Arc<Hub>,
    s: &Arc<Session>,
    parsed: Result<Msg, ProtocolError>,
) -> Flow {
    let msg = match parsed {
        Ok(m) => m,
        Err(e) => return Flow::Close(1007, format!("Invalid message: {e}")),
    };
    match msg {
        Msg::JoinGroup { ack_id, .. } | Msg::LeaveGroup { ack_id, .. } if duplicate(s, ack_id) => {}
        Msg::JoinGroup { group, ack_id } => {
            let r = check_group(s, Permission::JoinLeaveGroup, &group);
            if r.is_ok() {
                hub.join(s, &group);
            }
            ack(s, ack_id, r);
        }
        Msg::LeaveGroup { group, ack_id } => {
            let r = check_group(s, Permission::JoinLeaveGroup, &group);
            if r.is_ok() {
                hub.leave(s, &group);
            }
            ack(s, ack_id, r);
        }
        Msg::SendToGroup { ack_id, .. } if duplicate(s, ack_id) => {}
        Msg::SendToGroup {
            group,
            data,
            no_echo,
            ack_id,
        } => {
            let r = check_group(s, Permission::SendToGroup, &group);
            if r.is_ok() {
                let d = Delivery::new(
                    &Origin::Group {
                        group: &group,
                        from_user_id: s.user_id.as_deref(),
                    },
                    &data,
                );
                let me = s.id.as_str();
                hub.publish_group(&group, &d, &|t: &Session| !(no_echo && t.id == me));
            }
            ack(s, ack_id, r);
        }
        Msg::Event { ack_id, .. } if duplicate(s, ack_id) => {}
        Msg::Event {
            event,
            data,
            ack_id,
        } => {
            if !protocol::valid_event_name(&event) {
                ack(
                    s,
                    ack_id,
                    Err(("BadRequest", format!("Invalid event name '{event}'."))),
                );
                return Flow::Continue;
            }
            let r = match &svc.upstream {
                None => Ok(()),
                Some(up) => match up.user_event(s, &event, &data).await {
                    Ok(Some(reply)) => {
                        hub.publish_connection(s, &Delivery::new(&Origin::Server, &reply));
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(("InternalServerError", e)),
                },
            };
            ack(s, ack_id, r);
        }
        Msg::SequenceAck { sequence_id } => s.sequence_ack(sequence_id),
        Msg::Ping => s.send(Control::Pong),
        Msg::Invoke {
            invocation_id,
            event,
            data,
        } => {
            let frame = match &svc.upstream {
                None => protocol::encode_invoke_response(
                    &invocation_id,
                    Err(("InternalServerError", "No event handler is configured.")),
                ),
                Some(up) => {
                    let data = data.unwrap_or(Payload::Text(String::new()));
                    match up.user_event(s, &event, &data).await {
                        Ok(reply) => {
                            protocol::encode_invoke_response(&invocation_id, Ok(reply.as_ref()))
                        }
                        Err(e) => protocol::encode_invoke_response(
                            &invocation_id,
                            Err(("InternalServerError", &e)),
                        ),
                    }
                }
            };
            s.send_control(Outbound::Text(Utf8Bytes::from(frame)));
        }
        Msg::CancelInvocation { .. } => {}
    }
    Flow::Continue
}

async fn on_simple(svc: &Service, hub: &Arc<Hub>, s: &Arc<Session>, data: Payload) -> Flow {
    let Kind::Simple(mode) = &s.kind else {
        return Flow::Continue;
    };
    match mode {
        SimpleMode::SendEvent => match &svc.upstream {
            None => Flow::Close(1011, "No event handler is configured.".into()),
            Some(up) => match up.user_event(s, "message", &data).await {
                Ok(Some(reply)) => {
                    s.send_control(match reply {
                        Payload::Text(t) | Payload::Json(t) => Outbound::Text(Utf8Bytes::from(t)),
                        Payload::Binary(b) | Payload::Protobuf(b) => Outbound::Binary(b),
                    });
                    Flow::Continue
                }
                Ok(None) => Flow::Continue,
                Err(e) => Flow::Close(1011, e),
            },
        },
        SimpleMode::SendToGroup { group, no_echo } => {
            if check_group(s, Permission::SendToGroup, group).is_ok() {
                let d = Delivery::new(
                    &Origin::Group {
                        group,
                        from_user_id: s.user_id.as_deref(),
                    },
                    &data,
                );
                let me = s.id.as_str();
                let no_echo = *no_echo;
                hub.publish_group(group, &d, &|t: &Session| !(no_echo && t.id == me));
            } else {
                log::debug!(
                    "connection {}: not allowed to send to group '{group}'",
                    s.id
                );
            }
            Flow::Continue
        }
    }
}
