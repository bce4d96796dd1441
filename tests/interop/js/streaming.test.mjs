// Official JS client 1.1.0 group streaming against the emulator: openGroupStream writers and
// onGroupStream readers, data types, parallel streams, user errors, the service's idle
// timeout, refusals and a recovery in the middle of a stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EmulatorAdmin, JOIN_LEAVE, openClient, uniqueHub, withTimeout } from "./helpers.mjs";

const admin = new EmulatorAdmin();

/** Collects every stream the client's onGroupStream reports, each as {streamId, data[], end}. */
function collectStreams(client, options = {}) {
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
  const subscription = client.onGroupStream(async (stream) => {
    const record = { group: stream.groupName, streamId: stream.streamId, messages: [], end: null };
    streams.set(stream.streamId, record);
    try {
      for await (const m of stream) record.messages.push(m);
      record.end = { ok: true };
    } catch (error) {
      record.end = { ok: false, error };
    }
    finished(stream.streamId).resolve(record);
  }, options);
  return {
    subscription,
    streams,
    ended: (id, what = `end of stream ${id}`) => withTimeout(finished(id).promise, what),
  };
}

test("a stream of text fragments arrives in order and completes", async (t) => {
  const hub = uniqueHub("stream_text");
  const rx = await openClient(t, hub, { userId: "reader" });
  const tx = await openClient(t, hub, { userId: "writer" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const writer = await tx.client.openGroupStream("g", { streamId: "s1", idleTimeoutInMs: 15000 });
  assert.equal(writer.streamId, "s1");
  for (const chunk of ["hello", " ", "world"]) await writer.write(chunk, "text");
  await writer.end();
  const record = await reader.ended("s1");
  assert.equal(record.end.ok, true, String(record.end.error?.name));
  assert.equal(record.messages.map((m) => m.data).join(""), "hello world");
  for (const m of record.messages) {
    assert.equal(m.fromUserId, "writer");
    assert.equal(m.groupName ?? m.group, "g");
  }
  // Each fragment is also a group-message event carrying its stream metadata.
  const events = rx.inbox.of("group-message").filter((e) => e.message.stream?.streamId === "s1");
  assert.deepEqual(
    events.filter((e) => !e.message.stream.endOfStream).map((e) => e.message.stream.streamSequenceId),
    [1, 2, 3],
  );
});

test("json and binary fragments keep their types; parallel streams stay apart", async (t) => {
  const hub = uniqueHub("stream_types");
  const rx = await openClient(t, hub, { userId: "reader" });
  const tx = await openClient(t, hub, { userId: "writer" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const a = await tx.client.openGroupStream("g", { streamId: "A" });
  const b = await tx.client.openGroupStream("g", { streamId: "B" });
  await a.write({ n: 1 }, "json");
  await b.write(new Uint8Array([9, 8, 7, 6]).buffer, "binary");
  await a.write({ n: 2 }, "json");
  await b.write(new Uint8Array([5]).buffer, "binary");
  await a.end();
  await b.end();
  const [ra, rb] = [await reader.ended("A"), await reader.ended("B")];
  assert.deepEqual(ra.messages.map((m) => m.data), [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(
    rb.messages.map((m) => Array.from(new Uint8Array(m.data))),
    [[9, 8, 7, 6], [5]],
  );
});

test("an aborted stream reaches the reader as a UserError with its code", async (t) => {
  const hub = uniqueHub("stream_abort");
  const rx = await openClient(t, hub, { userId: "reader" });
  const tx = await openClient(t, hub, { userId: "writer" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const writer = await tx.client.openGroupStream("g", { streamId: "s" });
  await writer.write("partial", "text");
  await writer.abort({ message: "stream failed", userErrorCode: "APP_42" });
  const record = await reader.ended("s");
  assert.equal(record.end.ok, false);
  assert.equal(record.end.error.name, "UserError");
  assert.equal(record.end.error.message, "stream failed");
  assert.equal(record.end.error.userErrorCode, "APP_42");
  assert.deepEqual(record.messages.map((m) => m.data), ["partial"]);
});

test("the service closes an idle stream for writer and reader", async (t) => {
  const hub = uniqueHub("stream_idle");
  const rx = await openClient(t, hub, { userId: "reader" });
  const tx = await openClient(t, hub, { userId: "writer" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const writer = await tx.client.openGroupStream("g", { streamId: "idle", idleTimeoutInMs: 300 });
  const writerError = new Promise((resolve) => writer.onError(resolve));
  await writer.write("only", "text");
  const error = await withTimeout(writerError, "writer onError");
  assert.equal(error.name, "IdleTimeout");
  const record = await reader.ended("idle");
  assert.equal(record.end.ok, false);
  assert.equal(record.end.error.name, "IdleTimeout");
  await assert.rejects(writer.write("late", "text"));
});

test("opening a stream without the send permission is refused", async (t) => {
  const hub = uniqueHub("stream_forbidden");
  const tx = await openClient(t, hub, { userId: "writer", roles: [JOIN_LEAVE] });
  await assert.rejects(
    withTimeout(tx.client.openGroupStream("g", { streamId: "nope" }), "refused open"),
    (e) => e.name === "Forbidden" || /Forbidden/.test(String(e.message)),
  );
});

test("a stream survives a recovery of the writer's connection without loss or duplicates", async (t) => {
  const hub = uniqueHub("stream_recovery");
  const rx = await openClient(t, hub, { userId: "reader" });
  const tx = await openClient(t, hub, { userId: "writer" });
  await rx.client.joinGroup("g");
  const reader = collectStreams(rx.client);
  const writer = await tx.client.openGroupStream("g", { streamId: "r" });
  await writer.write("one", "text");
  await rx.inbox.waitEvent("group-message", 1, (e) => e.message.stream?.streamId === "r");
  const writerId = tx.inbox.of("connected")[0].connectionId;
  await admin.drop(hub, writerId);
  // Written while the connection recovers: queued, then sent once it is back.
  await writer.write("two", "text");
  await writer.write("three", "text");
  await writer.end();
  const record = await reader.ended("r");
  assert.equal(record.end.ok, true, String(record.end.error?.name));
  assert.deepEqual(record.messages.map((m) => m.data), ["one", "two", "three"]);
  assert.equal(tx.inbox.of("connected").length, 1, "recovered, not reconnected");
  const listed = await admin.connections(hub);
  assert.ok(listed.some((c) => c.connectionId === writerId));
});
