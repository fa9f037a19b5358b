// Node entry point: the wasm bytes are read from disk (Node's fetch has no file: URLs).
import { readFileSync } from "node:fs";
import { initSync } from "./wasm/sfstream.js";

initSync({ module: readFileSync(new URL("./wasm/sfstream_bg.wasm", import.meta.url)) });

export * from "./index.js";
