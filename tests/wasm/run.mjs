#!/usr/bin/env node
// Layer "wasm": the shell's own tests (tests/wasm_shell.rs) under wasm-bindgen-test in Node,
// against sfemu started here as its own process. SFEMU_URL is baked into the test at compile time.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startSfemu, ROOT } from "../helpers/sfemu.mjs";

const emu = await startSfemu(["--hold-timeout", "2000"]);
let status = 1;
try {
  const r = spawnSync("cargo", ["test", "--target", "wasm32-unknown-unknown", "-p", "sfstream", "--test", "wasm_shell"], {
    cwd: ROOT,
    stdio: "inherit",
    env: {
      ...process.env,
      SFEMU_URL: emu.url,
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER: "wasm-bindgen-test-runner",
      // Never Debian's wasm-opt (see toolchain.md): the npm binaryen comes first on PATH.
      PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
    },
  });
  status = r.status ?? 1;
} finally {
  await emu.stop();
}
process.exit(status);
