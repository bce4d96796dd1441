#!/usr/bin/env python3
"""One client of the chaos suite (scripts/chaos.sh) on the webpubsub_client package.

  chaos_client.py --role pub|sub --protocol json|protobuf --id NAME --url URL --group G --out FILE
                  [--rate MSGS_PER_S] [--ff-every K] [--max-seconds S] [--offline-queue N]

The same contract as tests/chaos/chaos_client.c: payloads read "P=<id>;C=<counter>;K=a|f;"
plus padding; the client stops when stdin reaches end of file (or after --max-seconds) and
writes JSON lines to --out. The publisher uses the blocking API: one acked send at a time,
retried with its ack id until it succeeds, and every K-th message fire-and-forget (JSON data on
the JSON protocol, binary on protobuf). With --offline-queue (at most N operations) sends made
while disconnected wait in the library's offline queue instead of failing; each send records
whether the client was connected when it was made. SESSION_LOST is recorded with its last
sequence id.
"""
import argparse
import json
import os
import re
import sys
import threading
import time

from webpubsub_client import WebPubSubClient
from webpubsub_client.models import CallbackType, SendMessageError, WebPubSubDataType, WebPubSubProtocolType

PAYLOAD = re.compile(r"P=([^;]+);C=(\d+);K=(.);")


def status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return -1


def fd_count():
    return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor


def resources():
    return {"threads": status_field("Threads"), "fds": fd_count(), "rss_kb": status_field("VmRSS")}


class Out:
    def __init__(self, path):
        self.f = open(path, "w")
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def emit(self, **fields):
        line = json.dumps({"t": int((time.monotonic() - self.t0) * 1000), **fields}, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["pub", "sub"], required=True)
    ap.add_argument("--protocol", choices=["json", "protobuf"], default="json")
    ap.add_argument("--id", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--group", default="chaos")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rate", type=float, default=30)
    ap.add_argument("--ff-every", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--offline-queue", type=int, default=0)
    a = ap.parse_args()
    out = Out(a.out)
    deadline = time.monotonic() + a.max_seconds
    protocol = (
        WebPubSubProtocolType.PROTOBUF_RELIABLE if a.protocol == "protobuf" else WebPubSubProtocolType.JSON_RELIABLE
    )
    client = WebPubSubClient(
        a.url,
        protocol_type=protocol,
        reconnect_retry_total=100000,
        reconnect_retry_backoff_factor=0.2,
        reconnect_retry_backoff_max=2.0,
        ack_timeout=10.0,
        start_timeout=15.0,
        keep_alive_interval=2.0,
        keep_alive_timeout=8.0,
        offline_queue_max_messages=a.offline_queue,
    )
    state = {"conn": None, "stopped": 0, "connected": 0, "disconnected": 0, "inflight": None}
    lock = threading.Lock()
    stopped_cv = threading.Condition(lock)

    def on_connected(e):
        with lock:
            state["conn"] = e.connection_id
            state["connected"] += 1
        out.emit(k="connected", conn=e.connection_id)

    def on_disconnected(e):
        with lock:
            state["disconnected"] += 1
            inflight = [] if state["inflight"] is None else [state["inflight"]]
        out.emit(k="disconnected", conn=e.connection_id, message=e.message, inflight=inflight)

    def on_session_lost(e):
        out.emit(k="session_lost", conn=e.connection_id, last_seq=e.last_sequence_id, message=e.message)

    def on_stopped(*_):
        with lock:
            state["stopped"] += 1
            stopped_cv.notify_all()
        out.emit(k="stopped")

    def on_rejoin_failed(e):
        out.emit(k="rejoin_failed", group=e.group, error=str(e.error))

    def on_group_message(e):
        data = e.data
        if isinstance(data, memoryview):
            data = bytes(data).decode("utf-8", "replace")
        elif not isinstance(data, str):
            data = json.dumps(data)
        m = PAYLOAD.search(data)
        if not m:
            out.emit(k="garbage", len=len(data))
            return
        with lock:
            conn = state["conn"]
        out.emit(k="msg", conn=conn, seq=e.sequence_id, p=m.group(1), c=int(m.group(2)), kind=m.group(3))

    client.subscribe(CallbackType.CONNECTED, on_connected)
    client.subscribe(CallbackType.DISCONNECTED, on_disconnected)
    client.subscribe(CallbackType.STOPPED, on_stopped)
    client.subscribe(CallbackType.SESSION_LOST, on_session_lost)
    client.subscribe(CallbackType.REJOIN_GROUP_FAILED, on_rejoin_failed)
    if a.role == "sub":
        client.subscribe(CallbackType.GROUP_MESSAGE, on_group_message)

    stop = threading.Event()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read1(256):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    # The watcher ends at end of file; it is joined before the end is measured, and left out of
    # the thread count at the start, so the two counts compare the library's threads.
    watcher = threading.Thread(target=watch_stdin, daemon=True)
    watcher.start()

    starts = 0
    while True:
        try:
            client.open()
            starts += 1
            break
        except Exception as e:  # the proxy may be faulty already: try until the deadline
            out.emit(k="start_failed", error=repr(e))
            if time.monotonic() > out.t0 + 60:
                out.emit(k="fatal", what="start")
                return 1
    if a.role == "sub":
        while True:
            try:
                client.join_group(a.group)
                break
            except Exception as e:
                out.emit(k="join_failed", error=repr(e))
                if time.monotonic() > out.t0 + 60:
                    out.emit(k="fatal", what="join")
                    return 1
    start_res = resources()
    start_res["threads"] -= 1  # the stdin watcher
    out.emit(k="start", id=a.id, impl="python", role=a.role, protocol=a.protocol, **start_res)

    counts = {"acked_ok": 0, "acked_dup_possible": 0, "acked_failed": 0, "ff_sent": 0, "ff_refused": 0, "retries": 0,
              "sent_offline": 0, "offline_queue": a.offline_queue}
    if a.role == "pub":
        dt = WebPubSubDataType.BINARY if a.protocol == "protobuf" else WebPubSubDataType.JSON
        interval = 1.0 / a.rate
        next_at = time.monotonic()
        counter, n = 1, 0
        while not stop.is_set() and time.monotonic() < deadline:
            wait = next_at - time.monotonic()
            if wait > 0 and stop.wait(wait):  # pacing
                break
            ff = a.ff_every > 0 and n % a.ff_every == a.ff_every - 1
            text = f"P={a.id};C={counter};K={'f' if ff else 'a'};" + "x" * ((counter * 2654435761) % 260)
            content = text.encode() if dt == WebPubSubDataType.BINARY else text
            offline = int(not client.is_connected())
            if ff:
                try:
                    client.send_to_group(a.group, content, dt, ack=False)
                    counts["ff_sent"] += 1
                    counts["sent_offline"] += offline
                    out.emit(k="ff", c=counter, offline=offline)
                except SendMessageError as e:
                    counts["ff_refused"] += 1
                    out.emit(k="refused", c=counter, ff=1, rc=e.error_detail.name if e.error_detail else None)
                    stop.wait(0.1)
                    continue
            else:
                with lock:
                    state["inflight"] = counter
                    conn_before = state["conn"]
                counts["sent_offline"] += offline
                out.emit(k="sent", c=counter, offline=offline)
                ack_id, attempts, rc = None, 0, None
                while True:
                    attempts += 1
                    try:
                        client.send_to_group(a.group, content, dt, ack_id=ack_id)
                        rc = "WPS_OK"
                        break
                    except SendMessageError as e:
                        ack_id = e.ack_id if e.ack_id else ack_id
                        rc = e.error_detail.name if e.error_detail else "error"
                        counts["retries"] += 1
                        out.emit(k="retry", c=counter, rc=rc, ack_id=ack_id)
                        if time.monotonic() > deadline + 60 or (stop.is_set() and attempts > 20):
                            break
                        time.sleep(0.2)  # pacing of retries
                with lock:
                    state["inflight"] = None
                    conn_after = client.connection_id
                # Sent on one connection and acked on another: the service could not recognise
                # the ack id, so the message may have been delivered twice.
                changed = conn_before != conn_after
                if rc == "WPS_OK":
                    counts["acked_ok"] += 1
                    counts["acked_dup_possible"] += changed
                else:
                    counts["acked_failed"] += 1
                out.emit(k="ack", c=counter, rc=rc, dup=0, conn_changed=int(changed), attempts=attempts)
            counter += 1
            n += 1
            next_at += interval
            if next_at < time.monotonic() - 1:
                next_at = time.monotonic()  # no catch-up burst after a stall
        out.emit(k="drained", inflight=0)
    else:
        stop.wait(max(0.0, deadline - time.monotonic()))

    with lock:
        stopped_before = state["stopped"]
    client.close()
    with lock:
        stopped_cv.wait_for(lambda: state["stopped"] > stopped_before, timeout=20)
        end_state = dict(state)
    connected_at_end = client.is_connected()
    watcher.join(5)
    res = resources()
    if watcher.is_alive():  # --max-seconds passed before end of file
        res["threads"] -= 1
    out.emit(
        k="end",
        stop_rc="WPS_OK",
        starts=starts,
        stopped_events=end_state["stopped"],
        connected_at_end=int(connected_at_end),
        async_ok=0,
        completions=0,
        double_completions=0,
        connected_events=end_state["connected"],
        disconnected_events=end_state["disconnected"],
        inflight=0,
        **counts,
        **res,
    )
    out.f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
