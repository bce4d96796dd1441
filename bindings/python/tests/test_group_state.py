"""Group state with the synchronous client against the emulator: set, clear, subscribe,
snapshots and updates, the cached view, and its renewal on a new connection."""

import pytest

from webpubsub_client import (
    CallbackType,
    OnGroupStateArgs,
    SendMessageError,
    WebPubSubClient,
    WebPubSubClientCredential,
    WebPubSubClientError,
)

from conftest import Recorder


def make_client(emulator, hub, user_id=None, **kwargs):
    return WebPubSubClient(
        WebPubSubClientCredential(lambda: emulator.client_url(hub, user_id=user_id)), **kwargs
    )


def record_states(client):
    events = Recorder()
    client.subscribe(CallbackType.GROUP_STATE, events.add)
    return events


def states(client, group):
    return {r.connection_id: r.state for r in client.list_group_states(group)}


def test_snapshot_update_clear_and_cached_view(emulator, hub):
    watcher = make_client(emulator, hub)
    member = make_client(emulator, hub, user_id="bob")
    events = record_states(watcher)
    with watcher, member:
        watcher.join_group("room")
        member.join_group("room")
        member.set_group_state("room", {"status": "away"})
        assert member.get_group_state("room") == {"status": "away"}
        watcher.subscribe_group_state("room")
        snap = events.wait_count(1)[0]
        assert isinstance(snap, OnGroupStateArgs) and snap.is_snapshot and snap.group == "room"
        assert [(r.connection_id, r.user_id, r.state) for r in snap.records] == [
            (member.connection_id, "bob", {"status": "away"})
        ]
        assert states(watcher, "room") == {member.connection_id: {"status": "away"}}

        member.set_group_state("room", {"status": "typing"})
        update = events.wait_count(2)[1]
        assert not update.is_snapshot and update.changed
        assert states(watcher, "room") == {member.connection_id: {"status": "typing"}}

        member.clear_group_state("room")
        cleared = events.wait_count(3)[2]
        assert cleared.records[0].state is None and cleared.changed
        assert member.get_group_state("room") is None
        assert watcher.list_group_states("room") == []


def test_own_state_is_listed_once_the_service_sends_it(emulator, hub):
    client = make_client(emulator, hub)
    events = record_states(client)
    with client:
        client.join_group("room")
        client.subscribe_group_state("room")
        events.wait_count(1)
        assert client.list_group_states("room") == []
        client.set_group_state("room", {"k": "v"})
        events.wait_count(2)
        assert states(client, "room") == {client.connection_id: {"k": "v"}}


def test_unsubscribe_drops_the_cache(emulator, hub):
    client = make_client(emulator, hub)
    events = record_states(client)
    with client:
        client.join_group("room")
        with pytest.raises(WebPubSubClientError):
            client.list_group_states("room")
        client.subscribe_group_state("room")
        events.wait_count(1)
        client.unsubscribe_group_state("room")
        with pytest.raises(WebPubSubClientError):
            client.list_group_states("room")


def test_set_state_outside_the_group_is_refused(emulator, hub):
    client = make_client(emulator, hub)
    with client:
        with pytest.raises(SendMessageError) as info:
            client.set_group_state("not-joined", {"k": "v"})
    assert info.value.error_detail.name == "BadRequest"
    with pytest.raises(TypeError):
        client.set_group_state("g", {"k": 1})


def test_member_leaving_clears_its_record(emulator, hub):
    watcher = make_client(emulator, hub)
    member = make_client(emulator, hub)
    events = record_states(watcher)
    with watcher:
        watcher.join_group("room")
        watcher.subscribe_group_state("room")
        events.wait_count(1)
        with member:
            member.join_group("room")
            member.set_group_state("room", {"here": "yes"})
            events.wait_for(lambda items: any(states(watcher, "room")) or False)
        events.wait_for(lambda items: watcher.list_group_states("room") == [])


def test_new_connection_empties_the_cache_and_renewal_refills_it(emulator, hub):
    watcher = make_client(emulator, hub, message_retry_total=10)
    member = make_client(emulator, hub)
    events = record_states(watcher)
    connected = Recorder()
    watcher.subscribe(CallbackType.CONNECTED, connected.add)
    with watcher, member:
        watcher.join_group("room")
        member.join_group("room")
        member.set_group_state("room", {"s": "1"})
        watcher.subscribe_group_state("room")
        events.wait_count(1)
        assert states(watcher, "room") == {member.connection_id: {"s": "1"}}
        first = watcher.connection_id
        emulator.expire(hub, first)  # the session cannot be recovered: a new connection follows
        connected.wait_count(2)
        renewed = events.wait_for(lambda items: len(items) >= 2 and items[-1].is_snapshot)[-1]
        assert watcher.connection_id != first
        assert renewed.is_snapshot
        assert states(watcher, "room") == {member.connection_id: {"s": "1"}}


def test_records_from_before_a_new_connection_are_not_kept(emulator, hub):
    """A record that arrived in an update is protected against a snapshot that omits it, but
    a new connection starts from an empty view: the renewal's snapshot alone decides."""
    member = make_client(emulator, hub)
    calls = []

    def provide_url():
        # Called for each new connection (not for recovery): before the second one, the
        # member leaves the group, so the watcher never sees that record cleared.
        calls.append(1)
        if len(calls) == 2:
            member.leave_group("room")
        return emulator.client_url(hub)

    watcher = WebPubSubClient(WebPubSubClientCredential(provide_url), message_retry_total=10)
    events = record_states(watcher)
    with watcher, member:
        watcher.join_group("room")
        member.join_group("room")
        watcher.subscribe_group_state("room")
        events.wait_count(1)
        member.set_group_state("room", {"s": "1"})
        events.wait_count(2)  # the update: a protected record
        assert states(watcher, "room") == {member.connection_id: {"s": "1"}}
        emulator.expire(hub, watcher.connection_id)
        renewed = events.wait_for(lambda items: len(items) >= 3 and items[-1].is_snapshot)[-1]
        assert len(calls) == 2
        assert renewed.records == []
        assert watcher.list_group_states("room") == []
