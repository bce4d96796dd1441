// Official JS server SDK (REST) against the emulator, observed by official JS clients.
import { test } from "node:test";
import assert from "node:assert/strict";
import { odata } from "@azure/web-pubsub";
import { openClient, uniqueHub, waitRejoined } from "./helpers.mjs";

test("sendToAll JSON and text reach every client as server messages", async (t) => {
  const hub = uniqueHub("sendtoall");
  const a = await openClient(t, hub, { userId: "a" });
  const b = await openClient(t, hub, { userId: "b" });
  await a.service.sendToAll({ hello: "all" });
  await a.service.sendToAll("plain text", { contentType: "text/plain" });
  for (const { inbox } of [a, b]) {
    const [json, text] = await inbox.waitEvent("server-message", 2);
    assert.equal(json.message.dataType, "json");
    assert.deepEqual(json.message.data, { hello: "all" });
    assert.equal(text.message.dataType, "text");
    assert.equal(text.message.data, "plain text");
  }
});

test("sendToConnection and sendToUser target only their recipients", async (t) => {
  const hub = uniqueHub("targeted");
  const a = await openClient(t, hub, { userId: "user-a" });
  const b = await openClient(t, hub, { userId: "user-b" });
  const aId = a.inbox.of("connected")[0].connectionId;
  await a.service.sendToConnection(aId, "for a's connection", { contentType: "text/plain" });
  await a.service.sendToUser("user-b", "for user b", { contentType: "text/plain" });
  await a.inbox.waitEvent("server-message");
  await b.inbox.waitEvent("server-message");
  await a.service.sendToAll("barrier", { contentType: "text/plain" });
  await a.inbox.waitEvent("server-message", 2);
  await b.inbox.waitEvent("server-message", 2);
  assert.deepEqual(a.inbox.of("server-message").map((e) => e.message.data), ["for a's connection", "barrier"]);
  assert.deepEqual(b.inbox.of("server-message").map((e) => e.message.data), ["for user b", "barrier"]);
});

test("REST group send of bytes arrives as a binary group message", async (t) => {
  const hub = uniqueHub("restgroup");
  const a = await openClient(t, hub, { userId: "a" });
  await a.client.joinGroup("room");
  await a.service.group("room").sendToAll(Buffer.from([1, 2, 3, 4]), { contentType: "application/octet-stream" });
  const [e] = await a.inbox.waitEvent("group-message");
  assert.equal(e.message.group, "room");
  assert.equal(e.message.dataType, "binary");
  assert.deepEqual(new Uint8Array(e.message.data), new Uint8Array([1, 2, 3, 4]));
  assert.equal(e.message.fromUserId, undefined);
});

test("REST closeConnection: disconnected with the reason, then a new connection and rejoin", async (t) => {
  const hub = uniqueHub("restclose");
  const a = await openClient(t, hub, { userId: "a" });
  await a.client.joinGroup("kept");
  const firstId = a.inbox.of("connected")[0].connectionId;
  assert.equal(await a.service.connectionExists(firstId), true);
  await a.service.closeConnection(firstId, { reason: "closed by test" });
  const [disconnected] = await a.inbox.waitEvent("disconnected");
  assert.equal(disconnected.connectionId, firstId);
  assert.equal(disconnected.message?.message, "closed by test");
  const second = (await a.inbox.waitEvent("connected", 2))[1];
  assert.notEqual(second.connectionId, firstId);
  await waitRejoined(a.inbox, 1);
  assert.equal(await a.service.connectionExists(firstId), false);
  await a.service.group("kept").sendToAll("after reconnect", { contentType: "text/plain" });
  await a.inbox.waitEvent("group-message", 1, (e) => e.message.data === "after reconnect");
});

test("group membership and permissions through the REST surface", async (t) => {
  const hub = uniqueHub("restsurface");
  const a = await openClient(t, hub, { userId: "member", roles: [], messageRetryOptions: { maxRetries: 0 } });
  const id = a.inbox.of("connected")[0].connectionId;
  const group = a.service.group("managed");
  assert.equal(await a.service.groupExists("managed"), false);
  await group.addConnection(id);
  assert.equal(await a.service.groupExists("managed"), true);
  const members = [];
  for await (const m of await group.listConnections()) members.push(m);
  assert.deepEqual(members.map((m) => [m.connectionId, m.userId]), [[id, "member"]]);
  await group.removeConnection(id);
  assert.equal(await a.service.groupExists("managed"), false);
  assert.equal(await a.service.userExists("member"), true);
  assert.equal(await a.service.userExists("nobody"), false);

  assert.equal(await a.service.hasPermission(id, "sendToGroup", { targetName: "g" }), false);
  await assert.rejects(a.client.joinGroup("g"));
  await a.service.grantPermission(id, "joinLeaveGroup", { targetName: "g" });
  assert.equal(await a.service.hasPermission(id, "joinLeaveGroup", { targetName: "g" }), true);
  await a.client.joinGroup("g");
  await a.service.revokePermission(id, "joinLeaveGroup", { targetName: "g" });
  assert.equal(await a.service.hasPermission(id, "joinLeaveGroup", { targetName: "g" }), false);
});

test("addConnectionsToGroups and sendToAll with OData filters", async (t) => {
  const hub = uniqueHub("odata");
  const a = await openClient(t, hub, { userId: "alpha" });
  const b = await openClient(t, hub, { userId: "beta" });
  const aId = a.inbox.of("connected")[0].connectionId;
  const bId = b.inbox.of("connected")[0].connectionId;
  await a.service.addConnectionsToGroups(["g1", "g2"], odata`userId eq ${"alpha"}`);
  const members = async (g) => {
    const ids = [];
    for await (const m of await a.service.group(g).listConnections()) ids.push(m.connectionId);
    return ids;
  };
  assert.deepEqual(await members("g1"), [aId]);
  assert.deepEqual(await members("g2"), [aId]);
  await a.service.sendToAll("to g1 members", { contentType: "text/plain", filter: odata`${"g1"} in groups` });
  await a.service.sendToAll("to beta", { contentType: "text/plain", filter: odata`connectionId eq ${bId}` });
  await a.service.removeConnectionsFromGroups(["g2"], odata`userId eq ${"alpha"}`);
  assert.deepEqual(await members("g2"), []);
  await a.service.sendToAll("barrier", { contentType: "text/plain" });
  await a.inbox.waitEvent("server-message", 1, (e) => e.message.data === "barrier");
  await b.inbox.waitEvent("server-message", 1, (e) => e.message.data === "barrier");
  assert.deepEqual(a.inbox.of("server-message").map((e) => e.message.data), ["to g1 members", "barrier"]);
  assert.deepEqual(b.inbox.of("server-message").map((e) => e.message.data), ["to beta", "barrier"]);
});
