"""Test fixtures: a real ``wps-emulator`` process, client URLs minted by the official server
SDK, and the emulator's fault-injection HTTP API."""

import base64
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent

DEFAULT_ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]
WAIT = 15.0  # seconds any single wait in a test may take before it fails


def emulator_binary() -> Path:
    env = os.environ.get("WPS_EMULATOR")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "wps-emulator"
        if p.is_file():
            return p
    pytest.exit("wps-emulator not built: cargo build --release -p webpubsub-emulator", returncode=2)
    raise AssertionError  # unreachable


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_jwt(key: str, claims: Dict[str, Any]) -> str:
    """An HS256 JWT signed with the access key's bytes."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(key.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


class Emulator:
    """A running ``wps-emulator`` and helpers around it."""

    def __init__(self, proc: subprocess.Popen, connection_string: str) -> None:
        self.proc = proc
        self.connection_string = connection_string
        parts = dict(p.split("=", 1) for p in connection_string.strip().strip(";").split(";") if "=" in p)
        self.endpoint = parts["Endpoint"].rstrip("/")
        self.access_key = parts["AccessKey"]
        self._services: Dict[str, Any] = {}

    # -- client URLs through the official server SDK

    def service(self, hub: str) -> Any:
        from azure.messaging.webpubsubservice import WebPubSubServiceClient

        if hub not in self._services:
            self._services[hub] = WebPubSubServiceClient.from_connection_string(self.connection_string, hub=hub)
        return self._services[hub]

    def client_url(self, hub: str, roles: Optional[List[str]] = None, user_id: Optional[str] = None) -> str:
        kwargs: Dict[str, Any] = {"roles": DEFAULT_ROLES if roles is None else roles}
        if user_id is not None:
            kwargs["user_id"] = user_id
        return self.service(hub).get_client_access_token(**kwargs)["url"]

    # -- fault injection

    def _request(self, method: str, path: str, query: str = "") -> Any:
        url = f"{self.endpoint}{path}" + (f"?{query}" if query else "")
        token = mint_jwt(self.access_key, {"aud": url, "exp": int(time.time()) + 300})
        req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
        if method == "POST":
            req.data = b""
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def connections(self, hub: str) -> List[Dict[str, Any]]:
        return self._request("GET", f"/_emulator/hubs/{urllib.parse.quote(hub)}/connections")

    def drop(self, hub: str, connection_id: str) -> None:
        """Cut the TCP connection without a close frame (recoverable)."""
        self._request("POST", f"/_emulator/hubs/{hub}/connections/{connection_id}/:drop")

    def expire(self, hub: str, connection_id: str) -> None:
        """Forget the session and cut it (recovery gets 1008)."""
        self._request("POST", f"/_emulator/hubs/{hub}/connections/{connection_id}/:expire")

    def close(self, hub: str, connection_id: str, code: int = 1001) -> None:
        """Send a close frame with ``code``."""
        self._request("POST", f"/_emulator/hubs/{hub}/connections/{connection_id}/:close", f"code={code}")


def start_emulator(*extra: str) -> Emulator:
    binary = emulator_binary()
    proc = subprocess.Popen(
        [str(binary), "--port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    first_line: List[str] = []
    got = threading.Event()

    def read_first_line() -> None:
        assert proc.stdout is not None
        first_line.append(proc.stdout.readline())
        got.set()

    threading.Thread(target=read_first_line, daemon=True).start()
    if not got.wait(30) or not first_line[0].startswith("Endpoint="):
        proc.kill()
        pytest.exit(f"wps-emulator did not print its connection string: {first_line!r}", returncode=2)
    return Emulator(proc, first_line[0].strip())


def stop_emulator(emu: Emulator) -> None:
    emu.proc.terminate()
    try:
        emu.proc.wait(10)
    except subprocess.TimeoutExpired:
        emu.proc.kill()


@pytest.fixture(scope="session")
def emulator() -> Any:
    emu = start_emulator()
    yield emu
    stop_emulator(emu)


@pytest.fixture(scope="session")
def failing_upstream_emulator() -> Any:
    """An emulator whose event handler accepts connections but fails every user event."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            event = self.path.rstrip("/").rsplit("/", 1)[-1]
            ok = event in ("connect", "connected", "disconnected")
            self.send_response(200 if ok else 500)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_OPTIONS(self) -> None:  # noqa: N802 - abuse-protection handshake
            self.send_response(200)
            self.send_header("WebHook-Allowed-Origin", "*")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    emu = start_emulator("--upstream", f"http://127.0.0.1:{server.server_address[1]}/{{hub}}/{{event}}")
    yield emu
    stop_emulator(emu)
    server.shutdown()


_HUB_IDS = itertools.count(1)


@pytest.fixture
def hub(request: Any) -> str:
    """A hub name of its own for each test."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"py_{next(_HUB_IDS)}_{name}"


class Recorder:
    """Collects events from listeners; tests wait on it with deadlines instead of sleeping."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.items: List[Any] = []

    def add(self, item: Any) -> None:
        with self.cv:
            self.items.append(item)
            self.cv.notify_all()

    def wait_for(self, predicate: Callable[[List[Any]], bool], timeout: float = WAIT) -> List[Any]:
        with self.cv:
            ok = self.cv.wait_for(lambda: predicate(self.items), timeout)
            assert ok, f"condition not met within {timeout}s; recorded: {self.items!r}"
            return list(self.items)

    def wait_count(self, n: int, timeout: float = WAIT) -> List[Any]:
        return self.wait_for(lambda items: len(items) >= n, timeout)

    def snapshot(self) -> List[Any]:
        with self.cv:
            return list(self.items)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    """Poll ``predicate`` (for state only observable by polling, e.g. the emulator's view)."""
    deadline = time.monotonic() + timeout
    ev = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        ev.wait(0.02)
