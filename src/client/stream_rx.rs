//! Group streams this client receives: per `(group, streamId)` order checking, idle timeout
//! and a bound on how many are tracked.
//!
//! The service delivers a stream's fragments in order with `streamSequenceId` 1, 2, ... and
//! ends it with a terminal frame carrying the id after the last fragment. A stream whose ids
//! skip or repeat is incomplete or corrupt: instead of passing it on as if it were whole, the
//! receiver ends it with a terminal frame of its own (`SequenceGap`, `Duplicate`) and drops
//! the rest of it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::{StreamError, StreamInfo};

/// What to do with one received stream frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver the frame as it is.
    Deliver,
    /// Do not deliver it (a stream ignored or already failed).
    Drop,
    /// Deliver a terminal frame with this error instead of the frame (the stream is broken).
    Fail(StreamError),
}

/// A stream that ended on the receiver's side without its terminal frame from the service.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired {
    /// The group.
    pub group: String,
    /// The stream.
    pub stream_id: String,
    /// The id the next fragment would have had.
    pub next: u64,
    /// Why.
    pub error: StreamError,
}

#[derive(Debug)]
enum Track {
    /// Delivering; `next` is the id the next fragment must have (wide enough for the id
    /// after `u64::MAX`, which no fragment can have).
    Open { next: u128 },
    /// Ignored until its terminal frame (first seen mid-way with `from_start_only`) or failed
    /// (its terminal frame was already reported): later frames are dropped.
    Dropping,
}

#[derive(Debug)]
struct RxStream {
    track: Track,
    last_frame: Instant,
}

/// The streams being received.
#[derive(Debug)]
pub struct RxStreams {
    streams: HashMap<(String, String), RxStream>,
    from_start_only: bool,
    idle_timeout: Duration,
    max_streams: usize,
}

fn error(name: &str, message: String) -> StreamError {
    StreamError {
        name: name.to_string(),
        message: Some(message),
        user_error_code: None,
    }
}

/// An expected id as reported: the id after `u64::MAX` is reported as `u64::MAX`.
fn clamp(next: u128) -> u64 {
    u64::try_from(next).unwrap_or(u64::MAX)
}

impl RxStreams {
    /// An empty table.
    pub fn new(from_start_only: bool, idle_timeout: Duration, max_streams: usize) -> RxStreams {
        RxStreams {
            streams: HashMap::new(),
            from_start_only,
            idle_timeout,
            max_streams: max_streams.max(1),
        }
    }

    /// Whether no stream is tracked (then no idle timer is needed).
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// How often idle streams are looked for.
    pub fn check_period(&self) -> Duration {
        (self.idle_timeout / 4).max(Duration::from_millis(10))
    }

    /// Checks one frame of `group` and records its effect. Returns the verdict and, when a
    /// new stream pushed out the least recently active one, that stream's end.
    pub fn receive(
        &mut self,
        group: &str,
        info: &StreamInfo,
        now: Instant,
    ) -> (Verdict, Option<Expired>) {
        let key = (group.to_string(), info.stream_id.clone());
        let seq = info.stream_sequence_id;
        let wide = u128::from(seq);
        let Some(s) = self.streams.get_mut(&key) else {
            if info.end_of_stream {
                // A terminal frame of a stream never seen: nothing to track afterwards.
                let verdict = if self.from_start_only && seq != 1 {
                    Verdict::Drop
                } else {
                    Verdict::Deliver
                };
                return (verdict, None);
            }
            let track = if self.from_start_only && seq != 1 {
                Track::Dropping
            } else {
                Track::Open {
                    next: u128::from(seq) + 1,
                }
            };
            let evicted = self.make_room();
            let verdict = match track {
                Track::Open { .. } => Verdict::Deliver,
                Track::Dropping => Verdict::Drop,
            };
            self.streams.insert(
                key,
                RxStream {
                    track,
                    last_frame: now,
                },
            );
            return (verdict, evicted);
        };
        s.last_frame = now;
        let verdict = match s.track {
            Track::Dropping => Verdict::Drop,
            Track::Open { next } if wide == next => {
                s.track = Track::Open { next: next + 1 };
                Verdict::Deliver
            }
            Track::Open { next } if wide > next => Verdict::Fail(error(
                "SequenceGap",
                format!(
                    "stream fragment {seq} arrived where {next} was expected: fragments \
                     {next}..{} are missing",
                    seq - 1
                ),
            )),
            Track::Open { next } => Verdict::Fail(error(
                "Duplicate",
                format!("stream fragment {seq} arrived again (expected {next})"),
            )),
        };
        if info.end_of_stream {
            self.streams.remove(&key);
        } else if !matches!(verdict, Verdict::Deliver) {
            s.track = Track::Dropping;
        }
        (verdict, None)
    }

    /// Ends streams with no frame for the idle timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let timeout = self.idle_timeout;
        let idle: Vec<(String, String)> = self
            .streams
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_frame) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in idle {
            let Some(s) = self.streams.remove(&key) else {
                continue;
            };
            if let Track::Open { next } = s.track {
                out.push(Expired {
                    group: key.0,
                    stream_id: key.1,
                    next: clamp(next),
                    error: error(
                        "IdleTimeout",
                        format!("no frame of the stream arrived for {timeout:?}"),
                    ),
                });
            }
        }
        out
    }

    /// Ends every stream being delivered with `name` (the session they came on was lost, or
    /// the client stopped): their remaining frames can no longer arrive.
    pub fn end_all(&mut self, name: &str, message: &str) -> Vec<Expired> {
        let mut out: Vec<Expired> = self
            .streams
            .drain()
            .filter_map(|(key, s)| match s.track {
                Track::Open { next } => Some(Expired {
                    group: key.0,
                    stream_id: key.1,
                    next: clamp(next),
                    error: error(name, message.to_string()),
                }),
                Track::Dropping => None,
            })
            .collect();
        out.sort_by(|a, b| (&a.group, &a.stream_id).cmp(&(&b.group, &b.stream_id)));
        out
    }

    /// At the limit, removes the least recently active stream; returns its end if it was
    /// being delivered.
    fn make_room(&mut self) -> Option<Expired> {
        if self.streams.len() < self.max_streams {
            return None;
        }
        let key = self
            .streams
            .iter()
            .min_by_key(|(_, s)| s.last_frame)
            .map(|(k, _)| k.clone())?;
        let s = self.streams.remove(&key)?;
        match s.track {
            Track::Open { next } => Some(Expired {
                group: key.0,
                stream_id: key.1,
                next: clamp(next),
                error: error(
                    "TooManyStreams",
                    format!(
                        "more than {} streams were received at once; the least recently \
                         active one was ended",
                        self.max_streams
                    ),
                ),
            }),
            Track::Dropping => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: &str, seq: u64, end: bool) -> StreamInfo {
        StreamInfo {
            stream_id: id.into(),
            stream_sequence_id: seq,
            end_of_stream: end,
            error: None,
        }
    }

    fn name(v: &Verdict) -> &str {
        match v {
            Verdict::Fail(e) => &e.name,
            Verdict::Deliver => "deliver",
            Verdict::Drop => "drop",
        }
    }

    #[test]
    fn in_order_frames_are_delivered_and_the_terminal_frame_forgets_the_stream() {
        let mut rx = RxStreams::new(false, Duration::from_secs(300), 16);
        let now = Instant::now();
        for seq in 1..=3 {
            assert_eq!(
                rx.receive("g", &frame("s", seq, false), now).0,
                Verdict::Deliver
            );
        }
        assert_eq!(
            rx.receive("g", &frame("s", 4, true), now).0,
            Verdict::Deliver
        );
        assert!(rx.is_empty());
        // The same id may start again.
        assert_eq!(
            rx.receive("g", &frame("s", 1, false), now).0,
            Verdict::Deliver
        );
    }

    #[test]
    fn gaps_and_repeats_end_the_stream_once() {
        let mut rx = RxStreams::new(false, Duration::from_secs(300), 16);
        let now = Instant::now();
        rx.receive("g", &frame("a", 1, false), now);
        assert_eq!(
            name(&rx.receive("g", &frame("a", 3, false), now).0),
            "SequenceGap"
        );
        assert_eq!(rx.receive("g", &frame("a", 4, false), now).0, Verdict::Drop);
        assert_eq!(rx.receive("g", &frame("a", 5, true), now).0, Verdict::Drop);
        assert!(rx.is_empty());
        rx.receive("g", &frame("b", 1, false), now);
        rx.receive("g", &frame("b", 2, false), now);
        assert_eq!(
            name(&rx.receive("g", &frame("b", 2, false), now).0),
            "Duplicate"
        );
        // A terminal frame whose id does not follow the last fragment is a gap too.
        rx.receive("g", &frame("c", 1, false), now);
        assert_eq!(
            name(&rx.receive("g", &frame("c", 5, true), now).0),
            "SequenceGap"
        );
        assert!(!rx.streams.contains_key(&("g".into(), "c".into())));
    }

    #[test]
    fn from_start_only_ignores_a_stream_joined_mid_way_until_its_end() {
        let mut rx = RxStreams::new(true, Duration::from_secs(300), 16);
        let now = Instant::now();
        assert_eq!(rx.receive("g", &frame("s", 4, false), now).0, Verdict::Drop);
        assert_eq!(rx.receive("g", &frame("s", 5, false), now).0, Verdict::Drop);
        assert_eq!(rx.receive("g", &frame("s", 6, true), now).0, Verdict::Drop);
        assert_eq!(
            rx.receive("g", &frame("s", 1, false), now).0,
            Verdict::Deliver
        );
        // Without the option a stream is delivered from where it is first seen.
        let mut rx = RxStreams::new(false, Duration::from_secs(300), 16);
        assert_eq!(
            rx.receive("g", &frame("s", 4, false), now).0,
            Verdict::Deliver
        );
        assert_eq!(
            rx.receive("g", &frame("s", 5, false), now).0,
            Verdict::Deliver
        );
    }

    #[test]
    fn ids_at_the_top_of_the_range_do_not_overflow() {
        let mut rx = RxStreams::new(false, Duration::from_secs(300), 16);
        let now = Instant::now();
        assert_eq!(
            rx.receive("g", &frame("s", u64::MAX, false), now).0,
            Verdict::Deliver
        );
        // The id after u64::MAX cannot exist: a repeat of the top id is a duplicate.
        assert_eq!(
            name(&rx.receive("g", &frame("s", u64::MAX, false), now).0),
            "Duplicate"
        );
        assert_eq!(
            name(&rx.receive("g", &frame("t", 1, false), now).0),
            "deliver"
        );
        assert_eq!(
            name(&rx.receive("g", &frame("t", u64::MAX, true), now).0),
            "SequenceGap"
        );
    }

    #[test]
    fn the_same_stream_id_in_two_groups_is_two_streams() {
        let mut rx = RxStreams::new(false, Duration::from_secs(300), 16);
        let now = Instant::now();
        rx.receive("g1", &frame("s", 1, false), now);
        assert_eq!(
            rx.receive("g2", &frame("s", 1, false), now).0,
            Verdict::Deliver
        );
        assert_eq!(
            rx.receive("g1", &frame("s", 2, false), now).0,
            Verdict::Deliver
        );
    }

    #[test]
    fn idle_streams_expire_and_the_table_is_bounded() {
        let mut rx = RxStreams::new(false, Duration::from_millis(100), 2);
        let t0 = Instant::now();
        rx.receive("g", &frame("a", 1, false), t0);
        rx.receive("g", &frame("b", 1, false), t0 + Duration::from_millis(50));
        let (_, evicted) = rx.receive("g", &frame("c", 1, false), t0 + Duration::from_millis(60));
        let evicted = evicted.expect("the oldest stream is pushed out");
        assert_eq!((evicted.stream_id.as_str(), evicted.next), ("a", 2));
        assert_eq!(evicted.error.name, "TooManyStreams");
        let gone = rx.expire(t0 + Duration::from_millis(155));
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].stream_id.as_str(), gone[0].error.name.as_str()),
            ("b", "IdleTimeout")
        );
        let ended = rx.end_all("SessionLost", "lost");
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].stream_id, "c");
        assert!(rx.is_empty());
    }
}
