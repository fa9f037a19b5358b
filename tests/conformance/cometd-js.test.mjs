// Conformance: the official CometD JavaScript client (npm `cometd` + `cometd-nodejs-client`),
// long-polling only, against the sfemu binary running as its own process.
//
// It proves sfemu's wire format with a client nobody in this project wrote: handshake with a
// bearer token, subscribe with a replay extension (written here, after Salesforce's published
// pattern), receive PushTopic and platform events, and recover after the control API expires the
// session (403::Unknown client → re-handshake → resubscribe from the last replay id, nothing lost
// and nothing twice).
//
// Run: cargo build --release -p sfemu && node --test tests/conformance/
// The binary is SFEMU_BIN, else target/release/sfemu at the repository root.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { adapt } from "cometd-nodejs-client";
import { CometD } from "cometd";

const SFEMU_BIN = process.env.SFEMU_BIN || fileURLToPath(new URL("../../target/release/sfemu", import.meta.url));
const API_VERSION = "62.0";
const TOPIC = "/topic/ConformanceOpportunities";
const EVENT = "/event/Conformance_Order__e";

let sfemu;
let base;

/** Starts sfemu on a free port and resolves with its base URL from the listening line. */
function startSfemu() {
  if (!existsSync(SFEMU_BIN)) {
    throw new Error(`sfemu binary not found at ${SFEMU_BIN}: run cargo build --release -p sfemu or set SFEMU_BIN`);
  }
  sfemu = spawn(SFEMU_BIN, ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`sfemu did not start in time; output: ${out}`)), 20000);
    sfemu.once("exit", (code) => reject(new Error(`sfemu exited with ${code} before listening: ${out}`)));
    sfemu.stdout.on("data", (chunk) => {
      out += chunk;
      const m = /sfemu listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
}

async function control(path, body = {}) {
  const r = await fetch(`${base}/_sfemu/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `/_sfemu/${path}: ${text}`);
  return JSON.parse(text);
}

async function waitFor(what, predicate, timeoutMs = 15000) {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The replay extension, after Salesforce's documented pattern: `ext.replay: true` on the
 * handshake, `ext.replay: {channel: replayId}` on each subscribe, and the last replay id of
 * every data message remembered so that a resubscribe continues where it stopped.
 */
class ReplayExtension {
  constructor(initial) {
    this.replay = { ...initial };
    this.serverSupportsReplay = false;
    this.subscribeExts = [];
  }

  incoming(message) {
    if (message.channel === "/meta/handshake") {
      this.serverSupportsReplay = !!(message.ext && message.ext.replay === true);
    } else if (!message.channel.startsWith("/meta/") && message.data && message.data.event) {
      const id = message.data.event.replayId;
      if (typeof id === "number" && message.channel in this.replay) this.replay[message.channel] = id;
    }
    return message;
  }

  outgoing(message) {
    if (message.channel === "/meta/handshake") {
      message.ext = { ...(message.ext || {}), replay: true };
    } else if (message.channel === "/meta/subscribe" && message.subscription in this.replay) {
      const ext = { [message.subscription]: this.replay[message.subscription] };
      message.ext = { ...(message.ext || {}), replay: ext };
      this.subscribeExts.push(ext);
    }
    return message;
  }
}

before(async () => {
  base = await startSfemu();
});

after(() => {
  if (sfemu && sfemu.exitCode === null) sfemu.kill("SIGTERM");
});

test("official CometD JS client: handshake, replay, PushTopic and platform events, recovery after session expiry", async () => {
  adapt();

  // Events stored before the client exists: replay -2 must deliver them.
  const backlog = await control("publish", { channel: TOPIC, count: 2 });
  assert.equal(backlog.published, 2);

  const grant = await control("token", { username: "user@example.com" });
  assert.match(grant.access_token, /^00D/);
  assert.equal(grant.token_type, "Bearer");

  const cometd = new CometD();
  cometd.unregisterTransport("websocket");
  cometd.unregisterTransport("callback-polling");
  assert.deepEqual(cometd.getTransportTypes(), ["long-polling"]);
  cometd.configure({
    url: `${base}/cometd/${API_VERSION}`,
    appendMessageTypeToURL: false,
    requestHeaders: { Authorization: `Bearer ${grant.access_token}` },
    logLevel: "warn",
  });
  const replayExt = new ReplayExtension({ [TOPIC]: -2, [EVENT]: -1 });
  cometd.registerExtension("replay", replayExt);

  const handshakes = [];
  const connectFailures = [];
  const subscribeReplies = [];
  const topicEvents = [];
  const platformEvents = [];

  cometd.addListener("/meta/connect", (m) => {
    if (!m.successful) connectFailures.push(m);
  });
  cometd.addListener("/meta/subscribe", (m) => subscribeReplies.push(m));
  // Salesforce's pattern: (re)subscribe after every successful handshake; the CometD client drops
  // its subscriptions on a re-handshake, listeners added with addListener stay.
  cometd.addListener("/meta/handshake", (m) => {
    handshakes.push(m);
    if (!m.successful) return;
    cometd.batch(() => {
      cometd.subscribe(TOPIC, (msg) => topicEvents.push(msg));
      cometd.subscribe(EVENT, (msg) => platformEvents.push(msg));
    });
  });

  cometd.handshake();
  await waitFor("handshake", () => handshakes.length === 1);
  const hs = handshakes[0];
  assert.equal(hs.successful, true, JSON.stringify(hs));
  assert.match(hs.clientId, /^[0-9a-z]{20,}$/);
  assert.equal(replayExt.serverSupportsReplay, true, "handshake reply carries ext.replay: true");
  assert.ok(hs.supportedConnectionTypes.includes("long-polling"));

  await waitFor("two subscribe replies", () => subscribeReplies.length === 2);
  for (const s of subscribeReplies) assert.equal(s.successful, true, JSON.stringify(s));
  assert.deepEqual(replayExt.subscribeExts.slice(0, 2), [{ [TOPIC]: -2 }, { [EVENT]: -1 }]);

  // The backlog arrives through replay -2.
  await waitFor("backlog events", () => topicEvents.length === 2);
  assert.deepEqual(
    topicEvents.map((e) => e.data.event.replayId),
    [backlog.firstReplayId, backlog.lastReplayId],
  );

  // Live events of both kinds.
  const live = await control("publish", { channel: TOPIC, count: 3 });
  const orders = await control("publish", { channel: EVENT, count: 2 });
  await waitFor("live PushTopic events", () => topicEvents.length === 5);
  await waitFor("platform events", () => platformEvents.length === 2);

  for (const e of topicEvents) {
    assert.equal(e.channel, TOPIC);
    assert.equal(typeof e.data.event.replayId, "number");
    assert.match(e.data.event.createdDate, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["created", "updated", "deleted", "undeleted"].includes(e.data.event.type), e.data.event.type);
    assert.equal(typeof e.data.sobject, "object");
    assert.equal(typeof e.data.sobject.Id, "string");
  }
  assert.equal(topicEvents[4].data.event.replayId, live.lastReplayId);
  for (const e of platformEvents) {
    assert.equal(e.channel, EVENT);
    assert.equal(typeof e.data.schema, "string");
    assert.equal(typeof e.data.payload, "object");
    assert.match(e.data.payload.CreatedDate, /^\d{4}-\d\d-\d\dT/);
    assert.equal(typeof e.data.payload.CreatedById, "string");
    assert.equal(typeof e.data.event.replayId, "number");
  }
  assert.deepEqual(
    platformEvents.map((e) => e.data.event.replayId),
    [orders.firstReplayId, orders.lastReplayId],
  );
  assert.equal(replayExt.replay[TOPIC], live.lastReplayId);

  // Expire every session; publish while the client is cut off. The held connect is answered with
  // 403::Unknown client and handshake advice; the client re-handshakes, the handshake listener
  // resubscribes, and the replay extension asks for everything after the last replay id seen.
  const expired = await control("expire-sessions");
  assert.ok(expired.expired >= 1, JSON.stringify(expired));
  const gap = await control("publish", { channel: TOPIC, count: 2 });

  await waitFor("re-handshake", () => handshakes.filter((h) => h.successful).length === 2);
  const unknown = connectFailures.find((m) => m.error === "403::Unknown client");
  assert.ok(unknown, `connect failed with 403::Unknown client: ${JSON.stringify(connectFailures)}`);
  assert.equal(unknown.advice.reconnect, "handshake");
  assert.notEqual(handshakes[1].clientId, hs.clientId);

  await waitFor("gap events after recovery", () => topicEvents.length === 7);
  const resubscribes = replayExt.subscribeExts.slice(2);
  assert.deepEqual(resubscribes[0], { [TOPIC]: live.lastReplayId }, "resubscribe continues from the last replay id");
  assert.equal(topicEvents[6].data.event.replayId, gap.lastReplayId);

  // And live delivery resumes on the new session.
  const after = await control("publish", { channel: TOPIC, count: 1 });
  await waitFor("event after recovery", () => topicEvents.length === 8);
  assert.equal(topicEvents[7].data.event.replayId, after.lastReplayId);

  // Nothing lost, nothing twice, in order.
  const ids = topicEvents.map((e) => e.data.event.replayId);
  assert.equal(new Set(ids).size, ids.length, `duplicates in ${ids}`);
  assert.deepEqual([...ids].sort((a, b) => a - b), ids, `out of order: ${ids}`);
  assert.equal(platformEvents.length, 2);

  await new Promise((resolve) => cometd.disconnect(resolve));
  const stats = await (await fetch(`${base}/_sfemu/stats`)).json();
  assert.ok(stats.handshakes >= 2, JSON.stringify(stats));
});

test("official CometD JS client: a bad token is refused with 403::Handshake denied and no retry", async () => {
  adapt();
  const cometd = new CometD();
  cometd.unregisterTransport("websocket");
  cometd.unregisterTransport("callback-polling");
  cometd.configure({
    url: `${base}/cometd/${API_VERSION}`,
    appendMessageTypeToURL: false,
    requestHeaders: { Authorization: "Bearer 00Dnot-a-token!nope" },
    logLevel: "warn",
  });
  const handshakes = [];
  cometd.addListener("/meta/handshake", (m) => handshakes.push(m));
  cometd.handshake();
  await waitFor("handshake reply", () => handshakes.length >= 1);
  const hs = handshakes[0];
  assert.equal(hs.successful, false);
  assert.equal(hs.error, "403::Handshake denied");
  assert.equal(hs.ext.sfdc.failureReason, "401::Authentication invalid");
  assert.equal(hs.advice.reconnect, "none");
  // reconnect "none": the client gives up instead of hammering the server.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(handshakes.length, 1);
  assert.equal(cometd.isDisconnected(), true);
});

test("official CometD JS client with a token from the OAuth password grant", async () => {
  adapt();
  const form = new URLSearchParams({
    grant_type: "password",
    client_id: "sfemu-consumer-key",
    client_secret: "sfemu-consumer-secret",
    username: "user@example.com",
    password: "password",
  });
  const r = await fetch(`${base}/services/oauth2/token`, { method: "POST", body: form });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/json;charset=UTF-8");
  const token = await r.json();
  assert.equal(token.instance_url, base);
  assert.equal(typeof token.issued_at, "string");

  const cometd = new CometD();
  cometd.unregisterTransport("websocket");
  cometd.unregisterTransport("callback-polling");
  cometd.configure({
    url: `${token.instance_url}/cometd/${API_VERSION}`,
    appendMessageTypeToURL: false,
    requestHeaders: { Authorization: `${token.token_type} ${token.access_token}` },
    logLevel: "warn",
  });
  const channel = "/topic/ConformancePassword";
  const events = [];
  const subscribed = new Promise((resolve) => {
    cometd.handshake((hs) => {
      assert.equal(hs.successful, true, JSON.stringify(hs));
      cometd.subscribe(channel, (m) => events.push(m), (reply) => resolve(reply));
    });
  });
  assert.equal((await subscribed).successful, true);
  await control("publish", { channel, count: 1 });
  await waitFor("event", () => events.length === 1);
  assert.equal(events[0].channel, channel);
  await new Promise((resolve) => cometd.disconnect(resolve));
});
