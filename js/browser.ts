// Browser (and bundler) entry point: the wasm is fetched next to this module.
import init from "./wasm/sfstream.js";

await init({ module_or_path: new URL("./wasm/sfstream_bg.wasm", import.meta.url) });

export * from "./index.js";
