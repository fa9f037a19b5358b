// A tiny cross-process lock (an atomic mkdir), so that two builds or packs started at once in
// one checkout do not write dist/ or tests/node_modules/ at the same time.
import { mkdirSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";

const STALE_MS = 15 * 60 * 1000;

export async function withLock(path, fn) {
  mkdirSync(dirname(path), { recursive: true });
  for (;;) {
    try {
      mkdirSync(path);
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      try {
        if (Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
      } catch {}
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}
