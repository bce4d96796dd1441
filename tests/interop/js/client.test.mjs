// Official JS client against the emulator: connect, groups, data types, noEcho, acks, roles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SendMessageError } from "@azure/web-pubsub-client";
import { EmulatorAdmin, JOIN_LEAVE, SEND_TO_GROUP, openClient, uniqueHub } from "./helpers.mjs";

const admin = new EmulatorAdmin();
const noRetry = { messageRetryOptions: { maxRetries: 0 } };

test("connected event carries connection id and user id", async (t) => {
  const hub = uniqueHub("connected");
  const { client, inbox } = await openClient(t, hub, { userId: "alice" });
  const [connected] = inbox.of("connected");
  assert.equal(connected.userId, "alice");
  assert.ok(connected.connectionId);
  const listed = await admin.connections(hub);
  assert.deepEqual(listed.map((c) => c.connectionId), [connected.connectionId]);
  assert.equal(listed[0].userId, "alice");
  assert.equal(listed[0].subprotocol, "json.reliable.webpubsub.azure.v1");
  const frame = inbox.frames.find((f) => f.kind === "connected");
  assert.ok(frame.reconnectionToken, "reliable connected frame has a reconnection token");
  void client;
});

test("join, send text/json/binary to a group and receive each", async (t) => {
  const hub = uniqueHub("datatypes");
  const rx = await openClient(t, hub, { userId: "receiver" });
  const tx = await openClient(t, hub, { userId: "sender" });
  await rx.client.joinGroup("g1");
  const listed = await admin.connections(hub);
  const receiverId = rx.inbox.of("connected")[0].connectionId;
  assert.deepEqual(listed.find((c) => c.connectionId === receiverId).groups, ["g1"]);

  const binary = new Uint8Array([0, 1, 254, 255]).buffer;
  const results = [
    await tx.client.sendToGroup("g1", "hello text", "text"),
    await tx.client.sendToGroup("g1", { n: 1, nested: { ok: true } }, "json"),
    await tx.client.sendToGroup("g1", binary, "binary"),
  ];
  for (const r of results) assert.equal(r.isDuplicated, false);
  const got = await rx.inbox.waitEvent("group-message", 3);
  const byType = Object.fromEntries(got.map((e) => [e.message.dataType, e.message]));
  assert.equal(byType.text.data, "hello text");
  assert.deepEqual(byType.json.data, { n: 1, nested: { ok: true } });
  assert.deepEqual(new Uint8Array(byType.binary.data), new Uint8Array([0, 1, 254, 255]));
  for (const m of got.map((e) => e.message)) {
    assert.equal(m.group, "g1");
    assert.equal(m.fromUserId, "sender");
    assert.ok(m.sequenceId >= 1);
  }
});

test("noEcho suppresses only the sender's own copy", async (t) => {
  const hub = uniqueHub("noecho");
  const a = await openClient(t, hub, { userId: "a" });
  const b = await openClient(t, hub, { userId: "b" });
  await a.client.joinGroup("g");
  await b.client.joinGroup("g");
  await a.client.sendToGroup("g", "quiet", "text", { noEcho: true });
  await a.client.sendToGroup("g", "loud", "text");
  await b.inbox.waitEvent("group-message", 2);
  await a.inbox.waitEvent("group-message", 1, (e) => e.message.data === "loud");
  assert.deepEqual(b.inbox.of("group-message").map((e) => e.message.data), ["quiet", "loud"]);
  assert.deepEqual(a.inbox.of("group-message").map((e) => e.message.data), ["loud"]);
});

test("leaveGroup stops delivery", async (t) => {
  const hub = uniqueHub("leave");
  const a = await openClient(t, hub, { userId: "a" });
  const b = await openClient(t, hub, { userId: "b" });
  await a.client.joinGroup("g");
  await b.client.sendToGroup("g", "one", "text");
  await a.inbox.waitEvent("group-message");
  await a.client.leaveGroup("g");
  await b.client.sendToGroup("g", "two", "text");
  await a.client.joinGroup("marker");
  await b.client.sendToGroup("marker", "after-leave", "text");
  await a.inbox.waitEvent("group-message", 1, (e) => e.message.group === "marker");
  assert.deepEqual(a.inbox.of("group-message").map((e) => e.message.data), ["one", "after-leave"]);
});

test("sendToGroup without the role is Forbidden", async (t) => {
  const hub = uniqueHub("forbidden");
  const { client, inbox } = await openClient(t, hub, { userId: "limited", roles: [JOIN_LEAVE], ...noRetry });
  await assert.rejects(client.sendToGroup("g", "nope", "text", { ackId: 41 }), (err) => {
    assert.ok(err instanceof SendMessageError);
    assert.equal(err.errorDetail?.name, "Forbidden");
    assert.equal(err.ackId, 41);
    return true;
  });
  const ack = inbox.frames.find((f) => f.kind === "ack" && f.ackId === 41);
  assert.equal(ack.success, false);
});

test("joinGroup without the role is Forbidden, group-scoped role allows its group only", async (t) => {
  const hub = uniqueHub("scoped");
  const plain = await openClient(t, hub, { userId: "p", roles: [SEND_TO_GROUP], ...noRetry });
  await assert.rejects(plain.client.joinGroup("g"), (err) => err.errorDetail?.name === "Forbidden");
  const scoped = await openClient(t, hub, {
    userId: "s",
    roles: [`${JOIN_LEAVE}.allowed`, `${SEND_TO_GROUP}.allowed`],
    ...noRetry,
  });
  await scoped.client.joinGroup("allowed");
  await scoped.client.sendToGroup("allowed", "ok", "text");
  await assert.rejects(scoped.client.sendToGroup("other", "x", "text"), (err) => err.errorDetail?.name === "Forbidden");
});

test("a reused ackId is acknowledged as Duplicate and not executed again", async (t) => {
  const hub = uniqueHub("duplicate");
  const { client, inbox } = await openClient(t, hub, { userId: "dup" });
  assert.equal((await client.joinGroup("g", { ackId: 7 })).isDuplicated, false);
  assert.equal((await client.joinGroup("g", { ackId: 7 })).isDuplicated, true);
  assert.equal((await client.sendToGroup("g", "first", "text", { ackId: 8 })).isDuplicated, false);
  assert.equal((await client.sendToGroup("g", "again", "text", { ackId: 8 })).isDuplicated, true);
  await client.sendToGroup("g", "marker", "text");
  await inbox.waitEvent("group-message", 1, (e) => e.message.data === "marker");
  assert.deepEqual(inbox.of("group-message").map((e) => e.message.data), ["first", "marker"]);
  const dupAck = inbox.frames.filter((f) => f.kind === "ack" && f.ackId === 8)[1];
  assert.equal(dupAck.success, false);
  assert.equal(dupAck.error.name, "Duplicate");
});

test("non-reliable JSON protocol connects without a reconnection token", async (t) => {
  const hub = uniqueHub("nonreliable");
  const { inbox } = await openClient(t, hub, { userId: "plain", reliable: false });
  const frame = inbox.frames.find((f) => f.kind === "connected");
  assert.equal(frame.reconnectionToken, undefined);
  assert.equal((await admin.connections(hub))[0].subprotocol, "json.webpubsub.azure.v1");
});
