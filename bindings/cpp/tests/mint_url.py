#!/usr/bin/env python3
"""Prints a client access URL for a Web PubSub connection string (e.g. wps-emulator's first line).

usage: mint_url.py CONNECTION_STRING HUB [--user ID] [--role ROLE]... [--ttl SECONDS]

The URL is ws(s)://HOST[:PORT]/client/hubs/HUB?access_token=JWT where the JWT is HS256-signed
with the UTF-8 bytes of the access key; claims: aud (the URL without query), exp, optional
sub (user id) and role (list).
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.parse


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_connection_string(text: str) -> dict:
    fields = {}
    for part in text.strip().split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"connection string part without '=': {part!r}")
        fields[key.strip().lower()] = value.strip()
    if "endpoint" not in fields or "accesskey" not in fields:
        raise ValueError("connection string needs Endpoint= and AccessKey=")
    return fields


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("connection_string")
    ap.add_argument("hub")
    ap.add_argument("--user")
    ap.add_argument("--role", action="append", default=[])
    ap.add_argument("--ttl", type=int, default=3600)
    args = ap.parse_args()

    fields = parse_connection_string(args.connection_string)
    endpoint = urllib.parse.urlsplit(fields["endpoint"])
    scheme = {"http": "ws", "https": "wss"}.get(endpoint.scheme)
    if scheme is None or not endpoint.hostname:
        print(f"mint_url.py: unsupported endpoint {fields['endpoint']!r}", file=sys.stderr)
        return 2
    port = fields.get("port") or (str(endpoint.port) if endpoint.port else "")
    host = endpoint.hostname + (f":{port}" if port else "")
    path = f"/client/hubs/{args.hub}"
    audience = f"{endpoint.scheme}://{host}{path}"

    claims = {"aud": audience, "iat": int(time.time()), "exp": int(time.time()) + args.ttl}
    if args.user:
        claims["sub"] = args.user
    if args.role:
        claims["role"] = args.role
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    signature = hmac.new(fields["accesskey"].encode("utf-8"), signing_input, hashlib.sha256).digest()
    token = f"{header}.{body}.{b64url(signature)}"
    print(f"{scheme}://{host}{path}?access_token={urllib.parse.quote(token, safe='')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
