"""Group streams with the synchronous client against the emulator: publisher, per-stream
reader, errors, options and a stream across a dropped connection."""

import queue
import threading

import pytest

from webpubsub_client import (
    CallbackType,
    GroupStreamError,
    GroupStreamReader,
    GroupStreamWriter,
    SendMessageError,
    StreamFragment,
    WebPubSubClient,
    WebPubSubClientCredential,
    WebPubSubDataType,
)

from conftest import WAIT, wait_until


def make_client(emulator, hub, roles=None, **kwargs):
    return WebPubSubClient(WebPubSubClientCredential(lambda: emulator.client_url(hub, roles=roles)), **kwargs)


def reader_queue(client):
    """Readers of new streams, handed from the event thread to the test thread."""
    readers: "queue.Queue[GroupStreamReader]" = queue.Queue(maxsize=64)
    client.on_group_stream(readers.put)
    return readers


def read_all(reader, timeout=WAIT):
    out = []
    while True:
        fragment = reader.read(timeout=timeout)
        if fragment is None:
            return out
        out.append(fragment)


def test_500_fragments_arrive_complete_and_in_order(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        assert isinstance(writer, GroupStreamWriter) and writer.stream_id
        for i in range(500):
            writer.write(f"chunk-{i}", "text")
        writer.end()
        writer.close()
        reader = readers.get(timeout=WAIT)
        assert (reader.group, reader.stream_id) == ("g", writer.stream_id)
        fragments = read_all(reader)
    assert all(isinstance(f, StreamFragment) for f in fragments)
    assert [f.data for f in fragments] == [f"chunk-{i}" for i in range(500)]
    assert [f.stream_sequence_id for f in fragments] == list(range(1, 501))
    assert reader.done and reader.error is None


def test_data_types_and_iteration(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        with pub.open_group_stream("g", "typed") as writer:
            writer.write("t", WebPubSubDataType.TEXT)
            writer.write({"k": [1, 2]}, "json")
            writer.write(b"\x00\x01\xff", "binary")
        assert writer.closed
        reader = readers.get(timeout=WAIT)
        got = [(f.data_type, f.data if f.data_type != WebPubSubDataType.BINARY else bytes(f.data)) for f in reader]
    assert reader.stream_id == "typed"
    assert got == [
        (WebPubSubDataType.TEXT, "t"),
        (WebPubSubDataType.JSON, {"k": [1, 2]}),
        (WebPubSubDataType.BINARY, b"\x00\x01\xff"),
    ]


def test_abort_raises_group_stream_error_with_user_error_and_code(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        writer.write("before", "text")
        writer.abort("it broke", "E42")
        with pytest.raises(GroupStreamError) as after:
            writer.write("late", "text")
        assert after.value.name == "Ended" or after.value.name
        writer.close()
        reader = readers.get(timeout=WAIT)
        assert reader.read(timeout=WAIT).data == "before"
        with pytest.raises(GroupStreamError) as info:
            reader.read(timeout=WAIT)
    assert info.value.name == "UserError"
    assert info.value.message == "it broke"
    assert info.value.user_error_code == "E42"
    assert reader.error is info.value


def test_context_manager_aborts_on_exception(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        with pytest.raises(KeyError):
            with pub.open_group_stream("g") as writer:
                writer.write("x", "text")
                raise KeyError("boom")
        reader = readers.get(timeout=WAIT)
        with pytest.raises(GroupStreamError) as info:
            read_all(reader)
    assert info.value.name == "UserError"
    assert info.value.user_error_code == "KeyError"


def test_close_without_end_aborts(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        writer.write("x", "text")
        writer.close()
        assert writer.closed
        reader = readers.get(timeout=WAIT)
        with pytest.raises(GroupStreamError) as info:
            read_all(reader)
    assert info.value.name == "UserError"


def test_no_echo_stream_is_not_delivered_to_the_publisher(emulator, hub):
    client = make_client(emulator, hub)
    other = make_client(emulator, hub)
    own = reader_queue(client)
    theirs = reader_queue(other)
    with client, other:
        client.join_group("g")
        other.join_group("g")
        with client.open_group_stream("g", "quiet", no_echo=True) as writer:
            writer.write("x", "text")
        with client.open_group_stream("g", "loud") as writer:
            writer.write("y", "text")
        got = sorted(theirs.get(timeout=WAIT).stream_id for _ in range(2))
        assert got == ["loud", "quiet"]
        # frames of one client arrive in order: "loud" is the first stream this client sees
        assert own.get(timeout=WAIT).stream_id == "loud"


def test_open_without_send_permission_is_refused(emulator, hub):
    client = make_client(emulator, hub, roles=["webpubsub.joinLeaveGroup"])
    with client:
        with pytest.raises(SendMessageError) as info:
            client.open_group_stream("g")
    assert info.value.error_detail.name == "Forbidden"


def test_parallel_streams_are_kept_apart(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        a = pub.open_group_stream("g", "a")
        b = pub.open_group_stream("g", "b")
        for i in range(50):
            a.write(f"a{i}", "text")
            b.write(f"b{i}", "text")
        a.end()
        b.abort("b failed", "EB")
        a.close()
        b.close()
        got = {}
        for _ in range(2):
            reader = readers.get(timeout=WAIT)
            try:
                got[reader.stream_id] = [f.data for f in read_all(reader)]
            except GroupStreamError as e:
                got[reader.stream_id] = e
    assert got["a"] == [f"a{i}" for i in range(50)]
    assert isinstance(got["b"], GroupStreamError) and got["b"].user_error_code == "EB"


def test_stream_across_a_dropped_connection_arrives_complete(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub, message_retry_total=10)
    readers = reader_queue(sub)
    recovered = threading.Event()
    pub.subscribe(CallbackType.RECOVERED, lambda _args: recovered.set())
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        for i in range(100):
            writer.write(f"m{i}", "text")
        emulator.drop(hub, pub.connection_id)
        for i in range(100, 200):
            writer.write(f"m{i}", "text")
        assert recovered.wait(WAIT)
        writer.end()
        writer.close()
        reader = readers.get(timeout=WAIT)
        fragments = read_all(reader)
    assert [f.data for f in fragments] == [f"m{i}" for i in range(200)]


def test_subscriber_drop_keeps_its_stream_complete(emulator, hub):
    sub = make_client(emulator, hub, message_retry_total=10)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        for i in range(100):
            writer.write(i, "json")
        emulator.drop(hub, sub.connection_id)
        for i in range(100, 200):
            writer.write(i, "json")
        writer.end()
        writer.close()
        reader = readers.get(timeout=WAIT)
        fragments = read_all(reader)
    assert [f.data for f in fragments] == list(range(200))


def test_reading_inside_a_listener_is_refused(emulator, hub):
    sub = make_client(emulator, hub)
    pub = make_client(emulator, hub)
    outcome: "queue.Queue[object]" = queue.Queue()

    def listener(reader):
        try:
            reader.read(timeout=0.5)  # the first fragment is buffered already
            reader.read(timeout=0.5)
            outcome.put("read")
        except RuntimeError as e:
            outcome.put(e)

    sub.on_group_stream(listener)
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        writer.write("one", "text")
        got = outcome.get(timeout=WAIT)
        writer.end()
        writer.close()
    assert isinstance(got, RuntimeError)


def test_full_reader_ends_with_reader_overflow(emulator, hub):
    sub = make_client(emulator, hub, stream_reader_max_fragments=5, stream_reader_wait=0.2)
    pub = make_client(emulator, hub)
    readers = reader_queue(sub)
    with sub, pub:
        sub.join_group("g")
        writer = pub.open_group_stream("g")
        for i in range(20):
            writer.write(f"m{i}", "text")
        writer.end()
        writer.close()
        reader = readers.get(timeout=WAIT)
        # nothing is read until the reader gave up waiting for room
        wait_until(lambda: reader.done, what="reader overflow")
        with pytest.raises(GroupStreamError) as info:
            read_all(reader)
    assert info.value.name == "ReaderOverflow"


def test_write_after_end_raises_group_stream_error(emulator, hub):
    client = make_client(emulator, hub)
    with client:
        client.join_group("g")
        writer = client.open_group_stream("g")
        writer.end()
        with pytest.raises(GroupStreamError) as info:
            writer.write("late", "text")
        writer.close()
    assert info.value.name == "Ended"


def test_receive_options_are_accepted_and_validated(emulator, hub):
    client = make_client(
        emulator,
        hub,
        stream_from_start_only=True,
        stream_idle_timeout=5,
        stream_max_streams=10,
        stream_buffer_max_bytes=4096,
    )
    client.close()
    with pytest.raises(ValueError):
        make_client(emulator, hub, stream_buffer_max_bytes=0)
    with pytest.raises(ValueError):
        make_client(emulator, hub, stream_reader_max_fragments=0)
