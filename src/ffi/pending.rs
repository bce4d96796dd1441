//! Accepted `_async` operations and the order of their completions around `WPS_EVENT_STOPPED`.
//!
//! Every accepted operation is recorded here until its completion is queued, so that exactly one
//! completion is delivered for it: by the operation itself, or (cancelled) by the teardown of
//! the client, whichever comes first.
//!
//! A session runs from a start call to its `STOPPED`. `STOPPED` is the last event of its
//! session: it waits for the completions of operations begun in that session or earlier (the
//! stop that ended it, sends cancelled by it), and everything that arrives meanwhile (the next
//! session's `CONNECTED`, its operations' completions) waits behind it. Operations of a later
//! session never hold it back.

use std::collections::{HashMap, VecDeque};

use super::dispatch::{wps_event_fn, Item, Target};
use super::error::Failure;
use super::event::{
    cancelled, Completed, OwnedEvent, WPS_EVENT_CONNECTED, WPS_EVENT_STOPPED, WPS_OP_START,
};

/// Describes the completion an async operation owes.
pub(crate) struct Completion {
    pub op: u32,
    pub what: &'static str,
    pub group: Option<String>,
    pub ack_id: u64,
    pub op_context: usize,
    pub target: Target,
}

impl Completion {
    /// The completion of one async call: to `on_complete` when given, else to the callback
    /// registered for `WPS_EVENT_ACK`.
    pub fn new(
        op: u32,
        what: &'static str,
        group: Option<String>,
        ack_id: u64,
        on_complete: wps_event_fn,
        op_context: *mut std::ffi::c_void,
    ) -> Completion {
        Completion {
            op,
            what,
            group,
            ack_id,
            op_context: op_context as usize,
            target: on_complete.map_or(Target::Registered, Target::Completion),
        }
    }

    fn into_item(self, outcome: Result<Completed, Failure>) -> Item {
        let event = OwnedEvent::completion(
            self.op,
            self.group.as_deref(),
            self.ack_id,
            self.op_context,
            outcome,
        );
        Item {
            event,
            target: self.target,
        }
    }
}

struct Op {
    session: u64,
    completion: Completion,
}

/// What decides an item's place relative to a held `STOPPED`.
#[derive(Clone, Copy)]
enum Place {
    /// A `STOPPED` ending the given session.
    Stopped(u64),
    /// The completion of an operation of the given session.
    Completion(u64),
    /// Anything else: in arrival order.
    Event,
}

/// A `STOPPED` waiting for earlier completions, with what arrived after it.
struct Held {
    session: u64,
    stopped: Item,
    after: VecDeque<(Item, Place)>,
}

/// The operations of one client that still owe a completion, and the items ready to queue.
#[derive(Default)]
pub(crate) struct Pending {
    ops: HashMap<u64, Op>,
    next_op: u64,
    /// Start calls so far; an operation belongs to the session current when it began.
    session: u64,
    /// The session of the latest `CONNECTED`: the one the next `STOPPED` ends.
    connected_session: u64,
    /// Boxed: rare, and an idle client should not carry its size.
    held: Option<Box<Held>>,
    /// Items that were behind a released `STOPPED`, being placed again.
    replacing: VecDeque<(Item, Place)>,
    /// Items in delivery order, for the caller to queue.
    ready: VecDeque<Item>,
}

impl Pending {
    /// A start call (blocking or async) begins a new session.
    pub fn start_session(&mut self) {
        self.session += 1;
    }

    /// Records an accepted operation; its completion follows through [`Self::finish`] or
    /// [`Self::cancel_all`].
    pub fn begin(&mut self, completion: Completion) -> u64 {
        if completion.op == WPS_OP_START {
            self.start_session();
        }
        self.next_op += 1;
        let id = self.next_op;
        self.ops.insert(
            id,
            Op {
                session: self.session,
                completion,
            },
        );
        id
    }

    /// The outcome of operation `id`; ignored when its completion was already produced.
    #[cfg(test)]
    pub fn finish(&mut self, id: u64, outcome: Result<Completed, Failure>) {
        if let Some(item) = self.finish_now(id, outcome) {
            self.ready.push_back(item);
        }
    }

    /// [`Self::finish`], but the completion is returned instead when it can be queued at once
    /// (see [`Self::event_now`]).
    pub fn finish_now(&mut self, id: u64, outcome: Result<Completed, Failure>) -> Option<Item> {
        let op = self.ops.remove(&id)?;
        let item = op.completion.into_item(outcome);
        self.place(item, Place::Completion(op.session))
    }

    /// Completes every operation still pending as cancelled (teardown).
    pub fn cancel_all(&mut self) {
        let mut ids: Vec<u64> = self.ops.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(op) = self.ops.remove(&id) {
                let what = op.completion.what;
                let item = op.completion.into_item(Err(cancelled(what)));
                self.route(item, Place::Completion(op.session));
            }
        }
    }

    pub fn has_ops(&self) -> bool {
        !self.ops.is_empty()
    }

    /// An event from the engine.
    #[cfg(test)]
    pub fn event(&mut self, item: Item) {
        if let Some(item) = self.event_now(item) {
            self.ready.push_back(item);
        }
    }

    /// [`Self::event`], but the item is returned instead when it can be queued at once: nothing
    /// is held back or waiting, so it goes next. That is nearly always, and the ready list then
    /// never allocates, which an idle client would otherwise keep.
    pub fn event_now(&mut self, item: Item) -> Option<Item> {
        let place = match item.event.kind {
            WPS_EVENT_CONNECTED => {
                self.connected_session = self.session;
                Place::Event
            }
            WPS_EVENT_STOPPED => Place::Stopped(self.connected_session),
            _ => Place::Event,
        };
        self.place(item, place)
    }

    /// Returns `item` when it goes straight after everything placed before it, else routes it.
    fn place(&mut self, item: Item, place: Place) -> Option<Item> {
        let held_back = match place {
            Place::Stopped(session) => self.owes(session),
            _ => false,
        };
        if self.held.is_none() && self.ready.is_empty() && !held_back {
            return Some(item);
        }
        self.route(item, place);
        None
    }

    #[cfg(test)]
    pub fn ready_capacity(&self) -> usize {
        self.ready.capacity()
    }

    /// The next item to queue, in delivery order.
    pub fn next_ready(&mut self) -> Option<Item> {
        self.ready.pop_front()
    }

    /// Whether an operation of `session` or earlier still owes its completion, or has one
    /// waiting to be placed.
    fn owes(&self, session: u64) -> bool {
        let parked = |q: &VecDeque<(Item, Place)>| {
            q.iter()
                .any(|(_, p)| matches!(p, Place::Completion(s) if *s <= session))
        };
        self.ops.values().any(|op| op.session <= session)
            || self.held.as_ref().is_some_and(|h| parked(&h.after))
            || parked(&self.replacing)
    }

    fn route(&mut self, item: Item, place: Place) {
        let Some(held) = &mut self.held else {
            match place {
                Place::Stopped(session) if self.owes(session) => {
                    self.held = Some(Box::new(Held {
                        session,
                        stopped: item,
                        after: VecDeque::new(),
                    }));
                }
                _ => self.ready.push_back(item),
            }
            return;
        };
        match place {
            // A completion the held STOPPED waits for goes before it.
            Place::Completion(session) if session <= held.session => {
                self.ready.push_back(item);
                let held_session = held.session;
                if !self.owes(held_session) {
                    self.release_held();
                }
            }
            _ => held.after.push_back((item, place)),
        }
    }

    /// Queues the held STOPPED, then places what arrived behind it again, in order (it may
    /// hold another STOPPED, whose own followers then come first).
    fn release_held(&mut self) {
        let Some(held) = self.held.take() else { return };
        self.ready.push_back(held.stopped);
        let placing = !self.replacing.is_empty();
        for entry in held.after.into_iter().rev() {
            self.replacing.push_front(entry);
        }
        if placing {
            // An outer release_held is placing items; it continues with these first.
            return;
        }
        while let Some((item, place)) = self.replacing.pop_front() {
            self.route(item, place);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::event::{
        WPS_EVENT_ACK, WPS_EVENT_DISCONNECTED, WPS_OP_SEND_TO_GROUP, WPS_OP_STOP,
    };

    fn event(kind: u32) -> Item {
        Item {
            event: OwnedEvent {
                kind,
                ..Default::default()
            },
            target: Target::Registered,
        }
    }

    fn completion(op: u32) -> Completion {
        Completion::new(op, "op", None, 0, None, std::ptr::null_mut())
    }

    /// (kind, op) of the ready items.
    fn drain(p: &mut Pending) -> Vec<(u32, u32)> {
        std::iter::from_fn(|| p.next_ready())
            .map(|i| (i.event.kind, i.event.op))
            .collect()
    }

    const ACK: u32 = WPS_EVENT_ACK;

    #[test]
    fn stopped_precedes_the_next_session_after_stop_async_then_start_async() {
        let mut p = Pending::default();
        p.start_session();
        p.event(event(WPS_EVENT_CONNECTED));
        let stop = p.begin(completion(WPS_OP_STOP));
        let start = p.begin(completion(WPS_OP_START));
        p.event(event(WPS_EVENT_DISCONNECTED));
        p.event(event(WPS_EVENT_STOPPED));
        // The next session connects before the stop's completion is queued.
        p.event(event(WPS_EVENT_CONNECTED));
        p.finish(stop, Ok(Completed::Unit));
        p.finish(start, Ok(Completed::Unit));
        assert_eq!(
            drain(&mut p),
            vec![
                (WPS_EVENT_CONNECTED, 0),
                (WPS_EVENT_DISCONNECTED, 0),
                (ACK, WPS_OP_STOP),
                (WPS_EVENT_STOPPED, 0),
                (WPS_EVENT_CONNECTED, 0),
                (ACK, WPS_OP_START),
            ]
        );
    }

    #[test]
    fn completions_of_the_ending_session_come_before_stopped() {
        let mut p = Pending::default();
        p.start_session();
        p.event(event(WPS_EVENT_CONNECTED));
        let send = p.begin(completion(WPS_OP_SEND_TO_GROUP));
        p.event(event(WPS_EVENT_STOPPED));
        assert_eq!(drain(&mut p), vec![(WPS_EVENT_CONNECTED, 0)]);
        p.finish(send, Ok(Completed::Unit));
        p.finish(send, Ok(Completed::Unit)); // a second outcome is ignored
        assert_eq!(
            drain(&mut p),
            vec![(ACK, WPS_OP_SEND_TO_GROUP), (WPS_EVENT_STOPPED, 0)]
        );
    }

    #[test]
    fn a_second_stopped_behind_a_held_one_keeps_its_own_session() {
        let mut p = Pending::default();
        p.start_session();
        p.event(event(WPS_EVENT_CONNECTED));
        let stop1 = p.begin(completion(WPS_OP_STOP));
        p.event(event(WPS_EVENT_STOPPED)); // held for stop1
        let start2 = p.begin(completion(WPS_OP_START));
        p.event(event(WPS_EVENT_CONNECTED));
        let stop2 = p.begin(completion(WPS_OP_STOP));
        p.event(event(WPS_EVENT_STOPPED)); // ends session 2, queued behind the first
        let start3 = p.begin(completion(WPS_OP_START));
        p.event(event(WPS_EVENT_CONNECTED));
        p.finish(start3, Ok(Completed::Unit));
        p.finish(start2, Ok(Completed::Unit));
        p.finish(stop2, Ok(Completed::Unit));
        p.finish(stop1, Ok(Completed::Unit));
        assert_eq!(
            drain(&mut p),
            vec![
                (WPS_EVENT_CONNECTED, 0),
                (ACK, WPS_OP_STOP),
                (WPS_EVENT_STOPPED, 0),
                (WPS_EVENT_CONNECTED, 0),
                (ACK, WPS_OP_START),
                (ACK, WPS_OP_STOP),
                (WPS_EVENT_STOPPED, 0),
                (WPS_EVENT_CONNECTED, 0),
                (ACK, WPS_OP_START),
            ]
        );
    }

    #[test]
    fn items_are_handed_straight_back_unless_a_stopped_is_held() {
        let mut p = Pending::default();
        p.start_session();
        let kind = |i: Option<Item>| i.map(|i| (i.event.kind, i.event.op));
        assert_eq!(
            kind(p.event_now(event(WPS_EVENT_CONNECTED))),
            Some((WPS_EVENT_CONNECTED, 0))
        );
        let send = p.begin(completion(WPS_OP_SEND_TO_GROUP));
        let stop = p.begin(completion(WPS_OP_STOP));
        assert_eq!(
            kind(p.finish_now(send, Ok(Completed::Unit))),
            Some((ACK, WPS_OP_SEND_TO_GROUP))
        );
        // STOPPED waits for the stop's completion, and what follows waits behind it.
        assert!(p.event_now(event(WPS_EVENT_STOPPED)).is_none());
        assert!(p.event_now(event(WPS_EVENT_CONNECTED)).is_none());
        assert!(p.finish_now(stop, Ok(Completed::Unit)).is_none());
        assert_eq!(
            drain(&mut p),
            vec![
                (ACK, WPS_OP_STOP),
                (WPS_EVENT_STOPPED, 0),
                (WPS_EVENT_CONNECTED, 0)
            ]
        );
        assert_eq!(
            kind(p.event_now(event(WPS_EVENT_DISCONNECTED))),
            Some((WPS_EVENT_DISCONNECTED, 0))
        );
    }

    #[test]
    fn cancel_all_completes_each_pending_operation_once_then_releases_stopped() {
        let mut p = Pending::default();
        p.start_session();
        p.event(event(WPS_EVENT_CONNECTED));
        let a = p.begin(completion(WPS_OP_SEND_TO_GROUP));
        let _b = p.begin(completion(WPS_OP_STOP));
        p.event(event(WPS_EVENT_STOPPED));
        p.cancel_all();
        p.finish(a, Ok(Completed::Unit)); // too late: already cancelled
        assert!(!p.has_ops());
        let items: Vec<_> = std::iter::from_fn(|| p.next_ready()).collect();
        let kinds: Vec<_> = items.iter().map(|i| i.event.kind).collect();
        assert_eq!(
            kinds,
            vec![WPS_EVENT_CONNECTED, ACK, ACK, WPS_EVENT_STOPPED]
        );
        assert!(items[1..3]
            .iter()
            .all(|i| i.event.result == crate::ffi::error::WPS_ERR_CANCELLED));
    }
}
