//! Group state: each connection in a group may publish a small map of strings (presence,
//! typing, ...) with `setGroupState`; connections that `subscribeGroupState` get a
//! `groupStateSnapshot` of every state in the group, then a `groupStateUpdate` for each
//! change. A state lasts while its connection is in the group: leaving or disconnecting clears
//! it, which subscribers see as an item without `state`.
//!
//! The service side of this feature is not documented; what it requires (membership to set a
//! state, the join permission to subscribe) and its bounds are this emulator's choices, listed
//! in its README.

use crate::dispatch::check_group;
use crate::hub::{Hub, Overflowed};
use crate::protocol::{self, GroupStateItem};
use crate::roles::Permission;
use crate::session::{DeliverOutcome, Outbound, Session};
use axum::extract::ws::Utf8Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// Keys one state may have.
pub const MAX_STATE_KEYS: usize = 64;
/// Bytes of one state as serialized JSON.
pub const MAX_STATE_BYTES: usize = 4096;
/// Groups one connection may subscribe to at once.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 1000;

type Refusal = (&'static str, String);

struct Record {
    user_id: Option<String>,
    /// Serialized JSON object of strings.
    state: String,
    updated_at: u64,
}

#[derive(Default)]
struct Group {
    /// States by connection id.
    records: BTreeMap<String, Record>,
    /// Subscribers by connection id.
    subscribers: BTreeMap<String, Weak<Session>>,
}

#[derive(Default)]
struct Inner {
    groups: HashMap<String, Group>,
    /// Subscriptions per connection id.
    subscriptions: HashMap<String, usize>,
    /// The last `updatedAt` handed out: every record gets a later one.
    clock: u64,
}

impl Inner {
    fn tick(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.clock = now.max(self.clock + 1);
        self.clock
    }

    fn drop_if_empty(&mut self, group: &str) {
        if self
            .groups
            .get(group)
            .is_some_and(|g| g.records.is_empty() && g.subscribers.is_empty())
        {
            self.groups.remove(group);
        }
    }
}

/// The group states of one hub.
#[derive(Default)]
pub struct GroupStates {
    inner: Mutex<Inner>,
}

/// Sends `frame` to every live subscriber of `g`; sessions it overflowed are returned.
fn push(g: &Group, frame: String) -> Vec<(Arc<Session>, &'static str)> {
    let frame = Utf8Bytes::from(frame);
    let mut overflowed = Vec::new();
    for s in g.subscribers.values().filter_map(Weak::upgrade) {
        if let DeliverOutcome::Overflow(reason) = s.send_bounded(Outbound::Text(frame.clone())) {
            overflowed.push((s, reason));
        }
    }
    overflowed
}

fn update(group: &str, connection_id: &str, r: Option<&Record>, cleared_at: u64) -> String {
    let item = match r {
        Some(r) => GroupStateItem {
            connection_id,
            user_id: r.user_id.as_deref(),
            state: Some(&r.state),
            updated_at: r.updated_at,
        },
        None => GroupStateItem {
            connection_id,
            user_id: None,
            state: None,
            updated_at: cleared_at,
        },
    };
    protocol::encode_group_state(false, group, &[item])
}

/// Checks a state object: strings only, within the bounds; its serialized form.
fn check_state(v: &Value) -> Result<String, Refusal> {
    let Value::Object(o) = v else {
        return Err(("BadRequest", "A group state must be a JSON object.".into()));
    };
    if o.len() > MAX_STATE_KEYS {
        return Err((
            "BadRequest",
            format!("A group state may have at most {MAX_STATE_KEYS} keys."),
        ));
    }
    if !o.values().all(Value::is_string) {
        return Err((
            "BadRequest",
            "Every value of a group state must be a string.".into(),
        ));
    }
    let text = v.to_string();
    if text.len() > MAX_STATE_BYTES {
        return Err((
            "BadRequest",
            format!("A group state may have at most {MAX_STATE_BYTES} bytes."),
        ));
    }
    Ok(text)
}

impl GroupStates {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `setGroupState`: stores (or, with `None`, clears) this connection's state in a group it
    /// is a member of, acknowledges (through `ack`), and pushes the change to the group's
    /// subscribers: a sender that subscribed sees its ack before its own update.
    pub fn set(
        &self,
        hub: &Hub,
        s: &Session,
        group: &str,
        state: Option<&Value>,
        ack: impl FnOnce(),
    ) -> Result<(), Refusal> {
        if !protocol::valid_group_name(group) {
            return Err(("BadRequest", format!("Invalid group name '{group}'.")));
        }
        let state = state.map(check_state).transpose()?;
        if !s
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(group)
        {
            return Err((
                "BadRequest",
                format!("The connection is not in group '{group}'."),
            ));
        }
        let overflowed = {
            let mut inner = self.lock();
            let at = inner.tick();
            let g = inner.groups.entry(group.to_string()).or_default();
            let frame = match state {
                Some(state) => {
                    let r = Record {
                        user_id: s.user_id.clone(),
                        state,
                        updated_at: at,
                    };
                    let frame = update(group, &s.id, Some(&r), at);
                    g.records.insert(s.id.clone(), r);
                    frame
                }
                None => {
                    g.records.remove(&s.id);
                    update(group, &s.id, None, at)
                }
            };
            ack();
            let overflowed = push(g, frame);
            inner.drop_if_empty(group);
            overflowed
        };
        hub.finish_overflowed(Overflowed(overflowed));
        Ok(())
    }

    /// `subscribeGroupState`: acknowledges (through `ack`), then sends the group's snapshot;
    /// both under the lock every update takes, so no update is seen before them.
    pub fn subscribe(
        &self,
        hub: &Hub,
        s: &Arc<Session>,
        group: &str,
        ack: impl FnOnce(),
    ) -> Result<(), Refusal> {
        check_group(s, Permission::JoinLeaveGroup, group)?;
        let overflowed = {
            let mut inner = self.lock();
            let g = inner.groups.get(group);
            let already = g.is_some_and(|g| g.subscribers.contains_key(&s.id));
            if !already {
                let count = inner.subscriptions.get(&s.id).copied().unwrap_or(0);
                if count >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
                    return Err((
                        "BadRequest",
                        format!(
                            "A connection may subscribe to the state of at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} groups."
                        ),
                    ));
                }
                *inner.subscriptions.entry(s.id.clone()).or_default() += 1;
            }
            let g = inner.groups.entry(group.to_string()).or_default();
            g.subscribers.insert(s.id.clone(), Arc::downgrade(s));
            ack();
            let items: Vec<_> = g
                .records
                .iter()
                .map(|(id, r)| GroupStateItem {
                    connection_id: id,
                    user_id: r.user_id.as_deref(),
                    state: Some(&r.state),
                    updated_at: r.updated_at,
                })
                .collect();
            let frame = protocol::encode_group_state(true, group, &items);
            match s.send_bounded(Outbound::Text(Utf8Bytes::from(frame))) {
                DeliverOutcome::Overflow(reason) => vec![(s.clone(), reason)],
                DeliverOutcome::Delivered => Vec::new(),
            }
        };
        hub.finish_overflowed(Overflowed(overflowed));
        Ok(())
    }

    /// `unsubscribeGroupState`: no more pushes for this group (a no-op when not subscribed).
    pub fn unsubscribe(&self, s: &Session, group: &str) -> Result<(), Refusal> {
        if !protocol::valid_group_name(group) {
            return Err(("BadRequest", format!("Invalid group name '{group}'.")));
        }
        let mut inner = self.lock();
        let removed = inner
            .groups
            .get_mut(group)
            .is_some_and(|g| g.subscribers.remove(&s.id).is_some());
        if removed {
            if let Some(n) = inner.subscriptions.get_mut(&s.id) {
                *n -= 1;
                if *n == 0 {
                    inner.subscriptions.remove(&s.id);
                }
            }
            inner.drop_if_empty(group);
        }
        Ok(())
    }

    /// The connection left `group`: its state there is cleared and subscribers told.
    pub fn left(&self, hub: &Hub, s: &Session, group: &str) {
        let overflowed = {
            let mut inner = self.lock();
            let at = inner.tick();
            let Some(g) = inner.groups.get_mut(group) else {
                return;
            };
            if g.records.remove(&s.id).is_none() {
                return;
            }
            let overflowed = push(g, update(group, &s.id, None, at));
            inner.drop_if_empty(group);
            overflowed
        };
        hub.finish_overflowed(Overflowed(overflowed));
    }

    /// The connection ended: every subscription of it goes (its states went when it left its
    /// groups).
    pub fn forget(&self, s: &Session) {
        let mut inner = self.lock();
        if inner.subscriptions.remove(&s.id).is_none() {
            return;
        }
        let mut emptied = Vec::new();
        for (name, g) in inner.groups.iter_mut() {
            if g.subscribers.remove(&s.id).is_some()
                && g.records.is_empty()
                && g.subscribers.is_empty()
            {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            inner.groups.remove(&name);
        }
    }
}
