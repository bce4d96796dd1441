#!/usr/bin/env python3
"""Runs every hostile-service case against every binding and checks what happened.

Starts tests/hostile/service.py (with a self-signed certificate made by `openssl` for the TLS
cases), builds the drivers (C against the shared library, C against the static library under
AddressSanitizer/UBSan with leak detection, C++ wrapper under ASan/UBSan) and runs each
(case, binding) under a timeout. Each run is judged on the driver's JSON lines and the
service's record of that run. Prints one PASS/FAIL line per (case, binding) and
"N passed, M failed" last; writes the observed behaviour per case to a Markdown table.
Exit status non-zero on any failure.

    run.py [--bindings c,c-asan,cpp,python] [--cases NAME,...] [--jobs N]
           [--lib-dir target/release] [--report build/hostile-report.md] [--repeat N]

Needs the release library (cargo build --release -p webpubsub-client), gcc, g++, openssl.
Standard library only.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINDINGS = ("c", "c-asan", "cpp", "python")
DRIVER_TIMEOUT = 40  # seconds; a driver still running then is a hang

# ---- building ----------------------------------------------------------------------------


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"hostile: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")


def build(out, lib_dir, bindings):
    """Compiles the drivers; returns the command line per binding."""
    os.makedirs(os.path.join(out, "lib"), exist_ok=True)
    so = os.path.join(lib_dir, "libwebpubsub_client.so")
    for name in ("libwebpubsub_client.so", "libwebpubsub_client.so.0"):  # the SONAME is .so.0
        link = os.path.join(out, "lib", name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(so, link)
    libs = os.path.join(out, "lib")
    shared = ["-L", libs, "-lwebpubsub_client", "-lpthread", f"-Wl,-rpath,{libs}"]
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
    cflags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1", "-I", os.path.join(ROOT, "include")]
    src = os.path.join(HERE, "drive_c.c")
    cmds = {}
    if "c" in bindings:
        sh(["gcc", *cflags, src, "-o", os.path.join(out, "drive_c"), *shared])
        cmds["c"] = [os.path.join(out, "drive_c")]
    if "c-asan" in bindings:
        static = os.path.join(lib_dir, "libwebpubsub_client.a")
        sh(["gcc", *cflags, *sanitize, src, "-o", os.path.join(out, "drive_c.asan"), static,
            "-lpthread", "-ldl", "-lm", "-lrt"])
        cmds["c-asan"] = [os.path.join(out, "drive_c.asan")]
    if "cpp" in bindings:
        sh(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-g", "-O1", *sanitize,
            "-I", os.path.join(ROOT, "include"), "-I", os.path.join(ROOT, "bindings", "cpp", "include"),
            os.path.join(HERE, "drive_cpp.cpp"), "-o", os.path.join(out, "drive_cpp"), *shared[:-2], "-pthread",
            shared[-1]])
        cmds["cpp"] = [os.path.join(out, "drive_cpp")]
    if "python" in bindings:
        cmds["python"] = [sys.executable, os.path.join(HERE, "drive.py")]
    return cmds


def make_certificate(out):
    """A self-signed certificate for 127.0.0.1 (not a CA: it is its own trust anchor)."""
    cert, key = os.path.join(out, "tls.pem"), os.path.join(out, "tls.key")
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
    return cert, key


def driver_env(binding, lib_dir):
    env = dict(os.environ)
    for k in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        env.pop(k, None)
    env.pop("SSL_CERT_FILE", None)
    if binding in ("c-asan", "cpp"):
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1"
        env["LSAN_OPTIONS"] = f"suppressions={os.path.join(ROOT, 'tests', 'c', 'lsan.supp')}:print_suppressions=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    if binding == "python":
        env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python") + os.pathsep + env.get("PYTHONPATH", "")
        env["WPS_LIBRARY_PATH"] = os.path.join(lib_dir, "libwebpubsub_client.so")
    return env


# ---- the service -------------------------------------------------------------------------


class Service:
    def __init__(self, cert, key):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "service.py"), "--tls-cert", cert, "--tls-key", key],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        first = self.proc.stdout.readline()
        try:
            ports = json.loads(first)
        except ValueError:
            self.close()
            raise SystemExit(f"hostile: the service did not start: {first!r} {self.proc.stderr.read()}") from None
        self.port, self.tls_port = ports["port"], ports["tls_port"]

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the service exits when its stdin closes
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- observations ------------------------------------------------------------------------


class Obs:
    """What one (case, binding) run showed: the driver's lines and the service's record."""

    def __init__(self, case, binding, rc, stdout, stderr, seconds, record, tls_failures):
        self.case, self.binding, self.rc, self.stderr, self.seconds = case, binding, rc, stderr, seconds
        self.record, self.tls_failures = record, tls_failures
        self.lines, self.bad_lines = [], []
        for line in stdout.splitlines():
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.bad_lines.append(line)
        self.ops = {x["op"]: x for x in self.lines if "op" in x}
        self.events = [x for x in self.lines if "event" in x]
        self.conns = record["connections"]

    def op(self, name):
        return self.ops.get(name, {})

    def events_of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    def delivered(self):
        return [e.get("data") for e in self.events if e["event"] in ("server_message", "group_message")]

    def kinds(self):
        return ["recovery" if c["recovery"] else "new" for c in self.conns]

    def before_end(self, kind):
        out = []
        for e in self.events:
            if e["event"] == "server_message" and e.get("data") == "END":
                break
            if e["event"] == kind:
                out.append(e)
        return out

    def summary(self):
        """One line of observed behaviour for the report (parts separated by "; ")."""
        parts = []
        start = self.op("start")
        if start.get("result") == "WPS_OK":
            parts.append("start OK")
        elif start:
            ms = start.get("ms", 0)
            when = f"after {ms / 1000:.1f} s" if ms >= 1000 else "at once"
            parts.append(f"start {start.get('result')} {when}: \"{short(start.get('message'))}\"")
        for op in ("join", "send"):
            r = self.op(op).get("result")
            if r and r != "WPS_OK":
                parts.append(f"{op} {r}")
        if self.conns:
            parts.append("connections: " + " → ".join(self.kinds()))
        closes = [c.get("t_closed_by_service") for c in self.conns[:-1]]
        if len(self.conns) >= 3 and None not in closes and "recovery" not in self.kinds():
            gaps = [b["t_open"] - t for b, t in zip(self.conns[1:], closes, strict=True)]
            spacing = ", ".join(f"{round(g, -1):.0f}" for g in gaps)
            parts.append(f"each new connection {spacing} ms (to 10 ms) after the close")
        if self.tls_failures:
            parts.append(f"TLS handshake refused by the client ({short(self.tls_failures[-1], 60)})")
        lost = self.before_end("disconnected")
        if lost:
            parts.append("DISCONNECTED: " + "; ".join(f"\"{short(e.get('message'))}\"" for e in lost[:2])
                         + (f" (+{len(lost) - 2})" if len(lost) > 2 else ""))
        at_stop = [e for e in self.events_of("disconnected")[len(lost):] if e.get("message")]
        if at_stop and self.op("wait").get("until") == "END":
            parts.append(f"DISCONNECTED at stop: \"{short(at_stop[-1]['message'])}\"")
        got = self.delivered()
        if got:
            parts.append("delivered: " + ", ".join(short(d, 20) for d in got))
        stopped = [e for e in self.events_of("stopped") if e.get("message")]
        if stopped:
            parts.append(f"STOPPED: \"{short(stopped[0]['message'])}\"")
        pong = [c.get("pongs") for c in self.conns if c.get("pongs")]
        if pong:
            parts.append(f"{pong[0]} pongs for {self.conns[0].get('pings')} pings")
        return "; ".join(parts)


def short(s, n=90):
    s = "" if s is None else str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


# ---- expectations ------------------------------------------------------------------------
# Each returns a list of problems (empty: the case passed). `generic` applies to every run.


def generic(o):
    p = []
    if o.rc == 124 or o.rc is None:
        p.append(f"hang: still running after {DRIVER_TIMEOUT} s")
    elif o.rc != 0:
        p.append(f"driver exit status {o.rc}")
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Traceback (most recent call last)",
                   "panicked at"):
        if marker in o.stderr:
            p.append(f"{marker} in stderr")
    if o.bad_lines:
        p.append(f"unparseable output: {o.bad_lines[:2]}")
    if o.op("free").get("result") != "WPS_OK":
        p.append("the driver did not reach free")
    if o.op("wait").get("until") == "deadline":
        p.append("neither END nor STOPPED arrived before the deadline")
    for c in o.record["checks"]:
        if not c["ok"]:
            p.append(f"service: conn {c['conn']}: {c['what']} ({short(c['detail'], 200)})")
    return p


def want(cond, problem, problems):
    if not cond:
        problems.append(problem)


def session_ok(o, p, delivered=("END",)):
    for op in ("start", "join", "send"):
        want(o.op(op).get("result") == "WPS_OK", f"{op}: {o.op(op).get('result')} {o.op(op).get('message', '')}", p)
    want(o.op("wait").get("until") == "END", "END did not arrive", p)
    expected = [d[:200] for d in delivered]  # the drivers print at most 200 characters
    want(o.delivered() == expected, f"delivered {[short(d, 40) for d in o.delivered()]}, expected {expected}", p)


def one_connection(o, p):
    want(o.kinds() == ["new"], f"connections {o.kinds()}, expected one", p)
    want(not o.before_end("disconnected"), "DISCONNECTED before END", p)
    want(len(o.events_of("connected")) == 1, "CONNECTED count", p)


def reconnected(o, p, kinds, reason):
    want(o.kinds() == kinds, f"connections {o.kinds()}, expected {kinds}", p)
    lost = o.before_end("disconnected")
    want(len(lost) == 1, f"{len(lost)} DISCONNECTED before END, expected 1", p)
    if lost:
        message = lost[0].get("message") or ""
        want(reason in message, f"DISCONNECTED message {message!r} lacks {reason!r}", p)
    ids = [e.get("connection_id") for e in o.events_of("connected")]
    want(ids == ["conn-1", "conn-2"], f"CONNECTED {ids}, expected conn-1, conn-2", p)
    for c in o.conns:
        if c["recovery"]:
            want(c["awps_connection_id"] == "conn-1" and c["awps_reconnection_token_len"] == len("tok-1"),
                 "the recovery URL names conn-1 and its token", p)


def start_fails(o, p, result, text, max_ms):
    s = o.op("start")
    want(s.get("result") == result, f"start {s.get('result')}, expected {result}", p)
    want(text in (s.get("message") or ""), f"start message {s.get('message')!r} lacks {text!r}", p)
    want(s.get("ms", 1e9) <= max_ms, f"start took {s.get('ms')} ms (at most {max_ms})", p)
    want("join" not in o.ops, "join ran after a failed start", p)
    want(not o.events_of("connected"), "CONNECTED after a failed start", p)


def x_quiet(delivered):
    def check(o):
        p = []
        session_ok(o, p, delivered)
        one_connection(o, p)
        return p

    return check


def x_disconnected_without_close(o):
    p = x_quiet(("END",))(o)
    stale = [e.get("message") for e in o.events_of("disconnected") if e.get("message")]
    want(not stale, f"DISCONNECTED at stop carries the earlier `disconnected` reason {stale}", p)
    return p


def x_recovery_refused_then_new(reason):
    def check(o):
        p = []
        session_ok(o, p)
        reconnected(o, p, ["new", "recovery", "new"], reason)
        return p

    return check


def x_new_connection(reason, delivered=("END",)):
    def check(o):
        p = []
        session_ok(o, p, delivered)
        reconnected(o, p, ["new", "new"], reason)
        return p

    return check


def x_sequence_negative(o):
    p = []
    got = o.delivered()
    want(got in (["after", "END"], ["zero", "after", "END"]), f"delivered {got}", p)
    session_ok(o, p, got)
    one_connection(o, p)
    return p


def x_ack_without_error(o):
    p = []
    for op, result, name in (("join", "WPS_ERR_ACK", "Unknown"), ("send", "WPS_ERR_ACK_FORBIDDEN", "Forbidden")):
        got = o.op(op)
        want(got.get("result") == result and got.get("error_name") == name,
             f"{op}: {got.get('result')} {got.get('error_name')!r}, expected {result} {name!r}", p)
        want(got.get("ms", 1e9) < 1000, f"{op} took {got.get('ms')} ms: a final answer is not retried", p)
    want(o.op("wait").get("until") == "END" and o.delivered() == ["END"], "END", p)
    one_connection(o, p)
    return p


def x_start_fails(result, text, max_ms):
    def check(o):
        p = []
        start_fails(o, p, result, text, max_ms)
        want(len(o.conns) == (0 if o.case.startswith("tls") else 1), f"{len(o.conns)} connections", p)
        return p

    return check


def x_handshake(o):
    p = []
    start_fails(o, p, "WPS_ERR_TIMEOUT", "3000 ms", 4500)
    want(o.op("start").get("ms", 0) >= 2900, f"start gave up after {o.op('start').get('ms')} ms, before 3 s", p)
    want(len(o.conns) == 1, f"{len(o.conns)} connections", p)
    return p


def x_always_1008(o):
    p = []
    want(o.kinds() == ["new"] * 4, f"connections {o.kinds()}, expected 1 + 1 + 2 new ones", p)
    want(o.op("wait").get("until") == "STOPPED", "STOPPED did not end the wait", p)
    stopped = o.events_of("stopped")
    want(len(stopped) == 1, f"{len(stopped)} STOPPED events", p)
    if o.binding != "python":  # the Python API's stopped event carries nothing
        m = (stopped[0].get("message") if stopped else None) or ""
        want("retries exhausted" in m, f"STOPPED message {m!r} does not say the retries are exhausted", p)
    for i in (2, 3):
        if i < len(o.conns):
            gap = o.conns[i]["t_open"] - o.conns[i - 1]["t_closed_by_service"]
            want(gap >= 95, f"retry {i - 1} came {gap:.0f} ms after the close (backoff 100 ms)", p)
    return p


def x_tls_default(o):
    p = x_start_fails("WPS_ERR_CONNECTION", "certificate", 3000)(o)
    want(len(o.tls_failures) == 1, f"{len(o.tls_failures)} refused TLS handshakes seen by the service", p)
    return p


def x_tls_ca(o):
    p = x_quiet(("END",))(o)
    want(all(c.get("tls") == "ok" for c in o.conns), "not over TLS", p)
    return p


EXPECT = {
    "malformed_json": (x_quiet(("after", "END")), "malformed frames ignored (logged); connection kept"),
    "deep_json": (x_quiet(("x", "[" * 10000 + "]" * 10000, "END")),
                  "JSON nested 10,000 deep: delivered (Python: as text, with a logged warning)"),
    "invalid_utf8": (x_new_connection("not UTF-8"),
                     "closed with 1007, session abandoned, reported; new connection, no recovery"),
    "reserved_opcode": (x_new_connection("breaks the WebSocket protocol"),
                        "closed with 1002, session abandoned, reported; new connection, no recovery"),
    "fragmented": (x_quiet(("in pieces", "END")), "fragments reassembled; the ping between them answered"),
    "ack_without_error": (x_ack_without_error, "negative acks without error detail fail the call at once, clearly"),
    "unknown_types": (x_quiet(("after", "END")), "unknown types ignored; connection kept"),
    "unknown_ack": (x_quiet(("END",)), "acks for unknown ids ignored; join and send settle on their own acks"),
    "duplicate_acks": (x_quiet(("END",)), "first ack settles; repeats ignored"),
    "sequence_backwards": (x_quiet(("a", "b", "c", "END")),
                           "repeated sequence ids dropped; sequenceAck of the highest"),
    "sequence_huge": (x_new_connection("sequence id 18446744073709551615", ("one", "END")),
                      "session abandoned, reported; new connection, no recovery"),
    "sequence_negative": (x_sequence_negative, "invalid sequence ids: frame ignored; connection kept"),
    "oversized_message": (x_new_connection("over the inbound limit"),
                          "50 MB message over the inbound limit: reported; new connection, no recovery"),
    "invalid_base64": (x_quiet(("ABC", "END")), "invalid base64 payloads ignored; valid one delivered"),
    "connected_without_id": (x_start_fails("WPS_ERR_PROTOCOL", "connectionId", 1000),
                             "start fails at once with WPS_ERR_PROTOCOL"),
    "message_before_connected": (x_start_fails("WPS_ERR_PROTOCOL", "before `connected`", 1000),
                                 "start fails at once with WPS_ERR_PROTOCOL; nothing delivered"),
    "long_reconnection_token": (x_new_connection("without closing handshake"),
                                "100 KB token, then a drop: no recovery attempt, a new connection"),
    "ping_flood": (x_quiet(("END",)), "5,000 pings: pongs echo payloads; client stays usable"),
    "handshake_never_completes": (x_handshake, "start fails with WPS_ERR_TIMEOUT after its 3 s"),
    "close_1000": (x_recovery_refused_then_new("hostile close"), "recovery attempt (refused), new connection"),
    "close_1001": (x_recovery_refused_then_new("hostile close"), "recovery attempt (refused), new connection"),
    "close_1008": (x_new_connection("hostile close"), "no recovery; new connection"),
    "close_1011": (x_recovery_refused_then_new("hostile close"), "recovery attempt (refused), new connection"),
    "close_4000": (x_recovery_refused_then_new("hostile close"), "recovery attempt (refused), new connection"),
    "disconnected_without_close": (x_disconnected_without_close,
                                   "`disconnected` without close: still connected and usable; no stale reason at stop"),
    "always_1008": (x_always_1008, "1 + 1 + 2 connections with 100 ms backoff, then STOPPED (retries exhausted)"),
    "tls_default": (x_tls_default, "self-signed certificate refused with a clear error"),
    "tls_ca_file": (x_tls_ca, "accepted with the certificate as CA file"),
}

# Longest first, so that the run's tail is short.
SLOW = ("handshake_never_completes", "sequence_backwards", "oversized_message", "ping_flood", "always_1008")


# ---- running -----------------------------------------------------------------------------

tls_lock = threading.Lock()


def run_one(service, cmds, lib_dir, cert, case, binding):
    run = f"{binding}-{uuid.uuid4().hex[:8]}"
    if case.startswith("tls"):
        url = f"wss://127.0.0.1:{service.tls_port}/client/hubs/{case}?access_token=hostile&run={run}"
    else:
        url = f"ws://127.0.0.1:{service.port}/client/hubs/{case}?access_token=hostile&run={run}"
    cmd = cmds[binding] + [url] + (["--ca-file", cert] if case == "tls_ca_file" else [])
    held = tls_lock if case == "tls_default" else None
    if held:
        held.acquire()
    try:
        before = len(service.get("/_tls_failures")) if held else 0
        t = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=DRIVER_TIMEOUT,
                               env=driver_env(binding, lib_dir), errors="replace")
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc = None
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        seconds = time.monotonic() - t
        tls_failures = service.get("/_tls_failures")[before:] if held else []
    finally:
        if held:
            held.release()
    record = service.get(f"/_results/{case}?run={run}")
    obs = Obs(case, binding, rc, out, err, seconds, record, tls_failures)
    problems = generic(obs) + EXPECT[case][0](obs)
    return obs, problems


def write_report(path, cases, bindings, results, seconds):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("| case | expected | observed (C API; the same engine behind every binding) | "
                + " | ".join(bindings) + " |\n")
        f.write("|---|---|---|" + "---|" * len(bindings) + "\n")
        for case in cases:
            row = [f"`{case}`", EXPECT[case][1]]
            first = next((results[(case, b)][0] for b in bindings if (case, b) in results), None)
            row.append(first.summary().replace("|", "\\|") if first else "")
            for b in bindings:
                obs, problems = results[(case, b)]
                cell = "PASS" if not problems else "FAIL: " + "; ".join(short(x, 80) for x in problems[:2])
                cell += f" ({obs.seconds:.1f} s)"
                extra = [x for x in obs.summary().split("; ") if x not in first.summary().split("; ")]
                missing = [x for x in first.summary().split("; ") if x not in obs.summary().split("; ")]
                if extra:
                    cell += "; observed: " + "; ".join(extra)
                if missing:
                    cell += "; not: " + "; ".join(missing)
                row.append(cell.replace("|", "\\|"))
            f.write("| " + " | ".join(row) + " |\n")
        f.write(f"\n{len(cases)} cases × {len(bindings)} bindings in {seconds:.0f} s.\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindings", default=",".join(BINDINGS))
    ap.add_argument("--cases", default="")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--lib-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "hostile"))
    ap.add_argument("--report", default=os.path.join(ROOT, "build", "hostile-report.md"))
    ap.add_argument("--repeat", type=int, default=1, help="run everything N times (flakiness check)")
    args = ap.parse_args()
    bindings = [b for b in args.bindings.split(",") if b]
    for b in bindings:
        if b not in BINDINGS:
            raise SystemExit(f"hostile: unknown binding {b!r} (known: {', '.join(BINDINGS)})")
    cases = [c for c in args.cases.split(",") if c] or list(EXPECT)
    for c in cases:
        if c not in EXPECT:
            raise SystemExit(f"hostile: unknown case {c!r}")
    lib_dir = os.path.abspath(args.lib_dir)
    t0 = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    cmds = build(args.out, lib_dir, bindings)
    cert, key = make_certificate(args.out)
    service = Service(cert, key)
    passed = failed = 0
    try:
        missing = set(EXPECT) - set(service.get("/_cases"))
        if missing:
            raise SystemExit(f"hostile: the service has no script for {sorted(missing)}")
        order = sorted(cases, key=lambda c: (c not in SLOW, cases.index(c)))
        for round_ in range(args.repeat):
            results = {}
            jobs = [(c, b) for c in order for b in bindings]
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                futures = {pool.submit(run_one, service, cmds, lib_dir, cert, c, b): (c, b) for c, b in jobs}
                for fut in concurrent.futures.as_completed(futures):
                    c, b = futures[fut]
                    obs, problems = fut.result()
                    results[(c, b)] = (obs, problems)
                    if problems:
                        failed += 1
                        print(f"FAIL {c} [{b}] ({obs.seconds:.1f} s)")
                        for x in problems:
                            print(f"    {x}")
                        for line in obs.stderr.splitlines()[-15:]:
                            print(f"    stderr: {line}")
                    else:
                        passed += 1
                        print(f"PASS {c} [{b}] ({obs.seconds:.1f} s)")
                    sys.stdout.flush()
            if round_ == 0:
                write_report(args.report, cases, bindings, results, time.monotonic() - t0)
    finally:
        service.close()
    print(f"hostile: report in {os.path.relpath(args.report, ROOT)}; {time.monotonic() - t0:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
