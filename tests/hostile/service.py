#!/usr/bin/env python3
"""A scripted, hostile Web PubSub service for the client's hostile-service suite.

Each test case is a script of exact frames played to the client, plus checks of the client's
frames, byte for byte where the case says so. The case is the hub name in the request path
(``/client/hubs/<case>``); the ``run`` query parameter keeps the records of different runs
of the same case apart (recovery URLs keep the original query, so it survives them).

The server speaks HTTP/1.1 and WebSocket (RFC 6455) itself instead of using a WebSocket
library: a library would answer control frames by itself, validate and normalise what is
sent, and refuse to write invalid frames, while these cases need control of every byte in
both directions (the upgrade response or its absence, ping floods, oversized frames, close
codes, pongs checked against the pings that caused them).

Usage: service.py [--tls-cert PEM --tls-key PEM]
The first line printed is a JSON object {"port": N, "tls_port": M or null}. Endpoints:
  GET /client/hubs/<case>?run=<tag>...   WebSocket upgrade, played by the case's script
  GET /_results/<case>?run=<tag>         what the service saw in that run, as JSON
  GET /_cases                            the case names
Listens on 127.0.0.1 only. Standard library only.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import ssl
import struct
import sys
import time
import urllib.parse

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OP_NAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

# Frames the engine encodes for the drivers' standard script, pinned byte for byte: the first
# join and send of a session, and the rejoin on the next connection.
JOIN_1 = b'{"type":"joinGroup","group":"g","ackId":1}'
SEND_2 = b'{"type":"sendToGroup","group":"g","ackId":2,"dataType":"text","data":"hi","noEcho":false}'
REJOIN_3 = b'{"type":"joinGroup","group":"g","ackId":3}'

WAIT = 5.0  # seconds a script waits for one expected frame from the client
MAX_REQUEST = 1 << 20  # bytes of upgrade request accepted
PING_FLOOD = 5000
HUGE_MESSAGE = 50 * 1024 * 1024

RESULTS = {}  # (run, case) -> record


def now():
    return time.monotonic()


def record_for(run, case):
    key = (run, case)
    if key not in RESULTS:
        RESULTS[key] = {"case": case, "run": run, "t0": None, "connections": [], "checks": [], "state": {}}
    return RESULTS[key]


def public(rec):
    """The record as JSON-ready data (times in ms from the first connection)."""
    t0 = rec["t0"] or 0.0
    conns = []
    for c in rec["connections"]:
        c = dict(c)
        for k in ("t_open", "t_end", "t_closed_by_service"):
            if c.get(k) is not None:
                c[k] = round((c[k] - t0) * 1000, 1)
        c["frames"] = [dict(f, t=round((f["t"] - t0) * 1000, 1)) for f in c["frames"]]
        conns.append(c)
    return {"case": rec["case"], "run": rec["run"], "connections": conns, "checks": rec["checks"]}


class Abort(Exception):
    """A script gives up on a connection (a failed expectation already recorded)."""


class Conn:
    """One accepted TCP connection: the upgrade, then frames in both directions."""

    def __init__(self, rec, reader, writer, info):
        self.rec = rec
        self.reader = reader
        self.writer = writer
        self.info = info  # the record of this connection (also in rec["connections"])
        self.inbox = []  # inbound data frames: (opcode, payload)
        self.cursor = 0
        self.changed = asyncio.Event()
        self.closed = asyncio.Event()  # the client sent close, or the stream ended
        self.close_sent = False
        self.pings = []  # payloads of the pings this service sent
        self.pongs = []  # payloads of the pongs the client sent
        self.reader_task = None

    # -- checks

    def check(self, what, ok, detail=None):
        self.rec["checks"].append({"conn": self.info["n"], "what": what, "ok": bool(ok), "detail": detail})
        return ok

    def require(self, what, ok, detail=None):
        if not self.check(what, ok, detail):
            raise Abort(what)

    # -- writing

    def frame_bytes(self, opcode, payload, fin=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        return head + payload

    async def send_raw(self, data):
        try:
            self.writer.write(data)
            await self.writer.drain()
            return True
        except (ConnectionError, OSError):
            return False

    async def send_text(self, text):
        data = text.encode() if isinstance(text, str) else text
        return await self.send_raw(self.frame_bytes(OP_TEXT, data))

    async def send_json(self, obj):
        return await self.send_text(json.dumps(obj, separators=(",", ":")))

    async def send_ping(self, payload, drain=True):
        """A ping whose pong is checked later (`self.pongs` against `self.pings`)."""
        self.pings.append(payload)
        self.info["pings"] = len(self.pings)
        frame = self.frame_bytes(OP_PING, payload)
        if drain:
            return await self.send_raw(frame)
        self.writer.write(frame)
        return True

    async def send_close(self, code, reason=b""):
        self.close_sent = True
        self.info["t_closed_by_service"] = now()
        self.info["service_close_code"] = code
        return await self.send_raw(self.frame_bytes(OP_CLOSE, struct.pack("!H", code) + reason))

    async def connected(self, connection_id, token="tok", user_id="u1"):
        msg = {"type": "system", "event": "connected", "userId": user_id, "connectionId": connection_id}
        if token is not None:
            msg["reconnectionToken"] = token
        await self.send_json(msg)

    async def ack(self, ack_id, error=None):
        msg = {"type": "ack", "ackId": ack_id, "success": error is None}
        if error is not None:
            msg["error"] = {"name": error, "message": f"{error} (hostile service)"}
        await self.send_json(msg)

    async def server_message(self, text, seq):
        msg = {"sequenceId": seq, "type": "message", "from": "server", "dataType": "text", "data": text}
        await self.send_json(msg)

    # -- reading

    async def read_frame(self):
        """One frame from the client, unmasked: (fin, opcode, payload, masked)."""
        head = await self.reader.readexactly(2)
        fin = bool(head[0] & 0x80)
        opcode = head[0] & 0x0F
        masked = bool(head[1] & 0x80)
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        if n > 64 * 1024 * 1024:
            raise ConnectionError(f"client frame of {n} bytes")
        mask = await self.reader.readexactly(4) if masked else b"\0\0\0\0"
        data = await self.reader.readexactly(n)
        if masked:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if n < 4096 else _unmask(data, mask)
        return fin, opcode, data, masked

    async def read_loop(self):
        """Records every frame; answers the client's pings and close."""
        frames = self.info["frames"]
        partial = None
        try:
            while True:
                fin, opcode, data, masked = await self.read_frame()
                t = now()
                if not masked:
                    self.check("client frames are masked", False, OP_NAMES.get(opcode, opcode))
                if opcode == OP_PONG:
                    self.pongs.append(data)
                    self.info["pongs"] = len(self.pongs)
                    continue
                entry = {"t": t, "op": OP_NAMES.get(opcode, str(opcode)), "len": len(data)}
                if opcode in (OP_TEXT, OP_CONT) and len(data) <= 512:
                    entry["data"] = data.decode("utf-8", "replace")
                elif opcode == OP_CLOSE:
                    entry["code"] = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    entry["reason"] = data[2:].decode("utf-8", "replace")
                elif len(data) <= 512:
                    entry["hex"] = data.hex()
                frames.append(entry)
                if opcode == OP_PING:
                    await self.send_raw(self.frame_bytes(OP_PONG, data))
                    continue
                if opcode == OP_CLOSE:
                    self.info["client_close_code"] = entry["code"]
                    self.info["client_close_reason"] = entry["reason"]
                    if not self.close_sent:
                        await self.send_raw(self.frame_bytes(OP_CLOSE, data[:2]))
                        self.close_sent = True
                    break
                if opcode == OP_CONT:
                    if partial is None:
                        self.check("continuation without a first fragment", False)
                        continue
                    partial = (partial[0], partial[1] + data)
                else:
                    partial = (opcode, data)
                if fin:
                    self.inbox.append(partial)
                    partial = None
                    self.changed.set()
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            self.info.setdefault("read_end", type(e).__name__)
        finally:
            self.info["t_end"] = now()
            self.closed.set()
            self.changed.set()

    async def next_frame(self, timeout=WAIT, skip_types=("sequenceAck",)):
        """The next data frame that is not one of `skip_types`: (opcode, payload, parsed json or None)."""
        deadline = now() + timeout
        while True:
            while self.cursor < len(self.inbox):
                opcode, data = self.inbox[self.cursor]
                self.cursor += 1
                parsed = _parse(data)
                if parsed is not None and parsed.get("type") in skip_types:
                    continue
                return opcode, data, parsed
            if self.closed.is_set():
                return None
            left = deadline - now()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                return None

    async def expect(self, what, exact, timeout=WAIT):
        """Waits for the next data frame and checks it byte for byte."""
        got = await self.next_frame(timeout)
        if got is None:
            self.require(what, False, "nothing arrived" if not self.closed.is_set() else "the client closed first")
        opcode, data, _ = got
        self.require(what, opcode == OP_TEXT and data == exact, data.decode("utf-8", "replace")[:300])

    async def wait_seq_ack(self, seq, timeout=3.0):
        """Waits for a sequenceAck acknowledging `seq`; returns its exact bytes or None."""
        deadline = now() + timeout
        while True:
            for _, data in self.inbox:
                p = _parse(data)
                if p and p.get("type") == "sequenceAck" and p.get("sequenceId") == seq:
                    return data
            if self.closed.is_set() or now() >= deadline:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - now())
            except asyncio.TimeoutError:
                pass

    async def wait_closed(self, timeout=10.0):
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def data_frames(self, type_):
        return [d for op, d in self.inbox if (_parse(d) or {}).get("type") == type_]

    # -- the standard exchange

    async def open_session(self, connection_id="conn-1", token="tok-1"):
        """`connected`, then the driver's join and send, each acked."""
        await self.connected(connection_id, token)
        await self.expect("first joinGroup is the engine's exact encoding", exact=JOIN_1)
        await self.ack(1)
        await self.expect("first sendToGroup is the engine's exact encoding", exact=SEND_2)
        await self.ack(2)

    async def reopen_session(self, connection_id="conn-2", token="tok-2"):
        """A new connection after a loss: `connected`, the rejoin (sent once), acked."""
        await self.connected(connection_id, token)
        await self.expect("the rejoin is the engine's exact encoding", exact=REJOIN_3)
        await self.ack(3)

    async def finish(self, seq, rejoined=False):
        """Sends END and waits for the client to close; checks nothing else was sent."""
        await self.server_message("END", seq)
        closed = await self.wait_closed()
        self.check("the client closed after END", closed)
        if rejoined:
            joins = self.data_frames("joinGroup")
            self.check("each rejoin sent once", len(joins) == 1, [j.decode() for j in joins])
        code = self.info.get("client_close_code")
        self.check("the client closed with 1000", code == 1000, code)


def _unmask(data, mask):
    n = len(data)
    m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ m).to_bytes(n, "big")


def _parse(data):
    try:
        v = json.loads(data)
        return v if isinstance(v, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None


# ---- the cases ---------------------------------------------------------------------------
# Each script gets the connection and the number of *new* (non-recovery) connections so far
# in this run of the case, this one included. Recovery attempts are always refused (101, then
# close 1008): no session is kept.

CASES = {}


def case(name, handshake="accept", session=True, every_connection=False):
    """Registers a script. With `session` the standard exchange (`connected`, the driver's
    join and send, acked) runs before it; unless `every_connection`, the script plays the
    first new connection only, and the second one rejoins and ends (`reconnect_then_end`)."""

    def register(fn):
        CASES[name] = {"script": fn, "handshake": handshake, "session": session, "every": every_connection}
        return fn

    return register


async def reconnect_then_end(conn, n):
    """The second new connection of a case: `connected`, the rejoin, then END."""
    if n == 2:
        await conn.reopen_session()
        await conn.finish(1, rejoined=True)
    else:
        conn.check("no more than two new connections", False, n)


@case("malformed_json")
async def malformed_json(conn, n):
    for bad in (
        b'{"type":"message","from":"server","dataType":"text","data":"cut',
        b"not json at all",
        b'{"type":"ack","ackId":"one","success":true}',
        b"[]",
        b"{}",
        b'{"type":"message","from":"server","dataType":"text","data":"dup","data":"x","sequenceId":1}',
        b'{"type":"message","from":"server","dataType":"text","sequenceId":1}',
        b'{"type":"message","from":"group","dataType":"text","data":"no group","sequenceId":1}',
        b'{"type":"ack","ackId":1}',
        b'{"type":"system","event":"connected"}',
    ):
        await conn.send_text(bad)
    await conn.server_message("after", 1)
    await conn.finish(2)


@case("deep_json")
async def deep_json(conn, n):
    """JSON nested 10,000 deep: in an unknown field, then as a json payload."""
    deep = b"[" * 10000 + b"]" * 10000
    head = b'{"sequenceId":1,"type":"message","from":"server","dataType":"text","data":"x","x":'
    await conn.send_text(head + deep + b"}")
    await conn.send_text(b'{"sequenceId":2,"type":"message","from":"server","dataType":"json","data":' + deep + b"}")
    await conn.finish(3)


@case("invalid_utf8")
async def invalid_utf8(conn, n):
    """A text frame that is not UTF-8: a WebSocket protocol violation, not just bad JSON."""
    await conn.send_text(b'{"sequenceId":1,"type":"message","from":"server","dataType":"text","data":"\xff\xfe"}')
    conn.check("the client fails the connection", await conn.wait_closed())
    conn.check("with close code 1007", conn.info.get("client_close_code") == 1007, conn.info.get("client_close_code"))


@case("fragmented")
async def fragmented(conn, n):
    """A message in three fragments with a ping between them (legal, RFC 6455 5.4)."""
    msg = b'{"sequenceId":1,"type":"message","from":"server","dataType":"text","data":"in pieces"}'
    await conn.send_raw(conn.frame_bytes(OP_TEXT, msg[:20], fin=False))
    await conn.send_ping(b"between")
    await conn.send_raw(conn.frame_bytes(OP_CONT, msg[20:50], fin=False))
    await conn.send_raw(conn.frame_bytes(OP_CONT, msg[50:], fin=True))
    await conn.finish(2)
    conn.check("the ping between fragments is answered", conn.pongs == [b"between"], [p.hex() for p in conn.pongs])


@case("reserved_opcode")
async def reserved_opcode(conn, n):
    """A frame with a reserved opcode (0x3): the client must fail the connection."""
    await conn.send_raw(conn.frame_bytes(0x3, b"what is this"))
    conn.check("the client fails the connection", await conn.wait_closed())
    conn.check("with close code 1002", conn.info.get("client_close_code") == 1002, conn.info.get("client_close_code"))


@case("ack_without_error", session=False)
async def ack_without_error(conn, n):
    """Negative acks without the `error` object, and with an error lacking `message`."""
    await conn.connected("conn-1", "tok-1")
    await conn.expect("first joinGroup is the engine's exact encoding", exact=JOIN_1)
    await conn.send_text(b'{"type":"ack","ackId":1,"success":false}')
    await conn.expect("first sendToGroup is the engine's exact encoding", exact=SEND_2)
    await conn.send_text(b'{"type":"ack","ackId":2,"success":false,"error":{"name":"Forbidden"}}')
    await conn.finish(1)


@case("unknown_types")
async def unknown_types(conn, n):
    for frame in (
        {"type": "fancyNewThing", "x": 1},
        {"type": "system", "event": "somethingElse", "message": "?"},
        {"type": "message", "from": "elsewhere", "dataType": "text", "data": "?", "sequenceId": 1},
        {"type": "streamAck", "streamId": "s1", "expectedSequenceId": 2},
        {"type": "invokeResponse", "invocationId": "nope", "success": True},
        {"type": "pong"},
    ):
        await conn.send_json(frame)
    await conn.server_message("after", 2)
    await conn.finish(3)


@case("unknown_ack", session=False)
async def unknown_ack(conn, n):
    await conn.connected("conn-1", "tok-1")
    await conn.expect("first joinGroup is the engine's exact encoding", exact=JOIN_1)
    # Acks for ids never sent, before the real one: neither may settle the join.
    await conn.ack(999, error="Forbidden")
    await conn.ack(18446744073709551615)
    await conn.ack(0, error="InternalServerError")
    await conn.ack(1)
    await conn.expect("first sendToGroup is the engine's exact encoding", exact=SEND_2)
    await conn.ack(2)
    await conn.ack(3)
    await conn.finish(1)


@case("duplicate_acks", session=False)
async def duplicate_acks(conn, n):
    await conn.connected("conn-1", "tok-1")
    await conn.expect("first joinGroup is the engine's exact encoding", exact=JOIN_1)
    await conn.ack(1)
    await conn.ack(1)
    await conn.ack(1, error="Forbidden")
    await conn.expect("first sendToGroup is the engine's exact encoding", exact=SEND_2)
    await conn.ack(2)
    await conn.ack(2, error="Duplicate")
    await conn.ack(2, error="InternalServerError")
    await conn.finish(1)


@case("sequence_backwards")
async def sequence_backwards(conn, n):
    for seq, text in ((1, "a"), (2, "b"), (2, "b-again"), (1, "a-again"), (3, "c")):
        await conn.server_message(text, seq)
    got = await conn.wait_seq_ack(3)
    conn.check(
        "sequenceAck of the highest id, exact bytes",
        got == b'{"type":"sequenceAck","sequenceId":3}',
        got.decode("utf-8", "replace") if got else None,
    )
    acks = [_parse(d)["sequenceId"] for d in conn.data_frames("sequenceAck")]
    conn.check("sequence acks never go backwards", acks == sorted(acks), acks)
    await conn.finish(4)


@case("sequence_huge")
async def sequence_huge(conn, n):
    await conn.server_message("one", 1)
    await conn.server_message("bogus", 18446744073709551615)
    closed = await conn.wait_closed()
    conn.check("the client ends the session", closed)


@case("sequence_negative")
async def sequence_negative(conn, n):
    await conn.send_text(b'{"sequenceId":-1,"type":"message","from":"server","dataType":"text","data":"negative"}')
    await conn.send_text(b'{"sequenceId":0,"type":"message","from":"server","dataType":"text","data":"zero"}')
    await conn.send_text(b'{"sequenceId":1.5,"type":"message","from":"server","dataType":"text","data":"fraction"}')
    await conn.send_text(
        b'{"sequenceId":18446744073709551616,"type":"message","from":"server","dataType":"text","data":"overflow"}'
    )
    await conn.server_message("after", 1)
    await conn.finish(2)


_HUGE = None


def huge_frame():
    global _HUGE
    if _HUGE is None:
        head = b'{"sequenceId":1,"type":"message","from":"server","dataType":"text","data":"'
        tail = b'"}'
        body = b"x" * (HUGE_MESSAGE - len(head) - len(tail))
        frame = bytearray([0x80 | OP_TEXT, 127]) + struct.pack("!Q", HUGE_MESSAGE)
        _HUGE = bytes(frame) + head + body + tail
    return _HUGE


@case("oversized_message")
async def oversized_message(conn, n):
    frame = huge_frame()
    sent = 0
    ok = True
    for i in range(0, len(frame), 1 << 20):
        if conn.closed.is_set():
            break
        if not await conn.send_raw(frame[i : i + (1 << 20)]):
            ok = False
            break
        sent = min(len(frame), i + (1 << 20))
    conn.info["huge_bytes_written"] = sent
    conn.info["huge_write_failed"] = not ok
    closed = await conn.wait_closed()
    conn.check("the client ends the session", closed)


@case("invalid_base64")
async def invalid_base64(conn, n):
    await conn.send_text(b'{"sequenceId":1,"type":"message","from":"server","dataType":"binary","data":"!!not*base64"}')
    await conn.send_text(
        b'{"sequenceId":2,"type":"message","from":"group","group":"g","dataType":"binary","data":"QUJD="}'
    )
    await conn.send_text(b'{"sequenceId":3,"type":"message","from":"server","dataType":"protobuf","data":"%%%"}')
    await conn.send_text(b'{"sequenceId":4,"type":"message","from":"server","dataType":"binary","data":"QUJD"}')
    await conn.finish(5)


@case("connected_without_id", session=False)
async def connected_without_id(conn, n):
    await conn.send_text(b'{"type":"system","event":"connected","userId":"u1","reconnectionToken":"tok-1"}')
    conn.check("the client closes the connection", await conn.wait_closed())


@case("message_before_connected", session=False)
async def message_before_connected(conn, n):
    await conn.server_message("early", 1)
    await conn.connected("conn-1", "tok-1")
    conn.check("the client closes the connection", await conn.wait_closed())


@case("long_reconnection_token", session=False)
async def long_reconnection_token(conn, n):
    await conn.open_session(token="t" * (100 * 1024))
    conn.writer.transport.abort()  # a drop: no close frame


@case("ping_flood", session=False)
async def ping_flood(conn, n):
    await conn.connected("conn-1", "tok-1")
    # Pings of varied sizes (0 to 125 bytes), each payload unique; the join and send that
    # follow must still work while the pongs come back.
    for i in range(PING_FLOOD):
        size = i % 126
        payload = (b"%08d" % i + bytes((i * 7 + k) % 256 for k in range(max(0, size - 8))))[:size]
        if size < 8:
            payload = b"%08d" % i
        await conn.send_ping(payload, drain=False)
        if i % 256 == 255:
            if not await conn.send_raw(b""):
                break
    await conn.send_raw(b"")
    await conn.expect("first joinGroup is the engine's exact encoding", exact=JOIN_1)
    await conn.ack(1)
    await conn.expect("first sendToGroup is the engine's exact encoding", exact=SEND_2)
    await conn.ack(2)
    deadline = now() + WAIT
    while now() < deadline and not conn.closed.is_set():
        if conn.pongs and conn.pongs[-1] == conn.pings[-1]:
            break
        conn.changed.clear()
        try:
            await asyncio.wait_for(conn.changed.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
    index = {p: i for i, p in enumerate(conn.pings)}
    order = [index.get(p, -1) for p in conn.pongs]
    conn.check("every pong echoes a ping's payload byte for byte", -1 not in order, order.count(-1))
    conn.check("pongs answer pings in order", all(a < b for a, b in zip(order, order[1:], strict=False)))
    conn.check("the last ping is answered", bool(order) and order[-1] == len(conn.pings) - 1, order[-1:] or None)
    await conn.finish(1)


@case("handshake_never_completes", handshake="hang", session=False)
async def handshake_never_completes(conn, n):
    pass


def close_case(code):
    async def script(conn, n):
        await conn.send_close(code, b"hostile close")
        closed = await conn.wait_closed(3.0)
        conn.check("the client answers the close", closed and conn.info.get("client_close_code") == code,
                   conn.info.get("client_close_code"))

    return script


for _code in (1000, 1001, 1008, 1011, 4000):
    case(f"close_{_code}")(close_case(_code))


@case("disconnected_without_close", session=False)
async def disconnected_without_close(conn, n):
    await conn.connected("conn-1", "tok-1")
    await conn.send_json({"type": "system", "event": "disconnected", "message": "Service reload"})
    # The connection stays open: the join and send that follow must still work.
    await conn.expect("first joinGroup is the engine's exact encoding", exact=JOIN_1)
    await conn.ack(1)
    await conn.expect("first sendToGroup is the engine's exact encoding", exact=SEND_2)
    await conn.ack(2)
    await conn.finish(1)


@case("always_1008", session=False, every_connection=True)
async def always_1008(conn, n):
    await conn.connected(f"conn-{n}", f"tok-{n}")
    await conn.send_close(1008, b"go away")
    await conn.wait_closed(2.0)


@case("tls_default")
@case("tls_ca_file")
async def tls(conn, n):
    await conn.finish(1)


# ---- HTTP and the upgrade ----------------------------------------------------------------


async def read_request(reader):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_REQUEST:
            return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return {"method": parts[0], "target": parts[1], "headers": headers}


async def http_reply(writer, status, body, content_type="application/json"):
    body = body.encode() if isinstance(body, str) else body
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode() + body
    )
    try:
        await writer.drain()
    finally:
        writer.close()


async def handle(reader, writer, tls_ctx=None):
    peer_tls = None
    if tls_ctx is not None:
        try:
            await writer.start_tls(tls_ctx)
            peer_tls = "ok"
        except (ssl.SSLError, ConnectionError, OSError) as e:
            # The client refused the certificate (see /_tls_failures).
            TLS_FAILURES.append(f"{type(e).__name__}: {e}")
            writer.close()
            return
    try:
        req = await read_request(reader)
    except (ConnectionError, OSError):
        req = None
    if req is None:
        writer.close()
        return
    url = urllib.parse.urlsplit(req["target"])
    query = urllib.parse.parse_qs(url.query)
    if url.path.startswith("/_results/"):
        case_name = url.path[len("/_results/") :]
        run = query.get("run", [""])[0]
        rec = RESULTS.get((run, case_name))
        out = public(rec) if rec else {"case": case_name, "run": run, "connections": [], "checks": []}
        return await http_reply(writer, "200 OK", json.dumps(out))
    if url.path == "/_tls_failures":
        # TLS handshakes the client broke off carry no request, hence no run: the runner
        # reads this list before and after a run of a TLS case (one at a time).
        return await http_reply(writer, "200 OK", json.dumps(TLS_FAILURES))
    if url.path == "/_cases":
        return await http_reply(writer, "200 OK", json.dumps(sorted(CASES)))
    prefix = "/client/hubs/"
    case_name = url.path[len(prefix) :] if url.path.startswith(prefix) else None
    spec = CASES.get(case_name or "")
    if spec is None:
        return await http_reply(writer, "404 Not Found", json.dumps({"error": f"no case {case_name!r}"}))
    run = query.get("run", [""])[0]
    rec = record_for(run, case_name)
    if rec["t0"] is None:
        rec["t0"] = now()
    recovery = "awps_connection_id" in query
    state = rec["state"]
    if not recovery:
        state["new"] = state.get("new", 0) + 1
    info = {
        "n": len(rec["connections"]) + 1,
        "t_open": now(),
        "recovery": recovery,
        "tls": peer_tls,
        "query_keys": sorted(query),
        "awps_connection_id": query.get("awps_connection_id", [None])[0],
        "awps_reconnection_token_len": len(query.get("awps_reconnection_token", [""])[0]),
        "subprotocol": req["headers"].get("sec-websocket-protocol"),
        "user_agent": req["headers"].get("user-agent"),
        "frames": [],
    }
    rec["connections"].append(info)
    conn = Conn(rec, reader, writer, info)
    key = req["headers"].get("sec-websocket-key")
    if spec["handshake"] == "hang":
        # Read and never answer: the client must give up by itself (bounded here too).
        try:
            while await asyncio.wait_for(reader.read(65536), 30.0):
                pass
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        info["t_end"] = now()
        writer.close()
        return
    if not key or req["headers"].get("upgrade", "").lower() != "websocket":
        conn.check("the request is a WebSocket upgrade", False, req["headers"])
        return await http_reply(writer, "400 Bad Request", "{}")
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    proto = (info["subprotocol"] or "").split(",")[0].strip()
    conn.check("the client offers the reliable JSON subprotocol", proto == "json.reliable.webpubsub.azure.v1", proto)
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n"
    )
    if proto:
        response += f"Sec-WebSocket-Protocol: {proto}\r\n"
    await conn.send_raw((response + "\r\n").encode())
    conn.reader_task = asyncio.ensure_future(conn.read_loop())
    try:
        if recovery:
            # Sessions are never kept: the documented refusal is 101, then close 1008.
            await conn.send_close(1008, b"the session cannot be recovered")
            await conn.wait_closed(3.0)
        else:
            n = state["new"]
            if n > 1 and not spec["every"]:
                await reconnect_then_end(conn, n)
            else:
                if spec["session"]:
                    await conn.open_session()
                await spec["script"](conn, n)
    except Abort:
        pass
    except Exception as e:  # a broken script is a failed check, never a dead service
        conn.check("the case script ran", False, f"{type(e).__name__}: {e}")
    finally:
        if not conn.closed.is_set():
            await conn.wait_closed(1.0 if conn.close_sent else 0.2)
        if conn.closed.is_set():
            writer.close()
        else:
            writer.transport.abort()
        if conn.reader_task:
            await asyncio.gather(conn.reader_task, return_exceptions=True)
        info.setdefault("t_end", now())


TLS_FAILURES = []


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: None)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=MAX_REQUEST)
    port = server.sockets[0].getsockname()[1]
    tls_port = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls_server = await asyncio.start_server(
            lambda r, w: handle(r, w, ctx), "127.0.0.1", 0, limit=MAX_REQUEST
        )
        tls_port = tls_server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "tls_port": tls_port}), flush=True)
    # Runs until the runner closes stdin (or kills it).
    await loop.run_in_executor(None, sys.stdin.read)
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
