// The emulator's upstream (CloudEvents) calls, answered by Microsoft's official event handler
// @azure/web-pubsub-express, with the official JS client on the other side.
// Starts its own emulator (WPS_EMULATOR_BIN) with --upstream pointing at a local handler.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { WebPubSubClient, WebPubSubJsonProtocol } from "@azure/web-pubsub-client";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { WebPubSubEventHandler } from "@azure/web-pubsub-express";
import { ALL_ROLES, Inbox, WAIT_MS, withTimeout } from "./helpers.mjs";

const HUB = "upstreamHub";
const EMULATOR_BIN =
  process.env.WPS_EMULATOR_BIN ?? fileURLToPath(new URL("../../../target/release/wps-emulator", import.meta.url));

const seen = new Inbox(); // handler-side observations: { kind, args }
let server;
let emulator;
let connectionString;

const handler = new WebPubSubEventHandler(HUB, {
  handleConnect: (req, res) => {
    seen.addEvent("connect", req);
    if (req.query?.reject) {
      res.fail(401, "rejected by handler");
      return;
    }
    res.success({ groups: ["from-connect"], roles: ALL_ROLES });
  },
  onConnected: (req) => seen.addEvent("connected", req),
  onDisconnected: (req) => seen.addEvent("disconnected", req),
  handleUserEvent: (req, res) => {
    seen.addEvent("user-event", req);
    if (req.context.eventName === "fail") {
      res.fail(500, "handler failure");
    } else if (req.dataType === "json") {
      res.success(JSON.stringify({ echoed: req.data }), "json");
    } else {
      res.success(`echo:${req.data}`, "text");
    }
  },
});

before(async () => {
  const middleware = handler.getMiddleware();
  server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    req.baseUrl = "";
    req.path = url.pathname;
    middleware(req, res, () => {
      res.statusCode = 404;
      res.end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const upstream = `http://127.0.0.1:${server.address().port}/api/webpubsub/hubs/{hub}/`;
  const key = `upstream-${randomBytes(20).toString("hex")}`;
  emulator = spawn(EMULATOR_BIN, ["--port", "0", "--access-key", key, "--upstream", upstream], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: emulator.stdout });
  const [first] = await withTimeout(once(lines, "line"), "emulator endpoint line");
  connectionString = first;
  assert.match(connectionString, /^Endpoint=http:\/\/127\.0\.0\.1:\d+;AccessKey=.+;Version=1\.0;$/);
});

after(async () => {
  if (emulator && emulator.exitCode === null) {
    emulator.kill();
    await once(emulator, "exit");
  }
  server?.close();
  server?.closeAllConnections?.();
});

async function startClient(t, userId, { query, ...options } = {}) {
  const service = new WebPubSubServiceClient(connectionString, HUB, { allowInsecureConnection: true });
  const inbox = new Inbox();
  const client = new WebPubSubClient(
    {
      getClientAccessUrl: async () => {
        const { url } = await service.getClientAccessToken({ userId });
        return query ? `${url}&${query}` : url;
      },
    },
    {
      keepAliveIntervalInMs: 1000,
      keepAliveTimeoutInMs: 10_000,
      reconnectRetryOptions: { maxRetries: 0 },
      ...options,
    },
  );
  for (const kind of ["connected", "disconnected", "stopped", "group-message", "server-message"]) {
    client.on(kind, (args) => inbox.addEvent(kind, args));
  }
  t.after(() => client.stop());
  return { client, inbox, service };
}

test("connect/connected events reach the handler; its groups and roles apply", async (t) => {
  const { client, inbox, service } = await startClient(t, "up-user");
  await client.start();
  const [connected] = await inbox.waitEvent("connected");
  const [connect] = await seen.waitEvent("connect", 1, (r) => r.context.connectionId === connected.connectionId);
  assert.equal(connect.context.userId, "up-user");
  assert.equal(connect.context.hub.toLowerCase(), HUB.toLowerCase());
  assert.deepEqual(connect.claims?.sub, ["up-user"]);
  assert.ok(connect.subprotocols?.includes("json.reliable.webpubsub.azure.v1"));
  await seen.waitEvent("connected", 1, (r) => r.context.connectionId === connected.connectionId);
  // the handler's groups were joined at connect, and its roles allow sending
  await service.group("from-connect").sendToAll("to handler group", { contentType: "text/plain" });
  await inbox.waitEvent("group-message", 1, (e) => e.message.data === "to handler group");
  await client.sendToGroup("from-connect", "role from handler", "text");
  await inbox.waitEvent("group-message", 1, (e) => e.message.data === "role from handler");
});

test("a user event is answered by the handler's response as a server message", async (t) => {
  const { client, inbox } = await startClient(t, "event-user");
  await client.start();
  const [connected] = await inbox.waitEvent("connected");
  const result = await client.sendEvent("greet", "hi", "text");
  assert.equal(result.isDuplicated, false);
  const [reply] = await inbox.waitEvent("server-message");
  assert.equal(reply.message.dataType, "text");
  assert.equal(reply.message.data, "echo:hi");
  const [event] = seen.of("user-event").filter((r) => r.context.connectionId === connected.connectionId);
  assert.equal(event.context.eventName, "greet");
  assert.equal(event.context.userId, "event-user");
  assert.equal(event.dataType, "text");
  assert.equal(event.data, "hi");

  await client.sendEvent("greet", { n: 1 }, "json");
  const replies = await inbox.waitEvent("server-message", 2);
  assert.equal(replies[1].message.dataType, "json");
  assert.deepEqual(replies[1].message.data, { echoed: { n: 1 } });
});

test("a failing handler makes the event's ack fail, and the connection stays", async (t) => {
  const { client, inbox } = await startClient(t, "fail-user", { messageRetryOptions: { maxRetries: 0 } });
  await client.start();
  await inbox.waitEvent("connected");
  await assert.rejects(client.sendEvent("fail", "x", "text", { ackId: 77 }), (err) => {
    assert.equal(err.errorDetail?.name, "InternalServerError");
    return true;
  });
  const result = await client.sendEvent("greet", "still here", "text");
  assert.equal(result.isDuplicated, false);
  await inbox.waitEvent("server-message", 1, (e) => e.message.data === "echo:still here");
  assert.equal(inbox.of("disconnected").length, 0);
});

test("a connect rejected by the handler fails the client's start", async (t) => {
  const { client } = await startClient(t, "rejected-user", { query: "reject=1" });
  await assert.rejects(withTimeout(client.start(), "start() of a rejected client", WAIT_MS * 3));
  const [connect] = await seen.waitEvent("connect", 1, (r) => r.context.userId === "rejected-user");
  assert.deepEqual(connect.query?.reject, ["1"]);
});

// A reliable session outlives its socket for the recovery window, and this client's stop()
// closes without a status code, so the non-reliable protocol shows the immediate case.
test("disconnected reaches the handler when a non-reliable client stops", async (t) => {
  const { client, inbox } = await startClient(t, "leaving-user", { protocol: WebPubSubJsonProtocol() });
  await client.start();
  const [connected] = await inbox.waitEvent("connected");
  client.stop();
  await inbox.waitEvent("stopped");
  await seen.waitEvent("disconnected", 1, (r) => r.context.connectionId === connected.connectionId);
});

test("REST close of a reliable connection ends its session: disconnected with the reason", async (t) => {
  const { client, inbox, service } = await startClient(t, "closed-user", { autoReconnect: false });
  await client.start();
  const [connected] = await inbox.waitEvent("connected");
  await service.closeConnection(connected.connectionId, { reason: "closed by REST" });
  await inbox.waitEvent("stopped");
  const [disconnected] = await seen.waitEvent(
    "disconnected",
    1,
    (r) => r.context.connectionId === connected.connectionId,
  );
  assert.equal(disconnected.reason, "closed by REST");
});

test("invokeEvent gets the handler's response as its result", async (t) => {
  const { client, inbox } = await startClient(t, "invoke-user", { messageRetryOptions: { maxRetries: 0 } });
  await client.start();
  const [connected] = await inbox.waitEvent("connected");
  const text = await withTimeout(client.invokeEvent("greet", "ping", "text"), "invokeEvent text");
  assert.equal(text.dataType, "text");
  assert.equal(text.data, "echo:ping");
  assert.ok(text.invocationId);
  const json = await withTimeout(client.invokeEvent("greet", { q: 2 }, "json"), "invokeEvent json");
  assert.equal(json.dataType, "json");
  assert.deepEqual(json.data, { echoed: { q: 2 } });
  const events = seen.of("user-event").filter((r) => r.context.connectionId === connected.connectionId);
  assert.deepEqual(events.map((r) => [r.context.eventName, r.dataType]), [
    ["greet", "text"],
    ["greet", "json"],
  ]);
  await assert.rejects(withTimeout(client.invokeEvent("fail", "x", "text"), "invokeEvent failing"));
  // invocation replies are not server messages
  assert.equal(inbox.of("server-message").length, 0);
});
