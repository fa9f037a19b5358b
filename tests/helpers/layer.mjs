// The small harness every tests/<layer>/run.mjs shares: named checks, a plain assert, and the
// closing "N passed, N failed" line with the exit code (non-zero on any failure, or on no check).

/** Debian's Chromium, with the flags this machine kind needs (toolchain.md). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** mulberry32: a small seeded PRNG (numbers in [0, 1)), so that a failing run replays with its seed. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function layer() {
  let passed = 0;
  let failed = 0;
  /** Run one named check; a throw fails it and the run goes on. */
  async function check(name, fn) {
    try {
      await fn();
      passed++;
      console.log(`ok - ${name}`);
    } catch (e) {
      fail(name, e);
    }
  }
  /** Count a failure that happened outside a check (e.g. the layer's set-up). */
  function fail(name, e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).replace(/\n/g, "\n  ")}`);
  }
  function assert(cond, what) {
    if (!cond) throw new Error(`assertion failed: ${what}`);
  }
  /** Print the closing line and exit: 0 only if something passed and nothing failed. */
  function finish() {
    console.log(`\n${passed} passed, ${failed} failed`);
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
  }
  return { check, fail, assert, finish };
}
