"""Smoke scenarios of the official SDK's live suite, for the sync client."""

import threading
import time

import pytest

from webpubsub_client import (
    OnGroupDataMessageArgs,
    OpenClientError,
    SendMessageError,
    WebPubSubClient,
    WebPubSubClientCredential,
)

from conftest import WAIT


def make_client(emulator, hub, **kwargs):
    credential = WebPubSubClientCredential(lambda: emulator.client_url(hub))
    return WebPubSubClient(credential, **kwargs)


def test_send_from_inside_group_message_callback(emulator, hub, recorder):
    client = make_client(emulator, hub)
    group = "deadlock"

    def on_group_message(msg: OnGroupDataMessageArgs):
        recorder.add(msg.data)
        if not msg.data.startswith("echo:"):
            # a blocking, acked send from inside the callback must not deadlock
            client.send_to_group(group, "echo:" + msg.data, "text")

    with client:
        client.join_group(group)
        client.subscribe("group-message", on_group_message)
        for i in range(3):
            client.send_to_group(group, f"hello{i}", "text")
        items = recorder.wait_count(6)
    assert sorted(items) == sorted([f"hello{i}" for i in range(3)] + [f"echo:hello{i}" for i in range(3)])


def test_context_manager_and_sequence_id(emulator, hub, recorder):
    client = make_client(emulator, hub)
    client.subscribe("group-message", recorder.add)
    with client:
        assert client.is_connected()
        client.join_group("ctx")
        client.send_to_group("ctx", "test_context_manager", "text")
        (msg,) = recorder.wait_count(1)
        assert msg.data == "test_context_manager"
        assert msg.sequence_id is not None and msg.sequence_id > 0
    assert not client.is_connected()


def test_restart_from_inside_stopped(emulator, hub):
    client = make_client(emulator, hub)
    connected = threading.Semaphore(0)
    stopped = threading.Semaphore(0)
    client.subscribe("connected", lambda e: connected.release())

    def on_stop():
        stopped.release()
        client.open()

    with client:
        assert connected.acquire(timeout=WAIT)
        client.subscribe("stopped", on_stop)
        client.close()
        assert stopped.acquire(timeout=WAIT)
        assert connected.acquire(timeout=WAIT), "the client was not reopened from inside 'stopped'"
        assert client.is_connected()
        client.unsubscribe("stopped", on_stop)
        client.close()
        assert not client.is_connected()


def test_duplicated_open_raises(emulator, hub):
    client = make_client(emulator, hub)
    with pytest.raises(OpenClientError):
        with client:
            client.open()
    assert not client.is_connected()


def test_duplicated_close(emulator, hub):
    client = make_client(emulator, hub)
    with client:
        client.close()
        client.close()
    client.close()
    assert not client.is_connected()


def test_send_event_without_handler_is_internal_server_error(emulator, hub):
    client = make_client(emulator, hub, message_retry_total=0)
    with client:
        with pytest.raises(SendMessageError) as err:
            client.send_event("event", "test_send_event", "text")
        assert err.value.error_detail.name == "InternalServerError"
        # Fire-and-forget events get no answer, so they succeed once written.
        client.send_event("event", {"k": 1}, "json", ack=False)


def test_send_event_handler_failure(failing_upstream_emulator, hub):
    client = make_client(failing_upstream_emulator, hub, message_retry_total=0)
    with client:
        with pytest.raises(SendMessageError) as err:
            client.send_event("event", "test_send_event", "text")
    assert err.value.error_detail.name == "InternalServerError"
    assert err.value.ack_id is not None


@pytest.mark.parametrize("auto_rejoin", [True, False])
def test_rejoin_group_after_reopen(emulator, hub, recorder, auto_rejoin):
    client = make_client(emulator, hub, auto_rejoin_groups=auto_rejoin)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    connected = threading.Semaphore(0)
    client.subscribe("connected", lambda e: connected.release())
    group = "rejoin"
    with client:
        client.join_group(group)
    with client:
        assert connected.acquire(timeout=WAIT) and connected.acquire(timeout=WAIT)
        if auto_rejoin:
            # the rejoin runs right after connecting; the emulator shows the membership
            from conftest import wait_until

            wait_until(lambda: any(group in c["groups"] for c in emulator.connections(hub)), what="rejoined")
        client.send_to_group(group, "after-reopen", "text")
        # a marker through a second group proves delivery has caught up
        client.join_group("marker")
        client.send_to_group("marker", "marker", "text")
        items = recorder.wait_for(lambda items: "marker" in items)
    assert ("after-reopen" in items) == auto_rejoin


def test_open_against_dead_host_fails_within_start_timeout():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    client = WebPubSubClient(f"ws://127.0.0.1:{port}/client/hubs/h?access_token=x", start_timeout=3.0)
    start = time.monotonic()
    with pytest.raises(OpenClientError) as err:
        with client:
            pass
    assert time.monotonic() - start < 3.0 + 1.0
    # The official client's wording, which its own test_open_client_error looks for.
    assert "During the process, an error occurred" in str(err.value)
    assert not client.is_connected()


def test_open_times_out_against_silent_server():
    """A server that accepts TCP but never answers: open fails after start_timeout."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    try:
        client = WebPubSubClient(f"ws://127.0.0.1:{port}/client/hubs/h?access_token=x", start_timeout=1.0)
        start = time.monotonic()
        with pytest.raises(OpenClientError):
            client.open()
        elapsed = time.monotonic() - start
        assert 0.5 <= elapsed < 4.0
    finally:
        server.close()
