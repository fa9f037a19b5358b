// Authenticators over real interfaces: sfemu for the CometD side, and loopback node:http servers
// playing Salesforce's token endpoint where a test needs to see or shape what the authenticator
// posts (the JWT's claims, a rotating refresh token).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { createServer } from "node:http";
import dns from "node:dns";
import { generateKeyPairSync, verify } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { Client, AccessTokenAuthenticator, AuthenticatorBase, PasswordAuthenticator, RefreshTokenAuthenticator, JwtBearerAuthenticator, AuthenticationError } from "sfstream";
import { startSfemu, CREDENTIALS } from "../helpers/sfemu.mjs";

let emu;
before(async () => {
  emu = await startSfemu(["--hold-timeout", "1000"]);
});
after(async () => {
  await emu?.stop();
});

/** Everything an error shows: name, message, stack, own fields, causes. */
function dumpError(e, depth = 0) {
  if (!(e instanceof Error) || depth > 5) return String(e);
  return `${e.name}: ${e.message}\n${e.stack}\n${inspect(e, { depth: 6, showHidden: true })}\ncause: ${dumpError(e.cause, depth + 1)}`;
}

/** A fresh access token of sfemu's default user. */
async function mint() {
  const t = await emu.control("token", { username: CREDENTIALS.username });
  return t.access_token;
}

/** Open a client with `auth`, subscribe and receive one published event. */
async function streams(auth) {
  const client = new Client(auth, { connectionTimeout: 3000 });
  try {
    await client.open();
    const channel = `/topic/Auth${Math.random().toString(36).slice(2, 8)}`;
    await client.subscribe(channel);
    await emu.control("publish", { channel, count: 1 });
    const m = await client.receive({ signal: AbortSignal.timeout(10000) });
    assert.equal(m.channel, channel);
  } finally {
    await client.close();
  }
}

describe("AuthenticatorBase: a login of one's own", () => {
  // aiosfstream's AuthenticatorBase is the base for implementing authenticators: grant() is the hook.
  class VaultAuthenticator extends AuthenticatorBase {
    constructor(vault, options = {}) {
      super({ loginUrl: emu.url, ...options }, ["tenant"]);
      this.vault = vault;
    }
    async grant() {
      const password = await this.vault();
      return { grantType: "password", clientId: CREDENTIALS.consumerKey, clientSecret: CREDENTIALS.consumerSecret, username: CREDENTIALS.username, password };
    }
  }

  test("a subclass implementing grant() logs in, each login asking for the grant again", async () => {
    let asked = 0;
    const auth = new VaultAuthenticator(async () => (asked++, CREDENTIALS.password), { tenant: "t1" });
    const c = new Client(auth);
    await c.open();
    assert.equal(asked, 1);
    assert.match(auth.instanceUrl ?? "", /^http:\/\/127\.0\.0\.1:/);
    assert.match(auth.id ?? "", /\/id\/00D\w+\/005\w+$/);
    await c.close();
    await auth.authenticate();
    assert.equal(asked, 2);
    assert.throws(() => new VaultAuthenticator(async () => "", { tenat: "typo" }), (e) => e instanceof TypeError && /unknown VaultAuthenticator option tenat/.test(e.message));
  });

  test("what grant() throws fails the login as an AuthenticationError, with it as the cause", async () => {
    const boom = new Error("the vault is sealed");
    const c = new Client(new VaultAuthenticator(async () => { throw boom; }));
    const err = await c.open().then(() => null, (e) => e);
    assert.ok(err instanceof AuthenticationError, `${err?.name}: ${err?.message}`);
    assert.match(err.message, /the vault is sealed/);
    assert.equal(err.cause, boom);
  });
});

describe("AccessTokenAuthenticator: a token that cannot go into an HTTP header", () => {
  // Before: accepted, nothing was ever sent (fetch refuses the header), and open() ended after
  // connectionTimeout in a TransportTimeoutError that did not mention the token.
  test("a fixed token read from a file (trailing newline) is trimmed and works", { timeout: 30000 }, async () => {
    const token = await mint();
    const auth = new AccessTokenAuthenticator({ accessToken: `${token}\n`, instanceUrl: `${emu.url}/\n` });
    await streams(auth);
    assert.equal(auth.accessToken, token);
    assert.equal(auth.instanceUrl, emu.url);
  });

  test("a token function's token with surrounding whitespace is trimmed and works", { timeout: 30000 }, async () => {
    const token = await mint();
    await streams(new AccessTokenAuthenticator(async () => ({ accessToken: `  ${token}\r\n`, instanceUrl: emu.url })));
  });

  const BAD = [
    ["a newline inside", "00DSECRET!tok\nen-123"],
    ["a space inside", "00DSECRET!tok en-123"],
    ["a tab inside", "00DSECRET!tok\ten-123"],
    ["a NUL", "00DSECRET!tok\0en-123"],
    ["DEL", "00DSECRET!tok\x7fen-123"],
    ["a non-ASCII letter", "00DSECRET!tök-123"],
    ["a no-break space inside", "00DSECRET!tok\u00a0en-123"],
    ["a line separator inside", "00DSECRET!tok\u2028en-123"],
    ["an emoji", "00DSECRET!tok\u{1F511}-123"],
    ["only whitespace", " \n\t "],
  ];

  test("a fixed token with such characters is a TypeError naming accessToken, without the token", () => {
    for (const [what, accessToken] of BAD) {
      assert.throws(
        () => new AccessTokenAuthenticator({ accessToken, instanceUrl: emu.url }),
        (e) => {
          assert.ok(e instanceof TypeError, `${what}: TypeError, got ${e}`);
          assert.match(e.message, /^accessToken /, what);
          assert.ok(!dumpError(e).includes("SECRET"), `${what}: the error shows the token: ${e.message}`);
          return true;
        },
        what,
      );
    }
  });

  test("a token function returning such a token: open() rejects at once with an AuthenticationError", { timeout: 60000 }, async () => {
    for (const [what, accessToken] of BAD) {
      const client = new Client(new AccessTokenAuthenticator(async () => ({ accessToken, instanceUrl: emu.url })), { connectionTimeout: 8000 });
      const started = Date.now();
      const err = await client.open().then(() => null, (e) => e);
      await client.close();
      assert.ok(err instanceof AuthenticationError, `${what}: AuthenticationError, got ${err}`);
      assert.match(err.message, /returned an invalid access token/, what);
      assert.ok(Date.now() - started < 4000, `${what}: rejected at once, not after connectionTimeout`);
      assert.ok(!dumpError(err).includes("SECRET"), `${what}: the error shows the token: ${err.message}`);
    }
  });

  test("tokenType and instanceUrl are held to the same rule", async () => {
    const token = "00DSECRET!token-123";
    assert.throws(() => new AccessTokenAuthenticator({ accessToken: token, instanceUrl: emu.url, tokenType: "Bear er" }), (e) => e instanceof TypeError && /^tokenType /.test(e.message));
    assert.throws(() => new AccessTokenAuthenticator({ accessToken: token, instanceUrl: `${emu.url}/a b` }), (e) => e instanceof TypeError && /^instanceUrl /.test(e.message));
    for (const [field, info] of [
      ["tokenType", { accessToken: token, instanceUrl: emu.url, tokenType: "Bearer\n1" }],
      ["instanceUrl", { accessToken: token, instanceUrl: `${emu.url}/x\ny` }],
      ["instanceUrl", { accessToken: token, instanceUrl: "ftp://example.com" }],
    ]) {
      const auth = new AccessTokenAuthenticator(() => info);
      const err = await auth.authenticate().then(() => null, (e) => e);
      assert.ok(err instanceof AuthenticationError, `${field}: AuthenticationError, got ${err}`);
      assert.match(err.message, new RegExp(`returned an invalid ${field}: ${field} `));
      assert.ok(!dumpError(err).includes("SECRET"));
      assert.equal(auth.accessToken, null, "nothing of a rejected answer is kept");
    }
  });
});

/**
 * A loopback server playing Salesforce's token endpoint: `answer(params, req)` returns
 * `[status, body]` for each POST to /…/services/oauth2/token; `seen` keeps every request.
 */
async function tokenEndpoint(answer) {
  const seen = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (c) => (body += c)).on("end", () => {
      const params = Object.fromEntries(new URLSearchParams(body));
      seen.push({ url: req.url, host: req.headers.host, params });
      if (!req.url.endsWith("/services/oauth2/token")) return res.writeHead(404).end();
      Promise.resolve(answer(params, req)).then(([status, json]) => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
      });
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return { seen, port, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

const granted = (accessToken, extra = {}) => [200, { access_token: accessToken, instance_url: "https://acme.my.salesforce.com", id: "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA", token_type: "Bearer", issued_at: String(Date.now()), signature: "c2ln", ...extra }];

describe("OAuth authenticators: a token endpoint's token that cannot go into a header", () => {
  // Before: the core refused control characters and spaces only; these were accepted and then
  // either refused by fetch (nothing sent, a TransportTimeoutError) or sent garbled.
  test("is an AuthenticationError naming access_token, without the token", { timeout: 20000 }, async () => {
    for (const bad of ["00DSECRET!tök-123", "00DSECRET!tok\u00a0en", "00DSECRET!tok\u2028en", "00DSECRET!\u{1F511}"]) {
      const ep = await tokenEndpoint(() => granted(bad));
      try {
        const auth = new PasswordAuthenticator({ ...CREDENTIALS, loginUrl: ep.url });
        const err = await auth.authenticate().then(() => null, (e) => e);
        assert.ok(err instanceof AuthenticationError, `AuthenticationError, got ${err}`);
        assert.match(err.message, /access_token/);
        assert.ok(!dumpError(err).includes("SECRET"), `the error shows the token: ${err.message}`);
        assert.equal(auth.accessToken, null);
      } finally {
        await ep.close();
      }
    }
  });
});

describe("JwtBearerAuthenticator: the aud claim Salesforce expects", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const b64json = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  const claims = [];
  let ep;
  const realLookup = dns.lookup;
  before(async () => {
    // The token endpoint checks the RS256 signature and records the claims, as Salesforce would.
    ep = await tokenEndpoint((p) => {
      const [h, c, sig] = p.assertion.split(".");
      if (b64json(h).alg !== "RS256" || !verify("RSA-SHA256", Buffer.from(`${h}.${c}`), publicKey, Buffer.from(sig, "base64url"))) {
        return [400, { error: "invalid_grant", error_description: "invalid assertion" }];
      }
      claims.push(b64json(c));
      return granted("00Dxx!JWT-granted");
    });
    // Salesforce's host names resolve to the loopback endpoint (plain http, allowInsecureHttp), so
    // that the authenticator derives aud from the real names and posts through its real transport.
    dns.lookup = (host, opts, cb) => {
      if (typeof opts === "function") [cb, opts] = [opts, {}];
      if (/(^|\.)(salesforce|site)\.com$/i.test(host)) return opts?.all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4);
      return realLookup(host, opts, cb);
    };
  });
  after(async () => {
    dns.lookup = realLookup;
    await ep?.close();
  });

  /** Log in through `loginUrl`; returns the claims the endpoint received and the request path. */
  async function assertionFor(loginUrl, extra = {}) {
    const auth = new JwtBearerAuthenticator({ consumerKey: "jwt-key", username: "jwt.user@example.com", privateKey, loginUrl, allowInsecureHttp: true, ...extra });
    const before = ep.seen.length;
    const t = await auth.authenticate();
    assert.equal(t.accessToken, "00Dxx!JWT-granted");
    assert.equal(ep.seen.length, before + 1);
    const c = claims.at(-1);
    assert.equal(c.iss, "jwt-key");
    assert.equal(c.sub, "jwt.user@example.com");
    assert.ok(c.exp > Date.now() / 1000 && c.exp <= Date.now() / 1000 + 181);
    assert.equal(auth.audience, c.aud);
    return { aud: c.aud, path: ep.seen.at(-1).url, host: ep.seen.at(-1).host };
  }

  // Before: aud was the login URL's origin, which Salesforce refuses for a My Domain login URL
  // (http://acme.my.salesforce.com:PORT here) and for a site with a path.
  test("production, My Domain, sandbox and Experience Cloud login URLs", { timeout: 30000 }, async () => {
    const p = ep.port;
    for (const [loginUrl, want] of [
      [`http://login.salesforce.com:${p}`, "https://login.salesforce.com"],
      [`http://acme.my.salesforce.com:${p}`, "https://login.salesforce.com"],
      [`http://ACME.my.salesforce.com:${p}/`, "https://login.salesforce.com"],
      [`http://acme-dev-ed.develop.my.salesforce.com:${p}`, "https://login.salesforce.com"],
      [`http://test.salesforce.com:${p}`, "https://test.salesforce.com"],
      [`http://acme--uat.sandbox.my.salesforce.com:${p}`, "https://test.salesforce.com"],
      [`http://acme--uat.my.salesforce.com:${p}`, "https://test.salesforce.com"],
      [`http://acme--uat.cs42.my.salesforce.com:${p}`, "https://test.salesforce.com"],
      [`http://power-fun-1234.scratch.my.salesforce.com:${p}`, "https://test.salesforce.com"],
      [`http://acme.my.site.com:${p}/portal/`, `http://acme.my.site.com:${p}/portal`],
    ]) {
      const got = await assertionFor(loginUrl);
      assert.equal(got.aud, want, loginUrl);
      assert.equal(got.host, new URL(loginUrl).host.toLowerCase(), "the request went to the login host");
    }
    // The site's token endpoint is under its path.
    assert.equal((await assertionFor(`http://acme.my.site.com:${p}/portal`)).path, "/portal/services/oauth2/token");
  });

  test("a loopback login URL (an emulator) keeps its own URL as aud", { timeout: 10000 }, async () => {
    assert.equal((await assertionFor(ep.url)).aud, ep.url);
    assert.equal((await assertionFor(`${ep.url}/`)).aud, ep.url);
  });

  test("the audience option overrides the default, and is checked", { timeout: 10000 }, async () => {
    const got = await assertionFor(`http://acme.my.salesforce.com:${ep.port}`, { audience: " https://acme.my.site.com/partners/ " });
    assert.equal(got.aud, "https://acme.my.site.com/partners");
    for (const audience of ["", "login.salesforce.com", "https://login.salesforce.com/a b", "https://login.salesforce.com?x=1", 5]) {
      assert.throws(() => new JwtBearerAuthenticator({ consumerKey: "k", username: "u", privateKey, audience }), (e) => e instanceof TypeError && /^audience /.test(e.message), String(audience));
    }
  });

  test("defaults without a request: login.salesforce.com, sandbox, https My Domains", () => {
    const make = (o) => new JwtBearerAuthenticator({ consumerKey: "k", username: "u", privateKey, ...o });
    assert.equal(make({}).audience, "https://login.salesforce.com");
    assert.equal(make({ sandbox: true }).audience, "https://test.salesforce.com");
    assert.equal(make({ loginUrl: "https://acme.my.salesforce.com" }).audience, "https://login.salesforce.com");
    assert.equal(make({ loginUrl: "https://acme--qa.sandbox.my.salesforce.com/" }).audience, "https://test.salesforce.com");
    assert.equal(make({ loginUrl: "https://acme.my.site.com/s" }).audience, "https://acme.my.site.com/s");
  });
});

describe("RefreshTokenAuthenticator: refresh-token rotation survives a restart", () => {
  /** A token endpoint that rotates: each refresh token works once and is replaced by a new one. */
  async function rotating({ instanceUrl = "https://acme.my.salesforce.com", accessToken = async () => "00Dxx!AT-rotated" } = {}) {
    const live = new Set(["RT-SECRET-1"]);
    let n = 1;
    const ep = await tokenEndpoint(async (p) => {
      if (p.grant_type !== "refresh_token" || p.client_id !== "rt-key") return [400, { error: "invalid_client_id", error_description: "client identifier invalid" }];
      if (!live.delete(p.refresh_token)) return [400, { error: "invalid_grant", error_description: "expired access/refresh token" }];
      const next = `RT-SECRET-${++n}`;
      live.add(next);
      return granted(await accessToken(), { refresh_token: next, instance_url: instanceUrl, scope: "api refresh_token" });
    });
    return ep;
  }
  /** console.warn lines while `fn` runs. */
  async function warnings(fn) {
    const lines = [];
    const real = console.warn;
    console.warn = (...a) => lines.push(a.map(String).join(" "));
    try {
      await fn();
    } finally {
      console.warn = real;
    }
    return lines;
  }

  // Before: there was no way to learn the new token (the option was refused as unknown), so a
  // restarted process reused the refresh token the rotation had invalidated.
  test("the new token is handed to onRefreshToken before authenticate() resolves; a restart logs in with it", { timeout: 20000 }, async () => {
    const ep = await rotating();
    try {
      const saved = { token: "RT-SECRET-1", calls: 0 };
      const make = () =>
        new RefreshTokenAuthenticator({
          consumerKey: "rt-key",
          refreshToken: saved.token,
          loginUrl: ep.url,
          onRefreshToken: async (t) => {
            await delay(50);
            saved.token = t;
            saved.calls++;
          },
        });
      const first = make();
      await first.authenticate();
      assert.equal(saved.token, "RT-SECRET-2", "saved (and awaited) before authenticate() resolved");
      assert.equal(first.refreshToken, "RT-SECRET-2");
      // The old token is dead: a process that kept it cannot log in.
      const stale = new RefreshTokenAuthenticator({ consumerKey: "rt-key", refreshToken: "RT-SECRET-1", loginUrl: ep.url });
      const err = await stale.authenticate().then(() => null, (e) => e);
      assert.ok(err instanceof AuthenticationError && err.error === "invalid_grant");
      // A restarted process reads the saved token and logs in.
      const restarted = make();
      await restarted.authenticate();
      assert.equal(saved.token, "RT-SECRET-3");
      assert.equal(saved.calls, 2);
    } finally {
      await ep.close();
    }
  });

  test("through a Client: open() resolves after the rotated token is saved, and streams", { timeout: 30000 }, async () => {
    const ep = await rotating({ instanceUrl: emu.url, accessToken: mint });
    try {
      let saved = null;
      const auth = new RefreshTokenAuthenticator({ consumerKey: "rt-key", consumerSecret: "rt-secret", refreshToken: "RT-SECRET-1", loginUrl: ep.url, onRefreshToken: (t) => delay(30).then(() => (saved = t)) });
      const client = new Client(auth, { connectionTimeout: 3000 });
      try {
        await client.open();
        assert.equal(saved, "RT-SECRET-2");
        const channel = "/topic/RotatedAuth";
        await client.subscribe(channel);
        await emu.control("publish", { channel, count: 1 });
        assert.equal((await client.receive({ signal: AbortSignal.timeout(10000) })).channel, channel);
      } finally {
        await client.close();
      }
    } finally {
      await ep.close();
    }
  });

  test("a failing onRefreshToken does not fail the login: one warning, without any token", { timeout: 20000 }, async () => {
    for (const [what, onRefreshToken] of [
      ["throws", (t) => {
        throw new Error(`EACCES: cannot write ${t} to /etc/token`);
      }],
      ["rejects", async (t) => Promise.reject(new TypeError(`vault refused ${t}\nsecond line`))],
      ["throws a string", (t) => {
        throw `no room for ${t}`;
      }],
    ]) {
      const ep = await rotating();
      try {
        const auth = new RefreshTokenAuthenticator({ consumerKey: "rt-key", consumerSecret: "CSECRET-rt", refreshToken: "RT-SECRET-1", loginUrl: ep.url, onRefreshToken });
        let info = null;
        const lines = await warnings(async () => {
          info = await auth.authenticate();
        });
        assert.equal(info.accessToken, "00Dxx!AT-rotated", `${what}: the login succeeded`);
        assert.equal(auth.refreshToken, "RT-SECRET-2", `${what}: the new token is kept in memory`);
        assert.equal(lines.length, 1, `${what}: one warning`);
        assert.match(lines[0], /onRefreshToken failed/);
        assert.match(lines[0], /EACCES|vault refused|no room/);
        assert.ok(!lines[0].includes("RT-SECRET") && !lines[0].includes("CSECRET"), `${what}: the warning shows a secret: ${lines[0]}`);
        assert.ok(!lines[0].includes("\n"), "one line");
      } finally {
        await ep.close();
      }
    }
  });

  test("not called when the token endpoint returns no new refresh token; checked at construction", { timeout: 20000 }, async () => {
    for (const extra of [{}, { refresh_token: "RT-SECRET-same" }]) {
      const ep = await tokenEndpoint(() => granted("00Dxx!AT-plain", extra));
      try {
        let calls = 0;
        const auth = new RefreshTokenAuthenticator({ consumerKey: "rt-key", refreshToken: "RT-SECRET-same", loginUrl: ep.url, onRefreshToken: () => void calls++ });
        await auth.authenticate();
        assert.equal(calls, 0);
        assert.equal(auth.refreshToken, "RT-SECRET-same");
      } finally {
        await ep.close();
      }
    }
    assert.throws(() => new RefreshTokenAuthenticator({ consumerKey: "k", refreshToken: "RT-SECRET-x", onRefreshToken: "save" }), (e) => e instanceof TypeError && /^onRefreshToken /.test(e.message) && !e.message.includes("SECRET"));
  });
});
