//! Hubs and the router: which sessions exist, which groups they are in, which user they belong
//! to. Fan-out takes read locks only and never writes to a socket (writers drain per-connection
//! queues), so a slow client cannot stall anyone else.

use crate::group_state::GroupStates;
use crate::session::{Control, DeliverOutcome, Delivery, Outbound, Session};
use crate::streams;
use crate::upstream::Upstream;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

type Members = HashMap<String, Arc<Session>>;

/// Sessions a fan-out ended (their reliable buffer or outbound queue overflowed), with the
/// reason: to be unregistered by [`Hub::finish_overflowed`] once the caller holds no lock.
#[must_use]
pub struct Overflowed(pub(crate) Vec<(Arc<Session>, &'static str)>);

/// Hubs by lowercase name.
type Registry = RwLock<HashMap<String, Arc<Hub>>>;

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// One hub.
pub struct Hub {
    pub name: String,
    sessions: RwLock<Members>,
    groups: RwLock<HashMap<String, Members>>,
    users: RwLock<HashMap<String, Members>>,
    upstream: Option<Arc<Upstream>>,
    /// Per-group connection states and their subscribers.
    pub group_states: GroupStates,
    /// Where this hub is registered; it leaves the registry with its last session.
    registry: Weak<Registry>,
}

impl Hub {
    fn new(name: &str, upstream: Option<Arc<Upstream>>, registry: Weak<Registry>) -> Hub {
        Hub {
            name: name.to_string(),
            sessions: RwLock::default(),
            groups: RwLock::default(),
            users: RwLock::default(),
            upstream,
            group_states: GroupStates::default(),
            registry,
        }
    }

    /// Registers a session (and its user). Only [`Hubs::register`] calls it, under the
    /// registry lock, so a hub is never emptied and dropped while a session is added.
    fn insert(&self, s: &Arc<Session>) {
        write(&self.sessions).insert(s.id.clone(), s.clone());
        if let Some(u) = &s.user_id {
            write(&self.users)
                .entry(u.clone())
                .or_default()
                .insert(s.id.clone(), s.clone());
        }
    }

    pub fn get(&self, connection_id: &str) -> Option<Arc<Session>> {
        read(&self.sessions).get(connection_id).cloned()
    }

    /// Every session (live or recoverable).
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = read(&self.sessions).values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn user_sessions(&self, user: &str) -> Vec<Arc<Session>> {
        read(&self.users)
            .get(user)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn group_sessions(&self, group: &str) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = read(&self.groups)
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn group_exists(&self, group: &str) -> bool {
        read(&self.groups).get(group).is_some_and(|m| !m.is_empty())
    }

    pub fn user_exists(&self, user: &str) -> bool {
        read(&self.users).get(user).is_some_and(|m| !m.is_empty())
    }

    /// Adds a session to a group (no-op when it already is a member or has ended).
    pub fn join(&self, s: &Arc<Session>, group: &str) {
        let mut groups = write(&self.groups);
        if s.is_ended() {
            return;
        }
        groups
            .entry(group.to_string())
            .or_default()
            .insert(s.id.clone(), s.clone());
        s.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group.to_string());
    }

    /// Removes a session from a group (no-op when it is not a member).
    pub fn leave(&self, s: &Session, group: &str) {
        let mut groups = write(&self.groups);
        if let Some(m) = groups.get_mut(group) {
            m.remove(&s.id);
            if m.is_empty() {
                groups.remove(group);
            }
        }
        let was_member = s
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group);
        drop(groups);
        if was_member {
            self.group_states.left(self, s, group);
        }
    }

    /// Removes a session from every group.
    pub fn leave_all(&self, s: &Session) {
        for g in s.group_list() {
            self.leave(s, &g);
        }
    }

    /// Ends a session for good: sends `last` to its transport, unregisters it everywhere and
    /// notifies the upstream `disconnected` handler. Later recovery attempts get 1008.
    pub fn end_session(&self, s: &Arc<Session>, reason: &str, last: Option<Outbound>) {
        if s.end(last) {
            self.unregister(s, reason);
        }
    }

    /// Removes an ended session from every map and notifies the upstream handler.
    fn unregister(&self, s: &Arc<Session>, reason: &str) {
        streams::cancel_all(self, s);
        self.leave_all(s);
        self.group_states.forget(s);
        write(&self.sessions).remove(&s.id);
        if let Some(u) = &s.user_id {
            let mut users = write(&self.users);
            if let Some(m) = users.get_mut(u) {
                m.remove(&s.id);
                if m.is_empty() {
                    users.remove(u);
                }
            }
        }
        log::debug!("hub {}: connection {} ended: {reason}", self.name, s.id);
        if let Some(up) = &self.upstream {
            up.disconnected(s.clone(), reason.to_string());
        }
        self.release_if_empty();
    }

    /// Leaves the registry once the last session is gone, so hubs do not accumulate.
    fn release_if_empty(&self) {
        if !read(&self.sessions).is_empty() {
            return;
        }
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let mut hubs = write(&registry);
        let key = self.name.to_lowercase();
        let registered = hubs.get(&key).is_some_and(|h| std::ptr::eq(&**h, self));
        // Checked again under the registry lock, which every insertion holds.
        if registered && read(&self.sessions).is_empty() {
            hubs.remove(&key);
            if hubs.capacity() > 64 && hubs.len() * 4 < hubs.capacity() {
                hubs.shrink_to_fit();
            }
            log::debug!("hub {}: no connections left, freed", self.name);
        }
    }

    /// Server-initiated close: `disconnected` system frame (PubSub clients), then close 1000,
    /// and the session is removed.
    pub fn close_session(&self, s: &Arc<Session>, reason: &str) {
        s.send(Control::Disconnected(reason));
        self.end_session(s, reason, Some(Outbound::Close(1000, reason.to_string())));
    }

    fn finish(&self, overflowed: Vec<(Arc<Session>, &'static str)>) {
        for (s, reason) in overflowed {
            // The session already ended itself and closed or cut its transport.
            self.unregister(&s, reason);
        }
    }

    fn fan_out<'a>(
        &self,
        targets: impl Iterator<Item = &'a Arc<Session>>,
        d: &Delivery,
        keep: &dyn Fn(&Session) -> bool,
    ) -> Vec<(Arc<Session>, &'static str)> {
        let mut overflowed = Vec::new();
        for s in targets {
            if !keep(s) {
                continue;
            }
            if let DeliverOutcome::Overflow(reason) = s.deliver(d) {
                overflowed.push((s.clone(), reason));
            }
        }
        overflowed
    }

    /// Delivers to every member of `group` for which `keep` holds, leaving the sessions that
    /// overflowed to the caller (who may hold a session lock unregistering must not meet).
    pub fn publish_group_deferred(
        &self,
        group: &str,
        d: &Delivery,
        keep: &dyn Fn(&Session) -> bool,
    ) -> Overflowed {
        let groups = read(&self.groups);
        Overflowed(match groups.get(group) {
            Some(m) => self.fan_out(m.values(), d, keep),
            None => Vec::new(),
        })
    }

    /// Unregisters the sessions a deferred fan-out ended.
    pub fn finish_overflowed(&self, o: Overflowed) {
        self.finish(o.0);
    }

    /// Delivers to every member of `group` for which `keep` holds.
    pub fn publish_group(&self, group: &str, d: &Delivery, keep: &dyn Fn(&Session) -> bool) {
        let overflowed = {
            let groups = read(&self.groups);
            match groups.get(group) {
                Some(m) => self.fan_out(m.values(), d, keep),
                None => Vec::new(),
            }
        };
        self.finish(overflowed);
    }

    /// Delivers to every session of the hub for which `keep` holds.
    pub fn publish_all(&self, d: &Delivery, keep: &dyn Fn(&Session) -> bool) {
        let overflowed = {
            let sessions = read(&self.sessions);
            self.fan_out(sessions.values(), d, keep)
        };
        self.finish(overflowed);
    }

    /// Delivers to every session of `user` for which `keep` holds.
    pub fn publish_user(&self, user: &str, d: &Delivery, keep: &dyn Fn(&Session) -> bool) {
        let overflowed = {
            let users = read(&self.users);
            match users.get(user) {
                Some(m) => self.fan_out(m.values(), d, keep),
                None => Vec::new(),
            }
        };
        self.finish(overflowed);
    }

    /// Delivers to one session.
    pub fn publish_connection(&self, s: &Arc<Session>, d: &Delivery) {
        if let DeliverOutcome::Overflow(reason) = s.deliver(d) {
            self.finish(vec![(s.clone(), reason)]);
        }
    }
}

/// Every hub of the emulator, keyed by lowercase name (hub names are case-insensitive). A hub
/// exists while it has sessions: the first authenticated connection creates it, the end of
/// its last session frees it, and nothing else (REST calls, refused handshakes) creates one.
#[derive(Default)]
pub struct Hubs {
    hubs: Arc<Registry>,
    upstream: Option<Arc<Upstream>>,
}

impl Hubs {
    pub fn new(upstream: Option<Arc<Upstream>>) -> Hubs {
        Hubs {
            hubs: Arc::default(),
            upstream,
        }
    }

    /// Adds a session to hub `name`, creating the hub if needed.
    pub fn register(&self, name: &str, s: &Arc<Session>) -> Arc<Hub> {
        let mut hubs = write(&self.hubs);
        let hub = hubs
            .entry(name.to_lowercase())
            .or_insert_with(|| {
                Arc::new(Hub::new(
                    name,
                    self.upstream.clone(),
                    Arc::downgrade(&self.hubs),
                ))
            })
            .clone();
        hub.insert(s);
        hub
    }

    /// The hub if it exists.
    pub fn find(&self, name: &str) -> Option<Arc<Hub>> {
        read(&self.hubs).get(&name.to_lowercase()).cloned()
    }

    /// The hub, or an empty one that is not registered (operations on it find nothing).
    pub fn find_or_empty(&self, name: &str) -> Arc<Hub> {
        self.find(name)
            .unwrap_or_else(|| Arc::new(Hub::new(name, self.upstream.clone(), Weak::new())))
    }

    /// The name a hub is known by (its first spelling while it exists).
    pub fn display_name(&self, name: &str) -> String {
        self.find(name)
            .map(|h| h.name.clone())
            .unwrap_or_else(|| name.to_string())
    }

    pub fn all(&self) -> Vec<Arc<Hub>> {
        read(&self.hubs).values().cloned().collect()
    }
}
