"""Emulator helpers (standard library only): connection strings, HS256 tokens, access URLs,
and starting ``wps-emulator`` as a separate process."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: str, claims: dict) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def rest_token(key: str, url: str, ttl_s: int = 300) -> str:
    now = int(time.time())
    return sign(key, {"aud": url, "iat": now, "exp": now + ttl_s})


def parse_connection_string(connection_string: str):
    parts = {}
    for segment in connection_string.split(";"):
        name, _, value = segment.partition("=")
        if name.strip():
            parts[name.strip().lower()] = value.strip()
    return parts["endpoint"].rstrip("/"), parts["accesskey"]


def connection_string_from_env() -> str:
    value = os.environ.get("WPS_CONNECTION_STRING")
    if not value:
        raise SystemExit("WPS_CONNECTION_STRING is not set")
    return value


ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]


def client_access_url(connection_string: str, hub: str, ttl_s: int = 7200) -> str:
    """``ws://HOST:PORT/client/hubs/{hub}?access_token=JWT`` allowed to join groups and send."""
    endpoint, key = parse_connection_string(connection_string)
    now = int(time.time())
    token = sign(key, {"aud": f"{endpoint}/client/hubs/{hub}", "iat": now, "exp": now + ttl_s, "role": ROLES})
    return "ws" + endpoint[len("http"):] + f"/client/hubs/{hub}?access_token={token}"


class EmulatorProcess:
    """``wps-emulator --port 0`` in its own process; ``connection_string`` is its first line."""

    def __init__(self, binary: str, log_path: str, cpu: "int | None" = None, prefix=()):
        args = [binary, "--host", "127.0.0.1", "--port", "0"]
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            args = ["taskset", "-c", str(cpu)] + args
        args = list(prefix) + args
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = []
        got = threading.Event()

        def read():
            line.append(self.proc.stdout.readline())
            got.set()

        threading.Thread(target=read, daemon=True).start()
        if not got.wait(30) or not line[0].startswith("Endpoint="):
            self.stop()
            raise RuntimeError(f"wps-emulator did not print its connection string: {line!r}")
        self.connection_string = line[0].strip()
        # Keep draining stdout so the emulator never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
