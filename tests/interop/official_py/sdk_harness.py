"""pytest plugin: harness-side workarounds for three races in the official sync Python client.

Loaded with ``-p sdk_harness`` when running the official ``azure-messaging-webpubsubclient``
1.1.0 test suite against the emulator. Nothing here changes what goes on the wire.

1. Lost wake-ups. The sync client hands a frame to its socket thread and only then waits on a
   ``threading.Condition`` that the socket thread notifies when the answer (``open`` or an ack)
   arrives. Against a fast loopback server the notification can come before the wait starts
   and is lost, so the caller blocks for its whole timeout. The client's modules get a
   ``Condition`` that remembers a notification made while nobody waited and lets the next
   ``wait`` return at once.

2. A reader that never learns its socket was closed. Tests close the socket from the test
   thread (``client._ws.sock.close(1001)``) while the reader thread sits in ``select`` on it; the
   descriptor can leave the selector without an event and the reader never wakes. The
   ``websocket-client`` dispatcher is replaced by one whose selector wakes periodically and
   treats a socket that was closed meanwhile as readable, so the reader hits the closed socket,
   raises ``WebSocketConnectionClosedException`` and runs the client's close handling.

3. Close handling run twice. ``close()`` waits only 0.1 s for the reader thread, then runs the
   close handler itself. When the reader is slower (it notices the close within one wake-up
   interval of item 2), both threads run the handler; the second one can see the stop flag the
   first one already cleared and reconnect, so the client is no longer stopped when the test
   opens it again. ``close()`` gets to wait (bounded) for the reader thread first, so the
   reader's own close handling runs once and ``close()`` finds nothing left to do.

Also, so that the suite never reaches beyond this machine: name resolution is limited to
loopback. The suite's ``test_open_client_error`` points a client at a public Azure host to see
``open()`` fail; here that host does not resolve, so ``open()`` fails the same way, offline.
"""

import ipaddress
import selectors
import socket
import threading
import types

import pytest

# How often the reader re-checks a socket that may have been closed under it.
READER_WAKE_INTERVAL_S = 0.2
# How long close() waits for the reader thread before running the close handler itself.
CLOSE_READER_WAIT_S = 5.0


class StickyCondition(threading.Condition):
    """A Condition whose notify() is remembered when no thread is waiting yet."""

    def __init__(self, lock=None):
        super().__init__(lock)
        self._pending = 0

    def notify(self, n=1):
        if not self._waiters:
            self._pending += n
        super().notify(n)

    def notify_all(self):
        if not self._waiters:
            self._pending += 1
        super().notify_all()

    def wait(self, timeout=None):
        if self._pending:
            self._pending -= 1
            return True
        return super().wait(timeout)


def _threading_with_sticky_condition():
    proxy = types.ModuleType("threading_with_sticky_condition")
    proxy.__dict__.update(threading.__dict__)
    proxy.Condition = StickyCondition
    return proxy


def _patch_conditions():
    from azure.messaging.webpubsubclient import _client
    from azure.messaging.webpubsubclient.models import _models

    proxy = _threading_with_sticky_condition()
    _client.threading = proxy
    _models.threading = proxy


def _socket_gone(app):
    ws = app.sock
    return ws is None or ws.sock is None or not ws.connected


def _waking_read(self, sock, read_callback, check_callback):
    """Dispatcher.read with a periodic wake-up that notices a socket closed under it."""
    del sock
    if self.app.sock is None or self.app.sock.sock is None:
        return
    sel = selectors.DefaultSelector()
    sel.register(self.app.sock.sock, selectors.EVENT_READ)
    try:
        while self.app.keep_running:
            ready = sel.select(READER_WAKE_INTERVAL_S)
            if ready or _socket_gone(self.app):
                if not read_callback():
                    break
            check_callback()
    finally:
        sel.close()


def _patch_close():
    from azure.messaging.webpubsubclient import _client

    cls = _client.WebPubSubClient
    join_briefly = cls._threads_join

    def join_reader_first(old_threads):
        # close() passes [reader, sequence-ack thread, *callback threads]; the connect path
        # passes only the sequence-ack thread and keeps the short join.
        if len(old_threads) >= 2 and old_threads[0] is not None:
            old_threads[0].join(CLOSE_READER_WAIT_S)
        join_briefly(old_threads)

    join_reader_first.patched = True
    cls._threads_join = staticmethod(join_reader_first)


def _patch_reader():
    from websocket import _dispatcher

    _dispatcher.Dispatcher.read = _waking_read


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_only_getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: only loopback hosts resolve in this test run")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config):
    config.addinivalue_line("markers", "live_test_only: test needs a live service (the emulator)")
    _patch_conditions()
    _patch_reader()
    _patch_close()
    socket.getaddrinfo = _loopback_only_getaddrinfo


@pytest.fixture(autouse=True)
def _workarounds_active():
    """Fail loudly if something replaced the patches after configuration."""
    from azure.messaging.webpubsubclient import _client
    from websocket import _dispatcher

    assert _client.threading.Condition is StickyCondition
    assert _dispatcher.Dispatcher.read is _waking_read
    assert getattr(_client.WebPubSubClient._threads_join, "patched", False)
    yield
