// Deno entry point: Deno reads the wasm bytes from the file next to this module.
import { initSync } from "./wasm/sfstream.js";

declare const Deno: { readFileSync(path: URL): Uint8Array };
initSync({ module: Deno.readFileSync(new URL("./wasm/sfstream_bg.wasm", import.meta.url)) });

export * from "./index.js";
