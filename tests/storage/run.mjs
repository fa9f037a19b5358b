#!/usr/bin/env node
// Storage layer (issue #4, durable replay) over the PACKED package (tests/node_modules/sfstream):
//  1. real Chromium (playwright-core) on a page served same-origin by sfemu --www: the native
//     localStorage and IndexedDB backends (resume, org/user namespacing, corrupt data) and a page
//     RELOADED mid-stream that resumes with no lost event (duplicates counted and printed);
//  2. Deno: DenoKvReplayStorage over a real Deno.openKv() file, reopened as after a restart;
//  3. workerd (Miniflare v4): WorkersKvReplayStorage over a KV binding and DurableObjectReplayStorage
//     over a Durable Object's storage, both persisted to disk; workerd is restarted between the two
//     runs (as a deploy would) and the second run resumes after the first one's last event.
// Usage: node tests/storage/run.mjs [chromium] [deno] [workerd]   (default: all three)
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Miniflare } from "miniflare";
import { startSfemu, CREDENTIALS, ROOT, until } from "../helpers/sfemu.mjs";
import { packageModules } from "../workerd/miniflare.mjs";
import { allIds } from "../helpers/reference.mjs";
import { CHROMIUM_ARGS as ARGS, CHROMIUM_PATH as CHROMIUM } from "../helpers/layer.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(ROOT, "tests", "node_modules", "sfstream");
const DENO = join(ROOT, "node_modules", ".bin", "deno");
if (!existsSync(join(pkg, "dist", "browser.js"))) {
  console.error(`packed package not found at ${pkg}: run scripts/test.mjs (it packs and extracts it)`);
  process.exit(1);
}
const parts = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const want = (p) => parts.length === 0 || parts.includes(p);
const SECOND_USER = { ...CREDENTIALS, username: "second@example.com", password: "second-password" };

let passed = 0;
let failed = 0;
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms).unref())]);
async function check(name, fn, timeout = 90000) {
  try {
    await withTimeout(fn(), timeout, name);
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).replace(/\n/g, "\n  ")}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


// ---- 1. Chromium -------------------------------------------------------------------------------
async function chromiumPart() {
  const www = mkdtempSync(join(tmpdir(), "sfstream-storage-www-"));
  cpSync(join(here, "page"), www, { recursive: true });
  cpSync(join(here, "..", "helpers", "page.js"), join(www, "helpers.js"));
  cpSync(pkg, join(www, "sfstream"), { recursive: true });
  let emu, browser;
  try {
    emu = await startSfemu(["--hold-timeout", "3000", "--www", www,
      "--user", `${CREDENTIALS.username}:${CREDENTIALS.password}`, "--user", `${SECOND_USER.username}:${SECOND_USER.password}`]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    const context = await browser.newContext();
    const page = await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    const load = async () => {
      await page.waitForFunction(() => window.sfstreamStorage !== undefined, null, { timeout: 20000 }).catch((e) => {
        throw new Error(`the page did not load the package: ${pageErrors.join("\n") || e.message}`);
      });
    };
    await page.goto(`${emu.url}/index.html`);
    await load();
    const run = (fn, ...args) => page.evaluate(([f, a]) => window.sfstreamStorage.storage[f](...a), [fn, args]);

    for (const kind of ["localStorage", "indexedDB"]) {
      await check(`chromium ${kind}: a second consumer resumes after the first one's last taken event; key <org>/<user>/<channel>`, async () => {
        const r = await run("resume", CREDENTIALS, kind, `/topic/Chromium${kind}Resume`);
        assert(r.stored === r.last, JSON.stringify(r));
        console.log(`  key: ${r.key}`);
      });
      await check(`chromium ${kind}: two users in one browser never share markers`, async () => {
        const keys = await run("twoUsers", [CREDENTIALS, SECOND_USER], kind, `/topic/Chromium${kind}Users`);
        assert(new Set(keys.map((k) => k.split("/").slice(-4, -2).join("/"))).size === 2, `distinct user namespaces: ${keys}`);
      });
      await check(`chromium ${kind}: corrupt stored data is reported (storageError) and treated as no marker`, async () => {
        await run("corrupt", CREDENTIALS, kind, `/event/Chromium${kind}Corrupt__e`);
      });
      if (kind === "indexedDB") {
        await check("chromium indexedDB: a stored value that is not text (written by other code) is reported as corrupt, not taken as no marker", async () => {
          await run("corrupt", CREDENTIALS, kind, "/event/ChromiumIdbObject__e", {}, { replayId: 5, date: null });
        });
      }
      await check(`chromium ${kind}: a page reloaded mid-stream resumes with no lost event`, () => reloadMidStream(emu, page, load, kind), 180000);
    }
    await check("chromium: a custom prefix and database name are honoured", async () => {
      await run("resume", CREDENTIALS, "localStorage", "/u/ChromiumPrefix", { prefix: "myapp:" });
      await run("resume", CREDENTIALS, "indexedDB", "/u/ChromiumDatabase", { database: "myapp-markers" });
    });
    if (pageErrors.length) console.log(`page errors (informational):\n  ${pageErrors.join("\n  ")}`);
  } finally {
    await browser?.close().catch(() => {});
    await emu?.stop();
    rmSync(www, { recursive: true, force: true });
  }
}

/**
 * The page consumes a channel (recording each processed replay id in sessionStorage before it asks
 * for the next message) while Node publishes 500 events in chunks; the page is reloaded in the
 * middle, its consumer starts again by itself from the stored marker. The union of processed ids
 * must cover every published event.
 */
async function reloadMidStream(emu, page, load, kind) {
  const ch = `/event/ChromiumReload${kind}__e`;
  const TOTAL = 500;
  const CHUNK = 25;
  await page.evaluate(([c, k, channel]) => window.sfstreamStorage.storage.startConsumer({ creds: c, kind: k, ch: channel, delayMs: 4 }), [CREDENTIALS, kind, ch]);
  await until(() => page.evaluate(() => window.sfstreamConsumerState?.subscribed === true), { timeout: 20000, what: "the page's consumer subscribed" });
  let published = 0;
  let reloadedAt = null;
  let last = null;
  const processedNow = () => page.evaluate(() => window.sfstreamStorage.storage.processed().length);
  while (published < TOTAL) {
    const p = await emu.control("publish", { channel: ch, count: CHUNK });
    last = p.lastReplayId;
    published += CHUNK;
    await sleep(60);
    if (reloadedAt === null && published >= TOTAL / 2) {
      // Reload once the consumer is well into the stream, with events still arriving.
      await until(async () => (await processedNow()) >= TOTAL / 4, { timeout: 30000, what: "a quarter processed" });
      const before = await processedNow();
      reloadedAt = { processed: before, published };
      await page.reload();
      await load();
    }
  }
  const ids = await allIds(emu.url, ch, last);
  assert(ids.length === TOTAL, `${ids.length} events on ${ch}`);
  const want = new Set(ids);
  let got = [];
  await until(async () => {
    got = await page.evaluate(() => window.sfstreamStorage.storage.processed());
    return ids.every((id) => got.includes(id));
  }, { timeout: 60000, every: 200, what: "every published event processed" }).catch((e) => {
    const missing = ids.filter((id) => !got.includes(id));
    throw new Error(`${e.message}: ${missing.length} missing (first ${missing.slice(0, 10)}), state ${JSON.stringify(reloadedAt)}`);
  });
  const state = await page.evaluate(() => {
    window.sfstreamStorage.storage.stopConsumer();
    return window.sfstreamConsumerState;
  });
  assert(state.error === null, `consumer error after reload: ${state.error}`);
  assert(state.starts === 2 || state.starts > 1, `the consumer restarted after the reload (starts ${state.starts})`);
  assert(reloadedAt.processed < reloadedAt.published, `the reload happened mid-stream (${JSON.stringify(reloadedAt)})`);
  assert(got.every((id) => want.has(id)), "only published events");
  const duplicates = got.length - new Set(got).size;
  console.log(`  ${kind}: reload after ${reloadedAt.processed} processed of ${reloadedAt.published} published; ` +
    `${got.length} processed in all for ${TOTAL} events: ${duplicates} duplicates (redelivered after the reload), 0 lost`);
  // Clear for a next run in the same page.
  await page.evaluate(() => sessionStorage.clear());
}

// ---- 2. Deno KV --------------------------------------------------------------------------------
async function denoPart() {
  if (!existsSync(DENO)) throw new Error(`deno not found at ${DENO}`);
  const dir = mkdtempSync(join(tmpdir(), "sfstream-storage-deno-"));
  mkdirSync(join(dir, "node_modules"));
  cpSync(pkg, join(dir, "node_modules", "sfstream"), { recursive: true });
  cpSync(join(here, "deno_kv.test.ts"), join(dir, "deno_kv.test.ts"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "deno-consumer", private: true, type: "module", dependencies: { sfstream: "*" } }));
  writeFileSync(join(dir, "deno.json"), JSON.stringify({ nodeModulesDir: "manual", compilerOptions: { lib: ["deno.window", "deno.unstable", "esnext"] } }));
  const emu = await startSfemu(["--hold-timeout", "3000"]);
  try {
    const child = spawn(DENO, ["test", "-A", "--unstable-kv", "--no-prompt", "deno_kv.test.ts"], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SFEMU_URL: emu.url, KV_PATH: join(dir, "markers.kv"), DENO_DIR: join(dir, ".deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120000);
    const code = await new Promise((r) => child.once("exit", (c, sig) => r(c ?? (sig ? 1 : 0))));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`deno test exited ${code}:\n${out}`);
  } finally {
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 3. workerd --------------------------------------------------------------------------------
async function workerdPart() {
  const root = mkdtempSync(join(tmpdir(), "sfstream-storage-workerd-"));
  mkdirSync(join(root, "node_modules"));
  cpSync(pkg, join(root, "node_modules", "sfstream"), { recursive: true });
  cpSync(join(here, "worker.js"), join(root, "worker.js"));
  const persist = join(root, "persist");
  const emu = await startSfemu(["--hold-timeout", "3000"]);
  const start = () => new Miniflare({
    modules: [{ type: "ESModule", path: join(root, "worker.js") }, ...packageModules(root)],
    modulesRoot: root,
    compatibilityDate: "2025-01-01",
    bindings: { SFEMU_URL: emu.url },
    kvNamespaces: ["MARKERS"],
    kvPersist: join(persist, "kv"),
    durableObjects: { CONSUMER: "Consumer" },
    durableObjectsPersist: join(persist, "do"),
  });
  const call = async (mf, route) => {
    const res = await mf.dispatchFetch(`http://worker/${route}`, { signal: AbortSignal.timeout(90000) });
    const body = await res.json();
    if (res.status !== 200 || body.error) throw new Error(`${route}: HTTP ${res.status} ${body.error ?? JSON.stringify(body)}`);
    return body;
  };
  try {
    for (const [name, route] of [["Workers KV", "kv"], ["Durable Object storage", "do"]]) {
      await check(`workerd ${name}: a worker drains since its stored marker; after a workerd restart the next run resumes`, async () => {
        const ch = `/topic/Workerd${route}Resume`;
        const p1 = await emu.control("publish", { channel: ch, count: 6 });
        const ids1 = await allIds(emu.url, ch, p1.lastReplayId);
        let mf = start();
        const r1 = await call(mf, `${route}?ch=${encodeURIComponent(ch)}&take=4`);
        assert(JSON.stringify(r1.ids) === JSON.stringify(ids1.slice(0, 4)), `first run ${r1.ids} vs ${ids1}`);
        const keys = Object.keys(r1.stored);
        assert(keys.length === 1 && /^sfstream\/00D\w+\/005\w+\/\/topic\//.test(keys[0]), `stored keys ${keys}`);
        await mf.dispose();
        mf = null;

        const p2 = await emu.control("publish", { channel: ch, count: 3 });
        const ids2 = (await allIds(emu.url, ch, p2.lastReplayId)).slice(6);
        mf = start();
        try {
          const r2 = await call(mf, `${route}?ch=${encodeURIComponent(ch)}&take=5&quiet=500`);
          const expected = [...ids1.slice(4), ...ids2];
          assert(JSON.stringify(r2.ids) === JSON.stringify(expected), `second run ${r2.ids} vs ${expected}`);
          assert(r2.extra === null, `nothing more: ${r2.extra}`);
          assert(r2.statuses.length === 0, `no storage error or fallback: ${r2.statuses}`);
          const marker = JSON.parse(typeof r2.stored[keys[0]] === "string" ? r2.stored[keys[0]] : JSON.stringify(r2.stored[keys[0]]));
          assert(marker.replayId === expected.at(-1), `stored ${JSON.stringify(r2.stored)}`);
        } finally {
          await mf.dispose();
        }
      });
    }
  } finally {
    await emu.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

if (want("chromium")) await chromiumPart().catch((e) => check("chromium part setup", () => Promise.reject(e)));
if (want("deno")) await check("deno: Deno KV resume after a restart, namespaced keys, foreign data reported", denoPart, 150000);
if (want("workerd")) await workerdPart().catch((e) => check("workerd part setup", () => Promise.reject(e)));
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
