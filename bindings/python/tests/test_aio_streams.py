"""Group streams and group state with the asyncio client against the emulator."""

import asyncio

import pytest

from webpubsub_client import CallbackType, GroupStreamError, WebPubSubClientError
from webpubsub_client.aio import (
    AsyncGroupStreamReader,
    AsyncGroupStreamWriter,
    WebPubSubClient,
    WebPubSubClientCredential,
)

from conftest import WAIT


def make_client(emulator, hub, **kwargs):
    async def provider():
        return emulator.client_url(hub)

    return WebPubSubClient(WebPubSubClientCredential(provider), **kwargs)


def reader_queue(client):
    readers: "asyncio.Queue[AsyncGroupStreamReader]" = asyncio.Queue(maxsize=64)
    client.on_group_stream(readers.put_nowait)
    return readers


async def next_reader(readers):
    return await asyncio.wait_for(readers.get(), WAIT)


async def read_all(reader):
    async def collect():
        return [f async for f in reader]

    return await asyncio.wait_for(collect(), WAIT)


async def test_500_fragments_arrive_complete_and_in_order(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    async with sub, pub:
        await sub.join_group("g")
        writer = await pub.open_group_stream("g")
        assert isinstance(writer, AsyncGroupStreamWriter)
        for i in range(500):
            await writer.write(f"chunk-{i}", "text")
        await writer.end()
        writer.close()
        reader = await next_reader(readers)
        assert reader.stream_id == writer.stream_id
        fragments = await read_all(reader)
    assert [f.data for f in fragments] == [f"chunk-{i}" for i in range(500)]
    assert [f.stream_sequence_id for f in fragments] == list(range(1, 501))


async def test_abort_raises_group_stream_error(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    async with sub, pub:
        await sub.join_group("g")
        writer = await pub.open_group_stream("g")
        await writer.write({"n": 1}, "json")
        await writer.abort("gave up", "E7")
        writer.close()
        reader = await next_reader(readers)
        assert (await reader.read(timeout=WAIT)).data == {"n": 1}
        with pytest.raises(GroupStreamError) as info:
            await reader.read(timeout=WAIT)
    assert (info.value.name, info.value.message, info.value.user_error_code) == ("UserError", "gave up", "E7")


async def test_async_context_manager_ends_or_aborts(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    async with sub, pub:
        await sub.join_group("g")
        async with await pub.open_group_stream("g", "ok") as writer:
            await writer.write(b"\x01", "binary")
        with pytest.raises(ValueError):
            async with await pub.open_group_stream("g", "bad") as writer:
                await writer.write(b"\x02", "binary")
                raise ValueError("no")
        ok = await next_reader(readers)
        assert [bytes(f.data) for f in await read_all(ok)] == [b"\x01"]
        bad = await next_reader(readers)
        with pytest.raises(GroupStreamError) as info:
            await read_all(bad)
    assert bad.stream_id == "bad" and info.value.user_error_code == "ValueError"


async def test_stream_across_a_dropped_connection_arrives_complete(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub, message_retry_total=10)
    readers = reader_queue(sub)
    recovered = asyncio.Event()
    pub.on(CallbackType.RECOVERED, lambda _args: recovered.set())
    async with sub, pub:
        await sub.join_group("g")
        writer = await pub.open_group_stream("g")
        for i in range(100):
            await writer.write(f"m{i}", "text")
        emulator.drop(hub, pub.connection_id)
        for i in range(100, 200):
            await writer.write(f"m{i}", "text")
        await asyncio.wait_for(recovered.wait(), WAIT)
        await writer.end()
        writer.close()
        fragments = await read_all(await next_reader(readers))
    assert [f.data for f in fragments] == [f"m{i}" for i in range(200)]


async def test_full_reader_pauses_dispatch_until_read(emulator, hub):
    """With a 4-fragment bound, 300 fragments still arrive complete: the client stops
    dispatching while the reader is full and resumes as the consumer reads."""
    sub = make_client(emulator, hub, stream_reader_max_fragments=4)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    async with sub, pub:
        await sub.join_group("g")
        writer = await pub.open_group_stream("g")
        for i in range(300):
            await writer.write(i, "json")
        await writer.end()
        writer.close()
        reader = await next_reader(readers)
        got = []
        async for fragment in reader:
            got.append(fragment.data)
            await asyncio.sleep(0)  # a consumer slower than delivery
    assert got == list(range(300))


async def test_full_reader_that_is_not_read_overflows(emulator, hub):
    sub = make_client(emulator, hub, stream_reader_max_fragments=4, stream_reader_wait=0.2)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    async with sub, pub:
        await sub.join_group("g")
        writer = await pub.open_group_stream("g")
        for i in range(200):
            await writer.write(i, "json")
        await writer.end()
        writer.close()
        reader = await next_reader(readers)

        async def overflowed():
            while not reader.done:
                await asyncio.sleep(0.02)  # polling state that has no event

        await asyncio.wait_for(overflowed(), WAIT)
        with pytest.raises(GroupStreamError) as info:
            await read_all(reader)
        # dispatching resumed: the client still works
        await sub.join_group("after")
    assert info.value.name == "ReaderOverflow"


async def test_group_state_snapshot_update_clear_and_cache(emulator, hub):
    watcher = make_client(emulator, hub)
    member = make_client(emulator, hub)
    events = []
    changed = asyncio.Event()

    def on_state(args):
        events.append(args)
        changed.set()

    watcher.on(CallbackType.GROUP_STATE, on_state)

    async def wait_events(n):
        async def loop():
            while len(events) < n:
                changed.clear()
                await changed.wait()

        await asyncio.wait_for(loop(), WAIT)

    async with watcher, member:
        await watcher.join_group("room")
        await member.join_group("room")
        with pytest.raises(WebPubSubClientError):
            watcher.list_group_states("room")
        await watcher.subscribe_group_state("room")
        await wait_events(1)
        assert events[0].is_snapshot and events[0].records == []
        await member.set_group_state("room", {"mood": "ok"})
        assert member.get_group_state("room") == {"mood": "ok"}
        await wait_events(2)
        assert {r.connection_id: r.state for r in watcher.list_group_states("room")} == {
            member.connection_id: {"mood": "ok"}
        }
        await member.clear_group_state("room")
        await wait_events(3)
        assert events[2].records[0].state is None
        assert watcher.list_group_states("room") == []
        await watcher.unsubscribe_group_state("room")
        with pytest.raises(WebPubSubClientError):
            watcher.list_group_states("room")
