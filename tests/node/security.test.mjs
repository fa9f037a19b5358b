// Secrets: the main scenarios run against sfemu started with recognisable secrets; none of them
// (consumer secret, password, access token, refresh token) may appear in any error message or
// stack or cause, status event, logger line, console output, stored replay marker, or in
// JSON.stringify / util.inspect of the authenticator and the client. Tokens stay in memory (private
// fields). A plain-http URL to a host that is not loopback is refused unless allowInsecureHttp.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { createServer } from "node:http";
import {
  Client,
  SalesforceStreamingClient,
  PasswordAuthenticator,
  AccessTokenAuthenticator,
  AuthenticationError,
  SfstreamError,
  MappingStorage,
} from "sfstream";
import { startSfemu, until } from "../helpers/sfemu.mjs";

const CONSUMER_KEY = "sec-consumer-key";
const CONSUMER_SECRET = "CSECRET-5d1f0a7e-consumer";
const USER = "secure.user@example.com";
const PASSWORD = "PWSECRET-9c4b21-password";
const SECRETS = [CONSUMER_SECRET, PASSWORD];

let emu;
const consoleLines = [];
const originals = {};
before(async () => {
  emu = await startSfemu(["--hold-timeout", "1500", "--consumer-key", CONSUMER_KEY, "--consumer-secret", CONSUMER_SECRET, "--user", `${USER}:${PASSWORD}`]);
  // Anything the package prints goes through here too.
  for (const k of ["log", "info", "warn", "error", "debug"]) {
    originals[k] = console[k];
    console[k] = (...args) => {
      consoleLines.push(args.map((a) => (typeof a === "string" ? a : inspect(a, { depth: 5 }))).join(" "));
      originals[k](...args);
    };
  }
});
after(async () => {
  for (const k of Object.keys(originals)) console[k] = originals[k];
  await emu?.stop();
});

const creds = (extra = {}) => ({ consumerKey: CONSUMER_KEY, consumerSecret: CONSUMER_SECRET, username: USER, password: PASSWORD, loginUrl: emu.url, ...extra });

/** Everything an observer could see, as text. */
function dumpError(e, depth = 0) {
  if (!(e instanceof Error) || depth > 5) return String(e);
  const extra = Object.keys(e).map((k) => `${k}=${safeJson(e[k])}`).join(" ");
  return `${e.name}: ${e.message}\n${e.stack}\n${extra}\n${inspect(e, { depth: 6 })}\ncause: ${dumpError(e.cause, depth + 1)}`;
}
function safeJson(v) {
  try {
    return JSON.stringify(v, (_k, x) => (x instanceof Error ? dumpError(x) : typeof x === "bigint" ? String(x) : x));
  } catch {
    return inspect(v);
  }
}
function assertClean(what, text, secrets) {
  for (const s of secrets) assert.ok(!text.includes(s), `${what} contains the secret ${s.slice(0, 6)}…:\n${text.slice(0, 2000)}`);
}

/** Observe one client: status events, logger lines, errors. */
function observed(make) {
  const seen = { statuses: [], logs: [], errors: [] };
  const c = make({ onStatus: (s) => seen.statuses.push(s), logger: (level, line, s) => seen.logs.push(`${level} ${line} ${safeJson(s)}`) });
  const text = () =>
    [
      ...seen.statuses.map((s) => safeJson(s) + (s.error ? dumpError(s.error) : "")),
      ...seen.logs,
      ...seen.errors.map((e) => dumpError(e)),
      JSON.stringify(c),
      inspect(c, { depth: 6, showHidden: true }),
      JSON.stringify(c.authenticator),
      inspect(c.authenticator, { depth: 6, showHidden: true }),
      Object.values(c.authenticator).map(String).join(" "),
      safeJson(c.stats),
      ...consoleLines,
    ].join("\n");
  return { c, seen, text };
}

async function recv(c, channel, n, timeout = 15000) {
  const signal = AbortSignal.timeout(timeout);
  const out = [];
  while (out.length < n) {
    const m = await c.receive({ signal });
    if (m.channel === channel) out.push(m);
  }
  return out;
}

describe("no secret in anything observable", () => {
  test("password login, durable markers, and every recoverable fault", { timeout: 90000 }, async () => {
    const store = new Map();
    const { c, seen, text } = observed((obs) => new SalesforceStreamingClient(creds({ replay: new MappingStorage(store), connectionTimeout: 20000, ...obs })));
    await c.open();
    const token = c.authenticator.accessToken;
    assert.equal(typeof token, "string");
    assert.ok(token.length > 10, "a real token was issued");
    const ch = "/topic/SecretScenario";
    await c.subscribe(ch);
    let total = 0;
    for (const fault of [null, ["expire-sessions", {}], ["revoke-tokens", {}], ["drop-connections", {}], ["fail", { status: 503, count: 3 }], ["disconnect", {}], ["restart", {}]]) {
      // Each fault meets a held long-poll, as in the field (not the gap between two long-polls).
      if (fault) await until(async () => (await emu.control("stats")).sessions.some((s) => s.subscriptions.includes(ch) && s.held), { timeout: 5000, what: "the long-poll held" });
      if (fault) await emu.control(fault[0], fault[1]);
      if (fault?.[0] === "fail") await emu.control("drop-connections", {});
      await emu.control("publish", { channel: ch, count: 5 });
      total += 5;
      await recv(c, ch, 5);
    }
    const publishReply = await c.publish("/u/SecretNotes", { note: "hello" }).catch((e) => {
      seen.errors.push(e);
      return null;
    });
    const tokens = [token, c.authenticator.accessToken].filter(Boolean);
    await c.close();
    assert.ok(seen.statuses.some((s) => s.type === "reauthenticated"), "the revoked token was replaced");
    assert.ok(store.size >= 1, "markers were stored");
    const storeText = safeJson([...store.entries()]);
    assertClean("stored markers", storeText, [...SECRETS, ...tokens]);
    assertClean("observable output", text() + safeJson(publishReply), [...SECRETS, ...tokens]);
    // Tokens stay in memory: private, not enumerable, not serialised.
    assert.ok(!Object.keys(c.authenticator).includes("accessToken"));
    assert.ok(!JSON.stringify(c.authenticator).includes(tokens[0]));
    assert.ok(total >= 35);
  });

  test("wrong password and wrong consumer secret: AuthenticationError without the secret", { timeout: 30000 }, async () => {
    for (const [field, bad] of [
      ["password", "WRONGPW-SECRET-77aa"],
      ["consumerSecret", "WRONGCS-SECRET-88bb"],
    ]) {
      const { c, seen, text } = observed((obs) => new SalesforceStreamingClient(creds({ [field]: bad, ...obs })));
      const err = await c.open().then(() => null, (e) => e);
      assert.ok(err instanceof AuthenticationError, `AuthenticationError, got ${err}`);
      seen.errors.push(err);
      assertClean(`failed login (${field})`, text(), [...SECRETS, bad]);
    }
  });

  test("a revoked static token: the client fails with a typed error that does not show the token", { timeout: 30000 }, async () => {
    const minted = await emu.control("token", { username: USER });
    const tok = minted.access_token;
    const { c, seen, text } = observed((obs) => new Client(new AccessTokenAuthenticator({ accessToken: tok, instanceUrl: emu.url }), { connectionTimeout: 5000, ...obs }));
    await c.open();
    await c.subscribe("/topic/SecretRevoked");
    await emu.control("revoke-tokens", {});
    await emu.control("drop-connections", {});
    const err = await c.receive({ signal: AbortSignal.timeout(20000) }).then(() => null, (e) => e);
    assert.ok(err instanceof SfstreamError, `typed error, got ${err}`);
    seen.errors.push(err);
    assert.ok(seen.statuses.some((s) => s.type === "failed"));
    assertClean("revoked token", text(), [tok, ...SECRETS]);
  });

  test("a throwing token function: the cause is kept but carries no secret of ours", { timeout: 20000 }, async () => {
    const { c, seen, text } = observed((obs) =>
      new Client(
        new AccessTokenAuthenticator(() => {
          throw new Error("vault unavailable");
        }),
        { connectionTimeout: 1000, ...obs },
      ),
    );
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError);
    seen.errors.push(err);
    assertClean("token function failure", text(), SECRETS);
  });
});

describe("plain http only to loopback unless allowInsecureHttp", () => {
  /** A token endpoint on 127.0.0.1 reachable as http://0.0.0.0:PORT (not a loopback name). */
  async function tokenEndpoint() {
    const hits = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c)).on("end", () => {
        hits.push({ url: req.url, body, authorization: req.headers.authorization ?? null });
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "invalid_grant", error_description: "authentication failure" }));
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    return { hits, server, port: server.address().port };
  }

  test("loginUrl http://<non-loopback> is refused and nothing is sent", { timeout: 15000 }, async () => {
    const ep = await tokenEndpoint();
    try {
      const loginUrl = `http://0.0.0.0:${ep.port}`;
      let err = null;
      try {
        const a = new PasswordAuthenticator({ ...creds(), loginUrl });
        err = await a.authenticate().then(() => null, (e) => e);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof TypeError || err instanceof AuthenticationError, `refused with a typed error, got ${err}`);
      assert.match(err.message, /http|insecure|loopback/i);
      assertClean("refusal", dumpError(err), SECRETS);
      assert.equal(ep.hits.length, 0, "the credentials never left the process");

      // Explicitly allowed: the request goes out (and here fails at the endpoint).
      const allowed = new PasswordAuthenticator({ ...creds(), loginUrl, allowInsecureHttp: true });
      const e2 = await allowed.authenticate().then(() => null, (e) => e);
      assert.ok(e2 instanceof AuthenticationError);
      assert.equal(ep.hits.length, 1, "allowInsecureHttp lets the request through");
      assertClean("allowed failure", dumpError(e2), SECRETS);
    } finally {
      ep.server.close();
    }
  });

  test("a token endpoint answering with a redirect gets no credentials sent on, under the global fetch too", { timeout: 20000 }, async () => {
    // Node's own transport never follows redirects; Deno, Workers and browsers use their global
    // fetch, which follows a 307/308 with the body (the credentials) by default. Run the token
    // request through Node's global fetch to be in their place.
    const { setFetch } = await import("../node_modules/sfstream/dist/wasm/sfstream.js");
    const { nodeFetch } = await import("../node_modules/sfstream/dist/node-transport.js");
    const ep = await tokenEndpoint(); // reached as http://0.0.0.0: not an allowed loginUrl
    const redirector = createServer((req, res) => {
      req.resume().on("end", () => res.writeHead(307, { location: `http://0.0.0.0:${ep.port}/steal` }).end());
    });
    await new Promise((r) => redirector.listen(0, "127.0.0.1", r));
    setFetch(null);
    try {
      for (const status of [307, 308]) {
        redirector.removeAllListeners("request");
        redirector.on("request", (req, res) => req.resume().on("end", () => res.writeHead(status, { location: `http://0.0.0.0:${ep.port}/steal` }).end()));
        const a = new PasswordAuthenticator({ ...creds(), loginUrl: `http://127.0.0.1:${redirector.address().port}` });
        const err = await a.authenticate().then(() => null, (e) => e);
        assert.ok(err instanceof AuthenticationError, `${status}: ${err}`);
        assert.match(err.message, /redirect/);
        assertClean("redirect refusal", dumpError(err), SECRETS);
      }
      assert.equal(ep.hits.length, 0, "the redirect target received nothing");
    } finally {
      setFetch(nodeFetch);
      redirector.close();
      ep.server.close();
    }
  });

  test("https and loopback http are accepted without the flag", () => {
    for (const loginUrl of ["https://login.salesforce.com", "http://127.0.0.1:1", "http://localhost:2", "http://[::1]:3"]) {
      new PasswordAuthenticator({ ...creds(), loginUrl });
    }
  });

  // The instance URL is held to the same rule, wherever it comes from: the access token must
  // never travel in clear to a host that is not loopback.
  test("an instanceUrl http://<non-loopback> never receives the token", { timeout: 20000 }, async () => {
    const ep = await tokenEndpoint();
    const token = "TOKSECRET-plain-http-3e1";
    const instanceUrl = `http://0.0.0.0:${ep.port}`;
    const leaked = () => ep.hits.filter((h) => (h.authorization ?? "").includes(token) || h.body.includes(token)).length;
    try {
      // (a) a static token: refused when constructed, naming instanceUrl, or at open() at the latest.
      let refused = null;
      try {
        const c = new Client(new AccessTokenAuthenticator({ accessToken: token, instanceUrl }), { connectionTimeout: 500 });
        refused = await c.open().then(() => null, (e) => e);
        await c.close().catch(() => {});
      } catch (e) {
        refused = e;
      }
      assert.ok(refused instanceof Error, "a static token to a plain-http remote instance is refused");
      assert.match(refused.message, /instanceUrl|insecure|https|loopback/i);
      assert.ok(!dumpError(refused).includes(token), "the refusal does not show the token");
      // (b) a token function that returns such an instance URL: open() refuses.
      const c2 = new Client(new AccessTokenAuthenticator(async () => ({ accessToken: token, instanceUrl })), { connectionTimeout: 500 });
      const e2 = await c2.open().then(() => null, (e) => e);
      await c2.close().catch(() => {});
      assert.ok(e2 instanceof Error, "open() refuses a plain-http remote instance URL from a token function");
      assert.ok(!dumpError(e2).includes(token));
      assert.equal(leaked(), 0, `the token was sent over plain http to a non-loopback host`);
    } finally {
      ep.server.close();
    }
  });

  test("an OAuth reply whose instance_url is http://<non-loopback> gets no token sent there", { timeout: 20000 }, async () => {
    const remote = await tokenEndpoint(); // stands for the org: any request reaching it is a leak
    const token = "TOKSECRET-oauth-http-9d2";
    const hits = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c)).on("end", () => {
        hits.push(body);
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({ access_token: token, instance_url: `http://0.0.0.0:${remote.port}`, id: "https://login.example/id/00D/005", token_type: "Bearer", issued_at: "1" }),
        );
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    try {
      const c = new SalesforceStreamingClient({ ...creds(), loginUrl: `http://127.0.0.1:${server.address().port}`, connectionTimeout: 500 });
      const err = await c.open().then(() => null, (e) => e);
      await c.close().catch(() => {});
      assert.equal(hits.length >= 1, true, "the (loopback) token endpoint was asked");
      assert.ok(err instanceof SfstreamError, `open() fails with a typed error, got ${err}`);
      assertClean("refusal", dumpError(err), [token, ...SECRETS]);
      const leaked = remote.hits.filter((h) => (h.authorization ?? "").includes(token)).length;
      assert.equal(leaked, 0, "the token was sent over plain http to the instance URL of the OAuth reply");
    } finally {
      server.close();
      remote.server.close();
    }
  });
});
