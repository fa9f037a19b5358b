#!/usr/bin/env node
// workerd layer: Miniflare (v4) runs worker.js in workerd with the PACKED package as modules
// (ESModule files + the .wasm as CompiledWasm, see miniflare.mjs); the worker talks to sfemu (its own
// process) over real HTTP. Then the examples/worker cron handler is run the same way.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { startSfemu, ROOT } from "../helpers/sfemu.mjs";
import { packageModules } from "./miniflare.mjs";
import { layer } from "../helpers/layer.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(ROOT, "tests", "node_modules", "sfstream");
if (!existsSync(join(pkg, "package.json"))) {
  console.error(`packed package not found at ${pkg}: run scripts/test.mjs (it packs and extracts it)`);
  process.exit(1);
}
const COMPAT = "2025-01-01";

const { check, fail, assert, finish } = layer();
/** A loopback HTTP server for one check; `seen` is the check's to fill. */
async function listen(handler) {
  const server = createServer(handler);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return { server, port, url: `http://127.0.0.1:${port}`, seen: [] };
}
function checkPublished(events, p, what) {
  const ids = events.map((e) => e.replayId);
  assert(ids.length === p.published, `${what}: ${ids.length} of ${p.published}`);
  assert(new Set(ids).size === ids.length && ids.every((id, i) => i === 0 || id > ids[i - 1]), `${what}: order/duplicates ${ids}`);
  assert(ids[0] === p.firstReplayId && ids.at(-1) === p.lastReplayId, `${what}: ${ids} vs ${p.firstReplayId}..${p.lastReplayId}`);
}

const root = mkdtempSync(join(tmpdir(), "sfstream-workerd-"));
mkdirSync(join(root, "node_modules"));
cpSync(pkg, join(root, "node_modules", "sfstream"), { recursive: true });
cpSync(join(here, "worker.js"), join(root, "worker.js"));

let emu, mf;
try {
  emu = await startSfemu(["--hold-timeout", "3000"]);
  mf = new Miniflare({
    modules: [{ type: "ESModule", path: join(root, "worker.js") }, ...packageModules(root)],
    modulesRoot: root,
    compatibilityDate: COMPAT,
    bindings: { SFEMU_URL: emu.url },
  });
  const call = async (route) => {
    const res = await mf.dispatchFetch(`http://worker/${route}`, { signal: AbortSignal.timeout(60000) });
    const body = await res.json();
    if (res.status !== 200) throw new Error(`${route}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body;
  };

  await check("workerd: AccessTokenAuthenticator, subscribe, receive events published via the control API", async () => {
    const r = await call("token");
    assert(r.connectionType === "long-polling", `connectionType ${r.connectionType}`);
    assert(r.events.every((e) => e.channel === "/event/Workerd_Token__e"), "channel");
    checkPublished(r.events, r.published, "token");
    assert(r.closed === true, "closed");
    const stats = await emu.control("stats");
    assert(stats.sessions.length === 0, `the worker disconnected its session (${stats.sessions.length} left)`);
  });
  await check("workerd: password login and a client publish on /u/, UTF-8 intact", async () => {
    const r = await call("password");
    assert(r.channel === "/u/WorkerdGreetings" && r.payload === "héllo from workerd 🌍", JSON.stringify(r));
  });
  await check("workerd: ALL_EVENTS replay", async () => {
    const r = await call("replayAll");
    checkPublished(r.events, r.published, "replay");
  });
  await check("workerd: ServerError for an unknown channel", async () => {
    const r = await call("serverError");
    assert(r.thrown && r.serverError && r.sfstreamError && r.errorCode === 400, JSON.stringify(r));
  });
  await check("workerd: a redirect is not followed: the other origin gets no token and no cookie, open() fails at once naming it", async () => {
    const token = "00Dworkerd!redirect-secret-token";
    const other = await listen((req, res) => {
      other.seen.push({ auth: req.headers.authorization ?? null, cookie: req.headers.cookie ?? null });
      req.resume().on("end", () => res.writeHead(500).end());
    });
    const instance = await listen((req, res) => {
      instance.seen.push({ auth: req.headers.authorization ?? null });
      req.resume().on("end", () =>
        res.writeHead(307, { location: `http://localhost:${other.port}/cometd/62.0`, "set-cookie": "BAYEUX_BROWSER=redirect-cookie; Path=/" }).end(),
      );
    });
    try {
      const r = await call(`redirect?instance=${encodeURIComponent(instance.url)}&token=${encodeURIComponent(token)}`);
      assert(r.thrown && r.sfstreamError && r.name === "TransportError", JSON.stringify(r));
      assert(/redirect \(HTTP 307\), which is not followed/.test(r.message), `message: ${r.message}`);
      assert(r.ms < 4000, `failed after ${r.ms} ms: not at once`);
      assert(instance.seen.some((s) => s.auth === `Bearer ${token}`), "the instance got the token");
      assert(other.seen.length === 0, `the other origin got ${JSON.stringify(other.seen)}`);
    } finally {
      other.server.close();
      instance.server.close();
    }
  });
  await check("workerd: a client closed from a later request than the one that opened it: close() settles, twice, and ends the session", async () => {
    const opened = await call("crossOpen");
    assert(opened.open === true, JSON.stringify(opened));
    // Before: close() threw workerd's "Cannot perform I/O on behalf of a different request" from
    // inside the shell (aborting the first request's long-poll), left the session closing, and
    // a second close() never settled.
    const r = await call("crossClose");
    assert(r.first === "closed" && r.second === "closed" && r.closed === true, JSON.stringify(r));
    const stats = await emu.control("stats");
    assert(!stats.sessions.some((s) => s.subscriptions.includes("/topic/WorkerdCross")), "the session was disconnected");
  });
  await check("workerd: requests in parallel share the wasm module", async () => {
    const [a, b] = await Promise.all([call("replayAll?n=2"), call("password")]);
    checkPublished(a.events, a.published, "parallel replay");
    assert(b.payload === "héllo from workerd 🌍", "parallel password");
  });
} catch (e) {
  fail("workerd layer setup", e);
} finally {
  await mf?.dispose().catch(() => {});
  await emu?.stop();
  rmSync(root, { recursive: true, force: true });
}

// examples/worker: its own test (the cron trigger draining into KV), when present.
const exampleTest = join(here, "example-worker.mjs");
if (existsSync(exampleTest)) {
  const { runExampleWorker } = await import(exampleTest);
  const r = await runExampleWorker(check);
  void r;
}
finish();
