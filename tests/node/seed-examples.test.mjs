// Every example of the seed's documentation (aiosfstream 0.2.0), in JavaScript, against sfemu,
// plus the authenticators the seed lacks (JWT bearer, client credentials, refresh token).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Client,
  SalesforceStreamingClient,
  PasswordAuthenticator,
  RefreshTokenAuthenticator,
  JwtBearerAuthenticator,
  ClientCredentialsAuthenticator,
  ReplayOption,
  ReplayMarkerStorage,
  MappingStorage,
  DefaultMappingStorage,
  ServerError,
  AuthenticationError,
} from "sfstream";
import { startSfemu, CREDENTIALS } from "../helpers/sfemu.mjs";

let emu;
let privateKeyPem;
before(async () => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" });
  const dir = mkdtempSync(join(tmpdir(), "sfstream-jwt-"));
  const pub = join(dir, "public.pem");
  writeFileSync(pub, publicKey.export({ type: "spki", format: "pem" }));
  emu = await startSfemu(["--hold-timeout", "2000", "--jwt-public-key", pub]);
});
after(async () => {
  await emu?.stop();
});

const creds = () => ({ ...CREDENTIALS, loginUrl: emu.url });
const next = (client) => client.receive({ signal: AbortSignal.timeout(10000) });

async function refreshTokenFromCodeFlow() {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const redirect = "http://127.0.0.1/callback";
  const authorize = new URL("/services/oauth2/authorize", emu.url);
  for (const [k, v] of Object.entries({
    response_type: "code",
    client_id: CREDENTIALS.consumerKey,
    redirect_uri: redirect,
    code_challenge: challenge,
    code_challenge_method: "S256",
    scope: "api refresh_token",
  })) authorize.searchParams.set(k, v);
  const res = await fetch(authorize, { redirect: "manual" });
  assert.equal(res.status, 302);
  const code = new URL(res.headers.get("location")).searchParams.get("code");
  const token = await fetch(new URL("/services/oauth2/token", emu.url), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      client_id: CREDENTIALS.consumerKey,
      client_secret: CREDENTIALS.consumerSecret,
      redirect_uri: redirect,
      code_verifier: verifier,
    }),
  }).then((r) => r.json());
  assert.ok(token.refresh_token, "the code flow returns a refresh token");
  return token.refresh_token;
}

describe("Quickstart: authentication", () => {
  test("Client(PasswordAuthenticator) equals SalesforceStreamingClient", async () => {
    const client = new Client(new PasswordAuthenticator(creds()));
    await client.open();
    await client.subscribe("/topic/foo");
    await emu.control("publish", { channel: "/topic/foo", count: 1 });
    assert.equal((await next(client)).channel, "/topic/foo");
    await client.close();
  });

  test("RefreshTokenAuthenticator", async () => {
    const refreshToken = await refreshTokenFromCodeFlow();
    const auth = new RefreshTokenAuthenticator({ consumerKey: CREDENTIALS.consumerKey, consumerSecret: CREDENTIALS.consumerSecret, refreshToken, loginUrl: emu.url });
    const client = new Client(auth);
    await client.open();
    assert.equal(auth.instanceUrl, emu.url);
    await client.close();
    const bad = new Client(new RefreshTokenAuthenticator({ consumerKey: CREDENTIALS.consumerKey, refreshToken: "not-a-token", loginUrl: emu.url }));
    await assert.rejects(bad.open(), (e) => e instanceof AuthenticationError && e.error === "invalid_grant");
  });

  test("JwtBearerAuthenticator signs RS256 with WebCrypto", async () => {
    const auth = new JwtBearerAuthenticator({ consumerKey: CREDENTIALS.consumerKey, username: CREDENTIALS.username, privateKey: privateKeyPem, loginUrl: emu.url });
    const client = new Client(auth);
    await client.open();
    await client.subscribe("/event/Jwt__e");
    await emu.control("publish", { channel: "/event/Jwt__e", count: 1 });
    assert.equal((await next(client)).channel, "/event/Jwt__e");
    await client.close();
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
    const wrong = new Client(new JwtBearerAuthenticator({ consumerKey: CREDENTIALS.consumerKey, username: CREDENTIALS.username, privateKey: other, loginUrl: emu.url }));
    await assert.rejects(wrong.open(), AuthenticationError);
    assert.throws(() => new JwtBearerAuthenticator({ consumerKey: "k", username: "u", privateKey: "not a pem" }), /privateKey/);
  });

  test("ClientCredentialsAuthenticator", async () => {
    const auth = new ClientCredentialsAuthenticator({ consumerKey: CREDENTIALS.consumerKey, consumerSecret: CREDENTIALS.consumerSecret, loginUrl: emu.url });
    const client = new Client(auth);
    await client.open();
    assert.equal(client.connectionType, "long-polling");
    await client.close();
  });

  test("sandbox: true targets test.salesforce.com; http to a remote host is refused", async () => {
    const a = new PasswordAuthenticator({ ...CREDENTIALS, sandbox: true });
    assert.equal(a.loginUrl, "https://test.salesforce.com");
    assert.throws(() => new PasswordAuthenticator({ ...CREDENTIALS, loginUrl: "http://example.com" }), (e) => e instanceof TypeError && /loginUrl must use https/.test(e.message));
    const allowed = new PasswordAuthenticator({ ...CREDENTIALS, loginUrl: "http://example.com", allowInsecureHttp: true });
    assert.equal(allowed.loginUrl, "http://example.com");
  });
});

describe("Quickstart: connecting, channels, subscriptions", () => {
  test("open/close, subscribe/unsubscribe, subscriptions", async () => {
    const client = new SalesforceStreamingClient(creds());
    await client.open();
    await client.subscribe("/topic/foo");
    await client.subscribe("/topic/bar");
    await client.unsubscribe("/topic/foo");
    assert.deepEqual([...client.subscriptions], ["/topic/bar"]);
    await emu.control("publish", { channel: "/topic/foo", count: 2 });
    await emu.control("publish", { channel: "/topic/bar", count: 1 });
    const m = await next(client);
    assert.equal(m.channel, "/topic/bar", "no message from the unsubscribed channel");
    await client.close();
  });

  test("publish to a generic streaming channel returns the server's reply", async () => {
    const client = new SalesforceStreamingClient(creds());
    await client.open();
    await client.subscribe("/u/Notifications");
    const reply = await client.publish("/u/Notifications", "hello");
    assert.equal(reply.successful, true);
    assert.equal((await next(client)).data.payload, "hello");
    await assert.rejects(client.publish("/topic/foo", { a: 1 }), ServerError);
    await client.close();
  });
});

describe("Replay configuration (Advanced Usage)", () => {
  test("MappingStorage over a Map, then DefaultMappingStorage with ALL_EVENTS", async () => {
    const replay = new Map();
    await emu.control("publish", { channel: "/topic/Mapped", count: 2 });
    const c1 = new SalesforceStreamingClient({ ...creds(), replay: new MappingStorage(replay) });
    await c1.open();
    await c1.subscribe("/topic/Mapped");
    await emu.control("publish", { channel: "/topic/Mapped", count: 1 });
    const live = await next(c1);
    await c1.close();
    assert.equal(replay.get("/topic/Mapped").replayId, live.data.event.replayId, "first connection: only new events, marker stored");

    const all = new Map();
    const c2 = new SalesforceStreamingClient({ ...creds(), replay: new DefaultMappingStorage(all, ReplayOption.ALL_EVENTS) });
    await c2.open();
    await c2.subscribe("/topic/Mapped");
    const ids = [(await next(c2)).data.event.replayId, (await next(c2)).data.event.replayId, (await next(c2)).data.event.replayId];
    assert.equal(ids.length, 3, "all retained events, then new ones");
    await c2.close();
  });

  test("subscription errors: recover by deleting the marker and subscribing again", async () => {
    const replay = new Map([["/topic/Expired", { replayId: 123456789, date: new Date().toISOString() }]]);
    const client = new SalesforceStreamingClient({ ...creds(), replay });
    await client.open();
    try {
      await client.subscribe("/topic/Expired");
      assert.fail("expected a ServerError");
    } catch (error) {
      assert.ok(error instanceof ServerError);
      assert.match(error.errorMessage, /^The replayId \{123456789\} you provided was invalid\. {1,2}Please provide a valid ID, -2 to replay all events, or -1 to replay only new events\.$/);
      // error.response is the server's reply message as sent
      assert.equal(error.response.channel, "/meta/subscribe");
      assert.equal(error.response.subscription, "/topic/Expired");
      assert.equal(error.response.successful, false);
      assert.equal(typeof error.response.clientId, "string");
      replay.delete("/topic/Expired");
      await client.subscribe("/topic/Expired");
    }
    await emu.control("publish", { channel: "/topic/Expired", count: 1 });
    assert.equal((await next(client)).channel, "/topic/Expired");
    await client.close();
  });

  test("replayFallback resubscribes with the given ReplayOption after a rejected replay id", async () => {
    await emu.control("publish", { channel: "/topic/Fallback", count: 2 });
    const replay = new Map([["/topic/Fallback", { replayId: 987654321, date: new Date().toISOString() }]]);
    const client = new SalesforceStreamingClient({ ...creds(), replay, replayFallback: ReplayOption.ALL_EVENTS });
    await client.open();
    await client.subscribe("/topic/Fallback");
    const a = await next(client);
    const b = await next(client);
    assert.ok(a.data.event.replayId < b.data.event.replayId, "retained events replayed after the fallback");
    await client.close();
  });

  test("a custom ReplayMarkerStorage (get/set)", async () => {
    const data = new Map();
    class MyReplayMarkerStorage extends ReplayMarkerStorage {
      async setReplayMarker(subscription, replayMarker) {
        data.set(subscription, replayMarker);
      }
      async getReplayMarker(subscription) {
        return data.get(subscription) ?? null;
      }
    }
    const client = new SalesforceStreamingClient({ ...creds(), replay: new MyReplayMarkerStorage() });
    await client.open();
    await client.subscribe("/topic/Mine");
    await emu.control("publish", { channel: "/topic/Mine", count: 1 });
    const m = await next(client);
    await client.close();
    assert.equal(data.get("/topic/Mine").replayId, m.data.event.replayId);
  });
});

describe("Network failures and prefetching", () => {
  test("the client reconnects transparently and resubscribes", async () => {
    const client = new SalesforceStreamingClient({ ...creds(), connectionTimeout: null });
    await client.open();
    await client.subscribe("/topic/Net");
    await emu.control("restart", {});
    await emu.control("publish", { channel: "/topic/Net", count: 1 });
    assert.equal((await next(client)).channel, "/topic/Net");
    await client.close();
  });

  test("messages are prefetched before receive() is called", async () => {
    const client = new SalesforceStreamingClient({ ...creds(), maxPendingCount: 5 });
    await client.open();
    await client.subscribe("/topic/Pre");
    await emu.control("publish", { channel: "/topic/Pre", count: 3 });
    const t0 = Date.now();
    while (client.pendingCount < 3 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(client.pendingCount, 3);
    assert.equal(client.hasPendingMessages, true);
    await client.close();
    assert.equal((await client.receive()).channel, "/topic/Pre", "pending messages stay receivable after close");
  });
});

describe("Custom JSON libraries (the seed's json_dumps / json_loads)", () => {
  test("jsonParse parses every response and jsonStringify serialises published data", async () => {
    let parsed = 0;
    let stringified = 0;
    const client = new SalesforceStreamingClient({
      ...creds(),
      jsonParse: (text) => {
        parsed++;
        return JSON.parse(text);
      },
      jsonStringify: (value) => {
        stringified++;
        return JSON.stringify(value);
      },
    });
    await client.open();
    await client.subscribe("/u/CustomJson");
    await client.publish("/u/CustomJson", "via a custom serialiser");
    const m = await next(client);
    assert.equal(m.data.payload, "via a custom serialiser");
    assert.ok(parsed >= 3, `the parser saw the handshake, connect and subscribe replies (${parsed})`);
    assert.equal(stringified, 1);
    await client.close();
    assert.throws(() => new SalesforceStreamingClient({ ...creds(), jsonParse: "JSON.parse" }), /jsonParse/);
  });
});
