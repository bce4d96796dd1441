"""pytest plugin: the official ``azure-messaging-webpubsubclient`` 1.1.0 test suite against
``webpubsub_client``.

Loaded with ``-p wps_shim`` (``scripts/package-tests.sh``). Before the suite is collected,
``azure.messaging.webpubsubclient``, ``.models`` and ``.aio`` are made to name this package's
modules, so the suite's ``from azure.messaging.webpubsubclient import WebPubSubClient`` gets
ours, with only the import changed. The clients it gets are ours, subclassed to supply the
private attributes of the official client that some tests reach into:

* ``client._connection_id``: our public ``connection_id``.
* ``client._start_timeout``: our ``start_timeout`` option (seconds).
* ``client._sequence_id.sequence_id``: the highest sequence id the client received, observed
  through its own group and server message events.
* ``client._ws.sock.close(code)`` (sync), ``await client._ws.sock.close(code=...)`` and
  ``await client._ws.session.close()`` (async): the
  tests close the official client's socket to lose the connection; here the emulator's
  fault-injection API cuts it (``/_emulator/hubs/{hub}/connections/{id}/:drop``), which loses
  the connection the same way for the client (no close handshake).

And one guard so the run stays on this machine: a client access URL whose host is not
loopback (``test_open_client_error`` uses ``myservice.webpubsub.azure.com``) is pointed at a
closed loopback port, so that ``open()`` fails offline, as the official run's
``sdk_harness.py`` makes the same host fail to resolve.

``tests/test_unit.py`` is deselected: it tests the official client's internal message
classes (``models._models.JoinGroupMessage``, ...), of which this package has none.
"""

import base64
import hashlib
import hmac
import inspect
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import types
import urllib.parse
import urllib.request

import webpubsub_client as ours
import webpubsub_client.aio as ours_aio
import webpubsub_client.models as ours_models

FAULT_API_TIMEOUT_S = 10.0


# --- the emulator's fault-injection API ----------------------------------------------------


def _connection_string():
    raw = os.environ.get("WEBPUBSUBCLIENT_CONNECTION_STRING", "")
    parts = dict(p.split("=", 1) for p in raw.split(";") if "=" in p)
    if "Endpoint" not in parts or "AccessKey" not in parts:
        raise RuntimeError("WEBPUBSUBCLIENT_CONNECTION_STRING must name the emulator (Endpoint=...;AccessKey=...;)")
    return parts["Endpoint"].rstrip("/"), parts["AccessKey"]


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _bearer(key, audience):
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64url(json.dumps({"aud": audience, "exp": int(time.time()) + 300}).encode())
    signing_input = f"{header}.{claims}".encode("ascii")
    signature = _b64url(hmac.new(key.encode("utf-8"), signing_input, hashlib.sha256).digest())
    return f"{header}.{claims}.{signature}"


def _drop_connection(client_url, connection_id):
    """Cut the client's connection from the service side (no close frame)."""
    if not client_url or not connection_id:
        raise RuntimeError("the client is not connected: nothing to close")
    path = urllib.parse.urlsplit(client_url).path  # /client/hubs/{hub}
    hub = path.rstrip("/").rsplit("/", 1)[-1]
    endpoint, key = _connection_string()
    url = (
        f"{endpoint}/_emulator/hubs/{urllib.parse.quote(hub, safe='')}/connections/"
        f"{urllib.parse.quote(connection_id, safe='')}/:drop"
    )
    req = urllib.request.Request(url, data=b"", method="POST", headers={"Authorization": f"Bearer {_bearer(key, url)}"})
    with urllib.request.urlopen(req, timeout=FAULT_API_TIMEOUT_S) as resp:
        resp.read()


# --- offline guard ---------------------------------------------------------------------------


def _closed_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _offline(url):
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{_closed_loopback_port()}"))


# --- private attributes ----------------------------------------------------------------------


class _SequenceId:
    """``client._sequence_id``: the highest sequence id received."""

    def __init__(self):
        self._lock = threading.Lock()
        self.sequence_id = 0

    def observe(self, args):
        seq = getattr(args, "sequence_id", None) or 0
        with self._lock:
            if seq > self.sequence_id:
                self.sequence_id = seq


class _SyncSocket:
    def __init__(self, client):
        self._client = client

    def close(self, status=1000, *args, **kwargs):
        _drop_connection(self._client._shim_url, self._client.connection_id)


class _AsyncSession:
    def __init__(self, client):
        self._client = client

    async def close(self, *args, **kwargs):
        import asyncio

        await asyncio.get_running_loop().run_in_executor(
            None, _drop_connection, self._client._shim_url, self._client.connection_id
        )


class _ShimMixin:
    def _shim_init(self):
        self._sequence_id = _SequenceId()
        # Straight into the listener registry: the asyncio client's subscribe() is a coroutine.
        self._core.listeners.add("group-message", self._sequence_id.observe)
        self._core.listeners.add("server-message", self._sequence_id.observe)

    @property
    def _connection_id(self):
        return self.connection_id

    @property
    def _start_timeout(self):
        return self._settings.start_timeout


class WebPubSubClient(_ShimMixin, ours.WebPubSubClient):
    """Our sync client with the official client's private attributes the suite reads."""

    def __init__(self, credential, **kwargs):
        self._shim_url = None
        if isinstance(credential, str):
            fixed = credential
            provider = lambda: fixed  # noqa: E731
        else:
            provider = credential.get_client_access_url

        def recorded():
            self._shim_url = _offline(provider())
            return self._shim_url

        super().__init__(ours.WebPubSubClientCredential(recorded), **kwargs)
        self._shim_init()
        self._ws = types.SimpleNamespace(sock=_SyncSocket(self))


class AsyncWebPubSubClient(_ShimMixin, ours_aio.WebPubSubClient):
    """Our asyncio client with the official client's private attributes the suite reads."""

    def __init__(self, credential, **kwargs):
        self._shim_url = None
        if isinstance(credential, str):
            fixed = credential

            async def provider():
                return fixed

        else:
            provider = credential.get_client_access_url

        async def recorded():
            value = provider()
            if inspect.isawaitable(value):
                value = await value
            self._shim_url = _offline(value)
            return self._shim_url

        super().__init__(ours_aio.WebPubSubClientCredential(recorded), **kwargs)
        self._shim_init()
        self._ws = types.SimpleNamespace(sock=_AsyncSession(self), session=_AsyncSession(self))


def _module(name, source, **overrides):
    mod = types.ModuleType(name)
    mod.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("__")})
    mod.__dict__.update(overrides)
    mod.__wps_shim__ = True
    return mod


def install():
    """Make ``azure.messaging.webpubsubclient[.models|.aio]`` name the shimmed package."""
    top = _module("azure.messaging.webpubsubclient", ours, WebPubSubClient=WebPubSubClient)
    models = _module("azure.messaging.webpubsubclient.models", ours_models)
    aio = _module("azure.messaging.webpubsubclient.aio", ours_aio, WebPubSubClient=AsyncWebPubSubClient)
    top.models, top.aio = models, aio
    import azure.messaging  # the namespace package (from azure-messaging-webpubsubservice)

    azure.messaging.webpubsubclient = top
    sys.modules[top.__name__] = top
    sys.modules[models.__name__] = models
    sys.modules[aio.__name__] = aio


def pytest_configure(config):
    config.addinivalue_line("markers", "live_test_only: test needs a live service (the emulator)")
    install()


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == "test_unit.py":
        return True  # the official client's internal message classes; see the module docstring
    return None


def pytest_sessionstart(session):
    import azure.messaging.webpubsubclient as shimmed

    assert getattr(shimmed, "__wps_shim__", False), "the import shim is not in place"
    assert shimmed.WebPubSubClient.__mro__[2] is ours.WebPubSubClient
