// Edges found by the 2026-11-28 reviews (RELIABILITY.md §6, bugs 28 and later): logins that hang
// or are interrupted, re-authentication failures, dates and stored values a Date or Salesforce
// cannot take, a storage that never answers or answers very fast, the iterator's return() while a
// next() waits, a failed open() with a receive() waiting, and the JSON hooks. Against sfemu as its
// own process, or a loopback server scripting what sfemu does not do.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  Client,
  SalesforceStreamingClient,
  AccessTokenAuthenticator,
  PasswordAuthenticator,
  AuthenticationError,
  ClientInvalidOperation,
  SfstreamError,
  ReplayMarkerStorage,
  ReplayOption,
  DefaultMappingStorage,
} from "sfstream";
import { CREDENTIALS, until } from "../helpers/sfemu.mjs";
import { sfemuForFile } from "../helpers/fixture.mjs";

const emu = sfemuForFile(["--hold-timeout", "1500"]);
const login = (extra = {}) => ({ ...CREDENTIALS, loginUrl: emu.url, ...extra });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const token = async () => {
  const t = await emu.control("token", {});
  return { accessToken: t.access_token, instanceUrl: t.instance_url };
};
const clients = async () => (await emu.control("stats")).clients;

/** A loopback server playing Salesforce: `token(n)` answers the n-th token request, `cometd(m, res, seen)` each CometD POST. */
const servers = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections?.();
    s.close();
  }
});
async function scripted({ token: onToken, cometd }) {
  const seen = { tokens: 0, handshakes: 0, connects: 0 };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c)).on("end", () => {
      const reply = (v, status = 200, type = "application/json") => {
        res.writeHead(status, { "content-type": type });
        res.end(typeof v === "string" ? v : JSON.stringify(v));
      };
      if (req.url.startsWith("/services/oauth2/token")) return onToken(++seen.tokens, reply, url, res);
      const m = JSON.parse(body);
      const ch = m[0].channel;
      if (ch === "/meta/handshake") seen.handshakes++;
      if (ch === "/meta/connect") seen.connects++;
      cometd(m, reply, seen);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, seen };
}
const ok = (m, extra = {}) => ({ channel: m[0].channel, id: m[0].id, clientId: m[0].clientId ?? "c1", successful: true, ...extra });
/** Handshake, subscribe and immediate connects succeed; a held connect answers after 1 s, or with `events()` once. */
function bayeux(events = () => []) {
  return (m, reply, seen) => {
    const ch = m[0].channel;
    if (ch === "/meta/handshake") return reply([ok(m, { clientId: `c${seen.handshakes}`, version: "1.0", supportedConnectionTypes: ["long-polling"] })]);
    if (ch === "/meta/connect") {
      if (m[0].advice?.timeout === 0) return reply([ok(m, { advice: { reconnect: "retry", interval: 0, timeout: 1000 } })]);
      const evs = events(m, seen);
      if (evs.length > 0) return reply([...evs, ok(m)]);
      return setTimeout(() => reply([ok(m)]), 1000).unref();
    }
    if (ch === "/meta/subscribe") return reply([ok(m, { subscription: m[0].subscription })]);
    reply([ok(m)]);
  };
}
const tokenOk = (n, reply, url) => reply({ access_token: `TOKEN-${n}`, instance_url: url, id: `${url}/id/00D/005`, token_type: "Bearer", issued_at: String(Date.now()), signature: "c2ln" });

describe("logins that hang or are interrupted", () => {
  test("close() during open()'s login: open() rejects at once and no session is made", async () => {
    const c = new Client(new AccessTokenAuthenticator(async () => {
      await sleep(300);
      return token();
    }));
    const opening = c.open().then(() => null, (e) => e);
    await sleep(50);
    await c.close();
    const err = await opening;
    assert.ok(err instanceof ClientInvalidOperation, `open(): ${err}`);
    await sleep(600);
    assert.equal(c.closed, true);
    assert.equal(await clients(), 0, "no Streaming session was opened");
  });

  test("a first login that never answers is bounded by connectionTimeout", async () => {
    const c = new Client(new AccessTokenAuthenticator(() => new Promise(() => {})), { connectionTimeout: 500 });
    const t0 = Date.now();
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, `open(): ${err}`);
    assert.match(err.message, /did not answer within connectionTimeout/);
    assert.ok(Date.now() - t0 < 3000);
  });

  test("a re-login that never answers fails the client within connectionTimeout", async () => {
    let calls = 0;
    const c = new Client(new AccessTokenAuthenticator(() => (++calls === 1 ? token() : new Promise(() => {}))), { connectionTimeout: 800 });
    const statuses = [];
    c.onStatus((s) => statuses.push(s.type + (s.reason ? `:${s.reason}` : "")));
    await c.open();
    await c.subscribe("/topic/EdgeReauthHang");
    await emu.control("revoke-tokens", {});
    // A failed login, as the README says of a login that does not answer (it used to be a
    // TransportTimeoutError, which says nothing of the login).
    await assert.rejects(c.receive({ signal: AbortSignal.timeout(8000) }), (e) => e instanceof AuthenticationError && /could not log in again within/.test(e.message));
    assert.ok(statuses.includes("reconnecting:authenticationInvalid"), statuses.join(","));
    assert.equal(c.closed, true);
  });

  /** A token endpoint that never answers; `aborted` resolves (to ms since the request) when the client drops the request. */
  async function hangingTokenEndpoint() {
    let requested = null;
    let onAborted;
    const aborted = new Promise((r) => (onAborted = r));
    const server = createServer((req) => {
      requested = Date.now();
      req.resume();
      req.socket.on("close", () => onAborted(Date.now() - requested));
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    servers.push(server);
    return { url: `http://127.0.0.1:${server.address().port}`, aborted, requested: () => requested !== null };
  }

  test("close() during a password login aborts the token request (it does not run on to its 30 s timeout)", async () => {
    const ep = await hangingTokenEndpoint();
    const c = new SalesforceStreamingClient({ ...CREDENTIALS, loginUrl: ep.url });
    const opening = c.open().then(() => null, (e) => e);
    await until(ep.requested, { timeout: 5000, what: "the token request" });
    await c.close();
    assert.ok((await opening) instanceof ClientInvalidOperation);
    const ms = await Promise.race([ep.aborted, sleep(3000).then(() => "still open after 3 s")]);
    assert.equal(typeof ms, "number", String(ms));
  });

  test("a password login that outlives connectionTimeout is aborted with it", async () => {
    const ep = await hangingTokenEndpoint();
    const c = new SalesforceStreamingClient({ ...CREDENTIALS, loginUrl: ep.url, connectionTimeout: 500 });
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, `open(): ${err}`);
    const ms = await Promise.race([ep.aborted, sleep(3000).then(() => "still open after 3 s")]);
    assert.equal(typeof ms, "number", String(ms));
    assert.ok(ms < 2500, `aborted after ${ms} ms`);
  });

  test("a token function gets the client's signal, which aborts on close() and not after a login that succeeded", async () => {
    const signals = [];
    const c = new Client(new AccessTokenAuthenticator(async (signal) => {
      signals.push(signal);
      return signals.length === 1 ? token() : new Promise(() => {});
    }));
    await c.open();
    assert.ok(signals[0] instanceof AbortSignal, "an AbortSignal is passed");
    await c.subscribe("/topic/EdgeSignal");
    await emu.control("revoke-tokens", {});
    await until(() => signals.length === 2, { timeout: 8000, what: "the re-login" });
    assert.equal(signals[1].aborted, false);
    await c.close();
    assert.equal(signals[1].aborted, true, "close() aborts the re-login in progress");
    assert.equal(signals[0].aborted, false, "a finished login's signal is left alone");
  });

  test("without AbortSignal.any (older runtimes), the token request's signal still aborts on the client's signal or its timeout", async () => {
    // The shell's snippet, as packed: dist/wasm/snippets/<crate-hash>/src/wasm/project.js.
    const snippets = fileURLToPath(new URL("../node_modules/sfstream/dist/wasm/snippets/", import.meta.url));
    const [crate] = readdirSync(snippets);
    const { sfTimeoutOr } = await import(pathToFileURL(`${snippets}${crate}/src/wasm/project.js`).href);
    const any = AbortSignal.any;
    AbortSignal.any = undefined;
    try {
      const client = new AbortController();
      const s = sfTimeoutOr(60000, client.signal);
      assert.equal(s.aborted, false);
      client.abort(new Error("closed"));
      assert.equal(s.aborted, true);
      assert.equal(s.reason.message, "closed");
      const t = sfTimeoutOr(20, new AbortController().signal);
      await sleep(150);
      assert.equal(t.aborted, true);
      assert.equal(t.reason.name, "TimeoutError");
      const already = new AbortController();
      already.abort(new Error("gone"));
      assert.equal(sfTimeoutOr(60000, already.signal).reason.message, "gone");
      assert.equal(sfTimeoutOr(60000, undefined).aborted, false, "no client signal: the timeout alone");
    } finally {
      AbortSignal.any = any;
    }
  });

  test("a re-login that gives up when its signal aborts: close() settles cleanly, with no failure reported", async () => {
    let calls = 0;
    const c = new Client(new AccessTokenAuthenticator(async (signal) => {
      if (++calls === 1) return token();
      // A token function that honours the signal: it rejects when the client aborts it.
      return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    }));
    const statuses = [];
    c.onStatus((s) => statuses.push(s.type));
    await c.open();
    await c.subscribe("/topic/EdgeSignalReject");
    await emu.control("revoke-tokens", {});
    await until(() => calls === 2, { timeout: 8000, what: "the re-login" });
    await c.close();
    await sleep(200);
    assert.ok(!statuses.includes("failed"), `no failure after close(): ${statuses.join(",")}`);
    assert.equal(statuses.at(-1), "closed", statuses.join(","));
    await assert.rejects(c.receive(), (e) => e instanceof ClientInvalidOperation, "closed, not failed");
  });
});

describe("stale logins: one that answers after it was aborted is not used", () => {
  test("close() during open()'s login, then open() again: the second open() is settled by its own login", async () => {
    // The token function ignores its signal (allowed): login 1 answers between the second open()
    // and the second login's answer.
    let calls = 0;
    const order = [];
    const c = new Client(new AccessTokenAuthenticator(async () => {
      const n = ++calls;
      await sleep(n === 1 ? 200 : 600);
      order.push(`login ${n}`);
      return token();
    }));
    const first = c.open().catch((e) => e);
    await sleep(30);
    await c.close();
    assert.ok((await first) instanceof ClientInvalidOperation);
    await c.open();
    order.push("open 2 resolved");
    assert.deepEqual(order, ["login 1", "login 2", "open 2 resolved"]);
    await c.close();
  });

  test("a token function that rejects when aborted does not fail the next open()", async () => {
    let calls = 0;
    const c = new Client(new AccessTokenAuthenticator(async (signal) => {
      if (++calls === 1) {
        await new Promise((_, reject) => signal.addEventListener("abort", () => setTimeout(() => reject(signal.reason), 5), { once: true }));
      }
      await sleep(50);
      return token();
    }));
    const first = c.open().catch((e) => e);
    await sleep(30);
    await c.close();
    assert.ok((await first) instanceof ClientInvalidOperation);
    await c.open(); // rejected with the first login's AbortError before the fix
    await c.close();
  });

  test("a first login that answers after open()'s deadline does not replace the next login's token", { timeout: 20000 }, async () => {
    let calls = 0;
    const statuses = [];
    const c = new Client(
      new AccessTokenAuthenticator(async () => {
        if (++calls === 1) {
          await sleep(1200);
          return { ...(await token()), accessToken: "a-token-sfemu-never-issued" };
        }
        return token();
      }),
      { connectionTimeout: 400, onStatus: (s) => statuses.push(s.type) },
    );
    await assert.rejects(c.open(), /did not answer within connectionTimeout/);
    await c.open();
    await c.subscribe("/topic/EdgeStaleToken");
    // Login 1 answers now; long-polls come back every 1.5 s (sfemu's hold), each new one with the
    // current token: a stale one installed would be refused (401) and force a third login.
    await sleep(3500);
    assert.equal(calls, 2, `logins: ${calls}; statuses: ${statuses.join(",")}`);
    assert.ok(!statuses.includes("rehandshake") && !statuses.includes("reauthenticated"), statuses.join(","));
    await c.close();
  });

  test("the error of a re-login aborted by close() is not reported as the cause of a later failure", { timeout: 30000 }, async () => {
    let calls = 0;
    let revoked = null;
    const c = new Client(new AccessTokenAuthenticator(async (signal) => {
      const n = ++calls;
      if (n === 1) {
        const t = await token();
        revoked = t;
        return t;
      }
      if (n === 2) {
        // Honours its signal, as documented: rejects when close() aborts it.
        return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
      }
      return revoked; // from now on, a token sfemu has revoked
    }));
    await c.open();
    await c.subscribe("/topic/EdgeStaleError");
    await emu.control("revoke-tokens", {});
    await until(() => calls === 2, { timeout: 8000, what: "the re-login" });
    await c.close();
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, String(err));
    assert.doesNotMatch(err.message, /access-token function failed/, "not the aborted re-login's error");
    assert.match(err.message, /rejected the credentials|Authentication invalid/);
  });
});

test("a custom authenticator's own error fails open() and a re-login alike: an AuthenticationError with it as the cause", { timeout: 20000 }, async () => {
  const boom = new Error("vault unreachable");
  for (const authenticate of [async () => Promise.reject(boom), () => { throw boom; }]) {
    const c = new Client({ authenticate }, { connectionTimeout: 5000 });
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, `open(): ${err}`);
    assert.equal(err.cause, boom);
    assert.match(err.message, /vault unreachable/);
  }
  let calls = 0;
  const c = new Client({ authenticate: async () => (++calls === 1 ? token() : Promise.reject(boom)) });
  await c.open();
  await c.subscribe("/topic/EdgeAuthClass");
  await emu.control("revoke-tokens", {});
  const err = await c.receive({ signal: AbortSignal.timeout(15000) }).then(() => null, (e) => e);
  assert.ok(err instanceof AuthenticationError, `after the re-login: ${err}`);
  assert.equal(err.cause, boom);
  await c.close();
});

test("a custom authenticator's token that cannot go into a header is refused at once", async () => {
  const t = await token();
  const c = new Client({ authenticate: async () => ({ ...t, accessToken: `${t.accessToken}\n` }) }, { connectionTimeout: 5000 });
  const t0 = Date.now();
  const err = await c.open().then(() => null, (e) => e);
  assert.ok(err instanceof AuthenticationError, `${err}`);
  assert.match(err.message, /HTTP header/);
  assert.ok(!err.message.includes(t.accessToken));
  assert.ok(Date.now() - t0 < 2000, "not after connectionTimeout");
});

test("cookies of one instance are not sent to another after a re-login", { timeout: 20000 }, async () => {
  const cookies = [];
  const mk = (name, on401) =>
    new Promise((resolve) => {
      let connects = 0;
      const server = createServer((req, res) => {
        let body = "";
        req.on("data", (c) => (body += c)).on("end", () => {
          const m = JSON.parse(body);
          const ch = m[0].channel;
          const reply = (v, extra = {}) => {
            res.writeHead(200, { "content-type": "application/json", ...extra });
            res.end(JSON.stringify(v));
          };
          if (ch === "/meta/handshake") {
            cookies.push([name, req.headers.cookie ?? null]);
            return reply([ok(m, { clientId: name, version: "1.0", supportedConnectionTypes: ["long-polling"] })], { "set-cookie": `BAYEUX_BROWSER=${name}-browser; Path=/` });
          }
          if (ch === "/meta/connect") {
            connects++;
            if (on401 && connects === 2) return reply([{ ...ok(m), successful: false, error: "401::Authentication invalid", advice: { reconnect: "none" } }]);
            if (m[0].advice?.timeout === 0) return reply([ok(m, { advice: { reconnect: "retry", interval: 0, timeout: 1000 } })]);
            return setTimeout(() => reply([ok(m)]), 1000).unref();
          }
          reply([ok(m)]);
        });
      });
      servers.push(server);
      server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${server.address().port}`));
    });
  const a = await mk("A", true);
  const b = await mk("B", false);
  let calls = 0;
  const statuses = [];
  const c = new Client(new AccessTokenAuthenticator(async () => ({ accessToken: "T", instanceUrl: ++calls === 1 ? a : b })), { onStatus: (s) => statuses.push(s.type) });
  await c.open();
  await until(() => cookies.some(([n]) => n === "B"), { what: "the handshake with the second instance" });
  assert.deepEqual(cookies.find(([n]) => n === "B"), ["B", null], "B got none of A's cookies");
  await c.close();
});

describe("re-authentication failures", () => {
  test("a 503 page from the token endpoint during a re-login is retried, not fatal", { timeout: 20000 }, async () => {
    const srv = await scripted({
      token: (n, reply, url) => (n === 2 ? reply("<html>maintenance</html>", 503, "text/html") : tokenOk(n, reply, url)),
      cometd: (m, reply, seen) => {
        if (m[0].channel === "/meta/connect" && seen.connects === 2) return reply([{ ...ok(m), successful: false, error: "401::Authentication invalid", advice: { reconnect: "none" } }]);
        bayeux()(m, reply, seen);
      },
    });
    const statuses = [];
    const c = new Client(new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: srv.url }), { onStatus: (s) => statuses.push(s.type) });
    await c.open();
    await until(() => statuses.includes("reauthenticated"), { what: "a re-login after the 503 page" });
    assert.equal(c.closed, false);
    assert.equal(srv.seen.tokens, 3);
    await c.close();
  });

  test("a token reply cut off mid-body during a re-login is retried, not fatal, under the global fetch too", { timeout: 20000 }, async () => {
    // fetch (Deno, Workers, browsers) resolves once the headers are in, so a body cut off halfway
    // fails in json(): a network failure, as when the connection drops before the headers.
    const { setFetch } = await import("../node_modules/sfstream/dist/wasm/sfstream.js");
    const { nodeFetch } = await import("../node_modules/sfstream/dist/node-transport.js");
    const srv = await scripted({
      token: (n, reply, url, res) => {
        if (n !== 2) return tokenOk(n, reply, url);
        res.writeHead(200, { "content-type": "application/json", "content-length": "400" });
        res.write('{"access_token":"00D');
        setTimeout(() => res.socket.destroy(), 50);
      },
      cometd: (m, reply, seen) => {
        if (m[0].channel === "/meta/connect" && seen.connects === 2) return reply([{ ...ok(m), successful: false, error: "401::Authentication invalid", advice: { reconnect: "none" } }]);
        bayeux()(m, reply, seen);
      },
    });
    setFetch(null);
    try {
      const statuses = [];
      const c = new Client(new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: srv.url }), { onStatus: (s) => statuses.push(s.type) });
      await c.open();
      await until(() => statuses.includes("reauthenticated") || c.closed, { what: "a re-login after the cut reply" });
      assert.equal(c.closed, false, `failed: ${statuses}`);
      assert.equal(srv.seen.tokens, 3);
      await c.close();
      // The authenticator's own error says what happened.
      const a = new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: srv.url });
      srv.seen.tokens = 1;
      const err = await a.authenticate().then(() => null, (e) => e);
      assert.ok(err instanceof AuthenticationError, String(err));
      assert.match(err.message, /could not reach the token endpoint/);
      assert.ok(err.cause instanceof Error && !(err.cause instanceof SyntaxError), `cause: ${err.cause}`);
    } finally {
      setFetch(nodeFetch);
    }
  });

  test("a rejected re-login fails the client with the token endpoint's error fields", { timeout: 20000 }, async () => {
    const srv = await scripted({
      token: (n, reply, url) => (n === 2 ? reply({ error: "invalid_grant", error_description: "expired access/refresh token" }, 400) : tokenOk(n, reply, url)),
      cometd: (m, reply, seen) => {
        if (m[0].channel === "/meta/connect" && seen.connects === 2) return reply([{ ...ok(m), successful: false, error: "401::Authentication invalid", advice: { reconnect: "none" } }]);
        bayeux()(m, reply, seen);
      },
    });
    const c = new Client(new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: srv.url }));
    await c.open();
    const err = await c.receive({ signal: AbortSignal.timeout(8000) }).then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, `${err}`);
    assert.equal(err.error, "invalid_grant");
    assert.equal(err.errorDescription, "expired access/refresh token");
    assert.equal(err.status, 400);
  });
});

describe("a re-login that cannot reach its endpoint before connectionTimeout is a failed login", () => {
  // (One that never answers: "a re-login that never answers fails the client within connectionTimeout".)
  const relogin = (token) =>
    scripted({
      token,
      cometd: (m, reply, seen) => {
        if (m[0].channel === "/meta/connect" && seen.connects === 2) return reply([{ ...ok(m), successful: false, error: "401::Authentication invalid", advice: { reconnect: "none" } }]);
        bayeux()(m, reply, seen);
      },
    });
  /** The client's failure; `statuses` gets its status events. */
  const failure = async (srv, statuses = []) => {
    const c = new Client(new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: srv.url }), { connectionTimeout: 1500 });
    c.onStatus((s) => statuses.push(s));
    await c.open();
    return c.receive({ signal: AbortSignal.timeout(10000) }).then(() => null, (e) => e);
  };

  test("a token endpoint answering 503 every time: AuthenticationError, the last login's error as its cause", { timeout: 20000 }, async () => {
    const srv = await relogin((n, reply, url) => (n === 1 ? tokenOk(n, reply, url) : reply("<html>maintenance</html>", 503, "text/html")));
    const statuses = [];
    const err = await failure(srv, statuses);
    assert.ok(err instanceof AuthenticationError, `${err?.name}: ${err?.message}`);
    assert.match(err.message, /could not log in again within/);
    assert.ok(err.cause instanceof AuthenticationError, `cause: ${err.cause}`);
    assert.equal(err.cause.status, 503);
    assert.ok(srv.seen.tokens >= 3, `retried: ${srv.seen.tokens} token requests`);
    // Each retry names the endpoint's answer, not a network error.
    const reasons = statuses.filter((s) => s.type === "reconnecting").map((s) => s.reason);
    assert.ok(reasons.length >= 2, JSON.stringify(reasons));
    assert.deepEqual(reasons.slice(1), reasons.slice(1).map(() => "http503"), JSON.stringify(reasons));
  });
});

describe("a connection timeout names the last failure", () => {
  test("nothing listening: the TransportTimeoutError says the connection was refused, its cause is the TransportError", { timeout: 20000 }, async () => {
    const closed = createServer();
    await new Promise((r) => closed.listen(0, "127.0.0.1", r));
    const port = closed.address().port;
    await new Promise((r) => closed.close(r));
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!refused-token", instanceUrl: `http://127.0.0.1:${port}` }), { connectionTimeout: 1000 });
    const err = await c.open().then(() => null, (e) => e);
    assert.equal(err?.name, "TransportTimeoutError", String(err));
    assert.match(err.message, /within connectionTimeout; the last failure: network error: .*ECONNREFUSED/);
    assert.equal(err.cause?.name, "TransportError");
    assert.doesNotMatch(`${err.message} ${err.cause.message}`, /refused-token/);
  });

  test("an HTML 503 page: the TransportTimeoutError names the status", { timeout: 20000 }, async () => {
    const srv = await scripted({ token: () => {}, cometd: (_m, reply) => reply("<html>down for maintenance</html>", 503, "text/html") });
    const t = { accessToken: "00Dx!t", instanceUrl: srv.url };
    const c = new Client(new AccessTokenAuthenticator(t), { connectionTimeout: 1000 });
    const err = await c.open().then(() => null, (e) => e);
    assert.equal(err?.name, "TransportTimeoutError", String(err));
    assert.match(err.message, /the last failure: unexpected HTTP status 503/);
  });

  test("a server that takes the handshake and never answers: the TransportTimeoutError says so", { timeout: 20000 }, async () => {
    const srv = await scripted({ token: () => {}, cometd: () => {} });
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: srv.url }), { connectionTimeout: 1000 });
    const err = await c.open().then(() => null, (e) => e);
    assert.equal(err?.name, "TransportTimeoutError", String(err));
    // The handshake's own timeout and the connection's deadline fall together; whichever comes
    // first, the message says why. Before: when the deadline came first, it ended at "within
    // connectionTimeout", naming nothing (a firewall that drops traffic looked like any timeout).
    assert.match(err.message, /within connectionTimeout; (the server has not answered|the last failure: the request timed out)$/);
  });
});

test("events on more distinct channel names than the shell's table holds (4096) all arrive", { timeout: 30000 }, async () => {
  // A client that subscribes to many channels over its life (dynamic names, PushTopic filters)
  // used to fill the table for good: every event on a name first seen after 4096 was dropped
  // without a word. The table now starts again between responses once full.
  const PER_REPLY = 1000;
  const REPLIES = 5;
  const srv = await scripted({
    token: () => {},
    cometd: bayeux((m, seen) => {
      const k = seen.connects - 2; // the first connect is open()'s
      if (k < 0 || k >= REPLIES) return [];
      return Array.from({ length: PER_REPLY }, (_, j) => {
        const n = k * PER_REPLY + j + 1;
        return { channel: `/topic/Many${n}`, data: { event: { replayId: n, createdDate: "2026-12-07T10:00:00.000Z" }, sobject: { Id: String(n) } } };
      });
    }),
  });
  const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!many", instanceUrl: srv.url }), { maxPendingCount: 0 });
  await c.open();
  try {
    const signal = AbortSignal.timeout(20000);
    const names = new Set();
    for (let i = 0; i < PER_REPLY * REPLIES; i++) names.add((await c.receive({ signal })).channel);
    assert.equal(names.size, PER_REPLY * REPLIES);
  } finally {
    await c.close();
  }
});

describe("a refused open() changes nothing", () => {
  test("open() while one handshakes is refused; when the first then fails, a waiting receive() gets its error", { timeout: 10000 }, async () => {
    const srv = await scripted({
      token: () => {},
      cometd: (m, reply) => {
        if (m[0].channel === "/meta/handshake") {
          return setTimeout(() => reply([{ ...ok(m), successful: false, error: "403::Handshake denied", advice: { reconnect: "none" } }]), 400).unref();
        }
        reply([ok(m)]);
      },
    });
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: srv.url }));
    const first = c.open().then(() => null, (e) => e);
    await until(() => !c.closed, { what: "the handshake under way" });
    const waiting = c.receive().then(() => null, (e) => e);
    const second = await c.open().then(() => null, (e) => e);
    assert.ok(second instanceof ClientInvalidOperation, `second open(): ${second}`);
    const err = await first;
    assert.ok(err instanceof Error && !(err instanceof ClientInvalidOperation), `first open(): ${err}`);
    assert.equal(await waiting, err, "the waiting receive() is settled with open()'s error");
    assert.equal(c.closed, true);
  });
});

describe("close() while the handshake is under way", () => {
  test("the session the handshake reply names is disconnected, not left for the server to sweep", { timeout: 10000 }, async () => {
    const disconnected = [];
    const srv = await scripted({
      token: () => {},
      cometd: (m, reply, seen) => {
        const ch = m[0].channel;
        // The server has made the session when the request arrives; the reply takes its time.
        if (ch === "/meta/handshake") return setTimeout(() => reply([ok(m, { clientId: `c${seen.handshakes}`, version: "1.0", supportedConnectionTypes: ["long-polling"] })]), 400).unref();
        if (ch === "/meta/disconnect") disconnected.push(m[0].clientId);
        reply([ok(m)]);
      },
    });
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: srv.url }));
    const opened = c.open().then(() => null, (e) => e);
    await until(() => srv.seen.handshakes === 1, { what: "the handshake at the server" });
    await c.close();
    // Before: close() aborted the handshake at once, and the session it made was never ended.
    assert.deepEqual(disconnected, ["c1"]);
    assert.ok((await opened) instanceof ClientInvalidOperation, "open() rejects: the client was closed");
    assert.equal(c.closed, true);
    assert.equal(srv.seen.connects, 0, "no connect for a session closed while it was made");
  });
});

describe("close() while the handshake is under way, unanswered", () => {
  test("close() settles after 10 s at most (as for a disconnect), with connectionTimeout null too; then open() may run again", { timeout: 25000 }, async () => {
    let handshakes = 0;
    const srv = await scripted({
      token: () => {},
      cometd: (m, reply) => {
        if (m[0].channel === "/meta/handshake" && ++handshakes === 1) return; // never answered
        bayeux()(m, reply, { handshakes });
      },
    });
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: srv.url }), { connectionTimeout: null });
    const opened = c.open().then(() => null, (e) => e);
    await until(() => handshakes === 1, { what: "the handshake at the server" });
    const t0 = Date.now();
    const closing = c.close();
    // Meanwhile open() says why it cannot run (not "already opening").
    const early = await c.open().then(() => null, (e) => e);
    assert.ok(early instanceof ClientInvalidOperation && /closing/.test(early.message), `open() during close(): ${early}`);
    await closing;
    // Before: the handshake's own timeout, 30 s with connectionTimeout null.
    assert.ok(Date.now() - t0 < 12000, `close() took ${Date.now() - t0} ms`);
    assert.ok((await opened) instanceof ClientInvalidOperation);
    await c.open();
    await c.close();
  });
});

describe("a client whose connection failed", () => {
  /** A fixed-token authenticator whose second login (the re-login after a revoked token) throws. */
  const failingSecondLogin = () => {
    let logins = 0;
    return new AccessTokenAuthenticator(async () => {
      if (++logins === 2) throw new Error("the token was revoked");
      return token();
    });
  };

  test("a 'failed' listener that opens it again gets a working client, and the status carries receive()'s error", { timeout: 20000 }, async () => {
    const ch = "/topic/EdgesReopenOnFailed";
    let failed = null;
    let reopened = null;
    const c = new Client(failingSecondLogin(), {
      onStatus: (s) => {
        if (s.type !== "failed" || failed !== null) return;
        failed = s;
        reopened = c.open().then(() => c.subscribe(ch));
      },
    });
    await c.open();
    await c.subscribe(ch);
    await emu.control("revoke-tokens", {});
    await emu.control("drop-connections", {});
    await until(() => reopened !== null, { what: "the failed status" });
    assert.ok(failed.error instanceof AuthenticationError, `${failed.error}`);
    await reopened;
    await emu.control("publish", { channel: ch, count: 1 });
    // Before: the failure was recorded after the listener ran, over the new session, and this
    // rejected at once with the old error.
    const m = await c.receive({ signal: AbortSignal.timeout(5000) });
    assert.equal(m.channel, ch);
    await c.close();
  });

  test("receive() rejects with the very error of the failed status", { timeout: 20000 }, async () => {
    const ch = "/topic/EdgesFailedError";
    const c = new SalesforceStreamingClient(login({ connectionTimeout: 1000 }));
    const failed = new Promise((resolve) => c.onStatus((s) => s.type === "failed" && resolve(s)));
    await c.open();
    await c.subscribe(ch);
    try {
      // A failure the shell reports with an error it made (a connection timeout).
      await emu.control("fail", { status: 503, count: 1000 });
      await emu.control("drop-connections", {});
      const s = await failed;
      const err = await c.receive().then(() => null, (e) => e);
      assert.ok(err instanceof SfstreamError, `${err}`);
      // Before: two conversions of the shell's error, equal in all but identity.
      assert.equal(err, s.error);
      assert.equal(c.closed, true);
    } finally {
      await emu.control("fail", { status: 503, count: 0 });
    }
  });
});

describe("calls made while open() logs in", () => {
  const slowToken = (ms, fail = false) =>
    new AccessTokenAuthenticator(async () => {
      await sleep(ms);
      if (fail) throw new Error("no token today");
      return token();
    });

  test("the client is not closed: a receive() waits for the session, a subscribe() enters it", { timeout: 20000 }, async () => {
    const ch = "/topic/EdgesDuringLogin";
    const c = new Client(slowToken(300));
    const opening = c.open();
    // Right after the call (the shell starts it in a microtask) and during the login alike.
    // Before: closed was true until the handshake began, so these failed at once as on a closed
    // client ("the client is closed"), and a for-await loop started now ended quietly.
    assert.equal(c.closed, false);
    const first = c.receive({ signal: AbortSignal.timeout(10000) });
    await sleep(50); // the login is under way
    assert.equal(c.closed, false);
    const subscribed = c.subscribe(ch);
    const got = c.receive({ signal: AbortSignal.timeout(10000) });
    await opening;
    await subscribed;
    assert.deepEqual([...c.subscriptions], [ch]);
    await emu.control("publish", { channel: ch, count: 2 });
    assert.equal((await first).channel, ch);
    assert.equal((await got).channel, ch);
    await c.close();
  });

  test("when that login fails, the subscribe() rejects and the waiting receive() gets open()'s error", { timeout: 20000 }, async () => {
    const c = new Client(slowToken(200, true));
    const opening = c.open().then(() => null, (e) => e);
    await sleep(20);
    const subscribed = c.subscribe("/topic/EdgesDuringFailedLogin").then(() => null, (e) => e);
    const waiting = c.receive().then(() => null, (e) => e);
    const err = await opening;
    assert.ok(err instanceof AuthenticationError, `${err}`);
    assert.ok((await subscribed) instanceof ClientInvalidOperation);
    assert.equal(await waiting, err);
    assert.equal(c.closed, true);
  });

  test("a status listener added by a listener hears only the events after the one it was added in", async () => {
    const c = new SalesforceStreamingClient(login());
    let first = null;
    const later = [];
    c.onStatus((s) => {
      if (first !== null) return;
      first = s;
      c.onStatus((t) => later.push(t));
    });
    await c.open();
    await c.close();
    // Before: the new listener was called at once with the same event (a listener that
    // re-registered itself on "failed" looped for ever).
    assert.ok(first !== null && !later.includes(first), "not the event it was added during");
    assert.ok(later.some((t) => t.type === "closed"), later.map((t) => t.type).join(","));
  });
});

describe("errors say why", () => {
  test("a token endpoint that cannot be reached: the message names the reason (refused)", async () => {
    const closed = createServer();
    await new Promise((r) => closed.listen(0, "127.0.0.1", r));
    const port = closed.address().port;
    await new Promise((r) => closed.close(r));
    const a = new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "pw-SECRET", loginUrl: `http://127.0.0.1:${port}` });
    const err = await a.authenticate().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, String(err));
    assert.match(err.message, /could not reach the token endpoint: .*ECONNREFUSED/);
    assert.doesNotMatch(err.message, /SECRET/);
  });

  test("an error the shell made carries no copy of itself as its cause", async () => {
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: "http://127.0.0.1:9" }));
    const err = await c.subscribe("/topic/NotOpen").then(() => null, (e) => e);
    assert.ok(err instanceof ClientInvalidOperation, String(err));
    assert.equal(err.cause, undefined);
    assert.equal("cause" in err, false);
  });
});

describe("operations enter the session in the order they were called", () => {
  test("subscribe() then unsubscribe() without waiting: the channel ends unsubscribed, and nothing of it is delivered", { timeout: 20000 }, async () => {
    const c = new SalesforceStreamingClient(login());
    await c.open();
    const ch = "/topic/EdgeSubUnsub";
    try {
      // subscribe() reads the replay storage first: the unsubscribe() called after it used to reach
      // the session first, and the channel stayed subscribed.
      await Promise.all([c.subscribe(ch), c.unsubscribe(ch)]);
      assert.deepEqual([...c.subscriptions], []);
      const sessions = (await emu.control("stats")).sessions;
      assert.ok(sessions.every((x) => !x.subscriptions.includes(ch)), JSON.stringify(sessions));
      await emu.control("publish", { channel: ch, count: 1 });
      const got = await c.receive({ signal: AbortSignal.timeout(2000) }).then((m) => m.channel, (e) => e.name);
      assert.equal(got, "TimeoutError");
    } finally {
      await c.close();
    }
  });

  test("a storage read that never answers fails its subscribe() after 10 s, and does not hold the operations called after it", { timeout: 30000 }, async () => {
    const hanging = { get: () => new Promise(() => {}), set: async () => {} };
    const c = new SalesforceStreamingClient(login({ replay: hanging }));
    await c.open();
    try {
      const t0 = Date.now();
      const sub = c.subscribe("/topic/EdgeHangingRead").then(() => null, (e) => e);
      const pub = c.publish("/u/EdgeHangingRead", "after").then(() => Date.now() - t0, (e) => e);
      const err = await sub;
      assert.ok(err instanceof SfstreamError, `subscribe(): ${err}`);
      assert.match(err.message, /did not answer a read within 10 s/);
      const published = await pub;
      assert.equal(typeof published, "number", `publish(): ${published}`);
      assert.ok(published < 15000, `publish() resolved after ${published} ms`);
      assert.equal(c.closed, false);
    } finally {
      await c.close();
    }
  });

  test("open() while close() is in flight says the client is closing; once close() settles, open() works", { timeout: 20000 }, async () => {
    const c = new SalesforceStreamingClient(login());
    await c.open();
    const closing = c.close();
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof ClientInvalidOperation, `${err}`);
    assert.match(err.message, /closing/);
    await closing;
    await c.open();
    assert.equal(c.closed, false);
    await c.close();
  });

  test("a subscribe() called before close() does not enter the session open() starts next", { timeout: 20000 }, async () => {
    const backing = new Map();
    const slow = { get: async (k) => (await sleep(300), backing.get(k)), set: async (k, v) => void backing.set(k, v) };
    const c = new SalesforceStreamingClient(login({ replay: slow }));
    await c.open();
    const ch = "/topic/EdgeSubAcrossClose";
    const sub = c.subscribe(ch).then(() => null, (e) => e);
    await c.close();
    await c.open();
    try {
      const err = await sub;
      assert.ok(err instanceof ClientInvalidOperation, `subscribe(): ${err}`);
      assert.deepEqual([...c.subscriptions], []);
      await sleep(100);
      const sessions = (await emu.control("stats")).sessions;
      assert.ok(sessions.every((x) => !x.subscriptions.includes(ch)), JSON.stringify(sessions));
    } finally {
      await c.close();
    }
  });
});

/** A storage that records writes; `write` decides what each returns. */
class RecordingStorage extends ReplayMarkerStorage {
  constructor(write = () => undefined, initial = new Map()) {
    super();
    this.map = initial;
    this.writes = 0;
    this.write = write;
  }
  async getReplayMarker(channel) {
    return this.map.get(channel) ?? null;
  }
  setReplayMarker(channel, marker) {
    this.writes++;
    const r = this.write(this.writes);
    if (r instanceof Promise) return r.then(() => void this.map.set(channel, marker));
    this.map.set(channel, marker);
    return Promise.resolve();
  }
}

describe("dates and stored values", () => {
  test("an event date beyond what a Date holds is stored as an unknown date, and nothing breaks", { timeout: 20000 }, async () => {
    const ev = (replayId) => ({ channel: "/data/AccountChangeEvent", data: { schema: "s", payload: { ChangeEventHeader: { commitTimestamp: 1e16 } }, event: { replayId } } });
    let sent = false;
    const srv = await scripted({ token: tokenOk, cometd: bayeux(() => (sent ? [] : ((sent = true), [ev(5), ev(6)]))) });
    const storage = new RecordingStorage();
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "T", instanceUrl: srv.url }), { replay: storage });
    await c.open();
    await c.subscribe("/data/AccountChangeEvent");
    await c.receive({ signal: AbortSignal.timeout(5000) });
    await c.receive({ signal: AbortSignal.timeout(5000) });
    await sleep(400); // the coalescing tick writes the first marker
    await c.close();
    const m = storage.map.get("/data/AccountChangeEvent");
    assert.equal(m?.replayId, 6, JSON.stringify(m));
    assert.equal(m.date, null);
  });

  for (const bad of [0, -7]) {
    test(`a stored replay id Salesforce would refuse (${bad}) is reported and the storage's default used`, async () => {
      const storage = new RecordingStorage(undefined, new Map([["/topic/EdgeBadId", { replayId: bad, date: null }]]));
      const statuses = [];
      const c = new SalesforceStreamingClient(login({ replay: storage, onStatus: (s) => statuses.push(s) }));
      await c.open();
      await c.subscribe("/topic/EdgeBadId"); // refused with 400 if the stored id were sent
      assert.ok(statuses.some((s) => s.type === "storageError" && s.channel === "/topic/EdgeBadId"), statuses.map((s) => s.type).join(","));
      await c.close();
    });
  }

  test("a storage write that never settles: reported, and close() still settles", { timeout: 40000 }, async () => {
    const storage = new RecordingStorage((n) => (n === 1 ? new Promise(() => {}) : undefined));
    const statuses = [];
    const c = new SalesforceStreamingClient(login({ replay: storage, onStatus: (s) => statuses.push(s) }));
    await c.open();
    await c.subscribe("/topic/EdgeHang");
    await emu.control("publish", { channel: "/topic/EdgeHang", count: 3 });
    for (let i = 0; i < 3; i++) await c.receive({ signal: AbortSignal.timeout(5000) });
    await sleep(300); // the first write starts, and hangs
    const t0 = Date.now();
    await c.close();
    assert.ok(Date.now() - t0 < 25000, `close() took ${Date.now() - t0} ms`);
    assert.ok(statuses.some((s) => s.type === "storageError" && /did not answer/.test(s.message)), statuses.map((s) => s.type).join(","));
    assert.ok(storage.writes >= 2, "the marker was written again after the hung write");
  });

  test("marker writes are coalesced to one per channel per 200 ms however fast the storage is", { timeout: 20000 }, async () => {
    const storage = new RecordingStorage();
    const c = new SalesforceStreamingClient(login({ replay: storage }));
    await c.open();
    await c.subscribe("/topic/EdgeTrickle");
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 2000) {
      await emu.control("publish", { channel: "/topic/EdgeTrickle", count: 1 });
      await c.receive({ signal: AbortSignal.timeout(5000) });
      n++;
    }
    const writes = storage.writes;
    await c.close();
    assert.ok(n > 50, `a steady trickle (${n} events)`);
    assert.ok(writes <= 12, `${writes} writes in 2 s`);
  });
});

describe("the message path", () => {
  for (const [name, iterate] of [
    ["for await's iterator", (c) => c[Symbol.asyncIterator]()],
    ["messages()", (c) => c.messages()],
  ]) {
    test(`return() while ${name} waits in next(): the next message is not swallowed`, async () => {
      const c = new SalesforceStreamingClient(login({ replay: ReplayOption.NEW_EVENTS }));
      await c.open();
      const ch = `/topic/EdgeReturn${name.length}`;
      await c.subscribe(ch);
      const it = iterate(c);
      const pending = it.next();
      const raced = await Promise.race([pending, sleep(200).then(() => "idle")]);
      assert.equal(raced, "idle");
      assert.deepEqual(await it.return(), { value: undefined, done: true });
      assert.deepEqual(await pending, { value: undefined, done: true }, "the abandoned next() ends");
      await emu.control("publish", { channel: ch, count: 3 });
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await c.receive({ signal: AbortSignal.timeout(5000) })).data.event.replayId);
      assert.equal(got.length, 3);
      await c.close();
    });
  }

  for (const [name, iterate] of [
    ["for await's iterator", (c) => c[Symbol.asyncIterator]()],
    ["batches()", (c) => c.batches()],
  ]) {
    test(`return() with two next() of ${name} waiting (a Promise.race loop): both end, no message goes to them`, async () => {
      const c = new SalesforceStreamingClient(login({ replay: ReplayOption.NEW_EVENTS }));
      await c.open();
      const ch = `/topic/EdgeReturnTwo${name.length}`;
      await c.subscribe(ch);
      const it = iterate(c);
      const steps = [it.next(), it.next()];
      await sleep(100);
      assert.deepEqual(await it.return(), { value: undefined, done: true });
      const ends = await Promise.race([Promise.all(steps), sleep(2000).then(() => "still waiting")]);
      assert.deepEqual(ends, [
        { value: undefined, done: true },
        { value: undefined, done: true },
      ]);
      const p = await emu.control("publish", { channel: ch, count: 1 });
      const m = await c.receive({ signal: AbortSignal.timeout(5000) });
      assert.equal(m.data.event.replayId, p.firstReplayId);
      await c.close();
    });
  }

  test("a message whose processing threw in for await is not marked by close(), so it comes again", async () => {
    const map = new Map();
    const opts = login({ replay: new DefaultMappingStorage(map, ReplayOption.ALL_EVENTS) });
    await emu.control("publish", { channel: "/u/EdgeThrow", count: 5 });
    const done = [];
    let failed = false;
    async function run() {
      const c = new SalesforceStreamingClient(opts);
      try {
        await c.open();
        await c.subscribe("/u/EdgeThrow");
        for await (const m of c) {
          const id = m.data.event.replayId;
          if (done.length === 2 && !failed) {
            failed = true;
            throw new Error(`processing failed on ${id}`);
          }
          done.push(id);
          if (done.length === 5) break;
        }
      } finally {
        await c.close(); // what `await using` does
      }
    }
    await assert.rejects(run(), /processing failed/);
    assert.equal(done.length, 2);
    await run();
    assert.equal(done.length, 5);
    assert.equal(new Set(done).size, 5, `every event processed once: ${done}`);
  });

  test("a receive() waiting while open() fails rejects with open()'s error", { timeout: 20000 }, async () => {
    const srv = await scripted({ token: tokenOk, cometd: (_m, reply) => reply("busy", 503, "text/plain") });
    const c = new Client(new AccessTokenAuthenticator({ accessToken: "T", instanceUrl: srv.url }), { connectionTimeout: 800 });
    const opening = c.open().then(() => null, (e) => e);
    await sleep(100);
    const waiting = c.receive().then(() => null, (e) => e);
    const err = await opening;
    assert.ok(err, "open() failed");
    const r = await Promise.race([waiting, sleep(3000).then(() => "pending")]);
    assert.notEqual(r, "pending", "receive() still waiting");
    assert.equal(r.name, err.name);
  });

  test("jsonStringify must return the JSON text of one value", async () => {
    const c = new SalesforceStreamingClient(login({ jsonStringify: () => '1},{"channel":"/meta/unsubscribe","subscription":"/u/X"' }));
    await c.open();
    await assert.rejects(c.publish("/u/EdgeJson", { a: 1 }), (e) => e instanceof TypeError && /one value/.test(e.message));
    await c.close();
  });

  test("a BigInt-preserving jsonParse keeps durable replay working", async () => {
    const jsonParse = (text) => JSON.parse(text, (k, v) => (k === "replayId" && typeof v === "number" ? BigInt(v) : v));
    const storage = new RecordingStorage();
    const c = new SalesforceStreamingClient(login({ jsonParse, replay: storage }));
    await c.open();
    await c.subscribe("/topic/EdgeBig");
    await emu.control("publish", { channel: "/topic/EdgeBig", count: 2 });
    const a = await c.receive({ signal: AbortSignal.timeout(5000) });
    const b = await c.receive({ signal: AbortSignal.timeout(5000) });
    assert.equal(typeof b.data.event.replayId, "bigint");
    await c.close();
    assert.equal(storage.map.get("/topic/EdgeBig")?.replayId, Number(b.data.event.replayId), `after ${a.data.event.replayId}`);
  });

  test("a networkAllowance beyond a timer's range does not abort every long-poll", async () => {
    const c = new SalesforceStreamingClient(login({ networkAllowance: 3e9 }));
    await c.open();
    await c.subscribe("/topic/EdgeAllowance");
    await sleep(2500);
    assert.equal(c.stats.handshakes, 1, JSON.stringify(c.stats));
    await emu.control("publish", { channel: "/topic/EdgeAllowance", count: 1 });
    await c.receive({ signal: AbortSignal.timeout(5000) });
    await c.close();
  });
});
