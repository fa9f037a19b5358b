// Cloudflare Workers (workerd) entry point: workerd cannot compile wasm from bytes at run time,
// so the module is imported as a CompiledWasm module.
import wasmModule from "./wasm/sfstream_bg.wasm";
import { initSync } from "./wasm/sfstream.js";

initSync({ module: wasmModule });

export * from "./index.js";
