// Shared by the workerd layer and the examples/worker test: the packed package as workerd modules.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const walk = (d) => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));

/**
 * The modules of the package installed at `root/node_modules/sfstream`: every shipped .js as an
 * ESModule, the .wasm as CompiledWasm, and a module named "sfstream" re-exporting the entry the
 * package's exports map gives for the "workerd" condition (what wrangler's resolver picks).
 * workerd resolves an import specifier against the importing module's path, so the "sfstream"
 * module resolves for a worker module placed at `root` (not in a subfolder).
 */
export function packageModules(root) {
  const pkgDir = join(root, "node_modules", "sfstream");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  const entry = pkg.exports?.["."]?.workerd;
  if (typeof entry !== "string") throw new Error(`package.json exports["."].workerd missing: ${JSON.stringify(pkg.exports)}`);
  const files = walk(join(pkgDir, "dist")).filter((f) => f.endsWith(".js") || f.endsWith(".wasm"));
  return [
    { type: "ESModule", path: join(root, "sfstream"), contents: `export * from "./node_modules/sfstream/${entry.replace(/^\.\//, "")}";\n` },
    ...files.map((f) => ({ type: f.endsWith(".wasm") ? "CompiledWasm" : "ESModule", path: f })),
  ];
}
