// Shared helpers for the JS interop suite: the official @azure/web-pubsub-client and
// @azure/web-pubsub packages against the emulator named by WPS_CONNECTION_STRING.
import { createHmac, randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { WebPubSubClient, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol } from "@azure/web-pubsub-client";
import { WebPubSubServiceClient } from "@azure/web-pubsub";

export const WAIT_MS = 10_000;
export const JOIN_LEAVE = "webpubsub.joinLeaveGroup";
export const SEND_TO_GROUP = "webpubsub.sendToGroup";
export const ALL_ROLES = [JOIN_LEAVE, SEND_TO_GROUP];

export function connectionString() {
  const value = process.env.WPS_CONNECTION_STRING;
  if (!value) throw new Error("WPS_CONNECTION_STRING is not set (run scripts/interop.sh)");
  return value;
}

function parseConnectionString(cs) {
  const parts = {};
  for (const segment of cs.split(";")) {
    const i = segment.indexOf("=");
    if (i > 0) parts[segment.slice(0, i).trim().toLowerCase()] = segment.slice(i + 1).trim();
  }
  return { endpoint: parts.endpoint.replace(/\/+$/, ""), accessKey: parts.accesskey };
}

export function uniqueHub(name) {
  return `js_${name.replace(/[^A-Za-z0-9_]/g, "_").slice(0, 80)}_${randomBytes(3).toString("hex")}`;
}

export function serviceClient(hub) {
  return new WebPubSubServiceClient(connectionString(), hub, { allowInsecureConnection: true });
}

/** Records what a client reported and lets a test wait for a condition with a deadline. */
export class Inbox {
  constructor() {
    this.events = []; // { kind, args }
    this.frames = []; // messages parsed by the client's protocol, in wire order
    this._changed = new EventEmitter();
    this._changed.setMaxListeners(0);
  }
  addEvent(kind, args) {
    this.events.push({ kind, args });
    this._changed.emit("change");
  }
  addFrame(message) {
    this.frames.push(message);
    this._changed.emit("change");
  }
  of(kind) {
    return this.events.filter((e) => e.kind === kind).map((e) => e.args);
  }
  waitFor(predicate, what = "condition", timeoutMs = WAIT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let result;
        try {
          result = predicate();
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (result) {
          cleanup();
          resolve(result);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this._changed.off("change", check);
      };
      this._changed.on("change", check);
      check();
    });
  }
  waitEvent(kind, count = 1, where = () => true, timeoutMs = WAIT_MS) {
    return this.waitFor(
      () => {
        const matching = this.of(kind).filter(where);
        return matching.length >= count ? matching : null;
      },
      `${count} x ${kind}`,
      timeoutMs,
    );
  }
}

// The client's keep-alive tasks sleep a full interval without watching stop(), so node stays
// alive that long after the last test of a file (40 s with the default 120 s timeout). Shorter
// defaults keep each file's exit prompt and exercise ping/pong in every test.
const KEEP_ALIVE = { keepAliveIntervalInMs: 1000, keepAliveTimeoutInMs: 10_000 };

/**
 * Opens an official WebPubSubClient; `t.after` stops it. `reliable: false` picks the
 * non-reliable JSON protocol. The protocol object is ours, so its parser can be observed.
 */
export async function openClient(t, hub, { userId, roles = ALL_ROLES, groups, reliable = true, start = true, ...options } = {}) {
  const service = serviceClient(hub);
  const protocol = reliable ? WebPubSubJsonReliableProtocol() : WebPubSubJsonProtocol();
  const inbox = new Inbox();
  const parse = protocol.parseMessages.bind(protocol);
  protocol.parseMessages = (data) => {
    const parsed = parse(data);
    if (parsed) for (const m of Array.isArray(parsed) ? parsed : [parsed]) inbox.addFrame(m);
    return parsed;
  };
  const client = new WebPubSubClient(
    {
      getClientAccessUrl: async () => (await service.getClientAccessToken({ userId, roles, groups })).url,
    },
    { protocol, ...KEEP_ALIVE, ...options },
  );
  for (const kind of ["connected", "disconnected", "stopped", "group-message", "server-message", "rejoin-group-failed"]) {
    client.on(kind, (args) => inbox.addEvent(kind, args));
  }
  t.after(() => client.stop());
  if (start) {
    await client.start();
    await inbox.waitEvent("connected");
  }
  return { client, inbox, service };
}

/**
 * Records the close code each time the client gives up on its connection (no recovery), read
 * when the client decides, before a reconnect resets it.
 */
export function watchNoRecovery(client) {
  const codes = [];
  const handle = client._handleConnectionCloseAndNoRecovery;
  client._handleConnectionCloseAndNoRecovery = function (...args) {
    codes.push(this._lastCloseEvent?.code);
    return handle.apply(this, args);
  };
  return codes;
}

/** The client's automatic rejoins: `groups` successful acks after the latest connected frame. */
export function waitRejoined(inbox, groups) {
  return inbox.waitFor(() => {
    const last = inbox.frames.map((f) => f.kind).lastIndexOf("connected");
    return inbox.frames.slice(last + 1).filter((f) => f.kind === "ack" && f.success).length >= groups;
  }, `${groups} rejoin ack(s)`);
}

/**
 * Holds the client's recovery attempts (connects to a URL carrying awps_connection_id) until
 * released. Nothing on the wire changes; the attempt is only delayed.
 */
export function holdRecovery(client) {
  let release;
  const released = new Promise((resolve) => (release = resolve));
  const gate = { attempts: 0, recovered: 0, release, attempted: null };
  let signalAttempt;
  gate.attempted = new Promise((resolve) => (signalAttempt = resolve));
  const connectCore = client._connectCore;
  client._connectCore = async function (uri) {
    if (String(uri).includes("awps_connection_id=")) {
      gate.attempts += 1;
      signalAttempt();
      await released;
      await connectCore.call(this, uri);
      gate.recovered += 1;
      return;
    }
    return connectCore.call(this, uri);
  };
  return gate;
}

export function withTimeout(promise, what, timeoutMs = WAIT_MS) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
    }),
  ]);
}

/** The emulator's fault-injection routes, authenticated like the REST API (aud = request URL). */
export class EmulatorAdmin {
  constructor(cs = connectionString()) {
    const { endpoint, accessKey } = parseConnectionString(cs);
    this.endpoint = endpoint;
    this.accessKey = accessKey;
  }
  _token(aud) {
    const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
    const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ aud, exp: Math.floor(Date.now() / 1000) + 300 })}`;
    return `${body}.${createHmac("sha256", this.accessKey).update(body).digest("base64url")}`;
  }
  async _request(method, path, query) {
    let url = this.endpoint + path;
    if (query) url += `?${new URLSearchParams(query)}`;
    const response = await fetch(url, { method, headers: { Authorization: `Bearer ${this._token(url)}` } });
    if (response.status < 200 || response.status >= 300) {
      throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
    }
    return response;
  }
  async connections(hub) {
    return (await this._request("GET", `/_emulator/hubs/${encodeURIComponent(hub)}/connections`)).json();
  }
  _action(hub, connectionId, action, query) {
    return this._request(
      "POST",
      `/_emulator/hubs/${encodeURIComponent(hub)}/connections/${encodeURIComponent(connectionId)}/${action}`,
      query,
    );
  }
  drop(hub, connectionId) {
    return this._action(hub, connectionId, ":drop");
  }
  close(hub, connectionId, code, reason) {
    return this._action(hub, connectionId, ":close", { code: String(code), reason });
  }
  expire(hub, connectionId) {
    return this._action(hub, connectionId, ":expire");
  }
}
