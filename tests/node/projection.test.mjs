// The projection snippet's date fast path (src/wasm/project.js, shipped in the package under
// dist/wasm/snippets/): `isoDateMs(s)` must equal `Date.parse(s)` for every string, since replay
// markers and the gap-free resubscribe filter compare these dates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const pkgDir = dirname(createRequire(import.meta.url).resolve("sfstream/package.json"));
const snippets = join(pkgDir, "dist", "wasm", "snippets");
const [snippet] = readdirSync(snippets);
const { isoDateMs } = await import(pathToFileURL(join(snippets, snippet, "src", "wasm", "project.js")).href);

const pad = (v, k) => String(v).padStart(k, "0");
const same = (s) => assert.ok(Object.is(isoDateMs(s), Date.parse(s)), `${JSON.stringify(s)}: ${isoDateMs(s)} vs ${Date.parse(s)}`);

test("isoDateMs equals Date.parse on Salesforce-shaped dates, in and out of range (seeded)", () => {
  let seed = 20261128;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 100000; i++) {
    same(`${pad(rnd(10000), 4)}-${pad(rnd(14), 2)}-${pad(rnd(33), 2)}T${pad(rnd(26), 2)}:${pad(rnd(62), 2)}:${pad(rnd(62), 2)}.${pad(rnd(1000), 3)}Z`);
  }
});

test("isoDateMs equals Date.parse on edge cases and other formats", () => {
  for (const s of [
    "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z", "1900-02-29T00:00:00.000Z", "2000-02-29T00:00:00.000Z",
    "2024-04-31T00:00:00.000Z", "2024-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
    "2024-01-01T24:00:00.000Z", "2024-01-01T00:60:00.000Z", "2024-01-01T00:00:60.000Z", "0099-01-01T00:00:00.000Z",
    "0100-03-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2024-1a-01T00:00:00.000Z", "2024-01-01 00:00:00.000Z",
    "2024-01-01T00:00:00.000z", "2024-01-01T00:00:00.000+0000", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000+01:00",
    "2024-01-01", "", "x", "2024-01-01T00:00:00.0000Z",
  ]) same(s);
});
