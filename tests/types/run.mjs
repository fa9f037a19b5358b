#!/usr/bin/env node
// Types and packaging layer. A scratch consumer project gets the PACKED tarball installed with
// `npm install <tgz> --offline` (as users get it), then:
//   types:     tsc --noEmit on consumer.ts (the whole public API, `await using`, errors with
//              instanceof, status narrowing, @ts-expect-error negative checks) with
//              moduleResolution "bundler" and "node16"; wrong.ts must fail with the expected errors;
//              no `any` in the shipped public declarations (dist/*.d.ts, not dist/wasm/).
//   packaging: the tarball holds only what package.json `files` ships and every exports target;
//              Node imports "sfstream" from the scratch project and streams from sfemu;
//              bundlers (esbuild, browser and workerd conditions) keep the wasm initialisation.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { startSfemu, ROOT } from "../helpers/sfemu.mjs";
import { layer } from "../helpers/layer.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");
const artifacts = join(ROOT, "artifacts");
const tgzName = existsSync(artifacts) ? readdirSync(artifacts).find((f) => /^sfstream-.*\.tgz$/.test(f)) : undefined;
if (!tgzName) {
  console.error(`no packed tarball in ${artifacts}: run scripts/test.mjs (it runs npm pack)`);
  process.exit(1);
}
const tgz = join(artifacts, tgzName);

const { check, fail, assert, finish } = layer();

const dir = mkdtempSync(join(tmpdir(), "sfstream-consumer-"));
const pkgDir = join(dir, "node_modules", "sfstream");
const tsc = (project) => spawnSync(process.execPath, [TSC, "-p", project], { cwd: dir, encoding: "utf8", timeout: 120000 });
const tsconfig = (name, compilerOptions, files) =>
  writeFileSync(join(dir, name), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: "es2022", skipLibCheck: false, types: [],
      lib: ["es2022", "dom", "dom.iterable", "dom.asynciterable", "esnext.disposable"], ...compilerOptions,
    },
    files,
  }, null, 2));
let emu;
try {
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "sfstream-consumer", private: true, type: "module" }));
  execFileSync("npm", ["install", tgz, "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], { cwd: dir, stdio: "inherit", timeout: 120000 });
  for (const f of ["consumer.ts", "wrong.ts", "node-relay.ts", "exact-optional.ts"]) cpSync(join(here, f), join(dir, f));
  tsconfig("tsconfig.bundler.json", { module: "esnext", moduleResolution: "bundler" }, ["consumer.ts"]);
  tsconfig("tsconfig.node16.json", { module: "node16", moduleResolution: "node16" }, ["consumer.ts"]);
  tsconfig("tsconfig.wrong.json", { module: "esnext", moduleResolution: "bundler" }, ["wrong.ts"]);
  // Node's own types (the repository's @types/node, pinned to the Node line it supports), no DOM lib.
  tsconfig("tsconfig.exact.json", { module: "esnext", moduleResolution: "bundler", exactOptionalPropertyTypes: true }, ["exact-optional.ts"]);
  tsconfig("tsconfig.node-relay.json", { module: "node16", moduleResolution: "node16", lib: ["es2022", "esnext.disposable"], types: ["node"], typeRoots: [join(ROOT, "node_modules", "@types")] }, ["node-relay.ts"]);

  // ---- types
  for (const mode of ["bundler", "node16"]) {
    await check(`types: tsc --noEmit with moduleResolution "${mode}" resolves the shipped declarations`, () => {
      const r = tsc(`tsconfig.${mode}.json`);
      assert(r.status === 0, `tsc failed:\n${r.stdout}${r.stderr}`);
      const explain = spawnSync(process.execPath, [TSC, "-p", `tsconfig.${mode}.json`, "--explainFiles"], { cwd: dir, encoding: "utf8" });
      assert(/node_modules\/sfstream\/dist\/index\.d\.ts/.test(explain.stdout), "types come from node_modules/sfstream/dist/index.d.ts");
    });
  }
  await check("types: the Node relay of docs/deploy.md compiles against @types/node (Node's request and response fit toNodeHandler)", () => {
    const r = tsc("tsconfig.node-relay.json");
    assert(r.status === 0, `tsc failed:\n${r.stdout}${r.stderr}`);
  });
  await check("types: options given as undefined compile under exactOptionalPropertyTypes (undefined means the default)", () => {
    const r = tsc("tsconfig.exact.json");
    assert(r.status === 0, `tsc failed:\n${r.stdout}${r.stderr}`);
  });
  await check("types: wrong calls do not compile", () => {
    const r = tsc("tsconfig.wrong.json");
    assert(r.status !== 0, "tsc accepted wrong.ts");
    const codes = [...r.stdout.matchAll(/wrong\.ts\(\d+,\d+\): error (TS\d+)/g)].map((m) => m[1]);
    assert(JSON.stringify(codes) === JSON.stringify(["TS2345", "TS2554", "TS2322", "TS2515"]), `errors ${codes}:\n${r.stdout}`);
  });
  await check("types: no `any` in the public declarations (dist/*.d.ts)", () => {
    const dts = readdirSync(join(pkgDir, "dist")).filter((f) => f.endsWith(".d.ts"));
    assert(dts.includes("index.d.ts"), "index.d.ts shipped");
    const hits = [];
    for (const f of dts) {
      const code = readFileSync(join(pkgDir, "dist", f), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
      code.split("\n").forEach((line, i) => {
        if (/\bany\b/.test(line.replace(/"[^"]*"|'[^']*'|`[^`]*`/g, ""))) hits.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    assert(hits.length === 0, `any found:\n${hits.join("\n")}`);
  });

  await check("packaging: no eval or new Function in the shipped JavaScript (pages whose CSP forbids unsafe-eval)", () => {
    const hits = [];
    const walkJs = (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walkJs(p);
        else if (e.name.endsWith(".js")) {
          const code = readFileSync(p, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
          if (/\bnew Function\s*\(|(?<![.\w])eval\s*\(/.test(code)) hits.push(p.slice(pkgDir.length + 1));
        }
      }
    };
    walkJs(join(pkgDir, "dist"));
    assert(hits.length === 0, `eval or new Function in: ${hits.join(", ")}`);
  });

  // ---- packaging
  const pkgJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  await check("packaging: the tarball ships only the files listed in package.json `files`, and every exports target", () => {
    const entries = execFileSync("tar", ["-tzf", tgz], { encoding: "utf8" }).trim().split("\n").map((p) => p.replace(/^package\//, ""));
    const globToRe = (g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*\*\//g, "\0").replace(/\*/g, "[^/]*").replace(/\0/g, "(?:.*/)?")}$`);
    const allowed = [...pkgJson.files.map(globToRe), /^package\.json$/, /^README(\.md)?$/i, /^LICEN[CS]E(\.md)?$/i];
    const extra = entries.filter((e) => !allowed.some((re) => re.test(e)));
    assert(extra.length === 0, `not in files: ${extra}`);
    assert(!entries.some((e) => /\.(ts|map|rs)$/.test(e) && !e.endsWith(".d.ts")), "no sources or maps");
    const targets = new Set();
    const walk = (v) => (typeof v === "string" ? targets.add(v.replace(/^\.\//, "")) : v && Object.values(v).forEach(walk));
    walk(pkgJson.exports);
    targets.delete("package.json");
    for (const t of targets) assert(entries.includes(t), `exports target ${t} is in the tarball`);
    assert(entries.includes("dist/wasm/sfstream_bg.wasm"), "the wasm ships");
    assert(pkgJson.type === "module" && Object.keys(pkgJson.exports["."])[0] === "types", "ESM, `types` first in exports");
  });
  await check("packaging: Node imports \"sfstream\" from the installed tarball and streams from sfemu", async () => {
    emu = await startSfemu(["--hold-timeout", "3000"]);
    writeFileSync(join(dir, "smoke.mjs"), `
import { SalesforceStreamingClient, ReplayOption } from "sfstream";
const url = process.env.SFEMU_URL;
const entry = import.meta.resolve("sfstream");
const client = new SalesforceStreamingClient({ consumerKey: "sfemu-consumer-key", consumerSecret: "sfemu-consumer-secret",
  username: "user@example.com", password: "password", loginUrl: url, replay: ReplayOption.ALL_EVENTS });
await client.open();
await client.subscribe("/topic/Packaged");
const ids = [];
for await (const m of client.messages({ signal: AbortSignal.timeout(10000) })) { ids.push(m.data.event.replayId); if (ids.length === 3) break; }
await client.close();
console.log(JSON.stringify({ entry, ids }));
`);
    const published = await emu.control("publish", { channel: "/topic/Packaged", count: 3 });
    const out = execFileSync(process.execPath, ["smoke.mjs"], { cwd: dir, encoding: "utf8", env: { ...process.env, SFEMU_URL: emu.url }, timeout: 30000 });
    const r = JSON.parse(out.trim().split("\n").at(-1));
    assert(r.entry.endsWith("/node_modules/sfstream/dist/node.js"), `node condition → dist/node.js, got ${r.entry}`);
    assert(r.ids.length === 3 && r.ids[0] === published.firstReplayId && r.ids[2] === published.lastReplayId, `ids ${r.ids}`);
  });
  for (const [label, platform, conditions, mark] of [
    ["browser", "browser", [], /sfstream_bg\.wasm/],
    ["workerd", "neutral", ["workerd", "worker", "browser"], /sfstream_bg\.wasm/],
  ]) {
    await check(`packaging: an esbuild bundle for ${label} keeps the wasm initialisation (sideEffects)`, async () => {
      writeFileSync(join(dir, `bundle-${label}.js`), `import { Client, ReplayOption } from "sfstream";\nexport const used = [Client, ReplayOption.ALL_EVENTS];\n`);
      const r = await build({
        entryPoints: [join(dir, `bundle-${label}.js`)], bundle: true, write: false, format: "esm", platform, conditions,
        mainFields: ["module", "main"], target: "es2022", logLevel: "silent",
        plugins: [{ name: "wasm-external", setup: (b) => b.onResolve({ filter: /\.wasm$/ }, (a) => ({ path: a.path, external: true })) }],
      });
      const out = r.outputFiles[0].text;
      assert(mark.test(out) && /initSync\(|__wbg_init\(/.test(out),
        "the bundle dropped the package's wasm initialisation: package.json \"sideEffects\": false lets bundlers tree-shake " +
        "the entry modules (dist/browser.js, dist/workerd.js...) whose top level initialises the wasm; list them in sideEffects");
    });
  }
} catch (e) {
  fail("types/packaging setup", e);
} finally {
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
}
finish();
