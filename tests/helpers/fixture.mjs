// One sfemu process for a node:test file: started before its first test, stopped after its last.
import { before, after } from "node:test";
import { startSfemu } from "./sfemu.mjs";

/** The returned object takes sfemu's `url`, `control`, `stop`, ... once the file's tests start. */
export function sfemuForFile(args = []) {
  const emu = {};
  before(async () => {
    Object.assign(emu, await startSfemu(args));
  });
  after(async () => {
    await emu.stop?.();
  });
  return emu;
}
