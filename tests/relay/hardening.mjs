// The relay's edges, each a bug once (RELIABILITY.md): the packed `sfstream/relay` behind
// `sfstream/relay/node` on node:http (and the Deno relay of run.mjs where a runtime's own request
// streaming matters), driven over HTTP, in front of sfemu, or of a loopback node:http server where
// sfemu has no such behaviour.
import { createServer, request as httpRequest } from "node:http";
import { CREDENTIALS, startSfemu, until } from "../helpers/sfemu.mjs";
import { mintSession, verifySession } from "./session.mjs";
import { ALLOWED_CHANNELS } from "./relay-app.mjs";

const CHANNEL_NOT_ALLOWED = "403::Channel not allowed by relay";
const PUBLISH_DENIED = "403::Publish denied by relay";
const MAX_BODY = 32768;
const HANDSHAKE = [{ channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: ["long-polling"], id: "h" }];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A raw POST whose body the caller writes and may leave unfinished (a declared Content-Length never
 * sent, or a chunked body never ended): the relay's answer, or an error if none comes in `timeout`.
 */
function partialPost(base, { headers, write, timeout = 5000 }) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}/cometd/62.0`, { method: "POST", headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${timeout} ms while the body is unfinished`));
    }, timeout);
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c) => (text += c)).on("end", () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode, headers: res.headers, text });
      });
    });
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.flushHeaders();
    write(req);
  });
}

/** A body stream that is never done and fails the test if read past `limit` bytes. */
function endlessBody(limit) {
  const state = { pulled: 0, overread: false };
  state.stream = new ReadableStream({
    pull(c) {
      if (state.pulled >= limit) {
        state.overread = true;
        c.error(new Error(`read past ${limit} bytes`));
        return;
      }
      c.enqueue(new Uint8Array(4096).fill(0x20));
      state.pulled += 4096;
    },
  });
  return state;
}

/** Listen on an ephemeral loopback port; returns the base URL and a close(). */
async function listen(handler) {
  const server = createServer(handler);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    server,
    close: () => {
      server.closeAllConnections?.();
      server.close();
    },
  };
}

export async function runHardening({ check, assert, mod, pageOrigin, secret, denoUrl }) {
  const session = await mintSession(secret, { sub: "browser-user", exp: Date.now() + 3600_000 });
  const open = [];
  // Its own sfemu: what these checks leave behind (sessions, faults) stays out of the other checks.
  let emu;
  try {
    emu = await startSfemu(["--hold-timeout", "3000", "--max-interval", "5000"]);
  } catch (e) {
    await check("hardening: sfemu starts", () => {
      throw e;
    });
    return;
  }

  /** A relay (createRelay from the packed package) on node:http through toNodeHandler. */
  async function nodeRelay(options = {}, { loginUrl = emu.url, wrap = (h) => h } = {}) {
    const relay = mod.createRelay({
      authenticator: new mod.PasswordAuthenticator({ ...CREDENTIALS, loginUrl }),
      allowedOrigins: [pageOrigin],
      channels: ALLOWED_CHANNELS,
      authorize: (request) => verifySession(request.headers.get("authorization"), secret),
      ...options,
    });
    const l = await listen(mod.toNodeHandler(wrap(relay)));
    open.push(l);
    return l;
  }

  /** POST a Bayeux array (or a raw string) to a relay, as the page's origin with the session. */
  async function post(base, body, { auth = session, origin = pageOrigin, signal } = {}) {
    const headers = { "content-type": "application/json" };
    if (auth !== null) headers.authorization = `Bearer ${auth}`;
    if (origin !== null) headers.origin = origin;
    const r = await fetch(`${base}/cometd/62.0`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body), signal });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: r.status, headers: r.headers, text, json };
  }

  async function handshake(base, auth = session) {
    const r = await post(base, HANDSHAKE, { auth });
    const clientId = r.json?.[0]?.clientId;
    assert(r.status === 200 && typeof clientId === "string", `handshake through the relay: ${r.status} ${r.text}`);
    return clientId;
  }

  try {
    await check("hardening: a /meta/subscribe whose subscription is not one channel name is refused by the relay, never forwarded", async () => {
      const relay = await nodeRelay();
      const clientId = await handshake(relay.url);
      // CometD servers take an array of channels in `subscription`; only a string is checked.
      for (const subscription of [["/topic/Forbidden"], ["/event/Relay_Allowed__e", "/topic/Forbidden"], { 0: "/topic/Forbidden" }, 42, null, undefined]) {
        const m = { channel: "/meta/subscribe", clientId, id: "s1" };
        if (subscription !== undefined) m.subscription = subscription;
        const r = await post(relay.url, [m]);
        const what = JSON.stringify(subscription) ?? "no subscription";
        assert(r.status === 200 && Array.isArray(r.json) && r.json.length === 1, `${what}: ${r.status} ${r.text}`);
        const reply = r.json[0];
        assert(reply.channel === "/meta/subscribe" && reply.successful === false && reply.error === CHANNEL_NOT_ALLOWED && reply.id === "s1" && reply.clientId === clientId,
          `${what}: the relay's own refusal, not Salesforce's reply: ${r.text}`);
      }
      const stats = await emu.control("stats");
      const mine = stats.sessions.find((s) => s.clientId === clientId);
      assert(mine !== undefined && mine.subscriptions.length === 0, `the session subscribed to nothing: ${JSON.stringify(mine)}`);
      // Control: one allowed channel name still goes through.
      const ok = await post(relay.url, [{ channel: "/meta/subscribe", clientId, id: "s2", subscription: "/event/Relay_Allowed__e" }]);
      assert(ok.json?.[0]?.successful === true, `an allowed channel subscribes: ${ok.text}`);
    });

    await check("hardening: the relay reads at most its 32,768-byte cap of a body, and answers 413 with CORS (fetch handler, streamed body)", async () => {
      const relay = mod.createRelay({
        authenticator: new mod.PasswordAuthenticator({ ...CREDENTIALS, loginUrl: emu.url }),
        allowedOrigins: [pageOrigin],
        channels: ALLOWED_CHANNELS,
        authorize: () => true,
      });
      const body = endlessBody(65536);
      const r = await relay(new Request("http://relay.test/cometd/62.0", { method: "POST", headers: { origin: pageOrigin }, body: body.stream, duplex: "half" }));
      assert(!body.overread && body.pulled <= 65536, `the relay read ${body.pulled} bytes of an endless body`);
      assert(r.status === 413 && (await r.text()) === "Maximum Request Size Exceeded", `status ${r.status}`);
      assert(r.headers.get("access-control-allow-origin") === pageOrigin && r.headers.get("access-control-allow-credentials") === "true", "the 413 carries CORS");
    });

    await check("hardening: Deno relay: a declared Content-Length over the cap, or a chunked body past it, gets 413 at once (the rest is never awaited)", async () => {
      assert(denoUrl !== null, "the Deno relay runs");
      const headers = { "content-type": "application/json", authorization: `Bearer ${session}`, origin: pageOrigin };
      // 100 MB declared, nothing sent.
      const declared = await partialPost(denoUrl, { headers: { ...headers, "content-length": String(100 * 1024 * 1024) }, write: () => {} });
      assert(declared.status === 413 && declared.headers["access-control-allow-origin"] === pageOrigin, `declared: ${declared.status} ${JSON.stringify(declared.headers)}`);
      // Chunked: 64 KiB sent, the body never ended.
      const chunked = await partialPost(denoUrl, { headers, write: (req) => req.write(Buffer.alloc(65536, 0x20)) });
      assert(chunked.status === 413 && chunked.headers["access-control-allow-origin"] === pageOrigin, `chunked: ${chunked.status} ${JSON.stringify(chunked.headers)}`);
      // At the cap exactly, a body is read and inspected (a publish the relay refuses, so nothing is forwarded).
      const publish = (size) => {
        const text = JSON.stringify([{ channel: "/u/Notes", id: "p1", data: "x" }]);
        return text.slice(0, -1) + " ".repeat(size - text.length) + "]";
      };
      const at = await post(denoUrl, publish(MAX_BODY));
      assert(at.status === 200 && at.json?.[0]?.error === PUBLISH_DENIED, `${MAX_BODY} bytes: ${at.status} ${at.text}`);
      const over = await post(denoUrl, publish(MAX_BODY + 1));
      assert(over.status === 413, `${MAX_BODY + 1} bytes: ${over.status}`);
    });

    await check("hardening: Node adapter: bodies over the cap get the relay's 413 with the same CORS headers as its other answers, at once", async () => {
      const relay = await nodeRelay();
      const CORS = ["access-control-allow-origin", "access-control-allow-credentials", "vary", "cache-control"];
      const cors = (h) => JSON.stringify(CORS.map((k) => [k, typeof h.get === "function" ? h.get(k) : (h[k] ?? null)]));
      const unauthorized = await post(relay.url, "[]", { auth: null });
      assert(unauthorized.status === 401 && unauthorized.headers.get("access-control-allow-origin") === pageOrigin, `control: ${unauthorized.status}`);
      const want = cors(unauthorized.headers);
      for (const size of [40000, 70000, 2_000_000]) {
        const r = await post(relay.url, " ".repeat(size));
        assert(r.status === 413 && cors(r.headers) === want, `${size} bytes: ${r.status} ${cors(r.headers)} (a 401 has ${want})`);
      }
      const headers = { "content-type": "application/json", authorization: `Bearer ${session}`, origin: pageOrigin };
      const declared = await partialPost(relay.url, { headers: { ...headers, "content-length": String(100 * 1024 * 1024) }, write: () => {} });
      assert(declared.status === 413 && cors({ get: (k) => declared.headers[k] ?? null }) === want, `100 MB declared: ${declared.status} ${JSON.stringify(declared.headers)}`);
      const chunked = await partialPost(relay.url, { headers, write: (req) => req.write(Buffer.alloc(65536, 0x20)) });
      assert(chunked.status === 413 && cors({ get: (k) => chunked.headers[k] ?? null }) === want, `64 KiB chunked, never ended: ${chunked.status} ${JSON.stringify(chunked.headers)}`);
    });

    await check("hardening: a login that never answers: an aborted request stops waiting, the others get 503 after loginTimeout (the token request is aborted), the next login waits out a back-off", async () => {
      // The token endpoint: hangs while `hang`, then passes the grant on to sfemu's.
      let hang = true;
      const logins = [];
      const dropped = [];
      const tokenServer = await listen(async (req, res) => {
        let body = "";
        for await (const c of req) body += c;
        logins.push(Date.now());
        if (hang) {
          req.socket.on("close", () => dropped.push(Date.now()));
          return;
        }
        const r = await fetch(`${emu.url}${req.url}`, { method: "POST", headers: { "content-type": req.headers["content-type"] }, body });
        res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
        res.end(await r.text());
      });
      open.push(tokenServer);
      const settled = [];
      const wrap = (relay) => async (request) => {
        try {
          return await relay(request);
        } finally {
          settled.push(Date.now());
        }
      };
      const relay = await nodeRelay({ loginTimeout: 2000 }, { loginUrl: tokenServer.url, wrap });
      const t0 = Date.now();
      const ac = new AbortController();
      const aborted = post(relay.url, HANDSHAKE, { signal: ac.signal }).then(() => "answered", (e) => e.name);
      const waiting = post(relay.url, HANDSHAKE, { signal: AbortSignal.timeout(8000) }).catch((e) => ({ status: e.name }));
      setTimeout(() => ac.abort(), 200);
      assert((await aborted) === "AbortError", "the browser gave up");
      await until(() => settled.length >= 1, { timeout: 1000, what: "the relay to let go of the aborted request while the login hangs" });
      assert(settled[0] - t0 < 1500, `the aborted request was let go after ${settled[0] - t0} ms`);
      const r = await waiting;
      const took = Date.now() - t0;
      assert(r.status === 503 && r.json?.[0]?.error === "503::Relay timed out authenticating to Salesforce", `after the login timeout: ${r.status} ${r.text}`);
      assert(took >= 1900 && took < 5000, `answered after ${took} ms (loginTimeout 2000)`);
      assert(logins.length === 1, `one login for both requests (${logins.length})`);
      await until(() => dropped.length === 1, { timeout: 2000, what: "the abandoned login's token request to be aborted" });
      // Back-off: at once the same 503, and no new login.
      const t1 = Date.now();
      const again = await post(relay.url, HANDSHAKE);
      assert(again.status === 503 && again.json?.[0]?.error === "503::Relay timed out authenticating to Salesforce" && Date.now() - t1 < 1000,
        `during the back-off: ${again.status} ${again.text} after ${Date.now() - t1} ms`);
      assert(logins.length === 1, `no login during the back-off (${logins.length})`);
      // After it (1 s), the next request logs in again, answered this time.
      hang = false;
      await sleep(1200);
      const ok = await post(relay.url, HANDSHAKE);
      assert(ok.status === 200 && ok.json?.[0]?.successful === true, `after the back-off: ${ok.status} ${ok.text}`);
      assert(logins.length === 2, `one more login (${logins.length})`);
    });

    await check("hardening: a client's cookie jar is not swept while its long-poll is held longer than sessionIdleTimeout", async () => {
      // sfemu holds a connect 3 s; the relay drops jars idle for 1 s, and another browser's requests
      // (each sweeps) come every 250 ms. A swept jar shows: the next connect goes without Salesforce's
      // cookies, sfemu refuses it and the client handshakes again.
      const relay = await nodeRelay({ sessionIdleTimeout: 1000 });
      const channel = "/event/Relay_Held__e";
      const client = new mod.Client(new mod.AccessTokenAuthenticator({ accessToken: session, instanceUrl: relay.url }), { connectionTimeout: 8000 });
      const other = await mintSession(secret, { sub: "other-user", exp: Date.now() + 3600_000 });
      try {
        await client.open();
        await client.subscribe(channel);
        const before = (await emu.control("stats")).handshakes;
        const end = Date.now() + 7500;
        while (Date.now() < end) {
          await post(relay.url, [{ channel: "/meta/connect", clientId: "nobody", connectionType: "long-polling" }], { auth: other });
          await sleep(250);
        }
        const p = await emu.control("publish", { channel, count: 2 });
        const got = [];
        for (let i = 0; i < 2; i++) got.push((await client.receive({ signal: AbortSignal.timeout(10000) })).data.event.replayId);
        assert(got[0] === p.firstReplayId && got[1] === p.lastReplayId, `events ${got} vs ${p.firstReplayId}..${p.lastReplayId}`);
        const after = (await emu.control("stats")).handshakes;
        assert(after === before, `no new handshake while the long-polls were held (${before} → ${after})`);
      } finally {
        await client.close();
      }
    });

    await check("hardening: a /meta/disconnect refused by Salesforce (another browser naming a clientId) leaves that client's cookie jar alone", async () => {
      const relay = await nodeRelay();
      const other = await mintSession(secret, { sub: "other-user", exp: Date.now() + 3600_000 });
      const clientId = await handshake(relay.url);
      const connect = (id) => [{ channel: "/meta/connect", clientId, connectionType: "long-polling", id, advice: { timeout: 0 } }];
      const first = await post(relay.url, connect("c1"));
      assert(first.json?.[0]?.successful === true, `first connect: ${first.text}`);
      // Another browser: the relay forwards without the owner's cookies, Salesforce refuses it.
      const foreign = await post(relay.url, [{ channel: "/meta/disconnect", clientId, id: "d1" }], { auth: other });
      const fr = foreign.json?.[0];
      assert(fr?.channel === "/meta/disconnect" && fr.successful === false && fr.clientId === clientId, `the foreign disconnect is refused: ${foreign.text}`);
      const next = await post(relay.url, connect("c2"));
      assert(next.json?.[0]?.successful === true, `the owner's next connect still carries its cookies: ${next.text}`);
      const stats = await emu.control("stats");
      assert(stats.sessions.some((s) => s.clientId === clientId), "the session lives");
      const own = await post(relay.url, [{ channel: "/meta/disconnect", clientId, id: "d2" }]);
      assert(own.json?.[0]?.successful === true, `the owner's own disconnect: ${own.text}`);
    });

    await check("hardening: one user cannot hold more than maxSessionsPerUser Salesforce sessions: the next handshake is refused by the relay, other users go on", async () => {
      const relay = await nodeRelay({ maxSessionsPerUser: 3 });
      const before = (await emu.control("stats")).handshakes;
      for (let i = 0; i < 3; i++) await handshake(relay.url);
      // Before: every handshake was forwarded; a page handshaking in a loop took the org's limit.
      const over = await post(relay.url, HANDSHAKE);
      const r = over.json?.[0];
      assert(over.status === 200 && r?.successful === false && r.error === "403::Handshake denied" && r.id === "h", `the 4th handshake: ${over.text}`);
      assert(/^503::/.test(r.ext?.sfdc?.failureReason ?? ""), `a reason the client retries: ${over.text}`);
      assert(over.headers.get("access-control-allow-origin") === pageOrigin, "with CORS");
      assert((await emu.control("stats")).handshakes === before + 3, "not forwarded");
      const other = await mintSession(secret, { sub: "another-user", exp: Date.now() + 3600_000 });
      await handshake(relay.url, other);

      // authorize returning the user's id: two session tokens of one user share the bound.
      const byUser = await nodeRelay({
        maxSessionsPerUser: 2,
        authorize: async (request) => ((await verifySession(request.headers.get("authorization"), secret)) ? JSON.parse(Buffer.from(request.headers.get("authorization").slice(7).split(".")[0], "base64url")).sub : false),
      });
      const renewed = await mintSession(secret, { sub: "browser-user", exp: Date.now() + 7200_000 });
      await handshake(byUser.url);
      await handshake(byUser.url, renewed);
      const third = await post(byUser.url, HANDSHAKE, { auth: renewed });
      assert(third.json?.[0]?.successful === false, `a third session of the same user: ${third.text}`);
      await handshake(byUser.url, other);
    });

    await check("hardening: Salesforce refusing fresh tokens: the relay logs in again after a back-off, not once per browser request", async () => {
      // An authenticator whose tokens Salesforce never accepts (as when a session policy refuses them).
      let logins = 0;
      const relay = await nodeRelay({
        authenticator: { authenticate: async () => ({ accessToken: `refused-${++logins}`, instanceUrl: emu.url, tokenType: "Bearer" }) },
      });
      const answers = [];
      for (let i = 0; i < 20; i++) answers.push(await post(relay.url, HANDSHAKE));
      assert(answers.every((a) => a.json?.[0]?.successful === false), "every handshake refused");
      // Before: 21 logins (one per request, each token refused at once).
      assert(logins <= 3, `${logins} logins for 20 requests`);
      assert(answers.every((a) => !a.text.includes("refused-")), "no relay token in an answer");
    });

    await check("hardening: a body nested too deep to write again gets 400 with CORS, not a crash", async () => {
      const relay = await nodeRelay();
      let deep = "1";
      for (let i = 0; i < 15000; i++) deep = `[${deep}]`;
      const body = `[{"channel":"/meta/subscribe","subscription":"/topic/NotAllowed","clientId":"x","id":"s"},{"channel":"/meta/connect","clientId":"x","connectionType":"long-polling","id":"c","ext":${deep}}]`;
      assert(body.length < MAX_BODY, "under the size cap");
      const r = await post(relay.url, body);
      // Before: JSON.stringify of the batch threw, and the adapter answered 500 without CORS.
      assert(r.status === 400 && r.headers.get("access-control-allow-origin") === pageOrigin, `${r.status} ${r.text.slice(0, 200)}`);
    });

    await check("hardening: an upstream answer that is not a Bayeux array: an error page passes with its status as text/plain, a 2xx one becomes 502 with the relay's refusals", async () => {
      const forbidden = { channel: "/meta/subscribe", subscription: "/topic/Forbidden", id: "s9" };
      // sfemu's injected failure: HTTP 503, text/plain.
      const relay = await nodeRelay();
      const clientId = await handshake(relay.url);
      await emu.control("fail", { status: 503, count: 1 });
      const down = await post(relay.url, [{ channel: "/meta/connect", clientId, connectionType: "long-polling", id: "c1" }, { ...forbidden, clientId }]);
      assert(down.status === 503 && down.text === "Service Unavailable" && /^text\/plain/.test(down.headers.get("content-type") ?? ""),
        `503 page: ${down.status} ${down.headers.get("content-type")} ${down.text}`);
      assert(down.headers.get("access-control-allow-origin") === pageOrigin, "with CORS");
      assert(down.headers.get("x-content-type-options") === "nosniff", "not sniffed as a page");
      // A server answering 200 with HTML (sfemu never does): its own token endpoint and /cometd.
      const html = await listen(async (req, res) => {
        for await (const _ of req);
        if (req.url.startsWith("/services/oauth2/token")) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ access_token: "html-server-token", instance_url: html.url, id: `${html.url}/id/00D/005`, token_type: "Bearer", issued_at: String(Date.now()), signature: "c2ln" }));
          return;
        }
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html><body>Down for maintenance</body></html>");
      });
      open.push(html);
      const relay2 = await nodeRelay({}, { loginUrl: html.url });
      const r = await post(relay2.url, [{ channel: "/meta/connect", clientId: "c", connectionType: "long-polling", id: "c1" }, { ...forbidden, clientId: "c" }]);
      assert(r.status === 502 && /^application\/json/.test(r.headers.get("content-type") ?? "") && Array.isArray(r.json), `200 + HTML: ${r.status} ${r.headers.get("content-type")} ${r.text}`);
      assert(r.json[0].successful === false && r.json[0].error === "502::Relay got no Bayeux reply from Salesforce", `the relay's error first: ${r.text}`);
      assert(r.json.some((m) => m.channel === "/meta/subscribe" && m.id === "s9" && m.error === CHANNEL_NOT_ALLOWED), `the refused subscribe is answered: ${r.text}`);
    });
  } finally {
    for (const l of open) l.close();
    await emu.stop();
  }
}
