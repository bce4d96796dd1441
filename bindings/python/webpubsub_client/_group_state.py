"""The cached view of a group's state (``list_group_states``).

A :class:`GroupStateCache` folds the snapshots and updates of one subscribed group into one
record per connection, with these rules:

* A record replaces the stored one of its connection only if its ``updated_at`` is newer; an
  equal or older one is ignored.
* A record that arrived in an update is protected for :attr:`GroupStateCache.PROTECT_MS`
  (300000 ms) after it was received: a snapshot that does not list it leaves it in place
  (the snapshot may have been taken before the update).
* A snapshot deletes every unprotected record it does not list; an empty snapshot is
  authoritative and empties the view.
* A cleared record (no state) is kept as a hidden tombstone so that an older snapshot cannot
  bring the state back. Tombstones expire :attr:`GroupStateCache.TOMBSTONE_TTL_MS` (300000 ms)
  after they were received; at most :attr:`GroupStateCache.MAX_TOMBSTONES` (200) are kept, the
  oldest removed first.

Times are read from ``clock`` (milliseconds, monotonic), so tests can drive them. The cache is
safe to use from several threads.
"""

import collections
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from .models._models import GroupStateRecord


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class _Entry:
    __slots__ = ("record", "protected_until")

    def __init__(self, record: GroupStateRecord, protected_until: Optional[float]) -> None:
        self.record = record
        self.protected_until = protected_until


def records_from_json(items: Any) -> List[GroupStateRecord]:
    """Records from the decoded ``data`` of a group-state event (a JSON array of
    ``{connectionId, userId, state, updatedAt}``); malformed items are skipped."""
    out: List[GroupStateRecord] = []
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        cid = item.get("connectionId")
        updated = item.get("updatedAt")
        if not isinstance(cid, str) or not isinstance(updated, (int, float)) or isinstance(updated, bool):
            continue
        state = item.get("state")
        if state is not None:
            if not isinstance(state, dict):
                continue
            state = {str(k): str(v) for k, v in state.items()}
        user = item.get("userId")
        out.append(GroupStateRecord(cid, user if isinstance(user, str) else None, state, int(updated)))
    return out


class GroupStateCache:
    """The merged view of one group's state records (see the module documentation)."""

    PROTECT_MS = 300_000
    TOMBSTONE_TTL_MS = 300_000
    MAX_TOMBSTONES = 200

    def __init__(self, clock: Callable[[], float] = _monotonic_ms) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: Dict[str, _Entry] = {}
        # connection id -> expiry time, in the order the tombstones were recorded
        self._tombstones: "collections.OrderedDict[str, float]" = collections.OrderedDict()

    # -- reading

    def list(self) -> List[GroupStateRecord]:
        """Copies of the records that have a state."""
        with self._lock:
            self._expire(self._clock())
            return [e.record.copy() for e in self._entries.values() if e.record.state is not None]

    def tombstone_count(self) -> int:
        """How many cleared records are kept hidden."""
        with self._lock:
            self._expire(self._clock())
            return len(self._tombstones)

    # -- applying events

    def apply(self, records: Iterable[GroupStateRecord], is_snapshot: bool) -> bool:
        """Fold a snapshot or an update in; returns whether the visible view changed."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            before = self._visible()
            listed = set()
            for rec in records:
                listed.add(rec.connection_id)
                self._store(rec.copy(), now, protect=not is_snapshot)
            if is_snapshot:
                for cid in [c for c in self._entries if c not in listed]:
                    entry = self._entries[cid]
                    if entry.record.state is None:
                        continue  # a tombstone lives until it expires
                    if entry.protected_until is not None and entry.protected_until > now:
                        continue
                    del self._entries[cid]
            return self._visible() != before

    def clear(self) -> None:
        """Forget everything (a new connection: the renewal's snapshot refills the view)."""
        with self._lock:
            self._entries.clear()
            self._tombstones.clear()

    # -- internals (lock held)

    def _store(self, rec: GroupStateRecord, now: float, protect: bool) -> None:
        cid = rec.connection_id
        old = self._entries.get(cid)
        if old is not None and rec.updated_at <= old.record.updated_at:
            return
        self._entries[cid] = _Entry(rec, now + self.PROTECT_MS if protect else None)
        self._tombstones.pop(cid, None)
        if rec.state is None:
            self._tombstones[cid] = now + self.TOMBSTONE_TTL_MS
            while len(self._tombstones) > self.MAX_TOMBSTONES:
                oldest, _ = self._tombstones.popitem(last=False)
                self._entries.pop(oldest, None)

    def _expire(self, now: float) -> None:
        while self._tombstones:
            cid, expires = next(iter(self._tombstones.items()))
            if expires > now:
                break
            del self._tombstones[cid]
            self._entries.pop(cid, None)

    def _visible(self) -> Dict[str, Any]:
        return {
            cid: (e.record.user_id, e.record.state, e.record.updated_at)
            for cid, e in self._entries.items()
            if e.record.state is not None
        }


__all__ = ["GroupStateCache", "records_from_json"]
