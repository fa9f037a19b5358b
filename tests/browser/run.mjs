#!/usr/bin/env node
// Chromium layer: headless Chromium (playwright-core, /usr/bin/chromium) loads a page served by
// sfemu itself (--www), so the page is same-origin with /cometd and the OAuth endpoint, exactly as
// a Salesforce-hosted page (or a same-origin relay) would be. The page imports the PACKED package
// (tests/node_modules/sfstream, extracted by scripts/test.mjs) through its browser entry point and
// runs the scenarios of page/scenarios.js with the real client. A second check proves that a
// cross-origin page cannot reach /cometd (no CORS, like Salesforce), with a --cors sfemu as the
// control that the check can tell the difference.
import { createServer } from "node:http";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startSfemu, CREDENTIALS, ROOT } from "../helpers/sfemu.mjs";
import { CHROMIUM_ARGS as ARGS, CHROMIUM_PATH as CHROMIUM } from "../helpers/layer.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(ROOT, "tests", "node_modules", "sfstream");
if (!existsSync(join(pkg, "dist", "browser.js"))) {
  console.error(`packed package not found at ${pkg}: run scripts/test.mjs (it packs and extracts it)`);
  process.exit(1);
}
const SCENARIO_TIMEOUT = 60000;

let passed = 0;
let failed = 0;
const report = (name, error) => {
  if (error) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(error?.stack ?? error).replace(/\n/g, "\n  ")}`);
  } else {
    passed++;
    console.log(`ok - ${name}`);
  }
};
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms).unref())]);

const www = mkdtempSync(join(tmpdir(), "sfstream-browser-"));
cpSync(join(here, "page"), www, { recursive: true });
cpSync(join(here, "..", "helpers", "page.js"), join(www, "helpers.js"));
cpSync(pkg, join(www, "sfstream"), { recursive: true });

let emu, corsEmu, other, browser;
try {
  emu = await startSfemu(["--hold-timeout", "3000", "--www", www]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });

  // 1. The real client in the page, same origin.
  await page.goto(`${emu.url}/index.html`);
  try {
    await page.waitForFunction(() => window.sfstreamReady !== undefined, null, { timeout: 20000 });
  } catch (e) {
    throw new Error(`the page did not load the package: ${pageErrors.join("\n") || e.message}`);
  }
  const names = await page.evaluate(() => Object.keys(window.sfstreamReady.scenarios));
  if (names.length === 0) throw new Error("no scenarios found in the page");
  for (const name of names) {
    try {
      await withTimeout(
        page.evaluate(([n, creds]) => window.sfstreamReady.scenarios[n](creds), [name, CREDENTIALS]),
        SCENARIO_TIMEOUT,
        name,
      );
      report(`chromium: ${name}`);
    } catch (e) {
      report(`chromium: ${name}`, e);
    }
  }

  // 2. A page on another origin cannot reach /cometd (no CORS, like Salesforce). The same request
  //    to an sfemu started with --cors for that origin goes through: the check can fail.
  other = createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>another origin</title>");
  });
  await new Promise((r) => other.listen(0, "127.0.0.1", r));
  const otherOrigin = `http://127.0.0.1:${other.address().port}`;
  corsEmu = await startSfemu(["--hold-timeout", "3000", "--cors", otherOrigin]);
  const xpage = await context.newPage();
  await xpage.goto(`${otherOrigin}/`);
  const token = (await emu.control("token", {})).access_token;
  const corsToken = (await corsEmu.control("token", {})).access_token;
  const probe = (base, tok) =>
    xpage.evaluate(async ([b, t]) => {
      const handshake = JSON.stringify([{ channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: ["long-polling"] }]);
      const out = {};
      // With the bearer header: a preflighted request.
      try {
        const r = await fetch(`${b}/cometd/62.0`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${t}` }, body: handshake });
        out.bearer = `reached ${r.status} ${(await r.json())[0].successful}`;
      } catch (e) {
        out.bearer = `blocked ${e.name}`;
      }
      // A "simple" request (no preflight): the answer must still be unreadable.
      try {
        const r = await fetch(`${b}/cometd/62.0`, { method: "POST", headers: { "content-type": "text/plain" }, body: handshake });
        out.simple = `reached ${r.status}`;
      } catch (e) {
        out.simple = `blocked ${e.name}`;
      }
      return out;
    }, [base, tok]);
  const denied = await probe(emu.url, token);
  report("cross-origin page cannot reach /cometd without CORS", denied.bearer === "blocked TypeError" && denied.simple === "blocked TypeError" ? null : new Error(JSON.stringify(denied)));
  const allowed = await probe(corsEmu.url, corsToken);
  report("control: the same requests succeed against sfemu --cors for that origin", allowed.bearer === "reached 200 true" && allowed.simple.startsWith("reached 200") ? null : new Error(JSON.stringify(allowed)));
  if (pageErrors.length) console.log(`page console errors (informational):\n  ${pageErrors.join("\n  ")}`);
} catch (e) {
  report("browser layer setup", e);
} finally {
  await browser?.close().catch(() => {});
  await emu?.stop();
  await corsEmu?.stop();
  other?.close();
  rmSync(www, { recursive: true, force: true });
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
