#!/usr/bin/env node
// npm test: every test layer, in order. Assumes scripts/setup.sh and scripts/build.mjs ran
// (package.json's "test" script runs them first).
//   1. Rust: formatting (`cargo fmt --check`), the sans-IO core (transcript tests on a virtual
//      clock) and sfemu over real HTTP.
//   2. The package: `npm pack`, extracted to tests/node_modules/sfstream, so that every JS test
//      imports what users install, not the source tree.
//   3. Node tests (node:test) against sfemu running as its own process.
//   4. Further runtime layers (Chromium, Deno, workerd) when present.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { withLock } from "./lock.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const only = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const flags = process.argv.slice(2).filter((a) => a.startsWith("--"));
const want = (layer) => only.length === 0 || only.includes(layer);
const run = (cmd, args, opts = {}) => {
  console.log(`\n[test] ${cmd} ${args.join(" ")}`);
  execFileSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
};

if (want("rust")) {
  run("cargo", ["fmt", "--all", "--check"]);
  run("cargo", ["test", "--workspace", "--release"]);
}

run("cargo", ["build", "--release", "-p", "sfemu"]);

await withLock(join(root, "target", ".sfstream-pack.lock"), async () => {
// The packed package, installed the way a user gets it.
const artifacts = join(root, "artifacts");
mkdirSync(artifacts, { recursive: true });
for (const f of readdirSync(artifacts)) if (f.endsWith(".tgz")) rmSync(join(artifacts, f));
run("npm", ["pack", "--pack-destination", artifacts, "--silent"]);
const tgz = readdirSync(artifacts).find((f) => f.endsWith(".tgz"));
const target = join(root, "tests", "node_modules", "sfstream");
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
run("tar", ["-xzf", join(artifacts, tgz), "-C", target, "--strip-components=1"]);

});

const env = { ...process.env, SFEMU_BIN: join(root, "target", "release", "sfemu") };
const files = (dir, suffix) =>
  existsSync(join(root, dir)) ? readdirSync(join(root, dir)).filter((f) => f.endsWith(suffix)).sort().map((f) => join(dir, f)) : [];

if (want("node")) {
  const tests = [...files("tests/node", ".test.mjs"), ...files("tests/conformance", ".test.mjs")];
  run("node", ["--test", "--test-concurrency=1", "--test-timeout=180000", ...tests], { env });
}
// Every tests/<layer>/run.mjs is a layer: the known ones in this order, then any others.
const ORDER = ["wasm", "types", "reproducible", "packaging", "browser", "deno", "workerd", "storage", "crash", "relay", "examples", "chaos", "e2e"];
const found = readdirSync(join(root, "tests"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, "tests", d.name, "run.mjs")))
  .map((d) => d.name);
const layers = [...ORDER.filter((l) => found.includes(l)), ...found.filter((l) => !ORDER.includes(l)).sort()];
for (const layer of layers) {
  if (want(layer)) run("node", [join(root, "tests", layer, "run.mjs"), ...flags], { env });
}
console.log("\n[test] all layers passed");
