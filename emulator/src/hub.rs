//! Hubs and the router: which sessions exist, which groups they are in, which user they belong
//! to. Fan-out takes read locks only and never writes to a socket (writers drain per-connection
//! queues), so a slow client cannot stall anyone else.

use crate::session::{Control, DeliverOutcome, Delivery, Outbound, Session};
use crate::upstream::Upstream;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

type Members = HashMap<String, Arc<Session>>;

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
}

impl Hub {
    pub fn new(name: &str, upstream: Option<Arc<Upstream>>) -> Hub {
        Hub {
            name: name.to_string(),
            sessions: RwLock::default(),
            groups: RwLock::default(),
            users: RwLock::default(),
            upstream,
        }
    }

    /// Registers a session (and its user).
    pub fn insert(&self, s: &Arc<Session>) {
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
        s.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group);
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
        self.leave_all(s);
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
    }

    /// Server-initiated close: `disconnected` system frame (PubSub clients), then close 1000,
    /// and the session is removed.
    pub fn close_session(&self, s: &Arc<Session>, reason: &str) {
        s.send(Control::Disconnected(reason));
        self.end_session(s, reason, Some(Outbound::Close(1000, reason.to_string())));
    }

    fn finish(&self, overflowed: Vec<Arc<Session>>) {
        for s in overflowed {
            // The session already ended itself and sent its close frame.
            self.unregister(&s, "Reliable message buffer overflowed.");
        }
    }

    fn fan_out<'a>(
        &self,
        targets: impl Iterator<Item = &'a Arc<Session>>,
        d: &Delivery,
        keep: &dyn Fn(&Session) -> bool,
    ) -> Vec<Arc<Session>> {
        let mut overflowed = Vec::new();
        for s in targets {
            if keep(s) && s.deliver(d) == DeliverOutcome::Overflow {
                overflowed.push(s.clone());
            }
        }
        overflowed
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
        if s.deliver(d) == DeliverOutcome::Overflow {
            self.finish(vec![s.clone()]);
        }
    }
}

/// Every hub of the emulator, keyed by lowercase name (hub names are case-insensitive).
#[derive(Default)]
pub struct Hubs {
    hubs: RwLock<HashMap<String, Arc<Hub>>>,
    upstream: Option<Arc<Upstream>>,
}

impl Hubs {
    pub fn new(upstream: Option<Arc<Upstream>>) -> Hubs {
        Hubs {
            hubs: RwLock::default(),
            upstream,
        }
    }

    /// The hub, created on first use.
    pub fn hub(&self, name: &str) -> Arc<Hub> {
        let key = name.to_lowercase();
        if let Some(h) = read(&self.hubs).get(&key) {
            return h.clone();
        }
        write(&self.hubs)
            .entry(key)
            .or_insert_with(|| Arc::new(Hub::new(name, self.upstream.clone())))
            .clone()
    }

    /// The hub if it exists.
    pub fn find(&self, name: &str) -> Option<Arc<Hub>> {
        read(&self.hubs).get(&name.to_lowercase()).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Hub>> {
        read(&self.hubs).values().cloned().collect()
    }
}
