#!/usr/bin/env python3
"""Hostile-service driver for the Python package (sync API): the standard script of
tests/hostile/drive_c.c, printing the same JSON lines.

    drive.py URL [--ca-file PEM] [--wait-ms N]

The package has the official client's options, which include neither a recovery timeout nor
a CA file: recovery keeps the library default (the service refuses every recovery at once, so
the cases do not depend on it), and a CA file is passed the way any program using the library
can, through ``SSL_CERT_FILE``, which the library's system trust store honours.
"""

import argparse
import json
import os
import re
import sys
import threading
import time

T0 = time.monotonic()
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "webpubsub_client.h")


def result_names():
    """WPS_* result codes by value, from the C header (the package reports codes)."""
    names = {0: "WPS_OK"}
    try:
        with open(HEADER, encoding="utf-8") as f:
            for m in re.finditer(r"#define (WPS_ERR_\w+) (\d+)", f.read()):
                names[int(m.group(2))] = m.group(1)
    except OSError:
        pass
    return names


NAMES = result_names()
lock = threading.Condition()
state = {"end": False, "stopped": False}


def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(dict({"t": round((time.monotonic() - T0) * 1000, 1)}, **obj)) + "\n")
        sys.stdout.flush()


def text_of(data):
    if isinstance(data, memoryview):
        data = bytes(data)
    if isinstance(data, bytes):
        return data.decode("latin-1"), len(data)
    if not isinstance(data, str):
        data = json.dumps(data)
    return data, len(data.encode("utf-8"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--ca-file")
    ap.add_argument("--wait-ms", type=int, default=8000)
    args = ap.parse_args()
    if args.ca_file:
        os.environ["SSL_CERT_FILE"] = args.ca_file

    from webpubsub_client import WebPubSubClient
    from webpubsub_client.models import CallbackType, OpenClientError, RetryMode, SendMessageError
    from webpubsub_client.models import WebPubSubDataType, WebPubSubProtocolType

    def failure(op, started, e):
        code = getattr(e, "code", 0)
        detail = getattr(e, "error_detail", None)
        error_name = getattr(detail, "name", None) if detail is not None else None
        emit(
            {
                "op": op,
                "result": NAMES.get(code, str(code)),
                "ms": round((time.monotonic() - started) * 1000, 1),
                "message": str(e),
                "error_name": error_name if error_name not in NAMES.values() else None,
                "exception": type(e).__name__,
            }
        )

    def ok(op, started):
        emit({"op": op, "result": "WPS_OK", "ms": round((time.monotonic() - started) * 1000, 1)})

    started = time.monotonic()
    try:
        client = WebPubSubClient(
            args.url,
            protocol_type=WebPubSubProtocolType.JSON_RELIABLE,
            reconnect_retry_total=2,
            reconnect_retry_mode=RetryMode.Fixed,
            reconnect_retry_backoff_factor=0.1,
            reconnect_retry_backoff_max=0.1,
            start_timeout=3.0,
        )
    except Exception as e:  # an invalid URL is a reported failure, not a crash
        failure("new", started, e)
        return 0
    ok("new", started)

    def on_connected(e):
        emit({"event": "connected", "connection_id": e.connection_id, "message": None})

    def on_disconnected(e):
        emit({"event": "disconnected", "connection_id": e.connection_id, "message": e.message})

    def on_stopped(*_):
        emit({"event": "stopped", "connection_id": None, "message": None})
        with lock:
            state["stopped"] = True
            lock.notify_all()

    def on_server_message(e):
        text, n = text_of(e.data)
        emit({"event": "server_message", "data_len": n, "sequence_id": e.sequence_id or 0, "data": text[:200]})
        if text == "END":
            with lock:
                state["end"] = True
                lock.notify_all()

    def on_group_message(e):
        text, n = text_of(e.data)
        emit({"event": "group_message", "group": e.group, "data_len": n, "sequence_id": e.sequence_id or 0,
              "data": text[:200]})

    def on_rejoin_failed(e):
        emit({"event": "rejoin_group_failed", "group": e.group, "message": str(e.error),
              "result": NAMES.get(getattr(e.error, "code", 0), "?")})

    client.subscribe(CallbackType.CONNECTED, on_connected)
    client.subscribe(CallbackType.DISCONNECTED, on_disconnected)
    client.subscribe(CallbackType.STOPPED, on_stopped)
    client.subscribe(CallbackType.SERVER_MESSAGE, on_server_message)
    client.subscribe(CallbackType.GROUP_MESSAGE, on_group_message)
    client.subscribe(CallbackType.REJOIN_GROUP_FAILED, on_rejoin_failed)

    started = time.monotonic()
    opened = False
    try:
        client.open()
        opened = True
        ok("start", started)
    except OpenClientError as e:
        failure("start", started, e)
    if opened:
        for op, call in (
            ("join", lambda: client.join_group("g")),
            ("send", lambda: client.send_to_group("g", "hi", WebPubSubDataType.TEXT)),
        ):
            started = time.monotonic()
            try:
                call()
                ok(op, started)
            except SendMessageError as e:
                failure(op, started, e)
        with lock:
            lock.wait_for(lambda: state["end"] or state["stopped"], args.wait_ms / 1000)
            why = "END" if state["end"] else "STOPPED" if state["stopped"] else "deadline"
        emit({"op": "wait", "until": why})
    started = time.monotonic()
    client.close()
    ok("stop", started)
    started = time.monotonic()
    client = None  # the last reference: the finalizer frees the native client here
    ok("free", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
