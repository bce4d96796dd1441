//! Group streams: a publisher opens a stream to a group (`sendToGroup` with `stream`), sends
//! numbered fragments (`streamData`) and ends it (`streamEnd`); the service acknowledges in
//! order (`streamAck`), refuses gaps (`streamNack`), closes idle or failed streams
//! (`streamClosed`) and relays every accepted fragment, then a terminal frame, to the group.
//!
//! Streams belong to the publisher's session: they survive a recovery of that session (the
//! publisher replays what was not acknowledged; duplicates are re-acknowledged, not relayed)
//! and end with it, subscribers then getting a `Cancelled` terminal frame. Fragments go to the
//! JSON subprotocols only: no protobuf field numbers are published for stream metadata.

use crate::dispatch::check_group;
use crate::hub::{Hub, Overflowed};
use crate::protocol::{self, Origin, Payload, StreamError, StreamMeta, UserError};
use crate::roles::Permission;
use crate::session::{Delivery, Outbound, Session};
use axum::extract::ws::Utf8Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard, Weak};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Idle timeout of a stream whose start does not set `idleTimeoutMs`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_millis(300_000);
/// Largest `idleTimeoutMs` accepted (one day): a stream is not a way to hold state forever.
pub const MAX_IDLE_TIMEOUT_MS: u64 = 86_400_000;
/// Streams one connection may have open at once; a start beyond it is refused (`BadRequest`).
pub const MAX_STREAMS_PER_CONNECTION: usize = 1000;
/// Longest stream id, in characters.
pub const MAX_STREAM_ID_CHARS: usize = 1024;
/// Accepted fragments after which an ack goes out at once...
const ACK_EVERY: u64 = 16;
/// ...otherwise acks are batched for this long.
const ACK_DELAY: Duration = Duration::from_millis(5);

struct Stream {
    group: String,
    no_echo: bool,
    /// The next fragment id expected (1 at start).
    next: u64,
    /// The last `expectedSequenceId` sent (acks and nacks never go below it).
    announced: u64,
    idle: Duration,
    last_activity: Instant,
    timer: AbortHandle,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

/// The streams of one session.
#[derive(Default)]
pub struct Streams {
    active: HashMap<String, Stream>,
    /// A batched-ack flush is scheduled.
    flush_scheduled: bool,
    /// The session ended: nothing opens any more.
    ended: bool,
}

fn lock(s: &Session) -> MutexGuard<'_, Streams> {
    s.streams.lock().unwrap_or_else(|e| e.into_inner())
}

fn control(s: &Session, frame: String) {
    s.send_control(Outbound::Text(Utf8Bytes::from(frame)));
}

fn closed(s: &Session, stream_id: &str, error: Option<(&str, &str)>) {
    control(s, protocol::encode_stream_closed(stream_id, error));
}

/// Whether `s` gets stream frames (JSON subprotocols only).
fn receives_streams(s: &Session) -> bool {
    !s.is_simple() && !s.is_protobuf()
}

/// Relays one stream frame from `publisher` to its group; the caller finishes the overflowed
/// sessions once it holds no lock.
fn relay(
    hub: &Hub,
    publisher: &Session,
    st: &Stream,
    data: Payload,
    meta: &StreamMeta<'_>,
) -> Overflowed {
    let origin = Origin::Group {
        group: &st.group,
        from_user_id: publisher.user_id.as_deref(),
    };
    let d = Delivery::stream(&origin, data, meta);
    let (me, no_echo) = (publisher.id.as_str(), st.no_echo);
    hub.publish_group_deferred(&st.group, &d, &|t: &Session| {
        receives_streams(t) && !(no_echo && t.id == me)
    })
}

/// The terminal frame subscribers get: an empty text payload (clients drop frames without a
/// payload) with `endOfStream`, the next expected id and, when the stream failed, its error.
fn end_frame(
    hub: &Hub,
    publisher: &Session,
    stream_id: &str,
    st: &Stream,
    error: Option<&StreamError>,
) -> Overflowed {
    let meta = StreamMeta {
        stream_id,
        stream_sequence_id: st.next,
        end_of_stream: true,
        error,
    };
    relay(hub, publisher, st, Payload::Text(String::new()), &meta)
}

fn service_error(name: &'static str, message: &str) -> StreamError {
    StreamError {
        name,
        message: Some(message.to_string()),
        user_error_code: None,
    }
}

/// Checks a stream start; `Err` is the `streamClosed` error it gets.
fn check_start(
    s: &Session,
    streams: &Streams,
    group: &str,
    stream_id: &str,
    idle_timeout_ms: Option<&Value>,
) -> Result<Duration, (&'static str, String)> {
    if stream_id.is_empty() || stream_id.chars().count() > MAX_STREAM_ID_CHARS {
        return Err((
            "BadRequest",
            format!("A stream id must have 1 to {MAX_STREAM_ID_CHARS} characters."),
        ));
    }
    if streams.active.contains_key(stream_id) {
        return Err((
            "BadRequest",
            format!("Stream '{stream_id}' is already active on this connection."),
        ));
    }
    if streams.active.len() >= MAX_STREAMS_PER_CONNECTION {
        return Err((
            "BadRequest",
            format!("A connection may have at most {MAX_STREAMS_PER_CONNECTION} active streams."),
        ));
    }
    let idle = match idle_timeout_ms {
        None => DEFAULT_IDLE_TIMEOUT,
        Some(v) => match v.as_u64() {
            Some(ms @ 1..=MAX_IDLE_TIMEOUT_MS) => Duration::from_millis(ms),
            _ => {
                return Err((
                    "BadRequest",
                    format!("idleTimeoutMs must be an integer from 1 to {MAX_IDLE_TIMEOUT_MS}."),
                ))
            }
        },
    };
    check_group(s, Permission::SendToGroup, group)?;
    Ok(idle)
}

/// `sendToGroup` with `stream`: opens the stream (`streamAck` 1) or refuses it
/// (`streamClosed` with `Forbidden` or `BadRequest`).
pub fn start(
    hub: &Arc<Hub>,
    s: &Arc<Session>,
    group: &str,
    stream_id: String,
    idle_timeout_ms: Option<Value>,
    no_echo: bool,
) {
    let mut streams = lock(s);
    if streams.ended {
        return;
    }
    let idle = match check_start(s, &streams, group, &stream_id, idle_timeout_ms.as_ref()) {
        Ok(idle) => idle,
        Err((name, message)) => {
            drop(streams);
            closed(s, &stream_id, Some((name, &message)));
            return;
        }
    };
    let timer = tokio::spawn(idle_timer(
        Arc::downgrade(hub),
        Arc::downgrade(s),
        stream_id.clone(),
        Instant::now() + idle,
    ))
    .abort_handle();
    streams.active.insert(
        stream_id.clone(),
        Stream {
            group: group.to_string(),
            no_echo,
            next: 1,
            announced: 1,
            idle,
            last_activity: Instant::now(),
            timer,
        },
    );
    // Sent under the lock, so no ack of a later fragment can overtake it.
    control(s, protocol::encode_stream_ack(&stream_id, 1));
}

/// `streamData`: relays the next fragment, re-acknowledges a duplicate, refuses a gap; a
/// keep-alive (`fragment` `None`) only resets the idle timer.
pub fn data(hub: &Arc<Hub>, s: &Arc<Session>, stream_id: &str, fragment: Option<(u64, Payload)>) {
    let mut streams = lock(s);
    if streams.ended {
        return;
    }
    let Some(st) = streams.active.get_mut(stream_id) else {
        drop(streams);
        closed(
            s,
            stream_id,
            Some((
                "StreamNotFound",
                &format!("Stream '{stream_id}' is not active."),
            )),
        );
        return;
    };
    st.last_activity = Instant::now();
    let Some((seq, payload)) = fragment else {
        return;
    };
    if seq < st.next {
        // A replay after recovery: accepted before, acknowledged again, not relayed twice.
        st.announced = st.next;
        control(s, protocol::encode_stream_ack(stream_id, st.next));
        return;
    }
    if seq > st.next {
        st.announced = st.next;
        let message = format!("Fragment {seq} is out of order: expected {}.", st.next);
        control(
            s,
            protocol::encode_stream_nack(stream_id, "InvalidSequenceId", &message, st.next),
        );
        return;
    }
    if !s.permissions().allows(Permission::SendToGroup, &st.group) {
        // The permission was revoked while the stream was open.
        let Some(st) = streams.active.remove(stream_id) else {
            return;
        };
        let message = format!(
            "The connection is no longer authorized to send messages to group '{}'.",
            st.group
        );
        let overflowed = end_frame(
            hub,
            s,
            stream_id,
            &st,
            Some(&service_error("Forbidden", &message)),
        );
        closed(s, stream_id, Some(("Forbidden", &message)));
        drop(streams);
        hub.finish_overflowed(overflowed);
        return;
    }
    let meta = StreamMeta {
        stream_id,
        stream_sequence_id: seq,
        end_of_stream: false,
        error: None,
    };
    let overflowed = relay(hub, s, st, payload, &meta);
    st.next += 1;
    if st.next - st.announced >= ACK_EVERY {
        st.announced = st.next;
        control(s, protocol::encode_stream_ack(stream_id, st.next));
    } else if !streams.flush_scheduled {
        streams.flush_scheduled = true;
        tokio::spawn(flush_acks(Arc::downgrade(s)));
    }
    drop(streams);
    hub.finish_overflowed(overflowed);
}

/// Sends the acks batched since the last flush.
async fn flush_acks(session: Weak<Session>) {
    tokio::time::sleep(ACK_DELAY).await;
    let Some(s) = session.upgrade() else {
        return;
    };
    let mut streams = lock(&s);
    streams.flush_scheduled = false;
    for (id, st) in streams.active.iter_mut() {
        if st.next > st.announced {
            st.announced = st.next;
            control(&s, protocol::encode_stream_ack(id, st.next));
        }
    }
}

/// `streamEnd`: subscribers get the terminal frame (`UserError` when the publisher sent an
/// error), the publisher `streamClosed`.
pub fn end(hub: &Arc<Hub>, s: &Arc<Session>, stream_id: &str, error: Option<UserError>) {
    let mut streams = lock(s);
    if streams.ended {
        return;
    }
    let Some(st) = streams.active.remove(stream_id) else {
        drop(streams);
        closed(
            s,
            stream_id,
            Some((
                "StreamNotFound",
                &format!("Stream '{stream_id}' is not active."),
            )),
        );
        return;
    };
    let error = error.map(|e| StreamError {
        name: "UserError",
        message: e.message,
        user_error_code: e.user_error_code,
    });
    let overflowed = end_frame(hub, s, stream_id, &st, error.as_ref());
    closed(s, stream_id, None);
    drop(streams);
    hub.finish_overflowed(overflowed);
}

/// Ends every stream of a session that ended without recovery: subscribers get `Cancelled`.
pub fn cancel_all(hub: &Hub, s: &Session) {
    let active = {
        let mut streams = lock(s);
        streams.ended = true;
        std::mem::take(&mut streams.active)
    };
    let error = service_error("Cancelled", "The publisher's connection ended.");
    let mut ids: Vec<_> = active.into_iter().collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, st) in ids {
        let overflowed = end_frame(hub, s, &id, &st, Some(&error));
        hub.finish_overflowed(overflowed);
    }
}

/// Closes the stream `stream_id` once it has been idle for its timeout: `streamClosed`
/// `IdleTimeout` to the publisher, a terminal `IdleTimeout` frame to subscribers. Aborted when
/// the stream ends first.
async fn idle_timer(hub: Weak<Hub>, session: Weak<Session>, stream_id: String, first: Instant) {
    let mut deadline = first;
    loop {
        tokio::time::sleep_until(deadline).await;
        let (Some(hub), Some(s)) = (hub.upgrade(), session.upgrade()) else {
            return;
        };
        let mut streams = lock(&s);
        let Some(st) = streams.active.get(&stream_id) else {
            return;
        };
        let due = st.last_activity + st.idle;
        if due > Instant::now() {
            deadline = due;
            continue;
        }
        let message = format!(
            "Stream '{stream_id}' received no data or keep-alive for {} ms.",
            st.idle.as_millis()
        );
        // Removing it drops the stream, which aborts this task's handle: finish without
        // awaiting anything.
        let Some(st) = streams.active.remove(&stream_id) else {
            return;
        };
        let overflowed = end_frame(
            &hub,
            &s,
            &stream_id,
            &st,
            Some(&service_error("IdleTimeout", &message)),
        );
        closed(&s, &stream_id, Some(("IdleTimeout", &message)));
        drop(streams);
        hub.finish_overflowed(overflowed);
        return;
    }
}
