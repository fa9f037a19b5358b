#!/usr/bin/env node
// relay layer: `sfstream/relay` in front of sfemu (no CORS, like Salesforce's /cometd), deployed
//   * in Deno (Deno.serve, the packed package resolved through its exports map), and
//   * in workerd (Miniflare v4, the packed package as ESModules + CompiledWasm),
// and, for the Node adapter, in node:http. A page in real Chromium on ANOTHER loopback origin (a
// static server of its own) streams through each relay with the real browser Client. Checked: events
// arrive; a channel outside the allowlist gets `403::Channel not allowed by relay`; publish is refused;
// a request without a valid session token gets HTTP 401; after sfemu revokes every token the relay
// re-authenticates and the stream goes on; and no response body or header the browser sees contains
// any Salesforce token the relay obtained (every relay response captured with page.on("response")).
// Then hardening.mjs: the relay's edges (malformed subscribes, request bodies, a hung login, cookie
// jars, non-Bayeux upstream replies), and tabs.mjs: three tabs sharing one connection (leader election).
import { spawn } from "node:child_process";
import { cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";
import { Miniflare } from "miniflare";
import { startSfemu, until, CREDENTIALS, ROOT } from "../helpers/sfemu.mjs";
import { mintSession } from "./session.mjs";
import { layer, CHROMIUM_ARGS as ARGS, CHROMIUM_PATH as CHROMIUM } from "../helpers/layer.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkgSrc = join(ROOT, "tests", "node_modules", "sfstream");
const DENO = join(ROOT, "node_modules", ".bin", "deno");
for (const [what, p] of [["packed package", join(pkgSrc, "package.json")], ["deno (npm devDependency)", DENO]]) {
  if (!existsSync(p)) {
    console.error(`${what} not found at ${p} (run scripts/test.mjs, which packs and extracts the package)`);
    process.exit(1);
  }
}

const { check, fail, assert, finish } = layer();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- The scratch project: the packed package, the relay apps, the page.
const root = mkdtempSync(join(tmpdir(), "sfstream-relay-"));
const pkgDir = join(root, "node_modules", "sfstream");
mkdirSync(join(root, "node_modules"));
cpSync(pkgSrc, pkgDir, { recursive: true });
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const relayExport = pkg.exports?.["./relay"];
const relayNodeExport = pkg.exports?.["./relay/node"];
const exportTarget = (e) => (typeof e === "string" ? e : e?.import ?? e?.default);
await check("package: exports['./relay'] → ./dist/relay.js and exports['./relay/node'] → ./dist/relay-node.js", () => {
  assert(exportTarget(relayExport) === "./dist/relay.js", `exports["./relay"] = ${JSON.stringify(relayExport)}`);
  assert(exportTarget(relayNodeExport) === "./dist/relay-node.js", `exports["./relay/node"] = ${JSON.stringify(relayNodeExport)}`);
  assert(existsSync(join(pkgDir, "dist", "relay.js")) && existsSync(join(pkgDir, "dist", "relay.d.ts")) && existsSync(join(pkgDir, "dist", "relay-node.js")), "dist/relay.js, relay.d.ts, relay-node.js packed");
});
if (exportTarget(relayExport) === undefined || exportTarget(relayNodeExport) === undefined) {
  // The check above failed (and fails the layer); map the subpaths in the scratch copy only, so the
  // behaviour of the shipped files is still tested.
  console.log("# the packed package.json lacks the ./relay exports: mapping them in the scratch copy only");
  pkg.exports["./relay"] = { types: "./dist/relay.d.ts", default: "./dist/relay.js" };
  pkg.exports["./relay/node"] = { types: "./dist/relay-node.d.ts", default: "./dist/relay-node.js" };
  writeFileSync(join(pkgDir, "package.json"), JSON.stringify(pkg, null, 2));
}
for (const f of ["session.mjs", "relay-app.mjs", "relay-deno.mjs", "relay-worker.mjs"]) cpSync(join(here, f), join(root, f));
writeFileSync(join(root, "package.json"), JSON.stringify({ name: "relay-consumer", private: true, type: "module", dependencies: { sfstream: "*" } }));
writeFileSync(join(root, "deno.json"), JSON.stringify({ nodeModulesDir: "manual" }));
const www = join(root, "www");
cpSync(join(here, "page"), www, { recursive: true });
cpSync(pkgDir, join(www, "sfstream"), { recursive: true });

// A static server for the page: its own loopback origin, HTTP/1.1.
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
const pageServer = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(www, path.endsWith("/") ? `${path}index.html` : path);
  if (!file.startsWith(www) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  // no-cache rather than no-store: a no-store page never enters the back/forward cache.
  res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-cache" });
  createReadStream(file).pipe(res);
});
await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;

const SECRET = randomBytes(24).toString("base64");
const session = await mintSession(SECRET, { sub: "browser-user", exp: Date.now() + 3600_000 });
const expired = await mintSession(SECRET, { sub: "browser-user", exp: Date.now() - 1000 });
const forged = await mintSession("not-the-secret", { sub: "browser-user", exp: Date.now() + 3600_000 });

/** Every Salesforce token a relay obtained, by relay. */
const tokens = { deno: [], workerd: [], node: [] };
let emu, deno, mf, nodeRelay, browser;
const captured = [];
const captures = [];

async function startDenoRelay() {
  const child = spawn(DENO, ["run", "-A", "--no-prompt", "relay-deno.mjs"], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SFEMU_URL: emu.url, SF_CREDENTIALS: JSON.stringify(CREDENTIALS), SESSION_SECRET: SECRET, PAGE_ORIGIN: pageOrigin,
      DENO_DIR: join(root, ".deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
  let out = "";
  let buf = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Deno relay did not start:\n${out}`)), 60000);
    child.stdout.setEncoding("utf8").on("data", (c) => {
      buf += c;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^RELAY (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        } else if (line.startsWith("TOKEN ")) tokens.deno.push(line.slice(6));
        else out += `${line}\n`;
      }
    });
    child.stderr.setEncoding("utf8").on("data", (c) => (out += c));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the Deno relay exited with ${code}:\n${out}`));
    });
  });
  return { url, child, output: () => out };
}

async function startWorkerdRelay() {
  const entry = exportTarget(pkg.exports["."].workerd ?? pkg.exports["."]);
  const relayEntry = exportTarget(pkg.exports["./relay"]);
  const walk = (d) => (statSync(d).isDirectory() ? readdirSync(d).flatMap((f) => walk(join(d, f))) : [d]);
  const files = walk(join(pkgDir, "dist")).filter((f) => f.endsWith(".js") || f.endsWith(".wasm"));
  const modules = [
    { type: "ESModule", path: join(root, "relay-worker.mjs") },
    { type: "ESModule", path: join(root, "relay-app.mjs") },
    { type: "ESModule", path: join(root, "session.mjs") },
    // What a bundler resolving the exports map with the "workerd" condition produces.
    { type: "ESModule", path: join(root, "sfstream"), contents: `export * from "./node_modules/sfstream/${entry.replace(/^\.\//, "")}";\n` },
    { type: "ESModule", path: join(root, "sfstream", "relay"), contents: `export * from "../node_modules/sfstream/${relayEntry.replace(/^\.\//, "")}";\n` },
    ...files.map((f) => ({ type: f.endsWith(".wasm") ? "CompiledWasm" : "ESModule", path: f })),
  ];
  const m = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    modules,
    modulesRoot: root,
    compatibilityDate: "2025-01-01",
    bindings: { SFEMU_URL: emu.url, SF_CREDENTIALS: JSON.stringify(CREDENTIALS), SESSION_SECRET: SECRET, PAGE_ORIGIN: pageOrigin },
    serviceBindings: {
      REPORT: async (request) => {
        tokens.workerd.push(await request.text());
        return new Response("ok");
      },
    },
  });
  const url = (await m.ready).origin;
  return { url, mf: m };
}

/** The packed package's Node entry, relay and Node adapter, imported from the scratch project so
 * that "sfstream/relay" resolves through the packed exports map. */
async function importPacked() {
  writeFileSync(join(root, "node-relay.mjs"), [
    'import { PasswordAuthenticator, Client, AccessTokenAuthenticator, ServerError } from "sfstream";',
    'import { createRelay } from "sfstream/relay";',
    'import { toNodeHandler } from "sfstream/relay/node";',
    'export { PasswordAuthenticator, Client, AccessTokenAuthenticator, ServerError, createRelay, toNodeHandler };',
  ].join("\n"));
  return import(pathToFileURL(join(root, "node-relay.mjs")).href);
}

async function startNodeRelay() {
  const mod = await importPacked();
  const { makeRelay } = await import(pathToFileURL(join(root, "relay-app.mjs")).href);
  const relay = makeRelay({ createRelay: mod.createRelay, PasswordAuthenticator: mod.PasswordAuthenticator, sfemuUrl: emu.url, credentials: CREDENTIALS,
    secret: SECRET, pageOrigin, onToken: (t) => tokens.node.push(t) });
  const server = createServer(mod.toNodeHandler(relay));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, server, mod };
}

async function pageFor(context, relayUrl) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => {
    if (!r.url().startsWith(relayUrl)) return;
    captures.push((async () => {
      const entry = { url: r.url(), status: r.status(), method: r.request().method(), headers: await r.allHeaders().catch(() => ({})), body: null };
      try {
        entry.body = await r.text();
      } catch {
        entry.body = null; // a long-poll cut short when the page closed
      }
      captured.push(entry);
    })());
  });
  await page.goto(`${pageOrigin}/index.html`);
  try {
    await page.waitForFunction(() => window.relayTest !== undefined, null, { timeout: 20000 });
  } catch (e) {
    throw new Error(`the page did not load: ${errors.join("\n") || e.message}`);
  }
  return page;
}

function checkRange(got, published, what) {
  const ids = got.map((e) => e.replayId);
  assert(ids.length === published.published, `${what}: ${ids.length} of ${published.published} (${JSON.stringify(got)})`);
  assert(new Set(ids).size === ids.length && ids.every((id, i) => i === 0 || id > ids[i - 1]), `${what}: order/duplicates ${ids}`);
  assert(ids[0] === published.firstReplayId && ids.at(-1) === published.lastReplayId, `${what}: ${ids} vs ${published.firstReplayId}..${published.lastReplayId}`);
}

async function relayScenarios(label, relayUrl, page, tokenList) {
  const ev = (fn, ...args) => page.evaluate(fn, args);
  const channel = `/event/Relay_${label}__e`;
  await check(`${label}: a page on another origin streams through the relay (sfemu has no CORS)`, async () => {
    assert(new URL(relayUrl).origin !== pageOrigin, "the relay is cross-origin to the page");
    const opened = await ev(([u, t]) => window.relayTest.open("a", u, t), relayUrl, session);
    assert(opened.ok && opened.connectionType === "long-polling", `open: ${JSON.stringify(opened)}`);
    const sub = await ev(([c]) => window.relayTest.subscribe("a", c), channel);
    assert(sub.ok, `subscribe: ${JSON.stringify(sub)}`);
    const stats = await emu.control("stats");
    const mine = stats.sessions.filter((s) => s.subscriptions.includes(channel));
    assert(mine.length === 1, `sfemu sees one session subscribed to ${channel}: ${JSON.stringify(stats.sessions)}`);
    const p = await emu.control("publish", { channel, count: 5 });
    const got = await ev(([n]) => window.relayTest.take("a", n), 5);
    assert(got.ok, `take: ${JSON.stringify(got)}`);
    checkRange(got.got, p, "events");
  });
  await check(`${label}: a channel outside the allowlist gets 403::Channel not allowed by relay; the stream goes on`, async () => {
    const r = await ev(() => window.relayTest.subscribe("a", "/topic/Forbidden"));
    assert(!r.ok && r.name === "ServerError" && r.error === "403::Channel not allowed by relay", JSON.stringify(r));
    const stats = await emu.control("stats");
    assert(!stats.sessions.some((s) => s.subscriptions.includes("/topic/Forbidden")), "the subscribe never reached sfemu");
    const ok = await ev(() => window.relayTest.subscribe("a", "/topic/RelayAllowed"));
    assert(ok.ok, `an allowlisted exact channel subscribes: ${JSON.stringify(ok)}`);
    const p = await emu.control("publish", { channel, count: 2 });
    const got = await ev(([n]) => window.relayTest.take("a", n), 2);
    assert(got.ok, JSON.stringify(got));
    checkRange(got.got, p, "after the refusal");
  });
  await check(`${label}: publish over CometD is refused unless enabled`, async () => {
    const before = (await emu.control("stats")).published;
    const r = await ev(() => window.relayTest.publish("a", "/u/RelayNotes", "from the browser"));
    assert(!r.ok && r.name === "ServerError" && r.error === "403::Publish denied by relay", JSON.stringify(r));
    assert((await emu.control("stats")).published === before, "nothing was published");
  });
  await check(`${label}: no or invalid authorization gets HTTP 401 (readable cross-origin), and the Client cannot open`, async () => {
    const handshake = JSON.stringify([{ channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: ["long-polling"] }]);
    const url = `${relayUrl}/cometd/62.0`;
    const none = await ev(([u, b]) => window.relayTest.raw(u, { method: "POST", headers: { "content-type": "application/json" }, body: b }), url, handshake);
    const bad = await ev(([u, b, t]) => window.relayTest.raw(u, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${t}` }, body: b }), url, handshake, forged);
    const old = await ev(([u, b, t]) => window.relayTest.raw(u, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${t}` }, body: b }), url, handshake, expired);
    for (const [what, r] of [["none", none], ["forged", bad], ["expired", old]]) {
      assert(r.status === 401 && JSON.parse(r.body)[0].error === "401::Relay authorization required", `${what}: ${JSON.stringify(r)}`);
    }
    const good = await ev(([u, b, t]) => window.relayTest.raw(u, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${t}` }, body: b }), url, handshake, session);
    assert(good.status === 200 && JSON.parse(good.body)[0].successful === true, `control: a valid session handshakes: ${JSON.stringify(good)}`);
    const c = await ev(([u, t]) => window.relayTest.open("bad", u, t, { connectionTimeout: 2000 }), relayUrl, forged);
    assert(!c.ok, `open with a forged session must fail: ${JSON.stringify(c)}`);
    await ev(() => window.relayTest.close("bad"));
  });
  await check(`${label}: sfemu revokes every token; the relay re-authenticates once and no event is lost`, async () => {
    const before = tokenList.length;
    assert(before >= 1, "the relay reported its token");
    await emu.control("revoke-tokens", {});
    const p = await emu.control("publish", { channel, count: 3 });
    const got = await ev(([n]) => window.relayTest.take("a", n, 20000), 3);
    assert(got.ok, JSON.stringify(got));
    checkRange(got.got, p, "after revocation");
    // The next connect carries the revoked token: sfemu answers 401::Authentication invalid and the
    // relay retries it with a fresh one, unseen by the browser.
    await until(() => tokenList.length > before, { timeout: 15000, what: "the relay to re-authenticate" });
    const p2 = await emu.control("publish", { channel, count: 3 });
    const got2 = await ev(([n]) => window.relayTest.take("a", n, 20000), 3);
    assert(got2.ok, JSON.stringify(got2));
    checkRange(got2.got, p2, "after re-authentication");
    assert(tokenList.length === before + 1, `exactly one fresh token (${before} → ${tokenList.length})`);
    const statuses = await ev(() => window.relayTest.statuses("a"));
    assert(!statuses.includes("failed"), `the browser client never failed: ${statuses}`);
  });
  await check(`${label}: close disconnects the Salesforce session through the relay`, async () => {
    await ev(() => window.relayTest.close("a"));
    await until(async () => !(await emu.control("stats")).sessions.some((s) => s.subscriptions.includes(channel)), { timeout: 10000, what: "the session to go" });
  });
}

try {
  emu = await startSfemu(["--hold-timeout", "3000", "--max-interval", "5000"]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  const context = await browser.newContext();

  // 1. Deno.
  try {
    deno = await startDenoRelay();
    const page = await pageFor(context, deno.url);
    await relayScenarios("Deno", deno.url, page, tokens.deno);
    await page.close();
  } catch (e) {
    await check("Deno relay setup", () => {
      throw e;
    });
  }

  // 2. workerd.
  try {
    const w = await startWorkerdRelay();
    mf = w.mf;
    const page = await pageFor(context, w.url);
    await relayScenarios("Workerd", w.url, page, tokens.workerd);
    await page.close();
  } catch (e) {
    await check("workerd relay setup", () => {
      throw e;
    });
  }

  // 3. Node adapter: the Node client through node:http + toNodeHandler (no browser: no Origin).
  await check("node: toNodeHandler serves the relay to a Node client; allowlist and 401 hold", async () => {
    nodeRelay = await startNodeRelay();
    const { Client, AccessTokenAuthenticator, ServerError } = nodeRelay.mod;
    const client = new Client(new AccessTokenAuthenticator({ accessToken: session, instanceUrl: nodeRelay.url }), { connectionTimeout: 8000 });
    try {
      await client.open();
      await client.subscribe("/event/Relay_Node__e");
      const p = await emu.control("publish", { channel: "/event/Relay_Node__e", count: 4 });
      const got = [];
      for (let i = 0; i < 4; i++) got.push({ replayId: (await client.receive({ signal: AbortSignal.timeout(10000) })).data.event.replayId });
      checkRange(got, p, "node");
      const err = await client.subscribe("/topic/Forbidden").then(() => null, (e) => e);
      assert(err instanceof ServerError && err.error === "403::Channel not allowed by relay", String(err));
    } finally {
      await client.close();
    }
    const r = await fetch(`${nodeRelay.url}/cometd/62.0`, { method: "POST", headers: { "content-type": "application/json" }, body: "[]" });
    assert(r.status === 401, `no authorization: ${r.status}`);
    const pre = await fetch(`${nodeRelay.url}/cometd/62.0`, { method: "OPTIONS", headers: { origin: "http://evil.example", "access-control-request-method": "POST" } });
    assert(pre.status === 403 && pre.headers.get("access-control-allow-origin") === null, `foreign origin preflight: ${pre.status}`);
    const ok = await fetch(`${nodeRelay.url}/cometd/62.0`, { method: "OPTIONS", headers: { origin: pageOrigin, "access-control-request-method": "POST" } });
    assert(ok.status === 204 && ok.headers.get("access-control-allow-origin") === pageOrigin && ok.headers.get("access-control-allow-credentials") === "true", `page origin preflight: ${ok.status}`);
  });

  // 4. The relay's edges, each a bug once: node:http relays of the packed package (own sfemu), and
  //    the Deno relay for request bodies as a runtime streams them.
  const { runHardening } = await import(pathToFileURL(join(here, "hardening.mjs")).href);
  await runHardening({ check, assert, mod: await importPacked(), pageOrigin, secret: SECRET, denoUrl: deno?.url ?? null });

  // 5. What the browser saw.
  await check("no response body or header the browser saw contains a Salesforce token, nor a Set-Cookie", async () => {
    await Promise.race([Promise.allSettled(captures), sleep(10000)]);
    await Promise.allSettled(captures.slice());
    const all = [...tokens.deno, ...tokens.workerd, ...tokens.node];
    assert(tokens.deno.length >= 2 && tokens.workerd.length >= 2, `the relays reported their tokens (${tokens.deno.length}, ${tokens.workerd.length})`);
    const withBody = captured.filter((c) => typeof c.body === "string" && c.body.includes("clientId"));
    assert(captured.length >= 20 && withBody.length >= 10, `responses captured: ${captured.length}, with Bayeux bodies: ${withBody.length}`);
    for (const c of captured) {
      const text = `${JSON.stringify(c.headers)}\n${c.body ?? ""}`;
      for (const t of all) assert(!text.includes(t), `${c.method} ${c.url} (${c.status}) contains a Salesforce token`);
      assert(!Object.keys(c.headers).some((h) => h.toLowerCase() === "set-cookie"), `${c.url} sets a cookie`);
    }
  });

  // 6. Shared tabs (one connection per browser), when present.
  const tabs = join(here, "tabs.mjs");
  if (existsSync(tabs) && deno) {
    const { runTabs } = await import(pathToFileURL(tabs).href);
    // playwright-core turns the back/forward cache off; the tabs' bfcache checks need it on.
    const launchWithBfcache = () => chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true, ignoreDefaultArgs: ["--disable-back-forward-cache"] });
    await runTabs({ check, assert, browser, launchWithBfcache, emu, relayUrl: deno.url, pageOrigin, session });
  }
} catch (e) {
  await check("relay layer setup", () => {
    throw e;
  });
} finally {
  await browser?.close().catch(() => {});
  deno?.child.kill("SIGTERM");
  await mf?.dispose().catch(() => {});
  nodeRelay?.server.closeAllConnections?.();
  nodeRelay?.server.close();
  pageServer.closeAllConnections?.();
  pageServer.close();
  await emu?.stop();
  rmSync(root, { recursive: true, force: true });
}
finish();
