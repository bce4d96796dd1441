"""The group-state merge rules of ``GroupStateCache``, driven by a fake clock."""

from webpubsub_client import GroupStateCache, GroupStateRecord


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms


def rec(cid, updated_at, state=None, user=None):
    return GroupStateRecord(cid, user, state, updated_at)


def view(cache):
    return {r.connection_id: (r.state, r.updated_at) for r in cache.list()}


def make():
    clock = Clock()
    return GroupStateCache(clock=clock), clock


def test_snapshot_fills_and_update_replaces_only_with_newer_records():
    cache, _ = make()
    assert cache.apply([rec("a", 10, {"s": "1"}), rec("b", 10, {"s": "1"})], is_snapshot=True)
    assert not cache.apply([rec("a", 10, {"s": "equal"})], is_snapshot=False)  # equal: ignored
    assert not cache.apply([rec("a", 9, {"s": "older"})], is_snapshot=False)  # older: ignored
    assert cache.apply([rec("a", 11, {"s": "2"})], is_snapshot=False)
    assert view(cache) == {"a": ({"s": "2"}, 11), "b": ({"s": "1"}, 10)}


def test_updates_before_a_snapshot_keep_the_newer_entries():
    cache, _ = make()
    cache.apply([rec("a", 20, {"s": "new"})], is_snapshot=False)
    cache.apply([rec("a", 15, {"s": "old"}), rec("b", 5, {"s": "b"})], is_snapshot=True)
    assert view(cache) == {"a": ({"s": "new"}, 20), "b": ({"s": "b"}, 5)}


def test_recent_update_missing_from_a_snapshot_is_protected_then_pruned():
    cache, clock = make()
    cache.apply([rec("a", 1, {"s": "x"})], is_snapshot=False)
    clock.advance(299_999)
    cache.apply([], is_snapshot=True)
    assert view(cache) == {"a": ({"s": "x"}, 1)}
    clock.advance(1)
    assert cache.apply([], is_snapshot=True)
    assert view(cache) == {}


def test_snapshot_deletes_unprotected_records_it_does_not_list():
    cache, _ = make()
    cache.apply([rec("a", 1, {"s": "x"}), rec("b", 1, {"s": "y"})], is_snapshot=True)
    assert cache.apply([rec("b", 1, {"s": "y"})], is_snapshot=True)
    assert view(cache) == {"b": ({"s": "y"}, 1)}


def test_empty_snapshot_is_authoritative():
    cache, _ = make()
    cache.apply([rec("a", 1, {"s": "x"}), rec("b", 2, {"s": "y"})], is_snapshot=True)
    assert cache.apply([], is_snapshot=True)
    assert cache.list() == []


def test_clear_is_a_hidden_tombstone_an_older_snapshot_cannot_resurrect():
    cache, _ = make()
    cache.apply([rec("a", 10, {"s": "x"})], is_snapshot=True)
    assert cache.apply([rec("a", 11)], is_snapshot=False)  # cleared
    assert cache.list() == []
    assert cache.tombstone_count() == 1
    assert not cache.apply([rec("a", 10, {"s": "x"})], is_snapshot=True)  # stale snapshot
    assert cache.list() == []
    assert cache.apply([rec("a", 12, {"s": "again"})], is_snapshot=False)  # newer set wins
    assert view(cache) == {"a": ({"s": "again"}, 12)}
    assert cache.tombstone_count() == 0


def test_stale_update_after_a_clear_stays_hidden():
    cache, _ = make()
    cache.apply([rec("a", 11)], is_snapshot=False)
    assert not cache.apply([rec("a", 10, {"s": "stale"})], is_snapshot=False)
    assert cache.list() == []


def test_snapshot_is_accepted_after_the_tombstone_expired():
    cache, clock = make()
    cache.apply([rec("a", 11)], is_snapshot=False)
    clock.advance(300_000)
    assert cache.tombstone_count() == 0
    assert cache.apply([rec("a", 10, {"s": "back"})], is_snapshot=True)
    assert view(cache) == {"a": ({"s": "back"}, 10)}


def test_tombstones_are_capped_at_200_oldest_first():
    cache, clock = make()
    for i in range(201):
        clock.advance(1)
        cache.apply([rec(f"c{i}", 100)], is_snapshot=False)
    assert cache.tombstone_count() == 200
    # c0's tombstone was trimmed: an older snapshot record for it shows again; c1's was not
    cache.apply([rec("c0", 50, {"s": "0"}), rec("c1", 50, {"s": "1"})], is_snapshot=True)
    assert view(cache) == {"c0": ({"s": "0"}, 50)}


def test_records_returned_are_copies():
    cache, _ = make()
    state = {"s": "x"}
    cache.apply([rec("a", 1, state)], is_snapshot=True)
    state["s"] = "changed by the caller"
    listed = cache.list()
    listed[0].state["s"] = "changed again"
    assert view(cache) == {"a": ({"s": "x"}, 1)}


def test_clear_empties_everything():
    cache, _ = make()
    cache.apply([rec("a", 1, {"s": "x"}), rec("b", 2)], is_snapshot=False)
    cache.clear()
    assert cache.list() == [] and cache.tombstone_count() == 0
