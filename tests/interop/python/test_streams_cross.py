"""Group streams crossing between implementations: the official JS client 1.1.0
(``@azure/web-pubsub-client``, driven through ``../js/stream_peer.mjs``) and our Python package
(``webpubsub_client``, on the native library), both against the emulator, in both directions,
also across a dropped connection of the publisher."""

import json
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import ALL_ROLES, WAIT_S

from webpubsub_client import CallbackType, WebPubSubClient, WebPubSubClientCredential

JS_DIR = Path(__file__).resolve().parent.parent / "js"
PEER_WAIT_S = 30.0


class JsPeer:
    """One ``stream_peer.mjs`` process; its stdout lines are read into a bounded queue."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            ["node", "stream_peer.mjs", *map(str, args)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue(maxsize=1024)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line:
                self.lines.put(json.loads(line), timeout=PEER_WAIT_S)

    def expect(self, key, timeout=PEER_WAIT_S):
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the JS peer printed nothing within {timeout}s (waiting for {key!r})") from None
        assert "error" not in msg, f"the JS peer failed: {msg['error']}"
        assert key in msg, f"expected {key!r} from the JS peer, got {msg!r}"
        return msg

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self):
        try:
            self.proc.wait(PEER_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        assert self.proc.returncode == 0, self.proc.stderr.read()[-2000:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def url_for(service):
    def mint(user_id):
        return service.get_client_access_token(roles=list(ALL_ROLES), user_id=user_id)["url"]

    return mint


@pytest.fixture
def peers():
    started = []

    def start(*args):
        peer = JsPeer(*args)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.kill()


@pytest.fixture
def ours(url_for):
    opened = []

    def make(user_id, **options):
        client = WebPubSubClient(WebPubSubClientCredential(lambda: url_for(user_id)), **options)
        opened.append(client)
        client.open()
        return client

    yield make
    for client in opened:
        client.close()


def reader_queue(client):
    readers = queue.Queue(maxsize=16)
    client.on_group_stream(readers.put)
    return readers


def read_all(reader):
    out = []
    while True:
        fragment = reader.read(timeout=PEER_WAIT_S)
        if fragment is None:
            return out
        out.append(fragment)


def test_js_publishes_and_python_receives_complete_in_order(hub, url_for, ours, peers):
    rx = ours("py-reader")
    readers = reader_queue(rx)
    rx.join_group("g")
    peer = peers("publish", url_for("js-writer"), "g", "from-js", 300)
    peer.expect("done")
    reader = readers.get(timeout=WAIT_S)
    fragments = read_all(reader)
    peer.finish()
    assert (reader.group, reader.stream_id, reader.from_user_id) == ("g", "from-js", "js-writer")
    assert [f.data for f in fragments] == [f"js-{i}" for i in range(300)]
    assert [f.stream_sequence_id for f in fragments] == list(range(1, 301))


def test_js_stream_across_a_drop_of_the_js_connection_reaches_python_once(hub, admin, url_for, ours, peers):
    rx = ours("py-reader")
    readers = reader_queue(rx)
    rx.join_group("g")
    peer = peers("publish", url_for("js-writer"), "g", "dropped-js", 200, 100)
    paused = peer.expect("paused")
    admin.drop(hub, paused["connectionId"])
    peer.send("go")
    peer.expect("done")
    fragments = read_all(readers.get(timeout=WAIT_S))
    peer.finish()
    assert [f.data for f in fragments] == [f"js-{i}" for i in range(200)]
    assert [f.stream_sequence_id for f in fragments] == list(range(1, 201))


def test_python_publishes_and_js_receives_text_types_and_user_error(hub, url_for, ours, peers):
    peer = peers("receive", url_for("js-reader"), "g", 3)
    peer.expect("ready")
    tx = ours("py-writer")
    with tx.open_group_stream("g", "from-py") as writer:
        for i in range(300):
            writer.write(f"py-{i}", "text")
    with tx.open_group_stream("g", "typed") as writer:
        writer.write("a", "text")
        writer.write({"k": [1, 2]}, "json")
        writer.write(b"\x01\x02\xff", "binary")
    writer = tx.open_group_stream("g", "aborted")
    writer.write("partial", "text")
    writer.abort("python gave up", "PY_7")
    writer.close()
    streams = {}
    for _ in range(3):
        record = peer.expect("stream")["stream"]
        streams[record["streamId"]] = record
    peer.finish()

    plain = streams["from-py"]
    assert plain["ok"], plain["error"]
    assert plain["fromUserId"] == "py-writer"
    assert plain["data"] == [f"py-{i}" for i in range(300)]
    assert plain["sequenceIds"] == list(range(1, 301))
    assert streams["typed"]["data"] == ["a", {"k": [1, 2]}, [1, 2, 255]]
    aborted = streams["aborted"]
    assert not aborted["ok"] and aborted["data"] == ["partial"]
    assert aborted["error"] == {"name": "UserError", "message": "python gave up", "userErrorCode": "PY_7"}


def test_python_stream_across_a_drop_of_its_connection_reaches_js_once(hub, admin, url_for, ours, peers):
    peer = peers("receive", url_for("js-reader"), "g", 1)
    peer.expect("ready")
    tx = ours("py-writer", message_retry_total=10)
    recovered = threading.Event()
    tx.subscribe(CallbackType.RECOVERED, lambda _args: recovered.set())
    writer = tx.open_group_stream("g", "dropped-py")
    for i in range(100):
        writer.write(f"py-{i}", "text")
    admin.drop(hub, tx.connection_id)
    for i in range(100, 200):
        writer.write(f"py-{i}", "text")
    assert recovered.wait(WAIT_S)
    writer.end()
    writer.close()
    record = peer.expect("stream")["stream"]
    peer.finish()
    assert record["ok"], record["error"]
    assert record["data"] == [f"py-{i}" for i in range(200)]
    assert record["sequenceIds"] == list(range(1, 201))
