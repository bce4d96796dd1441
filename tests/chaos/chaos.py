#!/usr/bin/env python3
"""Chaos suite orchestrator and oracle (run through scripts/chaos.sh).

Starts a wps-emulator and a wps-fault-proxy in front of it, then publishers and subscribers in
separate processes (tests/chaos/chaos_client.c linked against the .so, and
tests/chaos/chaos_client.py on the webpubsub_client package), on the reliable JSON and
protobuf subprotocols, all connecting through the proxy. While the publishers send, a fault
schedule drawn from the seed runs: proxy faults (latency and jitter, bandwidth, slicing, short
blackholes, reset-all, close-all, refusing new connections, reset after N bytes) and emulator
faults on named clients (`:drop`, `:close` with 1000/1011/1008, `:expire`, `:stall`, `:delay`, and a publisher's
session expired while the acks of messages the service took are being swallowed), and restarts
of the whole service (`/_emulator/:restart` with a downtime: every session ends, recoveries
are refused, new connections get 503 for a while). The same seed gives the same schedule (fault
types, times, parameters and target clients; connection ids differ between runs). Some
publishers run with the offline queue (`wps_options_set_offline_queue`): they keep publishing
while disconnected, and the library sends what they queued once connected.

Afterwards it reads every client's JSON lines and checks (any violation fails the run):
  * every client whose session ended without recovery (its connection id changed) got
    WPS_EVENT_SESSION_LOST for that connection id before the connection's DISCONNECTED; for a
    subscriber, the event's last sequence id is the last one it received on that connection;
  * every acked message reaches every subscriber exactly once, and first arrivals are in each
    publisher's order, except the messages a subscriber missed in a gap it was told about: a
    message of publisher P may be missing only if it lies between the last message of P received
    before a SESSION_LOST and the first one received after it. A subscriber that kept one
    connection id for the whole run (continuous) has no such gap. A message may arrive twice only
    if it was waiting for its ack when its publisher's connection id changed (the library sends
    it again on the new connection and the service cannot recognise the old connection's ack
    id); for subscribers with a lost session only duplicates within one connection count;
  * publishers with the offline queue never have a send refused with WPS_ERR_NOT_CONNECTED;
    their sends made while disconnected count as every other send above (nothing queued and
    acked is lost or duplicated);
  * no ack reported success for a message a subscriber did not get outside its told gaps;
  * sequence ids only increase within one connection id;
  * every _async call that returned WPS_OK got exactly one completion; STOPPED once per start;
    every client ends stopped and exits with 0;
  * threads at the end are not above the start, open fds at the end are below the start by the
    connection's socket, and RSS at the end is within RSS_TOLERANCE_KB of the start (the start
    is measured once connected and, for subscribers, joined; the end after the client stopped,
    before it is freed; the clients' own stdin watcher thread is not counted).

Prints a summary and writes it as Markdown to build/chaos-report.md.
"""
import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "c"))
import wps_tool  # noqa: E402  (URL minting and the emulator's fault API)

HUB = "chaos"
# RSS may end this much above its start: allocator caches and buffers that grew during a
# backlog (a few thousand queued messages of up to 300 bytes) and are kept for reuse.
RSS_TOLERANCE_KB = 8 * 1024

CI_SEED = 20240612
CI_MINUTES = 2.0

# name, implementation, role, protocol, publish rate, protected from session-ending faults
# (service restarts end every session anyway), offline queue (max operations; 0: off)
CLIENTS = [
    ("cpub-json", "c", "pub", "json", 40, False, 2000),
    ("cpub-pb", "c", "pub", "protobuf", 40, False, 0),
    ("pypub-json", "py", "pub", "json", 15, False, 1000),
    ("pypub-pb", "py", "pub", "protobuf", 15, False, 0),
    ("csub-json", "c", "sub", "json", 0, True, 0),
    ("csub-pb", "c", "sub", "protobuf", 0, True, 0),
    ("pysub-json", "py", "sub", "json", 0, True, 0),
    ("csub-json-2", "c", "sub", "json", 0, False, 0),
    ("pysub-pb", "py", "sub", "protobuf", 0, False, 0),
]


def log(*a):
    print("chaos:", *a, flush=True)


# ---- processes --------------------------------------------------------------------------------


def _die_with_parent():
    """In a child before exec: SIGTERM when the orchestrator dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Children:
    """Every child process, ended on exit whatever happens."""

    def __init__(self):
        self.procs = []

    def spawn(self, args, **kw):
        p = subprocess.Popen(args, preexec_fn=_die_with_parent, **kw)
        self.procs.append(p)
        return p

    def first_line(self, p, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                raise RuntimeError(f"{p.args[0]} printed nothing within {timeout} s")
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{p.args[0]} exited early")
            buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_services(children, bin_dir, out_dir, seed):
    """Starts wps-emulator and wps-fault-proxy in front of it; returns the proxy's control and a
    function minting client URLs (all roles, valid for a day) that point at the proxy."""
    emu = children.spawn([os.path.join(bin_dir, "wps-emulator"), "--port", "0"], stdout=subprocess.PIPE,
                         stderr=open(os.path.join(out_dir, "emulator.log"), "w"))
    connstr = children.first_line(emu, 20)
    os.environ["WPS_TEST_CONNSTR"] = connstr  # for wps_tool
    emu_port = int(connstr.split("Endpoint=", 1)[1].split(";")[0].rsplit(":", 1)[1])
    px = children.spawn([os.path.join(bin_dir, "wps-fault-proxy"), "--upstream", f"127.0.0.1:{emu_port}",
                         "--seed", str(seed)], stdout=subprocess.PIPE,
                        stderr=open(os.path.join(out_dir, "proxy.log"), "w"))
    fields = dict(kv.split("=", 1) for kv in children.first_line(px, 20).split())
    proxy_port = int(fields["listen"].rsplit(":", 1)[1])

    def client_url(hub, user):
        url = wps_tool.client_url(hub, user, ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"], 24 * 3600)
        return url.replace(f"127.0.0.1:{emu_port}/", f"127.0.0.1:{proxy_port}/")

    return Proxy(fields["control"]), client_url


def finish(procs, timeout):
    """Closes each process's stdin (its signal to stop) and waits for them, at most `timeout` s."""
    for p in procs:
        p.stdin.close()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{p.args[0]} {' '.join(p.args[1:3])} did not finish within {timeout} s")


class Proxy:
    def __init__(self, control):
        self.base = f"http://{control}"

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")


# ---- the fault schedule -----------------------------------------------------------------------

PROXY_FAULTS = ["latency", "bandwidth", "slice", "blackhole", "reset_all", "close_all", "refuse", "reset_after"]
EMU_FAULTS = ["emu_drop", "emu_close_1000", "emu_close_1011", "emu_close_1008", "emu_expire", "reconnect_in_flight",
              "emu_stall", "emu_delay", "emu_restart"]
SESSION_ENDING = {"emu_close_1000", "emu_close_1008", "emu_expire"}


def schedule(seed, seconds):
    """The faults: a list of {at, type, hold, ...}, one after the other with calm gaps."""
    rng = random.Random(seed)
    names = [c[0] for c in CLIENTS]
    unprotected = [c[0] for c in CLIENTS if not c[5]]
    kinds = PROXY_FAULTS + EMU_FAULTS
    weights = [3, 2, 2, 2, 2, 2, 2, 2] + [2, 1, 1, 1, 1, 2, 2, 2, 1]
    publishers = [c[0] for c in CLIENTS if c[2] == "pub"]
    # Every kind once, in a seeded order, then seeded random picks until the time is up.
    first = rng.sample(kinds, len(kinds))
    items, t = [], 5.0
    end = seconds - 12.0
    while t < end:
        kind = first.pop(0) if first else rng.choices(kinds, weights)[0]
        f = {"at": round(t, 2), "type": kind, "hold": 0.0}
        if kind == "latency":
            lat = rng.randint(20, 250)
            f.update(latency_ms=lat, jitter_ms=rng.randint(0, lat // 2), hold=rng.uniform(3, 8))
        elif kind == "bandwidth":
            f.update(bytes_per_sec=rng.choice([32, 64, 128, 256]) * 1024, hold=rng.uniform(3, 8))
        elif kind == "slice":
            size = rng.randint(2, 64)
            f.update(slice_bytes=size, slice_variation=rng.randint(0, size - 1), slice_delay_us=rng.randint(0, 1500),
                     hold=rng.uniform(3, 8))
        elif kind == "blackhole":
            f.update(hold=rng.uniform(1, 4))
        elif kind == "refuse":
            f.update(hold=rng.uniform(2, 6))
        elif kind == "reset_after":
            f.update(direction=rng.choice(["upstream", "downstream"]), bytes=rng.randint(500, 30000),
                     hold=rng.uniform(2, 5))
        elif kind == "reconnect_in_flight":
            # The service takes the publisher's messages but their acks are swallowed, then its
            # session ends: the library sends them again on the new connection.
            f.update(target=rng.choice(publishers), swallow_ms=rng.randint(300, 1200), hold=rng.uniform(1, 3))
        elif kind == "emu_stall":
            # The service stops reading and writing one connection: silence, then everything.
            f.update(target=rng.choice(names), ms=rng.randint(300, 3000))
        elif kind == "emu_delay":
            f.update(target=rng.choice(names), ms=rng.randint(20, 400), hold=rng.uniform(2, 6))
        elif kind == "emu_restart":
            # Every session ends; the service answers 503 for a while, so clients retry and the
            # offline queues fill; the hold lets everyone reconnect before the next fault.
            f.update(down_ms=rng.randint(500, 3000), hold=rng.uniform(3, 5))
        elif kind in SESSION_ENDING:
            f.update(target=rng.choice(unprotected))
        elif kind.startswith("emu_"):
            f.update(target=rng.choice(names))
        f["hold"] = round(f["hold"], 2)
        items.append(f)
        t += f["hold"] + rng.uniform(1.5, 5.0)
    return items


def describe(f):
    extra = {k: v for k, v in f.items() if k not in ("at", "type", "hold")}
    hold = f" for {f['hold']} s" if f["hold"] else ""
    return f"t={f['at']:6.1f}s {f['type']}{hold} {json.dumps(extra, separators=(',', ':')) if extra else ''}".rstrip()


def current_connection(path):
    conn = None
    try:
        with open(path) as fh:
            for line in fh:
                if '"k":"connected"' in line:
                    conn = json.loads(line)["conn"]
    except (OSError, ValueError):
        pass
    return conn


def apply_fault(f, proxy, files, counts):
    """Starts fault f; returns the function that ends it (or None)."""
    kind = f["type"]
    counts[kind] = counts.get(kind, 0) + 1
    if kind == "latency":
        proxy.call("POST", "/faults/both", {"latency_ms": f["latency_ms"], "jitter_ms": f["jitter_ms"]})
        return lambda: proxy.call("DELETE", "/faults")
    if kind == "bandwidth":
        proxy.call("POST", "/faults/both", {"bandwidth_bytes_per_sec": f["bytes_per_sec"]})
        return lambda: proxy.call("DELETE", "/faults")
    if kind == "slice":
        proxy.call("POST", "/faults/both", {k: f[k] for k in ("slice_bytes", "slice_variation", "slice_delay_us")})
        return lambda: proxy.call("DELETE", "/faults")
    if kind == "blackhole":
        # A half-open connection for a while; the bytes it swallowed are gone, so the connections
        # are cut afterwards (as a NAT or a peer that comes back would).
        proxy.call("POST", "/faults/both", {"blackhole": True})
        return lambda: (proxy.call("DELETE", "/faults"), proxy.call("POST", "/reset"))
    if kind == "reset_all":
        proxy.call("POST", "/reset")
        return None
    if kind == "close_all":
        proxy.call("POST", "/close")
        return None
    if kind == "refuse":
        proxy.call("POST", "/refuse")
        proxy.call("POST", "/reset")
        return lambda: proxy.call("DELETE", "/refuse")
    if kind == "reset_after":
        proxy.call("POST", f"/faults/{f['direction']}", {"reset_after_bytes": f["bytes"]})
        return lambda: proxy.call("DELETE", "/faults")
    if kind == "reconnect_in_flight":
        # Everything the service sends is swallowed for a while (acks included), then the
        # publisher's session expires; afterwards every connection is reset, because the bytes
        # swallowed from the others' streams are gone (they recover their sessions).
        proxy.call("POST", "/faults/downstream", {"blackhole": True})
        time.sleep(f["swallow_ms"] / 1000)  # pacing: sends pile up without acks
        if not emulator_fault("emu_expire", f["target"], files):
            not_applied(kind, counts)
        return lambda: (proxy.call("DELETE", "/faults"), proxy.call("POST", "/reset"))
    if kind == "emu_delay":
        if not emulator_fault(kind, f["target"], files, f":delay?ms={f['ms']}"):
            not_applied(kind, counts)
            return None
        # Cleared on the connection it was set on (a recovered socket starts without it).
        conn = current_connection(files[f["target"]])
        return lambda: _quietly(f"/_emulator/hubs/{HUB}/connections/{conn}/:delay?ms=0")
    if kind == "emu_restart":
        wps_tool.emulator_request("POST", f"/_emulator/:restart?downMs={f['down_ms']}")
        return None
    if kind == "emu_stall":
        if not emulator_fault(kind, f["target"], files, f":stall?ms={f['ms']}"):
            not_applied(kind, counts)
        return None
    if not emulator_fault(kind, f["target"], files):
        not_applied(kind, counts)
    return None


def _quietly(path):
    try:
        wps_tool.emulator_request("POST", path)
    except Exception:  # 404: that connection is gone, and its delay with it
        pass


def not_applied(kind, counts):
    counts[kind] -= 1
    counts[kind + " (target not connected)"] = counts.get(kind + " (target not connected)", 0) + 1


def emulator_fault(kind, target, files, action=None):
    """An emulator fault on the target client's current connection; False if not applied."""
    conn = current_connection(files[target])
    action = action or {"emu_drop": ":drop", "emu_expire": ":expire"}.get(kind)
    if action is None:
        action = f":close?code={kind.rsplit('_', 1)[1]}"
    try:
        wps_tool.emulator_request("POST", f"/_emulator/hubs/{HUB}/connections/{conn}/{action}")
    except Exception as e:  # 404: the target is between connections right now
        log(f"  {kind} on {target} ({conn}) not applied: {e}")
        return False
    return True


def run_schedule(items, start, proxy, files, counts):
    for f in items:
        wait = start + f["at"] - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing of the schedule
        undo = apply_fault(f, proxy, files, counts)
        if f["hold"]:
            time.sleep(f["hold"])  # pacing: how long the fault lasts
        if undo:
            undo()


# ---- reading the clients' files ----------------------------------------------------------------


def read_lines(path):
    out = []
    try:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        out.append({"k": "unparsable", "line": line[:200]})
    except OSError:
        pass
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            log(f"timed out after {timeout} s waiting for {what}")
            return False
        time.sleep(0.25)  # the condition is read from files the clients write


def publisher_summary(lines):
    p = {"sent": set(), "acked_ok": set(), "acked_failed": set(), "ff": set(), "dup_allowed": set(), "twice": 0}
    for e in lines:
        k = e["k"]
        if k == "sent":
            p["sent"].add(e["c"])
        elif k == "ff":
            p["ff"].add(e["c"])
        elif k == "ack":
            (p["acked_ok"] if e["rc"] == "WPS_OK" else p["acked_failed"]).add(e["c"])
            if e.get("twice"):
                p["twice"] += 1
            if e.get("conn_changed"):
                p["dup_allowed"].add(e["c"])
        elif k == "disconnected":
            p["dup_allowed"].update(e.get("inflight") or [])
    return p


def connections_of(lines):
    conns = []
    for e in lines:
        if e["k"] == "connected" and e["conn"] not in conns:
            conns.append(e["conn"])
    return conns


def session_losses(lines):
    """(told, problems): the connection ids whose end was announced by SESSION_LOST before
    their DISCONNECTED, and what is wrong: a connection id that was replaced by another without
    SESSION_LOST, or whose SESSION_LOST came after its DISCONNECTED or with another last
    sequence id than the last message received on it."""
    conns = connections_of(lines)
    lost_at, disc_at, last_seq = {}, {}, {}
    for i, e in enumerate(lines):
        if e["k"] == "session_lost":
            lost_at.setdefault(e["conn"], (i, e.get("last_seq")))
        elif e["k"] == "disconnected" and e.get("conn"):
            disc_at.setdefault(e["conn"], i)
        elif e["k"] == "msg" and e.get("seq") is not None:
            last_seq[e["conn"]] = max(e["seq"], last_seq.get(e["conn"], 0))
    told, problems = set(), []
    for conn in conns[:-1]:
        if conn not in lost_at:
            problems.append(f"session {conn} ended (a new connection id followed) without SESSION_LOST")
            continue
        at, seq = lost_at[conn]
        if conn in disc_at and disc_at[conn] < at:
            problems.append(f"SESSION_LOST of {conn} came after its DISCONNECTED")
            continue
        if conn in last_seq and seq != last_seq[conn]:
            problems.append(f"SESSION_LOST of {conn} says last sequence id {seq}, the last message received on it "
                            f"had {last_seq[conn]}")
        told.add(conn)
    return told, problems


def missing_outside_gaps(lines, acked, told=None):
    """Per publisher, the acked counters this subscriber did not receive and may not have
    missed: missing is allowed only between the last message of that publisher received up to a
    connection that ended with SESSION_LOST and the first later one received after it. Returns
    ({pub: [counters]}, number missing inside told gaps)."""
    conns = connections_of(lines)
    if told is None:
        told = session_losses(lines)[0]
    index = {c: i for i, c in enumerate(conns)}
    got = {}  # pub -> list of (connection index, counter)
    for e in lines:
        if e["k"] == "msg" and e["conn"] in index:
            got.setdefault(e["p"], []).append((index[e["conn"]], e["c"]))
    bad, in_gaps = {}, 0
    for pub, counters in acked.items():
        arrivals = got.get(pub, [])
        seen = {c for _, c in arrivals}
        gaps = []
        for k, conn in enumerate(conns[:-1]):
            if conn not in told:
                continue
            lo = max((c for i, c in arrivals if i <= k), default=0)
            hi = min((c for i, c in arrivals if i > k and c > lo), default=float("inf"))
            gaps.append((lo, hi))
        for c in counters:
            if c in seen:
                continue
            if any(lo < c < hi for lo, hi in gaps):
                in_gaps += 1
            else:
                bad.setdefault(pub, []).append(c)
    return bad, in_gaps


# ---- the oracle -----------------------------------------------------------------------------


def oracle(files, exit_codes, seed, minutes, items, fault_counts, proxy_stats, elapsed):
    violations = []
    info = []
    data = {name: read_lines(path) for name, path in files.items()}
    pubs = {c[0]: publisher_summary(data[c[0]]) for c in CLIENTS if c[2] == "pub"}

    # Per-client lifecycle and resources.
    res_rows = []
    offline_rows = []
    for name, impl, role, protocol, _, _, _ in CLIENTS:
        lines = data[name]
        start = next((e for e in lines if e["k"] == "start"), None)
        end = next((e for e in lines if e["k"] == "end"), None)
        if exit_codes.get(name) != 0:
            violations.append(f"{name}: exited with {exit_codes.get(name)}")
        for e in lines:
            if e["k"] in ("fatal", "garbage", "unparsable", "rejoin_failed"):
                violations.append(f"{name}: {e}")
        if not start or not end:
            violations.append(f"{name}: no {'start' if not start else 'end'} record")
            continue
        if end["async_ok"] != end["completions"]:
            violations.append(f"{name}: {end['async_ok']} async calls accepted, {end['completions']} completions")
        if end["double_completions"]:
            violations.append(f"{name}: {end['double_completions']} operations completed twice")
        if end["stopped_events"] != end["starts"]:
            violations.append(f"{name}: {end['starts']} starts, {end['stopped_events']} STOPPED events")
        if end["connected_at_end"]:
            violations.append(f"{name}: still connected after stop")
        if end.get("inflight"):
            violations.append(f"{name}: {end['inflight']} operations never completed")
        if end["threads"] > start["threads"]:
            violations.append(f"{name}: threads {start['threads']} -> {end['threads']}")
        # The start counts the client's connection socket; after stop there is none.
        if end["fds"] > start["fds"] - 1:
            violations.append(f"{name}: open fds {start['fds']} (one a connection) -> {end['fds']} after stop")
        if end["rss_kb"] > start["rss_kb"] + RSS_TOLERANCE_KB:
            violations.append(f"{name}: RSS {start['rss_kb']} -> {end['rss_kb']} KiB (tolerance {RSS_TOLERANCE_KB} KiB)")
        conns = connections_of(lines)
        _, problems = session_losses(lines)
        violations.extend(f"{name}: {p}" for p in problems)
        n_lost = sum(1 for e in lines if e["k"] == "session_lost")
        res_rows.append((name, f"{impl}/{role}/{protocol}", len(conns) - 1, n_lost, end["disconnected_events"],
                         f"{start['threads']}→{end['threads']}", f"{start['fds']}→{end['fds']}",
                         f"{start['rss_kb'] / 1024:.1f}→{end['rss_kb'] / 1024:.1f}"))
        if role == "pub" and pubs[name]["twice"]:
            violations.append(f"{name}: {pubs[name]['twice']} completions for operations already completed")
        if role == "pub" and end.get("offline_queue"):
            refused = [e for e in lines if e["k"] == "refused" and e.get("rc") == "WPS_ERR_NOT_CONNECTED"]
            if refused:
                violations.append(f"{name}: {len(refused)} sends refused with WPS_ERR_NOT_CONNECTED although the "
                                  "offline queue is on")
            offline = [e for e in lines if e["k"] in ("sent", "ff") and e.get("offline")]
            offline_acked = sum(1 for e in offline if e["k"] == "sent" and e["c"] in pubs[name]["acked_ok"])
            # The C publisher sends fire-and-forget asynchronously (written at its completion);
            # the Python one blocks until written.
            ff_written = (sum(1 for e in lines if e["k"] == "ff_done" and e["rc"] == "WPS_OK") if impl == "c"
                          else len(pubs[name]["ff"]))
            offline_rows.append((name, end["offline_queue"], len(offline), offline_acked,
                                 sum(1 for e in lines if e["k"] == "refused"), ff_written))

    # Delivery.
    totals = {"sent_acked": 0, "acked_ok": 0, "acked_failed": 0, "ff_sent": 0, "delivered": 0, "lost": 0,
              "dups_allowed": 0, "dups_bad": 0, "ff_delivered": 0, "ff_missed": 0, "missed_told": 0}
    for p in pubs.values():
        totals["sent_acked"] += len(p["sent"])
        totals["acked_ok"] += len(p["acked_ok"])
        totals["acked_failed"] += len(p["acked_failed"])
        totals["ff_sent"] += len(p["ff"])
    sub_rows = []
    continuous_subs, lost_subs = [], []
    for name, impl, role, protocol, _, protected, _ in CLIENTS:
        if role != "sub":
            continue
        lines = data[name]
        conns = connections_of(lines)
        continuous = len(conns) == 1
        told, _ = session_losses(lines)
        (continuous_subs if continuous else lost_subs).append(name)
        msgs = [e for e in lines if e["k"] == "msg"]
        seen = {}          # (pub, counter) -> arrivals
        seen_conn = {}     # (conn, pub, counter) -> arrivals
        last_first = {}    # pub -> counter of the latest first arrival
        last_seq = {}      # conn -> last sequence id
        order_bad = dup_bad = dup_ok = 0
        for e in msgs:
            pub, c = e["p"], e["c"]
            if pub not in pubs:
                violations.append(f"{name}: message from unknown publisher {pub!r}")
                continue
            if c not in pubs[pub]["sent"] and c not in pubs[pub]["ff"]:
                violations.append(f"{name}: got {pub}#{c}, which was never sent")
            s = e.get("seq")
            if s is not None:
                if s <= last_seq.get(e["conn"], 0):
                    violations.append(f"{name}: sequence id {s} after {last_seq[e['conn']]} on {e['conn']} ({pub}#{c})")
                last_seq[e["conn"]] = max(s, last_seq.get(e["conn"], 0))
            key = (pub, c)
            if key not in seen:
                if c < last_first.get(pub, 0):
                    order_bad += 1
                    if order_bad <= 5:
                        violations.append(f"{name}: {pub}#{c} first arrived after {pub}#{last_first[pub]}")
                last_first[pub] = max(c, last_first.get(pub, 0))
                seen[key] = 1
            else:
                seen[key] += 1
                again_here = (e["conn"], pub, c) in seen_conn
                if c in pubs[pub]["dup_allowed"]:
                    dup_ok += 1
                elif continuous or again_here:
                    dup_bad += 1
                    if dup_bad <= 5:
                        violations.append(f"{name}: {pub}#{c} arrived {seen[key]} times "
                                          f"({'same' if again_here else 'another'} connection) and was not in flight "
                                          "at a publisher reconnect")
                else:
                    info.append(f"{name}: {pub}#{c} arrived again on a later connection")
            seen_conn[(e["conn"], pub, c)] = seen_conn.get((e["conn"], pub, c), 0) + 1
        if order_bad > 5:
            violations.append(f"{name}: {order_bad} order violations in all")
        if dup_bad > 5:
            violations.append(f"{name}: {dup_bad} unexpected duplicates in all")
        delivered = sum(1 for (pub, c) in seen if c in pubs[pub]["acked_ok"])
        ff_got = sum(1 for (pub, c) in seen if c in pubs[pub]["ff"])
        lost = 0
        bad, in_gaps = missing_outside_gaps(lines, {pub: p["acked_ok"] for pub, p in pubs.items()}, told)
        for pub, missing in sorted(bad.items()):
            missing.sort()
            lost += len(missing)
            violations.append(f"{name}: {len(missing)} messages of {pub} acked as delivered but not received "
                              f"(outside any gap announced by SESSION_LOST), e.g. {missing[:10]}")
        totals["missed_told"] += in_gaps
        if continuous:
            totals["ff_missed"] += sum(len(p["ff"]) for p in pubs.values()) - ff_got
        totals["delivered"] += delivered
        totals["lost"] += lost
        totals["dups_allowed"] += dup_ok
        totals["dups_bad"] += dup_bad
        totals["ff_delivered"] += ff_got
        sub_rows.append((name, f"{impl}/{protocol}", "continuous" if continuous else f"lost ({len(conns)} ids)",
                         "yes" if protected else "no", delivered, ff_got, in_gaps, lost, dup_ok, dup_bad))
    if totals["delivered"] == 0:
        violations.append("no acked message reached any subscriber: nothing checked delivery")

    # ---- report -----------------------------------------------------------------------------
    md = []
    md.append(f"# Chaos run: seed {seed}, {minutes:g} min schedule, {elapsed:.0f} s in all\n")
    md.append(f"Result: **{'PASS' if not violations else 'FAIL'}** ({len(violations)} violations)\n")
    md.append("| messages | count |\n|---|---:|")
    md.append(f"| acked sends issued | {totals['sent_acked']} |")
    md.append(f"| acked (success) | {totals['acked_ok']} |")
    md.append(f"| ack failed | {totals['acked_failed']} |")
    md.append(f"| fire-and-forget sent | {totals['ff_sent']} |")
    md.append(f"| acked messages delivered (sum over subscribers) | {totals['delivered']} |")
    md.append(f"| acked messages lost (outside gaps announced by SESSION_LOST) | {totals['lost']} |")
    md.append(f"| acked messages missed in announced gaps (sum over subscribers) | {totals['missed_told']} |")
    md.append(f"| duplicates allowed (in flight at a publisher reconnect) | {totals['dups_allowed']} |")
    md.append(f"| duplicates not allowed | {totals['dups_bad']} |")
    md.append(f"| fire-and-forget delivered (sum over subscribers) | {totals['ff_delivered']} |")
    md.append(f"| fire-and-forget missed (continuous subscribers) | {totals['ff_missed']} |")
    md.append("")
    md.append("| fault | injected |\n|---|---:|")
    for k in sorted(fault_counts):
        md.append(f"| {k} | {fault_counts[k]} |")
    md.append("")
    if proxy_stats:
        md.append("Proxy: " + ", ".join(f"{k} {v}" for k, v in proxy_stats.items()) +
                  " (accepted counts every TCP connection: first connections, recoveries and reconnects)\n")
    md.append("| subscriber | impl/protocol | session | protected | acked delivered | f&f delivered | "
              "missed in told gaps | lost | dups allowed | dups bad |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in sub_rows:
        md.append("| " + " | ".join(str(x) for x in r) + " |")
    md.append("")
    md.append("| client | impl/role/protocol | reconnects (new ids) | SESSION_LOST events | DISCONNECTED events | "
              "threads | fds | RSS MiB |\n|---|---|---:|---:|---:|---|---|---|")
    for r in res_rows:
        md.append("| " + " | ".join(str(x) for x in r) + " |")
    md.append("")
    if offline_rows:
        md.append("| publisher with offline queue | max operations | sends made while disconnected | of them acked | "
                  "refused (queue full) | f&f written |\n|---|---:|---:|---:|---:|---:|")
        for r in offline_rows:
            md.append("| " + " | ".join(str(x) for x in r) + " |")
        md.append("")
    md.append(f"Subscribers with a lost session: {len(lost_subs)} ({', '.join(lost_subs) or 'none'}); each was told "
              "with SESSION_LOST before the DISCONNECTED of every connection it lost (checked for every client), "
              "and every acked message a subscriber missed lies in a gap it was told about.\n")
    md.append("Fault schedule:\n")
    md.append("```")
    md.extend(describe(f) for f in items)
    md.append("```")
    if violations:
        md.append("\nViolations:\n")
        md.extend(f"- {v}" for v in violations)
    if info:
        md.append(f"\nNotes ({len(info)}):\n")
        md.extend(f"- {v}" for v in info[:20])
    return violations, "\n".join(md) + "\n"


# ---- main -----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=CI_MINUTES)
    ap.add_argument("--seed", type=int, default=CI_SEED)
    ap.add_argument("--bin", required=True, help="directory of wps-emulator and wps-fault-proxy")
    ap.add_argument("--c-client", required=True)
    ap.add_argument("--python", required=True, help="interpreter with webpubsub_client installed")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "chaos"))
    ap.add_argument("--report", default=os.path.join(ROOT, "build", "chaos-report.md"))
    a = ap.parse_args()
    seconds = a.minutes * 60
    items = schedule(a.seed, seconds)
    log(f"seed {a.seed} ({a.minutes:g} min, {len(items)} faults); replay with: scripts/chaos.sh "
        f"--minutes {a.minutes:g} --seed {a.seed}")
    for f in items[:8]:
        log("  " + describe(f))
    if len(items) > 8:
        log(f"  ... {len(items) - 8} more (all in the report)")
    os.makedirs(a.out, exist_ok=True)
    children = Children()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_begin = time.monotonic()
    try:
        proxy, client_url = start_services(children, a.bin, a.out, a.seed)
        group = f"chaos-{a.seed}"
        files, procs = {}, {}
        max_s = str(int(seconds + 600))

        def launch(name, impl, role, protocol, rate, _protected, offline_queue):
            url = client_url(HUB, name)
            path = os.path.join(a.out, f"{name}.jsonl")
            if os.path.exists(path):
                os.remove(path)  # a previous run's file must not count as this client's start
            files[name] = path
            args = ["--role", role, "--protocol", protocol, "--id", name, "--url", url, "--group", group, "--out",
                    path, "--max-seconds", max_s]
            if role == "pub":
                args += ["--rate", str(rate)]
                if offline_queue:
                    args += ["--offline-queue", str(offline_queue)]
            cmd = [a.c_client] + args if impl == "c" else [a.python, os.path.join(ROOT, "tests", "chaos",
                                                                                     "chaos_client.py")] + args
            procs[name] = children.spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(a.out, f"{name}.err"), "w"))

        def started(name):
            return any(e["k"] == "start" for e in read_lines(files[name]))

        subs = [c for c in CLIENTS if c[2] == "sub"]
        pubs = [c for c in CLIENTS if c[2] == "pub"]
        for c in subs:
            launch(*c)
        if not wait_for(lambda: all(started(c[0]) for c in subs), 60, "subscribers to join"):
            raise RuntimeError("subscribers did not start")
        for c in pubs:
            launch(*c)
        if not wait_for(lambda: all(started(c[0]) for c in pubs), 60, "publishers to connect"):
            raise RuntimeError("publishers did not start")
        log(f"{len(CLIENTS)} clients running; faults for {seconds:.0f} s")
        t_start = time.monotonic()
        fault_counts = {}
        run_schedule(items, t_start, proxy, files, fault_counts)
        left = t_start + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)  # pacing: the rest of the run without faults
        proxy.call("DELETE", "/faults")
        proxy.call("DELETE", "/refuse")
        log("schedule done; publishers finish what is in flight")
        finish([procs[c[0]] for c in pubs], 180)
        # Subscribers that kept their session should now get everything that was acked.
        acked = {c[0]: publisher_summary(read_lines(files[c[0]]))["acked_ok"] for c in pubs}

        def drained():
            return all(not missing_outside_gaps(read_lines(files[c[0]]), acked)[0] for c in subs)

        wait_for(drained, 60, "subscribers to receive every acked message (outside announced gaps)")
        finish([procs[c[0]] for c in subs], 60)
        try:
            proxy_stats = proxy.call("GET", "/stats")
        except Exception:
            proxy_stats = None
        exit_codes = {name: p.poll() for name, p in procs.items()}
    finally:
        children.kill_all()
    violations, md = oracle(files, exit_codes, a.seed, a.minutes, items, fault_counts, proxy_stats,
                            time.monotonic() - t_begin)
    os.makedirs(os.path.dirname(a.report), exist_ok=True)
    with open(a.report, "w") as fh:
        fh.write(md)
    print(md)
    log(f"report: {a.report}")
    log(f"seed {a.seed}: {'PASS' if not violations else 'FAIL, %d violations' % len(violations)}")
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
