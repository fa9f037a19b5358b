#!/usr/bin/env node
// npm start (after scripts/setup.sh and scripts/build.mjs): the live dashboard against sfemu.
//   1. builds sfemu if needed (cargo is incremental: a no-op when it is fresh);
//   2. copies the built package (dist/) to www/vendor/sfstream/ (gitignored), so the page imports
//      the real client, served by the same origin as /cometd;
//   3. starts `sfemu --demo --www www --port $PORT` (default 8090) and prints the URL to open;
//   4. Ctrl-C (SIGINT) or SIGTERM stops sfemu and exits.
//
// `node scripts/start.mjs --org`: the dashboard against a real org instead, through the relay of
// `sfstream/relay` on this machine (same origin as the page, so no CORS is involved). The org's
// credentials come from the environment and stay in this process; the page gets a random session
// token (printed here) to paste into the form's access-token field. See docs/dashboard.md.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { cpSync, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const log = (msg) => console.log(`[start] ${msg}`);
const port = process.env.PORT ?? "8090";
if (!/^\d+$/.test(port) || Number(port) > 65535) {
  console.error(`[start] PORT must be a port number, got ${JSON.stringify(port)}`);
  process.exit(2);
}

const dist = join(root, "dist");
if (!existsSync(join(dist, "browser.js")) || !existsSync(join(dist, "wasm", "sfstream_bg.wasm"))) {
  console.error("[start] dist/ is not built: run `npm start` (which builds first) or `node scripts/build.mjs`");
  process.exit(1);
}

const www = join(root, "www");
const vendor = join(www, "vendor", "sfstream");
rmSync(vendor, { recursive: true, force: true });
cpSync(dist, vendor, { recursive: true, filter: (src) => !src.endsWith(".d.ts") && !src.endsWith("size.json") });

function startSfemu() {
  log("building sfemu (cargo build --release -p sfemu)");
  execFileSync("cargo", ["build", "--release", "-p", "sfemu"], { cwd: root, stdio: "inherit" });
  const bin = join(root, "target", "release", "sfemu");

  const args = ["--demo", "--www", www, "--port", port];
  if (process.env.HOST) args.push("--host", process.env.HOST);
  const emu = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  let announced = false;
  emu.stdout.setEncoding("utf8").on("data", (chunk) => {
    process.stdout.write(chunk);
    const m = /sfemu listening on (http:\/\/\S+)/.exec(chunk);
    if (m && !announced) {
      announced = true;
      const url = m[1].replace("://0.0.0.0:", "://127.0.0.1:");
      console.log(`\n  sfstream dashboard: ${url}/\n  (sfemu --demo publishes PushTopic, platform and CDC events; Ctrl-C stops everything)\n`);
    }
  });

  let stopping = false;
  function stop(signal) {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping sfemu`);
    if (emu.exitCode === null && emu.signalCode === null) emu.kill("SIGTERM");
    const force = setTimeout(() => emu.kill("SIGKILL"), 5000);
    force.unref();
  }
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  emu.on("exit", (code, signal) => {
    if (!stopping) {
      console.error(`[start] sfemu exited unexpectedly (${signal ?? `status ${code}`})`);
      process.exit(1);
    }
    log("stopped");
    process.exit(0);
  });
}

// ---------------------------------------------------------------- --org: page + relay on one origin

function env(name) {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

async function orgAuthenticator(sf) {
  const loginUrl = env("SF_LOGIN_URL") ?? sf.LOGIN_URL;
  const consumerKey = env("SF_CONSUMER_KEY");
  const common = { loginUrl, ...(env("SF_API_VERSION") ? { apiVersion: env("SF_API_VERSION") } : {}) };
  if (env("SF_ACCESS_TOKEN") && env("SF_INSTANCE_URL")) {
    return { auth: new sf.AccessTokenAuthenticator({ accessToken: env("SF_ACCESS_TOKEN"), instanceUrl: env("SF_INSTANCE_URL") }, common.apiVersion ? { apiVersion: common.apiVersion } : {}), how: "access token" };
  }
  if (!consumerKey) return null;
  if (env("SF_PRIVATE_KEY_FILE") && env("SF_USERNAME")) {
    const privateKey = readFileSync(env("SF_PRIVATE_KEY_FILE"), "utf8");
    return { auth: new sf.JwtBearerAuthenticator({ ...common, consumerKey, username: env("SF_USERNAME"), privateKey }), how: "JWT bearer" };
  }
  if (env("SF_CONSUMER_SECRET") && env("SF_USERNAME") && env("SF_PASSWORD")) {
    return { auth: new sf.PasswordAuthenticator({ ...common, consumerKey, consumerSecret: env("SF_CONSUMER_SECRET"), username: env("SF_USERNAME"), password: env("SF_PASSWORD") }), how: "username-password" };
  }
  if (env("SF_CONSUMER_SECRET")) {
    return { auth: new sf.ClientCredentialsAuthenticator({ ...common, consumerKey, consumerSecret: env("SF_CONSUMER_SECRET") }), how: "client credentials" };
  }
  return null;
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".wasm": "application/wasm", ".png": "image/png", ".json": "application/json", ".svg": "image/svg+xml" };

/** Serve a file of www/ (GET/HEAD only, no path outside www/). */
function serveStatic(req, res) {
  const url = new URL(req.url ?? "/", "http://x");
  let path;
  try {
    path = normalize(join(www, decodeURIComponent(url.pathname)));
  } catch {
    path = "";
  }
  if (!path.startsWith(www + sep) && path !== www) {
    res.writeHead(404).end();
    return;
  }
  if (existsSync(path) && statSync(path).isDirectory()) path = join(path, "index.html");
  if (!existsSync(path) || !statSync(path).isFile()) {
    res.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
    return;
  }
  const body = readFileSync(path);
  res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", "content-length": body.length, "cache-control": "no-store" });
  res.end(req.method === "HEAD" ? undefined : body);
}

async function startOrgRelay() {
  const sf = await import(pathToFileURL(join(dist, "node.js")).href);
  const { createRelay } = await import(pathToFileURL(join(dist, "relay.js")).href);
  const { toNodeHandler } = await import(pathToFileURL(join(dist, "relay-node.js")).href);
  const picked = await orgAuthenticator(sf);
  if (!picked) {
    console.error(`[start] --org needs the org's credentials in the environment, one of:
  SF_CONSUMER_KEY + SF_USERNAME + SF_PRIVATE_KEY_FILE            (JWT bearer)
  SF_CONSUMER_KEY + SF_CONSUMER_SECRET + SF_USERNAME + SF_PASSWORD (username-password)
  SF_CONSUMER_KEY + SF_CONSUMER_SECRET                           (client credentials; SF_LOGIN_URL = your My Domain)
  SF_ACCESS_TOKEN + SF_INSTANCE_URL                              (a token you already have)
optional: SF_LOGIN_URL (default https://login.salesforce.com), SF_CHANNELS (comma-separated allowlist, default /topic/*,/event/*,/data/*), SF_API_VERSION`);
    process.exit(2);
  }
  // The page's credential for the relay: random per run, never a Salesforce token.
  const session = randomBytes(24).toString("base64url");
  const expected = Buffer.from(`Bearer ${session}`);
  const authorize = (request) => {
    const got = Buffer.from(request.headers.get("authorization") ?? "");
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
  const channels = (env("SF_CHANNELS") ?? "/topic/*,/event/*,/data/*").split(",").map((c) => c.trim()).filter(Boolean);
  const host = env("HOST") ?? "127.0.0.1";
  let origins = [];
  const relay = createRelay({ authenticator: picked.auth, allowedOrigins: (o) => origins.includes(o), channels, authorize });
  const relayHandler = toNodeHandler(relay);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/cometd" || path.startsWith("/cometd/")) {
      void relayHandler(req, res);
    } else if (req.method === "GET" || req.method === "HEAD") {
      serveStatic(req, res);
    } else {
      res.writeHead(405, { "content-type": "text/plain" }).end("Method Not Allowed");
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(port), host, resolve);
  });
  const bound = server.address().port;
  origins = [`http://${host}:${bound}`, `http://localhost:${bound}`, `http://127.0.0.1:${bound}`];
  const url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${bound}/`;
  console.log(`relay listening on ${url} (${picked.how}, channels ${channels.join(" ")})`);
  console.log(`\n  sfstream dashboard (real org through the relay): ${url}?mode=token&connect=manual`);
  console.log(`  paste this relay session token into "Access token": ${session}`);
  console.log("  (Ctrl-C stops the relay)\n");
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping the relay`);
    server.closeAllConnections?.();
    server.close(() => {
      log("stopped");
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

if (process.argv.includes("--org")) {
  await startOrgRelay();
} else {
  startSfemu();
}
