"""Callback behaviour: order, one at a time, data conversion, listener errors, event set."""

import json
import threading

import pytest

from webpubsub_client import (
    CallbackType,
    OnServerDataMessageArgs,
    WebPubSubClient,
    WebPubSubClientCredential,
    WebPubSubDataType,
    WebPubSubProtocolType,
)


def make_client(emulator, hub, **kwargs):
    return WebPubSubClient(WebPubSubClientCredential(lambda: emulator.client_url(hub)), **kwargs)


def test_callbacks_in_order_one_at_a_time(emulator, hub, recorder):
    client = make_client(emulator, hub)
    active = []
    overlaps = []
    lock = threading.Lock()
    slow = threading.Event()  # never set: each callback waits a little to widen any overlap

    def on_message(m):
        with lock:
            active.append(1)
            if len(active) > 1:
                overlaps.append(m.data)
        slow.wait(0.002)
        with lock:
            active.pop()
        recorder.add(m.data)

    client.subscribe(CallbackType.GROUP_MESSAGE, on_message)
    with client:
        client.join_group("order")
        for i in range(200):
            client.send_to_group("order", f"{i}", "text", fire_and_forget=True)
        items = recorder.wait_count(200)
    assert overlaps == []
    assert items == [str(i) for i in range(200)]


def test_data_types_round_trip(emulator, hub, recorder):
    client = make_client(emulator, hub)
    client.subscribe("group-message", recorder.add)
    with client:
        client.join_group("types")
        client.send_to_group("types", "hello", WebPubSubDataType.TEXT)
        client.send_to_group("types", {"a": [1, 2, {"b": None}]}, "json")
        client.send_to_group("types", memoryview(b"\x00\x01bin\xff"), "binary")
        client.send_to_group("types", b"\x08\x96\x01", WebPubSubDataType.PROTOBUF)
        client.send_to_group("types", 42, "json")
        msgs = recorder.wait_count(5)
    assert [m.data_type for m in msgs] == ["text", "json", "binary", "protobuf", "json"]
    assert msgs[0].data == "hello" and isinstance(msgs[0].data, str)
    assert msgs[1].data == {"a": [1, 2, {"b": None}]}
    assert isinstance(msgs[2].data, memoryview) and bytes(msgs[2].data) == b"\x00\x01bin\xff"
    assert bytes(msgs[3].data) == b"\x08\x96\x01"
    assert msgs[4].data == 42
    assert all(m.group == "types" for m in msgs)


def test_server_message_from_service_sdk(emulator, hub, recorder):
    client = make_client(emulator, hub)
    client.subscribe("server-message", recorder.add)
    with client:
        emulator.service(hub).send_to_all({"hello": "server"}, content_type="application/json")
        (msg,) = recorder.wait_count(1)
    assert isinstance(msg, OnServerDataMessageArgs)
    assert msg.data_type == WebPubSubDataType.JSON
    assert msg.data == {"hello": "server"}


def test_listener_exception_is_logged_and_others_still_run(emulator, hub, recorder, caplog):
    client = make_client(emulator, hub)

    def bad(_m):
        raise RuntimeError("listener failure")

    client.subscribe("group-message", bad)
    client.subscribe("group-message", lambda m: recorder.add(m.data))
    with caplog.at_level("ERROR", logger="webpubsub_client"):
        with client:
            client.join_group("g")
            client.send_to_group("g", "one", "text")
            client.send_to_group("g", "two", "text")
            assert recorder.wait_count(2) == ["one", "two"]
    assert any("listener failure" in (r.exc_text or "") or "listener" in r.getMessage() for r in caplog.records)


def test_event_sequence_and_unsubscribe(emulator, hub, recorder):
    client = make_client(emulator, hub)
    for kind in ("connected", "disconnected", "stopped"):
        if kind == "stopped":
            client.subscribe(kind, lambda k=kind: recorder.add(k))
        else:
            client.subscribe(kind, lambda e, k=kind: recorder.add(k))
    extra = []
    listener = lambda m: extra.append(m)  # noqa: E731
    client.subscribe("group-message", listener)
    client.unsubscribe("group-message", listener)
    with client:
        client.join_group("g")
        client.send_to_group("g", "x", "text")
    items = recorder.wait_for(lambda items: "stopped" in items)
    assert items[0] == "connected" and items[-1] == "stopped"
    assert items.count("stopped") == 1
    assert extra == []


def test_registrations_survive_restart(emulator, hub, recorder):
    client = make_client(emulator, hub)
    client.on("connected", lambda e: recorder.add(e.connection_id))
    for _ in range(3):
        with client:
            pass
    ids = recorder.wait_count(3)
    assert len(set(ids)) == 3


def test_logging_enable_forwards_native_logs(emulator, hub, caplog):
    with caplog.at_level("DEBUG", logger="webpubsub_client.native"):
        client = make_client(emulator, hub, logging_enable=True)
        with client:
            client.join_group("g")
    native = [r for r in caplog.records if r.name == "webpubsub_client.native"]
    assert native, "no native log line reached Python logging"
    assert not any("access_token=ey" in r.getMessage() for r in native), "tokens must be redacted"


@pytest.mark.parametrize("protocol", list(WebPubSubProtocolType))
def test_every_subprotocol_round_trip(emulator, hub, recorder, protocol):
    client = make_client(emulator, hub, protocol_type=protocol)
    client.subscribe("group-message", recorder.add)
    with client:
        client.join_group("p")
        client.send_to_group("p", "text", "text")
        client.send_to_group("p", {"j": 1}, "json")
        client.send_to_group("p", b"\x01\x02", "binary")
        msgs = recorder.wait_count(3)
        assert [c["subprotocol"] for c in emulator.connections(hub)] == [protocol.value]
    assert msgs[0].data == "text"
    if protocol.value.startswith("json"):
        assert msgs[1].data_type == "json" and msgs[1].data == {"j": 1}
    else:
        # protobuf clients send JSON payloads as text_data (as the C# protobuf client does)
        assert msgs[1].data_type in ("json", "text")
        assert (msgs[1].data if msgs[1].data_type == "json" else json.loads(msgs[1].data)) == {"j": 1}
    assert bytes(msgs[2].data) == b"\x01\x02"
    reliable = "reliable" in protocol.value
    assert all((m.sequence_id is not None) == reliable for m in msgs)


def test_library_threads_keep_python_thread_state_between_callbacks(emulator, hub, recorder):
    """A library callback thread keeps one Python thread state: thread-local data set by a
    listener is still there in the next callback on that thread (a thread state created per
    callback would start empty each time)."""
    client = make_client(emulator, hub)
    local = threading.local()
    seen_again = []

    def on_message(m):
        if getattr(local, "mark", None) == threading.get_ident():
            seen_again.append(m.data)
        local.mark = threading.get_ident()
        recorder.add(m.data)

    client.subscribe(CallbackType.GROUP_MESSAGE, on_message)
    with client:
        client.join_group("tls")
        for i in range(50):
            client.send_to_group("tls", f"{i}", "text", fire_and_forget=True)
        recorder.wait_count(50)
    # 50 callbacks ran on at most a few library threads, so most of them found their mark.
    assert len(seen_again) >= 40
