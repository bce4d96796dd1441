"""Errors, payload types, keep-alive and the URL provider for the asyncio client."""

import asyncio

import pytest

from webpubsub_client import OpenClientError, SendMessageError, WebPubSubProtocolType
from webpubsub_client.aio import WebPubSubClient, WebPubSubClientCredential

from conftest import WAIT


async def test_forbidden(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub, roles=[]), message_retry_total=0)
    async with client:
        with pytest.raises(SendMessageError) as join_err:
            await client.join_group("g")
        with pytest.raises(SendMessageError) as send_err:
            await client.send_to_group("g", "x", "text")
    for err in (join_err.value, send_err.value):
        assert err.error_detail.name == "Forbidden"
        assert err.ack_id and err.ack_id > 0
    assert join_err.value.error_detail.message == "The connection is not authorized to join or leave group 'g'."
    assert send_err.value.error_detail.message == "The connection is not authorized to send messages to group 'g'."


async def test_send_when_not_open(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub))
    with pytest.raises(SendMessageError):
        await client.send_to_group("g", "x", "text")


async def test_unauthorized_open(emulator, hub):
    url = emulator.client_url(hub).split("access_token=")[0] + "access_token=garbage"
    client = WebPubSubClient(url, start_timeout=5)
    with pytest.raises(OpenClientError):
        await client.open()
    assert not client.is_connected()


async def test_bad_arguments(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub))
    with pytest.raises(TypeError):
        await client.send_to_group("g", 1, "text")
    with pytest.raises(ValueError):
        await client.join_group("a\0b")


async def test_rejoin_group_failed_event(emulator, hub):
    calls = []

    async def provider():
        calls.append(1)
        return emulator.client_url(hub, roles=None if len(calls) == 1 else [])

    client = WebPubSubClient(
        WebPubSubClientCredential(provider), protocol_type=WebPubSubProtocolType.JSON, message_retry_total=0
    )
    failed = asyncio.Queue()
    await client.subscribe("rejoin-group-failed", failed.put_nowait)
    async with client:
        await client.join_group("g")
        emulator.close(hub, client.connection_id, 1001)
        event = await asyncio.wait_for(failed.get(), WAIT)
    assert event.group == "g"
    assert isinstance(event.error, SendMessageError) and event.error.error_detail.name == "Forbidden"
    assert len(calls) >= 2, "the async provider was called again for the new connection"


async def test_data_types(emulator, hub):
    got = asyncio.Queue()
    client = WebPubSubClient(emulator.client_url(hub))
    await client.subscribe("group-message", got.put_nowait)
    async with client:
        await client.join_group("t")
        await client.send_to_group("t", "hi", "text")
        await client.send_to_group("t", {"x": [1]}, "json")
        await client.send_to_group("t", memoryview(b"\x00\xff"), "binary")
        msgs = [await asyncio.wait_for(got.get(), WAIT) for _ in range(3)]
    assert msgs[0].data == "hi"
    assert msgs[1].data == {"x": [1]}
    assert bytes(msgs[2].data) == b"\x00\xff"


async def test_keep_alive_idle_connection_stays_up(emulator, hub):
    client = WebPubSubClient(emulator.client_url(hub), keep_alive_interval=0.1, keep_alive_timeout=1.0)
    lost = asyncio.Event()
    await client.subscribe("disconnected", lambda e: lost.set())
    async with client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lost.wait(), 2.5)
        assert client.is_connected()
        await client.join_group("alive")


async def test_listener_exception_logged(emulator, hub, caplog):
    got = asyncio.Queue()
    client = WebPubSubClient(emulator.client_url(hub))

    async def bad(_m):
        raise RuntimeError("async listener failure")

    await client.subscribe("group-message", bad)
    await client.subscribe("group-message", got.put_nowait)
    with caplog.at_level("ERROR", logger="webpubsub_client"):
        async with client:
            await client.join_group("g")
            await client.send_to_group("g", "x", "text")
            await asyncio.wait_for(got.get(), WAIT)
    assert any("async listener failure" in (r.exc_text or "") for r in caplog.records)


def test_client_reused_across_event_loops(emulator, hub):
    """A client opened and closed under one loop works again under a new one."""
    client = WebPubSubClient(emulator.client_url(hub))
    seen = []

    async def session(tag):
        got = asyncio.Event()
        await client.subscribe("group-message", lambda m: (seen.append(m.data), got.set()))
        async with client:
            await client.join_group("g")
            await client.send_to_group("g", tag, "text")
            await asyncio.wait_for(got.wait(), WAIT)

    asyncio.run(session("first"))
    asyncio.run(session("second"))
    assert seen[0] == "first" and "second" in seen
