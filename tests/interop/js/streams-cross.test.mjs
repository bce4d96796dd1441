// Group streams crossing between implementations, through the emulator: the official JS client
// 1.1.0 publishes (openGroupStream) and our engine receives (`wps stream --listen`, on the
// webpubsub-client Rust API); our engine publishes (`wps stream`) and the JS client's
// onGroupStream receives, also across a drop of our publisher's connection. WPS_BIN names the
// built `wps`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmulatorAdmin, JOIN_LEAVE, SEND_TO_GROUP, WAIT_MS, connectionString, openClient, serviceClient, uniqueHub, withTimeout } from "./helpers.mjs";

const admin = new EmulatorAdmin();

function wpsBin() {
  const bin = process.env.WPS_BIN;
  if (!bin) throw new Error("WPS_BIN is not set (run scripts/interop.sh)");
  return bin;
}

/** Runs `wps ARGS` with the emulator's connection string; its stdin stays open until closed. */
function wps(args) {
  const child = spawn(wpsBin(), args, {
    env: { PATH: process.env.PATH, WPS_CONNECTION_STRING: connectionString() },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const run = { child, stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (d) => {
    run.stdout += d;
    child.emit("output-changed");
  });
  child.stderr.setEncoding("utf8").on("data", (d) => {
    run.stderr += d;
    child.emit("output-changed");
  });
  child.stdin.on("error", () => {}); // a wps that exited early is reported by its exit code
  run.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return run;
}

/** Waits until `predicate(run)` returns something truthy; fails if wps exits first. */
function waitOutput(run, predicate, what) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const check = () => {
        const result = predicate(run);
        if (result) {
          run.child.off("output-changed", check);
          resolve(result);
        }
      };
      run.child.on("output-changed", check);
      run.exited.then(() => {
        check();
        reject(new Error(`wps exited before ${what}; stdout ${run.stdout}; stderr ${run.stderr}`));
      });
      check();
    }),
    `wps: ${what}`,
  );
}

function exitOf(run) {
  return withTimeout(run.exited, "wps to exit", WAIT_MS * 3).catch((e) => {
    run.child.kill("SIGKILL");
    throw e;
  });
}

/** `wps stream --listen --format json` on `group`; resolves once it joined. */
async function listen(t, hub, group, streams) {
  const run = wps(["stream", "--listen", "-v", "--hub", hub, "--role", JOIN_LEAVE, "--group", group, "--streams", String(streams), "--format", "json"]);
  t.after(() => run.child.kill("SIGKILL"));
  await waitOutput(run, (r) => r.stderr.includes(`wps: joined group ${group}`), `joined group ${group}`);
  return run;
}

/**
 * Our C library's receiver (examples/c/stream_listen.c, built by scripts/interop.sh and named by
 * WPS_C_STREAM_LISTEN) on `group`; it prints the same JSON lines as `wps stream --listen` and
 * exits after `streams` streams ended. Resolves once it joined.
 */
async function listenC(t, hub, group, streams) {
  const bin = process.env.WPS_C_STREAM_LISTEN;
  if (!bin) throw new Error("WPS_C_STREAM_LISTEN is not set (run scripts/interop.sh)");
  const { url } = await serviceClient(hub).getClientAccessToken({ userId: "c-reader", roles: [JOIN_LEAVE] });
  const child = spawn(bin, [url, group, String(streams)], { stdio: ["ignore", "pipe", "pipe"] });
  const run = { child, stdout: "", stderr: "" };
  for (const [stream, key] of [[child.stdout, "stdout"], [child.stderr, "stderr"]]) {
    stream.setEncoding("utf8").on("data", (d) => {
      run[key] += d;
      child.emit("output-changed");
    });
  }
  run.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  t.after(() => child.kill("SIGKILL"));
  await waitOutput(run, (r) => r.stderr.includes(`joined group ${group}`), `joined group ${group}`);
  return run;
}

/** The frames a listener printed, grouped by stream id, in arrival order. */
function framesByStream(run) {
  const byStream = new Map();
  for (const line of run.stdout.split("\n").filter(Boolean)) {
    const frame = JSON.parse(line);
    if (!byStream.has(frame.streamId)) byStream.set(frame.streamId, []);
    byStream.get(frame.streamId).push(frame);
  }
  return byStream;
}

/** Checks one stream as our receiver printed it: ids 1..n in order, then one clean terminal frame. */
function assertComplete(frames, streamId, expectedData, dataType) {
  assert.ok(frames, `no frame of stream ${streamId}`);
  const fragments = frames.filter((f) => !f.endOfStream);
  const terminal = frames.filter((f) => f.endOfStream);
  assert.deepEqual(fragments.map((f) => f.streamSequenceId), expectedData.map((_, i) => i + 1), `${streamId}: ids in order`);
  assert.deepEqual(fragments.map((f) => f.data), expectedData, `${streamId}: data`);
  for (const f of fragments) {
    assert.equal(f.dataType, dataType);
    assert.equal(f.fromUserId, "js-writer");
    assert.equal(f.error, null);
  }
  assert.equal(terminal.length, 1, `${streamId}: one terminal frame`);
  assert.equal(frames.at(-1), terminal[0], `${streamId}: the terminal frame comes last`);
  assert.equal(terminal[0].error, null, `${streamId}: ended cleanly`);
  assert.equal(terminal[0].streamSequenceId, expectedData.length + 1);
}

/** Collects every stream the client's onGroupStream reports, each as {streamId, messages[], end}. */
function collectStreams(client) {
  const streams = new Map();
  const done = new Map();
  const finished = (id) => {
    if (!done.has(id)) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      done.set(id, { promise, resolve });
    }
    return done.get(id);
  };
  client.onGroupStream(async (stream) => {
    const record = { streamId: stream.streamId, messages: [], end: null };
    streams.set(stream.streamId, record);
    try {
      for await (const m of stream) record.messages.push(m);
      record.end = { ok: true };
    } catch (error) {
      record.end = { ok: false, error };
    }
    finished(stream.streamId).resolve(record);
  });
  return {
    streams,
    ended: (id, timeoutMs = WAIT_MS) => withTimeout(finished(id).promise, `end of stream ${id}`, timeoutMs),
  };
}

/** The stream sequence ids of the stream fragments the JS client's connection received. */
function wireIds(inbox, streamId) {
  return inbox
    .of("group-message")
    .filter((e) => e.message.stream?.streamId === streamId && !e.message.stream.endOfStream)
    .map((e) => e.message.stream.streamSequenceId);
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i + 1));

test("JS publishes text, json and binary streams; our receiver gets each complete and in order", async (t) => {
  const hub = uniqueHub("x_js_to_ours");
  const rx = await listen(t, hub, "g", 3);
  const tx = await openClient(t, hub, { userId: "js-writer" });

  const text = await tx.client.openGroupStream("g", { streamId: "text" });
  for (const chunk of ["hello", " ", "world"]) await text.write(chunk, "text");
  await text.end();
  const json = await tx.client.openGroupStream("g", { streamId: "json" });
  await json.write({ n: 1, list: [1, 2] }, "json");
  await json.write("a string", "json");
  await json.write(42, "json");
  await json.end();
  const binary = await tx.client.openGroupStream("g", { streamId: "binary" });
  await binary.write(new Uint8Array([9, 8, 7, 6]).buffer, "binary");
  await binary.write(new Uint8Array([0, 255]).buffer, "binary");
  await binary.end();

  const exit = await exitOf(rx);
  assert.equal(exit.code, 0, rx.stderr);
  const byStream = framesByStream(rx);
  assertComplete(byStream.get("text"), "text", ["hello", " ", "world"], "text");
  assertComplete(byStream.get("json"), "json", [{ n: 1, list: [1, 2] }, "a string", 42], "json");
  assertComplete(byStream.get("binary"), "binary", ["CQgHBg==", "AP8="], "binary");
  for (const frames of byStream.values()) for (const f of frames) assert.equal(f.group, "g");
});

test("two JS streams written in parallel reach our receiver apart, each complete and in order", async (t) => {
  const hub = uniqueHub("x_js_parallel");
  const rx = await listen(t, hub, "g", 2);
  const tx = await openClient(t, hub, { userId: "js-writer" });
  const a = await tx.client.openGroupStream("g", { streamId: "A" });
  const b = await tx.client.openGroupStream("g", { streamId: "B" });
  const count = 50;
  // Both writers at once, each awaiting only its own writes.
  await Promise.all([
    (async () => {
      for (let i = 1; i <= count; i++) await a.write(`A${i}`, "text");
      await a.end();
    })(),
    (async () => {
      for (let i = 1; i <= count; i++) await b.write(`B${i}`, "text");
      await b.end();
    })(),
  ]);
  const exit = await exitOf(rx);
  assert.equal(exit.code, 0, rx.stderr);
  const byStream = framesByStream(rx);
  assertComplete(byStream.get("A"), "A", range(count, (i) => `A${i}`), "text");
  assertComplete(byStream.get("B"), "B", range(count, (i) => `B${i}`), "text");
  // They did interleave on the wire: otherwise this test would not show the routing.
  const order = rx.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l).streamId);
  assert.ok(order.indexOf("B") < order.lastIndexOf("A"), "the two streams interleaved");
});

test("a JS abort reaches our receiver as a UserError terminal frame with its code", async (t) => {
  const hub = uniqueHub("x_js_abort");
  const rx = await listen(t, hub, "g", 1);
  const tx = await openClient(t, hub, { userId: "js-writer" });
  const writer = await tx.client.openGroupStream("g", { streamId: "ab" });
  await writer.write("partial-1", "text");
  await writer.write("partial-2", "text");
  await writer.abort({ message: "stream failed", userErrorCode: "APP_42" });
  const exit = await exitOf(rx);
  assert.equal(exit.code, 0, rx.stderr);
  const frames = framesByStream(rx).get("ab");
  assert.deepEqual(frames.filter((f) => !f.endOfStream).map((f) => [f.streamSequenceId, f.data]), [[1, "partial-1"], [2, "partial-2"]]);
  const end = frames.at(-1);
  assert.equal(end.endOfStream, true);
  assert.equal(end.streamSequenceId, 3);
  assert.deepEqual(end.error, { name: "UserError", message: "stream failed", userErrorCode: "APP_42" });
});

test("wps stream publishes; the JS onGroupStream receiver gets every fragment and the clean end", async (t) => {
  const hub = uniqueHub("x_ours_to_js");
  const rx = await openClient(t, hub, { userId: "js-reader" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const base = ["-v", "--hub", hub, "--user", "cli-writer", "--role", SEND_TO_GROUP, "--group", "g"];

  const lines = range(100, (i) => `line ${i}`);
  const text = wps(["stream", ...base, "--stream-id", "text", "--idle-timeout-ms", "60000"]);
  text.child.stdin.end(lines.join("\n") + "\n");
  let exit = await exitOf(text);
  assert.equal(exit.code, 0, text.stderr);
  assert.equal(text.stdout, "stream text open\nstream text ended (100 fragments)\n");
  let record = await reader.ended("text");
  assert.equal(record.end.ok, true, String(record.end.error?.name));
  assert.deepEqual(record.messages.map((m) => m.data), lines);
  for (const m of record.messages) assert.equal(m.fromUserId, "cli-writer");

  const json = wps(["stream", ...base, "--stream-id", "json", "--data-type", "json"]);
  json.child.stdin.end('{"n":1}\n[true,null]\n"s"\n');
  exit = await exitOf(json);
  assert.equal(exit.code, 0, json.stderr);
  record = await reader.ended("json");
  assert.equal(record.end.ok, true);
  assert.deepEqual(record.messages.map((m) => m.data), [{ n: 1 }, [true, null], "s"]);

  // A file in fixed-size binary chunks.
  const dir = mkdtempSync(join(tmpdir(), "wps-stream-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "data.bin");
  const bytes = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7) % 256);
  writeFileSync(file, bytes);
  const bin = wps(["stream", ...base, "--stream-id", "bin", "--chunk-size", "1024", "--file", file]);
  bin.child.stdin.end();
  exit = await exitOf(bin);
  assert.equal(exit.code, 0, bin.stderr);
  record = await reader.ended("bin");
  assert.equal(record.end.ok, true);
  assert.equal(record.messages.length, 10);
  assert.deepEqual(record.messages.map((m) => m.data.byteLength), [...Array(9).fill(1024), 784]);
  const joined = Buffer.concat(record.messages.map((m) => Buffer.from(m.data)));
  assert.ok(joined.equals(Buffer.from(bytes)), "the bytes arrive unchanged");
});

test("a wps stream published across a drop of its connection arrives complete, in order, once each", async (t) => {
  const hub = uniqueHub("x_ours_drop");
  const rx = await openClient(t, hub, { userId: "js-reader" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const tx = wps(["stream", "-v", "--hub", hub, "--user", "cli-writer", "--role", SEND_TO_GROUP, "--group", "g", "--stream-id", "d"]);
  t.after(() => tx.child.kill("SIGKILL"));
  await waitOutput(tx, (r) => r.stdout.includes("stream d open"), "the stream to open");
  const total = 600;
  const lines = range(total, (i) => `fragment ${i}`);
  tx.child.stdin.write(lines.slice(0, 100).join("\n") + "\n");
  await rx.inbox.waitFor(() => wireIds(rx.inbox, "d").length >= 1, "the first fragment");
  const writer = (await admin.connections(hub)).find((c) => c.userId === "cli-writer");
  assert.ok(writer, "the publisher's connection is listed");
  // The rest goes in while the connection is dropped and recovers: written fragments that
  // were not acknowledged are sent again after the recovery.
  tx.child.stdin.write(lines.slice(100, 400).join("\n") + "\n");
  await admin.drop(hub, writer.connectionId);
  tx.child.stdin.end(lines.slice(400).join("\n") + "\n");

  const exit = await exitOf(tx);
  assert.equal(exit.code, 0, tx.stderr);
  assert.match(tx.stdout, /stream d ended \(600 fragments\)/);
  const record = await reader.ended("d");
  assert.equal(record.end.ok, true, String(record.end.error?.name));
  assert.deepEqual(record.messages.map((m) => m.data), lines, "every fragment, in order, once");
  assert.deepEqual(wireIds(rx.inbox, "d"), range(total, (i) => i), "no fragment reached the JS client twice");
  // Recovered (same connection), not reconnected: a new connection would have failed the stream.
  assert.match(tx.stderr, /client \d+: recovered/, "the publisher's connection was dropped and recovered");
  assert.equal(tx.stderr.match(/connected as /g)?.length, 1, tx.stderr);
});

test("a quiet JS stream closed by the service's idle timeout reaches our receiver as IdleTimeout", async (t) => {
  const hub = uniqueHub("x_js_idle");
  const rx = await listen(t, hub, "g", 1);
  const tx = await openClient(t, hub, { userId: "js-writer" });
  // The JS writer sends no keep-alives, so the service closes its quiet stream.
  const writer = await tx.client.openGroupStream("g", { streamId: "quiet", idleTimeoutInMs: 300 });
  const writerError = new Promise((resolve) => writer.onError(resolve));
  await writer.write("only", "text");
  assert.equal((await withTimeout(writerError, "the JS writer's onError")).name, "IdleTimeout");
  const exit = await exitOf(rx);
  assert.equal(exit.code, 0, rx.stderr);
  const frames = framesByStream(rx).get("quiet");
  assert.deepEqual(frames.filter((f) => !f.endOfStream).map((f) => f.data), ["only"]);
  assert.equal(frames.at(-1).endOfStream, true);
  assert.equal(frames.at(-1).error?.name, "IdleTimeout");
});

test("a quiet wps stream outlives its idle timeout (keep-alives) and the JS reader gets it whole", async (t) => {
  const hub = uniqueHub("x_ours_quiet");
  const rx = await openClient(t, hub, { userId: "js-reader" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const tx = wps(["stream", "-v", "--hub", hub, "--user", "cli-writer", "--role", SEND_TO_GROUP, "--group", "g", "--stream-id", "q", "--idle-timeout-ms", "300"]);
  t.after(() => tx.child.kill("SIGKILL"));
  await waitOutput(tx, (r) => r.stdout.includes("stream q open"), "the stream to open");
  tx.child.stdin.write("before\n");
  await rx.inbox.waitFor(() => wireIds(rx.inbox, "q").length >= 1, "the first fragment");
  // Quiet for more than three idle timeouts: what is being tested is that time passes.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  tx.child.stdin.end("after\n");
  const exit = await exitOf(tx);
  assert.equal(exit.code, 0, tx.stderr);
  const record = await reader.ended("q");
  assert.equal(record.end.ok, true, String(record.end.error?.name));
  assert.deepEqual(record.messages.map((m) => m.data), ["before", "after"]);
});

test("JS publishes text, json and binary streams and aborts one; our C library's receiver gets each complete, in order, with its end", async (t) => {
  const hub = uniqueHub("x_js_to_c");
  const rx = await listenC(t, hub, "g", 4);
  const tx = await openClient(t, hub, { userId: "js-writer" });
  const text = await tx.client.openGroupStream("g", { streamId: "text" });
  const lines = range(200, (i) => `line "${i}"\n`);
  for (const line of lines) await text.write(line, "text");
  await text.end();
  const json = await tx.client.openGroupStream("g", { streamId: "json" });
  await json.write({ n: 1, list: [1, 2] }, "json");
  await json.write("a string", "json");
  await json.end();
  const binary = await tx.client.openGroupStream("g", { streamId: "binary" });
  await binary.write(new Uint8Array([9, 8, 7, 6]).buffer, "binary");
  await binary.write(new Uint8Array([0, 255]).buffer, "binary");
  await binary.end();
  const aborted = await tx.client.openGroupStream("g", { streamId: "ab" });
  await aborted.write("partial", "text");
  await aborted.abort({ message: "stream failed", userErrorCode: "APP_7" });

  const exit = await exitOf(rx);
  assert.equal(exit.code, 0, rx.stderr);
  const byStream = framesByStream(rx);
  assertComplete(byStream.get("text"), "text", lines, "text");
  assertComplete(byStream.get("json"), "json", [{ n: 1, list: [1, 2] }, "a string"], "json");
  assertComplete(byStream.get("binary"), "binary", ["CQgHBg==", "AP8="], "binary");
  const ab = byStream.get("ab");
  assert.deepEqual(ab.filter((f) => !f.endOfStream).map((f) => [f.streamSequenceId, f.data]), [[1, "partial"]]);
  assert.deepEqual(ab.at(-1).error, { name: "UserError", message: "stream failed", userErrorCode: "APP_7" });
  assert.equal(ab.at(-1).streamSequenceId, 2);
});
