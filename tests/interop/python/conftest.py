"""Fixtures for the Python interop suite: the official Web PubSub SDKs against the emulator.

Set ``WPS_CONNECTION_STRING`` (``Endpoint=http://127.0.0.1:PORT;AccessKey=KEY;Version=1.0;``).
Run with ``-p sdk_harness`` (tests/interop/official_py on PYTHONPATH) so the official sync
client's lost-wake-up race does not turn acknowledged sends into 30 s waits.
"""

import os
import re
import threading
import time
import uuid

import pytest
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from emulator_admin import EmulatorAdmin

WAIT_S = 10.0
JOIN_LEAVE = "webpubsub.joinLeaveGroup"
SEND_TO_GROUP = "webpubsub.sendToGroup"
ALL_ROLES = [JOIN_LEAVE, SEND_TO_GROUP]


class Inbox:
    """Thread-safe record of everything a client reported, with deadline waits."""

    def __init__(self):
        self._cv = threading.Condition()
        self.events = []  # (kind, args)
        self.frames = []  # messages parsed by the client's protocol, in wire order

    def add_event(self, kind, args):
        with self._cv:
            self.events.append((kind, args))
            self._cv.notify_all()

    def add_frame(self, message):
        with self._cv:
            self.frames.append(message)
            self._cv.notify_all()

    def of(self, kind):
        with self._cv:
            return [args for k, args in self.events if k == kind]

    def wait_for(self, predicate, timeout=WAIT_S, what="condition"):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._cv.wait(remaining)

    def wait_event(self, kind, count=1, timeout=WAIT_S, where=lambda args: True):
        def ready():
            matching = [args for k, args in self.events if k == kind and where(args)]
            return matching if len(matching) >= count else None

        return self.wait_for(ready, timeout, f"{count} x {kind}")

    def data_of(self, kind):
        return [args.data for args in self.of(kind)]


def _observe(client, inbox):
    for kind in (
        "connected",
        "disconnected",
        "stopped",
        "group-message",
        "server-message",
        "rejoin-group-failed",
    ):
        client.subscribe(kind, lambda args=None, kind=kind: inbox.add_event(kind, args))

    # Observe (never alter) what the client's protocol parser makes of each inbound frame.
    protocol = client._protocol
    parse = protocol.parse_messages

    def parse_and_record(data):
        message = parse(data)
        if message is not None:
            inbox.add_frame(message)
        return message

    protocol.parse_messages = parse_and_record


def drain_callbacks(client, timeout=WAIT_S):
    """Wait until every callback thread the client started so far has finished."""
    deadline = time.monotonic() + timeout
    for thread in list(client._threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "a client callback did not finish"


@pytest.fixture(scope="session")
def connection_string():
    value = os.environ.get("WPS_CONNECTION_STRING")
    if not value:
        pytest.fail("WPS_CONNECTION_STRING is not set (run scripts/interop.sh)")
    return value


@pytest.fixture(scope="session")
def admin(connection_string):
    return EmulatorAdmin(connection_string)


@pytest.fixture
def hub(request):
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:80]
    return f"py_{name}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def service(connection_string, hub):
    client = WebPubSubServiceClient.from_connection_string(connection_string, hub=hub)
    yield client
    client.close()


@pytest.fixture
def make_client(service):
    """Factory: open an official sync WebPubSubClient; every client is closed at teardown."""
    opened = []

    def make(user_id=None, roles=ALL_ROLES, groups=None, open_client=True, **options):
        def url_provider():
            kwargs = {"roles": list(roles)}
            if user_id is not None:
                kwargs["user_id"] = user_id
            if groups:
                kwargs["groups"] = list(groups)
            return service.get_client_access_token(**kwargs)["url"]

        client = WebPubSubClient(credential=WebPubSubClientCredential(url_provider), **options)
        inbox = Inbox()
        _observe(client, inbox)
        opened.append(client)
        if open_client:
            client.open()
            inbox.wait_event("connected")
        return client, inbox

    yield make
    for client in opened:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - best-effort teardown
            pass


def wait_rejoined(inbox, groups, timeout=WAIT_S):
    """Wait until, after the latest ``connected`` frame, ``groups`` successful acks arrived
    (the client's automatic rejoins after a reconnect)."""

    def ready():
        frames = inbox.frames
        last = max(i for i, f in enumerate(frames) if f.kind == "connected")
        ok = [f for f in frames[last + 1 :] if f.kind == "ack" and f.success]
        return len(ok) >= groups

    inbox.wait_for(ready, timeout, f"{groups} rejoin ack(s)")


def watch_no_recovery(client):
    """Record the close code each time the client gives up on its connection (no recovery),
    read when the client decides, before a reconnect resets it."""
    codes = []
    handle = client._handle_connection_close_and_no_recovery

    def wrapper(*args, **kwargs):
        event = client._last_close_event
        codes.append(event.close_status_code if event else None)
        return handle(*args, **kwargs)

    client._handle_connection_close_and_no_recovery = wrapper
    return codes


class RecoveryGate:
    """Holds the client's recovery attempts until released, and reports their outcome.

    Wraps the client's ``_connect`` (its one entry point for new sockets); recovery attempts are
    the calls that carry a ``recover_start_time``. Nothing on the wire changes: the attempt is
    only delayed, so the test can act while the connection is known to be down.
    """

    def __init__(self, client):
        self.attempted = threading.Event()
        self.released = threading.Event()
        self.recovered = threading.Event()
        self.reconnected = threading.Event()
        original = client._connect

        def connect(url, reconnect_tried_times=None, recover_start_time=None):
            if recover_start_time is not None:
                self.attempted.set()
                self.released.wait(WAIT_S * 2)
                original(url, reconnect_tried_times, recover_start_time)
                self.recovered.set()
                return None
            result = original(url, reconnect_tried_times, recover_start_time)
            self.reconnected.set()
            return result

        client._connect = connect
