// Official JS client: recovery after a transport drop, reconnect after session expiry.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EmulatorAdmin,
  WAIT_MS,
  holdRecovery,
  openClient,
  uniqueHub,
  waitRejoined,
  watchNoRecovery,
  withTimeout,
} from "./helpers.mjs";

const admin = new EmulatorAdmin();

test("recovery after :drop keeps the connection id, loses and duplicates nothing", async (t) => {
  const hub = uniqueHub("recovery");
  const rx = await openClient(t, hub, { userId: "receiver" });
  const tx = await openClient(t, hub, { userId: "sender" });
  await rx.client.joinGroup("seq");
  const firstId = rx.inbox.of("connected")[0].connectionId;
  const gate = holdRecovery(rx.client);

  const before = Array.from({ length: 10 }, (_, i) => `m${i + 1}`);
  const during = Array.from({ length: 20 }, (_, i) => `m${i + 11}`);
  for (const payload of before) await tx.client.sendToGroup("seq", payload, "text");
  await rx.inbox.waitEvent("group-message", before.length);

  await admin.drop(hub, firstId);
  await withTimeout(gate.attempted, "recovery attempt after :drop");
  // Transport down, recovery held: the emulator acks every send and must buffer it.
  for (const payload of during) await tx.client.sendToGroup("seq", payload, "text");
  gate.release();

  await tx.client.sendToGroup("seq", "end", "text");
  await rx.inbox.waitEvent("group-message", 1, (e) => e.message.data === "end", WAIT_MS * 2);
  assert.equal(gate.recovered, 1);
  const received = rx.inbox.of("group-message").map((e) => e.message.data);
  assert.deepEqual(received, [...before, ...during, "end"]);
  const sequenceIds = rx.inbox.of("group-message").map((e) => e.message.sequenceId);
  assert.deepEqual(sequenceIds, sequenceIds.map((_, i) => sequenceIds[0] + i));
  assert.equal(rx.inbox.of("connected").length, 1);
  assert.equal(rx.inbox.of("disconnected").length, 0);
  const listed = await admin.connections(hub);
  assert.deepEqual(listed.find((c) => c.connectionId === firstId).groups, ["seq"]);
});

test(":expire makes recovery fail with 1008, then a new connection id and rejoin", async (t) => {
  const hub = uniqueHub("expire");
  const a = await openClient(t, hub, { userId: "expiring" });
  await a.client.joinGroup("g1");
  await a.client.joinGroup("g2");
  const firstId = a.inbox.of("connected")[0].connectionId;
  const noRecoveryCodes = watchNoRecovery(a.client);
  await admin.expire(hub, firstId);
  const [disconnected] = await a.inbox.waitEvent("disconnected", 1, () => true, WAIT_MS * 2);
  assert.equal(disconnected.connectionId, firstId);
  const second = (await a.inbox.waitEvent("connected", 2, () => true, WAIT_MS * 2))[1];
  assert.notEqual(second.connectionId, firstId);
  assert.equal(second.userId, "expiring");
  await waitRejoined(a.inbox, 2);
  const listed = await admin.connections(hub);
  assert.equal(listed.find((c) => c.connectionId === firstId), undefined);
  assert.deepEqual(listed.find((c) => c.connectionId === second.connectionId).groups.sort(), ["g1", "g2"]);
  // the recovery attempt was answered with 101 + close 1008 (not a failed handshake)
  assert.deepEqual(noRecoveryCodes, [1008]);
});

test(":close with 1008 is not recovered; the client reconnects", async (t) => {
  const hub = uniqueHub("close1008");
  const a = await openClient(t, hub, { userId: "policy" });
  const gate = holdRecovery(a.client);
  const noRecoveryCodes = watchNoRecovery(a.client);
  const firstId = a.inbox.of("connected")[0].connectionId;
  await admin.close(hub, firstId, 1008, "policy test");
  const [disconnected] = await a.inbox.waitEvent("disconnected");
  assert.equal(disconnected.message?.message, "policy test");
  const second = (await a.inbox.waitEvent("connected", 2, () => true, WAIT_MS * 2))[1];
  assert.notEqual(second.connectionId, firstId);
  assert.equal(gate.attempts, 0);
  assert.deepEqual(noRecoveryCodes, [1008]);
});

test(":close with another code is recovered with the same connection id", async (t) => {
  const hub = uniqueHub("close4000");
  const a = await openClient(t, hub, { userId: "going-away" });
  await a.client.joinGroup("g");
  const gate = holdRecovery(a.client);
  gate.release();
  const firstId = a.inbox.of("connected")[0].connectionId;
  await admin.close(hub, firstId, 4000, "transient");
  await withTimeout(gate.attempted, "recovery attempt after close 4000");
  await a.service.group("g").sendToAll("after close", { contentType: "text/plain" });
  await a.inbox.waitEvent("group-message", 1, (e) => e.message.data === "after close", WAIT_MS * 2);
  assert.equal(gate.recovered, 1);
  assert.equal(a.inbox.of("disconnected").length, 0);
  assert.equal(a.inbox.of("connected").length, 1);
  assert.deepEqual((await admin.connections(hub)).map((c) => c.connectionId), [firstId]);
});
