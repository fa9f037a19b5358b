// Recovery from everything sfemu can do to a client, with no lost and no duplicated event.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { SalesforceStreamingClient, ReplayOption, TransportTimeoutError, AuthenticationError } from "sfstream";
import { startSfemu, CREDENTIALS, until } from "../helpers/sfemu.mjs";
import { sfemuForFile } from "../helpers/fixture.mjs";

const emu = sfemuForFile(["--hold-timeout", "2000"]);

const login = (extra = {}) => ({ ...CREDENTIALS, loginUrl: emu.url, ...extra });
const rid = (m) => m.data.event.replayId;

/** Receive until `count` distinct events of `channel` arrived; fail on a duplicate. */
async function collect(client, channel, count, seen, timeout = 15000) {
  const signal = AbortSignal.timeout(timeout);
  while (seen.size < count) {
    const m = await client.receive({ signal });
    if (m.channel !== channel) continue;
    const id = rid(m);
    assert.ok(!seen.has(id), `duplicate replay id ${id}`);
    seen.add(id);
  }
}

const faults = [
  { name: "expired sessions", path: "expire-sessions", body: {}, expect: "rehandshake" },
  // A dropped held long-poll on a reused keep-alive socket is re-sent on a fresh connection by the
  // Node transport (as browsers do): no status change is needed, only no loss.
  { name: "dropped connections", path: "drop-connections", body: {}, expect: null },
  { name: "revoked tokens", path: "revoke-tokens", body: {}, expect: "reauthenticated" },
  { name: "a restart", path: "restart", body: {}, expect: "rehandshake" },
  { name: "a 503 burst", path: "fail", body: { status: 503, count: 4 }, expect: "reconnecting", before: true },
  { name: "a 500 burst", path: "fail", body: { status: 500, count: 3 }, expect: "reconnecting", before: true },
  { name: "a server-initiated /meta/disconnect", path: "disconnect", body: {}, expect: "rehandshake" },
  // The reply with the next events is lost on its way (the server has already taken them off the
  // session's queue): only a new session replaying from the last delivered event gets them back.
  { name: "a reply with events cut on its way", path: "cut-responses", body: { count: 1 }, expect: "rehandshake" },
];

describe("recovery with no lost event", () => {
  for (const f of faults) {
    test(`after ${f.name}`, async () => {
      const ch = `/event/Recover_${f.path.replace(/-/g, "_")}_${f.body.status ?? 0}__e`;
      const statuses = [];
      const client = new SalesforceStreamingClient(login({ replay: ReplayOption.NEW_EVENTS, onStatus: (s) => statuses.push(s), connectionTimeout: 20000 }));
      await client.open();
      await client.subscribe(ch);
      const seen = new Set();
      await emu.control("publish", { channel: ch, count: 20 });
      await collect(client, ch, 20, seen);

      if (f.before) {
        // Failures apply to the next K requests: force a new connect by publishing after arming them.
        await emu.control(f.path, f.body);
        await emu.control("drop-connections", {});
      } else {
        await emu.control(f.path, f.body);
      }
      // Events published while the client recovers must all arrive, once.
      await emu.control("publish", { channel: ch, count: 30 });
      await collect(client, ch, 50, seen);
      await emu.control("publish", { channel: ch, count: 10 });
      await collect(client, ch, 60, seen);

      assert.equal(seen.size, 60);
      if (f.expect !== null) {
        assert.ok(statuses.some((s) => s.type === f.expect), `a ${f.expect} status was reported (got ${statuses.map((s) => s.type).join(",")})`);
      }
      for (const s of statuses) {
        const text = JSON.stringify(s);
        assert.ok(!text.includes(CREDENTIALS.password) && !text.includes(CREDENTIALS.consumerSecret), "no secret in status events");
      }
      const stats = client.stats;
      assert.ok(stats.handshakes <= 6, `no handshake storm (${stats.handshakes} handshakes)`);
      await client.close();
    });
  }
});

describe("a failure burst shorter than connectionTimeout", () => {
  // Five 503s take about 5 s of back-off; the sixth try used to be scheduled past the default
  // 10 s timeout (the back-off doubles), and the client failed with half its budget unused.
  test("five 503s in a row under the default connectionTimeout: the client rides them out", { timeout: 30000 }, async () => {
    const ch = "/event/Recover_burst5__e";
    const statuses = [];
    const client = new SalesforceStreamingClient(login({ replay: ReplayOption.NEW_EVENTS, onStatus: (s) => statuses.push(s) }));
    await client.open();
    await client.subscribe(ch);
    // The event below must answer a held long-poll: armed between two long-polls, the 503s would
    // meet the next one first, and its back-off would outlast the first wait.
    await until(async () => (await emu.control("stats")).sessions.some((s) => s.subscriptions.includes(ch) && s.held), { timeout: 5000, what: "the long-poll held" });
    await emu.control("fail", { status: 503, count: 5 });
    // The event answers the held long-poll; the next five requests get the 503.
    await emu.control("publish", { channel: ch, count: 1 });
    const seen = new Set();
    await collect(client, ch, 1, seen, 5000);
    await until(() => statuses.filter((s) => s.type === "reconnecting").length >= 5, { timeout: 15000, what: "five 503s" });
    await emu.control("publish", { channel: ch, count: 5 });
    await collect(client, ch, 6, seen, 20000);
    assert.equal(client.closed, false);
    assert.ok(statuses.filter((s) => s.type === "reconnecting").length >= 5, statuses.map((s) => s.type).join(","));
    await client.close();
  });
});

describe("a failed long-poll when the server holds long-polls longer than connectionTimeout", () => {
  // Salesforce holds a long-poll up to 110 s, and connectionTimeout defaults to 10 s. The retry
  // after a failed long-poll must ask for an immediate reply: a held retry would outlast the
  // connection timeout, and the client would give up on a connection that works.
  test("the retry is answered at once and the client stays up", async () => {
    const own = await startSfemu(["--hold-timeout", "4000"]);
    const ch = "/event/HeldRetry__e";
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...CREDENTIALS, loginUrl: own.url, connectionTimeout: 1500, onStatus: (s) => statuses.push(s.type) });
    try {
      await client.open();
      await client.subscribe(ch);
      await own.control("fail", { status: 503, count: 1 });
      // The event answers the held long-poll; the next long-poll gets the 503.
      await own.control("publish", { channel: ch, count: 1 });
      const seen = new Set();
      await collect(client, ch, 1, seen, 5000);
      await until(() => statuses.includes("reconnecting"), { what: "the 503 on the next long-poll" });
      // Longer than connectionTimeout plus a whole hold: the session must still be up.
      await new Promise((r) => setTimeout(r, 5000));
      assert.equal(client.closed, false, `statuses: ${statuses.join(", ")}`);
      await own.control("publish", { channel: ch, count: 2 });
      await collect(client, ch, 3, seen, 5000);
      assert.equal(client.stats.handshakes, 1, "no re-handshake was needed");
    } finally {
      await client.close().catch(() => {});
      await own.stop();
    }
  });
});

describe("giving up", () => {
  test("connectionTimeout: receive() raises TransportTimeoutError once the server is gone for good", async () => {
    const own = await startSfemu(["--hold-timeout", "2000"]);
    const client = new SalesforceStreamingClient({ ...CREDENTIALS, loginUrl: own.url, connectionTimeout: 1500 });
    await client.open();
    await client.subscribe("/topic/Gone");
    await own.stop();
    const started = Date.now();
    await assert.rejects(client.receive({ signal: AbortSignal.timeout(30000) }), TransportTimeoutError);
    assert.ok(Date.now() - started < 25000);
    assert.equal(client.closed, true);
  });

  test("a revoked token with an authenticator that can no longer log in fails with AuthenticationError", async () => {
    const own = await startSfemu(["--hold-timeout", "2000"]);
    let calls = 0;
    const grant = await own.control("token", { username: CREDENTIALS.username });
    const { Client, AccessTokenAuthenticator } = await import("sfstream");
    const auth = new AccessTokenAuthenticator(async () => {
      calls++;
      if (calls > 1) throw new Error("no more tokens");
      return { accessToken: grant.access_token, instanceUrl: grant.instance_url };
    });
    const client = new Client(auth, { connectionTimeout: 20000 });
    await client.open();
    await client.subscribe("/topic/Revoked");
    await own.control("revoke-tokens", {});
    await assert.rejects(client.receive({ signal: AbortSignal.timeout(20000) }), (e) => e instanceof AuthenticationError || e.name === "AuthenticationError");
    assert.ok(calls >= 2, "the authenticator was asked again");
    await own.stop();
  });
});
