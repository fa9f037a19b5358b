// The examples/worker test: its scheduled (cron) handler, run by workerd through Miniflare with a
// KV namespace, drains the events published since its stored marker into KV and returns.
// The example is built the way wrangler builds it: esbuild bundles src/index.js, resolving
// "sfstream" from node_modules (the PACKED package) with the conditions workerd/worker/browser, and
// leaves the .wasm import external, shipped next to the bundle as a CompiledWasm module.
// Called by run.mjs with its `check(name, fn)` reporter.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { build } from "esbuild";
import { Log, LogLevel, Miniflare } from "miniflare";
import { startSfemu, CREDENTIALS, ROOT } from "../helpers/sfemu.mjs";

/** Bundle `entry` into `outDir/worker.js`; every imported .wasm is copied next to it. Returns the modules. */
export async function bundleWorker(entry, outDir) {
  const wasm = [];
  await build({
    entryPoints: [entry],
    outfile: join(outDir, "worker.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    target: "es2022",
    logLevel: "warning",
    plugins: [{
      name: "wasm-as-module",
      setup(b) {
        b.onResolve({ filter: /\.wasm$/ }, (args) => {
          const src = resolve(args.resolveDir, args.path);
          const name = basename(src);
          copyFileSync(src, join(outDir, name));
          wasm.push(name);
          return { path: `./${name}`, external: true };
        });
      },
    }],
  });
  return [
    { type: "ESModule", path: join(outDir, "worker.js") },
    ...wasm.map((n) => ({ type: "CompiledWasm", path: join(outDir, n) })),
  ];
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
const pad = (id) => String(id).padStart(12, "0");

export async function runExampleWorker(check) {
  const root = mkdtempSync(join(tmpdir(), "sfstream-example-worker-"));
  mkdirSync(join(root, "node_modules"));
  cpSync(join(ROOT, "tests", "node_modules", "sfstream"), join(root, "node_modules", "sfstream"), { recursive: true });
  cpSync(join(ROOT, "examples", "worker", "src"), join(root, "src"), { recursive: true });
  mkdirSync(join(root, "out"));
  const A = "/event/Order_Placed__e";
  const B = "/topic/OpportunityUpdates";
  let emu, mf;
  try {
    emu = await startSfemu(["--hold-timeout", "3000"]);
    mf = new Miniflare({
      modules: await bundleWorker(join(root, "src", "index.js"), join(root, "out")),
      modulesRoot: join(root, "out"),
      compatibilityDate: "2025-01-01",
      kvNamespaces: ["EVENTS"],
      // MF_DEBUG=1 shows workerd's log (uncaught exceptions of the worker).
      ...(process.env.MF_DEBUG ? { log: new Log(LogLevel.DEBUG) } : {}),
      bindings: {
        CHANNELS: `${A}, ${B}`,
        SF_LOGIN_URL: emu.url,
        SF_CONSUMER_KEY: CREDENTIALS.consumerKey,
        SF_CONSUMER_SECRET: CREDENTIALS.consumerSecret,
        SF_USERNAME: CREDENTIALS.username,
        SF_PASSWORD: CREDENTIALS.password,
        IDLE_MS: "1500",
        MAX_EVENTS: "6",
        DEADLINE_MS: "20000",
      },
    });
    await check("examples/worker: the wrangler-style bundle keeps the package's wasm initialisation", async () => {
      const out = readFileSync(join(root, "out", "worker.js"), "utf8");
      assert(/from\s*"\.\/sfstream_bg\.wasm"/.test(out) && /initSync\(/.test(out),
        "the bundle dropped dist/workerd.js's `import wasm from \"./wasm/sfstream_bg.wasm\"; initSync(...)`: " +
        "the package's \"sideEffects\": false lets bundlers tree-shake its entry modules; list them in sideEffects");
    });
    const worker = await mf.getWorker();
    const kv = await mf.getKVNamespace("EVENTS");
    const eventKeys = async () => (await kv.list({ prefix: "event:" })).keys.map((k) => k.name).sort();
    // WorkersKvReplayStorage's keys: marker:<orgId>/<userId>/<channel>.
    const markerKey = async (ch) => (await kv.list({ prefix: "marker:" })).keys.map((k) => k.name).find((k) => k.endsWith(`/${ch}`));
    const marker = async (ch) => {
      const key = await markerKey(ch);
      return key === undefined ? null : JSON.parse((await kv.get(key)) ?? "null");
    };
    const cron = async () => {
      const t0 = Date.now();
      const r = await worker.scheduled({ cron: "*/5 * * * *", scheduledTime: new Date() });
      const ms = Date.now() - t0;
      assert(r.outcome === "ok", `scheduled outcome ${JSON.stringify(r)} (MF_DEBUG=1 shows the worker's exception)`);
      assert(ms < 20000, `the run is bounded (${ms} ms)`);
      return ms;
    };
    const idsOf = (keys, ch) => keys.filter((k) => k.startsWith(`event:${ch}:`)).map((k) => Number(k.slice(`event:${ch}:`.length)));

    const a1 = await emu.control("publish", { channel: A, count: 5 });
    const b1 = await emu.control("publish", { channel: B, count: 3 });

    await check("examples/worker: the first cron run stops at MAX_EVENTS and stores what it took", async () => {
      await cron();
      const keys = await eventKeys();
      assert(keys.length === 6, `6 events stored, got ${keys.length}: ${keys}`);
      const stats = await emu.control("stats");
      assert(stats.sessions.length === 0, "the run disconnected its session");
    });

    await check("examples/worker: the next run resumes from the stored markers, nothing lost or duplicated", async () => {
      await cron();
      const keys = await eventKeys();
      assert(keys.length === 8, `all 8 events stored, got ${keys.length}: ${keys}`);
      const a = idsOf(keys, A);
      const b = idsOf(keys, B);
      assert(a.length === 5 && a[0] === a1.firstReplayId && a.at(-1) === a1.lastReplayId, `A ids ${a}`);
      assert(b.length === 3 && b[0] === b1.firstReplayId && b.at(-1) === b1.lastReplayId, `B ids ${b}`);
      assert((await marker(A))?.replayId === a1.lastReplayId, `marker A ${JSON.stringify(await marker(A))}`);
      assert((await marker(B))?.replayId === b1.lastReplayId, `marker B ${JSON.stringify(await marker(B))}`);
      const stored = JSON.parse(await kv.get(`event:${A}:${pad(a1.lastReplayId)}`));
      assert(stored.event.replayId === a1.lastReplayId && typeof stored.payload === "object", "the event body is stored");
    });

    await check("examples/worker: a run with nothing new returns after the idle time", async () => {
      const ms = await cron();
      assert((await eventKeys()).length === 8, "nothing new stored");
      assert(ms >= 1400, `waited for the idle time (${ms} ms)`);
    });

    await check("examples/worker: events published between runs are drained by the next one", async () => {
      const a2 = await emu.control("publish", { channel: A, count: 4 });
      await cron();
      const keys = await eventKeys();
      const a = idsOf(keys, A);
      assert(keys.length === 12 && a.length === 9 && a.at(-1) === a2.lastReplayId, `after: ${keys.length} keys, A ${a}`);
      assert((await marker(A))?.replayId === a2.lastReplayId, "marker A advanced");
      const res = await mf.dispatchFetch("http://worker/");
      const body = await res.json();
      const markerA = Object.entries(body.markers).find(([k]) => k.endsWith(`/${A}`))?.[1];
      assert(body.events === 12 && markerA?.replayId === a2.lastReplayId, `GET / ${JSON.stringify(body)}`);
    });
  } catch (e) {
    await check("examples/worker setup", () => {
      throw e;
    });
  } finally {
    await mf?.dispose().catch(() => {});
    await emu?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
