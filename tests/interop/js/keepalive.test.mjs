// Official JS client keep-alive: the emulator must answer {"type":"ping"} with {"type":"pong"}.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openClient, uniqueHub } from "./helpers.mjs";

const INTERVAL_MS = 250;
const TIMEOUT_MS = 1000; // the client closes the socket after this long without any inbound frame

test("pings are answered, so an idle client outlives keepAliveTimeoutInMs", async (t) => {
  const hub = uniqueHub("keepalive");
  const { client, inbox } = await openClient(t, hub, {
    userId: "idle",
    keepAliveIntervalInMs: INTERVAL_MS,
    keepAliveTimeoutInMs: TIMEOUT_MS,
  });
  const start = Date.now();
  // Wait for enough pongs to cover three keep-alive timeouts; only pongs keep the client alive.
  const pongsNeeded = Math.ceil((3 * TIMEOUT_MS) / INTERVAL_MS);
  await inbox.waitFor(
    () => inbox.frames.filter((f) => f.kind === "pong").length >= pongsNeeded,
    `${pongsNeeded} pongs`,
    3 * TIMEOUT_MS + 10_000,
  );
  assert.ok(Date.now() - start >= 2 * TIMEOUT_MS);
  const kinds = new Set(inbox.frames.map((f) => f.kind));
  assert.deepEqual([...kinds].sort(), ["connected", "pong"]);
  assert.equal(inbox.of("disconnected").length, 0);
  assert.equal(inbox.of("connected").length, 1);
  assert.equal(client._state, "Connected");
});
