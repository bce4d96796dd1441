#!/usr/bin/env python3
"""Test helper for the C tests: mints client access URLs and drives the emulator's fault API.

The emulator's connection string comes from WPS_TEST_CONNSTR
("Endpoint=http://HOST:PORT;AccessKey=KEY;Version=1.0;"). Tokens are HS256 JWTs signed with the
access key bytes (standard library only).

  wps_tool.py url HUB [--user U] [--role R]... [--exp SECONDS_FROM_NOW]
  wps_tool.py fault HUB CONNECTION_ID drop|expire|close [CODE]
  wps_tool.py fault HUB CONNECTION_ID stall|delay MS
  wps_tool.py restart [DOWN_MS]     (every connection and session lost; 503 for DOWN_MS)
  wps_tool.py connections HUB
  wps_tool.py server-send HUB CONNECTION_ID TEXT     (REST: send text to one connection)
  wps_tool.py upstream-server -   an upstream event handler on 127.0.0.1 (prints its port first):
                                  user event "echo" answers 200 with the request body and type,
                                  "fail" answers 500, system events 204
  wps_tool.py mute-server -    a WebSocket server on 127.0.0.1 that accepts one client, sends
                               `connected` and then never answers; prints its port first and
                               exits when the client goes away (at most 60 s)
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwt(key, claims):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    sig = hmac.new(key.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(sig)}"


def connstr():
    raw = os.environ["WPS_TEST_CONNSTR"]
    parts = dict(p.split("=", 1) for p in raw.strip().split(";") if "=" in p)
    endpoint = parts["Endpoint"].rstrip("/")
    if "Port" in parts:
        endpoint = f"{endpoint}:{parts['Port']}"
    return endpoint, parts["AccessKey"]


def client_url(hub, user, roles, exp):
    endpoint, key = connstr()
    now = int(time.time())
    claims = {"aud": f"{endpoint}/client/hubs/{hub}", "iat": now, "exp": now + exp}
    if user:
        claims["sub"] = user
    if roles:
        claims["role"] = roles
    ws = "ws" + endpoint[4:] if endpoint.startswith("http") else endpoint
    return f"{ws}/client/hubs/{hub}?access_token={jwt(key, claims)}"


def emulator_request(method, path, body=None, content_type=None):
    endpoint, key = connstr()
    url = f"{endpoint}{path}"
    token = jwt(key, {"aud": url, "exp": int(time.time()) + 300})
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read().decode()


def upstream_server():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            ce_type = self.headers.get("ce-type", "")
            if ce_type == "azure.webpubsub.user.echo":
                self.send_response(200)
                self.send_header("Content-Type", self.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif ce_type == "azure.webpubsub.user.fail":
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(204)
                self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


def mute_server():
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(60)
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.settimeout(60)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            return 0
        request += chunk
    headers = {}
    for line in request.decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    accept = base64.b64encode(
        hashlib.sha1((headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    proto = headers.get("sec-websocket-protocol", "").split(",")[0].strip()
    conn.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n"
        ).encode()
    )
    body = json.dumps({"type": "system", "event": "connected", "connectionId": "mute-1", "userId": "u"}).encode()
    conn.sendall(bytes([0x81, len(body)]) + body)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    return 0


def main(argv):
    if len(argv) in (2, 3) and argv[1] == "restart":
        suffix = f"?downMs={argv[2]}" if len(argv) > 2 else ""
        status, _ = emulator_request("POST", f"/_emulator/:restart{suffix}")
        return 0 if 200 <= status < 300 else 1
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, hub = argv[1], argv[2]
    if cmd == "mute-server":
        return mute_server()
    if cmd == "upstream-server":
        return upstream_server()
    if cmd == "url":
        user, roles, exp = None, [], 3600
        rest = argv[3:]
        while rest:
            flag, value, rest = rest[0], rest[1], rest[2:]
            if flag == "--user":
                user = value
            elif flag == "--role":
                roles.append(value)
            elif flag == "--exp":
                exp = int(value)
            else:
                raise SystemExit(f"unknown option {flag}")
        print(client_url(hub, user, roles, exp))
        return 0
    if cmd == "fault":
        conn, action = argv[3], argv[4]
        param = "ms" if action in ("stall", "delay") else "code"
        suffix = f"?{param}={argv[5]}" if len(argv) > 5 else ""
        status, _ = emulator_request("POST", f"/_emulator/hubs/{hub}/connections/{conn}/:{action}{suffix}")
        return 0 if 200 <= status < 300 else 1
    if cmd == "connections":
        status, body = emulator_request("GET", f"/_emulator/hubs/{hub}/connections")
        print(body)
        return 0 if status == 200 else 1
    if cmd == "server-send":
        conn, text = argv[3], argv[4]
        path = f"/api/hubs/{hub}/connections/{conn}/:send?api-version=2024-12-01"
        status, _ = emulator_request("POST", path, text.encode(), "text/plain")
        return 0 if 200 <= status < 300 else 1
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
