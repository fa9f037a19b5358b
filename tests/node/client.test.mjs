// The client in Node, against sfemu running as its own process, through the packed package.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  SalesforceStreamingClient,
  PasswordAuthenticator,
  AccessTokenAuthenticator,
  ReplayOption,
  ReplayMarker,
  ReplayMarkerStorage,
  DefaultMappingStorage,
  ConstantReplayId,
  ServerError,
  AuthenticationError,
  ClientInvalidOperation,
  TransportTimeoutError,
  SfstreamError,
  AiosfstreamException,
} from "sfstream";
import { CREDENTIALS, until } from "../helpers/sfemu.mjs";
import { sfemuForFile } from "../helpers/fixture.mjs";

const emu = sfemuForFile(["--hold-timeout", "3000"]);

const login = () => ({ ...CREDENTIALS, loginUrl: emu.url });
const replayIdOf = (m) => m.data.event.replayId;

async function take(client, n, { timeout = 10000 } = {}) {
  const out = [];
  const signal = AbortSignal.timeout(timeout);
  for (let i = 0; i < n; i++) out.push(await client.receive({ signal }));
  return out;
}

describe("quick start (the seed's Usage example)", () => {
  test("password login, subscribe two topics, iterate messages", async () => {
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...login(), onStatus: (s) => statuses.push(s.type) });
    assert.equal(client.closed, true);
    await client.open();
    assert.equal(client.closed, false);
    assert.equal(client.connectionType, "long-polling");
    await client.subscribe("/topic/one");
    await client.subscribe("/topic/two");
    assert.deepEqual([...client.subscriptions].sort(), ["/topic/one", "/topic/two"]);
    await emu.control("publish", { channel: "/topic/one", count: 2 });
    await emu.control("publish", { channel: "/topic/two", count: 1 });
    const seen = [];
    for await (const message of client) {
      assert.equal(typeof message.channel, "string");
      assert.equal(typeof message.data, "object");
      seen.push(message.channel);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen.sort(), ["/topic/one", "/topic/one", "/topic/two"]);
    assert.equal(client.closed, false, "break leaves the client open");
    await client.close();
    assert.equal(client.closed, true);
    assert.ok(statuses.includes("connected"));
    assert.ok(statuses.includes("closed"));
  });

  test("messages are delivered exactly as Salesforce sends them, UTF-8 intact", async () => {
    const client = new SalesforceStreamingClient(login());
    await client.open();
    await client.subscribe("/u/Greetings");
    const text = "héllo — 世界 🌍 ".repeat(500);
    await client.publish("/u/Greetings", text);
    const [m] = await take(client, 1);
    assert.equal(m.channel, "/u/Greetings");
    assert.equal(m.data.payload, text);
    assert.equal(typeof m.data.event.replayId, "number");
    assert.match(m.data.event.createdDate, /Z$/);
    await client.close();
  });
});

describe("authentication", () => {
  test("a failed login raises AuthenticationError with Salesforce's error", async () => {
    const client = new SalesforceStreamingClient({ ...login(), password: "wrong-password" });
    await assert.rejects(client.open(), (e) => {
      assert.ok(e instanceof AuthenticationError);
      assert.ok(e instanceof SfstreamError);
      assert.equal(e.error, "invalid_grant");
      assert.equal(e.errorDescription, "authentication failure");
      assert.ok(!e.message.includes("wrong-password"), "no secret in the message");
      assert.ok(!e.message.includes(CREDENTIALS.consumerSecret));
      return true;
    });
    assert.equal(client.closed, true);
  });

  test("authenticators expose their results", async () => {
    const auth = new PasswordAuthenticator(login());
    const client = new Client(auth);
    await client.open();
    assert.equal(auth.instanceUrl, emu.url);
    assert.equal(auth.tokenType, "Bearer");
    assert.equal(typeof auth.accessToken, "string");
    assert.match(auth.issuedAt, /^\d+$/);
    assert.match(auth.id, /\/id\//);
    assert.ok(!JSON.stringify(auth).includes(CREDENTIALS.password));
    assert.ok(!JSON.stringify(auth).includes(auth.accessToken));
    await client.close();
  });

  test("AccessTokenAuthenticator with a fixed token", async () => {
    const grant = await emu.control("token", { username: CREDENTIALS.username });
    const client = new Client(new AccessTokenAuthenticator({ accessToken: grant.access_token, instanceUrl: grant.instance_url }));
    await client.open();
    await client.subscribe("/event/Fixed__e");
    await emu.control("publish", { channel: "/event/Fixed__e", count: 1 });
    const [m] = await take(client, 1);
    assert.equal(m.channel, "/event/Fixed__e");
    assert.equal(typeof m.data.payload, "object");
    await client.close();
  });
});

describe("replay", () => {
  test("ALL_EVENTS replays retained events, NEW_EVENTS does not", async () => {
    const ch = "/event/Replayed__e";
    await emu.control("publish", { channel: ch, count: 5 });
    const all = new SalesforceStreamingClient({ ...login(), replay: ReplayOption.ALL_EVENTS });
    await all.open();
    await all.subscribe(ch);
    const got = await take(all, 5);
    assert.equal(got.length, 5);
    const ids = got.map(replayIdOf);
    assert.deepEqual([...ids].sort((a, b) => a - b), ids, "in replay-id order");
    await all.close();

    const fresh = new SalesforceStreamingClient({ ...login(), replay: ReplayOption.NEW_EVENTS });
    await fresh.open();
    await fresh.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 1 });
    const [m] = await take(fresh, 1);
    assert.ok(replayIdOf(m) > ids[4]);
    await fresh.close();
  });

  test("a Map as storage resumes where the last consumer left off, with no loss", async () => {
    const ch = "/topic/Resume";
    const store = new Map();
    const c1 = new SalesforceStreamingClient({ ...login(), replay: store });
    await c1.open();
    await c1.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 3 });
    const first = await take(c1, 3);
    await c1.close();
    const marker = ReplayMarker.from(store.get(ch));
    assert.ok(marker, "a marker was stored");
    assert.equal(marker.replayId, replayIdOf(first[2]));
    assert.ok(marker.date && !Number.isNaN(Date.parse(marker.date)));

    await emu.control("publish", { channel: ch, count: 4 });
    const c2 = new SalesforceStreamingClient({ ...login(), replay: store });
    await c2.open();
    await c2.subscribe(ch);
    const missed = await take(c2, 4);
    assert.ok(missed.every((m) => replayIdOf(m) > marker.replayId));
    await c2.close();
  });

  test("DefaultMappingStorage and ConstantReplayId", async () => {
    const ch = "/event/Defaulted__e";
    await emu.control("publish", { channel: ch, count: 2 });
    const c = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(new Map(), ReplayOption.ALL_EVENTS) });
    await c.open();
    await c.subscribe(ch);
    assert.equal((await take(c, 2)).length, 2);
    await c.close();

    const k = new SalesforceStreamingClient({ ...login(), replay: new ConstantReplayId(ReplayOption.ALL_EVENTS) });
    await k.open();
    await k.subscribe(ch);
    assert.equal((await take(k, 2)).length, 2);
    await k.close();
  });

  test("a custom ReplayMarkerStorage is read on subscribe and written after consumption", async () => {
    const ch = "/topic/Custom";
    const calls = [];
    class MyStorage extends ReplayMarkerStorage {
      stored = new Map();
      async getReplayMarker(sub) {
        calls.push(["get", sub]);
        return this.stored.get(sub) ?? null;
      }
      async setReplayMarker(sub, marker) {
        calls.push(["set", sub, marker.replayId]);
        assert.ok(marker instanceof ReplayMarker);
        this.stored.set(sub, marker);
      }
    }
    const storage = new MyStorage();
    const c = new SalesforceStreamingClient({ ...login(), replay: storage });
    await c.open();
    await c.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 2 });
    const got = await take(c, 2);
    await c.close();
    assert.deepEqual(calls[0], ["get", ch]);
    assert.equal(storage.stored.get(ch).replayId, replayIdOf(got[1]));
  });

  test("replayFallback: a marker outside retention falls back instead of failing", async () => {
    const ch = "/topic/Old";
    const store = new Map([[ch, { replayId: 1, date: new Date(Date.now() - 3 * 86400e3).toISOString() }]]);
    const statuses = [];
    const c = new SalesforceStreamingClient({ ...login(), replay: store, replayFallback: ReplayOption.NEW_EVENTS, onStatus: (s) => statuses.push(s) });
    await c.open();
    await c.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 1 });
    assert.equal((await take(c, 1)).length, 1);
    assert.ok(statuses.some((s) => s.type === "replayFallback" && s.channel === ch));
    await c.close();
  });

  test("without replayFallback, a rejected replay id is a ServerError with the parsed fields", async () => {
    const ch = "/topic/Rejected";
    const store = new Map([[ch, { replayId: 999999999, date: new Date().toISOString() }]]);
    const c = new SalesforceStreamingClient({ ...login(), replay: store });
    await c.open();
    await assert.rejects(c.subscribe(ch), (e) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.errorCode, 400);
      assert.deepEqual(e.errorArgs, []);
      assert.match(e.errorMessage, /The replayId \{999999999\} you provided was invalid/);
      return true;
    });
    await c.close();
  });
});

describe("prefetching", () => {
  test("the buffer stays bounded by maxPendingCount and nothing is lost", async () => {
    const ch = "/event/Burst__e";
    const c = new SalesforceStreamingClient({ ...login(), maxPendingCount: 10 });
    await c.open();
    await c.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 300 });
    await until(() => c.pendingCount >= 10, { what: "prefetch" });
    await new Promise((r) => setTimeout(r, 300));
    const batchCap = 300; // one response may overshoot, but polling stops until it drains
    assert.ok(c.pendingCount <= batchCap);
    const got = await take(c, 300);
    const ids = got.map(replayIdOf);
    assert.equal(new Set(ids).size, 300, "no duplicates");
    assert.deepEqual([...ids].sort((a, b) => a - b), ids, "in order");
    assert.equal(c.hasPendingMessages, false);
    await c.close();
  });
});

describe("errors and validation", () => {
  test("operations on a closed client raise ClientInvalidOperation", async () => {
    const c = new SalesforceStreamingClient(login());
    await assert.rejects(c.subscribe("/topic/x"), ClientInvalidOperation);
    await assert.rejects(c.receive(), ClientInvalidOperation);
    assert.ok(new ClientInvalidOperation("x") instanceof AiosfstreamException);
  });

  test("invalid options raise TypeError naming the option", () => {
    assert.throws(() => new SalesforceStreamingClient({ ...login(), maxPendingCount: "10" }), /maxPendingCount/);
    assert.throws(() => new SalesforceStreamingClient({ ...login(), connectionTimeout: -1 }), /connectionTimeout/);
    assert.throws(() => new SalesforceStreamingClient({ ...login(), replay: 42 }), /replay/);
    assert.throws(() => new SalesforceStreamingClient({ ...login(), replayFallback: 3 }), /replayFallback/);
    assert.throws(() => new SalesforceStreamingClient({ ...login(), username: "" }), /username/);
    assert.throws(() => new SalesforceStreamingClient({ ...login(), apiVersion: "20.0" }), /apiVersion/);
    assert.throws(() => new SalesforceStreamingClient({ ...login(), bogus: 1 }), /bogus/);
    assert.throws(() => new Client({}), /authenticator/);
  });

  test("a channel that does not exist is a ServerError", async () => {
    const c = new SalesforceStreamingClient(login());
    await c.open();
    await assert.rejects(c.subscribe("no-leading-slash"), TypeError);
    await assert.rejects(c.subscribe("/nothing/here"), (e) => e instanceof ServerError && e.errorCode === 400);
    await c.close();
  });
});

describe("cancellation and disposal", () => {
  test("AbortSignal on receive rejects with the reason and loses nothing", async () => {
    const ch = "/topic/Abort";
    const c = new SalesforceStreamingClient(login());
    await c.open();
    await c.subscribe(ch);
    const ac = new AbortController();
    const pending = c.receive({ signal: ac.signal });
    ac.abort(new Error("stop waiting"));
    await assert.rejects(pending, /stop waiting/);
    await emu.control("publish", { channel: ch, count: 1 });
    const [m] = await take(c, 1);
    assert.equal(m.channel, ch);
    await c.close();
  });

  test("iteration with an aborted signal ends quietly", async () => {
    const c = new SalesforceStreamingClient(login());
    await c.open();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    let n = 0;
    for await (const _ of c.messages({ signal: ac.signal })) n++;
    assert.equal(n, 0);
    await c.close();
  });

  test("Symbol.asyncDispose closes the client", async () => {
    const c = new SalesforceStreamingClient(login());
    await c.open();
    await c[Symbol.asyncDispose]();
    assert.equal(c.closed, true);
  });
});
