// The `wps` CLI together with the official JS client: `wps pub` -> a JS client receives it;
// a JS client sends -> `wps sub --count` prints it. WPS_BIN names the built `wps`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { JOIN_LEAVE, SEND_TO_GROUP, WAIT_MS, connectionString, openClient, uniqueHub, withTimeout } from "./helpers.mjs";

function wpsBin() {
  const bin = process.env.WPS_BIN;
  if (!bin) throw new Error("WPS_BIN is not set (run scripts/interop.sh)");
  return bin;
}

/** Runs `wps ARGS` with the emulator's connection string; resolves once it exited. */
function wps(args) {
  const child = spawn(wpsBin(), args, {
    env: { PATH: process.env.PATH, WPS_CONNECTION_STRING: connectionString() },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run = { child, stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (d) => (run.stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d) => {
    run.stderr += d;
    child.emit("stderr-changed");
  });
  run.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return run;
}

/** Waits until the run's stderr contains `text`. */
function stderrContains(run, text) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const check = () => {
        if (run.stderr.includes(text)) resolve();
      };
      run.child.on("stderr-changed", check);
      run.child.on("exit", () => {
        if (!run.stderr.includes(text)) reject(new Error(`wps exited before printing ${text}: ${run.stderr}`));
      });
      check();
    }),
    `wps stderr: ${text}`,
  );
}

function exitOf(run) {
  return withTimeout(run.exited, "wps to exit", WAIT_MS * 3).catch((e) => {
    run.child.kill("SIGKILL");
    throw e;
  });
}

test("wps pub: an official JS client receives text and JSON with the publisher's user id", async (t) => {
  const hub = uniqueHub("clipub");
  const rx = await openClient(t, hub, { userId: "js-reader" });
  await rx.client.joinGroup("news");

  const pub = (extra) => wps(["pub", "-v", "--hub", hub, "--user", "cli-writer", "--role", SEND_TO_GROUP, "--group", "news", ...extra]);
  let run = pub(["hello from wps"]);
  let exit = await exitOf(run);
  assert.equal(exit.code, 0, run.stderr);
  assert.match(run.stdout, /^ack \d+\n?$/);
  run = pub(["--data-type", "json", '{"n":[1,2],"ok":true}']);
  exit = await exitOf(run);
  assert.equal(exit.code, 0, run.stderr);

  const got = (await rx.inbox.waitEvent("group-message", 2)).map((e) => e.message);
  assert.equal(got[0].group, "news");
  assert.equal(got[0].fromUserId, "cli-writer");
  assert.equal(got[0].dataType, "text");
  assert.equal(got[0].data, "hello from wps");
  assert.equal(got[1].dataType, "json");
  assert.deepEqual(got[1].data, { n: [1, 2], ok: true });
});

test("wps sub --count: prints what an official JS client sends, then exits 0", async (t) => {
  const hub = uniqueHub("clisub");
  const sub = wps(["sub", "-v", "--hub", hub, "--role", JOIN_LEAVE, "--group", "chat", "--count", "3", "--format", "json"]);
  t.after(() => sub.child.kill("SIGKILL"));
  await stderrContains(sub, "wps: joined group chat");

  const tx = await openClient(t, hub, { userId: "js-writer" });
  await tx.client.sendToGroup("chat", "hi from js", "text");
  await tx.client.sendToGroup("chat", { from: "js", n: 2 }, "json");
  await tx.client.sendToGroup("chat", new Uint8Array([0, 1, 255]).buffer, "binary");

  const exit = await exitOf(sub);
  assert.equal(exit.code, 0, sub.stderr);
  const lines = sub.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 3, sub.stdout);
  const base = { group: "chat", fromUserId: "js-writer" };
  assert.deepEqual({ ...lines[0], sequenceId: 0 }, { ...base, dataType: "text", data: "hi from js", sequenceId: 0 });
  assert.deepEqual({ ...lines[1], sequenceId: 0 }, { ...base, dataType: "json", data: { from: "js", n: 2 }, sequenceId: 0 });
  assert.deepEqual({ ...lines[2], sequenceId: 0 }, { ...base, dataType: "binary", data: "AAH/", sequenceId: 0 });
  assert.ok(lines[0].sequenceId >= 1 && lines[1].sequenceId > lines[0].sequenceId && lines[2].sequenceId > lines[1].sequenceId);
});
