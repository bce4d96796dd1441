"""The official live-suite scenarios for the asyncio client (plus ordering and loop-only checks)."""

import asyncio
import threading
import time

import pytest

from webpubsub_client import OpenClientError, SendMessageError, WebPubSubProtocolType
from webpubsub_client.aio import WebPubSubClient, WebPubSubClientCredential

from conftest import WAIT


def make_client(emulator, hub, **kwargs):
    async def provider():
        return emulator.client_url(hub)

    return WebPubSubClient(WebPubSubClientCredential(provider), **kwargs)


class AsyncRecorder:
    def __init__(self):
        self.items = []
        self.changed = asyncio.Event()

    def add(self, item):
        self.items.append(item)
        self.changed.set()

    async def wait_for(self, predicate, timeout=WAIT):
        async def loop():
            while not predicate(self.items):
                self.changed.clear()
                await self.changed.wait()
            return list(self.items)

        return await asyncio.wait_for(loop(), timeout)

    async def wait_count(self, n, timeout=WAIT):
        return await self.wait_for(lambda items: len(items) >= n, timeout)


async def test_send_from_inside_group_message_callback(emulator, hub):
    rec = AsyncRecorder()
    client = make_client(emulator, hub)

    async def on_group_message(msg):
        rec.add(msg.data)
        if not msg.data.startswith("echo:"):
            await client.send_to_group("g", "echo:" + msg.data, "text")

    async with client:
        await client.join_group("g")
        await client.subscribe("group-message", on_group_message)
        for i in range(3):
            await client.send_to_group("g", f"hello{i}", "text")
        items = await rec.wait_count(6)
    assert sorted(items) == sorted([f"hello{i}" for i in range(3)] + [f"echo:hello{i}" for i in range(3)])


async def test_context_manager_and_sequence_id(emulator, hub):
    rec = AsyncRecorder()
    client = make_client(emulator, hub)
    await client.subscribe("group-message", rec.add)
    async with client:
        assert client.is_connected()
        await client.join_group("ctx")
        await client.send_to_group("ctx", "test_context_manager", "text")
        (msg,) = await rec.wait_count(1)
        assert msg.sequence_id and msg.sequence_id > 0
    assert not client.is_connected()


async def test_restart_from_inside_stopped(emulator, hub):
    client = make_client(emulator, hub)
    rec = AsyncRecorder()
    await client.subscribe("connected", lambda e: rec.add("connected"))

    async def on_stop():
        rec.add("stopped")
        await client.open()

    async with client:
        await rec.wait_count(1)
        await client.subscribe("stopped", on_stop)
        await client.close()
        items = await rec.wait_count(3)
        assert items == ["connected", "stopped", "connected"]
        assert client.is_connected()
        await client.unsubscribe("stopped", on_stop)
        await client.close()
        assert not client.is_connected()


async def test_duplicated_open_raises(emulator, hub):
    client = make_client(emulator, hub)
    with pytest.raises(OpenClientError):
        async with client:
            await client.open()
    assert not client.is_connected()


async def test_duplicated_close(emulator, hub):
    client = make_client(emulator, hub)
    async with client:
        await client.close()
        await client.close()
    assert not client.is_connected()


async def test_send_event_handler_failure(failing_upstream_emulator, hub):
    client = make_client(failing_upstream_emulator, hub, message_retry_total=0)
    async with client:
        with pytest.raises(SendMessageError) as err:
            await client.send_event("event", "test_send_event", "text")
    assert err.value.error_detail.name == "InternalServerError"


@pytest.mark.parametrize("auto_rejoin", [True, False])
async def test_rejoin_group_after_reopen(emulator, hub, auto_rejoin):
    rec = AsyncRecorder()
    client = make_client(emulator, hub, auto_rejoin_groups=auto_rejoin)
    await client.subscribe("group-message", lambda m: rec.add(m.data))
    async with client:
        await client.join_group("rejoin")
    async with client:
        if auto_rejoin:
            deadline = time.monotonic() + WAIT
            while not any("rejoin" in c["groups"] for c in emulator.connections(hub)):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        await client.send_to_group("rejoin", "after-reopen", "text")
        await client.join_group("marker")
        await client.send_to_group("marker", "marker", "text")
        items = await rec.wait_for(lambda items: "marker" in items)
    assert ("after-reopen" in items) == auto_rejoin


async def test_open_against_dead_host_fails_within_start_timeout():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = WebPubSubClient(f"ws://127.0.0.1:{port}/client/hubs/h?access_token=x", start_timeout=3.0)
    start = time.monotonic()
    with pytest.raises(OpenClientError) as err:
        async with client:
            pass
    assert time.monotonic() - start < 4.0
    assert "During the process, an error occurred" in str(err.value)


async def test_recovery_keeps_connection_id(emulator, hub):
    rec = AsyncRecorder()
    client = make_client(emulator, hub, message_retry_total=10)
    await client.subscribe("group-message", lambda m: rec.add(m.data))
    async with client:
        conn_id0 = client.connection_id
        await client.join_group("recovery")
        emulator.drop(hub, conn_id0)
        await client.send_to_group("recovery", "test_recovery", "text")
        await rec.wait_for(lambda items: "test_recovery" in items)
        assert client.connection_id == conn_id0


async def test_auto_reconnect_new_id_and_rejoin(emulator, hub):
    rec = AsyncRecorder()
    ids = AsyncRecorder()
    client = make_client(emulator, hub, protocol_type=WebPubSubProtocolType.JSON, message_retry_total=10)
    await client.subscribe("connected", lambda e: ids.add(e.connection_id))
    await client.subscribe("group-message", lambda m: rec.add(m.data))
    async with client:
        conn_id0 = client.connection_id
        await client.join_group("reconnect")
        emulator.close(hub, conn_id0, 1001)
        await ids.wait_count(2)
        deadline = time.monotonic() + WAIT
        while not any("reconnect" in c["groups"] for c in emulator.connections(hub)):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await client.send_to_group("reconnect", "test_auto_connect", "text")
        await rec.wait_for(lambda items: "test_auto_connect" in items)
        assert client.connection_id != conn_id0


async def test_no_recovery_no_reconnect_send_raises(emulator, hub):
    stopped = asyncio.Event()
    client = make_client(emulator, hub, reconnect_retry_total=0, protocol_type=WebPubSubProtocolType.JSON)
    await client.subscribe("stopped", stopped.set)
    async with client:
        await client.join_group("g")
        emulator.close(hub, client.connection_id, 1001)
        await asyncio.wait_for(stopped.wait(), WAIT)
        with pytest.raises(SendMessageError):
            await client.send_to_group("g", "never", "text")


async def test_no_reconnect_concurrent_senders(emulator, hub):
    stopped = asyncio.Event()
    client = make_client(
        emulator, hub, reconnect_retry_total=0, protocol_type=WebPubSubProtocolType.JSON, message_retry_total=3
    )
    await client.subscribe("stopped", stopped.set)
    async with client:
        await client.join_group("g")
        first = [asyncio.create_task(client.send_to_group("g", f"hello_{i}", "text")) for i in range(51)]
        await asyncio.wait_for(asyncio.gather(*first, return_exceptions=True), WAIT)
        emulator.close(hub, client.connection_id, 1001)
        await asyncio.wait_for(stopped.wait(), WAIT)
        rest = [asyncio.create_task(client.send_to_group("g", f"hello_{i}", "text")) for i in range(51, 100)]
        results = await asyncio.wait_for(asyncio.gather(*rest, return_exceptions=True), WAIT)
    assert all(isinstance(r, SendMessageError) for r in results)


async def test_send_concurrently(emulator, hub):
    rec = AsyncRecorder()
    client = make_client(emulator, hub)
    await client.subscribe("group-message", lambda m: rec.add(m.data))
    async with client:
        await client.join_group("concurrent")
        await asyncio.wait_for(
            asyncio.gather(*(client.send_to_group("concurrent", f"hello_{i}", "text") for i in range(100))), WAIT
        )
        items = await rec.wait_count(100)
    assert sorted(items) == sorted(f"hello_{i}" for i in range(100))


async def test_callbacks_in_order_one_at_a_time_on_loop_thread(emulator, hub):
    rec = AsyncRecorder()
    client = make_client(emulator, hub)
    loop_thread = threading.get_ident()
    active = []
    overlaps = []
    threads = set()

    async def on_message(m):
        threads.add(threading.get_ident())
        active.append(1)
        if len(active) > 1:
            overlaps.append(m.data)
        await asyncio.sleep(0)  # yield: another callback must still not start
        active.pop()
        rec.add(m.data)

    await client.subscribe("group-message", on_message)
    async with client:
        await client.join_group("order")
        for i in range(200):
            await client.send_to_group("order", str(i), "text", fire_and_forget=True)
        items = await rec.wait_count(200)
    assert overlaps == []
    assert items == [str(i) for i in range(200)]
    assert threads == {loop_thread}


async def test_no_thread_per_call(emulator, hub):
    client = make_client(emulator, hub)
    async with client:
        await client.join_group("g")
        before = threading.active_count()
        await asyncio.gather(*(client.send_to_group("g", f"m{i}", "text") for i in range(50)))
        assert threading.active_count() <= before


async def test_close_from_inside_a_listener(emulator, hub):
    client = make_client(emulator, hub)
    stopped = asyncio.Event()
    closed = asyncio.Event()

    async def on_message(_m):
        await client.close()
        closed.set()

    await client.subscribe("group-message", on_message)
    await client.subscribe("stopped", stopped.set)
    await client.open()
    await client.join_group("g")
    await client.send_to_group("g", "close please", "text", ack=False)
    await asyncio.wait_for(closed.wait(), WAIT)
    await asyncio.wait_for(stopped.wait(), WAIT)
    assert not client.is_connected()


async def test_sync_and_async_listeners_mixed_in_order(emulator, hub):
    order = []
    done = asyncio.Event()
    client = make_client(emulator, hub)

    async def async_listener(m):
        await asyncio.sleep(0)
        order.append(("async", m.data))

    def sync_listener(m):
        order.append(("sync", m.data))
        if m.data == "2":
            done.set()

    await client.subscribe("group-message", async_listener)
    client.on("group-message", sync_listener)
    async with client:
        await client.join_group("g")
        for i in range(3):
            await client.send_to_group("g", str(i), "text")
        await asyncio.wait_for(done.wait(), WAIT)
    assert order == [(kind, str(i)) for i in range(3) for kind in ("async", "sync")]
