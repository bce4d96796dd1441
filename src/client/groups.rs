//! The groups this client joined, to be rejoined on a new connection.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Joined groups; a group is recorded only after its join was acknowledged.
#[derive(Default)]
pub struct GroupRegistry {
    groups: Mutex<BTreeSet<String>>,
}

impl GroupRegistry {
    /// Records a successful join.
    pub fn joined(&self, group: &str) {
        self.lock().insert(group.to_owned());
    }

    /// Records a successful leave (or a failed rejoin).
    pub fn left(&self, group: &str) {
        self.lock().remove(group);
    }

    /// The groups to rejoin, in a stable order.
    pub fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_joins_and_leaves() {
        let r = GroupRegistry::default();
        r.joined("b");
        r.joined("a");
        r.joined("a");
        assert_eq!(r.snapshot(), vec!["a", "b"]);
        r.left("a");
        assert_eq!(r.snapshot(), vec!["b"]);
    }
}
