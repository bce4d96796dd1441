"""Aggregation (median, min, max over runs), the Markdown table with the target ratios, the
PNG chart, and the results section of BENCHMARKS.md."""

import os
import platform
import statistics
from pathlib import Path

NAMES = {
    "c": "C ABI (ours)",
    "c-poll": "C ABI, poll mode (ours)",
    "c-sync": "C ABI, write-through fire-and-forget (ours)",
    "rust": "Rust API (ours)",
    "python": "Python pkg (ours)",
    "official-python": "official Python",
    "official-js": "official JS",
    "raw": "raw tokio-tungstenite",
}
ROWS = [
    ("ff_64", "fire-and-forget 64 B (msg/s)", "{:,.0f}"),
    ("ff_4k", "fire-and-forget 4 KiB (msg/s)", "{:,.0f}"),
    ("acked_seq", "acked, blocking (msg/s)", "{:,.0f}"),
    ("acked_pipe", "acked, pipelined (msg/s)", "{:,.0f}"),
    ("rtt_p50", "round trip p50 (µs)", "{:,.0f}"),
    ("rtt_p99", "round trip p99 (µs)", "{:,.0f}"),
    ("rtt_p999", "round trip p99.9 (µs)", "{:,.0f}"),
    ("rel_ff_64", "reliable protocol: fire-and-forget 64 B delivered (msg/s)", "{:,.0f}"),
    ("rel_pipe", "reliable protocol: acked pipelined delivered (msg/s)", "{:,.0f}"),
    ("rel_fanout", "reliable protocol: 1 → N fan-out delivered (msg/s)", "{:,.0f}"),
    ("rel_lost", "reliable protocol: messages lost", "{:,.0f}"),
    ("rel_cutoffs", "reliable protocol: subscribers cut off (1008)", "{:,.0f}"),
    ("rel_max_rate", "reliable protocol, paced sweep: highest rate without a cut-off (msg/s)", "{:,.0f}"),
    ("rel_cutoff_rate", "reliable protocol, paced sweep: lowest rate with a cut-off (msg/s)", "{:,.0f}"),
    ("cpu_us_per_msg", "CPU per message, user+sys (µs)", "{:,.1f}"),
    ("stream_64", "group stream 1 → 1, 64 B fragments (fragments/s)", "{:,.0f}"),
    ("stream_1k", "group stream 1 → 1, 1 KiB fragments (fragments/s)", "{:,.0f}"),
    ("cpu_us_per_frag", "group stream: CPU per fragment, user+sys (µs)", "{:,.1f}"),
    ("rss_per_client_kb", "RSS per idle client (KiB)", "{:,.1f}"),
    ("connect_ms", "connect p50 (ms)", "{:,.2f}"),
    ("recover_ms", "recover after :drop p50 (ms)", "{:,.1f}"),
    ("wan20_ff_64", "WAN 20 ms: fire-and-forget 64 B (msg/s)", "{:,.0f}"),
    ("wan20_acked_seq", "WAN 20 ms: acked, blocking (msg/s)", "{:,.1f}"),
    ("wan20_acked_pipe", "WAN 20 ms: acked, pipelined (msg/s)", "{:,.0f}"),
    ("wan20_pipe_share", "WAN 20 ms: pipelined share of window ÷ RTT", "{:.2f}"),
    ("wan20_rtt_ms", "WAN 20 ms: measured round trip, acked blocking (ms)", "{:,.1f}"),
    ("wan20_pipe_share_measured", "WAN 20 ms: pipelined share of window ÷ measured round trip", "{:.2f}"),
    ("wan20_recover_ms", "WAN 20 ms: recover after :drop p50 (ms)", "{:,.0f}"),
    ("wan80_ff_64", "WAN 80 ms: fire-and-forget 64 B (msg/s)", "{:,.0f}"),
    ("wan80_acked_seq", "WAN 80 ms: acked, blocking (msg/s)", "{:,.1f}"),
    ("wan80_acked_pipe", "WAN 80 ms: acked, pipelined (msg/s)", "{:,.0f}"),
    ("wan80_pipe_share", "WAN 80 ms: pipelined share of window ÷ RTT", "{:.2f}"),
    ("wan80_rtt_ms", "WAN 80 ms: measured round trip, acked blocking (ms)", "{:,.1f}"),
    ("wan80_pipe_share_measured", "WAN 80 ms: pipelined share of window ÷ measured round trip", "{:.2f}"),
    ("wan80_recover_ms", "WAN 80 ms: recover after :drop p50 (ms)", "{:,.0f}"),
]


def aggregate(runs):
    keys = sorted({k for r in runs for k in r})
    out = {}
    for k in keys:
        values = [r[k] for r in runs if k in r]
        out[k] = {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
    return out


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def cell(summary, impl, metric, fmt):
    s = summary.get(impl, {}).get(metric)
    if not s:
        return "n/a"
    text = fmt.format(s["median"])
    if s["n"] > 1:
        text += f" ({fmt.format(s['min'])}–{fmt.format(s['max'])})"
    return text


def median(summary, impl, metric):
    s = summary.get(impl, {}).get(metric)
    return s["median"] if s else None


def ratio(a, b):
    return a / b if a is not None and b else None


def round_ratio(runs, a, b, metric):
    """Median over rounds of (a / b) for `metric`, each ratio taken within one round (the
    implementations of a round run back to back, so machine noise cancels better than in a
    ratio of medians)."""
    ratios = []
    for fa, fb in zip(runs.get(a, []), runs.get(b, [])):
        if fa.get(metric) is not None and fb.get(metric):
            ratios.append(fa[metric] / fb[metric])
    return statistics.median(ratios) if ratios else None


def targets(summary, runs):
    """(target, measured ratio text, met?) for each target of BENCHMARKS.md."""
    m = lambda impl, metric: median(summary, impl, metric)  # noqa: E731
    r = lambda a, b, metric: round_ratio(runs, a, b, metric)  # noqa: E731
    rows = []

    def add(text, a, b, metric, need, higher_is_better=True):
        value = r(a, b, metric)
        ma, mb = m(a, metric), m(b, metric)
        medians = f"{ma:,.1f} vs {mb:,.1f}" if ma is not None and mb is not None else "n/a"
        tuned = r("c-poll", b, metric) if a == "c" else None
        tuned = "" if tuned is None else f"{tuned:.2f}"
        if value is None:
            rows.append((text, "n/a", medians, None, tuned))
            return
        if value < 0:  # a negative figure (e.g. RSS shrinking) cannot be compared
            rows.append((text, f"{value:.2f}", medians, None, tuned))
            return
        met = value >= need if higher_is_better else value <= need
        rows.append((text, f"{value:.2f}", medians, met, tuned))

    add("C ABI fire-and-forget ≥ 20× official Python (64 B, msg/s)", "c", "official-python", "ff_64", 20)
    add("C ABI fire-and-forget ≥ 3× official JS (64 B, msg/s)", "c", "official-js", "ff_64", 3)
    add("C ABI fire-and-forget ≥ 0.80× raw tokio-tungstenite (64 B, msg/s)", "c", "raw", "ff_64", 0.8)
    add("C ABI pipelined acked ≥ 0.70× raw tokio-tungstenite (msg/s)", "c", "raw", "acked_pipe", 0.7)
    add("C ABI pipelined acked ≥ 8× official JS (msg/s)", "c", "official-js", "acked_pipe", 8)
    add("C ABI p99 RTT ≤ 1/5 of official JS (ratio ≤ 0.20; µs)", "c", "official-js", "rtt_p99", 0.2, False)
    add("C ABI p99 RTT ≤ 1.2× raw tokio-tungstenite (ratio ≤ 1.2; µs)", "c", "raw", "rtt_p99", 1.2, False)
    add("C ABI RSS per idle client ≤ 1/4 of official JS (ratio ≤ 0.25; KiB)",
        "c", "official-js", "rss_per_client_kb", 0.25, False)
    add("C ABI CPU per message ≤ 1/5 of official JS (ratio ≤ 0.20; µs)",
        "c", "official-js", "cpu_us_per_msg", 0.2, False)
    rel_c, rel_lost, rel_cut = m("c", "rel_ff_64"), m("c", "rel_lost"), m("c", "rel_cutoffs")
    if rel_c is not None:
        rows.append(("C ABI reliable protocol fire-and-forget ≥ 200,000 msg/s, no 1008, no loss", "",
                     f"{rel_c:,.0f} msg/s, lost {rel_lost:,.0f}, cut off {rel_cut:,.0f}",
                     rel_c >= 200_000 and rel_lost == 0 and rel_cut == 0, ""))
    js_best = m("official-js", "rel_max_rate")
    if rel_c is not None and js_best:
        rows.append(("C ABI reliable fire-and-forget ≥ 50× official JS's highest rate without a 1008",
                     f"{rel_c / js_best:.1f}", f"{rel_c:,.0f} vs {js_best:,.0f}", rel_c / js_best >= 50, ""))
    add("WAN 20 ms: C ABI recover after :drop ≤ 1/2 of official JS (ratio ≤ 0.50; ms)",
        "c", "official-js", "wan20_recover_ms", 0.5, False)
    for metric, bound in (("wan20_pipe_share", "window ÷ 20 ms"),
                          ("wan20_pipe_share_measured", "window ÷ measured round trip")):
        for ours in ("c", "c-poll", "rust"):
            share = m(ours, metric)
            if share is not None:
                rows.append((f"WAN 20 ms: {NAMES[ours]} acked pipelined ≥ 95 % of {bound}", f"{share:.2f}",
                             f"{m(ours, 'wan20_acked_pipe'):,.0f} msg/s", share >= 0.95, ""))
    rss = m("c", "rss_per_client_kb")
    if rss is not None:
        rows.append(("C ABI RSS per idle client ≤ 5 KiB", "", f"{rss:.1f} KiB", rss <= 5.0, ""))
    steps = [k for k in summary.get("c", {}) if k.startswith("threads_") and k != "threads_0"]
    steps.sort(key=lambda k: int(k.split("_")[1]))
    if len(steps) >= 2:
        lo, hi = m("c", steps[0]), m("c", steps[-1])
        flat = f"{m('c-poll', steps[0]):.0f} → {m('c-poll', steps[-1]):.0f}" if m("c-poll", steps[-1]) else ""
        rows.append((f"C ABI thread count flat ({steps[0]} → {steps[-1]})", "", f"{lo:.0f} → {hi:.0f}", hi <= lo, flat))
    # Group streams: no target was set; the ratios are reported for information.
    for ours in ("c", "rust"):
        for metric, what in (("stream_64", "64 B fragments/s"), ("stream_1k", "1 KiB fragments/s"),
                             ("cpu_us_per_frag", "CPU µs per fragment")):
            value, ma, mb = r(ours, "official-js", metric), m(ours, metric), m("official-js", metric)
            if value is not None:
                rows.append((f"{NAMES[ours]} group stream vs official JS ({what}; no target)",
                             f"{value:.2f}", f"{ma:,.1f} vs {mb:,.1f}", None, ""))
    add("our Python ≥ 5× official Python (fire-and-forget 64 B, msg/s)", "python", "official-python", "ff_64", 5)
    add("our Python ≥ 8× official Python (acked, blocking, msg/s)", "python", "official-python", "acked_seq", 8)
    add("our Python ≥ 5× official Python (acked, pipelined, msg/s)", "python", "official-python", "acked_pipe", 5)
    return rows


def markdown(summary, meta, runs):
    impls = [i for i in NAMES if i in summary]
    mach = meta["machine"]
    lines = [
        f"Run {meta['started_utc']}, mode {meta['mode']}, {meta['runs']} run(s) per implementation, "
        f"wall time {meta['wall_s']} s. Machine: {mach['nproc']} CPUs ({mach['cpu']}), "
        f"{mach['memory_gib']} GiB, Linux {mach['kernel']}; load average {mach.get('loadavg_1m', '?')} at the start "
        f"and {meta.get('loadavg_end', '?')} at the end (other work on the machine adds noise); "
        f"programs and emulator run under `{meta.get('nice', 'none')}`. "
        "Cells: median (min–max).",
        "",
        "| measurement | " + " | ".join(NAMES[i] for i in impls) + " |",
        "|---|" + "---:|" * len(impls),
    ]
    for metric, label, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(summary, i, metric, fmt) for i in impls) + " |")
    for step in meta["steps"]:
        lines.append(f"| RSS with {step} idle client(s) (MiB) | "
                     + " | ".join(_mib(summary, i, f"rss_kb_{step}") for i in impls) + " |")
    for step in meta["steps"]:
        lines.append(f"| threads with {step} idle client(s) | "
                     + " | ".join(cell(summary, i, f"threads_{step}", "{:,.0f}") for i in impls) + " |")
    lines += ["", "Targets (default C configuration): each ratio is taken within one round, then the median "
              "over the rounds. Last column: the same ratio for the C ABI in poll mode "
              "(`WPS_DISPATCH_POLL`, defaults otherwise), for information.", "",
              "| target | ratio | medians (ours vs theirs) | met | ratio, C poll mode |", "|---|---:|---:|:---:|---:|"]
    for text, value, medians, met, tuned in targets(summary, runs):
        verdict = "yes" if met else "n/a" if met is None else "**no**"
        lines.append(f"| {text} | {value} | {medians} | {verdict} | {tuned} |")
    if meta["errors"]:
        lines += ["", "Errors in this run:"] + [f"- {e}" for e in meta["errors"]]
    return "\n".join(lines) + "\n"


def _mib(summary, impl, metric):
    s = summary.get(impl, {}).get(metric)
    if not s:
        return "n/a"
    return f"{s['median'] / 1024:,.1f}"


def chart(summary, meta, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    impls = [i for i in NAMES if i in summary]
    panels = [
        ("Throughput (msg/s, log)", ["ff_64", "ff_4k", "acked_seq", "acked_pipe"],
         ["f&f 64 B", "f&f 4 KiB", "acked blocking", "acked pipelined"], True),
        ("Round trip (µs, log)", ["rtt_p50", "rtt_p99", "rtt_p999"], ["p50", "p99", "p99.9"], True),
        ("Memory per idle client (KiB)", ["rss_per_client_kb"], ["RSS / client"], False),
        ("Connect / recover (ms, log)", ["connect_ms", "recover_ms"], ["connect", "recover"], True),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    width = 0.8 / max(1, len(impls))
    for ax, (title, metrics, labels, log) in zip(axes.flat, panels):
        for k, impl in enumerate(impls):
            meds, lo, hi = [], [], []
            for metric in metrics:
                s = summary[impl].get(metric)
                med = s["median"] if s else 0
                meds.append(med)
                lo.append(med - s["min"] if s else 0)
                hi.append(s["max"] - med if s else 0)
            xs = [x + (k - (len(impls) - 1) / 2) * width for x in range(len(metrics))]
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=2, label=NAMES[impl])
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels(labels)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Web PubSub clients against wps-emulator ({meta['mode']}, median of {meta['runs']} run(s); "
                 f"bars: min–max), {meta['machine']['nproc']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


BEGIN, END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"


def update_benchmarks_md(path, table):
    """Replaces the generated section between the markers (the rest is hand-written)."""
    path = Path(path)
    if not path.exists():
        return
    text = path.read_text()
    if BEGIN not in text or END not in text:
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + "\n" + table + "\n![chart](bench/results/chart.png)\n" + END + tail)
