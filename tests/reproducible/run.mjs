#!/usr/bin/env node
// Same sources, same bytes: a second, independent build (its own cargo target directory and
// output folder) must produce exactly the files of dist/ that the package ships.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const work = mkdtempSync(join(tmpdir(), "sfstream-repro-"));
const out = join(work, "dist");

function files(dir) {
  const acc = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name !== "size.json") acc.push(relative(dir, p));
    }
  };
  walk(dir);
  return acc.sort();
}
const sha = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");

let passed = 0;
let failed = 0;
try {
  execFileSync("node", [join(root, "scripts", "build.mjs"), "--out", out], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, CARGO_TARGET_DIR: join(work, "target") },
  });
  const a = files(join(root, "dist"));
  const b = files(out);
  if (JSON.stringify(a) === JSON.stringify(b)) {
    passed++;
    console.log(`ok   the second build has the same ${a.length} files`);
  } else {
    failed++;
    console.log(`FAIL file lists differ:\n  dist: ${a.join(" ")}\n  again: ${b.join(" ")}`);
  }
  for (const f of a.filter((x) => b.includes(x))) {
    if (sha(join(root, "dist", f)) === sha(join(out, f))) passed++;
    else {
      failed++;
      console.log(`FAIL ${f} differs between two builds of the same sources`);
    }
  }
  console.log(`ok   ${passed - 1} files byte-identical`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
