"""Recovery, auto-reconnect and no-reconnect scenarios of the official live suite (sync)."""

import threading

import pytest

from webpubsub_client import SendMessageError, WebPubSubClient, WebPubSubClientCredential, WebPubSubProtocolType

from conftest import WAIT, wait_until


def make_client(emulator, hub, **kwargs):
    return WebPubSubClient(WebPubSubClientCredential(lambda: emulator.client_url(hub)), **kwargs)


def test_recovery_keeps_connection_id(emulator, hub, recorder):
    client = make_client(emulator, hub, message_retry_total=10)
    connected, disconnected = [], []
    client.subscribe("connected", lambda e: connected.append(e.connection_id))
    client.subscribe("disconnected", lambda e: disconnected.append(e))
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with client:
        conn_id0 = client.connection_id
        assert conn_id0
        client.join_group("recovery")
        emulator.drop(hub, conn_id0)
        client.send_to_group("recovery", "test_recovery", "text")
        recorder.wait_for(lambda items: "test_recovery" in items)
        conn_id1 = client.connection_id
    assert conn_id0 == conn_id1
    assert connected == [conn_id0], "recovery must not fire 'connected' again"
    assert disconnected == [] or all(d.connection_id == conn_id0 for d in disconnected[-1:])


def test_recovery_no_duplicate_delivery(emulator, hub, recorder):
    client = make_client(emulator, hub, message_retry_total=10)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with client:
        client.join_group("g")
        for i in range(20):
            client.send_to_group("g", f"m{i}", "text")
            if i == 10:
                emulator.drop(hub, client.connection_id)
        items = recorder.wait_for(lambda items: "m19" in items)
        client.send_to_group("g", "end", "text")
        items = recorder.wait_for(lambda items: "end" in items)
    assert items == [f"m{i}" for i in range(20)] + ["end"]


def test_auto_reconnect_new_id_and_rejoin(emulator, hub, recorder):
    client = make_client(emulator, hub, protocol_type=WebPubSubProtocolType.JSON, message_retry_total=10)
    ids = []
    reconnected = threading.Event()

    def on_connected(e):
        ids.append(e.connection_id)
        if len(ids) == 2:
            reconnected.set()

    client.subscribe("connected", on_connected)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with client:
        conn_id0 = client.connection_id
        client.join_group("reconnect")
        emulator.close(hub, conn_id0, 1001)
        assert reconnected.wait(WAIT)
        wait_until(lambda: any("reconnect" in c["groups"] for c in emulator.connections(hub)), what="rejoined")
        client.send_to_group("reconnect", "test_auto_connect", "text")
        recorder.wait_for(lambda items: "test_auto_connect" in items)
        conn_id1 = client.connection_id
    assert conn_id0 != conn_id1
    assert ids == [conn_id0, conn_id1]


def test_expired_session_reconnects(emulator, hub):
    """Recovery answered with 1008 (session gone): the client reconnects with a new id."""
    client = make_client(emulator, hub)
    ids = []
    two = threading.Event()
    client.subscribe("connected", lambda e: (ids.append(e.connection_id), len(ids) == 2 and two.set()))
    disconnected = threading.Event()
    client.subscribe("disconnected", lambda e: disconnected.set())
    with client:
        emulator.expire(hub, client.connection_id)
        assert disconnected.wait(WAIT)
        assert two.wait(WAIT)
    assert ids[0] != ids[1]


def test_no_recovery_no_reconnect_send_raises(emulator, hub, recorder):
    client = make_client(
        emulator, hub, reconnect_retry_total=0, protocol_type=WebPubSubProtocolType.JSON, message_retry_total=1
    )
    stopped = threading.Event()
    client.subscribe("stopped", stopped.set)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with client:
        client.join_group("g")
        emulator.close(hub, client.connection_id, 1001)
        assert stopped.wait(WAIT)
        assert not client.is_connected()
        with pytest.raises(SendMessageError):
            client.send_to_group("g", "never", "text")
    assert "never" not in recorder.snapshot()


def test_no_reconnect_concurrent_senders(emulator, hub):
    client = make_client(
        emulator, hub, reconnect_retry_total=0, protocol_type=WebPubSubProtocolType.JSON, message_retry_total=3
    )
    stopped = threading.Event()
    client.subscribe("stopped", stopped.set)
    results = {}

    def send(i):
        try:
            client.send_to_group("g", f"hello_{i}", "text")
            results[i] = None
        except Exception as e:  # noqa: BLE001
            results[i] = e

    with client:
        client.join_group("g")
        threads = []
        for i in range(100):
            if i == 51:
                emulator.close(hub, client.connection_id, 1001)
                assert stopped.wait(WAIT)
            t = threading.Thread(target=send, args=(i,))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(WAIT)
            assert not t.is_alive()
    assert all(isinstance(results[i], SendMessageError) for i in range(51, 100))


def test_send_concurrently(emulator, hub, recorder):
    client = make_client(emulator, hub)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    errors = []

    def send(i):
        try:
            client.send_to_group("concurrent", f"hello_{i}", "text")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    with client:
        client.join_group("concurrent")
        threads = [threading.Thread(target=send, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
            assert not t.is_alive()
        items = recorder.wait_count(100)
    assert errors == []
    assert sorted(items) == sorted(f"hello_{i}" for i in range(100))
