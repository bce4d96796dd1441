"""Side-by-side benchmark: ``webpubsub_client`` vs the official ``azure-messaging-webpubsubclient``.

Both clients run against the same ``wps-emulator`` in one process run, with URLs minted by the
official server SDK. For each client (sync API):

* fire-and-forget: N sends without acks; throughput counts until every message came back to
  the sender (it is in the group), so both clients are measured end to end;
* acked: K sends, each waiting for its ack; messages/s;
* round trip: M sequential acked sends, each timed from the call until it returns (ack) and
  until the client's own group-message callback sees the message (echo); p50/p99 in ms.

Usage: python bench/compare.py [--api sync|aio] [--messages N] [--acked-messages K] [--round-trips M]
                               [--emulator PATH] [--only ours|official]
Prints a table and a JSON line with the figures; a client whose run fails is reported with the
reason and the exit code is 1.

Two properties of the official sync client 1.1.0 show up here and are measured as they are:
it acknowledges sequence ids only once a second, so a burst of more than 1,000 messages within
a second overflows the emulator's reliable buffer (1,000 unacknowledged messages, as in
Microsoft's emulator) and the connection is closed with 1008 (hence the default of 500 fire-and-forget
messages); and an acked send whose ack is handled before the call starts waiting blocks for the
whole ack timeout (30 s), which shows up as a low acked rate and a 30,000 ms p99.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[3]


def start_emulator(binary: Path) -> "tuple[subprocess.Popen, str]":
    proc = subprocess.Popen([str(binary), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line: List[str] = []
    got = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        line.append(proc.stdout.readline())
        got.set()

    threading.Thread(target=read, daemon=True).start()
    if not got.wait(30) or not line[0].startswith("Endpoint="):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line[0].strip()


class Counter:
    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.count = 0
        self.arrivals: Dict[str, float] = {}

    def on_message(self, msg: Any) -> None:
        now = time.perf_counter()
        with self.cv:
            self.count += 1
            data = msg.data
            if isinstance(data, str) and data.startswith("rt-"):
                self.arrivals[data] = now
            self.cv.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        with self.cv:
            if not self.cv.wait_for(predicate, timeout):
                raise TimeoutError("messages did not arrive in time")


def run_one(
    name: str,
    client_cls: Any,
    cred_cls: Any,
    url_for: Callable[[], str],
    messages: int,
    acked_messages: int,
    round_trips: int,
) -> Dict[str, float]:
    client = client_cls(cred_cls(url_for))
    counter = Counter()
    client.subscribe("group-message", counter.on_message)
    group = f"bench-{name}"
    out: Dict[str, float] = {}
    with client:
        client.join_group(group)
        # warm-up
        for i in range(20):
            client.send_to_group(group, f"warm-{i}", "text")
        counter.wait(lambda: counter.count >= 20, 60)

        base = counter.count
        start = time.perf_counter()
        for i in range(messages):
            client.send_to_group(group, f"ff-{i}", "text", ack=False)
        counter.wait(lambda: counter.count >= base + messages, 120)
        out["fire_and_forget_msgs_per_s"] = messages / (time.perf_counter() - start)

        base = counter.count
        start = time.perf_counter()
        for i in range(acked_messages):
            client.send_to_group(group, f"ack-{i}", "text")
        out["acked_msgs_per_s"] = acked_messages / (time.perf_counter() - start)
        counter.wait(lambda: counter.count >= base + acked_messages, 120)

        echo, acked = [], []
        for i in range(round_trips):
            key = f"rt-{i}"
            t0 = time.perf_counter()
            client.send_to_group(group, key, "text")
            acked.append((time.perf_counter() - t0) * 1000.0)
            counter.wait(lambda key=key: key in counter.arrivals, 60)
            echo.append((counter.arrivals[key] - t0) * 1000.0)
        out["echo_p50_ms"], out["echo_p99_ms"] = percentiles(echo)
        out["ack_p50_ms"], out["ack_p99_ms"] = percentiles(acked)
    return out


async def run_one_aio(
    name: str,
    client_cls: Any,
    cred_cls: Any,
    url_for: Callable[[], str],
    messages: int,
    acked_messages: int,
    round_trips: int,
) -> Dict[str, float]:
    """The same three measurements with the asyncio clients (listeners are coroutine functions)."""
    import asyncio

    count = 0
    arrivals: Dict[str, float] = {}
    changed = asyncio.Event()

    async def on_message(msg: Any) -> None:
        nonlocal count
        now = time.perf_counter()
        count += 1
        if isinstance(msg.data, str) and msg.data.startswith("rt-"):
            arrivals[msg.data] = now
        changed.set()

    async def wait(predicate: Callable[[], bool], timeout: float) -> None:
        async def loop() -> None:
            while not predicate():
                changed.clear()
                await changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def provider() -> str:
        return url_for()

    client = client_cls(cred_cls(provider))
    await client.subscribe("group-message", on_message)
    group = f"bench-{name}"
    out: Dict[str, float] = {}
    async with client:
        await client.join_group(group)
        for i in range(20):
            await client.send_to_group(group, f"warm-{i}", "text")
        await wait(lambda: count >= 20, 60)

        base = count
        start = time.perf_counter()
        for i in range(messages):
            await client.send_to_group(group, f"ff-{i}", "text", ack=False)
        await wait(lambda: count >= base + messages, 120)
        out["fire_and_forget_msgs_per_s"] = messages / (time.perf_counter() - start)

        base = count
        start = time.perf_counter()
        for i in range(acked_messages):
            await client.send_to_group(group, f"ack-{i}", "text")
        out["acked_msgs_per_s"] = acked_messages / (time.perf_counter() - start)
        await wait(lambda: count >= base + acked_messages, 120)

        echo, acked = [], []
        for i in range(round_trips):
            key = f"rt-{i}"
            t0 = time.perf_counter()
            await client.send_to_group(group, key, "text")
            acked.append((time.perf_counter() - t0) * 1000.0)
            await wait(lambda key=key: key in arrivals, 60)
            echo.append((arrivals[key] - t0) * 1000.0)
        out["echo_p50_ms"], out["echo_p99_ms"] = percentiles(echo)
        out["ack_p50_ms"], out["ack_p99_ms"] = percentiles(acked)
    return out


def percentiles(samples: List[float]) -> "tuple[float, float]":
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500, help="fire-and-forget messages")
    parser.add_argument("--acked-messages", type=int, default=300, help="acked messages for the throughput figure")
    parser.add_argument("--round-trips", type=int, default=300, help="sequential acked sends timed one by one")
    parser.add_argument(
        "--emulator", type=Path, default=Path(os.environ.get("WPS_EMULATOR", REPO / "target/release/wps-emulator"))
    )
    parser.add_argument("--only", choices=["ours", "official"])
    parser.add_argument(
        "--api", choices=["sync", "aio"], default="sync", help="compare the sync or the asyncio clients"
    )
    args = parser.parse_args(argv)

    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    proc, connection_string = start_emulator(args.emulator)
    try:
        results: Dict[str, Dict[str, float]] = {}
        failures: Dict[str, str] = {}
        contenders = []
        if args.only in (None, "ours"):
            if args.api == "aio":
                import webpubsub_client.aio as ours
            else:
                import webpubsub_client as ours  # type: ignore[no-redef]
            contenders.append(("webpubsub_client", ours.WebPubSubClient, ours.WebPubSubClientCredential))
        if args.only in (None, "official"):
            if args.api == "aio":
                import azure.messaging.webpubsubclient.aio as official
            else:
                import azure.messaging.webpubsubclient as official  # type: ignore[no-redef]
            contenders.append(
                ("azure-messaging-webpubsubclient", official.WebPubSubClient, official.WebPubSubClientCredential)
            )
        for index, (name, client_cls, cred_cls) in enumerate(contenders):
            service = WebPubSubServiceClient.from_connection_string(connection_string, hub=f"bench{index}")

            def url_for(service: Any = service) -> str:
                return service.get_client_access_token(roles=["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"])[
                    "url"
                ]

            try:
                sizes = (args.messages, args.acked_messages, args.round_trips)
                if args.api == "aio":
                    import asyncio

                    results[name] = asyncio.run(run_one_aio(f"c{index}", client_cls, cred_cls, url_for, *sizes))
                else:
                    results[name] = run_one(f"c{index}", client_cls, cred_cls, url_for, *sizes)
            except Exception as err:  # noqa: BLE001 - report and go on with the other client
                print(f"{name}: run failed: {type(err).__name__}: {err}", file=sys.stderr)
                failures[name] = f"{type(err).__name__}: {err}"
    finally:
        proc.terminate()
        proc.wait(10)

    cols = ["fire_and_forget_msgs_per_s", "acked_msgs_per_s", "ack_p50_ms", "ack_p99_ms", "echo_p50_ms", "echo_p99_ms"]
    print(f"{args.api + ' client':34}" + "".join(f"{c:>28}" for c in cols))
    for name, r in results.items():
        print(f"{name:34}" + "".join(f"{r[c]:>28.2f}" for c in cols))
    for name, why in failures.items():
        print(f"{name:34}  failed: {why}")
    print(
        json.dumps(
            {
                "messages": args.messages,
                "acked_messages": args.acked_messages,
                "round_trips": args.round_trips,
                "results": results,
                "failures": failures,
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
