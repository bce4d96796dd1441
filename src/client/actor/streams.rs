//! The engine's side of group streams and group state: stream commands, the service's
//! stream control messages, received stream frames, keep-alives and idle streams.

use tokio::time::Instant;

use super::{Actor, DriveEnd};
use crate::client::stats;
use crate::client::stream::StreamCommand;
use crate::client::stream_rx::{Expired, Verdict};
use crate::client::transport::Socket;
use crate::client::Event;
use crate::error::Error;
use crate::protocol::{Payload, Request, StreamInfo};
use crate::wps_log;

impl Actor {
    /// A stream command while no connection is usable: a new stream cannot open; writes
    /// and ends of open streams are kept, to go out after the recovery.
    pub(super) fn stream_command_waiting(&mut self, cmd: StreamCommand) {
        match cmd {
            StreamCommand::Open { reply, .. } => {
                let _ = reply.send(Err(Error::NotConnected { ack_id: None }));
            }
            StreamCommand::Write {
                stream_id,
                seq,
                frame,
                bytes,
            } => {
                self.out_streams.write(&stream_id, seq, frame, bytes, false);
            }
            StreamCommand::End {
                stream_id,
                frame,
                reply,
            } => {
                self.out_streams.end(&stream_id, frame, reply, false);
            }
        }
    }

    /// A stream command while connected: feeds its frame, if any (the caller flushes).
    pub(super) async fn feed_stream(
        &mut self,
        socket: &mut Socket,
        cmd: StreamCommand,
    ) -> Result<(), String> {
        use futures_util::SinkExt;
        let frame = match cmd {
            StreamCommand::Open {
                stream_id,
                frame,
                shared,
                keep_alive,
                reply,
            } => self
                .out_streams
                .open(stream_id, frame, shared, keep_alive, reply),
            StreamCommand::Write {
                stream_id,
                seq,
                frame,
                bytes,
            } => self.out_streams.write(&stream_id, seq, frame, bytes, true),
            StreamCommand::End {
                stream_id,
                frame,
                reply,
            } => self.out_streams.end(&stream_id, frame, reply, true),
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        self.count_sent(&frame);
        socket.feed(frame).await.map_err(|e| e.to_string())
    }

    /// `streamAck`, `streamNack` or `streamClosed` from the service.
    pub(super) async fn on_stream_control(
        &mut self,
        socket: &mut Socket,
        stream_id: &str,
        control: StreamControl,
    ) -> Option<DriveEnd> {
        let reaction = match control {
            StreamControl::Ack(expected) => self.out_streams.on_ack(stream_id, expected),
            StreamControl::Nack(expected) => self.out_streams.on_nack(stream_id, expected),
            StreamControl::Closed(error) => {
                self.out_streams.on_closed(stream_id, error);
                return None;
            }
        };
        if let Some(v) = &reaction.violation {
            wps_log!(Error, "client {}: {}", self.id.0, v);
        }
        if reaction.frames.is_empty() {
            return None;
        }
        let write = async {
            use futures_util::SinkExt;
            for frame in reaction.frames {
                self.count_sent(&frame);
                socket.feed(frame).await?;
            }
            socket.flush().await
        };
        let limit = self.write_timeout();
        match Box::pin(tokio::time::timeout(limit, write)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(DriveEnd::Failed(e.to_string())),
            Err(_) => Some(self.stalled_writes(limit)),
        }
    }

    /// A received stream frame (already de-duplicated by its connection sequence id):
    /// reported in order, or replaced by the client's own terminal frame when the stream's
    /// ids skip or repeat.
    pub(super) fn on_stream_frame(
        &mut self,
        group: String,
        from_user_id: Option<String>,
        payload: Payload,
        sequence_id: Option<u64>,
        info: StreamInfo,
    ) {
        let (verdict, evicted) = self.rx_streams.receive(&group, &info, Instant::now());
        if let Some(e) = evicted {
            self.emit_stream_end(e);
        }
        match verdict {
            Verdict::Drop => {}
            Verdict::Deliver => {
                stats::bump(&self.shared.counters.messages_received);
                self.emit(Event::StreamFrame {
                    group,
                    from_user_id,
                    message: payload,
                    sequence_id,
                    stream_id: info.stream_id,
                    stream_sequence_id: info.stream_sequence_id,
                    end_of_stream: info.end_of_stream,
                    error: info.error,
                });
            }
            Verdict::Fail(error) => {
                wps_log!(
                    Warning,
                    "client {}: stream {} of group {} ends: {}",
                    self.id.0,
                    info.stream_id,
                    group,
                    error.message.as_deref().unwrap_or(&error.name)
                );
                self.emit(Event::StreamFrame {
                    group,
                    from_user_id,
                    message: Payload::binary(Vec::new()),
                    sequence_id: None,
                    stream_id: info.stream_id,
                    stream_sequence_id: info.stream_sequence_id,
                    end_of_stream: true,
                    error: Some(error),
                });
            }
        }
    }

    /// Reports the client's own terminal frame for a stream it stopped receiving.
    fn emit_stream_end(&self, e: Expired) {
        self.emit(Event::StreamFrame {
            group: e.group,
            from_user_id: None,
            message: Payload::binary(Vec::new()),
            sequence_id: None,
            stream_id: e.stream_id,
            stream_sequence_id: e.next,
            end_of_stream: true,
            error: Some(e.error),
        });
    }

    /// Periodic stream work while connected: keep-alives for idle published streams, and
    /// the end of received streams that went quiet.
    pub(super) async fn stream_housekeeping(&mut self, socket: &mut Socket) -> Option<DriveEnd> {
        let now = Instant::now();
        for e in self.rx_streams.expire(now) {
            self.emit_stream_end(e);
        }
        for stream_id in self.out_streams.keep_alives_due(now) {
            let request = Request::StreamKeepAlive {
                stream_id: &stream_id,
            };
            if let Err(end) = Box::pin(self.write_now(socket, request)).await {
                return Some(end);
            }
        }
        None
    }

    /// The streams of a connection lost for good (or of a stop): published streams fail
    /// with `error`; received ones end with the client's terminal frame `name`.
    pub(super) fn end_streams(&mut self, error: &Error, name: &str, message: &str) {
        self.out_streams.fail_all(error);
        for e in self.rx_streams.end_all(name, message) {
            self.emit_stream_end(e);
        }
    }
}

/// A stream control message from the service.
pub(super) enum StreamControl {
    /// `streamAck` with the next expected id.
    Ack(u64),
    /// `streamNack` with the next expected id.
    Nack(u64),
    /// `streamClosed`, with the error when not a normal close.
    Closed(Option<crate::protocol::AckError>),
}
