#!/usr/bin/env node
// npm run build: Rust core + shell -> wasm32 (release) -> wasm-bindgen (the pinned version,
// checked) -> wasm-opt from the npm `binaryen` package (never Debian's) -> tsc -> dist/.
// Also reports the shipped size (minified, gzipped) to dist/size.json and BENCHMARKS.md.
// `--out DIR` builds into DIR instead of dist/ (with CARGO_TARGET_DIR, a second, independent
// build: tests/reproducible compares its bytes with dist/).
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { withLock } from "./lock.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outArg = process.argv.indexOf("--out");
const customOut = outArg > 0 ? process.argv[outArg + 1] : undefined;
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, "target");
const WASM_BINDGEN_VERSION = "0.2.130";
const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (cmd, args, opts = {}) => {
  console.log(`[build] ${cmd} ${args.join(" ")}`);
  execFileSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
};

const version = execFileSync("wasm-bindgen", ["--version"], { encoding: "utf8" }).trim().split(/\s+/)[1];
if (version !== WASM_BINDGEN_VERSION) {
  console.error(`[build] wasm-bindgen ${WASM_BINDGEN_VERSION} required, found ${version}: run \`npm run setup\``);
  process.exit(1);
}

let dist;
await withLock(join(targetDir, ".sfstream-build.lock"), async () => {
run("cargo", ["build", "--release", "--lib", "--target", "wasm32-unknown-unknown", "-p", "sfstream"]);
const raw = join(targetDir, "wasm32-unknown-unknown", "release", "sfstream.wasm");
const gen = customOut ? `${customOut}-gen` : join(root, "js", "wasm");
rmSync(gen, { recursive: true, force: true });
run("wasm-bindgen", ["--target", "web", "--out-dir", gen, "--out-name", "sfstream", raw]);

const bgWasm = join(gen, "sfstream_bg.wasm");
// rustc's default wasm32 features; wasm-opt must be told, since wasm-bindgen drops the features section.
run(bin("wasm-opt"), [
  "-Oz",
  "--enable-bulk-memory",
  "--enable-nontrapping-float-to-int",
  "--enable-sign-ext",
  "--enable-reference-types",
  "--enable-multivalue",
  "--enable-mutable-globals",
  "--strip-debug",
  "--strip-producers",
  bgWasm,
  "-o",
  bgWasm,
]);

dist = customOut ?? join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "wasm"), { recursive: true });
for (const f of ["sfstream.js", "sfstream.d.ts", "sfstream_bg.wasm"]) copyFileSync(join(gen, f), join(dist, "wasm", f));
// The projection snippet (src/wasm/project.js) that wasm-bindgen places next to the glue.
cpSync(join(gen, "snippets"), join(dist, "wasm", "snippets"), { recursive: true });
run(bin("tsc"), ["-p", "tsconfig.json", "--outDir", dist]);
if (customOut) rmSync(gen, { recursive: true, force: true });

});

// Size: the browser build, minified (wrapper + glue bundled by esbuild) and the wasm, gzipped.
const esbuild = await import("esbuild");
const bundled = await esbuild.build({
  entryPoints: [join(dist, "browser.js")],
  bundle: true,
  minify: true,
  format: "esm",
  write: false,
  target: "es2022",
  logLevel: "silent",
});
const js = bundled.outputFiles[0].contents;
const wasm = readFileSync(join(dist, "wasm", "sfstream_bg.wasm"));
const size = {
  wasmBytes: wasm.length,
  wasmGzip: gzipSync(wasm, { level: 9 }).length,
  jsMinBytes: js.length,
  jsMinGzip: gzipSync(js, { level: 9 }).length,
};
size.totalGzip = size.wasmGzip + size.jsMinGzip;
writeFileSync(join(dist, "size.json"), JSON.stringify(size, null, 2) + "\n");
if (!customOut) {
  // The size section of BENCHMARKS.md is the build's: rewritten between its markers when it changes.
  const bench = join(root, "BENCHMARKS.md");
  const start = "<!-- build:size:start -->";
  const end = "<!-- build:size:end -->";
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
  const section = [
    start,
    "## Package size (written by `npm run build`)",
    "",
    "What a browser downloads: the wasm module, and the wrapper with the wasm-bindgen glue bundled and minified by esbuild.",
    "",
    "| part | bytes | gzipped |",
    "|---|---:|---:|",
    `| \`sfstream_bg.wasm\` (after wasm-opt -Oz) | ${kb(size.wasmBytes)} | ${kb(size.wasmGzip)} |`,
    `| JS: wrapper + glue, minified | ${kb(size.jsMinBytes)} | ${kb(size.jsMinGzip)} |`,
    `| **total** | ${kb(size.wasmBytes + size.jsMinBytes)} | **${kb(size.totalGzip)}** |`,
    end,
  ].join("\n");
  const text = existsSync(bench) ? readFileSync(bench, "utf8") : "# Benchmarks\n";
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  const next = a >= 0 && b > a ? text.slice(0, a) + section + text.slice(b + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  if (next !== text) writeFileSync(bench, next);
}
console.log(`[build] size: wasm ${size.wasmBytes} B (${size.wasmGzip} B gz), js ${size.jsMinBytes} B min (${size.jsMinGzip} B gz), total ${size.totalGzip} B gz`);
if (!existsSync(join(dist, "index.d.ts"))) {
  console.error("[build] tsc produced no dist/index.d.ts");
  process.exit(1);
}
