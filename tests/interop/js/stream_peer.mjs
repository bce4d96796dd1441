// A group-stream peer on the official @azure/web-pubsub-client 1.1.0, driven by another
// process (tests/interop/python/test_streams_cross.py) over stdin/stdout, one JSON object a
// line. It is not a test file itself.
//
//   node stream_peer.mjs receive <client-url> <group> <streams>
//     joins <group>, prints {"ready":true}, then one {"stream":{...}} line per finished stream
//     ({streamId, fromUserId, data: [fragment data], sequenceIds: [...], ok, error}) and exits
//     after <streams> streams.
//   node stream_peer.mjs publish <client-url> <group> <stream-id> <count> [<pause-after>]
//     opens the stream, writes "js-0" .. "js-<count-1>" as text and ends it; with
//     <pause-after>, prints {"paused":true,"connectionId":...} after that many fragments and
//     waits for a line on stdin before writing the rest. Prints {"done":true} at the end.
//
// Every wait is bounded: the process prints {"error":...} and exits 1 after DEADLINE_MS.
import { createInterface } from "node:readline";
import { WebPubSubClient } from "@azure/web-pubsub-client";

const DEADLINE_MS = 30_000;
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (error) => {
  say({ error: String(error?.name ?? "") + ": " + String(error?.message ?? error) });
  process.exit(1);
};
setTimeout(() => fail(new Error(`no result within ${DEADLINE_MS} ms`)), DEADLINE_MS).unref();

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

async function start(url) {
  const client = new WebPubSubClient(url);
  const connected = new Promise((resolve) => client.on("connected", (e) => resolve(e.connectionId)));
  await client.start();
  return { client, connectionId: await connected };
}

async function receive(url, group, count) {
  const { client } = await start(url);
  let finished = 0;
  client.onGroupStream(async (stream) => {
    const record = { streamId: stream.streamId, fromUserId: null, data: [], sequenceIds: [], ok: true, error: null };
    try {
      for await (const m of stream) {
        record.fromUserId = m.fromUserId ?? null;
        record.data.push(m.dataType === "binary" ? Array.from(new Uint8Array(m.data)) : m.data);
        record.sequenceIds.push(m.stream?.streamSequenceId ?? null);
      }
    } catch (error) {
      record.ok = false;
      record.error = { name: error?.name ?? null, message: error?.message ?? null, userErrorCode: error?.userErrorCode ?? null };
    }
    say({ stream: record });
    finished += 1;
    if (finished >= count) {
      await client.stop();
      process.exit(0);
    }
  });
  await client.joinGroup(group);
  say({ ready: true });
}

async function publish(url, group, streamId, count, pauseAfter) {
  const { client, connectionId } = await start(url);
  const writer = await client.openGroupStream(group, { streamId });
  for (let i = 0; i < count; i++) {
    if (i === pauseAfter) {
      say({ paused: true, connectionId });
      await nextLine();
    }
    await writer.write(`js-${i}`, "text");
  }
  await writer.end();
  say({ done: true });
  await client.stop();
  process.exit(0);
}

const [mode, url, group, ...rest] = process.argv.slice(2);
try {
  if (mode === "receive") await receive(url, group, Number(rest[0] ?? 1));
  else if (mode === "publish")
    await publish(url, group, rest[0], Number(rest[1]), rest[2] === undefined ? -1 : Number(rest[2]));
  else fail(new Error(`unknown mode ${mode}`));
} catch (error) {
  fail(error);
}
