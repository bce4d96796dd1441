// Bench program for the official JS client (@azure/web-pubsub-client):
//   node bench.mjs official-js SCENARIO [key=value ...]
// SCENARIO is msg, idle or connect, run exactly as the Rust, C and Python bench programs do,
// reliable (a paced rate sweep on the reliable protocol; see BENCHMARKS.md), or stream (group
// stream throughput, as the Rust bench program's); one JSON line per measurement on stdout.
// Environment: BENCH_URL (client access URL), BENCH_DROP_CMD (drop helper, connection id appended).
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { WebPubSubClient, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol } from "@azure/web-pubsub-client";

const GROUP = "g";
const RTT_GROUP = "rtt";
const RECOVERY_GROUP = "rec";
const WARM_UP = 200;
const WAIT_MS = 60_000;
const IMPL = "official-js";

function emit(metric, value, unit) {
  process.stdout.write(JSON.stringify({ impl: IMPL, metric, value, unit }) + "\n");
}

function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function procStatus() {
  if (globalThis.gc) globalThis.gc(); // retained memory, not garbage waiting for a collection
  const text = readFileSync("/proc/self/status", "utf8");
  const field = (name) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))[1]);
  return [field("VmRSS"), field("Threads")];
}

const nowNs = () => process.hrtime.bigint(); // CLOCK_MONOTONIC

class Counter {
  constructor() {
    this.count = 0;
    this.lastNs = 0n;
    this.waiters = [];
  }
  hit() {
    this.lastNs = nowNs();
    this.count += 1;
    this.waiters = this.waiters.filter((w) => {
      if (this.count < w.target) return true;
      clearTimeout(w.timer);
      w.resolve();
      return false;
    });
  }
  waitFor(target, what, timeoutMs = WAIT_MS) {
    if (this.count >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { target, resolve };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${what}: ${this.count} of ${target} after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}

class Conn {
  static async open(url, reliable) {
    const c = new Conn();
    c.received = new Counter();
    c.connectionId = null;
    c.client = new WebPubSubClient(url, {
      protocol: reliable ? WebPubSubJsonReliableProtocol() : WebPubSubJsonProtocol(),
    });
    c.client.on("group-message", () => c.received.hit());
    c.client.on("connected", (e) => {
      c.connectionId = e.connectionId;
    });
    await c.client.start();
    return c;
  }
  join(group) {
    return this.client.joinGroup(group);
  }
  send(group, data, acked) {
    return this.client.sendToGroup(group, data, "text", { fireAndForget: !acked });
  }
  close() {
    this.client.stop();
  }
}


async function pipelined(conn, data, count, window) {
  const inflight = new Set();
  for (let i = 0; i < count; i++) {
    if (inflight.size >= window) await Promise.race(inflight);
    const p = conn.send(GROUP, data, true).then(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
}

async function scenarioMsg(url, p) {
  const sub = await Conn.open(url, false);
  await sub.join(GROUP);
  const pub = await Conn.open(url, false);
  const small = "x".repeat(64);
  const large = "x".repeat(4096);
  for (let i = 0; i < WARM_UP; i++) await pub.send(GROUP, small, false);
  await sub.received.waitFor(WARM_UP, "warm-up");

  for (const [metric, data, count] of [["ff_64", small, p.ff_count], ["ff_4k", large, p.ff4k_count]]) {
    const base = sub.received.count;
    const t = performance.now();
    for (let i = 0; i < count; i++) await pub.send(GROUP, data, false);
    await sub.received.waitFor(base + count, metric);
    emit(metric, count / ((performance.now() - t) / 1000), "msg/s");
  }

  const base = sub.received.count;
  let t = performance.now();
  for (let i = 0; i < p.ack_count; i++) await pub.send(GROUP, small, true);
  emit("acked_seq", p.ack_count / ((performance.now() - t) / 1000), "msg/s");
  t = performance.now();
  await pipelined(pub, small, p.pipe_count, p.window);
  emit("acked_pipe", p.pipe_count / ((performance.now() - t) / 1000), "msg/s");
  await sub.received.waitFor(base + p.ack_count + p.pipe_count, "acked deliveries");

  await pub.join(RTT_GROUP);
  const samples = [];
  for (let i = 0; i < p.rtt_count; i++) {
    const started = nowNs();
    await pub.send(RTT_GROUP, small, false);
    await pub.received.waitFor(i + 1, "round trip");
    samples.push(Number(pub.received.lastNs - started) / 1e3);
  }
  samples.sort((a, b) => a - b);
  emit("rtt_p50", percentile(samples, 50), "us");
  emit("rtt_p99", percentile(samples, 99), "us");
  emit("rtt_p999", percentile(samples, 99.9), "us");
  pub.close();
  sub.close();
}

async function scenarioIdle(url, p) {
  let [rss, threads] = procStatus();
  emit("rss_kb_0", rss, "KiB");
  emit("threads_0", threads, "threads");
  const clients = [];
  for (const step of p.steps) {
    while (clients.length < step) clients.push(await Conn.open(url, true));
    [rss, threads] = procStatus();
    emit(`rss_kb_${step}`, rss, "KiB");
    emit(`threads_${step}`, threads, "threads");
  }
  for (const c of clients) c.close();
}

function dropConnection(connectionId) {
  const out = execSync(`${process.env.BENCH_DROP_CMD} '${connectionId}'`, { encoding: "utf8" });
  return BigInt(out.trim());
}

async function scenarioConnect(url, p) {
  let samples = [];
  for (let i = 0; i < p.connect_count; i++) {
    const t = performance.now();
    const c = await Conn.open(url, true);
    samples.push(performance.now() - t);
    c.close();
  }
  samples.sort((a, b) => a - b);
  emit("connect_ms", percentile(samples, 50), "ms");

  const target = await Conn.open(url, true);
  await target.join(RECOVERY_GROUP);
  const sender = await Conn.open(url, true);
  samples = [];
  for (let i = 0; i < p.recover_count; i++) {
    if (!target.connectionId) throw new Error("the client reports no connection id");
    const droppedNs = dropConnection(target.connectionId);
    await sender.send(RECOVERY_GROUP, "x".repeat(64), true);
    await target.received.waitFor(i + 1, "recovery", 30_000);
    samples.push(Number(target.received.lastNs - droppedNs) / 1e6);
  }
  samples.sort((a, b) => a - b);
  emit("recover_ms", percentile(samples, 50), "ms");
  sender.close();
  target.close();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The default reliable protocol: the official client acknowledges sequence ids once a second,
// so the service's 1,000-message window decides how fast it may receive. A paced sweep: for
// each rate, a fresh reliable subscriber gets `rel_seconds` of 64-byte fire-and-forget
// messages at that rate; it is cut off when it sees `disconnected` (1008 on overflow) or its
// connection id changes. Reports the highest rate without a cut-off and the lowest with one.
async function scenarioReliable(url, p) {
  const pub = await Conn.open(url, false);
  const small = "x".repeat(64);
  let best = 0;
  let firstCut = 0;
  let cutoffs = 0;
  for (const rate of p.rel_rates) {
    const sub = await Conn.open(url, true);
    let cut = false;
    sub.client.on("disconnected", () => {
      cut = true;
    });
    const group = `rel${rate}`;
    await sub.join(group);
    const id = sub.connectionId;
    const count = Math.round(rate * p.rel_seconds);
    const tick = 20; // ms per batch
    const perTick = Math.max(1, Math.round((rate * tick) / 1000));
    const t = performance.now();
    for (let sent = 0; sent < count; ) {
      const n = Math.min(perTick, count - sent);
      for (let i = 0; i < n; i++) await pub.send(group, small, false);
      sent += n;
      const due = t + (sent / rate) * 1000;
      const ahead = due - performance.now();
      if (ahead > 0) await sleep(ahead);
    }
    await sub.received.waitFor(count, "reliable sweep", 5_000).catch(() => {});
    cut = cut || sub.connectionId !== id || sub.received.count < count;
    sub.close();
    if (cut) {
      cutoffs += 1;
      if (!firstCut) firstCut = rate;
      break;
    }
    best = rate;
  }
  emit("rel_max_rate", best, "msg/s");
  emit("rel_cutoff_rate", firstCut, "msg/s");
  emit("rel_cutoffs", cutoffs, "closes");
  pub.close();
}

// One openGroupStream writer, one onGroupStream reader, both on json.webpubsub.azure.v1: fragments
// per second from the first write until the reader saw the last fragment, for 64-byte and 1 KiB
// fragments, after a 200-fragment warm-up stream; each size over stream_repeat streams one after
// the other, each waited for to its end (as the Rust bench program does).
async function scenarioStream(url, p) {
  const STREAM_GROUP = "s";
  const sub = await Conn.open(url, false);
  const fragments = new Counter();
  const ends = new Counter();
  let failed = null;
  sub.client.onGroupStream(async (stream) => {
    try {
      for await (const _ of stream) fragments.hit();
    } catch (error) {
      failed = failed ?? error;
    }
    ends.hit();
  });
  await sub.join(STREAM_GROUP);
  const pub = await Conn.open(url, false);
  const publish = async (data, count) => {
    const writer = await pub.client.openGroupStream(STREAM_GROUP);
    for (let i = 0; i < count; i++) await writer.write(data, "text");
    await writer.end();
  };
  await publish("x".repeat(64), WARM_UP);
  await ends.waitFor(1, "warm-up stream");
  let streams = 1;
  for (const [metric, size, count] of [["stream_64", 64, p.stream_count], ["stream_1k", 1024, p.stream1k_count]]) {
    const data = "x".repeat(size);
    let busyNs = 0n;
    for (let r = 0; r < p.stream_repeat; r++) {
      const base = fragments.count;
      const t = nowNs();
      await publish(data, count);
      await fragments.waitFor(base + count, metric);
      busyNs += fragments.lastNs - t;
      streams += 1;
      await ends.waitFor(streams, "the end of the stream");
    }
    emit(metric, (count * p.stream_repeat) / (Number(busyNs) / 1e9), "fragments/s");
  }
  if (failed) throw new Error(`a stream ended with ${failed.name ?? failed}`);
  pub.close();
  sub.close();
}

const DEFAULTS = {
  ff_count: 20000, ff4k_count: 5000, ack_count: 2000, pipe_count: 10000, window: 256, rtt_count: 2000,
  steps: "1,100,1000", connect_count: 20, recover_count: 5,
  rel_rates: "250,500,1000,1500,2000,4000,8000", rel_seconds: 3,
  stream_count: 20000, stream1k_count: 10000, stream_repeat: 5,
};

async function main(argv) {
  const [impl, scenario, ...rest] = argv;
  if (impl !== IMPL) throw new Error(`usage: node bench.mjs ${IMPL} msg|idle|connect|reliable|stream [key=value ...]`);
  const raw = { ...DEFAULTS };
  for (const arg of rest) {
    const i = arg.indexOf("=");
    const key = arg.slice(0, i);
    if (i < 0 || !(key in DEFAULTS)) throw new Error(`unknown parameter ${arg}`);
    raw[key] = arg.slice(i + 1);
  }
  const p = {};
  const lists = ["steps", "rel_rates"];
  for (const [k, v] of Object.entries(raw)) p[k] = lists.includes(k) ? String(v).split(",").map(Number) : Number(v);
  const run = { msg: scenarioMsg, idle: scenarioIdle, connect: scenarioConnect, reliable: scenarioReliable, stream: scenarioStream }[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario} (msg, idle, connect, reliable, stream)`);
  await run(process.env.BENCH_URL, p);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench.mjs: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
