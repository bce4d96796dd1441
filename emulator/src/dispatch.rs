//! What a client message does: acks, group operations, publishing, upstream events, simple
//! client frames.

use crate::hub::Hub;
use crate::protobuf;
use crate::protocol::{self, Origin, Payload, ProtocolError, Upstream as Msg};
use crate::roles::Permission;
use crate::service::Service;
use crate::session::{Control, Delivery, Kind, Outbound, Session, SimpleMode};
use crate::streams;
use axum::extract::ws::{Message, Utf8Bytes};
use std::sync::Arc;

/// What the transport does after a client frame.
pub enum Flow {
    Continue,
    /// Close with this code and reason (a protocol violation ends the session).
    Close(u16, String),
    /// The client sent a close frame with this code (1005 when it had none).
    ClientClosed(u16),
}

/// The close a read error calls for (the transport refused what the client sent); `None`
/// when the connection is simply gone.
pub fn on_read_error(e: &axum::Error) -> Option<Flow> {
    use tungstenite::error::{Error as WsError, ProtocolError as WsProtocol};
    let e = std::error::Error::source(e)?.downcast_ref::<WsError>()?;
    Some(match e {
        WsError::Utf8(_) => Flow::Close(1007, "Text frame is not valid UTF-8.".into()),
        WsError::Capacity(_) => Flow::Close(1009, "Message too large.".into()),
        WsError::Protocol(WsProtocol::ResetWithoutClosingHandshake) => return None,
        WsError::Protocol(p) => Flow::Close(1002, format!("WebSocket protocol error: {p}")),
        _ => return None,
    })
}

/// Handles one client frame.
pub async fn on_message(svc: &Service, hub: &Arc<Hub>, s: &Arc<Session>, m: Message) -> Flow {
    match m {
        Message::Text(t) => {
            if s.is_simple() {
                return on_simple(svc, hub, s, Payload::Text(t.as_str().to_string())).await;
            }
            if s.is_protobuf() {
                return Flow::Close(1003, "Text frames are not valid on protobuf.".into());
            }
            on_parsed(svc, hub, s, protocol::parse_upstream(t.as_str())).await
        }
        Message::Binary(b) => {
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

/// Whether `s` may use `group` for `perm`; `Err` is the ack error (`BadRequest`, `Forbidden`).
pub(crate) fn check_group(
    s: &Session,
    perm: Permission,
    group: &str,
) -> Result<(), (&'static str, String)> {
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
    parsed: Result<Msg<'_>, ProtocolError>,
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
                    data,
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
                None => Err((
                    "InternalServerError",
                    "No event handler is configured.".to_string(),
                )),
                Some(up) => match up.user_event(s, &event, &data).await {
                    Ok(Some(reply)) => {
                        hub.publish_connection(s, &Delivery::new(&Origin::Server, reply));
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
                _ if !protocol::valid_event_name(&event) => protocol::encode_invoke_response(
                    &invocation_id,
                    Err(("BadRequest", &format!("Invalid event name '{event}'."))),
                ),
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
        Msg::StreamStart {
            group,
            stream_id,
            idle_timeout_ms,
            no_echo,
        } => streams::start(hub, s, &group, stream_id, idle_timeout_ms, no_echo),
        Msg::StreamData {
            stream_id,
            fragment,
        } => streams::data(hub, s, &stream_id, fragment),
        Msg::StreamEnd { stream_id, error } => streams::end(hub, s, &stream_id, error),
        Msg::SetGroupState { ack_id, .. }
        | Msg::SubscribeGroupState { ack_id, .. }
        | Msg::UnsubscribeGroupState { ack_id, .. }
            if duplicate(s, ack_id) => {}
        Msg::SetGroupState {
            group,
            state,
            ack_id,
        } => {
            let r = hub
                .group_states
                .set(hub, s, &group, state.as_ref(), || ack(s, ack_id, Ok(())));
            if r.is_err() {
                ack(s, ack_id, r);
            }
        }
        Msg::SubscribeGroupState { group, ack_id } => {
            let r = hub
                .group_states
                .subscribe(hub, s, &group, || ack(s, ack_id, Ok(())));
            if r.is_err() {
                ack(s, ack_id, r);
            }
        }
        Msg::UnsubscribeGroupState { group, ack_id } => {
            let r = hub.group_states.unsubscribe(s, &group);
            ack(s, ack_id, r);
        }
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
                    s.send_control(match reply.text() {
                        Some(t) => Outbound::Text(Utf8Bytes::from(t.into_owned())),
                        None => Outbound::Binary(reply.raw_bytes()),
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
                    data,
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
