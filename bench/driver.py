"""Bench driver: one ``wps-emulator`` process for the whole run, every bench program run
against it several times, and the median / min / max of every measurement.

Usage (bench/run.sh builds and installs first):
  python3 bench/driver.py [--quick] [--tiny] [--runs N] [--impls c,rust,...] [--scenarios msg,...]
                         [--out DIR]

A full run (neither --quick nor --tiny) with every scenario writes bench/results/ and the table
in BENCHMARKS.md; with a subset of --scenarios it writes only build/bench/results-MODE-SCENARIOS/
(or --out).

Each program is ``PROG IMPL SCENARIO key=value ...`` (scenarios msg, idle, connect, reliable,
stream) and prints
one JSON line per measurement. A program that exits non-zero, times out or prints nothing fails
the run (exit status 1), but no figure is ever asserted.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "tools"))
import emulator  # noqa: E402
import fault_proxy  # noqa: E402
import report  # noqa: E402

VENV_PY = REPO / "build/bench-venv/bin/python"
# Run by default, in this order; OPTIONAL ones only when named in --impls.
IMPLS = {
    "c": [str(REPO / "build/bench/wps-bench-c"), "c"],
    "c-poll": [str(REPO / "build/bench/wps-bench-c"), "c-poll"],
    "rust": [str(REPO / "target/release/wps-bench"), "rust"],
    "python": [str(VENV_PY), str(HERE / "py/bench.py"), "python"],
    "official-python": [str(VENV_PY), str(HERE / "py/bench.py"), "official-python"],
    "official-js": ["node", "--expose-gc", str(HERE / "js/bench.mjs"), "official-js"],
    "raw": [str(REPO / "target/release/wps-bench"), "raw"],
}
OPTIONAL = {"c-sync": [str(REPO / "build/bench/wps-bench-c"), "c-sync"]}
SCENARIOS = ["msg", "idle", "connect", "reliable", "stream"]
# The reliable scenario exists in the Rust, C (default callback mode) and our Python bench
# programs and, as a paced rate sweep (the rate at which cut-offs start), in the official JS and
# Python ones; the raw client does not acknowledge sequence ids.
# The stream scenario (group streams, one publisher to one subscriber) exists in the C (default
# callback mode), Rust and official JS bench programs.
SCENARIO_IMPLS = {"reliable": {"rust", "c", "python", "official-python", "official-js"}, "stream": {"rust", "c", "official-js"}}
# Parameters of a scenario that differ for one implementation.
IMPL_SCENARIO_KEYS = {("official-js", "reliable"): ["rel_rates", "rel_seconds"],
                      ("official-python", "reliable"): ["rel_rates", "rel_seconds"]}
COUNTS = {
    "full": dict(ff_count=20000, ff4k_count=3000, ack_count=2000, pipe_count=10000, window=256,
                 rtt_count=2000, steps="1,100,1000", connect_count=20, recover_count=5,
                 rel_count=20000, fanout=100, fan_count=200,
                 rel_rates="250,500,1000,1500,2000,4000,8000", rel_seconds=3,
                 stream_count=20000, stream1k_count=10000, stream_repeat=5),
    "quick": dict(ff_count=2000, ff4k_count=500, ack_count=200, pipe_count=2000, window=256,
                  rtt_count=300, steps="1,10,100", connect_count=5, recover_count=2,
                  rel_count=5000, fanout=20, fan_count=100,
                 rel_rates="500,1000,2000,4000", rel_seconds=2,
                 stream_count=10000, stream1k_count=5000, stream_repeat=2),
    "tiny": dict(ff_count=200, ff4k_count=50, ack_count=50, pipe_count=200, window=64,
                 rtt_count=50, steps="1,5,10", connect_count=2, recover_count=1,
                 rel_count=200, fanout=5, fan_count=20,
                 rel_rates="500,2000", rel_seconds=1,
                 stream_count=200, stream1k_count=100, stream_repeat=1),
}
SCENARIO_KEYS = {
    "msg": ["ff_count", "ff4k_count", "ack_count", "pipe_count", "window", "rtt_count"],
    "idle": ["steps"],
    "connect": ["connect_count", "recover_count"],
    "reliable": ["rel_count", "pipe_count", "window", "fanout", "fan_count"],
    "stream": ["stream_count", "stream1k_count", "stream_repeat"],
}
# CPU (user+sys) of the program divided by the messages (msg) or fragments (stream) measured.
CPU_METRIC = {"msg": "cpu_us_per_msg", "stream": "cpu_us_per_frag"}
# WAN profile: the msg and connect scenarios again through wps-fault-proxy with these round
# trips added (half each way) and a 100 Mbit/s limit each way, with smaller counts.
WAN_RTTS_MS = [20, 80]
WAN_BANDWIDTH = 100_000_000 // 8
WAN_COUNTS = {
    "full": dict(ff_count=5000, ff4k_count=500, ack_count=50, pipe_count=20000, window=256,
                 rtt_count=50, connect_count=3, recover_count=3),
    "quick": dict(ff_count=2000, ff4k_count=200, ack_count=30, pipe_count=2000, window=256,
                  rtt_count=30, connect_count=2, recover_count=2),
    "tiny": dict(ff_count=100, ff4k_count=20, ack_count=5, pipe_count=100, window=64,
                 rtt_count=5, connect_count=1, recover_count=1),
}
WAN_SCENARIOS = ["msg", "connect"]
TIMEOUT_S = {"full": 600, "quick": 180, "tiny": 90}
EMULATOR_CPU = 1  # the emulator gets its own core; the clients share the machine


def priority_prefix():
    """`nice -n -10` for the emulator and every program when allowed (root): the same for all
    implementations, and it keeps unrelated work on a shared machine from dominating the tails.
    BENCH_NICE=0 turns it off; BENCH_NICE=N uses -N."""
    level = int(os.environ.get("BENCH_NICE", "10"))
    if level <= 0 or os.geteuid() != 0:
        return []
    return ["nice", "-n", str(-level)]


def hub_name(run, impl, scenario):
    return f"b{run}_{impl.replace('-', '_')}_{scenario}"


def run_program(impl, scenario, mode, run, connection_string, logs, via=None, counts=None, tag=""):
    """Runs one program; ``via`` (host:port) sends its client connections through a proxy."""
    hub = hub_name(run, impl, scenario) + tag
    counts = counts or COUNTS[mode]
    keys = IMPL_SCENARIO_KEYS.get((impl, scenario), SCENARIO_KEYS[scenario])
    args = priority_prefix() + {**IMPLS, **OPTIONAL}[impl] + [scenario] + [f"{k}={counts[k]}" for k in keys]
    env = dict(
        os.environ,
        WPS_CONNECTION_STRING=connection_string,
        BENCH_URL=proxied(emulator.client_access_url(connection_string, hub), via),
        BENCH_HUB=hub,
        BENCH_DROP_CMD=f"{sys.executable} {HERE / 'tools/emu_drop.py'} {hub}",
        WPS_LIBRARY_PATH=str(REPO / "target/release/libwebpubsub_client.so"),
        PYTHONPATH=os.pathsep.join([str(REPO / "bindings/python"), str(HERE / "py")]),
    )
    log = logs / f"{hub}.stderr"
    started = time.monotonic()
    # Programs run one at a time, so the children's rusage delta is this program's CPU.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as err:
        try:
            proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                  timeout=TIMEOUT_S[mode], cwd=str(HERE))
            rc, out = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as e:
            rc, out = "timeout", (e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or "")
    figures = {}
    for line in out.splitlines():
        try:
            record = json.loads(line)
            figures[record["metric"]] = float(record["value"])
        except (ValueError, KeyError):
            continue
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    messages = messages_delivered(scenario, counts)
    if messages and figures:
        figures[CPU_METRIC[scenario]] = cpu_s * 1e6 / messages
    error = None
    if rc != 0 or not figures:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        error = f"{impl} {scenario} run {run}: exit {rc}; " + " | ".join(tail)
    return figures, error, elapsed


def proxied(url, via):
    """``url`` with its host:port replaced by ``via`` (unchanged when ``via`` is None)."""
    if not via:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{via}/{rest.split('/', 1)[1]}"


def wan_figures(impl, mode, run, connection_string, logs, proxy, errors):
    """The WAN profile of one implementation: figures prefixed ``wan<rtt>_``, plus the acked
    pipelined rate as a share of window / round trip."""
    figures = {}
    counts = {**COUNTS[mode], **WAN_COUNTS[mode]}
    for rtt in WAN_RTTS_MS:
        proxy.set_wan(rtt, WAN_BANDWIDTH)
        for scenario in WAN_SCENARIOS:
            got, error, elapsed = run_program(impl, scenario, mode, run, connection_string, logs,
                                              via=proxy.listen, counts=counts, tag=f"_wan{rtt}")
            print(f"[bench] run {run} {impl:16} wan{rtt:<5} {scenario:8} {elapsed:6.1f}s "
                  f"{'ok' if not error else 'FAILED'}", file=sys.stderr)
            if error:
                errors.append(error)
            for k in ("ff_64", "acked_seq", "acked_pipe", "rtt_p50", "recover_ms"):
                if k in got:
                    figures[f"wan{rtt}_{k}"] = got[k]
        if f"wan{rtt}_acked_pipe" in figures:
            bound = counts["window"] / (rtt / 1000.0)
            figures[f"wan{rtt}_pipe_share"] = figures[f"wan{rtt}_acked_pipe"] / bound
            # The proxy's timers fire on whole milliseconds, so its real round trip is a little
            # longer than the nominal one; acked blocking sends measure it in the same run.
            if figures.get(f"wan{rtt}_acked_seq"):
                measured_s = 1.0 / figures[f"wan{rtt}_acked_seq"]
                figures[f"wan{rtt}_rtt_ms"] = measured_s * 1e3
                figures[f"wan{rtt}_pipe_share_measured"] = (
                    figures[f"wan{rtt}_acked_pipe"] / (counts["window"] / measured_s))
    return figures


def messages_delivered(scenario, counts):
    """Messages (msg) or stream fragments (stream) the program publishes and receives itself
    (publisher and subscriber share the process): the denominator of CPU per message or
    fragment. Other scenarios have none."""
    if scenario == "msg":
        return sum(int(counts[k]) for k in ("ff_count", "ff4k_count", "ack_count", "pipe_count", "rtt_count"))
    if scenario == "stream":
        return (int(counts["stream_count"]) + int(counts["stream1k_count"])) * int(counts["stream_repeat"])
    return 0


def derive(figures, steps):
    """RSS per client between the smallest and largest idle step."""
    lo, hi = steps[0], steps[-1]
    if f"rss_kb_{lo}" in figures and f"rss_kb_{hi}" in figures and hi > lo:
        figures["rss_per_client_kb"] = (figures[f"rss_kb_{hi}"] - figures[f"rss_kb_{lo}"]) / (hi - lo)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run, small counts")
    parser.add_argument("--tiny", action="store_true", help="with --quick: tiny counts (CI smoke)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--scenarios", help=f"a subset of {','.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    runs = args.runs or (5 if mode == "full" else 1)
    impls = [i for i in args.impls.split(",") if i]
    unknown = [i for i in impls if i not in IMPLS and i not in OPTIONAL]
    if unknown:
        parser.error(f"unknown implementations {unknown}; known: {list(IMPLS) + list(OPTIONAL)}")
    scenarios = SCENARIOS
    if args.scenarios:
        scenarios = [sc for sc in args.scenarios.split(",") if sc]
        if any(sc not in SCENARIOS for sc in scenarios):
            parser.error(f"unknown scenarios in {args.scenarios}; known: {SCENARIOS}")
    if scenarios != SCENARIOS:
        default_out = REPO / "build/bench" / f"results-{mode}-{'-'.join(scenarios)}"
    else:
        default_out = HERE / "results" if mode == "full" else REPO / "build/bench" / f"results-{mode}"
    out = args.out or default_out
    logs = REPO / "build/bench/logs"
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    steps = [int(s) for s in COUNTS[mode]["steps"].split(",")]

    emu = emulator.EmulatorProcess(str(REPO / "target/release/wps-emulator"), str(logs / "emulator.stderr"),
                                   cpu=EMULATOR_CPU if (os.cpu_count() or 1) > 1 else None,
                                   prefix=priority_prefix())
    proxy = None
    if not os.environ.get("BENCH_NO_WAN") and set(WAN_SCENARIOS) & set(scenarios):
        upstream = emulator.parse_connection_string(emu.connection_string)[0].split("://", 1)[1]
        proxy = fault_proxy.FaultProxy(str(REPO / "target/release/wps-fault-proxy"), upstream,
                                       str(logs / "fault-proxy.stderr"), prefix=priority_prefix())
    print(f"[bench] {mode}: {runs} run(s) of {', '.join(impls)}; emulator pid {emu.proc.pid} "
          f"on CPU {EMULATOR_CPU}: {emu.connection_string}", file=sys.stderr)
    samples = {impl: [] for impl in impls}
    errors = []
    load_at_start = round(os.getloadavg()[0], 2)
    started = time.time()
    try:
        for run in range(1, runs + 1):
            for impl in impls:
                figures = {}
                for scenario in scenarios:
                    if impl not in SCENARIO_IMPLS.get(scenario, {impl}):
                        continue
                    got, error, elapsed = run_program(impl, scenario, mode, run, emu.connection_string, logs)
                    figures.update(got)
                    print(f"[bench] run {run} {impl:16} {scenario:8} {elapsed:6.1f}s "
                          f"{'ok' if not error else 'FAILED'}", file=sys.stderr)
                    if error:
                        errors.append(error)
                    if not emu.alive():
                        errors.append(f"the emulator exited during {impl} {scenario}")
                        raise RuntimeError(errors[-1])
                if proxy:
                    figures.update(wan_figures(impl, mode, run, emu.connection_string, logs, proxy, errors))
                samples[impl].append(derive(figures, steps))
    finally:
        if proxy:
            proxy.stop()
        emu.stop()

    summary = {impl: report.aggregate(runs_) for impl, runs_ in samples.items()}
    machine = report.machine()
    machine["loadavg_1m"] = load_at_start
    meta = {
        "mode": mode, "runs": runs, "counts": COUNTS[mode], "steps": steps,
        "machine": machine, "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1), "errors": errors,
        "loadavg_end": round(os.getloadavg()[0], 2), "nice": " ".join(priority_prefix()) or "none",
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": samples, "summary": summary}, indent=1))
    table = report.markdown(summary, meta, samples)
    (out / "results.md").write_text(table)
    chart = report.chart(summary, meta, out / "chart.png")
    print(table)
    if chart:
        print(f"[bench] chart: {chart}", file=sys.stderr)
    if mode == "full" and scenarios == SCENARIOS:
        report.update_benchmarks_md(REPO / "BENCHMARKS.md", table)
    for e in errors:
        print(f"[bench] ERROR {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
