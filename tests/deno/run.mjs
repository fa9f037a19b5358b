#!/usr/bin/env node
// Deno layer: `deno test` on client.test.ts in a scratch project whose node_modules/sfstream is the
// PACKED package (tests/node_modules/sfstream, extracted by scripts/test.mjs). deno.json uses
// "nodeModulesDir": "manual", so `import ... from "sfstream"` resolves through the package's
// exports map with Deno's "deno" condition (the test asserts dist/deno.js was picked), and Deno
// type-checks the test against the shipped .d.ts. sfemu runs as its own process; its URL is passed
// in SFEMU_URL.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSfemu, ROOT } from "../helpers/sfemu.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(ROOT, "tests", "node_modules", "sfstream");
const DENO = join(ROOT, "node_modules", ".bin", "deno");
for (const [what, p] of [["packed package", join(pkg, "package.json")], ["deno (npm devDependency)", DENO]]) {
  if (!existsSync(p)) {
    console.error(`${what} not found at ${p}`);
    process.exit(1);
  }
}

const dir = mkdtempSync(join(tmpdir(), "sfstream-deno-"));
mkdirSync(join(dir, "node_modules"));
cpSync(pkg, join(dir, "node_modules", "sfstream"), { recursive: true });
cpSync(join(here, "client.test.ts"), join(dir, "client.test.ts"));
writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "deno-consumer", private: true, type: "module", dependencies: { sfstream: "*" } }));
writeFileSync(join(dir, "deno.json"), JSON.stringify({ nodeModulesDir: "manual", compilerOptions: { lib: ["deno.window", "esnext"] } }));

/**
 * A loopback server playing CometD: `handle(messages, reply, req, res)` for each POST; a GET is
 * answered with the JSON of `report()`.
 */
function bayeuxServer(handle, report = () => ({})) {
  return createServer((req, res) => {
    if (req.method === "GET") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(report()));
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const reply = (v) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(v));
      handle(JSON.parse(body), reply, req, res);
    });
  });
}

// A server that declares a 70 MiB reply on the second long-poll and then stalls: with the runtime's
// own fetch (Deno's), the shell must refuse it from the Content-Length header, not wait for the body.
// Its URL goes to the test in BIG_REPLY_URL.
const bigReply = bayeuxServer((m, reply, req, res) => {
  const kind = m[0].channel;
  if (kind === "/meta/handshake") return reply([{ channel: kind, id: m[0].id, clientId: "big1", successful: true, version: "1.0", supportedConnectionTypes: ["long-polling"] }]);
  if (kind === "/meta/subscribe") return reply([{ channel: kind, id: m[0].id, clientId: "big1", subscription: m[0].subscription, successful: true }]);
  if (kind === "/meta/disconnect") return reply([{ channel: kind, id: m[0].id, successful: true }]);
  if (kind !== "/meta/connect") return res.writeHead(400).end();
  bigReply.connects = (bigReply.connects ?? 0) + 1;
  const ok = { channel: kind, id: m[0].id, clientId: "big1", successful: true, advice: { interval: 0, timeout: 500, reconnect: "retry" } };
  if (bigReply.connects === 1) return reply([ok]);
  if (bigReply.connects === 2) {
    res.writeHead(200, { "content-type": "application/json", "content-length": String(70 * 1024 * 1024) });
    res.write("["); // and nothing more: the client must not wait for the rest
    res.on("error", () => {});
    return;
  }
  if (bigReply.connects === 3) return reply([{ channel: "/topic/Big", data: { event: { replayId: 7 } } }, ok]);
  setTimeout(() => reply([ok]), 500);
});
await new Promise((r) => bigReply.listen(0, "127.0.0.1", r));

// A server that loses replies the way a reset connection does: it takes the third long-poll and
// the first publish, then resets the connection without a byte of answer. Deno's fetch sends a
// request once more when its reused connection is reset like this, unless its body is a stream:
// a long-poll or a publish must reach the server once. A GET (`/seen`) lists the Bayeux message ids
// that arrived more than once. Its URL goes to the test in LOSSY_URL.
const lossySeen = new Map();
let lossyConnects = 0;
let lossyPublishes = 0;
let lossySession = 0;
const lossy = bayeuxServer(
  (m, reply, req) => {
    const kind = m[0].channel;
    const key = `${m[0].clientId ?? "-"}:${m[0].id}`;
    lossySeen.set(key, (lossySeen.get(key) ?? 0) + 1);
    const clientId = `lossy${lossySession}`;
    if (kind === "/meta/handshake") {
      lossySession++;
      return reply([{ channel: kind, id: m[0].id, clientId: `lossy${lossySession}`, successful: true, version: "1.0", supportedConnectionTypes: ["long-polling"] }]);
    }
    if (kind === "/meta/subscribe") return reply([{ channel: kind, id: m[0].id, clientId, subscription: m[0].subscription, successful: true }]);
    if (kind === "/meta/disconnect") return reply([{ channel: kind, id: m[0].id, successful: true }]);
    if (kind !== "/meta/connect") {
      lossyPublishes++;
      if (lossyPublishes === 1) return req.socket.resetAndDestroy();
      return reply([{ channel: kind, id: m[0].id, successful: true }]);
    }
    lossyConnects++;
    const ok = { channel: kind, id: m[0].id, clientId, successful: true, advice: { interval: 0, timeout: 300, reconnect: "retry" } };
    if (lossyConnects === 3) return req.socket.resetAndDestroy();
    // The session after the lost long-poll: one event on its first held long-poll.
    if (lossySession >= 2 && !lossy.sent) {
      lossy.sent = true;
      return setTimeout(() => reply([{ channel: "/topic/Lossy", data: { event: { replayId: 9 } } }, ok]), 50);
    }
    setTimeout(() => reply([ok]), lossyConnects === 1 ? 0 : 300);
  },
  () => ({ again: [...lossySeen].filter(([, n]) => n > 1).map(([k]) => k), connects: lossyConnects, publishes: lossyPublishes }),
);
await new Promise((r) => lossy.listen(0, "127.0.0.1", r));

const emu = await startSfemu(["--hold-timeout", "3000"]);
let code = 1;
try {
  const child = spawn(DENO, ["test", "-A", "--no-prompt", "client.test.ts"], {
    cwd: dir,
    stdio: "inherit",
    env: { ...process.env, SFEMU_URL: emu.url, BIG_REPLY_URL: `http://127.0.0.1:${bigReply.address().port}`, LOSSY_URL: `http://127.0.0.1:${lossy.address().port}`, DENO_DIR: join(dir, ".deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 180000);
  code = await new Promise((r) => child.once("exit", (c, sig) => r(c ?? (sig ? 1 : 0))));
  clearTimeout(timer);
} finally {
  bigReply.closeAllConnections();
  bigReply.close();
  lossy.closeAllConnections();
  lossy.close();
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log(code === 0 ? "\ndeno layer: passed" : `deno layer: failed (exit ${code})`);
process.exit(code === 0 ? 0 : 1);
