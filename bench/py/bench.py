"""Bench program for the Python clients: ``python bench.py IMPL SCENARIO [key=value ...]``.

IMPL: ``python`` (this repository's ``webpubsub_client``) or ``official-python``
(``azure-messaging-webpubsubclient``). SCENARIO: ``msg``, ``idle``, ``connect`` or ``reliable``,
run exactly as the Rust, C and JS bench programs do (see BENCHMARKS.md): ``reliable`` is the
delivery measurement of the C program for ``python`` and the paced rate sweep of the JS program
for ``official-python``, whose once-a-second acknowledgements cannot keep up with a burst. One
JSON line per measurement on stdout.
The sync API is used throughout, except the pipelined acked sends, which use each package's
asyncio client (the only way either offers to have many sends in flight).
Environment: BENCH_URL (client access URL), BENCH_DROP_CMD (drop helper, connection id appended).
"""

import asyncio
import gc
import importlib
import json
import os
import subprocess
import sys
import threading
import time

GROUP, RTT_GROUP, RECOVERY_GROUP = "g", "rtt", "rec"
WARM_UP = 200
WAIT_S = 60.0
PACKAGES = {"python": "webpubsub_client", "official-python": "azure.messaging.webpubsubclient"}


def emit(impl, metric, value, unit):
    print(json.dumps({"impl": impl, "metric": metric, "value": value, "unit": unit}), flush=True)


def percentile(sorted_samples, p):
    rank = -(-p * len(sorted_samples) // 100)
    return sorted_samples[max(1, min(len(sorted_samples), int(rank))) - 1]


def proc_status():
    gc.collect()  # retained memory, not garbage waiting for a collection
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return float(fields["VmRSS"][0]), float(fields["Threads"][0])


class Counter:
    def __init__(self):
        self.cv = threading.Condition()
        self.count = 0
        self.last_ns = 0

    def hit(self, *_):
        now = time.monotonic_ns()
        with self.cv:
            self.count += 1
            self.last_ns = now
            self.cv.notify_all()

    def wait_for(self, target, what, timeout=WAIT_S):
        with self.cv:
            if not self.cv.wait_for(lambda: self.count >= target, timeout):
                raise TimeoutError(f"{what}: {self.count} of {target} after {timeout}s")


class Conn:
    def __init__(self, pkg, url, reliable):
        models = importlib.import_module(pkg.__name__ + ".models")
        protocol = models.WebPubSubProtocolType.JSON_RELIABLE if reliable else models.WebPubSubProtocolType.JSON
        self.received = Counter()
        self.disconnects = 0
        self.client = pkg.WebPubSubClient(pkg.WebPubSubClientCredential(url), protocol_type=protocol)
        self.client.subscribe("group-message", self.received.hit)
        self.client.subscribe("disconnected", self._disconnected)
        self.client.open()

    def _disconnected(self, *_):
        self.disconnects += 1

    def connection_id(self):
        value = getattr(self.client, "connection_id", None)
        if value is None:
            value = getattr(self.client, "_connection_id", None)
        return value

    def join(self, group):
        self.client.join_group(group)

    def send(self, group, data, acked):
        self.client.send_to_group(group, data, "text", ack=acked)

    def close(self):
        self.client.close()


async def pipelined(pkg, url, data, count, window, group=GROUP):
    aio = importlib.import_module(pkg.__name__ + ".aio")
    models = importlib.import_module(pkg.__name__ + ".models")
    client = aio.WebPubSubClient(aio.WebPubSubClientCredential(url), protocol_type=models.WebPubSubProtocolType.JSON)
    await client.open()
    try:
        slots = asyncio.Semaphore(window)

        async def one():
            try:
                await client.send_to_group(group, data, "text")
            finally:
                slots.release()

        tasks = []
        started = time.perf_counter()
        for _ in range(count):
            await slots.acquire()
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        return count / (time.perf_counter() - started)
    finally:
        await client.close()


def scenario_msg(impl, pkg, url, p):
    sub = Conn(pkg, url, False)
    sub.join(GROUP)
    pub = Conn(pkg, url, False)
    small, large = "x" * 64, "x" * 4096
    for _ in range(WARM_UP):
        pub.send(GROUP, small, False)
    sub.received.wait_for(WARM_UP, "warm-up")

    for metric, data, count in (("ff_64", small, p["ff_count"]), ("ff_4k", large, p["ff4k_count"])):
        base = sub.received.count
        started = time.perf_counter()
        for _ in range(count):
            pub.send(GROUP, data, False)
        sub.received.wait_for(base + count, metric)
        emit(impl, metric, count / (time.perf_counter() - started), "msg/s")

    base = sub.received.count
    started = time.perf_counter()
    for _ in range(p["ack_count"]):
        pub.send(GROUP, small, True)
    emit(impl, "acked_seq", p["ack_count"] / (time.perf_counter() - started), "msg/s")
    rate = asyncio.run(pipelined(pkg, url, small, p["pipe_count"], p["window"]))
    emit(impl, "acked_pipe", rate, "msg/s")
    sub.received.wait_for(base + p["ack_count"] + p["pipe_count"], "acked deliveries")

    pub.join(RTT_GROUP)
    samples = []
    for i in range(p["rtt_count"]):
        started = time.monotonic_ns()
        pub.send(RTT_GROUP, small, False)
        pub.received.wait_for(i + 1, "round trip")
        samples.append((pub.received.last_ns - started) / 1e3)
    samples.sort()
    for metric, q in (("rtt_p50", 50), ("rtt_p99", 99), ("rtt_p999", 99.9)):
        emit(impl, metric, percentile(samples, q), "us")
    pub.close()
    sub.close()


def delivered_rate(sub, base, count, started):
    """Delivered msg/s until the subscriber saw ``count`` more messages, and how many it did not
    see within the phase's deadline (counted as lost instead of failing the run)."""
    try:
        sub.received.wait_for(base + count, "reliable delivery")
        return count / (time.perf_counter() - started), 0
    except TimeoutError:
        got = sub.received.count - base
        return got / (time.perf_counter() - started), count - got


def scenario_reliable(impl, pkg, url, p):
    if impl == "official-python":
        return reliable_sweep(impl, pkg, url, p)
    small = "x" * 64
    lost = cutoffs = 0
    sub = Conn(pkg, url, True)
    sub.join(GROUP)
    first_id = sub.connection_id()
    pub = Conn(pkg, url, False)

    base, started = sub.received.count, time.perf_counter()
    for _ in range(p["rel_count"]):
        pub.send(GROUP, small, False)
    rate, missing = delivered_rate(sub, base, p["rel_count"], started)
    emit(impl, "rel_ff_64", rate, "msg/s")
    lost += missing

    base, started = sub.received.count, time.perf_counter()
    asyncio.run(pipelined(pkg, url, small, p["pipe_count"], p["window"]))
    rate, missing = delivered_rate(sub, base, p["pipe_count"], started)
    emit(impl, "rel_pipe", rate, "msg/s")
    lost += missing
    cutoffs += sub.connection_id() != first_id
    sub.close()

    subs = []
    for _ in range(p["fanout"]):
        s = Conn(pkg, url, True)
        s.join(GROUP)
        subs.append((s, s.connection_id()))
    started = time.perf_counter()
    for _ in range(p["fan_count"]):
        pub.send(GROUP, small, False)
    delivered = 0
    for s, _ in subs:
        try:
            s.received.wait_for(p["fan_count"], "fan-out")
        except TimeoutError:
            pass
        delivered += min(s.received.count, p["fan_count"])
    emit(impl, "rel_fanout", delivered / (time.perf_counter() - started), "msg/s")
    lost += len(subs) * p["fan_count"] - delivered
    for s, connection_id in subs:
        cutoffs += s.connection_id() != connection_id
        s.close()
    emit(impl, "rel_lost", lost, "msg")
    emit(impl, "rel_cutoffs", cutoffs, "closes")
    pub.close()


def reliable_sweep(impl, pkg, url, p):
    """For each rate, a fresh reliable subscriber gets ``rel_seconds`` of 64-byte
    fire-and-forget messages at that rate; it is cut off when it reports ``disconnected``
    (1008 when the window overflows), its connection id changes, or messages are missing.
    Reports the highest rate without a cut-off and the lowest with one."""
    pub = Conn(pkg, url, False)
    small = "x" * 64
    best = first_cut = cutoffs = 0
    for rate in p["rel_rates"]:
        sub = Conn(pkg, url, True)
        group = f"rel{rate}"
        sub.join(group)
        connection_id = sub.connection_id()
        count = round(rate * p["rel_seconds"])
        per_tick = max(1, round(rate * 0.020))  # batches every 20 ms
        started = time.perf_counter()
        sent = 0
        while sent < count:
            n = min(per_tick, count - sent)
            for _ in range(n):
                pub.send(group, small, False)
            sent += n
            ahead = started + sent / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)  # pacing the publisher, not synchronisation
        try:
            sub.received.wait_for(count, "reliable sweep", 5.0)
        except TimeoutError:
            pass
        cut = sub.disconnects > 0 or sub.connection_id() != connection_id or sub.received.count < count
        sub.close()
        if cut:
            cutoffs += 1
            first_cut = rate
            break
        best = rate
    emit(impl, "rel_max_rate", best, "msg/s")
    emit(impl, "rel_cutoff_rate", first_cut, "msg/s")
    emit(impl, "rel_cutoffs", cutoffs, "closes")
    pub.close()


def scenario_idle(impl, pkg, url, p):
    rss, threads = proc_status()
    emit(impl, "rss_kb_0", rss, "KiB")
    emit(impl, "threads_0", threads, "threads")
    clients = []
    for step in p["steps"]:
        while len(clients) < step:
            clients.append(Conn(pkg, url, True))
        rss, threads = proc_status()
        emit(impl, f"rss_kb_{step}", rss, "KiB")
        emit(impl, f"threads_{step}", threads, "threads")
    # No close: the process exits right after (os._exit), which closes every socket; closing
    # 1,000 official sync clients one by one takes minutes and measures nothing.


def drop_connection(connection_id):
    out = subprocess.run(
        f"{os.environ['BENCH_DROP_CMD']} '{connection_id}'", shell=True, check=True, stdout=subprocess.PIPE, text=True
    )
    return int(out.stdout.strip())


def scenario_connect(impl, pkg, url, p):
    samples = []
    for _ in range(p["connect_count"]):
        started = time.perf_counter()
        c = Conn(pkg, url, True)
        samples.append((time.perf_counter() - started) * 1e3)
        c.close()
    samples.sort()
    emit(impl, "connect_ms", percentile(samples, 50), "ms")

    target = Conn(pkg, url, True)
    target.join(RECOVERY_GROUP)
    sender = Conn(pkg, url, True)
    samples = []
    for i in range(p["recover_count"]):
        connection_id = target.connection_id()
        if not connection_id:
            raise RuntimeError("the client reports no connection id")
        dropped_ns = drop_connection(connection_id)
        sender.send(RECOVERY_GROUP, "x" * 64, True)
        target.received.wait_for(i + 1, "recovery", 30.0)
        samples.append((target.received.last_ns - dropped_ns) / 1e6)
    samples.sort()
    emit(impl, "recover_ms", percentile(samples, 50), "ms")
    sender.close()
    target.close()


DEFAULTS = dict(ff_count=20000, ff4k_count=5000, ack_count=2000, pipe_count=10000, window=256, rtt_count=2000,
                steps="1,100,1000", connect_count=20, recover_count=5, rel_count=20000, fanout=100,
                fan_count=200, rel_rates="250,500,1000,1500,2000,4000,8000", rel_seconds=3)


def main(argv):
    if len(argv) < 3 or argv[1] not in PACKAGES:
        sys.stderr.write(__doc__)
        return 2
    impl, scenario = argv[1], argv[2]
    params = dict(DEFAULTS)
    for arg in argv[3:]:
        key, _, value = arg.partition("=")
        if key not in DEFAULTS:
            raise SystemExit(f"unknown parameter {key}")
        params[key] = value
    p = {k: [int(x) for x in str(v).split(",")] if k in ("steps", "rel_rates") else int(v) for k, v in params.items()}
    pkg = importlib.import_module(PACKAGES[impl])
    if impl == "official-python":
        import official_fix

        official_fix.apply()
    run = {"msg": scenario_msg, "idle": scenario_idle, "connect": scenario_connect,
           "reliable": scenario_reliable}.get(scenario)
    if run is None:
        raise SystemExit(f"unknown scenario {scenario} (msg, idle, connect, reliable)")
    run(impl, pkg, os.environ["BENCH_URL"], p)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    # Some clients leave non-daemon threads behind; the measurements are complete.
    os._exit(code)
