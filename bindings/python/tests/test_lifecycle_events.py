"""The recovery and session-lost signals (beyond the official SDK): order and fields."""

import threading

import pytest

from webpubsub_client import (
    CallbackType,
    OnRecoveredArgs,
    OnRecoveringArgs,
    OnSessionLostArgs,
    SendMessageError,
    WebPubSubClient,
    WebPubSubClientCredential,
)

from conftest import WAIT, wait_until


def make_client(emulator, hub, **kwargs):
    return WebPubSubClient(WebPubSubClientCredential(lambda: emulator.client_url(hub)), **kwargs)


def record_lifecycle(client):
    events = []
    lock = threading.Lock()
    changed = threading.Condition(lock)

    def add(name):
        def listener(*args):
            with changed:
                events.append((name, args[0] if args else None))
                changed.notify_all()

        return listener

    for kind in ("connected", "disconnected", "recovering", "recovered", "session-lost"):
        client.subscribe(kind, add(kind))

    def wait_for(name, count=1):
        with changed:
            ok = changed.wait_for(lambda: sum(1 for e in events if e[0] == name) >= count, WAIT)
            assert ok, f"no {name} within {WAIT} s: {events}"
            return list(events)

    return events, wait_for


def test_new_callback_types_have_their_names():
    assert CallbackType("recovering") is CallbackType.RECOVERING
    assert CallbackType("recovered") is CallbackType.RECOVERED
    assert CallbackType("session-lost") is CallbackType.SESSION_LOST


def test_drop_gives_recovering_then_recovered_and_no_second_connected(emulator, hub, recorder):
    client = make_client(emulator, hub, message_retry_total=10)
    events, wait_for = record_lifecycle(client)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with client:
        conn = client.connection_id
        client.join_group("g")
        emulator.drop(hub, conn)
        client.send_to_group("g", "after", "text")
        recorder.wait_for(lambda items: "after" in items)
        seen = wait_for("recovered")
    names = [e[0] for e in seen]
    assert names[:3] == ["connected", "recovering", "recovered"], names
    assert isinstance(seen[1][1], OnRecoveringArgs) and seen[1][1].connection_id == conn
    assert isinstance(seen[2][1], OnRecoveredArgs) and seen[2][1].connection_id == conn


def test_expired_session_reports_session_lost_before_disconnected(emulator, hub, recorder):
    client = make_client(emulator, hub, message_retry_total=10)
    events, wait_for = record_lifecycle(client)
    sequence_ids = []
    client.subscribe("group-message", lambda m: (sequence_ids.append(m.sequence_id), recorder.add(m.data)))
    with client:
        conn = client.connection_id
        client.join_group("g")
        for i in range(3):
            client.send_to_group("g", f"m{i}", "text")
        recorder.wait_for(lambda items: "m2" in items)
        emulator.expire(hub, conn)
        seen = wait_for("connected", 2)
    names = [e[0] for e in seen]
    assert names == ["connected", "recovering", "session-lost", "disconnected", "connected"], names
    lost = seen[2][1]
    assert isinstance(lost, OnSessionLostArgs)
    assert lost.connection_id == conn
    assert lost.last_sequence_id == max(sequence_ids)
    assert lost.message and "1008" in lost.message
    assert seen[3][1].connection_id == conn
    assert seen[4][1].connection_id != conn


def test_get_stats_counts_sends_receives_and_recoveries(emulator, hub, recorder):
    client = make_client(emulator, hub, message_retry_total=10)
    events, wait_for = record_lifecycle(client)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    before = client.get_stats()
    assert before["state"] == "stopped"
    assert before["messages_sent"] == 0
    with client:
        client.join_group("g")
        for i in range(4):
            client.send_to_group("g", f"s{i}", "text")
        recorder.wait_for(lambda items: "s3" in items)
        stats = client.get_stats()
        assert stats["state"] == "connected"
        assert stats["connects"] == 1
        assert stats["messages_sent"] == 5
        assert stats["acks_ok"] == 5
        assert stats["messages_received"] == 4
        assert stats["bytes_received"] > 0 and stats["bytes_sent"] > 0
        assert stats["inflight_acks"] == 0 and stats["queued_messages"] == 0
        emulator.drop(hub, client.connection_id)
        wait_for("recovered")
        assert client.get_stats()["recoveries"] == 1
    assert client.get_stats()["state"] == "stopped"


def test_offline_queue_sends_made_before_open_once_connected(emulator, hub, recorder):
    receiver = make_client(emulator, hub)
    receiver.subscribe("group-message", lambda m: recorder.add(m.data))
    sender = make_client(emulator, hub, offline_queue_max_messages=10, offline_queue_max_bytes=1024)
    results = []
    with receiver:
        receiver.join_group("offline")
        early = threading.Thread(target=lambda: results.append(sender.send_to_group("offline", "early", "text")))
        early.start()
        wait_until(lambda: sender.get_stats()["inflight_acks"] == 1, what="the early send is queued")
        assert not sender.is_connected()
        with sender:
            early.join(WAIT)
            assert not early.is_alive()
            recorder.wait_for(lambda items: "early" in items)
    assert len(results) == 1


def test_offline_queue_limits_are_checked():
    with pytest.raises(ValueError):
        WebPubSubClient(
            "ws://127.0.0.1:9/client/hubs/h?access_token=t", offline_queue_max_messages=1, offline_queue_max_bytes=-1
        )


def test_offline_queue_holds_fire_and_forget_sends_in_order_with_acked_ones(emulator, hub, recorder):
    receiver = make_client(emulator, hub)
    receiver.subscribe("group-message", lambda m: recorder.add(m.data))
    sender = make_client(emulator, hub, offline_queue_max_messages=10)
    results = []

    def send(data, **kwargs):
        return threading.Thread(target=lambda: results.append(sender.send_to_group("offline-ff", data, "text", **kwargs)))

    with receiver:
        receiver.join_group("offline-ff")
        # One after the other, so that their order in the queue is known.
        first = send("ff-0", fire_and_forget=True)
        first.start()
        wait_until(lambda: sender.get_stats()["queued_messages"] == 1, what="the fire-and-forget send is queued")
        second = send("acked-1")
        second.start()
        wait_until(lambda: sender.get_stats()["queued_messages"] == 2, what="the acked send is queued")
        assert not sender.is_connected()
        with sender:
            for t in (first, second):
                t.join(WAIT)
                assert not t.is_alive()
            assert recorder.wait_for(lambda items: len(items) >= 2) == ["ff-0", "acked-1"]
            assert sender.get_stats()["queued_messages"] == 0
    assert len(results) == 2


def test_without_the_offline_queue_a_fire_and_forget_send_before_open_fails(emulator, hub):
    sender = make_client(emulator, hub)
    with pytest.raises(SendMessageError) as caught:
        sender.send_to_group("g", "x", "text", fire_and_forget=True)
    assert caught.value.error_detail.name == "WPS_ERR_NOT_CONNECTED"
