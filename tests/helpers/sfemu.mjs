// Start sfemu as its own process on an ephemeral loopback port, and talk to its control API.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SFEMU_BIN = process.env.SFEMU_BIN ?? join(ROOT, "target", "release", "sfemu");

/** Default credentials of sfemu (see emulator/README.md). */
export const CREDENTIALS = {
  consumerKey: "sfemu-consumer-key",
  consumerSecret: "sfemu-consumer-secret",
  username: "user@example.com",
  password: "password",
};

/**
 * @param {string[]} args extra CLI flags
 * @returns {Promise<{url: string, port: number, proc: import("node:child_process").ChildProcess,
 *   control: (path: string, body?: unknown, method?: string) => Promise<any>, stop: () => Promise<void>, output: () => string}>}
 */
export async function startSfemu(args = []) {
  if (!existsSync(SFEMU_BIN)) throw new Error(`sfemu binary not found at ${SFEMU_BIN}: run cargo build --release -p sfemu`);
  const proc = spawn(SFEMU_BIN, ["--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sfemu did not start:\n${out}`)), 15000);
    const onData = (chunk) => {
      out += chunk;
      const m = /sfemu listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout.setEncoding("utf8").on("data", onData);
    proc.stderr.setEncoding("utf8").on("data", (c) => (out += c));
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sfemu exited with ${code}:\n${out}`));
    });
  });
  const port = Number(new URL(url).port);
  // A fresh TCP connection per control call (no keep-alive pool): faults such as
  // drop-connections must not break the harness's own later requests.
  function control(path, body, method = body === undefined ? "GET" : "POST") {
    const payload = body === undefined ? null : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, path: `/_sfemu/${path}`, method, agent: false,
          headers: payload === null ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
        (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (c) => (text += c)).on("end", () => {
            if (res.statusCode < 200 || res.statusCode >= 300) reject(new Error(`control ${path}: HTTP ${res.statusCode} ${text}`));
            else resolve(text ? JSON.parse(text) : null);
          });
        },
      );
      req.on("error", reject);
      req.end(payload ?? undefined);
    });
  }
  async function stop() {
    if (proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
  return { url, port, proc, control, stop, output: () => out };
}

/** Wait until `predicate()` is truthy, polling every `every` ms, or fail after `timeout` ms. */
export async function until(predicate, { timeout = 10000, every = 20, what = "condition" } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
