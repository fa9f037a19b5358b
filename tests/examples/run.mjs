#!/usr/bin/env node
// Examples layer: each example in examples/ runs as written, against sfemu (its own process), with
// the PACKED package (tests/node_modules/sfstream) installed in a scratch copy of the example:
//   node:    examples/node/tail.mjs (NDJSON, --replay, --storage resume, --max, SIGINT, bad usage)
//   deno:    examples/deno/tail.ts (deno check; Deno KV markers resume)
//   browser: examples/browser (import map, no bundler) in headless Chromium, served by sfemu --www
//   vite:    examples/vite built with `vite build`, the output run in headless Chromium
// (examples/worker is tested by tests/workerd/run.mjs.)
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startSfemu, CREDENTIALS, ROOT } from "../helpers/sfemu.mjs";
import { layer, CHROMIUM_ARGS } from "../helpers/layer.mjs";

const pkg = join(ROOT, "tests", "node_modules", "sfstream");
if (!existsSync(join(pkg, "package.json"))) {
  console.error(`packed package not found at ${pkg}: run scripts/test.mjs (it packs and extracts it)`);
  process.exit(1);
}
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const VITE = join(ROOT, "node_modules", "vite", "bin", "vite.js");

const { check, fail, assert, finish } = layer();
const scratchDirs = [];
/** A scratch copy of examples/<name> with the packed package in node_modules. */
function scratch(name) {
  const dir = mkdtempSync(join(tmpdir(), `sfstream-example-${name}-`));
  scratchDirs.push(dir);
  cpSync(join(ROOT, "examples", name), dir, { recursive: true, filter: (src) => !/node_modules|\/dist$/.test(src.slice(join(ROOT, "examples", name).length)) });
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  cpSync(pkg, join(dir, "node_modules", "sfstream"), { recursive: true });
  return dir;
}
const sfEnv = (emu) => ({
  ...process.env,
  SF_CONSUMER_KEY: CREDENTIALS.consumerKey,
  SF_CONSUMER_SECRET: CREDENTIALS.consumerSecret,
  SF_USERNAME: CREDENTIALS.username,
  SF_PASSWORD: CREDENTIALS.password,
  SF_LOGIN_URL: emu.url,
  NO_COLOR: "1",
  DENO_NO_UPDATE_CHECK: "1",
});
/** Run to completion (bounded); returns {code, stdout, stderr}. */
function runProc(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} timed out\n${stdout}\n${stderr}`));
    }, opts.timeout ?? 60000);
    p.once("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}
const ndjson = (s) => s.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
function checkIds(lines, channel, p, what) {
  const ids = lines.filter((l) => l.channel === channel).map((l) => l.replayId);
  assert(ids.length === p.published && ids[0] === p.firstReplayId && ids.at(-1) === p.lastReplayId && new Set(ids).size === ids.length,
    `${what}: ${channel} ids ${ids} vs ${p.published} in ${p.firstReplayId}..${p.lastReplayId}`);
}

let emu;
let browser;
try {
  emu = await startSfemu(["--hold-timeout", "3000"]);
  const env = sfEnv(emu);

  // ---- examples/node
  const nodeDir = scratch("node");
  const tail = (args, timeout) => runProc(process.execPath, ["tail.mjs", ...args], { cwd: nodeDir, env, timeout });
  const store = join(nodeDir, "markers.json");
  await check("examples/node: NDJSON of the retained events with --replay all, markers written to --storage", async () => {
    const a = await emu.control("publish", { channel: "/topic/TailA", count: 3 });
    const b = await emu.control("publish", { channel: "/event/Tail_B__e", count: 2 });
    const r = await tail(["--replay", "all", "--storage", store, "--max", "5", "/topic/TailA", "/event/Tail_B__e"]);
    assert(r.code === 0, `exit ${r.code}: ${r.stderr}`);
    const lines = ndjson(r.stdout);
    assert(lines.length === 5 && lines.every((l) => typeof l.data === "object"), `5 lines: ${r.stdout}`);
    checkIds(lines, "/topic/TailA", a, "first run");
    checkIds(lines, "/event/Tail_B__e", b, "first run");
    const markers = JSON.parse(readFileSync(store, "utf8"));
    assert(markers["/topic/TailA"].replayId === a.lastReplayId && markers["/event/Tail_B__e"].replayId === b.lastReplayId, JSON.stringify(markers));
    assert(!r.stderr.includes(CREDENTIALS.password) && !r.stdout.includes(CREDENTIALS.consumerSecret), "no secret printed");
  });
  await check("examples/node: the next run resumes from the storage file", async () => {
    const a = await emu.control("publish", { channel: "/topic/TailA", count: 2 });
    const r = await tail(["--storage", store, "--max", "2", "/topic/TailA", "/event/Tail_B__e"]);
    assert(r.code === 0, `exit ${r.code}: ${r.stderr}`);
    const lines = ndjson(r.stdout);
    assert(lines.length === 2, `2 lines: ${r.stdout}`);
    checkIds(lines, "/topic/TailA", a, "resumed run");
  });
  await check("examples/node: SIGINT closes the client, exits 0 and stores the marker", async () => {
    const p = spawn(process.execPath, ["tail.mjs", "--storage", store, "/topic/TailSig"], { cwd: nodeDir, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.setEncoding("utf8").on("data", (c) => (out += c));
    p.stderr.setEncoding("utf8").on("data", (c) => (err += c));
    const exited = new Promise((r) => p.once("exit", (code, sig) => r({ code, sig })));
    const wait = async (pred, what) => {
      for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
      assert(pred(), `${what}\nstdout: ${out}\nstderr: ${err}`);
    };
    try {
      await wait(() => err.includes("tailing"), "subscribed");
      const s = await emu.control("publish", { channel: "/topic/TailSig", count: 1 });
      await wait(() => out.includes("\n"), "one event printed");
      p.kill("SIGINT");
      const t = setTimeout(() => p.kill("SIGKILL"), 10000);
      const { code, sig } = await exited;
      clearTimeout(t);
      assert(code === 0, `exit ${code} ${sig}: ${err}`);
      assert(JSON.parse(readFileSync(store, "utf8"))["/topic/TailSig"].replayId === s.lastReplayId, "marker stored on SIGINT");
    } finally {
      if (p.exitCode === null) p.kill("SIGKILL");
    }
  });
  await check("examples/node: bad usage and missing credentials exit 2 with a message", async () => {
    const r1 = await tail([]);
    assert(r1.code === 2 && /no channel/.test(r1.stderr), `no channel: ${r1.code} ${r1.stderr}`);
    const r2 = await runProc(process.execPath, ["tail.mjs", "/topic/X"], { cwd: nodeDir, env: { ...env, SF_PASSWORD: "" } });
    assert(r2.code === 2 && /SF_PASSWORD is not set/.test(r2.stderr), `missing env: ${r2.code} ${r2.stderr}`);
  });

  // ---- examples/deno
  const denoDir = scratch("deno");
  const denoEnv = { ...env, DENO_DIR: join(denoDir, ".deno") };
  await check("examples/deno: deno check tail.ts against the shipped types", async () => {
    const r = await runProc(DENO, ["check", "tail.ts"], { cwd: denoDir, env: denoEnv, timeout: 120000 });
    assert(r.code === 0, `deno check: ${r.stdout}${r.stderr}`);
  });
  const denoTail = (args) => runProc(DENO, ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "tail.ts", "--kv", "markers.kv", ...args], { cwd: denoDir, env: denoEnv, timeout: 60000 });
  await check("examples/deno: NDJSON with --replay all, then a second run resumes from Deno KV", async () => {
    const a = await emu.control("publish", { channel: "/event/Deno_Tail__e", count: 3 });
    const r1 = await denoTail(["--replay", "all", "--max", "3", "/event/Deno_Tail__e"]);
    assert(r1.code === 0, `exit ${r1.code}: ${r1.stderr}`);
    checkIds(ndjson(r1.stdout), "/event/Deno_Tail__e", a, "first deno run");
    const b = await emu.control("publish", { channel: "/event/Deno_Tail__e", count: 2 });
    const r2 = await denoTail(["--replay", "all", "--max", "2", "/event/Deno_Tail__e"]);
    assert(r2.code === 0, `exit ${r2.code}: ${r2.stderr}`);
    checkIds(ndjson(r2.stdout), "/event/Deno_Tail__e", b, "resumed deno run");
  });

  // ---- browsers
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: CHROMIUM_ARGS, headless: true });
  async function pageShowsEvents(www, path, channel, what) {
    const site = await startSfemu(["--hold-timeout", "3000", "--www", www]);
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    try {
      const before = await site.control("publish", { channel, count: 2 });
      await page.goto(`${site.url}${path}`);
      await page.waitForFunction(() => document.body.dataset.state === "subscribed" || document.body.dataset.state === "error", null, { timeout: 20000 })
        .catch(() => { throw new Error(`${what}: not subscribed; page errors: ${errors.join("; ")}`); });
      const state = await page.evaluate(() => [document.body.dataset.state, document.getElementById("status").textContent]);
      assert(state[0] === "subscribed", `${what}: ${state[1]} ${errors.join("; ")}`);
      const after = await site.control("publish", { channel, count: 2 });
      await page.waitForFunction(() => document.querySelectorAll("#events li").length >= 4, null, { timeout: 20000 })
        .catch(() => { throw new Error(`${what}: events did not appear; page errors: ${errors.join("; ")}`); });
      const ids = (await page.$$eval("#events li", (lis) => lis.map((li) => Number(li.dataset.replayId)))).sort((x, y) => x - y);
      assert(ids.length === 4 && ids[0] === before.firstReplayId && ids[1] === before.lastReplayId && ids[2] === after.firstReplayId && ids[3] === after.lastReplayId,
        `${what}: ids ${ids}`);
    } finally {
      await page.close();
      await site.stop();
    }
  }
  await check("examples/browser: plain HTML + import map, served same-origin by sfemu, lists replayed and live events", async () => {
    const dir = scratch("browser");
    await pageShowsEvents(dir, "/index.html?channels=/topic/BrowserExample&replay=all&autostart", "/topic/BrowserExample", "browser example");
  });
  await check("examples/vite: vite build, then the built page lists replayed and live events", async () => {
    const dir = scratch("vite");
    symlinkSync(join(ROOT, "node_modules", "vite"), join(dir, "node_modules", "vite"), "dir");
    const r = spawnSync(process.execPath, [VITE, "build", "--logLevel", "warn"], { cwd: dir, encoding: "utf8", timeout: 180000 });
    assert(r.status === 0, `vite build: ${r.stdout}${r.stderr}`);
    const assets = join(dir, "dist", "assets");
    assert(existsSync(assets) && spawnSync("ls", [assets], { encoding: "utf8" }).stdout.includes(".wasm"), "the .wasm is emitted as an asset");
    await pageShowsEvents(join(dir, "dist"), "/index.html?channels=/event/Vite_Example__e&replay=all", "/event/Vite_Example__e", "vite example");
  });
} catch (e) {
  fail("examples layer setup", e);
} finally {
  await browser?.close().catch(() => {});
  await emu?.stop();
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
}
finish();
